//! polystore against raw sqlx on PostgreSQL, in the same run.
//!
//! Each scenario runs three ways: through polystore on its own default pool
//! (`Db::connect`: typed query → rendered statement → bound arguments → positional decode),
//! and through sqlx `query_as` + `#[derive(FromRow)]` with hand-written SQL of the same shape,
//! once on ONE `PgConnection` (the reference: no pool at all) and once through a `PgPool` with
//! polystore's pool settings. Method, results and their reading: `docs/performance.md`.
//!
//! ```sh
//! scripts/dev-services                       # PostgreSQL on 127.0.0.1:5432
//! cargo bench -p polystore --bench sql       # everything (about 3 minutes)
//! cargo bench -p polystore --bench sql -- fetch_rows   # one group
//! POLYSTORE_BENCH_AB=1 cargo bench -p polystore --bench sql   # interleaved ratios (see `main`)
//! ```
//!
//! `DATABASE_URL` overrides the default `postgres://postgres:postgres@127.0.0.1:5432/polystore_test`.
//! The bench creates and drops its own tables, `bench_users` and `bench_users_w`.

use std::hint::black_box;
use std::time::Duration;

use chrono::{DateTime, TimeZone as _, Utc};
use criterion::{BenchmarkId, Criterion, SamplingMode};
use polystore::RowReader;
use polystore::prelude::*;
use polystore::sql::postgres::Postgres;
use polystore::sql::{build, lower};
use sqlx::FromRow as _;
use sqlx::postgres::{PgPoolOptions, PgRow};
use sqlx::{Connection as _, PgConnection, PgExecutor, PgPool, QueryBuilder};
use tokio::runtime::Runtime;

#[path = "support/ab.rs"]
mod ab;

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
        nickname: i.is_multiple_of(3).then(|| format!("nick{i}")),
        score: i as f64 * 0.5,
        active: i.is_multiple_of(2),
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
    /// raw sqlx through a pool (polystore's pool settings).
    pool: PgPool,
    /// raw sqlx on one connection: the reference of every ratio.
    conn: tokio::sync::Mutex<PgConnection>,
    /// polystore on its own pool, opened with `PoolConfig::default()`.
    db: Db,
    /// The cursor after the first page of the pagination scenario, and the sort keys of the
    /// row it points at (for the raw side).
    page_cursor: Cursor,
    page_after: (DateTime<Utc>, i64),
    /// The 10 000 seeded rows as sqlx returned them, for the decode-only scenario.
    rows: Vec<PgRow>,
}

const PAGE_SIZE: u64 = 20;
const PAGE_COUNTRY: &str = "FR";

fn setup() -> Env {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a runtime");
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
    let (pool, conn, db, page_cursor, page_after, rows) = rt.block_on(async {
        // polystore's pool defaults (PoolConfig::default()) for the raw pool as well.
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
        let conn = PgConnection::connect(&url).await.expect("a connection");
        let db = Db::connect_with(&url, polystore::PoolConfig::default()).await.expect("polystore's pool");
        db.drop_all(&[BenchUser::SCHEMA, BenchUserW::SCHEMA]).await.expect("drop the bench tables");
        db.create_all(&[BenchUser::SCHEMA, BenchUserW::SCHEMA]).await.expect("create the bench tables");
        let rows: Vec<BenchUser> = (0..SEED_ROWS).map(user).collect();
        BenchUser::insert_many(&db, &rows).await.expect("seed the read table");
        sqlx::query("ANALYZE bench_users").execute(&pool).await.expect("analyze");
        let first = page_query().paginate(&db, PageRequest::first(PAGE_SIZE)).await.expect("the first page");
        let last = first.items.last().expect("a full first page");
        let after = (last.created_at, last.id);
        let rows = sqlx::query(SELECT_BY_ID).bind(SEED_ROWS as i64).fetch_all(&pool).await.expect("the seeded rows");
        (pool, conn, db, first.next.expect("a second page"), after, rows)
    });
    Env { rt, pool, conn: tokio::sync::Mutex::new(conn), db, page_cursor, page_after, rows }
}

