use chrono::{DateTime, Utc};
use polystore::prelude::*;

// Every unique index must include the partition column; plain indexes need not.
#[derive(Model)]
#[model(
    primary_key(id, created_at),
    index(email, unique),
    index(kind),
    index(kind, created_at, unique),
    partition(range(created_at), every = "1 month")
)]
pub struct Event {
    pub id: i64,
    pub created_at: DateTime<Utc>,
    #[model(unique)]
    pub slug: String,
    pub email: String,
    pub kind: String,
}

fn main() {}
