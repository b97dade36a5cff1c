//! Store handles for the SQL databases: [`Db`] (a pool), [`Tx`] (a transaction, nested through
//! savepoints) and the [`Executor`] trait that lets every operation run on either.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
#[cfg(any(feature = "postgres", feature = "sqlite"))]
use std::time::Duration;

use crate::cache::CacheScope;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
use crate::cache::{Cache, Pending};
#[cfg(any(feature = "postgres", feature = "sqlite"))]
use crate::error::{Error, Result};
#[cfg(any(feature = "postgres", feature = "sqlite"))]
use crate::exec;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
use crate::schema::ModelSchema;
use crate::sql::Dialect;

/// Counters kept by a handle; every statement passes through the execution point, which
/// counts it here. A transaction keeps its own `Stats` whose counts also go to its parent's
/// (the handle's, or the enclosing transaction's), plus whether one of its statements failed.
#[derive(Debug, Default)]
pub struct Stats {
    statements: AtomicU64,
    #[cfg_attr(not(any(feature = "postgres", feature = "sqlite")), allow(dead_code))]
    failed: AtomicBool,
    parent: Option<Arc<Stats>>,
    /// The slow-statement threshold in nanoseconds (0: off); a transaction's is its parent's.
    slow_query_nanos: AtomicU64,
    /// Explains slow statements ([`Db::with_slow_query_explain`]); a transaction uses its
    /// parent's.
    #[cfg(feature = "postgres")]
    explainer: std::sync::OnceLock<Arc<crate::observe::Explainer>>,
    /// Run statements without named prepared statements, each one outside a transaction in
    /// a transaction of its own ([`Db::with_transaction_pooling`]); a transaction's is its
    /// parent's.
    #[cfg_attr(not(any(feature = "postgres", feature = "sqlite")), allow(dead_code))]
    transaction_pooling: AtomicBool,
    /// [`crate::tenant::ShardCheck`] as a number ([`Db::with_shard_check`]); a transaction's
    /// is its parent's.
    #[cfg_attr(not(any(feature = "postgres", feature = "sqlite")), allow(dead_code))]
    shard_check: std::sync::atomic::AtomicU8,
    /// The `SET LOCAL search_path` statement run at the start of every transaction
    /// ([`Db::with_local_search_path`]); a transaction's is its parent's.
    #[cfg(feature = "postgres")]
    local_search_path: std::sync::RwLock<Option<Arc<str>>>,
    /// What the catalog says about indexes (`sql::hints`); a PostgreSQL handle's only, a
    /// transaction uses its handle's.
    #[cfg(feature = "postgres")]
    index_hints: std::sync::OnceLock<Arc<crate::sql::hints::IndexHints>>,
}

impl Stats {
    /// The counters of a transaction started on a handle or transaction counting into `parent`.
    #[cfg_attr(not(any(feature = "postgres", feature = "sqlite")), allow(dead_code))]
    fn child(parent: &Arc<Stats>) -> Arc<Stats> {
        Arc::new(Stats { parent: Some(parent.clone()), ..Stats::default() })
    }

    pub(crate) fn record_statement(&self) {
        self.statements.fetch_add(1, Ordering::Relaxed);
        if let Some(parent) = &self.parent {
            parent.record_statement();
        }
    }

    /// Notes that a statement failed in the database (which, on PostgreSQL, aborts the
    /// transaction it ran in).
    #[cfg_attr(not(any(feature = "postgres", feature = "sqlite")), allow(dead_code))]
    pub(crate) fn record_failure(&self) {
        self.failed.store(true, Ordering::Relaxed);
    }

    /// Whether a statement failed in the database (only PostgreSQL aborts on that).
    #[cfg(feature = "postgres")]
    fn has_failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    /// Statements executed so far through this handle (and its transactions).
    pub fn statements(&self) -> u64 {
        self.statements.load(Ordering::Relaxed)
    }

    /// Sets the slow-statement threshold (`None`: off) of the handle these counters belong to.
    pub(crate) fn set_slow_query_threshold(&self, threshold: Option<std::time::Duration>) {
        let nanos = threshold.map_or(0, |t| u64::try_from(t.as_nanos()).unwrap_or(u64::MAX).max(1));
        self.slow_query_nanos.store(nanos, Ordering::Relaxed);
    }

    /// The slow-statement explainer in force: this handle's, or for a transaction its handle's.
    #[cfg(feature = "postgres")]
    pub(crate) fn explainer(&self) -> Option<&Arc<crate::observe::Explainer>> {
        self.explainer.get().or_else(|| self.parent.as_ref().and_then(|p| p.explainer()))
    }

    /// Whether statements must avoid named prepared statements and keep their protocol
    /// round trips inside one transaction ([`Db::with_transaction_pooling`]): this handle's
    /// setting, or for a transaction its handle's.
    #[cfg_attr(not(any(feature = "postgres", feature = "sqlite")), allow(dead_code))]
    /// What a multi-shard query on a distributed model does on this handle (its root's, for
    /// a transaction).
    #[cfg(any(feature = "postgres", feature = "sqlite"))]
    pub(crate) fn shard_check(&self) -> crate::tenant::ShardCheck {
        match &self.parent {
            Some(p) => p.shard_check(),
            None => crate::tenant::ShardCheck::from_u8(self.shard_check.load(Ordering::Relaxed)),
        }
    }

    #[cfg(any(feature = "postgres", feature = "sqlite"))]
    pub(crate) fn set_shard_check(&self, check: crate::tenant::ShardCheck) {
        self.shard_check.store(check.to_u8(), Ordering::Relaxed);
    }

    #[cfg_attr(not(any(feature = "postgres", feature = "sqlite")), allow(dead_code))]
    pub(crate) fn transaction_pooling(&self) -> bool {
        self.transaction_pooling.load(Ordering::Relaxed)
            || self.parent.as_ref().is_some_and(|p| p.transaction_pooling())
    }

    /// The catalog's answers about indexes of this handle (a transaction: its handle's).
    #[cfg(feature = "postgres")]
    pub(crate) fn index_hints(&self) -> Option<&Arc<crate::sql::hints::IndexHints>> {
        self.index_hints.get().or_else(|| self.parent.as_ref().and_then(|p| p.index_hints()))
    }

