use chrono::{DateTime, Utc};
use polystore::prelude::*;

#[derive(Model)]
#[model(primary_key(id, created_at), partition(range(created), every = "1 month"))]
pub struct Event {
    pub id: i64,
    pub created_at: DateTime<Utc>,
}

fn main() {}
