use polystore::prelude::*;

#[derive(Model)]
pub struct User {
    pub id: i64,
    pub email: String,
}

fn main() {}
