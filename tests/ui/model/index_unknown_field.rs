use polystore::prelude::*;

#[derive(Model)]
#[model(index(emial, unique), index(country, created))]
pub struct User {
    #[model(primary_key)]
    pub id: i64,
    pub email: String,
    pub country: String,
    pub created_at: i64,
}

fn main() {}
