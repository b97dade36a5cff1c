use chrono::{DateTime, Utc};
use polystore::prelude::*;

#[derive(Model)]
#[model(primary_key(id, created_at), partition(range(created_at), every = "1 fortnight"))]
pub struct BadEvery {
    pub id: i64,
    pub created_at: DateTime<Utc>,
}

#[derive(Model)]
#[model(primary_key(id, created_at), partition(range(created_at)))]
pub struct NoEvery {
    pub id: i64,
    pub created_at: DateTime<Utc>,
}

#[derive(Model)]
#[model(partition(hash(id, modulus = 1)))]
pub struct OneBucket {
    #[model(primary_key)]
    pub id: i64,
}

#[derive(Model)]
#[model(partition(hash(id)))]
pub struct NoModulus {
    #[model(primary_key)]
    pub id: i64,
}

#[derive(Model)]
#[model(partition(hash(id, modulus = 4), retain = "3 months"))]
pub struct RetainOnHash {
    #[model(primary_key)]
    pub id: i64,
}

#[derive(Model)]
#[model(primary_key(id, created_at), partition(range(created_at), every = "1 day", retain = "soon"))]
pub struct BadRetain {
    pub id: i64,
    pub created_at: DateTime<Utc>,
}

fn main() {}
