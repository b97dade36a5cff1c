use polystore::prelude::*;

#[derive(Model)]
pub struct Doc {
    #[model(primary_key)]
    pub id: i64,
    #[model(version)]
    pub version: String,
}

fn main() {}
