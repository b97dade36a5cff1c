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
    pub label: String,
}

fn main() {
    let labels = Invoice::query().select(Invoice::LABEL);
    let _ = Customer::query().filter(Customer::ID.is_in(labels));
}
