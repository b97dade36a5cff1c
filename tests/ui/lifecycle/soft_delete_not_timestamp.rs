use polystore::prelude::*;

#[derive(Model)]
pub struct Doc {
    #[model(primary_key)]
    pub id: i64,
    #[model(soft_delete)]
    pub deleted: bool,
}

#[derive(Model)]
pub struct Note {
    #[model(primary_key)]
    pub id: i64,
    #[model(soft_delete)]
    pub deleted_at: chrono::DateTime<chrono::Utc>,
}

fn main() {}