fn teardown(env: &Env) {
    env.rt.block_on(async {
        env.db.drop_all(&[BenchUser::SCHEMA, BenchUserW::SCHEMA]).await.expect("drop the bench tables");
        env.db.close().await;
        env.pool.close().await;
    });
}

// ---------------------------------------------------------------- the two sides of each scenario

const SELECT_ALL: &str = "SELECT id, name, email, age, country, nickname, score, active, created_at FROM bench_users";
const SELECT_BY_ID: &str = "SELECT id, name, email, age, country, nickname, score, active, created_at FROM bench_users ORDER BY id ASC LIMIT $1";

/// polystore: the first `n` rows by id.
async fn ps_fetch(env: &Env, n: u64) -> Vec<BenchUser> {
    let rows = BenchUser::query().order_by(BenchUser::ID.asc()).limit(n).all(&env.db).await.unwrap();
    assert_eq!(rows.len() as u64, n);
    rows
}

/// sqlx: the first `n` rows by id.
async fn sx_fetch<'c>(ex: impl PgExecutor<'c>, n: u64) -> Vec<SqlxUser> {
    let rows: Vec<SqlxUser> = sqlx::query_as(SELECT_BY_ID).bind(n as i64).fetch_all(ex).await.unwrap();
    assert_eq!(rows.len() as u64, n);
    rows
}

const KEY: i64 = 4242;

async fn ps_find(env: &Env) -> BenchUser {
    BenchUser::find(&env.db, black_box(KEY)).await.unwrap()
}

async fn sx_find<'c>(ex: impl PgExecutor<'c>) -> SqlxUser {
    sqlx::query_as(
        "SELECT id, name, email, age, country, nickname, score, active, created_at FROM bench_users WHERE id = $1",
    )
    .bind(black_box(KEY))
    .fetch_one(ex)
    .await
    .unwrap()
}

/// polystore: `WHERE age >= 30 AND country = 'DE' ORDER BY id LIMIT 100`.
async fn ps_filtered(env: &Env) -> Vec<BenchUser> {
    let rows = BenchUser::query()
        .filter(BenchUser::AGE.ge(30).and(BenchUser::COUNTRY.eq("DE")))
        .order_by(BenchUser::ID.asc())
        .limit(100)
        .all(&env.db)
        .await
        .unwrap();
    assert_eq!(rows.len(), 100);
    rows
}

async fn sx_filtered<'c>(ex: impl PgExecutor<'c>) -> Vec<SqlxUser> {
    let rows: Vec<SqlxUser> = sqlx::query_as(
        "SELECT id, name, email, age, country, nickname, score, active, created_at FROM bench_users \
         WHERE (age >= $1 AND country = $2) ORDER BY id ASC LIMIT $3",
    )
    .bind(30i32)
    .bind("DE")
    .bind(100i64)
    .fetch_all(ex)
    .await
    .unwrap();
    assert_eq!(rows.len(), 100);
    rows
}

fn page_query() -> Query<BenchUser> {
    BenchUser::query().filter(BenchUser::COUNTRY.eq(PAGE_COUNTRY)).order_by(BenchUser::CREATED_AT.desc())
}

/// polystore: the second page of `country = 'FR' ORDER BY created_at DESC` (plus the key).
async fn ps_page(env: &Env) -> Page<BenchUser> {
    let page = page_query().paginate(&env.db, PageRequest::after(env.page_cursor.clone(), PAGE_SIZE)).await.unwrap();
    assert_eq!(page.items.len() as u64, PAGE_SIZE);
    assert!(page.next.is_some());
    page
}

