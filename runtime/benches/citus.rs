//! Tenant-scoped work on the Citus cluster: polystore through a tenant handle
//! ([`Db::tenant`]) against the same statements hand-written with sqlx (`query_as` +
//! `#[derive(FromRow)]`), in the same run, on two sqlx sides: `sqlx` on a `PgPool` with
//! polystore's pool settings (sqlx's defaults otherwise, so it pings a connection when it is
//! acquired), and `sqlx_conn` on one `PgConnection` (no pool at all: the floor).
//!
//! Shapes: a read by primary key `(tenant_id, id)`, a tenant's rows (10 of them), and a single
//! row insert. Every statement carries the distribution column, so Citus routes each to one
//! shard on one worker. Results and their reading: `docs/performance.md` ("Citus").
//!
//! ```sh
//! scripts/dev-services                 # the coordinator (5440) and two workers (5441, 5442)
//! cargo bench -p polystore --bench citus
//! ```
//!
//! `POLYSTORE_CITUS_URL` overrides `postgres://postgres@127.0.0.1:5440/polystore_test`. The
//! bench creates and drops `bench_citus_orders` (distributed by `tenant_id`).

use std::hint::black_box;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use criterion::{BenchmarkId, Criterion};
use polystore::prelude::*;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::runtime::Runtime;

#[derive(Model, Debug, Clone)]
#[model(table = "bench_citus_orders", distributed_by = tenant_id, primary_key(tenant_id, id))]
struct Order {
    tenant_id: i64,
    id: i64,
    number: String,
    total: i64,
    note: Option<String>,
}

#[derive(sqlx::FromRow, Debug, Clone)]
#[allow(dead_code)] // fields are read by black_box only
struct SqlxOrder {
    tenant_id: i64,
    id: i64,
    number: String,
    total: i64,
    note: Option<String>,
}

const TENANTS: i64 = 50;
const PER_TENANT: i64 = 10;
/// Inserted rows get ids from here up (per tenant), above the seeded ones.
const INSERT_BASE: i64 = 1_000_000;

const SELECT_BY_KEY: &str =
    "SELECT tenant_id, id, number, total, note FROM bench_citus_orders WHERE tenant_id = $1 AND id = $2";
const SELECT_TENANT: &str = "SELECT tenant_id, id, number, total, note FROM bench_citus_orders WHERE tenant_id = $1";
const INSERT: &str = "INSERT INTO bench_citus_orders (tenant_id, id, number, total, note) VALUES ($1, $2, $3, $4, $5) \
                      RETURNING tenant_id, id, number, total, note";

struct Env {
    rt: Runtime,
    db: Db,
    pool: PgPool,
    conn: tokio::sync::Mutex<PgConnection>,
}

fn setup() -> Env {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let url = std::env::var("POLYSTORE_CITUS_URL")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5440/polystore_test".to_owned());
    let (db, pool, conn) = rt.block_on(async {
        let db = Db::connect(&url).await.unwrap_or_else(|e| {
            panic!("the Citus coordinator is not reachable at {url} ({e}): run scripts/dev-services")
        });
        let cfg = polystore::PoolConfig::default();
        let pool = PgPoolOptions::new()
            .max_connections(cfg.max_connections)
            .min_connections(cfg.min_connections)
            .acquire_timeout(cfg.acquire_timeout)
            .connect(&url)
            .await
            .expect("sqlx pool");
        db.drop_all(&[Order::SCHEMA]).await.unwrap();
        db.create_all(&[Order::SCHEMA]).await.unwrap();
        let rows: Vec<Order> = (1..=TENANTS)
            .flat_map(|t| {
                (1..=PER_TENANT).map(move |i| Order {
                    tenant_id: t,
                    id: i,
                    number: format!("{t}-{i}"),
                    total: t * 100 + i,
                    note: (i % 2 == 0).then(|| "gift".to_owned()),
                })
            })
            .collect();
        Order::insert_many(&db, &rows).await.unwrap();
        let conn = PgConnection::connect(&url).await.expect("sqlx connection");
        (db, pool, conn)
    });
    Env { rt, db, pool, conn: tokio::sync::Mutex::new(conn) }
}

