use polystore::prelude::*;

#[derive(Model)]
#[model(distributed_by(modulo(tenant_id)), primary_key(tenant_id, id))]
pub struct Order {
    pub tenant_id: i64,
    pub id: i64,
}

fn main() {}
