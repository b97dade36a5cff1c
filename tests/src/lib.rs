//! The shared harness of polystore's integration tests.
//!
//! Every test talks to real stores:
//!
//! | store | where | how a test gets one |
//! |---|---|---|
//! | PostgreSQL | `DATABASE_URL` (default [`DEFAULT_DATABASE_URL`]) | [`pg`]: a fresh schema per test |
//! | PostgreSQL through PgBouncer (transaction pooling) | `POLYSTORE_PGBOUNCER_URL` (default [`DEFAULT_PGBOUNCER_URL`]) | [`pg_pooled`]: a fresh schema per test, set with `SET LOCAL` in every transaction |
//! | SQLite | in memory | [`sqlite`]: a fresh database per test |
//! | MongoDB | `MONGODB_URL` (default [`DEFAULT_MONGODB_URL`]) | [`mongo`]: a fresh database per test |
//! | Redis | `REDIS_URL` (default [`DEFAULT_REDIS_URL`]) | [`redis`] |
//!
//! `scripts/dev-services` starts the servers; `scripts/test` starts them and runs everything.
//!
//! **A test that needs a server it cannot reach fails**, with a message naming the server and
//! how to start it. Nothing is skipped silently.
//!
//! [`sql_test!`] writes a test body once and runs it on PostgreSQL and on SQLite:
//!
//! ```no_run
//! use polystore::prelude::*;
//! use polystore_tests::sql_test;
//!
//! # #[derive(Model)] struct User { #[model(primary_key, generated)] id: i64, email: String }
//! sql_test!(inserting_returns_the_stored_row, |db| async move {
//!     db.create_all(&[User::SCHEMA]).await?;
//!     let stored = User { id: 0, email: "ada@example.com".into() }.insert(&db).await?;
//!     assert!(stored.id > 0);
//!     Ok::<_, polystore::Error>(()) // or return (): assertions alone are fine too
//! });
//! ```
//!
//! This expands to a module `inserting_returns_the_stored_row` holding two `#[tokio::test]`s,
//! `postgres` and `sqlite`; `cargo test inserting_returns` runs both.
//! [`pooled_sql_test!`] adds a third, `pgbouncer` ([`run_on_pgbouncer`]).

#![warn(missing_docs)]

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::FutureExt as _;
use polystore::mongo::MongoStore;
use polystore::redis::RedisStore;
use polystore::{Backend, Db, PoolConfig};
use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, Connection as _};

/// PostgreSQL used when `DATABASE_URL` is not set (what `scripts/dev-services` provides).
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres:postgres@127.0.0.1:5432/polystore_test";

/// Redis used when `REDIS_URL` is not set.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379/";

/// MongoDB used when `MONGODB_URL` is not set.
pub const DEFAULT_MONGODB_URL: &str = "mongodb://127.0.0.1:27017/?directConnection=true";

/// How long a test waits for a server before failing.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

fn env_or(name: &str, default: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v,
        _ => default.to_owned(),
    }
}

/// The PostgreSQL URL tests use: `DATABASE_URL`, or [`DEFAULT_DATABASE_URL`].
pub fn database_url() -> String {
    env_or("DATABASE_URL", DEFAULT_DATABASE_URL)
}

/// The Redis URL tests use: `REDIS_URL`, or [`DEFAULT_REDIS_URL`].
pub fn redis_url() -> String {
    env_or("REDIS_URL", DEFAULT_REDIS_URL)
}

/// The MongoDB URL tests use: `MONGODB_URL`, or [`DEFAULT_MONGODB_URL`].
pub fn mongodb_url() -> String {
    env_or("MONGODB_URL", DEFAULT_MONGODB_URL)
}

/// Fails the current test because `service` at `url` cannot be used.
///
/// Tests never skip themselves when a server is missing: a green run must mean that every
/// store was exercised.
#[track_caller]
pub fn service_unavailable(service: &str, url: &str, error: impl fmt::Display) -> ! {
    panic!(
        "{service} is not reachable at {url}: {error}\n\
         this test needs a running {service}: run scripts/dev-services (or scripts/test), \
         which starts PostgreSQL, Redis and MongoDB for the tests"
    )
}