    /// The `SET LOCAL search_path TO …` statement to run at the start of every transaction
    /// ([`Db::with_local_search_path`]): this handle's, or for a transaction its handle's.
    #[cfg(feature = "postgres")]
    pub(crate) fn local_search_path(&self) -> Option<Arc<str>> {
        let own = self.local_search_path.read().unwrap_or_else(|e| e.into_inner()).clone();
        own.or_else(|| self.parent.as_ref().and_then(|p| p.local_search_path()))
    }

    /// The slow-statement threshold in force: this handle's, or for a transaction its
    /// handle's.
    pub(crate) fn slow_query_threshold(&self) -> Option<std::time::Duration> {
        match self.slow_query_nanos.load(Ordering::Relaxed) {
            0 => self.parent.as_ref().and_then(|p| p.slow_query_threshold()),
            nanos => Some(std::time::Duration::from_nanos(nanos)),
        }
    }
}

/// Which SQL database a handle talks to.
#[cfg(any(feature = "postgres", feature = "sqlite"))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL.
    Postgres,
    /// SQLite.
    Sqlite,
}

/// Connection-pool settings. The defaults are chosen for request/response services:
///
/// | setting | default | why |
/// |---|---|---|
/// | `max_connections` | 10 | enough for a 2–8 core service; PostgreSQL's own limit is 100 |
/// | `min_connections` | 0 | no idle connections held by idle processes |
/// | `acquire_timeout` | 10 s | a saturated pool fails visibly instead of hanging |
/// | `idle_timeout` | 10 min | idle connections are returned to the server |
/// | `max_lifetime` | 30 min | connections are recycled (server-side memory, failovers) |
/// | `test_before_acquire` | `false` | sqlx's default pings on *every* acquire, a full round trip per query; a dead connection instead surfaces as a connection error on its next use and is discarded |
///
/// In-memory SQLite databases never expire idle connections (the data would go with them).
///
/// On PostgreSQL a [`Db`] keeps up to `max_connections / 4` connections whose statement ran
/// cleanly checked out for up to a second, to skip sqlx's return-to-pool ping (see
/// [`Db::from_pg_pool`]).
#[cfg(any(feature = "postgres", feature = "sqlite"))]
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Most connections open at once.
    pub max_connections: u32,
    /// Connections kept open even when idle.
    pub min_connections: u32,
    /// How long to wait for a free connection.
    pub acquire_timeout: Duration,
    /// Close connections idle this long.
    pub idle_timeout: Option<Duration>,
    /// Close connections this old.
    pub max_lifetime: Option<Duration>,
    /// Ping each connection before handing it out.
    pub test_before_acquire: bool,
}

#[cfg(any(feature = "postgres", feature = "sqlite"))]
impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            max_connections: 10,
            min_connections: 0,
            acquire_timeout: Duration::from_secs(10),
            idle_timeout: Some(Duration::from_secs(600)),
            max_lifetime: Some(Duration::from_secs(1800)),
            test_before_acquire: false,
        }
    }
}

#[cfg(any(feature = "postgres", feature = "sqlite"))]
#[derive(Debug, Clone)]
pub(crate) enum Pool {
    /// The pool, with the warm connections the execution point keeps between statements.
    #[cfg(feature = "postgres")]
    Postgres(Arc<exec::PgShelf>),
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::SqlitePool),
}

/// A handle to a PostgreSQL or SQLite database: a connection pool plus counters, and
/// optionally a [`Cache`] ([`Db::with_cache`]). Cheap to clone; clones share the pool.
#[cfg(any(feature = "postgres", feature = "sqlite"))]
#[derive(Debug, Clone)]
pub struct Db {
    pool: Pool,
    stats: Arc<Stats>,
    cache: Option<Cache>,
}

#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub(crate) fn pool_options<DB: sqlx::Database>(cfg: &PoolConfig, in_memory: bool) -> sqlx::pool::PoolOptions<DB> {
    sqlx::pool::PoolOptions::new()
        .max_connections(cfg.max_connections)
        .min_connections(cfg.min_connections)
        .acquire_timeout(cfg.acquire_timeout)
        .idle_timeout(if in_memory { None } else { cfg.idle_timeout })
        .max_lifetime(if in_memory { None } else { cfg.max_lifetime })
        .test_before_acquire(cfg.test_before_acquire)
}

#[cfg(any(feature = "postgres", feature = "sqlite"))]
impl Db {
    /// Connects to `url` with the default [`PoolConfig`]: `postgres://…` / `postgresql://…`,
    /// or `sqlite:…` (`sqlite::memory:`, `sqlite://path/to/file.db`; the file is created if
    /// missing).
    pub async fn connect(url: &str) -> Result<Db> {
        Db::connect_with(url, PoolConfig::default()).await
    }

    /// Connects to `url` with the given pool settings.
    pub async fn connect_with(url: &str, cfg: PoolConfig) -> Result<Db> {
        let scheme = url.split(':').next().unwrap_or_default();
        match scheme {
            #[cfg(feature = "postgres")]
            "postgres" | "postgresql" => {
                let opts: sqlx::postgres::PgConnectOptions =
                    url.parse().map_err(|e| Error::Config(format!("bad PostgreSQL URL: {e}")))?;
                Db::connect_postgres(opts, cfg).await
            }
            #[cfg(feature = "sqlite")]
            "sqlite" => {
                let opts: sqlx::sqlite::SqliteConnectOptions =
                    url.parse().map_err(|e| Error::Config(format!("bad SQLite URL: {e}")))?;
                Db::connect_sqlite(
                    opts.create_if_missing(true),
                    cfg,
                    url.contains(":memory:") || url.contains("mode=memory"),
                )
                .await
            }
            other => Err(Error::Config(format!(
                "unsupported database URL scheme {other:?}: expected postgres:// or sqlite: (is the store's cargo feature enabled?)"
            ))),
        }
    }

    /// Connects to PostgreSQL with explicit connect options (e.g. a `search_path`).
    #[cfg(feature = "postgres")]
    ///
    /// When no connection could be opened within the acquire timeout, the error says why the
    /// last attempt failed (`Connection refused`, an unknown database, …) rather than only
    /// that the pool timed out.
    pub async fn connect_postgres(opts: sqlx::postgres::PgConnectOptions, cfg: PoolConfig) -> Result<Db> {
        match pool_options(&cfg, false).connect_with(opts.clone()).await {
            Ok(pool) => Ok(Db::from_pg_pool(pool)),
            Err(sqlx::Error::PoolTimedOut) => {
                use sqlx::ConnectOptions as _;
                let cause = match tokio::time::timeout(cfg.acquire_timeout, opts.connect()).await {
                    Ok(Err(e)) => format!(": {}", crate::error::sqlx_message(&e)),
                    _ => String::new(),
                };
                let message = format!("no connection could be opened within {:?}{cause}", cfg.acquire_timeout);
                Err(Error::Connection { store: "postgresql", message })
            }
            Err(e) => Err(exec::connection_error("postgresql", e)),
        }
    }

