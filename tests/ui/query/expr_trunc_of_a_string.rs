use polystore::prelude::*;

#[derive(Model)]
pub struct Line {
    #[model(primary_key)]
    pub id: i64,
    pub name: String,
    pub qty: i32,
}

fn main() {
    let _ = Line::query().group_by(Line::NAME.trunc(TimeUnit::Month));
}
