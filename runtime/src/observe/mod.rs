//! Monitoring: metrics, the slow-statement log, error classes in retries, health checks.
//!
//! Every statement and MongoDB command already passes through one execution point
//! (`exec::run`, `mongo::exec`); this module is what those points report to when the work is
//! done:
//!
//! - **metrics** through the [`metrics`] facade, named after the OpenTelemetry database-client
//!   conventions (see [`names`]). polystore installs no exporter: an application installs one
//!   (`metrics-exporter-prometheus`, an OpenTelemetry bridge, …) and the numbers appear. With
//!   no recorder installed each statement costs one clock read and a few calls into the
//!   facade's no-op recorder;
//! - the **slow-statement log**: with a threshold set on a handle
//!   ([`Db::with_slow_query_threshold`](crate::Db::with_slow_query_threshold),
//!   [`MongoStore::with_slow_query_threshold`](crate::mongo::MongoStore::with_slow_query_threshold)),
//!   a statement that took longer becomes a `WARN` event (target `polystore::slow_query`) with
//!   its text — never its bound values —, duration, row count and model;
//! - [`retry`]: runs an operation again on transient errors ([`Error::is_transient`]);
//! - [`statement_scope`] / [`assert_max_statements`]: N+1 detection, counting statements by
//!   shape in a scope;
//! - [`health`]: `health()` on every handle, a serialisable [`HealthReport`];
//! - [`pool_state`] / [`record_pool_metrics`]: connection-pool gauges read on demand;
//!   [`record_health_metrics`]: health gauges from health reports;
//! - the **index advisor**: `advise_indexes` weighs indexes for a [`Workload`] with HypoPG on
//!   PostgreSQL and names the model attribute to add; `explain_find` flags MongoDB collection
//!   scans.
//!
//! See `docs/monitoring.md` for wiring an exporter and what each metric means.

#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
mod advise;
#[cfg(feature = "postgres")]
mod explain;
mod health;
#[cfg(feature = "mongodb")]
mod mongo_explain;
mod retry;
mod scope;

use std::time::Duration;

#[cfg(feature = "postgres")]
pub use advise::advise_indexes;
pub use advise::{IndexAdvice, IndexReport, MIN_COST_DROP, Skipped, Workload, WorkloadStatement};
#[cfg(feature = "postgres")]
pub(crate) use explain::Explainer;
pub use health::{HealthReport, PoolState, Role};
#[cfg(feature = "mongodb")]
pub use mongo_explain::{MongoPlan, explain_find};
pub use retry::{RetryPolicy, retry};
pub(crate) use scope::admit;
pub use scope::{ScopeReport, ShapeCount, StatementLimit, assert_max_statements, statement_scope};

use crate::db::Stats;
use crate::error::Error;
use crate::schema::ModelSchema;

