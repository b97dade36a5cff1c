use polystore::prelude::*;

// Every unique index of a distributed model must include the distribution column.
#[derive(Model)]
#[model(distributed_by = tenant_id, primary_key(tenant_id, id))]
#[model(index(sku, unique))]
pub struct Product {
    pub tenant_id: i64,
    pub id: i64,
    #[model(unique)]
    pub email: String,
    pub sku: String,
}

fn main() {}
