use polystore::prelude::*;

#[derive(Model)]
pub struct Customer {
    #[model(primary_key)]
    pub id: i64,
    pub name: String,
}

#[derive(Model)]
pub struct Invoice {
    #[model(primary_key)]
    pub id: i64,
    pub customer_id: i64,
}

fn main() {
    let _ = Customer::query().filter(exists(Invoice::query()).on(Invoice::CUSTOMER_ID, Customer::NAME));
}
