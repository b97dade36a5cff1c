//! polystore against the raw MongoDB driver with serde, in the same run and on the same
//! client.
//!
//! - `find_10000`: read 10 000 documents into typed values — `BenchDoc::query().all(&store)`
//!   (raw cursor → `DocReader` → model) against `collection.find({})` into a
//!   `#[derive(Deserialize)]` struct.
//! - `insert_many_1000`: write 1 000 typed values — `BenchDoc::insert_many` (values → BSON,
//!   returned as stored) against `collection.insert_many` of serde structs.
//!
//! - `in_keys/N`: the shape of a batched relation load, N keys in one `$in` —
//!   `BenchDoc::query().filter(BenchDoc::ID.is_in(1..=N)).all(&store)` against
//!   `collection.find({_id: {$in: [1..N]}})` into serde structs. N is 5 000, or
//!   `POLYSTORE_BENCH_IN_KEYS`; against SecantusDB (the test server of `scripts/dev-services`,
//!   which answers `$in` in time quadratic in the number of keys: ~50 s for 5 000 keys over
//!   10 000 documents) it is 300 unless that variable is set. `POLYSTORE_BENCH_AB=1` runs it
//!   as interleaved rounds instead of criterion (`support/ab.rs`; the third side is the
//!   driver again, a witness of the noise).
//! - `in_filter/5000`: the client-side part of a 5 000-key `$in` without the server: the
//!   filter document built and serialized to BSON, by polystore (what its `find` sends) and by
//!   the driver's `doc!`.
//! - `decode_10000`: the client-side part of `find_10000` alone — 10 000 documents already in
//!   memory decoded by `polystore::mongo::from_document` and by serde.
//!
//! Both sides share ONE `mongodb::Client` (`MongoStore::from_client`). Keys are assigned by the
//! caller on both sides (a `generated` key would add one `findAndModify` on the counters
//! collection per batch).
//!
//! ```sh
//! scripts/dev-services                                          # MongoDB-wire server on 27017
//! cargo bench -p polystore --features mongodb --bench mongo
//! ```
//!
//! `MONGODB_URL` overrides `mongodb://127.0.0.1:27017/?directConnection=true`. The bench uses
//! (and drops) the database `polystore_bench`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone as _, Utc};
use criterion::{Criterion, SamplingMode};
use futures_util::TryStreamExt as _;
use polystore::mongo::MongoStore;
use polystore::mongo::driver::bson::{self, doc};
use polystore::mongo::driver::{Client, Collection};
use polystore::prelude::*;
use serde::{Deserialize, Serialize};
use tokio::runtime::Runtime;

#[path = "support/ab.rs"]
mod ab;

const DEFAULT_URL: &str = "mongodb://127.0.0.1:27017/?directConnection=true";
const READ_DOCS: i64 = 10_000;
const WRITE_DOCS: i64 = 1_000;
const COUNTRIES: [&str; 5] = ["DE", "FR", "UK", "US", "JP"];

/// The benchmarked model.
#[derive(Model, Debug, Clone)]
#[model(table = "bench_docs")]
struct BenchDoc {
    #[model(primary_key)]
    id: i64,
    name: String,
    email: String,
    age: i32,
    country: String,
    nickname: Option<String>,
    score: f64,
    active: bool,
    created_at: DateTime<Utc>,
}

/// The same document for the raw driver (serde).
#[derive(Serialize, Deserialize, Debug, Clone)]
struct RawDoc {
    #[serde(rename = "_id")]
    id: i64,
    name: String,
    email: String,
    age: i32,
    country: String,
    nickname: Option<String>,
    score: f64,
    active: bool,
    created_at: bson::DateTime,
}

fn doc_n(n: i64) -> BenchDoc {
    BenchDoc {
        id: n,
        name: format!("user {n}"),
        email: format!("user{n}@example.com"),
        age: (n % 90) as i32,
        country: COUNTRIES[(n % 5) as usize].to_owned(),
        nickname: if n % 3 == 0 { None } else { Some(format!("nick{n}")) },
        score: n as f64 * 0.5,
        active: n % 2 == 0,
        created_at: Utc.timestamp_opt(1_700_000_000 + n, 0).unwrap(),
    }
}

