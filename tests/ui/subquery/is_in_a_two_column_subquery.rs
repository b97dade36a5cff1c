use polystore::prelude::*;

#[derive(Model)]
pub struct Customer {
    #[model(primary_key)]
    pub id: i64,
}

#[derive(Model)]
pub struct Invoice {
    #[model(primary_key)]
    pub id: i64,
    pub customer_id: i64,
}

fn main() {
    let pairs = Invoice::query().select((Invoice::ID, Invoice::CUSTOMER_ID));
    let _ = Customer::query().filter(Customer::ID.not_in(pairs));
}
