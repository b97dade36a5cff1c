use polystore::prelude::*;

#[derive(Model)]
pub struct Doc {
    #[model(primary_key, soft_delete)]
    pub id: i64,
    #[model(created_at, soft_delete)]
    pub created_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Model)]
pub struct Page {
    #[model(primary_key)]
    pub id: i64,
    #[model(soft_delete)]
    pub deleted_at: Option<chrono::DateTime<chrono::Utc>>,
    #[model(soft_delete)]
    pub removed_at: Option<chrono::DateTime<chrono::Utc>>,
}

fn main() {}
