//! What the cache buys: a read-through hit (Redis, in-process) against PostgreSQL
//! find-by-id (polystore uncached, and raw sqlx — the baseline of the target "a Redis hit
//! costs ≤ 0.4× an uncached by-id read"; raw redis-rs `GET` of the entry is the floor), and one `MGET` of 100 entries against 100 single reads; and what it costs
//! when Redis is down (`degraded`): a cached read and a write with the circuit breaker open,
//! against the same read and write without a cache. The degraded group starts a private
//! `redis-server` on port 7140, connects, and kills it.
//!
//! ```sh
//! scripts/dev-services                                            # PostgreSQL and Redis
//! cargo bench -p polystore --features redis --bench cache         # about a minute
//! POLYSTORE_BENCH_AB=1 cargo bench -p polystore --features redis --bench cache   # interleaved ratios
//! ```
//!
//! The interleaved mode (`support/ab.rs`) runs the by-id sides in alternating batches and
//! prints the median per-round ratios of a Redis hit to raw sqlx on **one `PgConnection`**
//! (issue #20's reference), to raw sqlx through a `PgPool` (which pings a connection when it
//! comes back) and to polystore's uncached read, plus the raw `GET`'s; once with the rounds on
//! the bench's own thread and once inside a spawned task, where a server's handlers run.
//! `bench/floor/run` measures the same two reads with the servers' own C clients (the floor).
//!
//! `DATABASE_URL` and `REDIS_URL` override the defaults (`postgres://postgres:postgres@127.0.0.1:5432/polystore_test`,
//! `redis://127.0.0.1:6379/`). The bench creates and drops its own table, `bench_cache_users`,
//! and deletes its Redis keys (namespace `psbench`) when done.

use std::hint::black_box;
use std::time::Duration;

use criterion::Criterion;
use polystore::cache::{Cache, RedisBackend};
use polystore::prelude::*;
use polystore::redis::RedisStore;
use tokio::runtime::Runtime;

#[path = "support/ab.rs"]
mod ab;

const DEFAULT_DATABASE_URL: &str = "postgres://postgres:postgres@127.0.0.1:5432/polystore_test";
const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379/";
const ROWS: i64 = 1_000;

/// A typical row: a handful of scalar columns.
#[derive(Model, Debug, Clone)]
#[model(table = "bench_cache_users", cache(ttl = "10m"))]
struct BenchUser {
    #[model(primary_key, generated)]
    id: i64,
    email: String,
    name: String,
    age: i32,
    country: String,
    score: f64,
    bio: Option<String>,
}

/// The same row for the raw sqlx baseline.
#[derive(sqlx::FromRow, Debug)]
#[allow(dead_code)]
struct RawUser {
    id: i64,
    email: String,
    name: String,
    age: i32,
    country: String,
    score: f64,
    bio: Option<String>,
}

struct Env {
    rt: Runtime,
    pg: Db,
    sqlx: sqlx::PgPool,
    /// Raw sqlx on one connection: no pool, no return-to-pool ping (the reference of #20).
    conn: tokio::sync::Mutex<sqlx::PgConnection>,
    store: RedisStore,
    redis: Db,
    memory: Db,
    ids: Vec<i64>,
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty()).unwrap_or_else(|| default.to_owned())
}

fn setup() -> Env {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let (pg, sqlx, conn, store, redis, memory, ids) = rt.block_on(async {
        let url = env_or("DATABASE_URL", DEFAULT_DATABASE_URL);
        let pg = Db::connect(&url).await.unwrap_or_else(|e| panic!("{url}: {e} (run scripts/dev-services)"));
        pg.drop_all(&[BenchUser::SCHEMA]).await.expect("drop");
        pg.create_all(&[BenchUser::SCHEMA]).await.expect("create");
        let rows: Vec<BenchUser> = (0..ROWS)
            .map(|i| BenchUser {
                id: 0,
                email: format!("user{i}@example.com"),
                name: format!("User {i}"),
                age: (i % 90) as i32,
                country: "NZ".into(),
                score: i as f64 / 3.0,
                bio: (i % 2 == 0).then(|| "likes benchmarks".into()),
            })
            .collect();
        let ids = BenchUser::insert_many(&pg, &rows).await.expect("seed").into_iter().map(|u| u.id).collect();
        let redis_url = env_or("REDIS_URL", DEFAULT_REDIS_URL);
        let store = RedisStore::connect(&redis_url)
            .await
            .unwrap_or_else(|e| panic!("{redis_url}: {e} (run scripts/dev-services)"));
        let redis = pg.with_cache(Cache::builder(RedisBackend::new(&store)).namespace("psbench").build());
        let memory = pg.with_cache(Cache::memory());
        let sqlx = sqlx::postgres::PgPoolOptions::new().max_connections(4).connect(&url).await.expect("sqlx pool");
        let conn = <sqlx::PgConnection as sqlx::Connection>::connect(&url).await.expect("sqlx connection");
        (pg, sqlx, tokio::sync::Mutex::new(conn), store, redis, memory, ids)
    });
    Env { rt, pg, sqlx, conn, store, redis, memory, ids }
}

