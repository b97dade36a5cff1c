//! polystore against raw sqlx on PostgreSQL, in the same run and on the same pool.
//!
//! Each scenario runs twice: through polystore (typed query → rendered statement → bind
//! through `Value` → positional decode) and through sqlx `query_as` + `#[derive(FromRow)]`
//! with hand-written SQL of the same shape. Both sides share ONE `PgPool`
//! (`Db::from_pg_pool(pool.clone())`), so connection handling and the prepared-statement cache
//! are identical.
//!
//! ```sh
//! scripts/dev-services                       # PostgreSQL on 127.0.0.1:5432
//! cargo bench -p polystore --bench sql       # everything (about 3 minutes)
//! cargo bench -p polystore --bench sql -- fetch_rows   # one group
//! ```
//!
//! `DATABASE_URL` overrides the default `postgres://postgres:postgres@127.0.0.1:5432/polystore_test`.
//! The bench creates and drops its own tables, `bench_users` and `bench_users_w`.

use std::hint::black_box;
use std::time::Duration;

use chrono::{DateTime, TimeZone as _, Utc};
use criterion::{BenchmarkId, Criterion, SamplingMode};
use polystore::prelude::*;
use polystore::sql::postgres::Postgres;
use polystore::sql::{build, lower};
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, QueryBuilder};
use tokio::runtime::Runtime;

const DEFAULT_URL: &str = "postgres://postgres:postgres@127.0.0.1:5432/polystore_test";
/// Rows seeded into the read table.
const SEED_ROWS: usize = 10_000;
const COUNTRIES: [&str; 5] = ["DE", "FR", "UK", "US", "JP"];

/// The read table: seeded once, never written by the benches.
#[derive(Model, Debug, Clone)]
#[model(table = "bench_users")]
#[model(index(country, created_at))]
struct BenchUser {
    #[model(primary_key, generated)]
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

/// The write table: the same columns, emptied before every sample of the insert benches.
#[derive(Model, Debug, Clone)]
#[model(table = "bench_users_w")]
#[model(index(country, created_at))]
struct BenchUserW {
    #[model(primary_key, generated)]
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

/// The raw-sqlx side: the same columns, decoded by `FromRow` (by column name).
#[derive(sqlx::FromRow, Debug, Clone)]
#[allow(dead_code)] // fields are read by black_box only
struct SqlxUser {
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

const COLUMNS: &str = "id, name, email, age, country, nickname, score, active, created_at";
const INSERT_COLUMNS: &str = "name, email, age, country, nickname, score, active, created_at";

fn base_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().expect("a valid date")
}

fn user(i: usize) -> BenchUser {
    BenchUser {
        id: 0,
        name: format!("user {i}"),
        email: format!("user{i}@example.com"),
        age: 18 + (i % 60) as i32,
        country: COUNTRIES[i % COUNTRIES.len()].to_owned(),
        nickname: (i % 3 == 0).then(|| format!("nick{i}")),
        score: i as f64 * 0.5,
        active: i % 2 == 0,
        created_at: base_time() - chrono::Duration::seconds(i as i64),
    }
}

fn user_w(i: usize) -> BenchUserW {
    let u = user(i);
    BenchUserW {
        id: 0,
        name: u.name,
        email: u.email,
        age: u.age,
        country: u.country,
        nickname: u.nickname,
        score: u.score,
        active: u.active,
        created_at: u.created_at,
    }
}

/// Everything the scenarios share.
struct Env {
    rt: Runtime,
    pool: PgPool,
    db: Db,
    /// The cursor after the first page of the pagination scenario, and the sort keys of the
    /// row it points at (for the raw side).
    page_cursor: Cursor,
    page_after: (DateTime<Utc>, i64),
}

const PAGE_SIZE: u64 = 20;
const PAGE_COUNTRY: &str = "FR";

fn setup() -> Env {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a runtime");
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
    let (pool, db, page_cursor, page_after) = rt.block_on(async {
        // polystore's pool defaults (PoolConfig::default()), used by both sides.
        let cfg = polystore::PoolConfig::default();
        let pool = PgPoolOptions::new()
            .max_connections(cfg.max_connections)
            .min_connections(cfg.min_connections)
            .acquire_timeout(Duration::from_secs(5))
            .idle_timeout(cfg.idle_timeout)
            .max_lifetime(cfg.max_lifetime)
            .test_before_acquire(cfg.test_before_acquire)
            .connect(&url)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "the benchmarks need PostgreSQL, which is unreachable at {url}: {e}\n\
                     start it with `scripts/dev-services` (or point DATABASE_URL at a server)"
                )
            });
        let db = Db::from_pg_pool(pool.clone());
        db.drop_all(&[BenchUser::SCHEMA, BenchUserW::SCHEMA]).await.expect("drop the bench tables");
        db.create_all(&[BenchUser::SCHEMA, BenchUserW::SCHEMA]).await.expect("create the bench tables");
        let rows: Vec<BenchUser> = (0..SEED_ROWS).map(user).collect();
        BenchUser::insert_many(&db, &rows).await.expect("seed the read table");
        sqlx::query("ANALYZE bench_users").execute(&pool).await.expect("analyze");
        let first = page_query().paginate(&db, PageRequest::first(PAGE_SIZE)).await.expect("the first page");
        let last = first.items.last().expect("a full first page");
        (pool, db, first.next.expect("a second page"), (last.created_at, last.id))
    });
    Env { rt, pool, db, page_cursor, page_after }
}

