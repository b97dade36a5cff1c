use polystore::prelude::*;

#[derive(Model)]
#[model(colocate_with = "orders")]
pub struct Note {
    #[model(primary_key)]
    pub id: i64,
}

fn main() {}