fn raw_of(d: &BenchDoc) -> RawDoc {
    RawDoc {
        id: d.id,
        name: d.name.clone(),
        email: d.email.clone(),
        age: d.age,
        country: d.country.clone(),
        nickname: d.nickname.clone(),
        score: d.score,
        active: d.active,
        created_at: bson::DateTime::from_millis(d.created_at.timestamp_millis()),
    }
}

struct Env {
    rt: Runtime,
    store: MongoStore,
    raw_read: Collection<RawDoc>,
    raw_write: Collection<RawDoc>,
    /// Keys of the `$in` scenarios (see the module docs).
    in_keys: i64,
}

/// Keys of the `$in` scenarios: the shape of a 5 000-parent batch load, unless the server is
/// SecantusDB (see the module docs) or `POLYSTORE_BENCH_IN_KEYS` says otherwise.
async fn in_keys(client: &Client) -> i64 {
    if let Some(n) = std::env::var("POLYSTORE_BENCH_IN_KEYS").ok().and_then(|v| v.parse().ok()) {
        return n;
    }
    let info = client.database("admin").run_command(doc! { "buildInfo": 1 }).await.expect("buildInfo");
    if info.contains_key("secantusVersion") {
        eprintln!(
            "mongo bench: the server is SecantusDB, whose `$in` takes time quadratic in the keys \
             (~50 s for 5 000 keys); the `$in` scenarios use 300 keys (POLYSTORE_BENCH_IN_KEYS overrides)"
        );
        300
    } else {
        5_000
    }
}