/// sqlx: the same statement by hand, plus a next-page cursor made from the last row's keys.
async fn sx_page<'c>(ex: impl PgExecutor<'c>, after: (DateTime<Utc>, i64)) -> (Vec<SqlxUser>, Option<String>) {
    let (at, id) = after;
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
    .fetch_all(ex)
    .await
    .unwrap();
    let more = rows.len() as u64 > PAGE_SIZE;
    rows.truncate(PAGE_SIZE as usize);
    let next = more.then(|| rows.last().map(|r| format!("{}|{}", r.created_at.to_rfc3339(), r.id))).flatten();
    assert_eq!(rows.len() as u64, PAGE_SIZE);
    assert!(next.is_some());
    (rows, next)
}

async fn ps_insert_one(env: &Env, row: &BenchUserW) -> BenchUserW {
    row.insert(&env.db).await.unwrap()
}

async fn sx_insert_one<'c>(ex: impl PgExecutor<'c>, row: &BenchUserW) -> SqlxUser {
    sqlx::query_as(
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
    .fetch_one(ex)
    .await
    .unwrap()
}

async fn ps_insert_many(env: &Env, rows: &[BenchUserW]) -> Vec<BenchUserW> {
    let stored = BenchUserW::insert_many(&env.db, rows).await.unwrap();
    assert_eq!(stored.len(), rows.len());
    stored
}

/// sqlx's own bulk-insert helper, `QueryBuilder::push_values`: the same statement shape.
async fn sx_insert_many<'c>(ex: impl PgExecutor<'c>, rows: &[BenchUserW]) -> Vec<SqlxUser> {
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
    let stored: Vec<SqlxUser> = qb.build_query_as().fetch_all(ex).await.unwrap();
    assert_eq!(stored.len(), rows.len());
    stored
}

async fn truncate_writes(env: &Env) {
    sqlx::query("TRUNCATE bench_users_w").execute(&env.pool).await.expect("truncate");
}

/// Reads a model from a PostgreSQL row by position, exactly as polystore's execution point
/// does (`FieldType::read_pg`: the standard scalar types straight from the row, others through
/// `sql::postgres::read` and `FieldType::from_value`).
struct PgReader<'r> {
    row: &'r PgRow,
}

impl RowReader for PgReader<'_> {
    #[inline]
    fn read<T: FieldType>(&mut self, field: usize) -> polystore::Result<T> {
        T::read_pg(self.row, field).map_err(|source| polystore::Error::Decode {
            model: BenchUser::SCHEMA.name,
            field: BenchUser::SCHEMA.fields[field].name,
            source,
        })
    }
}

/// polystore: decode rows already received (no I/O), by position.
#[inline(never)]
fn ps_decode(rows: &[PgRow]) -> Vec<BenchUser> {
    rows.iter().map(|row| BenchUser::from_reader(&mut PgReader { row }).unwrap()).collect()
}

/// sqlx: decode rows already received (no I/O), `FromRow` by column name.
#[inline(never)]
fn sx_decode(rows: &[PgRow]) -> Vec<SqlxUser> {
    rows.iter().map(|row| SqlxUser::from_row(row).unwrap()).collect()
}

// ---------------------------------------------------------------- criterion

/// Short runs: the whole file stays within a few minutes on 2 cores.
fn quick<'a>(c: &'a mut Criterion, name: &str) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    g.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3)).sample_size(30);
    g
}

/// Registers the `polystore`, `sqlx_conn` (one connection) and `sqlx_pool` variants of one
/// I/O scenario in group `g`; `$x` is the sqlx executor.
macro_rules! pair {
    ($g:expr, $env:expr, $id:expr, |$e:ident| $ps:expr, |$x:ident| $sx:expr) => {{
        let env: &Env = $env;
        $g.bench_function(BenchmarkId::new("polystore", $id), |b| {
            b.to_async(&env.rt).iter(|| async {
                let $e = env;
                black_box($ps.await)
            })
        });
        $g.bench_function(BenchmarkId::new("sqlx_conn", $id), |b| {
            b.to_async(&env.rt).iter(|| async {
                let mut guard = env.conn.lock().await;
                let $x = &mut *guard;
                black_box($sx.await)
            })
        });
        $g.bench_function(BenchmarkId::new("sqlx_pool", $id), |b| {
            b.to_async(&env.rt).iter(|| async {
                let $x = &env.pool;
                black_box($sx.await)
            })
        });
    }};
}

