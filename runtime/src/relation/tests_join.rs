//! Exact SQL of joins along relations (`LEFT JOIN` per relation path) and of relation
//! aggregates (correlated subqueries), per dialect.

use crate::prelude::*;
use crate::query::count_all;
use crate::sql::{postgres::Postgres, sqlite::Sqlite};
use crate::value::Value;

#[derive(crate::Model, Debug, Clone)]
#[model(table = "artists")]
struct Artist {
    #[model(primary_key, generated)]
    id: i64,
    name: String,
}

#[derive(crate::Model, Debug, Clone)]
#[model(table = "albums")]
struct Album {
    #[model(primary_key, generated)]
    id: i64,
    title: String,
    artist_id: Option<i64>,
    #[model(belongs_to(key = artist_id))]
    artist: Rel<Option<Artist>>,
    #[model(has_many(foreign_key = album_id))]
    tracks: Rel<Vec<Track>>,
}

#[derive(crate::Model, Debug, Clone)]
#[model(table = "tracks")]
struct Track {
    #[model(primary_key, generated)]
    id: i64,
    name: String,
    album_id: i64,
    ms: i32,
    #[model(belongs_to)]
    album: Rel<Album>,
}

#[derive(crate::Model, Debug, Clone)]
#[model(table = "playlists")]
struct Playlist {
    #[model(primary_key, generated)]
    id: i64,
    name: String,
    #[model(many_to_many(through = PlaylistTrack))]
    tracks: Rel<Vec<Track>>,
}

#[derive(crate::Model, Debug, Clone)]
#[model(table = "playlist_tracks", primary_key(playlist_id, track_id))]
struct PlaylistTrack {
    playlist_id: i64,
    track_id: i64,
    #[model(belongs_to)]
    playlist: Rel<Playlist>,
    #[model(belongs_to)]
    track: Rel<Track>,
}

#[test]
fn select_joined_columns_joins_each_relation_path_once_postgres() {
    let artist = Track::ALBUM.then(Album::ARTIST).then(Artist::NAME);
    let q = Track::query()
        .filter(Track::MS.gt(100))
        .select((Track::NAME, Track::ALBUM.then(Album::TITLE), artist.clone(), Track::ALBUM.then(Album::ID)))
        .order_by(artist.desc());
    let stmt = q.statement(&Postgres).unwrap();
    assert_eq!(
        stmt.sql,
        "SELECT \"name\", \"j1\".\"j1_title\", \"j2\".\"j2_name\", \"j1\".\"j1_id\" FROM \"tracks\" \
         LEFT JOIN (SELECT \"id\" AS \"j1_id\", \"title\" AS \"j1_title\", \"artist_id\" AS \"j1_artist_id\" \
         FROM \"albums\") AS \"j1\" ON \"j1\".\"j1_id\" = \"tracks\".\"album_id\" \
         LEFT JOIN (SELECT \"id\" AS \"j2_id\", \"name\" AS \"j2_name\" FROM \"artists\") AS \"j2\" \
         ON \"j2\".\"j2_id\" = \"j1\".\"j1_artist_id\" \
         WHERE \"ms\" > $1 ORDER BY \"j2\".\"j2_name\" DESC NULLS LAST"
    );
}

#[test]
fn group_by_a_joined_column_sqlite() {
    let artist = Track::ALBUM.then(Album::ARTIST).then(Artist::NAME);
    let q = Track::query()
        .select((artist.clone(), count_all::<Track>()))
        .group_by(artist.clone())
        .order_by(count_all::<Track>().desc())
        .order_by(artist.asc());
    let stmt = q.statement(&Sqlite).unwrap();
    assert_eq!(
        stmt.sql,
        "SELECT \"j2\".\"j2_name\", COUNT(*) FROM \"tracks\" \
         LEFT JOIN (SELECT \"id\" AS \"j1_id\", \"artist_id\" AS \"j1_artist_id\" FROM \"albums\") AS \"j1\" \
         ON \"j1\".\"j1_id\" = \"tracks\".\"album_id\" \
         LEFT JOIN (SELECT \"id\" AS \"j2_id\", \"name\" AS \"j2_name\" FROM \"artists\") AS \"j2\" \
         ON \"j2\".\"j2_id\" = \"j1\".\"j1_artist_id\" \
         GROUP BY \"j2\".\"j2_name\" ORDER BY COUNT(*) DESC NULLS LAST, \"j2\".\"j2_name\" ASC NULLS FIRST"
    );
}

