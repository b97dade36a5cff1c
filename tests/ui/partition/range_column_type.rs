use chrono::{DateTime, Utc};
use polystore::prelude::*;

// A time interval needs a time column; an integer block an integer column.
#[derive(Model)]
#[model(primary_key(id, name), partition(range(name), every = "1 month"))]
pub struct ByName {
    pub id: i64,
    pub name: String,
}

#[derive(Model)]
#[model(primary_key(id, created_at), partition(range(created_at), every = 1000))]
pub struct ByBlock {
    pub id: i64,
    pub created_at: DateTime<Utc>,
}

fn main() {}
