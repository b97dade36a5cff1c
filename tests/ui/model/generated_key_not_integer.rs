use polystore::prelude::*;

#[derive(Model)]
pub struct Tag {
    #[model(primary_key, generated)]
    pub id: String,
    #[model(created_at)]
    pub created: i64,
}

fn main() {}
