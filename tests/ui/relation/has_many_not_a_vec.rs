use polystore::prelude::*;

#[derive(Model)]
pub struct User {
    #[model(primary_key)]
    pub id: i64,
    // docs/relations.md: a `has_many` field that is not `Rel<Vec<..>>` is a compile error.
    #[model(has_many(foreign_key = user_id))]
    pub posts: Rel<Post>,
}

#[derive(Model)]
pub struct Post {
    #[model(primary_key)]
    pub id: i64,
    pub user_id: i64,
}

fn main() {}
