use polystore::prelude::*;

#[derive(Model)]
#[model(distributed_by = id)]
pub struct Tenant {
    #[model(primary_key)]
    pub id: i64,
}

// A reference table (a copy on every node) can only refer to reference tables.
#[derive(Model)]
#[model(reference)]
pub struct Plan {
    #[model(primary_key)]
    pub id: i64,
    pub owner_id: i64,
    #[model(belongs_to)]
    pub owner: Rel<Tenant>,
}

fn main() {}