/// The metric names polystore records. Durations are in seconds, as OpenTelemetry asks.
pub mod names {
    /// Histogram, seconds: how long each statement or MongoDB command took, end to end (rows
    /// decoded). Labels: `db.system` (`postgresql`, `sqlite`, `mongodb`), `db.operation.name`
    /// (polystore's operation: `find`, `insert`, `query`, `count`, …), `db.collection.name`
    /// (table or collection), `polystore.model`, `outcome` (`ok` / `error`) and, on errors,
    /// `error.type` (the [`ErrorClass`](crate::ErrorClass)).
    pub const OPERATION_DURATION: &str = "db.client.operation.duration";
    /// Histogram, rows: how many rows (documents) a read returned. Labels as
    /// [`OPERATION_DURATION`] without the outcome.
    pub const RETURNED_ROWS: &str = "db.client.response.returned_rows";
    /// Counter, rows: rows changed by writes (`UPDATE`, `DELETE`, `INSERT` without rows back).
    /// Labels: `db.system`, `db.operation.name`, `db.collection.name`, `polystore.model`.
    pub const AFFECTED_ROWS: &str = "polystore.db.affected_rows";
    /// Counter: failed statements and commands by class. Labels: `db.system`, `error.type`,
    /// `polystore.model`.
    pub const ERRORS: &str = "polystore.db.errors";
    /// Counter: statements slower than the handle's slow-query threshold. Labels: `db.system`,
    /// `db.operation.name`, `polystore.model`.
    pub const SLOW_STATEMENTS: &str = "polystore.db.slow_statements";
    /// Counter: cached reads answered from the cache (a row or a cached "no such row").
    /// Label: `polystore.model`.
    pub const CACHE_HITS: &str = "polystore.cache.hits";
    /// Counter: cached reads that went to the database. Label: `polystore.model`.
    pub const CACHE_MISSES: &str = "polystore.cache.misses";
    /// Counter: entries offered to the cache after a miss (guarded fills). Label:
    /// `polystore.model`.
    pub const CACHE_FILLS: &str = "polystore.cache.fills";
    /// Counter: rows whose cache entries a write deleted. Label: `polystore.model`.
    pub const CACHE_INVALIDATIONS: &str = "polystore.cache.invalidations";
    /// Counter: unreadable cache entries found (and deleted). Label: `polystore.model`.
    pub const CACHE_CORRUPT: &str = "polystore.cache.corrupt";
    /// Gauge: open connections in the pool by `state` (`idle`, `used`). Labels: `db.system`,
    /// `db.client.connection.pool.name`.
    pub const POOL_CONNECTIONS: &str = "db.client.connection.count";
    /// Gauge: the pool's `max_connections`. Labels: `db.system`, `db.client.connection.pool.name`.
    pub const POOL_MAX: &str = "db.client.connection.max";
    /// Histogram, seconds: how long a transaction ran, from `begin` to its commit or
    /// rollback (top-level transactions; nested savepoints are part of theirs). Labels:
    /// `db.system`, `outcome` (`commit` / `rollback`).
    pub const TRANSACTION_DURATION: &str = "polystore.db.transaction.duration";
    /// Counter: transactions rolled back, by `reason`: `explicit` (`Tx::rollback`), `dropped`
    /// (the `Tx` went away uncommitted, as when `?` returned early), `aborted` (committing a
    /// PostgreSQL transaction a failed statement had aborted), `commit_failed` (the commit
    /// itself failed, e.g. a serialization failure). Labels: `db.system`, `reason`.
    pub const TRANSACTION_ROLLBACKS: &str = "polystore.db.transaction.rollbacks";
    /// Counter: migrations applied or reverted. Labels: `db.system`, `direction` (`up` /
    /// `down`), `outcome` (`ok` / `error`).
    pub const MIGRATION_RUNS: &str = "polystore.migrate.runs";
    /// Histogram, seconds: how long a statement waited for a pooled connection (PostgreSQL
    /// statements outside transactions, when no warm connection was at hand). Label:
    /// `db.system`.
    pub const POOL_WAIT: &str = "db.client.connection.wait_time";
    /// Histogram, seconds: one cache backend operation (for the Redis backends, the Redis
    /// commands of one cache read or write), under the cache's operation timeout. Labels:
    /// `cache.backend` (`redis`, `redis-cluster`, `memory`), `db.operation.name` (the cache
    /// operation: `get`, `set`, `delete`, …), `outcome` (`ok` / `error`).
    pub const CACHE_OPERATION_DURATION: &str = "polystore.cache.operation.duration";
    /// Gauge: 1 when the store answered its last health check, 0 when not. Label: `db.system`
    /// (the report's store). Set by [`record_health_metrics`](super::record_health_metrics).
    pub const HEALTH_UP: &str = "polystore.health.up";
    /// Gauge, seconds: how long the last health check took. Label: `db.system`.
    pub const HEALTH_LATENCY: &str = "polystore.health.latency";
    /// Gauge, seconds: how far a replica is behind, from its last health check, when the
    /// store says (a PostgreSQL standby). Label: `db.system`.
    pub const REPLICATION_LAG: &str = "polystore.replication.lag";

    /// Every counter above.
    pub const COUNTERS: &[&str] = &[
        AFFECTED_ROWS,
        ERRORS,
        SLOW_STATEMENTS,
        CACHE_HITS,
        CACHE_MISSES,
        CACHE_FILLS,
        CACHE_INVALIDATIONS,
        CACHE_CORRUPT,
        TRANSACTION_ROLLBACKS,
        MIGRATION_RUNS,
    ];
    /// Every histogram above.
    pub const HISTOGRAMS: &[&str] =
        &[OPERATION_DURATION, RETURNED_ROWS, TRANSACTION_DURATION, POOL_WAIT, CACHE_OPERATION_DURATION];
    /// Every gauge above.
    pub const GAUGES: &[&str] = &[POOL_CONNECTIONS, POOL_MAX, HEALTH_UP, HEALTH_LATENCY, REPLICATION_LAG];
}

/// A statement's identity for metrics and the slow log: all `'static`, so recording builds no
/// strings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    pub(crate) system: &'static str,
    pub(crate) op: &'static str,
    pub(crate) schema: Option<&'static ModelSchema>,
}

impl Shape {
    fn model(&self) -> &'static str {
        self.schema.map_or("", |s| s.name)
    }

    fn collection(&self) -> &'static str {
        self.schema.map_or("", |s| s.table)
    }
}