fn benches(c: &mut Criterion, env: &Env) {
    let mut g = c.benchmark_group("citus");
    g.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3)).sample_size(20);
    let pick = AtomicI64::new(0);
    let next = || {
        let n = pick.fetch_add(1, Ordering::Relaxed);
        ((n * 7) % TENANTS + 1, n % PER_TENANT + 1)
    };

    g.bench_function(BenchmarkId::new("polystore", "find_by_key"), |b| {
        b.to_async(&env.rt).iter(|| async {
            let (t, id) = next();
            let tenant = env.db.tenant(t);
            black_box(tenant.find::<Order>((t, id)).await.unwrap())
        })
    });
    g.bench_function(BenchmarkId::new("sqlx", "find_by_key"), |b| {
        b.to_async(&env.rt).iter(|| async {
            let (t, id) = next();
            black_box(
                sqlx::query_as::<_, SqlxOrder>(SELECT_BY_KEY).bind(t).bind(id).fetch_one(&env.pool).await.unwrap(),
            )
        })
    });
    g.bench_function(BenchmarkId::new("sqlx_conn", "find_by_key"), |b| {
        b.to_async(&env.rt).iter(|| async {
            let (t, id) = next();
            let mut conn = env.conn.lock().await;
            black_box(
                sqlx::query_as::<_, SqlxOrder>(SELECT_BY_KEY).bind(t).bind(id).fetch_one(&mut *conn).await.unwrap(),
            )
        })
    });

    g.bench_function(BenchmarkId::new("polystore", "tenant_rows_10"), |b| {
        b.to_async(&env.rt).iter(|| async {
            let (t, _) = next();
            let tenant = env.db.tenant(t);
            black_box(tenant.query::<Order>().all(&tenant).await.unwrap())
        })
    });
    g.bench_function(BenchmarkId::new("sqlx", "tenant_rows_10"), |b| {
        b.to_async(&env.rt).iter(|| async {
            let (t, _) = next();
            black_box(sqlx::query_as::<_, SqlxOrder>(SELECT_TENANT).bind(t).fetch_all(&env.pool).await.unwrap())
        })
    });
    g.bench_function(BenchmarkId::new("sqlx_conn", "tenant_rows_10"), |b| {
        b.to_async(&env.rt).iter(|| async {
            let (t, _) = next();
            let mut conn = env.conn.lock().await;
            black_box(sqlx::query_as::<_, SqlxOrder>(SELECT_TENANT).bind(t).fetch_all(&mut *conn).await.unwrap())
        })
    });

    let ids = AtomicI64::new(INSERT_BASE);
    g.bench_function(BenchmarkId::new("polystore", "insert"), |b| {
        b.to_async(&env.rt).iter(|| async {
            let id = ids.fetch_add(1, Ordering::Relaxed);
            let t = id % TENANTS + 1;
            let row = Order { tenant_id: t, id, number: format!("n{id}"), total: id, note: None };
            black_box(env.db.tenant(t).insert(&row).await.unwrap())
        })
    });
    g.bench_function(BenchmarkId::new("sqlx", "insert"), |b| {
        b.to_async(&env.rt).iter(|| async {
            let id = ids.fetch_add(1, Ordering::Relaxed);
            let t = id % TENANTS + 1;
            black_box(sqlx_insert(&env.pool, t, id).await)
        })
    });
    g.bench_function(BenchmarkId::new("sqlx_conn", "insert"), |b| {
        b.to_async(&env.rt).iter(|| async {
            let id = ids.fetch_add(1, Ordering::Relaxed);
            let t = id % TENANTS + 1;
            let mut conn = env.conn.lock().await;
            black_box(sqlx_insert(&mut *conn, t, id).await)
        })
    });
    g.finish();
}

/// The insert hand-written with sqlx, on a pool or a connection.
async fn sqlx_insert<'e>(on: impl sqlx::PgExecutor<'e>, t: i64, id: i64) -> SqlxOrder {
    sqlx::query_as::<_, SqlxOrder>(INSERT)
        .bind(t)
        .bind(id)
        .bind(format!("n{id}"))
        .bind(id)
        .bind(None::<String>)
        .fetch_one(on)
        .await
        .unwrap()
}

fn main() {
    let env = setup();
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c, &env);
    c.final_summary();
    env.rt.block_on(async {
        env.db.drop_all(&[Order::SCHEMA]).await.unwrap();
        env.pool.close().await;
        drop(env.conn.into_inner().close().await);
        env.db.close().await;
    });
}