fn teardown(env: &Env) {
    env.rt.block_on(async {
        env.db.drop_all(&[BenchUser::SCHEMA, BenchUserW::SCHEMA]).await.expect("drop the bench tables");
        env.pool.close().await;
    });
}

/// Short runs: the whole file stays within a few minutes on 2 cores.
fn quick<'a>(c: &'a mut Criterion, name: &str) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    g.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3)).sample_size(30);
    g
}

/// SELECT every column of the first `n` rows by id.
fn fetch_rows(c: &mut Criterion, env: &Env) {
    let mut g = quick(c, "fetch_rows");
    for n in [1u64, 100, 10_000] {
        if n == 10_000 {
            g.sampling_mode(SamplingMode::Flat).sample_size(20).measurement_time(Duration::from_secs(5));
        }
        g.bench_with_input(BenchmarkId::new("polystore", n), &n, |b, &n| {
            b.to_async(&env.rt).iter(|| async move {
                let rows = BenchUser::query().order_by(BenchUser::ID.asc()).limit(n).all(&env.db).await.unwrap();
                assert_eq!(rows.len() as u64, n);
                black_box(rows)
            })
        });
        g.bench_with_input(BenchmarkId::new("sqlx", n), &n, |b, &n| {
            b.to_async(&env.rt).iter(|| async move {
                let rows: Vec<SqlxUser> =
                    sqlx::query_as("SELECT id, name, email, age, country, nickname, score, active, created_at FROM bench_users ORDER BY id ASC LIMIT $1")
                        .bind(n as i64)
                        .fetch_all(&env.pool)
                        .await
                        .unwrap();
                assert_eq!(rows.len() as u64, n);
                black_box(rows)
            })
        });
    }
    g.finish();
}

/// One row by primary key.
fn find_by_key(c: &mut Criterion, env: &Env) {
    let mut g = quick(c, "find_by_key");
    g.bench_function("polystore", |b| {
        b.to_async(&env.rt).iter(|| async { black_box(BenchUser::find(&env.db, black_box(4242)).await.unwrap()) })
    });
    g.bench_function("sqlx", |b| {
        b.to_async(&env.rt).iter(|| async {
            let row: SqlxUser = sqlx::query_as(
                "SELECT id, name, email, age, country, nickname, score, active, created_at FROM bench_users WHERE id = $1",
            )
            .bind(black_box(4242i64))
            .fetch_one(&env.pool)
            .await
            .unwrap();
            black_box(row)
        })
    });
    g.finish();
}