#[cfg(any(feature = "postgres", feature = "sqlite"))]
/// How many rows an operation's result holds, for the rows metrics and the slow log.
pub(crate) trait Rows {
    /// Rows returned by a read, or rows affected by a write.
    fn rows(&self) -> RowCount;
}

/// Rows returned or affected.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RowCount {
    /// A read returned this many rows.
    Returned(u64),
    /// A write changed this many rows.
    Affected(u64),
    /// Not known (a command's reply without a count): no rows metric.
    #[cfg_attr(not(feature = "mongodb"), allow(dead_code))]
    Unknown,
}

impl RowCount {
    fn get(self) -> u64 {
        match self {
            RowCount::Returned(n) | RowCount::Affected(n) => n,
            RowCount::Unknown => 0,
        }
    }
}

#[cfg(any(feature = "postgres", feature = "sqlite"))]
impl<T> Rows for Vec<T> {
    fn rows(&self) -> RowCount {
        RowCount::Returned(self.len() as u64)
    }
}

#[cfg(any(feature = "postgres", feature = "sqlite"))]
impl<T> Rows for Option<T> {
    fn rows(&self) -> RowCount {
        RowCount::Returned(u64::from(self.is_some()))
    }
}

#[cfg(any(feature = "postgres", feature = "sqlite"))]
/// A scalar (a count): one row.
impl Rows for i64 {
    fn rows(&self) -> RowCount {
        RowCount::Returned(1)
    }
}

#[cfg(any(feature = "postgres", feature = "sqlite"))]
/// Rows affected by a write.
impl Rows for u64 {
    fn rows(&self) -> RowCount {
        RowCount::Affected(*self)
    }
}

/// What polystore's metrics carry as their origin (what `metrics::histogram!` would give from
/// this module).
static METADATA: metrics::Metadata<'static> =
    metrics::Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

/// The metric keys of the statements that succeed, built once per statement shape. Building a
/// key allocates its labels and hashes them; at about 900 instructions for a statement's two
/// metrics that was a twentieth of a primary-key read's client-side work. A built key also
/// keeps its hash, which the recorder's own lookup then reuses.
mod keys {
    use super::{Shape, names};
    use crate::addr::{self, AddrMap};
    use metrics::{Key, Label};
    use std::sync::{LazyLock, RwLock};

    /// The keys of one shape: `outcome=ok` duration, rows returned, rows affected.
    pub(super) struct ShapeKeys {
        pub(super) duration_ok: Key,
        pub(super) returned: Key,
        pub(super) affected: Key,
    }

    /// A shape by the addresses of its static parts (a shape's strings and schema are
    /// `'static`, so there are as many entries as the program has operations × models, each
    /// built once and kept for the life of the process).
    type Id = (usize, usize, usize, usize);

    static KEYS: LazyLock<RwLock<AddrMap<Id, &'static ShapeKeys>>> = LazyLock::new(Default::default);

    /// The keys of `shape`, built the first time it is seen.
    pub(super) fn of(shape: Shape) -> &'static ShapeKeys {
        let id = (addr::of(shape.system), addr::of(shape.op), shape.op.len(), shape.schema.map_or(0, addr::of));
        if let Some(keys) = KEYS.read().unwrap_or_else(|e| e.into_inner()).get(&id) {
            return keys;
        }
        let labels = || {
            vec![
                Label::from_static_parts("db.system", shape.system),
                Label::from_static_parts("db.operation.name", shape.op),
                Label::from_static_parts("db.collection.name", shape.collection()),
                Label::from_static_parts("polystore.model", shape.model()),
            ]
        };
        let mut with_outcome = labels();
        with_outcome.push(Label::from_static_parts("outcome", "ok"));
        let built = ShapeKeys {
            duration_ok: Key::from_parts(names::OPERATION_DURATION, with_outcome),
            returned: Key::from_parts(names::RETURNED_ROWS, labels()),
            affected: Key::from_parts(names::AFFECTED_ROWS, labels()),
        };
        let mut map = KEYS.write().unwrap_or_else(|e| e.into_inner());
        map.entry(id).or_insert_with(|| Box::leak(Box::new(built)))
    }
}

