//! A join projection against hand-written sqlx on PostgreSQL, in the same run and on the same
//! pool: track name, album title and artist name for 10 000 tracks.
//!
//! | side | statement |
//! |---|---|
//! | polystore | `Track::query().select((Track::NAME, Track::ALBUM.then(Album::TITLE), Track::ALBUM.then(Album::ARTIST).then(Artist::NAME))).all` |
//! | sqlx | `SELECT t.name, al.title, ar.name FROM tracks t JOIN albums al ON … LEFT JOIN artists ar ON …`, `query_as` into a tuple |
//!
//! Data: 1 000 artists, 2 000 albums (every tenth without an artist, so the artist's name is
//! optional), 10 000 tracks. Rounds are interleaved (the order rotating) and the ratio is taken
//! within each round; the median of [`ROUNDS`] rounds is printed.
//!
//! ```sh
//! scripts/dev-services
//! cargo bench -p polystore --bench joins
//! ```
//!
//! `DATABASE_URL` overrides the default `postgres://postgres:postgres@127.0.0.1:5432/polystore_test`.
//! The bench creates and drops `bench_join_artists`, `bench_join_albums` and `bench_join_tracks`.

use std::hint::black_box;
use std::time::Instant;

use polystore::prelude::*;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio::runtime::Runtime;

const DEFAULT_URL: &str = "postgres://postgres:postgres@127.0.0.1:5432/polystore_test";
/// Connections in the shared pool.
const POOL: u32 = 4;
/// Runs of each side before measuring (past PostgreSQL's fifth execution on every connection).
const PRIME: usize = 8 * POOL as usize;
/// Interleaved measuring rounds.
const ROUNDS: usize = 11;
/// Runs of each side per round.
const ITERS: u32 = 10;
const TRACKS: i64 = 10_000;

#[derive(Model, Debug, Clone)]
#[model(table = "bench_join_artists")]
struct Artist {
    #[model(primary_key, generated)]
    id: i64,
    name: String,
}

#[derive(Model, Debug, Clone)]
#[model(table = "bench_join_albums")]
struct Album {
    #[model(primary_key, generated)]
    id: i64,
    title: String,
    artist_id: Option<i64>,
    #[model(belongs_to(key = artist_id))]
    artist: Rel<Option<Artist>>,
}

#[derive(Model, Debug, Clone)]
#[model(table = "bench_join_tracks")]
struct Track {
    #[model(primary_key, generated)]
    id: i64,
    name: String,
    album_id: i64,
    #[model(belongs_to)]
    album: Rel<Album>,
}

type Row = (String, String, Option<String>);

async fn polystore(db: &Db) -> Vec<Row> {
    let q = Track::query().select((
        Track::NAME,
        Track::ALBUM.then(Album::TITLE),
        Track::ALBUM.then(Album::ARTIST).then(Artist::NAME),
    ));
    black_box(q.all(db).await.expect("join projection"))
}

async fn sqlx_side(pool: &PgPool) -> Vec<Row> {
    let sql = "SELECT t.name, al.title, ar.name FROM bench_join_tracks t \
               JOIN bench_join_albums al ON al.id = t.album_id \
               LEFT JOIN bench_join_artists ar ON ar.id = al.artist_id";
    black_box(sqlx::query_as(sql).fetch_all(pool).await.expect("sqlx join"))
}

async fn setup(db: &Db) {
    let schemas = [Artist::SCHEMA, Album::SCHEMA, Track::SCHEMA];
    db.drop_all(&schemas).await.expect("drop");
    db.create_all(&schemas).await.expect("create");
    let artists: Vec<Artist> = (0..1_000).map(|i| Artist { id: 0, name: format!("artist {i}") }).collect();
    Artist::insert_many(db, &artists).await.expect("artists");
    let albums: Vec<Album> = (0..2_000_i64)
        .map(|i| Album {
            id: 0,
            title: format!("album {i}"),
            artist_id: (i % 10 != 0).then_some(i % 1_000 + 1),
            artist: Rel::NotLoaded,
        })
        .collect();
    Album::insert_many(db, &albums).await.expect("albums");
    let tracks: Vec<Track> = (0..TRACKS)
        .map(|i| Track { id: 0, name: format!("track {i}"), album_id: i % 2_000 + 1, album: Rel::NotLoaded })
        .collect();
    Track::insert_many(db, &tracks).await.expect("tracks");
    for table in ["bench_join_artists", "bench_join_albums", "bench_join_tracks"] {
        let sql = format!("ANALYZE {table}");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(db.pg_pool().expect("a PostgreSQL handle"))
            .await
            .expect("analyze");
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

fn main() {
    let rt = Runtime::new().expect("a tokio runtime");
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
    let pool = rt
        .block_on(PgPoolOptions::new().max_connections(POOL).test_before_acquire(false).connect(&url))
        .unwrap_or_else(|e| panic!("PostgreSQL is not reachable at {url}: {e}\nstart it with scripts/dev-services"));
    let db = Db::from_pg_pool(pool.clone());
    rt.block_on(setup(&db));
    let (mut ps, mut raw, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    rt.block_on(async {
        let (a, b) = (polystore(&db).await, sqlx_side(&pool).await);
        assert_eq!(a.len(), TRACKS as usize);
        let (mut a, mut b) = (a, b);
        a.sort();
        b.sort();
        assert_eq!(a, b, "both sides read the same rows");
        for _ in 0..PRIME {
            polystore(&db).await;
            sqlx_side(&pool).await;
        }
        for round in 0..ROUNDS {
            let mut t = [0.0; 2];
            for k in 0..2 {
                let side = (round + k) % 2;
                let t0 = Instant::now();
                for _ in 0..ITERS {
                    if side == 0 {
                        polystore(&db).await;
                    } else {
                        sqlx_side(&pool).await;
                    }
                }
                t[side] = t0.elapsed().as_secs_f64() * 1e3 / f64::from(ITERS);
            }
            ps.push(t[0]);
            raw.push(t[1]);
            ratio.push(t[0] / t[1]);
        }
    });
    println!(
        "join_projection/10000  polystore {:>7.2} ms  sqlx {:>7.2} ms   polystore/sqlx {:.3}",
        median(&mut ps),
        median(&mut raw),
        median(&mut ratio)
    );
    // The handle holds pooled connections, which must be returned inside the runtime.
    rt.block_on(async move {
        db.drop_all(&[Artist::SCHEMA, Album::SCHEMA, Track::SCHEMA]).await.expect("drop");
        drop(db);
        drop(pool);
    });
}