fn criterion_benches(c: &mut Criterion, env: &Env) {
    let mut g = quick(c, "fetch_rows");
    for n in [1u64, 100] {
        pair!(g, env, n, |e| ps_fetch(e, n), |x| sx_fetch(x, n));
    }
    g.sampling_mode(SamplingMode::Flat).sample_size(20).measurement_time(Duration::from_secs(5));
    pair!(g, env, 10_000, |e| ps_fetch(e, 10_000), |x| sx_fetch(x, 10_000));
    g.finish();

    let mut g = quick(c, "find_by_key");
    pair!(g, env, "1", |e| ps_find(e), |x| sx_find(x));
    g.finish();

    let mut g = quick(c, "filtered");
    pair!(g, env, "100", |e| ps_filtered(e), |x| sx_filtered(x));
    g.finish();

    let mut g = quick(c, "keyset_page");
    pair!(g, env, "20", |e| ps_page(e), |x| sx_page(x, env.page_after));
    g.finish();

    // Inserts go to the write table, emptied before each sample (outside the timing).
    let one = user_w(7);
    let hundred: Vec<BenchUserW> = (0..100).map(user_w).collect();
    let mut g = quick(c, "insert");
    env.rt.block_on(truncate_writes(env));
    pair!(g, env, 1, |e| ps_insert_one(e, &one), |x| sx_insert_one(x, &one));
    env.rt.block_on(truncate_writes(env));
    pair!(g, env, 100, |e| ps_insert_many(e, &hundred), |x| sx_insert_many(x, &hundred));
    g.finish();

    let mut g = quick(c, "decode_only");
    g.bench_function(BenchmarkId::new("polystore", SEED_ROWS), |b| b.iter(|| black_box(ps_decode(&env.rows))));
    g.bench_function(BenchmarkId::new("sqlx", SEED_ROWS), |b| b.iter(|| black_box(sx_decode(&env.rows))));
    g.finish();

    build_render(c);
}

/// Building and rendering statements, no I/O. polystore renders text and collects `Value`
/// parameters; sqlx's `QueryBuilder` (the reference) writes text and encodes the arguments.
fn build_render(c: &mut Criterion) {
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
            let mut qb: QueryBuilder<sqlx::Postgres> = QueryBuilder::new(SELECT_ALL);
            qb.push(" WHERE (age >= ").push_bind(black_box(30i32)).push(" AND country = ").push_bind(black_box("DE"));
            qb.push(") ORDER BY id ASC LIMIT ").push_bind(100i64);
            black_box(qb.into_sql())
        })
    });
    g.bench_function("polystore/find_by_key", |b| {
        b.iter(|| {
            black_box(build::find_by_key(&Postgres, BenchUser::SCHEMA, vec![polystore::Value::I64(black_box(KEY))]))
        })
    });
    // What `insert_many` builds: the rows' values borrowed, the text kept per shape.
    let rows: Vec<BenchUser> = (0..100).map(user).collect();
    let now = base_time();
    g.bench_function("polystore/insert_100", |b| {
        b.iter(|| {
            let mut values = build::InsertValues::new(BenchUser::SCHEMA, false, rows.len());
            for r in &rows {
                values.push_row(|out| r.values_ref(out), now, None).unwrap();
            }
            black_box(build::insert_rows(&Postgres, values))
        })
    });
    g.finish();
}

// ---------------------------------------------------------------- interleaved A/B mode