fn setup() -> Env {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let url = std::env::var("MONGODB_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
    let (store, raw_read, raw_write, in_keys) = rt.block_on(async {
        let client = Client::with_uri_str(&url).await.expect("a MongoDB URL");
        let store = MongoStore::from_client(client.clone(), "polystore_bench");
        store.ping().await.unwrap_or_else(|e| panic!("MongoDB at {url}: {e}; run scripts/dev-services"));
        store.database().drop().await.expect("drop the bench database");
        store.create_all(&[BenchDoc::SCHEMA]).await.expect("create");
        let docs: Vec<BenchDoc> = (1..=READ_DOCS).map(doc_n).collect();
        for chunk in docs.chunks(1_000) {
            BenchDoc::insert_many(&store, chunk).await.expect("seed");
        }
        let read = client.database("polystore_bench").collection::<RawDoc>("bench_docs");
        // The raw side writes into the same collection as polystore (same validator and
        // indexes), emptied before every timed insert.
        let write = client.database("polystore_bench_w").collection::<RawDoc>("bench_docs");
        (store, read, write, in_keys(&client).await)
    });
    Env { rt, store, raw_read, raw_write, in_keys }
}

async fn ps_find(env: &Env) -> usize {
    let rows = BenchDoc::query().all(&env.store).await.expect("find");
    black_box(rows).len()
}

async fn raw_find(env: &Env) -> usize {
    let cursor = env.raw_read.find(doc! {}).await.expect("find");
    let rows: Vec<RawDoc> = cursor.try_collect().await.expect("decode");
    black_box(rows).len()
}

async fn ps_in(env: &Env) -> usize {
    let rows = BenchDoc::query().filter(BenchDoc::ID.is_in(1..=env.in_keys)).all(&env.store).await.expect("find $in");
    assert_eq!(rows.len() as i64, env.in_keys);
    black_box(rows).len()
}

async fn raw_in(env: &Env) -> usize {
    let keys: Vec<i64> = (1..=env.in_keys).collect();
    let cursor = env.raw_read.find(doc! { "_id": { "$in": keys } }).await.expect("find $in");
    let rows: Vec<RawDoc> = cursor.try_collect().await.expect("decode");
    assert_eq!(rows.len() as i64, env.in_keys);
    black_box(rows).len()
}

fn in_keys_group(c: &mut Criterion, env: &Env) {
    let mut g = c.benchmark_group("in_keys");
    g.sampling_mode(SamplingMode::Flat).sample_size(10).measurement_time(Duration::from_secs(20));
    g.bench_function(format!("polystore/{}", env.in_keys), |b| b.to_async(&env.rt).iter(|| ps_in(env)));
    g.bench_function(format!("driver_serde/{}", env.in_keys), |b| b.to_async(&env.rt).iter(|| raw_in(env)));
    g.finish();
}

/// The filter of a 5 000-key `$in`, built and serialized as the command sends it: polystore's
/// lowering of `is_in` against the driver's `doc!`. No server.
fn in_filter_5000(c: &mut Criterion) {
    let mut g = c.benchmark_group("in_filter");
    g.bench_function("polystore/5000", |b| {
        b.iter(|| {
            let q = BenchDoc::query().filter(BenchDoc::ID.is_in(1..=5_000i64));
            let filter = polystore::mongo::filter_document(black_box(&q)).expect("filter");
            black_box(bson::to_vec(&filter).expect("bytes"))
        })
    });
    g.bench_function("driver/5000", |b| {
        b.iter(|| {
            let keys: Vec<i64> = (1..=black_box(5_000i64)).collect();
            let filter = doc! { "_id": { "$in": keys } };
            black_box(bson::to_vec(&filter).expect("bytes"))
        })
    });
    g.finish();
}

/// `in_keys` as interleaved rounds: polystore, the driver, the driver again.
fn in_keys_ab(env: &Env) {
    let o = env.rt.block_on(ab::interleave(
        11,
        3,
        || async {},
        move || async move {
            black_box(ps_in(env).await);
        },
        move || async move {
            black_box(raw_in(env).await);
        },
        move || async move {
            black_box(raw_in(env).await);
        },
    ));
    println!(
        "in_keys/{} wall ms: polystore {:.2}  driver {:.2}  driver again {:.2} | polystore/driver {:.3}  driver/driver {:.3} \
         | CPU ms: polystore {:.2}  driver {:.2}",
        env.in_keys,
        o.wall[0] / 1e3,
        o.wall[1] / 1e3,
        o.wall[2] / 1e3,
        o.ratio[0],
        o.ratio[1],
        o.cpu[0] / 1e3,
        o.cpu[1] / 1e3,
    );
}

/// The server (a Python process on the same 2 cores) drifts during a run, so every timed
/// iteration of one side is paired with an untimed one of the other: both sides see the same
/// sequence of server work.
fn find_10000(c: &mut Criterion, env: &Env) {
    let mut g = c.benchmark_group("find_10000");
    g.sampling_mode(SamplingMode::Flat).sample_size(10).measurement_time(Duration::from_secs(40));
    for (name, pick) in [("polystore", 0), ("driver_serde", 1)] {
        g.bench_function(name, |b| {
            b.to_async(&env.rt).iter_custom(|iters| async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    assert_eq!(ps_find(env).await as i64, READ_DOCS);
                    let ps = start.elapsed();
                    let start = Instant::now();
                    assert_eq!(raw_find(env).await as i64, READ_DOCS);
                    total += if pick == 0 { ps } else { start.elapsed() };
                }
                total
            })
        });
    }
    g.finish();
}

/// One insert of the batch by each side, each into an emptied collection; returns the time of
/// polystore's and of the driver's insert.
async fn insert_pair(env: &Env, store_w: &MongoStore, docs: &[BenchDoc], raws: &[RawDoc]) -> (Duration, Duration) {
    BenchDoc::query().delete_many(store_w).await.expect("empty");
    let start = Instant::now();
    black_box(BenchDoc::insert_many(store_w, docs).await.expect("insert"));
    let ps = start.elapsed();
    env.raw_write.delete_many(doc! {}).await.expect("empty");
    let start = Instant::now();
    black_box(env.raw_write.insert_many(raws).await.expect("insert"));
    (ps, start.elapsed())
}