    /// Opens SQLite with explicit connect options.
    #[cfg(feature = "sqlite")]
    pub async fn connect_sqlite(
        opts: sqlx::sqlite::SqliteConnectOptions,
        cfg: PoolConfig,
        in_memory: bool,
    ) -> Result<Db> {
        let opts = opts.foreign_keys(true);
        // Every connection gets polystore's exact decimal functions (see `sql::sqlite_decimal`).
        let pool = pool_options(&cfg, in_memory)
            .after_connect(|conn, _| Box::pin(crate::sql::sqlite_decimal::register(conn)))
            .connect_with(opts)
            .await
            .map_err(|e| exec::connection_error("sqlite", e))?;
        Ok(Db::from_pool(Pool::Sqlite(pool)))
    }

    /// Wraps an existing sqlx PostgreSQL pool.
    ///
    /// Between statements the handle keeps up to a quarter of the pool's `max_connections`
    /// checked out, for at most a second each, so that a statement that ran cleanly skips
    /// sqlx's return-to-pool round trip (see `docs/performance.md`); other users of the same
    /// pool may see that many fewer idle connections meanwhile.
    #[cfg(feature = "postgres")]
    pub fn from_pg_pool(pool: sqlx::PgPool) -> Db {
        let db = Db::from_pool(Pool::Postgres(exec::PgShelf::new(pool)));
        // What the catalog says about indexes (see `sql::hints`): PostgreSQL handles only.
        let _ = db.stats.index_hints.set(Arc::default());
        db
    }

    /// Wraps an existing sqlx SQLite pool. Decimal queries need polystore's exact decimal
    /// functions on its connections: build the pool with
    /// `.after_connect(|c, _| Box::pin(polystore::sql::sqlite_decimal::register(c)))`.
    #[cfg(feature = "sqlite")]
    pub fn from_sqlite_pool(pool: sqlx::SqlitePool) -> Db {
        Db::from_pool(Pool::Sqlite(pool))
    }

    fn from_pool(pool: Pool) -> Db {
        Db { pool, stats: Arc::new(Stats::default()), cache: None }
    }

    /// This handle with `cache` attached: cached reads ([`CachedExt`](crate::CachedExt)) use
    /// it, and every write through this handle (and its transactions) invalidates the rows it
    /// changes and keeps the declared Redis indexes in sync. Shares the pool and counters with
    /// `self`.
    pub fn with_cache(&self, cache: Cache) -> Db {
        Db { cache: Some(cache), ..self.clone() }
    }

    /// The attached cache, if any.
    pub fn cache(&self) -> Option<&Cache> {
        self.cache.as_ref()
    }

    /// Logs every statement that takes `threshold` or longer as a `WARN` event (target
    /// `polystore::slow_query`: statement text — never bound values —, duration, rows, model)
    /// and counts it in [`names::SLOW_STATEMENTS`](crate::observe::names::SLOW_STATEMENTS).
    /// The threshold belongs to the handle's counters: it applies to this handle, every clone
    /// of it and their transactions. `Duration::ZERO` logs every statement.
    pub fn with_slow_query_threshold(self, threshold: Duration) -> Db {
        self.stats.set_slow_query_threshold(Some(threshold));
        self
    }

    /// On PostgreSQL, also logs the plan of each slow statement: after the statement returned,
    /// a background task prepares the same statement text and runs `EXPLAIN (FORMAT JSON)` of
    /// its generic plan (no values, nothing executed, in a transaction rolled back), then logs
    /// a `WARN` event (target `polystore::slow_query::plan`) with the plan and the tables it
    /// reads with a sequential scan (`seq_scans`). At most one explain runs at a time and at
    /// most one per `min_interval`; others are skipped. Set once per handle (later calls keep
    /// the first interval); no effect on SQLite.
    pub fn with_slow_query_explain(self, min_interval: Duration) -> Db {
        #[cfg(feature = "postgres")]
        if let Some(pool) = self.pg_pool() {
            let explainer = crate::observe::Explainer::new(pool.clone(), min_interval);
            let _ = self.stats.explainer.set(Arc::new(explainer));
        }
        #[cfg(not(feature = "postgres"))]
        let _ = min_interval;
        self
    }

    /// Makes this handle safe behind a connection pooler in *transaction* pooling mode
    /// (PgBouncer `pool_mode = transaction`, PgCat, Supavisor, …), where consecutive
    /// transactions of one client connection may run on different server connections.
    ///
    /// sqlx prepares every statement in one round trip (Parse, Describe, Sync) and runs it in
    /// a second (Bind, Execute, Sync), and names and caches the statements it prepares. Behind
    /// such a pooler both break: a named statement exists only on the server connection that
    /// prepared it (another client meets `prepared statement "sqlx_s_1" already exists`, this
    /// one later `does not exist`), and between the two round trips the pooler may hand the
    /// server connection to another client. With this setting every statement is prepared
    /// unnamed (never cached), and a statement run outside a transaction is wrapped in a
    /// transaction of its own (`BEGIN` … `COMMIT`, two more round trips), which pins one
    /// server connection for both round trips. Statements inside [`Db::begin`] transactions
    /// need no wrapping. PgBouncer 1.21 and later can instead track named statements
    /// (`max_prepared_statements`); this setting works with every version.
    ///
    /// The setting belongs to the handle's counters: it applies to this handle, every clone of
    /// it and their transactions. No effect on SQLite.
    pub fn with_transaction_pooling(self) -> Db {
        self.stats.transaction_pooling.store(true, Ordering::Relaxed);
        self
    }

