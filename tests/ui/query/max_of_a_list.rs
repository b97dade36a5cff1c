use polystore::prelude::*;

#[derive(Model)]
pub struct Post {
    #[model(primary_key)]
    pub id: i64,
    pub tags: Vec<String>,
}

fn main() {
    let _ = Post::query().select(Post::TAGS.max());
}