/// `WHERE age >= $1 AND country = $2 ORDER BY id LIMIT 100`.
fn filtered(c: &mut Criterion, env: &Env) {
    let mut g = quick(c, "filtered_100");
    g.bench_function("polystore", |b| {
        b.to_async(&env.rt).iter(|| async {
            let rows = BenchUser::query()
                .filter(BenchUser::AGE.ge(30).and(BenchUser::COUNTRY.eq("DE")))
                .order_by(BenchUser::ID.asc())
                .limit(100)
                .all(&env.db)
                .await
                .unwrap();
            assert_eq!(rows.len(), 100);
            black_box(rows)
        })
    });
    g.bench_function("sqlx", |b| {
        b.to_async(&env.rt).iter(|| async {
            let rows: Vec<SqlxUser> = sqlx::query_as(
                "SELECT id, name, email, age, country, nickname, score, active, created_at FROM bench_users \
                 WHERE (age >= $1 AND country = $2) ORDER BY id ASC LIMIT $3",
            )
            .bind(30i32)
            .bind("DE")
            .bind(100i64)
            .fetch_all(&env.pool)
            .await
            .unwrap();
            assert_eq!(rows.len(), 100);
            black_box(rows)
        })
    });
    g.finish();
}

fn page_query() -> Query<BenchUser> {
    BenchUser::query().filter(BenchUser::COUNTRY.eq(PAGE_COUNTRY)).order_by(BenchUser::CREATED_AT.desc())
}

/// The second page (20 rows) of `country = 'FR' ORDER BY created_at DESC, id`, by keyset.
fn paginate(c: &mut Criterion, env: &Env) {
    let mut g = quick(c, "keyset_page");
    g.bench_function("polystore", |b| {
        b.to_async(&env.rt).iter(|| async {
            let page = page_query().paginate(&env.db, PageRequest::after(env.page_cursor.clone(), PAGE_SIZE)).await;
            let page = page.unwrap();
            assert_eq!(page.items.len() as u64, PAGE_SIZE);
            assert!(page.next.is_some());
            black_box(page)
        })
    });
    // The same statement by hand, plus a next-page cursor made from the last row's sort keys.
    g.bench_function("sqlx", |b| {
        b.to_async(&env.rt).iter(|| async {
            let (at, id) = env.page_after;
            let mut rows: Vec<SqlxUser> = sqlx::query_as(
                "SELECT id, name, email, age, country, nickname, score, active, created_at FROM bench_users \
                 WHERE (country = $1 AND (created_at < $2 OR (created_at = $3 AND id > $4))) \
                 ORDER BY created_at DESC, id ASC LIMIT $5",
            )
            .bind(PAGE_COUNTRY)
            .bind(at)
            .bind(at)
            .bind(id)
            .bind(PAGE_SIZE as i64 + 1)
            .fetch_all(&env.pool)
            .await
            .unwrap();
            let more = rows.len() as u64 > PAGE_SIZE;
            rows.truncate(PAGE_SIZE as usize);
            let next = more.then(|| rows.last().map(|r| format!("{}|{}", r.created_at.to_rfc3339(), r.id))).flatten();
            assert_eq!(rows.len() as u64, PAGE_SIZE);
            assert!(next.is_some());
            black_box((rows, next))
        })
    });
    g.finish();
}

fn truncate_writes(env: &Env) {
    env.rt.block_on(async {
        sqlx::query("TRUNCATE bench_users_w").execute(&env.pool).await.expect("truncate");
    });
}

/// INSERT ... RETURNING one row, decoded back.
fn insert_one(c: &mut Criterion, env: &Env) {
    let mut g = quick(c, "insert_1");
    let row = user_w(7);
    g.bench_function("polystore", |b| {
        truncate_writes(env);
        b.to_async(&env.rt).iter(|| async { black_box(row.insert(&env.db).await.unwrap()) })
    });
    g.bench_function("sqlx", |b| {
        truncate_writes(env);
        b.to_async(&env.rt).iter(|| async {
            let stored: SqlxUser = sqlx::query_as(
                "INSERT INTO bench_users_w (name, email, age, country, nickname, score, active, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 RETURNING id, name, email, age, country, nickname, score, active, created_at",
            )
            .bind(&row.name)
            .bind(&row.email)
            .bind(row.age)
            .bind(&row.country)
            .bind(&row.nickname)
            .bind(row.score)
            .bind(row.active)
            .bind(row.created_at)
            .fetch_one(&env.pool)
            .await
            .unwrap();
            black_box(stored)
        })
    });
    g.finish();
}