/// One interleaved comparison (see `support::ab`): polystore through its own default pool,
/// raw sqlx on one connection (the reference), raw sqlx through a pool.
fn ab<A: AsyncFn(), B: AsyncFn(), C: AsyncFn()>(env: &Env, name: &str, iters: u32, reset: bool, a: A, b: B, c: C) {
    const ROUNDS: usize = 15;
    let only = std::env::var("POLYSTORE_BENCH_AB").unwrap_or_default();
    if !matches!(only.as_str(), "" | "1" | "all") && !name.contains(&only) {
        return;
    }
    let reset = move || async move {
        if reset {
            truncate_writes(env).await;
        }
    };
    let o = env.rt.block_on(ab::interleave(ROUNDS, iters, reset, || a(), || b(), || c()));
    println!(
        "{name:<17} wall µs: polystore {:>8.1}  sqlx conn {:>8.1}  sqlx pool {:>8.1}  | polystore/conn {:.3}  pool/conn {:.3} \
         | CPU µs: polystore {:>8.1}  conn {:>8.1}  pool {:>8.1}  polystore/conn {:.3}",
        o.wall[0],
        o.wall[1],
        o.wall[2],
        o.ratio[0],
        o.ratio[1],
        o.cpu[0],
        o.cpu[1],
        o.cpu[2],
        o.cpu[0] / o.cpu[1],
    );
}

/// Runs a raw-sqlx scenario on the bench's single connection.
macro_rules! on_conn {
    ($env:expr, |$c:ident| $body:expr) => {{
        let mut guard = $env.conn.lock().await;
        let $c = &mut *guard;
        $body.await
    }};
}

fn ab_mode(env: &Env) {
    ab(
        env,
        "decode_only/10000",
        10,
        false,
        async || drop(black_box(ps_decode(&env.rows))),
        async || drop(black_box(sx_decode(&env.rows))),
        async || drop(black_box(sx_decode(&env.rows))),
    );
    let one = user_w(7);
    let hundred: Vec<BenchUserW> = (0..100).map(user_w).collect();
    for (n, iters) in [(1u64, 400), (100, 200), (10_000, 10)] {
        ab(
            env,
            &format!("fetch_rows/{n}"),
            iters,
            false,
            async || drop(black_box(ps_fetch(env, n).await)),
            async || drop(black_box(on_conn!(env, |c| sx_fetch(c, n)))),
            async || drop(black_box(sx_fetch(&env.pool, n).await)),
        );
    }
    ab(
        env,
        "find_by_key",
        400,
        false,
        async || drop(black_box(ps_find(env).await)),
        async || drop(black_box(on_conn!(env, |c| sx_find(c)))),
        async || drop(black_box(sx_find(&env.pool).await)),
    );
    ab(
        env,
        "filtered/100",
        200,
        false,
        async || drop(black_box(ps_filtered(env).await)),
        async || drop(black_box(on_conn!(env, |c| sx_filtered(c)))),
        async || drop(black_box(sx_filtered(&env.pool).await)),
    );
    ab(
        env,
        "keyset_page/20",
        300,
        false,
        async || drop(black_box(ps_page(env).await)),
        async || drop(black_box(on_conn!(env, |c| sx_page(c, env.page_after)))),
        async || drop(black_box(sx_page(&env.pool, env.page_after).await)),
    );
    ab(
        env,
        "insert/1",
        300,
        true,
        async || drop(black_box(ps_insert_one(env, &one).await)),
        async || drop(black_box(on_conn!(env, |c| sx_insert_one(c, &one)))),
        async || drop(black_box(sx_insert_one(&env.pool, &one).await)),
    );
    ab(
        env,
        "insert/100",
        60,
        true,
        async || drop(black_box(ps_insert_many(env, &hundred).await)),
        async || drop(black_box(on_conn!(env, |c| sx_insert_many(c, &hundred)))),
        async || drop(black_box(sx_insert_many(&env.pool, &hundred).await)),
    );
}

