use polystore::prelude::*;

// A distributed model's primary key must include the distribution column.
#[derive(Model)]
#[model(distributed_by = tenant_id)]
pub struct Order {
    #[model(primary_key)]
    pub id: i64,
    pub tenant_id: i64,
}

fn main() {}