/// Records a finished statement or command: the duration histogram, rows, errors by class and,
/// past the handle's threshold, the slow-statement event. `text` is the statement text (SQL) or
/// the command name (MongoDB): never values.
pub(crate) fn finished(
    stats: &Stats,
    shape: Shape,
    text: &str,
    elapsed: Duration,
    outcome: std::result::Result<RowCount, &Error>,
) {
    let model = shape.model();
    let seconds = elapsed.as_secs_f64();
    match outcome {
        Ok(rows) => {
            let keys = keys::of(shape);
            metrics::with_recorder(|r| r.register_histogram(&keys.duration_ok, &METADATA).record(seconds));
            match rows {
                RowCount::Returned(n) => {
                    metrics::with_recorder(|r| r.register_histogram(&keys.returned, &METADATA).record(n as f64))
                }
                RowCount::Affected(n) => {
                    metrics::with_recorder(|r| r.register_counter(&keys.affected, &METADATA).increment(n))
                }
                RowCount::Unknown => {}
            }
        }
        Err(e) => {
            let collection = shape.collection();
            let class = e.class().as_str();
            metrics::histogram!(names::OPERATION_DURATION,
                "db.system" => shape.system, "db.operation.name" => shape.op,
                "db.collection.name" => collection, "polystore.model" => model,
                "outcome" => "error", "error.type" => class)
            .record(seconds);
            metrics::counter!(names::ERRORS, "db.system" => shape.system, "error.type" => class,
                "polystore.model" => model)
            .increment(1);
        }
    }
    if let Some(threshold) = stats.slow_query_threshold()
        && elapsed >= threshold
    {
        slow(shape, text, elapsed, threshold, outcome);
        #[cfg(feature = "postgres")]
        if let Some(explainer) = stats.explainer() {
            explain::explain_later(explainer, shape, text);
        }
    }
}

#[cold]
fn slow(
    shape: Shape,
    text: &str,
    elapsed: Duration,
    threshold: Duration,
    outcome: std::result::Result<RowCount, &Error>,
) {
    metrics::counter!(names::SLOW_STATEMENTS, "db.system" => shape.system,
        "db.operation.name" => shape.op, "polystore.model" => shape.model())
    .increment(1);
    let rows = outcome.ok().filter(|r| !matches!(r, RowCount::Unknown)).map(RowCount::get);
    let error_type = outcome.err().map(|e| e.class().as_str());
    tracing::event!(
        target: "polystore::slow_query",
        tracing::Level::WARN,
        db.system = shape.system,
        db.operation.name = shape.op,
        db.collection.name = shape.collection(),
        polystore.model = shape.model(),
        db.query.text = text,
        duration_ms = elapsed.as_secs_f64() * 1000.0,
        threshold_ms = threshold.as_secs_f64() * 1000.0,
        rows,
        error_type,
        "slow statement"
    );
}

/// Cache events for the cache metrics (called from the cache's read and write paths).
#[derive(Debug, Clone, Copy)]
pub(crate) enum CacheEvent {
    Hit,
    Miss,
    Fill,
    Invalidation,
    Corrupt,
}

/// Counts `n` cache events of `model`.
#[inline]
pub(crate) fn cache(event: CacheEvent, model: &'static str, n: u64) {
    let name = match event {
        CacheEvent::Hit => names::CACHE_HITS,
        CacheEvent::Miss => names::CACHE_MISSES,
        CacheEvent::Fill => names::CACHE_FILLS,
        CacheEvent::Invalidation => names::CACHE_INVALIDATIONS,
        CacheEvent::Corrupt => names::CACHE_CORRUPT,
    };
    if n > 0 {
        metrics::counter!(name, "polystore.model" => model).increment(n);
    }
}

#[cfg(any(feature = "postgres", feature = "sqlite"))]
/// The connection pool of `db` as it is now (open, idle and in-use connections, the maximum);
/// `None` for a handle without a sqlx pool.
pub fn pool_state(db: &crate::Db) -> Option<PoolState> {
    #[cfg(feature = "postgres")]
    if let Some(pool) = db.pg_pool() {
        return Some(PoolState::of(pool));
    }
    #[cfg(feature = "sqlite")]
    if let Some(pool) = db.sqlite_pool() {
        return Some(PoolState::of(pool));
    }
    None
}

#[cfg(any(feature = "postgres", feature = "sqlite"))]
/// Sets the pool gauges ([`names::POOL_CONNECTIONS`] by state, [`names::POOL_MAX`]) of `db`'s
/// pool, labelled `db.client.connection.pool.name = pool_name`, from the pool as it is now.
/// Call it from the exporter's scrape hook or a periodic task: polystore does not poll.
pub fn record_pool_metrics(db: &crate::Db, pool_name: &'static str) -> Option<PoolState> {
    let state = pool_state(db)?;
    let system = match db.backend() {
        crate::Backend::Postgres => "postgresql",
        crate::Backend::Sqlite => "sqlite",
    };
    metrics::gauge!(names::POOL_CONNECTIONS, "db.system" => system,
        "db.client.connection.pool.name" => pool_name, "state" => "idle")
    .set(f64::from(state.idle));
    metrics::gauge!(names::POOL_CONNECTIONS, "db.system" => system,
        "db.client.connection.pool.name" => pool_name, "state" => "used")
    .set(f64::from(state.used));
    metrics::gauge!(names::POOL_MAX, "db.system" => system, "db.client.connection.pool.name" => pool_name)
        .set(f64::from(state.max));
    Some(state)
}

