use polystore::prelude::*;

// docs/dtos.md: `create` and `update` together are a compile error.
#[derive(Model)]
#[model(dto(UserInput, create, update))]
pub struct User {
    #[model(primary_key)]
    pub id: i64,
    pub name: String,
}

fn main() {}
