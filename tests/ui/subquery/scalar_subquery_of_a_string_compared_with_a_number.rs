use polystore::prelude::*;

#[derive(Model)]
pub struct Track {
    #[model(primary_key)]
    pub id: i64,
    pub name: String,
    pub milliseconds: i32,
}

fn main() {
    let longest_name = Track::query().select(Track::NAME.max());
    let _ = Track::query().filter(Track::MILLISECONDS.calc().gt(longest_name));
}