/// `POLYSTORE_BENCH_AB=1` runs the interleaved A/B comparison instead of criterion: on a
/// noisy machine, alternating the two sides in short batches cancels drift that separate
/// criterion runs cannot. `POLYSTORE_BENCH_AB=fetch` runs only the scenarios whose name
/// contains `fetch`.
///
/// `POLYSTORE_BENCH_DECODE=polystore:200` (or `sqlx:200`) only decodes the 10 000 rows that
/// many times and exits: run it under `perf stat -e instructions:u` (and once with `:0` for
/// the setup's share) for an instruction count per row that load on the machine cannot skew.
/// `POLYSTORE_BENCH_REPEAT=find:polystore:1000` (sides `polystore`, `conn`; scenarios `find`,
/// `fetchN` for the first N rows, e.g. `fetch1` or `fetch10000`, `insert1`, `insert100`) runs one side of one scenario that many times inside
/// `ps_io` / `sx_io`, for `valgrind --tool=callgrind --toggle-collect='*ps_io*'`: client
/// instructions per statement, whatever the load. The insert scenarios write to the write
/// table without emptying it in between (the server's work is not counted).
fn repeat(env: &Env, spec: &str) {
    let mut parts = spec.split(':');
    let (scenario, side) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let n: u32 = parts.next().and_then(|n| n.parse().ok()).expect("POLYSTORE_BENCH_REPEAT=find:polystore:N");
    let one = user_w(7);
    let hundred: Vec<BenchUserW> = (0..100).map(user_w).collect();
    env.rt.block_on(truncate_writes(env));
    /// `fetchN`: N rows.
    fn rows_of(scenario: &str) -> u64 {
        match scenario.strip_prefix("fetch").map(str::parse) {
            Some(Ok(n)) => n,
            _ => panic!("unknown scenario {scenario:?} (find, fetchN, insert1, insert100)"),
        }
    }
    #[inline(never)]
    fn ps_io(env: &Env, scenario: &str, n: u32, one: &BenchUserW, hundred: &[BenchUserW]) {
        env.rt.block_on(async {
            for _ in 0..n {
                match scenario {
                    "find" => drop(black_box(ps_find(env).await)),
                    "insert1" => drop(black_box(ps_insert_one(env, one).await)),
                    "insert100" => drop(black_box(ps_insert_many(env, hundred).await)),
                    fetch => drop(black_box(ps_fetch(env, rows_of(fetch)).await)),
                }
            }
        })
    }
    #[inline(never)]
    fn sx_io(env: &Env, scenario: &str, n: u32, one: &BenchUserW, hundred: &[BenchUserW]) {
        env.rt.block_on(async {
            let mut c = env.conn.lock().await;
            for _ in 0..n {
                match scenario {
                    "find" => drop(black_box(sx_find(&mut *c).await)),
                    "insert1" => drop(black_box(sx_insert_one(&mut *c, one).await)),
                    "insert100" => drop(black_box(sx_insert_many(&mut *c, hundred).await)),
                    fetch => drop(black_box(sx_fetch(&mut *c, rows_of(fetch)).await)),
                }
            }
        })
    }
    match side {
        "polystore" => ps_io(env, scenario, n, &one, &hundred),
        "conn" => sx_io(env, scenario, n, &one, &hundred),
        other => panic!("unknown side {other:?}"),
    }
}

fn main() {
    let env = setup();
    if let Ok(spec) = std::env::var("POLYSTORE_BENCH_DECODE") {
        let (side, n) = spec.split_once(':').expect("POLYSTORE_BENCH_DECODE=polystore:N or sqlx:N");
        let n: usize = n.parse().expect("a number of repetitions");
        for _ in 0..n {
            match side {
                "polystore" => drop(black_box(ps_decode(&env.rows))),
                "sqlx" => drop(black_box(sx_decode(&env.rows))),
                other => panic!("unknown side {other:?}"),
            }
        }
    } else if let Ok(spec) = std::env::var("POLYSTORE_BENCH_REPEAT") {
        repeat(&env, &spec);
    } else if std::env::var_os("POLYSTORE_BENCH_AB").is_some() {
        ab_mode(&env);
    } else {
        let mut c = Criterion::default().configure_from_args();
        criterion_benches(&mut c, &env);
        c.final_summary();
    }
    teardown(&env);
}