const BY_ID: &str = "SELECT id, email, name, age, country, score, bio FROM bench_cache_users WHERE id = $1";

/// Raw sqlx by id through its pool.
async fn sqlx_pool_by_id(env: &Env, id: i64) -> Option<RawUser> {
    sqlx::query_as::<_, RawUser>(BY_ID).bind(id).fetch_optional(&env.sqlx).await.expect("by id")
}

/// Raw sqlx by id on one connection.
async fn sqlx_conn_by_id(env: &Env, id: i64) -> Option<RawUser> {
    let mut conn = env.conn.lock().await;
    sqlx::query_as::<_, RawUser>(BY_ID).bind(id).fetch_optional(&mut *conn).await.expect("by id")
}

/// One GET of the entry's bytes with redis-rs, no decoding: the driver's share of a hit.
async fn raw_get(env: &Env, key: &str) -> Option<Vec<u8>> {
    let mut conn = env.store.connection();
    polystore::redis::driver::cmd("GET").arg(key).query_async(&mut conn).await.expect("GET")
}

fn warm(env: &Env, id: i64) {
    env.rt.block_on(async {
        BenchUser::get_cached(&env.redis, id).await.expect("warm redis");
        BenchUser::get_cached(&env.memory, id).await.expect("warm memory");
    });
}

fn hit_vs_postgres(c: &mut Criterion, env: &Env) {
    let id = env.ids[42];
    warm(env, id);
    let mut g = c.benchmark_group("find_by_id");
    // The baselines of the target (a Redis hit ≤ 0.4× these): sqlx by id, uncached.
    g.bench_function("sqlx_raw", |b| b.to_async(&env.rt).iter(|| async { black_box(sqlx_pool_by_id(env, id).await) }));
    g.bench_function("sqlx_conn", |b| b.to_async(&env.rt).iter(|| async { black_box(sqlx_conn_by_id(env, id).await) }));
    g.bench_function("postgres", |b| {
        b.to_async(&env.rt).iter(|| async { black_box(BenchUser::get(&env.pg, id).await) })
    });
    g.bench_function("redis_hit", |b| {
        b.to_async(&env.rt).iter(|| async { black_box(BenchUser::get_cached(&env.redis, id).await) })
    });
    // The driver's share of a hit: one GET of the same entry's bytes with redis-rs, no decoding.
    let cache = env.redis.cache().expect("a cache").clone();
    let key = cache.keys().entry(BenchUser::SCHEMA, &[polystore::Value::I64(id)]);
    g.bench_function("redis_raw_get", |b| b.to_async(&env.rt).iter(|| async { black_box(raw_get(env, &key).await) }));
    g.bench_function("memory_hit", |b| {
        b.to_async(&env.rt).iter(|| async { black_box(BenchUser::get_cached(&env.memory, id).await) })
    });
    g.finish();
}

/// Where the interleaved rounds run: on the bench's own thread (`Runtime::block_on`, as
/// criterion's `to_async` does), or in a task on the runtime's workers, as a server's request
/// handler does. The two differ for redis-rs: its multiplexed connection hands every command to
/// a driver task, which is one more wake-up across threads when the caller is not on a worker.
#[derive(Clone, Copy, Debug)]
enum Placement {
    BenchThread,
    Task,
}

/// `find_by_id` as interleaved rounds (see the module docs), on the bench thread and in a
/// spawned task; prints the figures of each.
fn hit_ab(env: &'static Env) {
    let id = env.ids[42];
    warm(env, id);
    for placement in [Placement::BenchThread, Placement::Task] {
        let rounds = async move { hit_rounds(env, id).await };
        let (conn, pool) = match placement {
            Placement::BenchThread => env.rt.block_on(rounds),
            Placement::Task => env.rt.block_on(env.rt.spawn(rounds)).expect("the rounds' task"),
        };
        println!("{placement:?}:");
        println!(
            "find_by_id µs: redis hit {:.1} | sqlx one connection {:.1} | polystore uncached {:.1} | sqlx pool {:.1} | raw GET {:.1}",
            conn.wall[0], conn.wall[1], conn.wall[2], pool.wall[1], pool.wall[2]
        );
        println!(
            "ratios (median per round): hit/sqlx_conn {:.3}  polystore_uncached/sqlx_conn {:.3}  hit/sqlx_pool {:.3}  raw_get/sqlx_pool {:.3}  hit/polystore_uncached {:.3}",
            conn.ratio[0],
            conn.ratio[1],
            pool.ratio[0],
            pool.ratio[1],
            conn.wall[0] / conn.wall[2],
        );
        println!(
            "client CPU µs: redis hit {:.1} | sqlx one connection {:.1} | polystore uncached {:.1}",
            conn.cpu[0], conn.cpu[1], conn.cpu[2]
        );
    }
}

