use polystore::prelude::*;
use rust_decimal::Decimal;

#[derive(Model)]
pub struct Line {
    #[model(primary_key)]
    pub id: i64,
    pub name: String,
    pub price: Decimal,
    pub qty: i32,
    pub weight: f64,
}

fn main() {
    let _ = Line::query().select(Line::PRICE * Line::NAME);
}