    /// Confines this handle to `schemas` (PostgreSQL's `search_path`, in that order) behind a
    /// transaction-pooling proxy, where a connection-level setting cannot be used: PgBouncer
    /// refuses the `options` startup parameter, and a session-level `SET search_path` stays on
    /// the server connection the proxy then hands to *other* clients.
    ///
    /// Every transaction the handle runs starts with `SET LOCAL search_path TO "s1", "s2"`,
    /// which ends with the transaction: the transactions [`Db::begin`] opens (one more round
    /// trip), and the ones wrapped around single statements, where it travels in the same
    /// message as `BEGIN` (no extra round trip). It implies [`Db::with_transaction_pooling`],
    /// so that every statement runs in a transaction; the setting applies to this handle, its
    /// clones and their transactions. Schema names are quoted as identifiers (any text is
    /// safe; they are case-sensitive). No effect on SQLite.
    ///
    /// ```no_run
    /// # async fn f() -> polystore::Result<()> {
    /// let tenant = polystore::Db::connect("postgres://app@pgbouncer:6432/app")
    ///     .await?
    ///     .with_local_search_path(["tenant_42", "public"]);
    /// # Ok(()) }
    /// ```
    pub fn with_local_search_path<I, S>(self, schemas: I) -> Db
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        #[cfg(feature = "postgres")]
        {
            let list: Vec<String> =
                schemas.into_iter().map(|s| format!("\"{}\"", s.as_ref().replace('"', "\"\""))).collect();
            let set: Arc<str> = if list.is_empty() {
                Arc::from("SET LOCAL search_path TO ''")
            } else {
                Arc::from(format!("SET LOCAL search_path TO {}", list.join(", ")))
            };
            *self.stats.local_search_path.write().unwrap_or_else(|e| e.into_inner()) = Some(set);
        }
        #[cfg(not(feature = "postgres"))]
        drop(schemas.into_iter());
        self.with_transaction_pooling()
    }

    /// Whether the handle runs in transaction pooling mode ([`Db::with_transaction_pooling`],
    /// also turned on by [`Db::with_local_search_path`]).
    pub fn is_transaction_pooling(&self) -> bool {
        self.stats.transaction_pooling()
    }

    /// Turns the slow-statement log of [`Db::with_slow_query_threshold`] off again.
    pub fn without_slow_query_log(self) -> Db {
        self.stats.set_slow_query_threshold(None);
        self
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        match &self.pool {
            #[cfg(feature = "postgres")]
            Pool::Postgres(_) => Backend::Postgres,
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// The SQL dialect of this database.
    pub fn dialect(&self) -> &'static dyn Dialect {
        match &self.pool {
            #[cfg(feature = "postgres")]
            Pool::Postgres(_) => &crate::sql::postgres::Postgres,
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(_) => &crate::sql::sqlite::Sqlite,
        }
    }

    /// The handle's counters (statements executed, …).
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Forgets what this handle learned from PostgreSQL's catalog about indexes. A key list
    /// (`is_in`, a batched relation load) on a column the model does not declare an index on
    /// is written `col = ANY($1)` when the catalog shows an index leading with that column, and
    /// as a set otherwise (see `docs/performance.md`, "The generic-plan cliff"). The answer is
    /// looked up per table and kept for a minute; `create_all`, `drop_all` and migrations run
    /// through this handle forget it. Call this after creating or dropping indexes by other
    /// means when the new plans should apply at once. No effect on SQLite.
    pub fn forget_index_hints(&self) {
        #[cfg(feature = "postgres")]
        if let Some(hints) = self.stats.index_hints() {
            hints.forget();
        }
    }

    /// Sets how long this handle uses what the catalog said about a table's indexes before it
    /// asks again (a minute by default; see [`Db::forget_index_hints`]): an index created or
    /// dropped by other means is taken into account at most this long after. Shorter means a
    /// catalog query (about one round trip) that often per table that filters by key lists on
    /// columns the model does not declare indexed. Applies to the handle, its clones and their
    /// transactions, and forgets nothing already learned. No effect on SQLite.
    pub fn with_index_hint_freshness(self, fresh: std::time::Duration) -> Db {
        #[cfg(feature = "postgres")]
        if let Some(hints) = self.stats.index_hints() {
            hints.set_freshness(fresh);
        }
        #[cfg(not(feature = "postgres"))]
        let _ = fresh;
        self
    }

    /// Never asks the catalog about indexes: a key list on a column the model does not declare
    /// an index on is always written as a set (right without an index, slower than `= ANY($1)`
    /// with one; see `docs/performance.md`, "Indexes made outside polystore"). For roles that
    /// may not read the catalog, or to keep every statement's text independent of the
    /// database's indexes. Applies to the handle, its clones and their transactions.
    pub fn without_index_hints(self) -> Db {
        #[cfg(feature = "postgres")]
        if let Some(hints) = self.stats.index_hints() {
            hints.set_off(true);
        }
        self
    }

    /// The underlying PostgreSQL pool, for queries polystore does not build.
    #[cfg(feature = "postgres")]
    pub fn pg_pool(&self) -> Option<&sqlx::PgPool> {
        match &self.pool {
            Pool::Postgres(p) => Some(p.pool()),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// Makes reads on this handle's pool that lose their server (see `exec::lost_connection`)
    /// run once more on the handle `report` returns, else on `to`'s pool, counted there.
    /// Once per pool: whether it was set.
    #[cfg(feature = "postgres")]
    pub(crate) fn set_failover(&self, to: &Db, report: exec::FailoverReport) -> bool {
        match (&self.pool, &to.pool) {
            (Pool::Postgres(from), Pool::Postgres(to_shelf)) => {
                from.set_failover(exec::Failover::new(to_shelf.clone(), to.stats.clone(), report))
            }
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// This handle's PostgreSQL pool (with its shelf) and counters, for a read failing over
    /// to it.
    #[cfg(feature = "postgres")]
    pub(crate) fn pg_shelf_and_stats(&self) -> Option<(Arc<exec::PgShelf>, Arc<Stats>)> {
        match &self.pool {
            Pool::Postgres(shelf) => Some((shelf.clone(), self.stats.clone())),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// Statements and transactions under way on this handle's pool right now, waiting for a
    /// connection or holding one (a transaction counts until it ends). Connections idle on
    /// the shelf of warm connections, or on their way back to the pool, do not count.
    #[cfg(feature = "postgres")]
    pub(crate) fn outstanding(&self) -> usize {
        match &self.pool {
            Pool::Postgres(p) => p.outstanding(),
            #[allow(unreachable_patterns)]
            _ => 0,
        }
    }

    /// The underlying SQLite pool.
    #[cfg(feature = "sqlite")]
    pub fn sqlite_pool(&self) -> Option<&sqlx::SqlitePool> {
        match &self.pool {
            Pool::Sqlite(p) => Some(p),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// Starts a transaction. Dropping the [`Tx`] without committing rolls it back.
    pub async fn begin(&self) -> Result<Tx<'static>> {
        #[cfg(feature = "postgres")]
        let busy = match &self.pool {
            Pool::Postgres(p) => Some(p.busy()),
            #[allow(unreachable_patterns)]
            _ => None,
        };
        let conn = match &self.pool {
            #[cfg(feature = "postgres")]
            Pool::Postgres(p) => TxConn::Postgres(begin_postgres(p.pool(), &self.stats).await?),
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(p) => TxConn::Sqlite(p.begin().await.map_err(|e| exec::map_error(e, "sqlite", None))?),
        };
        let cache = self.cache.clone().map(TxCache::top);
        let timer = Some(crate::observe::TxTimer::start(match self.backend() {
            Backend::Postgres => "postgresql",
            Backend::Sqlite => "sqlite",
        }));
        Ok(Tx {
            conn,
            stats: Stats::child(&self.stats),
            cache,
            timer,
            tenant: None,
            #[cfg(feature = "postgres")]
            _busy: busy,
        })
    }

    /// Health check: one round trip (`SELECT 1`).
    pub async fn ping(&self) -> Result<()> {
        let mut db = self;
        exec::execute_raw(&mut db, "ping", None, "SELECT 1").await
    }

    /// Creates the tables and indexes of `schemas` in one transaction, referenced tables
    /// before the tables whose foreign keys point at them (the list may be in any order).
    ///
    /// A table that already exists is kept when it has the shape the model describes; with
    /// another shape (a missing or extra column, another type, key, index or constraint —
    /// the migrations' drift check compares them) it is [`Error::TableMismatch`], naming the
    /// table and every difference, and nothing is created. `create_all` never alters a table:
    /// use migrations for that. A model's schema (`#[model(schema = "billing")]`) is created
    /// first when missing (PostgreSQL).
    ///
    /// A partitioned model (`#[model(partition(..))]`) gets `PARTITION BY`, its default, list
    /// and hash partitions, and then its current and next range partitions (see
    /// [`Db::ensure_partitions`]); on SQLite it is a plain table.
    pub async fn create_all(&self, schemas: &[&'static ModelSchema]) -> Result<()> {
        let drift = crate::migrate::catalog::existing_table_drift(self, schemas).await.map_err(Error::from)?;
        if let Some(first) = drift.first() {
            let model = schemas.iter().find(|s| s.table == first.table).map_or("?", |s| s.name);
            let differences = drift.iter().filter(|d| d.table == first.table).map(|d| d.message.clone()).collect();
            return Err(Error::TableMismatch { model, table: first.table.clone(), differences });
        }
        let mut tx = self.begin().await?;
        let citus = self.citus_prepare(&mut tx, schemas).await?;
        for schema in by_foreign_keys(schemas) {
            #[cfg(feature = "postgres")]
            if citus {
                for sql in crate::sql::citus::create_table(&mut &mut tx, schema).await? {
                    exec::execute_raw(&mut &mut tx, "create_table", Some(schema), &sql).await?;
                }
                continue;
            }
            let namespace = crate::sql::ddl::create_schema(self.dialect(), schema);
            for sql in namespace.into_iter().chain(crate::sql::ddl::create_table(self.dialect(), schema, true)?) {
                exec::execute_raw(&mut &mut tx, "create_table", Some(schema), &sql).await?;
            }
        }
        let _ = citus;
        tx.commit().await?;
        self.forget_index_hints();
        // Range partitions depend on the date: created ahead, like `ensure_partitions` does.
        self.ensure_partitions(schemas).await.map(drop)
    }

    /// On a PostgreSQL server with the `citus` extension: checks the rules between
    /// distributed and reference models ([`crate::sql::citus::check_layout`]) and makes the
    /// transaction's distributed DDL run over one connection per node. Whether the server has
    /// Citus (so `create_all` distributes tables).
    async fn citus_prepare(&self, tx: &mut Tx<'_>, schemas: &[&'static ModelSchema]) -> Result<bool> {
        #[cfg(feature = "postgres")]
        if self.backend() == Backend::Postgres
            && schemas.iter().any(|s| s.reference || s.distribution.is_some())
            && crate::sql::citus::has_citus(&mut &mut *tx).await?
        {
            crate::sql::citus::check_layout(schemas)?;
            exec::execute_raw(
                &mut &mut *tx,
                "citus_mode",
                None,
                "SET LOCAL citus.multi_shard_modify_mode TO 'sequential'",
            )
            .await?;
            return Ok(true);
        }
        let _ = (tx, schemas);
        Ok(false)
    }

    /// Drops the tables of `schemas` (those that exist) in one transaction, the tables whose
    /// foreign keys point at others first (the list may be in any order, e.g. the one given
    /// to [`Db::create_all`]). Schemas (namespaces) are left in place.
    pub async fn drop_all(&self, schemas: &[&'static ModelSchema]) -> Result<()> {
        let mut tx = self.begin().await?;
        for schema in by_foreign_keys(schemas).into_iter().rev() {
            let sql = crate::sql::ddl::drop_table(self.dialect(), schema, true);
            exec::execute_raw(&mut &mut tx, "drop_table", Some(schema), &sql).await?;
        }
        let done = tx.commit().await;
        self.forget_index_hints();
        done
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        match &self.pool {
            #[cfg(feature = "postgres")]
            Pool::Postgres(p) => {
                p.clear();
                p.pool().close().await
            }
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(p) => p.close().await,
        }
    }
}

/// `schemas` ordered so that a table comes after the tables its `belongs_to` foreign keys
/// reference (those in the list); otherwise in the given order. Tables in a reference cycle
/// keep their given order.
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub(crate) fn by_foreign_keys<'s>(schemas: &[&'s ModelSchema]) -> Vec<&'s ModelSchema> {
    let refs = |s: &ModelSchema| -> Vec<&'static str> {
        s.relations
            .iter()
            .filter(|r| r.kind == crate::schema::RelationKind::BelongsTo)
            .map(|r| (r.target)().table)
            .chain(s.distribution.and_then(|d| d.colocate_with))
            .filter(|t| *t != s.table)
            .collect()
    };
    let mut left: Vec<&'s ModelSchema> = schemas.to_vec();
    let mut out: Vec<&'s ModelSchema> = Vec::with_capacity(left.len());
    while !left.is_empty() {
        let pending = |t: &str| left.iter().any(|s| s.table == t);
        let ready = left.iter().position(|s| refs(s).iter().all(|t| !pending(t))).unwrap_or(0);
        out.push(left.remove(ready));
    }
    out
}

#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub(crate) enum TxConn<'c> {
    #[cfg(feature = "postgres")]
    Postgres(sqlx::Transaction<'c, sqlx::Postgres>),
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::Transaction<'c, sqlx::Sqlite>),
}

/// A transaction's cache: its writes are invalidated at once and applied in full after the
/// commit (a nested transaction hands them to its parent on commit).
#[cfg(any(feature = "postgres", feature = "sqlite"))]
struct TxCache {
    cache: Cache,
    pending: Pending,
    parent: Option<Pending>,
}

#[cfg(any(feature = "postgres", feature = "sqlite"))]
impl TxCache {
    fn top(cache: Cache) -> Self {
        TxCache { cache, pending: Pending::default(), parent: None }
    }

    fn nested(cache: &Cache, parent: &Pending) -> Self {
        TxCache { cache: cache.clone(), pending: Pending::default(), parent: Some(parent.clone()) }
    }

    /// After a successful commit.
    async fn committed(self) {
        let pending = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        match self.parent {
            Some(parent) => parent.lock().unwrap_or_else(|p| p.into_inner()).extend(pending),
            None => crate::cache::flush_committed(&self.cache, pending).await,
        }
    }
}

/// A transaction. Operations take `&mut tx` wherever they take `&db`. [`Tx::begin`] nests a
/// transaction through a savepoint; dropping a `Tx` without [`Tx::commit`] rolls it back.
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub struct Tx<'c> {
    conn: TxConn<'c>,
    stats: Arc<Stats>,
    cache: Option<TxCache>,
    /// Times a top-level transaction for the metrics (`None` for a nested one).
    timer: Option<crate::observe::TxTimer>,
    /// The tenant handle the transaction was begun on ([`TenantDb::begin`](crate::TenantDb::begin),
    /// or a write's transaction on a tenant handle): its statements pass that handle's guard
    /// and its relation loads get the tenant filter. Savepoints keep it.
    tenant: Option<Box<TenantScope>>,
    /// Counts a top-level transaction on a PostgreSQL pool as under way until it ends (what
    /// [`Balance::LeastOutstanding`](crate::replica::Balance::LeastOutstanding) reads).
    #[cfg(feature = "postgres")]
    _busy: Option<exec::Busy>,
}

#[cfg(any(feature = "postgres", feature = "sqlite"))]
impl std::fmt::Debug for Tx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tx").finish_non_exhaustive()
    }
}

#[cfg(any(feature = "postgres", feature = "sqlite"))]
impl<'c> Tx<'c> {
    /// Scopes this transaction to `tenant` (see [`TenantDb::begin`](crate::TenantDb::begin)).
    pub(crate) fn scope_to(&mut self, tenant: TenantScope) {
        self.tenant = Some(Box::new(tenant));
    }

    /// The tenant handle this transaction is scoped by, if any.
    pub(crate) fn tenant_scope(&self) -> Option<&TenantScope> {
        self.tenant.as_deref()
    }

    /// Starts a nested transaction (a savepoint) inside this one.
    pub async fn begin(&mut self) -> Result<Tx<'_>> {
        use sqlx::Connection as _;
        let conn = match &mut self.conn {
            #[cfg(feature = "postgres")]
            TxConn::Postgres(t) => {
                TxConn::Postgres((**t).begin().await.map_err(|e| exec::map_error(e, "postgresql", None))?)
            }
            #[cfg(feature = "sqlite")]
            TxConn::Sqlite(t) => TxConn::Sqlite((**t).begin().await.map_err(|e| exec::map_error(e, "sqlite", None))?),
        };
        let cache = self.cache.as_ref().map(|c| TxCache::nested(&c.cache, &c.pending));
        Ok(Tx {
            conn,
            stats: Stats::child(&self.stats),
            cache,
            timer: None,
            tenant: self.tenant.clone(),
            #[cfg(feature = "postgres")]
            _busy: None,
        })
    }

    /// Makes the transaction's writes permanent (releases the savepoint of a nested one).
    ///
    /// On PostgreSQL, a statement that failed inside the transaction aborted it: committing then
    /// rolls it back and returns [`Error::TransactionAborted`] instead of reporting success.
    /// (Run a statement that may fail in a nested [`Tx::begin`] to recover from its failure.)
    pub async fn commit(self) -> Result<()> {
        commit_tx(self).await
    }

    /// Undoes the transaction's writes (back to the savepoint of a nested one).
    pub async fn rollback(self) -> Result<()> {
        let result = match self.conn {
            #[cfg(feature = "postgres")]
            TxConn::Postgres(t) => t.rollback().await.map_err(|e| exec::map_error(e, "postgresql", None)),
            #[cfg(feature = "sqlite")]
            TxConn::Sqlite(t) => t.rollback().await.map_err(|e| exec::map_error(e, "sqlite", None)),
        };
        if let Some(timer) = self.timer {
            timer.rolled_back("explicit");
        }
        result
    }
}

