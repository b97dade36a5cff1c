use polystore::prelude::*;

// A local (neither distributed nor reference) model.
#[derive(Model)]
pub struct Warehouse {
    #[model(primary_key)]
    pub id: i64,
}

// A distributed model's foreign key that does not include the distribution column must
// target a reference model.
#[derive(Model)]
#[model(distributed_by = tenant_id, primary_key(tenant_id, id))]
pub struct Order {
    pub tenant_id: i64,
    pub id: i64,
    pub warehouse_id: i64,
    #[model(belongs_to)]
    pub warehouse: Rel<Warehouse>,
}

fn main() {}