/// Enables `tracing` output for tests when `RUST_LOG` is set (e.g. `RUST_LOG=polystore=debug`
/// shows every statement). Idempotent.
pub fn init_tracing() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        if std::env::var_os("RUST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .with_test_writer()
                .try_init();
        }
    });
}

/// A name that no other test (in this or a concurrent test process) uses: `prefix`, the
/// process id, the time and a counter. Only lowercase ASCII letters, digits and `_`, so it is
/// usable unquoted as a schema, database or key name.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{prefix}_{}_{}_{n}", std::process::id(), nanos % 1_000_000_000_000)
}

/// A PostgreSQL [`Db`] confined to a schema of its own (its connections' `search_path`), so
/// that tests running in parallel never see each other's tables.
///
/// Dereferences to [`Db`]. Call [`TestDb::cleanup`] at the end to drop the schema; if the
/// value is dropped without that (a panicking test), the schema is dropped from a helper
/// thread, best effort.
#[derive(Debug)]
pub struct TestDb {
    db: Db,
    schema: String,
    admin: PgConnectOptions,
    cleaned: bool,
}

impl TestDb {
    /// The database handle (also reachable through `Deref`).
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The name of the test's schema.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Closes the pool and drops the schema with everything in it.
    ///
    /// Best effort, bounded in time: a connection the test leaked (say, into a task still
    /// running) cannot make the test hang here; the schema is then left behind with a warning.
    pub async fn cleanup(mut self) {
        self.cleaned = true;
        if tokio::time::timeout(CONNECT_TIMEOUT, self.db.close()).await.is_err() {
            eprintln!("warning: test pool for schema {} did not close in time", self.schema);
        }
        match tokio::time::timeout(CONNECT_TIMEOUT, drop_schema(&self.admin, &self.schema)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("warning: could not drop test schema {}: {e}", self.schema),
            Err(_) => eprintln!("warning: dropping test schema {} timed out", self.schema),
        }
    }
}

impl std::ops::Deref for TestDb {
    type Target = Db;

    fn deref(&self) -> &Db {
        &self.db
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if self.cleaned {
            return;
        }
        // Runs on a thread with its own runtime: the test's runtime may be shutting down.
        let admin = self.admin.clone();
        let schema = self.schema.clone();
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            rt.block_on(async { tokio::time::timeout(CONNECT_TIMEOUT, drop_schema(&admin, &schema)).await }).ok()?.ok()
        })
        .join();
        if !matches!(done, Ok(Some(()))) {
            eprintln!("warning: could not drop test schema {}", self.schema);
        }
    }
}

async fn drop_schema(admin: &PgConnectOptions, schema: &str) -> Result<(), sqlx::Error> {
    let mut conn = sqlx::PgConnection::connect_with(admin).await?;
    sqlx::raw_sql(AssertSqlSafe(format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))).execute(&mut conn).await?;
    conn.close().await
}

/// Connects to the test PostgreSQL (`DATABASE_URL`), creates a fresh schema and returns a
/// [`Db`] whose connections use it as their `search_path`.
///
/// Panics, naming PostgreSQL and `scripts/dev-services`, when the server cannot be reached.
pub async fn pg() -> TestDb {
    pg_with(PoolConfig { max_connections: 5, acquire_timeout: CONNECT_TIMEOUT, ..PoolConfig::default() }).await
}

/// Like [`pg`], with explicit pool settings.
pub async fn pg_with(cfg: PoolConfig) -> TestDb {
    init_tracing();
    let url = database_url();
    let admin: PgConnectOptions = match url.parse() {
        Ok(opts) => opts,
        Err(e) => panic!("DATABASE_URL {url:?} is not a PostgreSQL URL: {e}"),
    };
    let schema = unique_name("pstest");
    let created = async {
        let mut conn = sqlx::PgConnection::connect_with(&admin).await?;
        sqlx::raw_sql(AssertSqlSafe(format!("CREATE SCHEMA \"{schema}\""))).execute(&mut conn).await?;
        conn.close().await
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, created).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => service_unavailable("PostgreSQL", &url, e),
        Err(_) => service_unavailable("PostgreSQL", &url, "timed out"),
    }
    let opts = admin.clone().options([("search_path", schema.as_str())]);
    let db = match Db::connect_postgres(opts, cfg).await {
        Ok(db) => db,
        Err(e) => service_unavailable("PostgreSQL", &url, e),
    };
    TestDb { db, schema, admin, cleaned: false }
}

