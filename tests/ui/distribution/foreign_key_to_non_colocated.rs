use polystore::prelude::*;

// Distributed, but its key (tenant_id, id) is more than its distribution column: no foreign
// key through the distribution column alone can reach it.
#[derive(Model)]
#[model(distributed_by = tenant_id, primary_key(tenant_id, id))]
pub struct Account {
    pub tenant_id: i64,
    pub id: i64,
}

#[derive(Model)]
#[model(distributed_by = tenant_id, primary_key(tenant_id, id))]
pub struct Invoice {
    pub tenant_id: i64,
    pub id: i64,
    #[model(belongs_to(key = tenant_id))]
    pub account: Rel<Account>,
}

fn main() {}
