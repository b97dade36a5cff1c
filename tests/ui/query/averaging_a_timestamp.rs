use chrono::{DateTime, Utc};
use polystore::prelude::*;

#[derive(Model)]
pub struct Order {
    #[model(primary_key)]
    pub id: i64,
    pub placed_at: DateTime<Utc>,
}

fn main() {
    let _ = Order::query().select(Order::PLACED_AT.avg());
}
