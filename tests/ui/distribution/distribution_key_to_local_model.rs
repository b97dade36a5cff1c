use polystore::prelude::*;

// A local model (neither distributed nor reference).
#[derive(Model)]
pub struct Account {
    #[model(primary_key)]
    pub id: i64,
}

// A foreign key through the distribution column must reach a reference model or a model
// distributed by its key (then the two tables are colocated).
#[derive(Model)]
#[model(distributed_by = tenant_id, primary_key(tenant_id, id))]
pub struct Invoice {
    pub tenant_id: i64,
    pub id: i64,
    #[model(belongs_to(key = tenant_id))]
    pub account: Rel<Account>,
}

fn main() {}
