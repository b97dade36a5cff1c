use polystore::prelude::*;
use polystore::Rel;
use rust_decimal::Decimal;

#[derive(Model)]
pub struct Album {
    #[model(primary_key)]
    pub id: i64,
    pub title: String,
    #[model(has_many(foreign_key = album_id))]
    pub tracks: Rel<Vec<Track>>,
}

#[derive(Model)]
pub struct Track {
    #[model(primary_key)]
    pub id: i64,
    pub name: String,
    pub album_id: i64,
    pub price: Decimal,
    #[model(belongs_to)]
    pub album: Rel<Album>,
}

fn main() {
    // A path from Album cannot be selected from a Track query.
    let _ = Track::query().select(Album::TRACKS.count());
}