/// PgBouncer used when `POLYSTORE_PGBOUNCER_URL` is not set: `scripts/dev-services` runs it on
/// 6432 in `pool_mode = transaction`, in front of its own PostgreSQL primary (5450).
pub const DEFAULT_PGBOUNCER_URL: &str = "postgres://postgres@127.0.0.1:6432/polystore_test";

/// The PgBouncer URL tests use: `POLYSTORE_PGBOUNCER_URL`, or [`DEFAULT_PGBOUNCER_URL`].
pub fn pgbouncer_url() -> String {
    env_or("POLYSTORE_PGBOUNCER_URL", DEFAULT_PGBOUNCER_URL)
}

/// Like [`pg`], but every connection goes through PgBouncer in transaction pooling mode
/// ([`pgbouncer_url`]), with [`Db::with_local_search_path`] confining the handle to its fresh
/// schema: PgBouncer 1.18 refuses the `search_path` startup option [`pg`] uses, and a
/// session-level `SET search_path` would stay on a server connection PgBouncer then hands to
/// other tests. The schema is created and dropped through PgBouncer too (plain
/// simple-protocol statements, which transaction pooling allows).
///
/// Panics, naming PgBouncer and `scripts/dev-services`, when PgBouncer cannot be reached.
pub async fn pg_pooled() -> TestDb {
    init_tracing();
    let url = pgbouncer_url();
    let admin: PgConnectOptions = match url.parse() {
        Ok(opts) => opts,
        Err(e) => panic!("POLYSTORE_PGBOUNCER_URL {url:?} is not a PostgreSQL URL: {e}"),
    };
    let schema = unique_name("pstest_pooled");
    let created = async {
        let mut conn = sqlx::PgConnection::connect_with(&admin).await?;
        sqlx::raw_sql(AssertSqlSafe(format!("CREATE SCHEMA \"{schema}\""))).execute(&mut conn).await?;
        conn.close().await
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, created).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => service_unavailable("PgBouncer", &url, e),
        Err(_) => service_unavailable("PgBouncer", &url, "timed out"),
    }
    let cfg = PoolConfig { max_connections: 5, acquire_timeout: CONNECT_TIMEOUT, ..PoolConfig::default() };
    let db = match Db::connect_postgres(admin.clone(), cfg).await {
        Ok(db) => db.with_local_search_path([schema.as_str()]),
        Err(e) => service_unavailable("PgBouncer", &url, e),
    };
    TestDb { db, schema, admin, cleaned: false }
}

/// A fresh in-memory SQLite database.
///
/// The pool holds a single connection: every statement, and every transaction, runs on the
/// same in-memory database. (A test holding a [`polystore::Tx`] therefore cannot use the `Db`
/// until the transaction ends.)
pub async fn sqlite() -> Db {
    init_tracing();
    let cfg = PoolConfig { max_connections: 1, acquire_timeout: Duration::from_secs(5), ..PoolConfig::default() };
    match Db::connect_with("sqlite::memory:", cfg).await {
        Ok(db) => db,
        Err(e) => panic!("cannot open an in-memory SQLite database: {e}"),
    }
}

/// What a test body may return: nothing, or a `Result` whose error fails the test.
pub trait TestOutcome {
    /// Panics when the outcome is a failure.
    fn check(self);
}

impl TestOutcome for () {
    fn check(self) {}
}

impl<E: fmt::Display + fmt::Debug> TestOutcome for Result<(), E> {
    #[track_caller]
    fn check(self) {
        if let Err(e) = self {
            panic!("test returned an error: {e}\n{e:?}");
        }
    }
}

