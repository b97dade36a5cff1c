use polystore::prelude::*;

#[derive(Model)]
#[model(primary_key(tenant, id))]
pub struct Invoice {
    pub tenant: i64,
    #[model(primary_key)]
    pub id: i64,
    #[model(column = "tenant")]
    pub tenant_copy: i64,
}

fn main() {}
