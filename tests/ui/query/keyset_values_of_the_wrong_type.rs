use polystore::prelude::*;
use polystore::query::Desc;

#[derive(Model)]
pub struct Track {
    #[model(primary_key)]
    pub id: i64,
    pub name: String,
    pub plays: i32,
}

fn main() {
    // The key is (i32, i64): a name is not a play count.
    let _ = Track::query().order_by_key((Desc(Track::PLAYS), Track::ID)).after(("Intro", 7_i64));
}