/// [`Tx::commit`]: awaited from generic code (the write paths), so compiled here (see
/// `compiled_here`) rather than in every crate using them.
#[cfg(any(feature = "postgres", feature = "sqlite"))]
#[crate::compiled_here]
pub(crate) async fn commit_tx<'c>(tx: Tx<'c>) -> Result<()> {
    let timer = tx.timer;
    let result = match tx.conn {
        #[cfg(feature = "postgres")]
        TxConn::Postgres(t) if tx.stats.has_failed() => {
            let rolled_back = t.rollback().await.map_err(|e| exec::map_error(e, "postgresql", None));
            if let Some(timer) = timer {
                timer.rolled_back("aborted");
            }
            rolled_back?;
            return Err(Error::TransactionAborted);
        }
        #[cfg(feature = "postgres")]
        TxConn::Postgres(t) => t.commit().await.map_err(|e| exec::map_error(e, "postgresql", None)),
        #[cfg(feature = "sqlite")]
        TxConn::Sqlite(t) => t.commit().await.map_err(|e| exec::map_error(e, "sqlite", None)),
    };
    if let Some(timer) = timer {
        if result.is_ok() { timer.committed() } else { timer.rolled_back("commit_failed") }
    }
    if let (Ok(()), Some(cache)) = (&result, tx.cache) {
        cache.committed().await;
    }
    result
}

