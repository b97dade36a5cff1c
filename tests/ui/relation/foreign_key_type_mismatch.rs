use polystore::prelude::*;

#[derive(Model)]
pub struct User {
    #[model(primary_key)]
    pub id: i64,
    #[model(has_many(foreign_key = author_id))]
    pub posts: Rel<Vec<Post>>,
}

#[derive(Model)]
pub struct Post {
    #[model(primary_key)]
    pub id: i64,
    pub author_id: i32,
    #[model(belongs_to(key = author_id))]
    pub author: Rel<User>,
}

fn main() {}