/// 100 rows in one multi-row INSERT ... RETURNING, decoded back.
fn insert_many(c: &mut Criterion, env: &Env) {
    let mut g = quick(c, "insert_100");
    let rows: Vec<BenchUserW> = (0..100).map(user_w).collect();
    let rows = &rows;
    g.bench_function("polystore", |b| {
        truncate_writes(env);
        b.to_async(&env.rt).iter(|| async {
            let stored = BenchUserW::insert_many(&env.db, rows).await.unwrap();
            assert_eq!(stored.len(), 100);
            black_box(stored)
        })
    });
    // sqlx's own bulk-insert helper: QueryBuilder::push_values, the same statement shape.
    g.bench_function("sqlx", |b| {
        truncate_writes(env);
        b.to_async(&env.rt).iter(|| async {
            let mut qb: QueryBuilder<sqlx::Postgres> = QueryBuilder::new("INSERT INTO bench_users_w (");
            qb.push(INSERT_COLUMNS).push(") ");
            qb.push_values(rows, |mut t, r| {
                t.push_bind(&r.name)
                    .push_bind(&r.email)
                    .push_bind(r.age)
                    .push_bind(&r.country)
                    .push_bind(&r.nickname)
                    .push_bind(r.score)
                    .push_bind(r.active)
                    .push_bind(r.created_at);
            });
            qb.push(" RETURNING ").push(COLUMNS);
            let stored: Vec<SqlxUser> = qb.build_query_as().fetch_all(&env.pool).await.unwrap();
            assert_eq!(stored.len(), 100);
            black_box(stored)
        })
    });
    g.finish();
}

/// Building and rendering statements, no I/O. polystore renders text and collects `Value`
/// parameters; sqlx's `QueryBuilder` (the reference) writes text and encodes the arguments.
fn build_render(c: &mut Criterion, _env: &Env) {
    let mut g = quick(c, "build_render");
    g.bench_function("polystore/filtered", |b| {
        b.iter(|| {
            let q = BenchUser::query()
                .filter(BenchUser::AGE.ge(black_box(30)).and(BenchUser::COUNTRY.eq(black_box("DE"))))
                .order_by(BenchUser::ID.asc())
                .limit(100);
            black_box(lower::select(&Postgres, BenchUser::SCHEMA, &q).unwrap())
        })
    });
    g.bench_function("sqlx_query_builder/filtered", |b| {
        b.iter(|| {
            let mut qb: QueryBuilder<sqlx::Postgres> = QueryBuilder::new("SELECT ");
            qb.push(COLUMNS).push(" FROM bench_users WHERE (age >= ");
            qb.push_bind(black_box(30i32)).push(" AND country = ").push_bind(black_box("DE"));
            qb.push(") ORDER BY id ASC LIMIT ").push_bind(100i64);
            black_box(qb.into_sql())
        })
    });
    g.bench_function("polystore/find_by_key", |b| {
        b.iter(|| {
            black_box(build::find_by_key(&Postgres, BenchUser::SCHEMA, vec![polystore::Value::I64(black_box(42))]))
        })
    });
    let rows: Vec<BenchUser> = (0..100).map(user).collect();
    g.bench_function("polystore/insert_100", |b| {
        b.iter(|| {
            let values: Vec<Vec<polystore::Value>> = rows.iter().map(|r| r.to_values().unwrap()).collect();
            black_box(build::insert(&Postgres, BenchUser::SCHEMA, values))
        })
    });
    g.finish();
}

fn main() {
    let env = setup();
    let mut c = Criterion::default().configure_from_args();
    fetch_rows(&mut c, &env);
    find_by_key(&mut c, &env);
    filtered(&mut c, &env);
    paginate(&mut c, &env);
    insert_one(&mut c, &env);
    insert_many(&mut c, &env);
    build_render(&mut c, &env);
    teardown(&env);
    c.final_summary();
}