/// The two interleaved comparisons of [`hit_ab`]: the hit against sqlx on one connection and
/// polystore uncached, then against sqlx's pool and the raw `GET`.
async fn hit_rounds(env: &'static Env, id: i64) -> (ab::Outcome, ab::Outcome) {
    // Plain closures returning `async move` blocks (not async closures), so that the rounds'
    // future is `Send` and can run in a spawned task.
    let cache = env.redis.cache().expect("a cache").clone();
    let key: &'static str =
        Box::leak(cache.keys().entry(BenchUser::SCHEMA, &[polystore::Value::I64(id)]).into_boxed_str());
    let hit = move || async move {
        black_box(BenchUser::get_cached(&env.redis, id).await.expect("hit"));
    };
    let conn = ab::interleave(
        31,
        500,
        || async {},
        hit,
        move || async move {
            black_box(sqlx_conn_by_id(env, id).await);
        },
        move || async move {
            black_box(BenchUser::get(&env.pg, id).await.expect("get"));
        },
    )
    .await;
    let pool = ab::interleave(
        31,
        500,
        || async {},
        hit,
        move || async move {
            black_box(sqlx_pool_by_id(env, id).await);
        },
        move || async move {
            black_box(raw_get(env, key).await);
        },
    )
    .await;
    (conn, pool)
}

fn mget_vs_gets(c: &mut Criterion, env: &Env) {
    let ids: Vec<i64> = env.ids[..100].to_vec();
    env.rt.block_on(async { BenchUser::get_many_cached(&env.redis, ids.clone()).await.expect("warm") });
    let mut g = c.benchmark_group("redis_100_rows");
    g.bench_function("one_mget", |b| {
        b.to_async(&env.rt).iter(|| async { black_box(BenchUser::get_many_cached(&env.redis, ids.clone()).await) })
    });
    g.bench_function("100_gets", |b| {
        b.to_async(&env.rt).iter(|| async {
            for &id in &ids {
                black_box(BenchUser::get_cached(&env.redis, id).await.expect("get"));
            }
        })
    });
    g.bench_function("postgres_in_list", |b| {
        b.to_async(&env.rt).iter(|| async {
            black_box(BenchUser::query().filter(BenchUser::ID.is_in(ids.clone())).all(&env.pg).await)
        })
    });
    g.finish();
}

/// Redis killed under a connected cache: reads and writes with the breaker open, against the
/// same operations on a handle without a cache.
fn degraded(c: &mut Criterion, env: &Env) {
    let port = "7140";
    let mut server = std::process::Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server (apt-get install redis-server)");
    let down = env.rt.block_on(async {
        let url = format!("redis://127.0.0.1:{port}/");
        let mut store = None;
        for _ in 0..100 {
            if let Ok(s) = RedisStore::connect(&url).await {
                store = Some(s);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let store = store.expect("private redis-server answers");
        env.pg.with_cache(Cache::builder(RedisBackend::new(&store)).namespace("psbench-down").build())
    });
    let _ = server.kill();
    let _ = server.wait();
    let id = env.ids[7];
    env.rt.block_on(async {
        // The first operation meets the outage and opens the breaker.
        let _ = BenchUser::get_cached(&down, id).await;
    });
    let row = env.rt.block_on(BenchUser::get(&env.pg, id)).expect("row").expect("exists");
    let mut g = c.benchmark_group("degraded");
    g.bench_function("postgres_find", |b| {
        b.to_async(&env.rt).iter(|| async { black_box(BenchUser::get(&env.pg, id).await) })
    });
    g.bench_function("cached_find_redis_down", |b| {
        b.to_async(&env.rt).iter(|| async { black_box(BenchUser::get_cached(&down, id).await) })
    });
    g.bench_function("postgres_update", |b| {
        b.to_async(&env.rt).iter(|| async { black_box(row.update(&env.pg).await) })
    });
    g.bench_function("cached_update_redis_down", |b| {
        b.to_async(&env.rt).iter(|| async { black_box(row.update(&down).await) })
    });
    g.finish();
}

fn cleanup(env: &Env) {
    env.rt.block_on(async {
        env.pg.drop_all(&[BenchUser::SCHEMA]).await.expect("drop");
        let keys: Vec<Vec<polystore::Value>> = env.ids.iter().map(|&id| vec![polystore::Value::I64(id)]).collect();
        if let Some(cache) = env.redis.cache() {
            for key in keys {
                let _ = cache.evict(BenchUser::SCHEMA, &key).await;
            }
        }
    });
}

fn main() {
    // Leaked: the interleaved rounds also run in a spawned task, which needs `'static`.
    let env: &'static Env = Box::leak(Box::new(setup()));
    if std::env::var_os("POLYSTORE_BENCH_AB").is_some() {
        hit_ab(env);
        cleanup(env);
        return;
    }
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    hit_vs_postgres(&mut c, env);
    mget_vs_gets(&mut c, env);
    degraded(&mut c, env);
    c.final_summary();
    cleanup(env);
}
