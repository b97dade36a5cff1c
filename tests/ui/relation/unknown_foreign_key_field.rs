use polystore::prelude::*;

#[derive(Model)]
pub struct User {
    #[model(primary_key)]
    pub id: i64,
    #[model(has_many(foreign_key = writer_id))]
    pub posts: Rel<Vec<Post>>,
}

#[derive(Model)]
pub struct Post {
    #[model(primary_key)]
    pub id: i64,
    pub author_id: i64,
    #[model(belongs_to(key = autor_id))]
    pub author: Rel<User>,
    #[model(has_many)]
    pub comments: Rel<Post>,
}

fn main() {}
