use polystore::prelude::*;

// docs/dtos.md: `only` and `exclude` together are a compile error.
#[derive(Model)]
#[model(dto(UserCard, only(id, name), exclude(secret)))]
pub struct User {
    #[model(primary_key)]
    pub id: i64,
    pub name: String,
    pub secret: String,
}

fn main() {}