/// Times the inserts only; the collection is emptied before each, untimed. Every iteration
/// runs both sides (see [`find_10000`]) and keeps one side's time.
fn insert_many_1000(c: &mut Criterion, env: &Env) {
    let docs: Vec<BenchDoc> = (1..=WRITE_DOCS).map(doc_n).collect();
    let raws: Vec<RawDoc> = docs.iter().map(raw_of).collect();
    let mut g = c.benchmark_group("insert_many_1000");
    g.sampling_mode(SamplingMode::Flat).sample_size(10).measurement_time(Duration::from_secs(30));
    let store_w = MongoStore::from_client(env.store.client().clone(), "polystore_bench_w");
    env.rt.block_on(async {
        store_w.database().drop().await.expect("drop");
        store_w.create_all(&[BenchDoc::SCHEMA]).await.expect("create");
    });
    for (name, pick) in [("polystore", 0), ("driver_serde", 1)] {
        g.bench_function(name, |b| {
            let (store_w, docs, raws) = (&store_w, &docs, &raws);
            b.to_async(&env.rt).iter_custom(|iters| async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (ps, raw) = insert_pair(env, store_w, docs, raws).await;
                    total += if pick == 0 { ps } else { raw };
                }
                total
            })
        });
    }
    g.finish();
    env.rt.block_on(async { store_w.database().drop().await.expect("drop") });
}

/// Client-side decoding only, from documents already in memory: what the server's time hides.
fn decode_10000(c: &mut Criterion, env: &Env) {
    let raw: Vec<bson::RawDocumentBuf> = env.rt.block_on(async {
        let coll = env.raw_read.clone_with_type::<bson::RawDocumentBuf>();
        coll.find(doc! {}).await.expect("find").try_collect().await.expect("read")
    });
    let mut g = c.benchmark_group("decode_10000");
    g.bench_function("polystore", |b| {
        b.iter(|| {
            let rows: Vec<BenchDoc> = raw.iter().map(|d| polystore::mongo::from_document(d).expect("decode")).collect();
            black_box(rows)
        })
    });
    g.bench_function("driver_serde", |b| {
        b.iter(|| {
            let rows: Vec<RawDoc> = raw.iter().map(|d| bson::from_slice(d.as_bytes()).expect("decode")).collect();
            black_box(rows)
        })
    });
    g.finish();
}

/// Client-side encoding only: 1 000 rows to BSON bytes, by polystore (what `insert_many`
/// sends) and by serde.
fn encode_1000(c: &mut Criterion) {
    let docs: Vec<BenchDoc> = (1..=WRITE_DOCS).map(doc_n).collect();
    let raws: Vec<RawDoc> = docs.iter().map(raw_of).collect();
    let mut g = c.benchmark_group("encode_1000");
    g.bench_function("polystore", |b| {
        b.iter(|| {
            let out: Vec<bson::RawDocumentBuf> =
                docs.iter().map(|d| polystore::mongo::to_raw_document(d).expect("encode")).collect();
            black_box(out)
        })
    });
    g.bench_function("driver_serde", |b| {
        b.iter(|| {
            let out: Vec<bson::RawDocumentBuf> =
                raws.iter().map(|r| bson::to_raw_document_buf(r).expect("encode")).collect();
            black_box(out)
        })
    });
    g.finish();
}

fn main() {
    let env = setup();
    if std::env::var_os("POLYSTORE_BENCH_AB").is_some() {
        in_keys_ab(&env);
        env.rt.block_on(async { env.store.database().drop().await.expect("drop the bench database") });
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    in_keys_group(&mut c, &env);
    in_filter_5000(&mut c);
    decode_10000(&mut c, &env);
    encode_1000(&mut c);
    find_10000(&mut c, &env);
    insert_many_1000(&mut c, &env);
    c.final_summary();
    env.rt.block_on(async { env.store.database().drop().await.expect("drop the bench database") });
}