/// Runs `body` with a fresh PostgreSQL schema ([`pg`]) and drops the schema afterwards, also
/// when the body panics.
pub async fn run_on_postgres<F, Fut>(body: F)
where
    F: FnOnce(Db) -> Fut,
    Fut: Future,
    Fut::Output: TestOutcome,
{
    let test_db = pg().await;
    let outcome = AssertUnwindSafe(body(test_db.db().clone())).catch_unwind().await;
    test_db.cleanup().await;
    match outcome {
        Ok(out) => out.check(),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Runs `body` with a fresh PostgreSQL schema reached through PgBouncer in transaction
/// pooling mode ([`pg_pooled`]) and drops the schema afterwards, also when the body panics.
pub async fn run_on_pgbouncer<F, Fut>(body: F)
where
    F: FnOnce(Db) -> Fut,
    Fut: Future,
    Fut::Output: TestOutcome,
{
    let test_db = pg_pooled().await;
    let outcome = AssertUnwindSafe(body(test_db.db().clone())).catch_unwind().await;
    test_db.cleanup().await;
    match outcome {
        Ok(out) => out.check(),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Runs `body` with a fresh in-memory SQLite database ([`sqlite`]).
pub async fn run_on_sqlite<F, Fut>(body: F)
where
    F: FnOnce(Db) -> Fut,
    Fut: Future,
    Fut::Output: TestOutcome,
{
    let db = sqlite().await;
    body(db.clone()).await.check();
    db.close().await;
}

/// Defines one test body run on both SQL stores: `sql_test!(name, |db| async move { ... })`
/// becomes a module `name` with the tests `postgres` and `sqlite`. The closure gets a [`Db`]
/// and returns `()` or a `Result<(), E>` (so `?` can be used).
///
/// Items of the enclosing module (models, helpers) are visible inside the body.
#[macro_export]
macro_rules! sql_test {
    ($(#[$meta:meta])* $name:ident, $body:expr $(,)?) => {
        $crate::sql_test!(@module [$(#[$meta])*] $name, $body, {});
    };
    // The module both `sql_test!` and `pooled_sql_test!` expand to; `$extra` holds more tests.
    (@module [$(#[$meta:meta])*] $name:ident, $body:expr, { $($extra:tt)* }) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[::tokio::test]
            async fn postgres() {
                $crate::run_on_postgres($body).await
            }

            #[::tokio::test]
            async fn sqlite() {
                $crate::run_on_sqlite($body).await
            }

            $($extra)*
        }
    };
}

/// [`sql_test!`] plus a third test, `pgbouncer`, running the same body on PostgreSQL through
/// PgBouncer in transaction pooling mode ([`run_on_pgbouncer`]). A suite opts in with
/// `use polystore_tests::pooled_sql_test as sql_test;`.
#[macro_export]
macro_rules! pooled_sql_test {
    ($(#[$meta:meta])* $name:ident, $body:expr $(,)?) => {
        $crate::sql_test!(@module [$(#[$meta])*] $name, $body, {
            #[::tokio::test]
            async fn pgbouncer() {
                $crate::run_on_pgbouncer($body).await
            }
        });
    };
}

/// Runs a statement polystore does not build (raw SQL with literals, no parameters) on
/// either store, e.g. to write rows behind the ORM's back. Returns the rows affected.
///
/// On a handle in transaction pooling mode (a [`pg_pooled`] one) the statement, like those of
/// [`query_text`] and [`query_i64`], runs through polystore's raw SQL, which keeps the
/// handle's `search_path` and avoids named prepared statements.
pub async fn execute_sql(db: &Db, sql: &str) -> u64 {
    if db.is_transaction_pooling() {
        let affected = polystore::query::raw::<RawStatement>(sql).execute(db).await;
        return affected.unwrap_or_else(|e| panic!("raw SQL failed: {e}"));
    }
    let sql = AssertSqlSafe(sql.to_owned());
    let result = match db.backend() {
        Backend::Postgres => {
            sqlx::query(sql).execute(db.pg_pool().expect("a PostgreSQL pool")).await.map(|r| r.rows_affected())
        }
        Backend::Sqlite => {
            sqlx::query(sql).execute(db.sqlite_pool().expect("a SQLite pool")).await.map(|r| r.rows_affected())
        }
    };
    result.unwrap_or_else(|e| panic!("raw SQL failed: {e}"))
}

/// Runs a query returning one text value (raw SQL, no parameters) on either store, e.g. to see
/// how a value is really stored. `NULL` reads as `None`.
pub async fn query_text(db: &Db, sql: &str) -> Option<String> {
    if db.is_transaction_pooling() {
        let row = polystore::query::raw_rows::<(Option<String>,)>(sql).one(db).await;
        return row.unwrap_or_else(|e| panic!("raw SQL failed: {e}")).0;
    }
    let sql = AssertSqlSafe(sql.to_owned());
    let result = match db.backend() {
        Backend::Postgres => {
            sqlx::query_scalar::<_, Option<String>>(sql).fetch_one(db.pg_pool().expect("a PostgreSQL pool")).await
        }
        Backend::Sqlite => {
            sqlx::query_scalar::<_, Option<String>>(sql).fetch_one(db.sqlite_pool().expect("a SQLite pool")).await
        }
    };
    result.unwrap_or_else(|e| panic!("raw SQL failed: {e}"))
}

/// Runs a query returning one integer (raw SQL, no parameters), e.g. `SELECT COUNT(*) ...`.
pub async fn query_i64(db: &Db, sql: &str) -> i64 {
    if db.is_transaction_pooling() {
        let row = polystore::query::raw_rows::<(i64,)>(sql).one(db).await;
        return row.unwrap_or_else(|e| panic!("raw SQL failed: {e}")).0;
    }
    let sql = AssertSqlSafe(sql.to_owned());
    let result = match db.backend() {
        Backend::Postgres => {
            sqlx::query_scalar::<_, i64>(sql).fetch_one(db.pg_pool().expect("a PostgreSQL pool")).await
        }
        Backend::Sqlite => sqlx::query_scalar::<_, i64>(sql).fetch_one(db.sqlite_pool().expect("a SQLite pool")).await,
    };
    result.unwrap_or_else(|e| panic!("raw SQL failed: {e}"))
}

/// The model [`execute_sql`] names for polystore's raw statements (which need one, for error
/// messages); it has no table.
#[derive(polystore::Model)]
#[model(table = "polystore_tests_raw_statement")]
struct RawStatement {
    #[model(primary_key)]
    id: i64,
}

/// Adds `name=value` to a URL's query string unless the URL already sets `name`.
fn with_url_param(url: &str, name: &str, value: &str) -> String {
    if url.contains(&format!("{name}=")) {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&{name}={value}")
    } else {
        format!("{url}?{name}={value}")
    }
}

/// Connects to the test MongoDB (`MONGODB_URL`), selects a fresh database named after
/// `unique_name("pstest")` and pings it.
///
/// Panics, naming MongoDB and `scripts/dev-services`, when the server does not answer (within
/// a few seconds: the server selection timeout is lowered unless the URL sets one). Drop the
/// database with `store.database().drop().await` when done.
pub async fn mongo() -> MongoStore {
    init_tracing();
    let url = with_url_param(&mongodb_url(), "serverSelectionTimeoutMS", "5000");
    let store = match MongoStore::connect(&url, &unique_name("pstest")).await {
        Ok(store) => store,
        Err(e) => service_unavailable("MongoDB", &url, e),
    };
    if let Err(e) = store.ping().await {
        service_unavailable("MongoDB", &url, e);
    }
    store
}

/// Connects to the test Redis (`REDIS_URL`) and pings it. Use [`unique_name`] for key
/// prefixes: tests share the server.
///
/// Panics, naming Redis and `scripts/dev-services`, when the server does not answer.
pub async fn redis() -> RedisStore {
    init_tracing();
    let url = redis_url();
    let store = match tokio::time::timeout(CONNECT_TIMEOUT, RedisStore::connect(&url)).await {
        Ok(Ok(store)) => store,
        Ok(Err(e)) => service_unavailable("Redis", &url, e),
        Err(_) => service_unavailable("Redis", &url, "timed out"),
    };
    if let Err(e) = store.ping().await {
        service_unavailable("Redis", &url, e);
    }
    store
}

/// The Redis Cluster nodes used when `REDIS_CLUSTER_URLS` is not set (what
/// `scripts/dev-services` starts).
pub const DEFAULT_REDIS_CLUSTER_URLS: &str = "redis://127.0.0.1:7001/,redis://127.0.0.1:7002/,redis://127.0.0.1:7003/";

/// The Redis Cluster node URLs tests use: `REDIS_CLUSTER_URLS` (comma-separated), or
/// [`DEFAULT_REDIS_CLUSTER_URLS`].
pub fn redis_cluster_urls() -> Vec<String> {
    env_or("REDIS_CLUSTER_URLS", DEFAULT_REDIS_CLUSTER_URLS)
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Connects a cache backend to the test Redis Cluster (`REDIS_CLUSTER_URLS`) and pings it.
/// Use [`unique_name`] for the cache namespace: tests share the cluster.
///
/// Panics, naming Redis Cluster and `scripts/dev-services`, when the cluster does not answer.
pub async fn redis_cluster() -> polystore::cache::ClusterBackend {
    init_tracing();
    let urls = redis_cluster_urls();
    let shown = urls.join(",");
    let backend = match tokio::time::timeout(CONNECT_TIMEOUT, polystore::cache::ClusterBackend::connect(&urls)).await {
        Ok(Ok(backend)) => backend,
        Ok(Err(e)) => service_unavailable("Redis Cluster", &shown, e),
        Err(_) => service_unavailable("Redis Cluster", &shown, "timed out"),
    };
    use polystore::cache::CacheBackend as _;
    if let Err(e) = backend.ping().await {
        service_unavailable("Redis Cluster", &shown, e);
    }
    backend
}

/// Asserts that `result` failed with the given error pattern, showing the actual outcome
/// otherwise: `assert_err!(res, Error::NotFound { model: "User" })`.
#[macro_export]
macro_rules! assert_err {
    ($result:expr, $pattern:pat $(if $guard:expr)? $(,)?) => {
        match $result {
            Err($pattern) $(if $guard)? => {}
            other => panic!(
                "expected Err({}), got {:?}",
                stringify!($pattern),
                other.map(|_| "<Ok value>")
            ),
        }
    };
}

/// A fresh MongoDB database for one test: [`mongo`] under another name, for symmetry with
/// [`pg`] and [`sqlite`]. [`run_on_mongo`] drops it afterwards.
pub async fn mongo_db() -> MongoStore {
    mongo().await
}

/// Runs `body` with a fresh MongoDB database ([`mongo_db`]) and drops the database
/// afterwards, also when the body panics.
pub async fn run_on_mongo<F, Fut>(body: F)
where
    F: FnOnce(MongoStore) -> Fut,
    Fut: Future,
    Fut::Output: TestOutcome,
{
    let store = mongo_db().await;
    let outcome = AssertUnwindSafe(body(store.clone())).catch_unwind().await;
    if let Err(e) = store.database().drop().await {
        eprintln!("warning: could not drop test database {}: {e}", store.database().name());
    }
    match outcome {
        Ok(out) => out.check(),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Which store a [`store_test!`] body is running on, for the few places where the stores are
/// documented to differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// PostgreSQL.
    Postgres,
    /// SQLite.
    Sqlite,
    /// MongoDB.
    Mongo,
}

/// A store handle a [`store_test!`] body gets.
pub trait TestStore {
    /// Which store it is.
    fn kind(&self) -> StoreKind;
}

impl TestStore for Db {
    fn kind(&self) -> StoreKind {
        match self.backend() {
            Backend::Postgres => StoreKind::Postgres,
            Backend::Sqlite => StoreKind::Sqlite,
        }
    }
}

impl TestStore for MongoStore {
    fn kind(&self) -> StoreKind {
        StoreKind::Mongo
    }
}

/// Defines one test body run on all three stores: `store_test!(name, |db| async move { ... })`
/// becomes a module `name` with the tests `postgres`, `sqlite` and `mongodb`.
///
/// The body is expanded once per store, so `db` is a [`Db`] in the first two and a
/// [`MongoStore`] in the third: write it against what both offer (`create_all`, the model
/// operations, queries; [`TestStore::kind`] where the stores differ).
#[macro_export]
macro_rules! store_test {
    ($(#[$meta:meta])* $name:ident, |$db:ident| $body:expr $(,)?) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[::tokio::test]
            async fn postgres() {
                $crate::run_on_postgres(|$db| $body).await
            }

            #[::tokio::test]
            async fn sqlite() {
                $crate::run_on_sqlite(|$db| $body).await
            }

            #[::tokio::test]
            async fn mongodb() {
                $crate::run_on_mongo(|$db| $body).await
            }
        }
    };
}
