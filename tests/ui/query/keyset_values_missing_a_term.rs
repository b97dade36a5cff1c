use polystore::prelude::*;

#[derive(Model)]
pub struct Track {
    #[model(primary_key)]
    pub id: i64,
    pub name: String,
}

fn main() {
    // The key has two terms; one value is not enough.
    let _ = Track::query().order_by_key((Track::NAME, Track::ID)).after("Intro");
}