/// Where a statement runs: a pool or a connection inside a transaction. Not for direct use.
#[doc(hidden)]
pub enum Target<'a> {
    #[cfg(feature = "postgres")]
    PgPool(&'a Arc<exec::PgShelf>),
    #[cfg(feature = "postgres")]
    PgConn(&'a mut sqlx::PgConnection),
    #[cfg(feature = "sqlite")]
    SqlitePool(&'a sqlx::SqlitePool),
    #[cfg(feature = "sqlite")]
    SqliteConn(&'a mut sqlx::SqliteConnection),
    #[cfg(feature = "mongodb")]
    Mongo(crate::mongo::Conn<'a>),
    /// A build without any store feature has no targets.
    #[cfg(not(any(feature = "postgres", feature = "sqlite", feature = "mongodb")))]
    NoStore(std::convert::Infallible, std::marker::PhantomData<&'a ()>),
}

impl Target<'_> {
    /// The SQL dialect of the target; `None` for a store that does not speak SQL.
    pub fn dialect(&self) -> Option<&'static dyn Dialect> {
        match self {
            #[cfg(feature = "postgres")]
            Target::PgPool(_) | Target::PgConn(_) => Some(&crate::sql::postgres::Postgres),
            #[cfg(feature = "sqlite")]
            Target::SqlitePool(_) | Target::SqliteConn(_) => Some(&crate::sql::sqlite::Sqlite),
            #[cfg(feature = "mongodb")]
            Target::Mongo(_) => None,
            #[cfg(not(any(feature = "postgres", feature = "sqlite", feature = "mongodb")))]
            Target::NoStore(never, _) => match *never {},
        }
    }
}

/// What [`Executor::tenant`] returns: the tenant handle, [`TenantDb`](crate::TenantDb). Not
/// for direct use.
#[cfg(any(feature = "postgres", feature = "sqlite"))]
#[doc(hidden)]
pub type TenantScope = crate::tenant::TenantDb;

/// What [`Executor::tenant`] returns: without a SQL store there is no tenant handle, so no
/// executor is scoped to a tenant and this type has no values. Not for direct use.
#[cfg(not(any(feature = "postgres", feature = "sqlite")))]
#[doc(hidden)]
#[derive(Debug, Clone)]
pub enum TenantScope {}

/// The tenant handle's operations the store-neutral code calls (none can run: no value exists).
#[cfg(not(any(feature = "postgres", feature = "sqlite")))]
impl TenantScope {
    pub(crate) fn scope<M: crate::model::Model>(&self, _q: crate::query::Query<M>) -> crate::query::Query<M> {
        match *self {}
    }

    pub(crate) fn owns_key(&self, _schema: &crate::schema::ModelSchema, _key: &[crate::value::Value]) -> bool {
        match *self {}
    }
}

/// Whether `db` is scoped to a tenant and `schema` is distributed: what the tenant's checks and
/// filters apply to.
pub(crate) fn tenant_scoped<E: Executor + ?Sized>(db: &E, schema: &crate::schema::ModelSchema) -> bool {
    schema.distribution.is_some() && db.tenant().is_some()
}

/// `q` with the tenant's filter when `db` is scoped to a tenant (unchanged otherwise, and for
/// a model that is not distributed).
pub(crate) fn scope_for<M: crate::model::Model, E: Executor + ?Sized>(
    db: &E,
    q: crate::query::Query<M>,
) -> crate::query::Query<M> {
    match db.tenant() {
        Some(tenant) => tenant.scope(q),
        None => q,
    }
}

/// The guard of an executor that is not scoped to a tenant: the shard check of distributed
/// models (see [`crate::tenant`]) in the mode of the handle `db` counts into — what
/// [`Executor::guard`] does by default.
pub(crate) fn guard_unscoped<E: Executor + ?Sized>(
    db: &mut E,
    op: &crate::driver::Operation<'_>,
) -> crate::error::Result<()> {
    #[cfg(any(feature = "postgres", feature = "sqlite"))]
    if op.model.is_some_and(|m| m.distribution.is_some()) {
        let mode = db.target().1.shard_check();
        return crate::tenant::check(mode, None, op);
    }
    let _ = (db, op);
    Ok(())
}

/// Something operations can run on: `&Db` (a pooled connection per statement) or `&mut Tx`
/// (the transaction's connection).
pub trait Executor: Send {
    /// The target and the counters to record into. Not for direct use.
    #[doc(hidden)]
    fn target(&mut self) -> (Target<'_>, &Arc<Stats>);

    /// The cache writes and cached reads use. Not for direct use.
    #[doc(hidden)]
    fn cache_scope(&self) -> CacheScope<'_> {
        CacheScope::None
    }

    /// The executor a routing executor ([`Routed`](crate::Routed)) picks for `op`; `None` for
    /// every other executor (the operation runs on `self`). Not for direct use.
    #[doc(hidden)]
    fn routed(&mut self, op: &crate::driver::Operation<'_>) -> Option<&mut dyn Executor> {
        let _ = op;
        None
    }

    /// Whether [`Executor::routed`] picks executors. Not for direct use.
    #[doc(hidden)]
    fn is_routed(&self) -> bool {
        false
    }

    /// Checks `op` before it runs: the shard check of distributed models (see
    /// [`crate::tenant`]). Not for direct use.
    #[doc(hidden)]
    fn guard(&mut self, op: &crate::driver::Operation<'_>) -> crate::error::Result<()> {
        guard_unscoped(self, op)
    }

    /// The tenant handle this executor is scoped by: a [`TenantDb`](crate::TenantDb), or an
    /// executor running for one (a hooked write's transaction, a pinned connection); `None`
    /// for every other executor. Relation loads add its tenant filter. Not for direct use.
    #[doc(hidden)]
    fn tenant(&self) -> Option<&TenantScope> {
        None
    }

    /// The MongoDB handle a transaction can be started from, when this executor is one (not
    /// a transaction). Not for direct use.
    #[cfg(feature = "mongodb")]
    #[doc(hidden)]
    fn mongo_store(&self) -> Option<&crate::mongo::MongoStore> {
        None
    }
}

#[cfg(any(feature = "postgres", feature = "sqlite"))]
impl Executor for &Db {
    fn target(&mut self) -> (Target<'_>, &Arc<Stats>) {
        Db::target_of(self)
    }

    fn cache_scope(&self) -> CacheScope<'_> {
        Db::cache_scope_of(self)
    }
}

#[cfg(any(feature = "postgres", feature = "sqlite"))]
impl Db {
    /// What `&Db` as an executor runs on (for executors wrapping a `Db`).
    pub(crate) fn target_of(&self) -> (Target<'_>, &Arc<Stats>) {
        let t = match &self.pool {
            #[cfg(feature = "postgres")]
            Pool::Postgres(p) => Target::PgPool(p),
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(p) => Target::SqlitePool(p),
        };
        (t, &self.stats)
    }

    /// The cache scope of `&Db` as an executor.
    pub(crate) fn cache_scope_of(&self) -> CacheScope<'_> {
        match &self.cache {
            Some(c) => CacheScope::Direct(c),
            None => CacheScope::None,
        }
    }
}

#[cfg(any(feature = "postgres", feature = "sqlite"))]
impl Tx<'_> {
    /// What `Executor::target` of `&mut Tx` returns, reachable from a `&mut Tx` held in place
    /// (the transactions hooked writes open, see `crate::hooks`).
    pub(crate) fn tx_target(&mut self) -> (Target<'_>, &Arc<Stats>) {
        let t = match &mut self.conn {
            #[cfg(feature = "postgres")]
            TxConn::Postgres(t) => Target::PgConn(t),
            #[cfg(feature = "sqlite")]
            TxConn::Sqlite(t) => Target::SqliteConn(t),
        };
        (t, &self.stats)
    }

    /// What `Executor::cache_scope` of `&mut Tx` returns.
    pub(crate) fn tx_cache_scope(&self) -> CacheScope<'_> {
        match &self.cache {
            Some(c) => CacheScope::Tx(&c.cache, &c.pending),
            None => CacheScope::None,
        }
    }
}

