use polystore::prelude::*;

#[derive(Model)]
#[model(index(nme))]
pub struct Post {
    #[model(primary_key, generated)]
    pub id: i64,
    #[model(generated)]
    pub title: String,
    #[model(created_at, updated_at)]
    pub stamp: chrono::DateTime<chrono::Utc>,
    #[model(default = some_function())]
    pub views: i32,
}

fn main() {}
