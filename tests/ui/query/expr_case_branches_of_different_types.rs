use polystore::prelude::*;

#[derive(Model)]
pub struct Line {
    #[model(primary_key)]
    pub id: i64,
    pub name: String,
    pub qty: i32,
}

fn main() {
    let _ = Line::query().select(case_when(Line::QTY.gt(10), "many").otherwise(Line::QTY));
}