#[test]
fn has_many_aggregates_are_correlated_subqueries_postgres() {
    let q = Album::query()
        .select((Album::TITLE, Album::TRACKS.count(), Album::TRACKS.sum(Track::MS)))
        .order_by(Album::TRACKS.sum(Track::MS).desc())
        .order_by(Album::TRACKS.max(Track::MS).asc())
        .limit(3);
    let stmt = q.statement(&Postgres).unwrap();
    assert_eq!(
        stmt.sql,
        "SELECT \"title\", (SELECT COUNT(*) FROM \"tracks\" AS \"r1\" WHERE \"r1\".\"album_id\" = \"albums\".\"id\"), \
         (SELECT CAST(SUM(\"r2\".\"ms\") AS BIGINT) FROM \"tracks\" AS \"r2\" WHERE \"r2\".\"album_id\" = \"albums\".\"id\") \
         FROM \"albums\" ORDER BY 3 DESC NULLS LAST, \
         (SELECT MAX(\"r3\".\"ms\") FROM \"tracks\" AS \"r3\" WHERE \"r3\".\"album_id\" = \"albums\".\"id\") ASC NULLS FIRST \
         LIMIT $1"
    );
}

#[test]
fn many_to_many_count_reads_the_join_table_sqlite() {
    let q = Playlist::query().select((Playlist::NAME, Playlist::TRACKS.count()));
    let stmt = q.statement(&Sqlite).unwrap();
    assert_eq!(
        stmt.sql,
        "SELECT \"name\", (SELECT COUNT(*) FROM \"playlist_tracks\" AS \"r2\" JOIN \"tracks\" AS \"r1\" \
         ON \"r1\".\"id\" = \"r2\".\"track_id\" WHERE \"r2\".\"playlist_id\" = \"playlists\".\"id\") FROM \"playlists\""
    );
}

#[test]
fn same_projection_renders_the_same_text() {
    let q = || Track::query().select((Track::NAME, Track::ALBUM.then(Album::TITLE)));
    assert_eq!(q().statement(&Postgres).unwrap().sql, q().statement(&Postgres).unwrap().sql);
}

#[test]
fn grouped_projection_rejects_relation_aggregates_and_ungrouped_joined_columns() {
    let q = Album::query().group_by(Album::TITLE).select((Album::TITLE, Album::TRACKS.count()));
    let err = q.statement(&Postgres).unwrap_err();
    assert!(err.to_string().contains("relation aggregate"), "{err}");
    let q = Track::query().group_by(Track::MS).select((Track::MS, Track::ALBUM.then(Album::TITLE)));
    let err = q.statement(&Sqlite).unwrap_err();
    assert!(err.to_string().contains("must also be a group key"), "{err}");
}

#[derive(crate::Model, Debug, Clone)]
#[model(table = "employees")]
struct Employee {
    #[model(primary_key)]
    id: i64,
    reports_to: Option<i64>,
    #[model(has_many(foreign_key = reports_to))]
    reports: Rel<Vec<Employee>>,
}

#[test]
fn descendants_are_a_recursive_cte_postgres() {
    use crate::relation::{Direction, TreeLinks};
    let links = TreeLinks { parent: 0, child: 1 };
    let stmt =
        crate::sql::lower::tree::traversal(&Postgres, Employee::SCHEMA, links, Direction::Down, Value::I64(1), 3);
    assert_eq!(
        stmt.sql,
        "WITH RECURSIVE \"tree\"(\"k\", \"depth\") AS (SELECT \"id\", 1 FROM \"employees\" WHERE \"reports_to\" = $1 \
         UNION ALL SELECT \"x\".\"id\", \"tree\".\"depth\" + 1 FROM \"employees\" AS \"x\" JOIN \"tree\" \
         ON \"x\".\"reports_to\" = \"tree\".\"k\" WHERE \"tree\".\"depth\" < $2) \
         SELECT \"employees\".\"id\", \"employees\".\"reports_to\" FROM \"employees\" \
         JOIN (SELECT \"k\", MIN(\"depth\") AS \"depth\" FROM \"tree\" GROUP BY \"k\") AS \"reached\" \
         ON \"employees\".\"id\" = \"reached\".\"k\" ORDER BY \"reached\".\"depth\", \"employees\".\"id\""
    );
    assert_eq!(stmt.params.iter().map(|p| p.value.clone()).collect::<Vec<_>>(), [Value::I64(1), Value::I64(3)]);
}

#[test]
fn ancestors_follow_the_parent_links_sqlite() {
    use crate::relation::{Direction, TreeLinks};
    let links = TreeLinks { parent: 0, child: 1 };
    let stmt = crate::sql::lower::tree::traversal(&Sqlite, Employee::SCHEMA, links, Direction::Up, Value::I64(6), 100);
    assert!(
        stmt.sql.starts_with(
            "WITH RECURSIVE \"tree\"(\"k\", \"depth\") AS (SELECT \"reports_to\", 1 FROM \"employees\" WHERE \"id\" = ?1 \
             UNION ALL SELECT \"x\".\"reports_to\", \"tree\".\"depth\" + 1 FROM \"employees\" AS \"x\" JOIN \"tree\" \
             ON \"x\".\"id\" = \"tree\".\"k\" WHERE \"tree\".\"depth\" < ?2)"
        ),
        "{}",
        stmt.sql
    );
    let _ = Employee::REPORTS.ancestors(6).max_depth(2);
}
