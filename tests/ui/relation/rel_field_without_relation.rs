use polystore::prelude::*;

#[derive(Model)]
pub struct User {
    #[model(primary_key)]
    pub id: i64,
}

#[derive(Model)]
pub struct Post {
    #[model(primary_key)]
    pub id: i64,
    pub user_id: i64,
    pub author: Rel<User>,
}

fn main() {}