#[cfg(any(feature = "postgres", feature = "sqlite"))]
/// Times a top-level transaction: records [`names::TRANSACTION_DURATION`] and, for a
/// rollback, [`names::TRANSACTION_ROLLBACKS`] when it ends — also when the transaction is
/// dropped uncommitted.
#[derive(Debug)]
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub(crate) struct TxTimer {
    system: &'static str,
    started: std::time::Instant,
    done: bool,
}

#[cfg(any(feature = "postgres", feature = "sqlite"))]
impl TxTimer {
    pub(crate) fn start(system: &'static str) -> TxTimer {
        TxTimer { system, started: std::time::Instant::now(), done: false }
    }

    /// The transaction committed.
    pub(crate) fn committed(mut self) {
        self.done = true;
        self.record("commit", None);
    }

    /// The transaction was rolled back, for `reason` (see [`names::TRANSACTION_ROLLBACKS`]).
    pub(crate) fn rolled_back(mut self, reason: &'static str) {
        self.done = true;
        self.record("rollback", Some(reason));
    }

    fn record(&self, outcome: &'static str, reason: Option<&'static str>) {
        metrics::histogram!(names::TRANSACTION_DURATION, "db.system" => self.system, "outcome" => outcome)
            .record(self.started.elapsed().as_secs_f64());
        if let Some(reason) = reason {
            metrics::counter!(names::TRANSACTION_ROLLBACKS, "db.system" => self.system, "reason" => reason)
                .increment(1);
        }
    }
}

#[cfg(any(feature = "postgres", feature = "sqlite"))]
impl Drop for TxTimer {
    fn drop(&mut self) {
        if !self.done {
            self.record("rollback", Some("dropped"));
        }
    }
}

/// Records how long a statement waited for a pooled connection.
#[cfg(feature = "postgres")]
pub(crate) fn pool_wait(system: &'static str, waited: Duration) {
    metrics::histogram!(names::POOL_WAIT, "db.system" => system).record(waited.as_secs_f64());
}

/// Counts one migration applied or reverted (`direction` `up` / `down`).
#[cfg(any(feature = "postgres", feature = "sqlite", feature = "mongodb"))]
pub(crate) fn migration_run(system: &'static str, direction: &'static str, ok: bool) {
    metrics::counter!(names::MIGRATION_RUNS, "db.system" => system, "direction" => direction,
        "outcome" => if ok { "ok" } else { "error" })
    .increment(1);
}

/// Records one cache backend operation's duration.
pub(crate) fn cache_operation(backend: &'static str, op: &'static str, elapsed: Duration, ok: bool) {
    metrics::histogram!(names::CACHE_OPERATION_DURATION, "cache.backend" => backend, "db.operation.name" => op,
        "outcome" => if ok { "ok" } else { "error" })
    .record(elapsed.as_secs_f64());
}

/// Sets the health gauges from health reports ([`names::HEALTH_UP`],
/// [`names::HEALTH_LATENCY`] and, where a report knows it, [`names::REPLICATION_LAG`]),
/// labelled `db.system = report.store`. Call it with the reports a readiness endpoint or a
/// periodic task produced: polystore does not poll.
pub fn record_health_metrics(reports: &[HealthReport]) {
    for r in reports {
        metrics::gauge!(names::HEALTH_UP, "db.system" => r.store).set(if r.reachable { 1.0 } else { 0.0 });
        metrics::gauge!(names::HEALTH_LATENCY, "db.system" => r.store).set(r.latency_ms / 1000.0);
        if let Some(lag) = r.replication_lag_ms {
            metrics::gauge!(names::REPLICATION_LAG, "db.system" => r.store).set(lag / 1000.0);
        }
    }
}

#[cfg(any(feature = "postgres", feature = "sqlite"))]
/// A `Result` for the helpers here.
pub(crate) type Outcome<'a> = std::result::Result<RowCount, &'a Error>;

#[cfg(any(feature = "postgres", feature = "sqlite"))]
/// The outcome of `result` for [`finished`].
pub(crate) fn outcome<T: Rows>(result: &crate::Result<T>) -> Outcome<'_> {
    result.as_ref().map(Rows::rows)
}