#[cfg(any(feature = "postgres", feature = "sqlite"))]
impl Executor for &mut Tx<'_> {
    fn target(&mut self) -> (Target<'_>, &Arc<Stats>) {
        self.tx_target()
    }

    fn cache_scope(&self) -> CacheScope<'_> {
        self.tx_cache_scope()
    }

    fn guard(&mut self, op: &crate::driver::Operation<'_>) -> crate::error::Result<()> {
        match &self.tenant {
            Some(tenant) => tenant.guard_op(op),
            None => guard_unscoped(self, op),
        }
    }

    fn tenant(&self) -> Option<&TenantScope> {
        self.tenant_scope()
    }
}

/// Lets code that receives any executor as `&mut dyn Executor` (async business rules) run
/// operations on it.
impl Executor for &mut dyn Executor {
    fn target(&mut self) -> (Target<'_>, &Arc<Stats>) {
        (**self).target()
    }

    fn cache_scope(&self) -> CacheScope<'_> {
        (**self).cache_scope()
    }

    fn routed(&mut self, op: &crate::driver::Operation<'_>) -> Option<&mut dyn Executor> {
        (**self).routed(op)
    }

    fn is_routed(&self) -> bool {
        (**self).is_routed()
    }

    fn guard(&mut self, op: &crate::driver::Operation<'_>) -> crate::error::Result<()> {
        (**self).guard(op)
    }

    fn tenant(&self) -> Option<&TenantScope> {
        (**self).tenant()
    }

    #[cfg(feature = "mongodb")]
    fn mongo_store(&self) -> Option<&crate::mongo::MongoStore> {
        (**self).mongo_store()
    }
}

