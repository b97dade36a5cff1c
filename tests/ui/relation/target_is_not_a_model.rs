use polystore::prelude::*;

pub struct Author {
    pub id: i64,
}

#[derive(Model)]
pub struct Post {
    #[model(primary_key)]
    pub id: i64,
    pub author_id: i64,
    #[model(belongs_to)]
    pub author: Rel<Author>,
}

fn main() {}
