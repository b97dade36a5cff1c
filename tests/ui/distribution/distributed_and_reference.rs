use polystore::prelude::*;

#[derive(Model)]
#[model(distributed_by = id, reference)]
pub struct Country {
    #[model(primary_key)]
    pub id: i64,
}

fn main() {}