/// Opens a transaction on a connection from `pool`, starting with the `SET LOCAL search_path`
/// of [`Db::with_local_search_path`] when `stats` (the handle's counters) carry one.
#[cfg(feature = "postgres")]
async fn begin_postgres(pool: &sqlx::PgPool, stats: &Stats) -> Result<sqlx::Transaction<'static, sqlx::Postgres>> {
    let mut tx = pool.begin().await.map_err(|e| exec::map_error(e, "postgresql", None))?;
    if let Some(set) = stats.local_search_path() {
        sqlx::raw_sql(sqlx::AssertSqlSafe(set.to_string()))
            .execute(&mut *tx)
            .await
            .map_err(|e| exec::map_error(e, "postgresql", None))?;
    }
    Ok(tx)
}

/// Starts a transaction on whatever `db` is: a new one on a pool, a savepoint inside a
/// transaction. Not generic, and compiled here (see `compiled_here`).
#[cfg(any(feature = "postgres", feature = "sqlite"))]
#[crate::compiled_here]
pub(crate) async fn begin_on<'a>(db: &'a mut dyn Executor) -> Result<Tx<'a>> {
    use sqlx::Connection as _;
    let cache = match db.cache_scope() {
        CacheScope::None => None,
        CacheScope::Direct(c) => Some(TxCache::top(c.clone())),
        CacheScope::Tx(c, pending) => Some(TxCache::nested(c, pending)),
    };
    let tenant = db.tenant().cloned().map(Box::new);
    let (target, stats) = db.target();
    let stats = Stats::child(stats);
    // A transaction begun on a pool is top-level (timed); on a connection, nested.
    let top: Option<&'static str> = match &target {
        #[cfg(feature = "postgres")]
        Target::PgPool(_) => Some("postgresql"),
        #[cfg(feature = "sqlite")]
        Target::SqlitePool(_) => Some("sqlite"),
        #[allow(unreachable_patterns)]
        _ => None,
    };
    #[cfg(feature = "postgres")]
    let busy = match &target {
        Target::PgPool(p) => Some(p.busy()),
        _ => None,
    };
    let conn = match target {
        #[cfg(feature = "postgres")]
        Target::PgPool(p) => TxConn::Postgres(begin_postgres(p.pool(), &stats).await?),
        #[cfg(feature = "postgres")]
        Target::PgConn(c) => TxConn::Postgres(c.begin().await.map_err(|e| exec::map_error(e, "postgresql", None))?),
        #[cfg(feature = "sqlite")]
        Target::SqlitePool(p) => TxConn::Sqlite(p.begin().await.map_err(|e| exec::map_error(e, "sqlite", None))?),
        #[cfg(feature = "sqlite")]
        Target::SqliteConn(c) => TxConn::Sqlite(c.begin().await.map_err(|e| exec::map_error(e, "sqlite", None))?),
        #[allow(unreachable_patterns)]
        other => {
            return Err(crate::driver::refuse(
                &other,
                "SQL transactions",
                "use the store's own transactions (MongoStore::begin)",
            ));
        }
    };
    Ok(Tx {
        conn,
        stats,
        cache,
        timer: top.map(crate::observe::TxTimer::start),
        tenant,
        #[cfg(feature = "postgres")]
        _busy: busy,
    })
}
