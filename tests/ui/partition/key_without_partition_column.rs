use chrono::{DateTime, Utc};
use polystore::prelude::*;

// The primary key must include the partition column.
#[derive(Model)]
#[model(partition(range(created_at), every = "1 month"))]
pub struct Event {
    #[model(primary_key)]
    pub id: i64,
    pub created_at: DateTime<Utc>,
}

#[derive(Model)]
#[model(primary_key(id, tenant), partition(list(country)))]
pub struct Customer {
    pub id: i64,
    pub tenant: i64,
    pub country: String,
}

fn main() {}
