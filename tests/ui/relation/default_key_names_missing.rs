use polystore::prelude::*;

#[derive(Model)]
pub struct User {
    #[model(primary_key)]
    pub id: i64,
    // The child's column is `author_id`, not the default `user_id`.
    #[model(has_many)]
    pub posts: Rel<Vec<Post>>,
}

#[derive(Model)]
pub struct Post {
    #[model(primary_key)]
    pub id: i64,
    pub author_id: i64,
    // The join model's columns are `post` and `tag`, not `post_id` and `tag_id`.
    #[model(many_to_many(through = PostTag))]
    pub tags: Rel<Vec<Tag>>,
}

#[derive(Model)]
pub struct Tag {
    #[model(primary_key)]
    pub id: i64,
}

#[derive(Model)]
#[model(primary_key(post, tag))]
pub struct PostTag {
    pub post: i64,
    pub tag: i64,
}

fn main() {}
