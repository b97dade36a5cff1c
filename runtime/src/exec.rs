//! The execution point: every SQL statement polystore runs passes through here, inside one
//! `tracing` span (`db.system`, operation, model, table, statement text), counted in the
//! handle's [`Stats`], with driver errors mapped to [`Error`] variants.

use std::future::Future;

use futures_util::TryStreamExt as _;
use sqlx::AssertSqlSafe;
use tracing::Instrument as _;

use crate::db::{Executor, Stats, Target};
use crate::error::{ConstraintKind, Error, Result, constraint_violation};
use crate::model::{Model, RowReader, decode_error};
use crate::observe::{self, Rows, Shape};
use crate::schema::ModelSchema;
use crate::sql::build::InsertValues;
use crate::sql::{Param, Statement};
use crate::value::FieldType;

/// A statement about to run: its span and what the execution point reports when it is done.
pub(crate) struct StatementSpan {
    /// The statement's `tracing` span.
    pub(crate) span: tracing::Span,
    shape: Shape,
    sql: std::sync::Arc<String>,
}

/// The span of one statement. It records the SQL text, never the bound values; `error.type`
/// is filled in when the statement fails.
fn span(
    system: &'static str,
    op: &'static str,
    schema: Option<&'static ModelSchema>,
    sql: &std::sync::Arc<String>,
) -> StatementSpan {
    let span = tracing::debug_span!(
        "polystore.sql",
        db.system = system,
        db.operation.name = op,
        db.collection.name = schema.map(|s| s.table).unwrap_or(""),
        polystore.model = schema.map(|s| s.name).unwrap_or(""),
        db.query.text = sql.as_str(),
        "error.type" = tracing::field::Empty,
    );
    StatementSpan { span, shape: Shape { system, op, schema }, sql: sql.clone() }
}

/// Runs `fut` as the statement described by the other arguments: the one choke point. Counts
/// it, times it, and reports it to [`observe`](crate::observe) (metrics, slow log).
async fn run<T: Rows>(stats: &Stats, st: StatementSpan, fut: impl Future<Output = Result<T>>) -> Result<T> {
    observe::admit(st.shape, Some(&st.sql))?;
    stats.record_statement();
    let started = std::time::Instant::now();
    let result = fut.instrument(st.span.clone()).await;
    let elapsed = started.elapsed();
    if let Err(e) = &result {
        if reached_database(e) {
            stats.record_failure();
        }
        let class = e.class().as_str();
        st.span.record("error.type", class);
        st.span.in_scope(|| tracing::debug!(error = %e, error_type = class, "statement failed"));
    }
    observe::finished(stats, st.shape, &st.sql, elapsed, observe::outcome(&result));
    result
}

/// The parameters of a statement about to run: a list of owned ones (what every statement
/// built from [`Value`](crate::Value)s carries), or the rows of a multi-row INSERT, borrowed
/// from the caller's models until they are encoded.
pub(crate) enum Params<'a> {
    /// Owned parameters, in placeholder order.
    List(Vec<Param>),
    /// A multi-row INSERT's rows.
    Rows(InsertValues<'a>),
}

impl From<Vec<Param>> for Params<'_> {
    fn from(list: Vec<Param>) -> Self {
        Params::List(list)
    }
}

/// Encodes `params` (borrowed: the stale-plan retry binds them again).
#[cfg(feature = "postgres")]
fn pg_args(schema: Option<&ModelSchema>, params: &Params<'_>) -> Result<sqlx::postgres::PgArguments> {
    let mut args = sqlx::postgres::PgArguments::default();
    match params {
        Params::List(list) => {
            for p in list {
                crate::sql::postgres::bind(&mut args, p).map_err(|e| bind_error(schema, e))?;
            }
        }
        Params::Rows(rows) => crate::sql::postgres::bind_insert(&mut args, rows).map_err(|e| bind_error(schema, e))?,
    }
    Ok(args)
}

/// Encodes `params` for SQLite, whose arguments own their values (a borrowed row's text is
/// copied here, once).
#[cfg(feature = "sqlite")]
fn sqlite_args(schema: Option<&ModelSchema>, params: Params<'_>) -> Result<sqlx::sqlite::SqliteArguments> {
    let list = match params {
        Params::List(list) => list,
        Params::Rows(rows) => rows.to_params(),
    };
    let mut args = sqlx::sqlite::SqliteArguments::default();
    for p in list {
        crate::sql::sqlite::bind(&mut args, p).map_err(|e| bind_error(schema, e))?;
    }
    Ok(args)
}

fn bind_error(schema: Option<&ModelSchema>, e: Box<dyn std::error::Error + Send + Sync>) -> Error {
    Error::Encode {
        model: schema.map(|s| s.name).unwrap_or("?"),
        field: "?",
        source: crate::error::ValueError::Driver(e.to_string()),
    }
}

/// Reads a PostgreSQL row into a model.
#[cfg(feature = "postgres")]
struct PgReader<'r> {
    row: &'r sqlx::postgres::PgRow,
    schema: &'static ModelSchema,
}

#[cfg(feature = "postgres")]
impl RowReader for PgReader<'_> {
    #[inline]
    fn read<T: FieldType>(&mut self, field: usize) -> Result<T> {
        T::read_pg(self.row, field).map_err(|e| decode_error(self.schema, field, e))
    }
}

/// Reads a SQLite row into a model.
#[cfg(feature = "sqlite")]
struct SqliteReader<'r> {
    row: &'r sqlx::sqlite::SqliteRow,
    schema: &'static ModelSchema,
}

#[cfg(feature = "sqlite")]
impl RowReader for SqliteReader<'_> {
    #[inline]
    fn read<T: FieldType>(&mut self, field: usize) -> Result<T> {
        crate::sql::sqlite::read(self.row, field, T::COLUMN)
            .and_then(T::from_value)
            .map_err(|e| decode_error(self.schema, field, e))
    }
}

/// Expands `$body` once per target kind, with `$exec` the sqlx executor, `$args` the bound
/// arguments, `$text` the statement text (an `Arc<String>`, cheap to hand over again) and
/// `$reader` the row-reader constructor. `$body` evaluates to a `Result`.
///
/// On PostgreSQL a statement for a pool runs on a connection taken here (from the handle's
/// shelf of warm connections, see [`shelf`], or from the pool), so that a stale cached plan
/// (see [`stale_plan`]) can be dropped from *that* connection's statement cache; outside a
/// transaction the statement then runs once more (PostgreSQL refused it before running it),
/// with its arguments encoded again from the parameters, which are kept for that. A
/// connection whose statement succeeded goes back on the shelf.
macro_rules! dispatch {
    ($target:expr, $stats:ident, $failover_ok:expr, $schema:expr, $sql:expr, $params:expr, |$exec:ident, $args:ident, $text:ident, $reader:ident, $system:ident| $body:expr) => {{
        let shared_sql: std::sync::Arc<String> = std::sync::Arc::new($sql);
        match $target {
            #[cfg(feature = "postgres")]
            target @ (Target::PgPool(_) | Target::PgConn(_)) => {
                let $system = "postgresql";
                let params: Params<'_> = Params::from($params);
                let shelf = match &target {
                    Target::PgPool(shelf) => Some(*shelf),
                    _ => None,
                };
                #[allow(unused_macros)]
                macro_rules! $reader {
                    ($row:expr, $s:expr) => {
                        PgReader { row: $row, schema: $s }
                    };
                }
                // A replica's pool may name a pool to retry on when its server is lost.
                let failover = shelf.and_then(|s| s.failover()).filter(|_| $failover_ok && is_query(&shared_sql));
                let failover_sql = failover.map(|_| shared_sql.clone());
                let mut held = None;
                let first = match pg_connection(target, &mut held, $schema).await {
                    Err(e) => Err(e),
                    Ok(conn) => {
                        // Behind a transaction-pooling proxy a statement taken from the pool runs
                        // in a transaction of its own, so that its two round trips reach one
                        // server.
                        let pinned = shelf.is_some() && $stats.transaction_pooling();
                        if pinned {
                            pin_server(conn, $stats, $schema).await?;
                        }
                        // Inside a transaction a failed statement aborted it: no retry there (but
                        // the next transaction on this connection must not meet the stale plan
                        // again).
                        let retry = !pinned && !sqlx::Connection::is_in_transaction(&*conn);
                        let first = {
                            let ($exec, $args, $text) = (&mut *conn, pg_args($schema, &params)?, shared_sql.clone());
                            $body
                        };
                        let result = match first {
                            Err(e) if stale_plan(&e) => {
                                forget_statements(conn).await;
                                if retry {
                                    let ($exec, $args, $text) = (&mut *conn, pg_args($schema, &params)?, shared_sql);
                                    $body
                                } else {
                                    Err(e)
                                }
                            }
                            other => other,
                        };
                        let result = if pinned { unpin_server(conn, result, $schema).await } else { result };
                        if let (Ok(_), Some(shelf), Some(leased)) = (&result, shelf, held.take()) {
                            shelf.put(leased);
                        }
                        result
                    }
                };
                drop(held);
                match (first, failover, failover_sql) {
                    // The server was lost (refused, closed, shutting down) before the statement
                    // returned: once more elsewhere (another replica, or the failover pool),
                    // counted there.
                    (Err(e), Some(failover), Some(sql)) if lost_connection(&e) => {
                        let (elsewhere, counters) = failover.elsewhere(&e);
                        let $stats = &counters;
                        let mut held = None;
                        let conn = pg_connection(Target::PgPool(&elsewhere), &mut held, $schema).await?;
                        let pinned = $stats.transaction_pooling();
                        if pinned {
                            pin_server(conn, $stats, $schema).await?;
                        }
                        let result = {
                            let ($exec, $args, $text) = (&mut *conn, pg_args($schema, &params)?, sql);
                            $body
                        };
                        let result = if pinned { unpin_server(conn, result, $schema).await } else { result };
                        if let (Ok(_), Some(leased)) = (&result, held.take()) {
                            elsewhere.put(leased);
                        }
                        result
                    }
                    (other, _, _) => other,
                }
            }
            #[cfg(feature = "sqlite")]
            Target::SqlitePool($exec) => {
                let $system = "sqlite";
                let $args = sqlite_args($schema, Params::from($params))?;
                let $text = shared_sql;
                #[allow(unused_macros)]
                macro_rules! $reader {
                    ($row:expr, $s:expr) => {
                        SqliteReader { row: $row, schema: $s }
                    };
                }
                $body
            }
            #[cfg(feature = "sqlite")]
            Target::SqliteConn($exec) => {
                let $system = "sqlite";
                let $args = sqlite_args($schema, Params::from($params))?;
                let $text = shared_sql;
                #[allow(unused_macros)]
                macro_rules! $reader {
                    ($row:expr, $s:expr) => {
                        SqliteReader { row: $row, schema: $s }
                    };
                }
                $body
            }
            // Operations reach other stores through their drivers; a statement reaching this
            // point for a store without SQL (raw SQL on MongoDB, say) cannot run there.
            #[allow(unreachable_patterns)]
            other => {
                drop(($params, shared_sql));
                Err(crate::driver::refuse(&other, "SQL statements", "use the store's own API"))
            }
        }
    }};
}

/// Whether a statement only reads (`SELECT …`, or `WITH …` as polystore's recursive reads
/// start): the statements a replica's pool may retry on its failover pool.
#[cfg(feature = "postgres")]
fn is_query(sql: &str) -> bool {
    let head = sql.trim_start().get(..6).unwrap_or_default();
    head.eq_ignore_ascii_case("select") || head.get(..4).is_some_and(|w| w.eq_ignore_ascii_case("with"))
}

/// Whether a statement failed because its server is gone or going: no connection could be
/// opened, the connection broke, or the server is shutting down or starting up (`57P01`,
/// `57P02`, `57P03`, class `08`). Nothing ran, or what ran was rolled back with the session.
#[cfg(feature = "postgres")]
fn lost_connection(e: &Error) -> bool {
    match e {
        Error::Connection { .. } => true,
        Error::Database { code: Some(code), .. } => {
            code.starts_with("08") || matches!(code.as_str(), "57P01" | "57P02" | "57P03")
        }
        _ => false,
    }
}

/// Whether PostgreSQL refused a cached plan because a table's column types changed since
/// the connection prepared the statement (`0A000 cached plan must not change result type`,
/// e.g. after `ALTER COLUMN .. TYPE VARCHAR` run outside polystore). PostgreSQL raises it
/// before running the statement.
#[cfg(feature = "postgres")]
fn stale_plan(e: &Error) -> bool {
    matches!(e, Error::Database { code: Some(code), message } if code == "0A000" && message.contains("cached plan must not change result type"))
}

/// The connection a PostgreSQL statement runs on: a transaction's, or one taken from the
/// handle's shelf or pool into `held` (back to the pool when `held` drops; the caller puts it
/// back on the shelf after a successful statement).
#[cfg(feature = "postgres")]
async fn pg_connection<'a>(
    target: Target<'a>,
    held: &'a mut Option<shelf::Leased>,
    schema: Option<&'static ModelSchema>,
) -> Result<&'a mut sqlx::PgConnection> {
    match target {
        Target::PgPool(shelf) => {
            let conn = shelf.take().await.map_err(|e| map_error(e, "postgresql", schema))?;
            Ok(held.insert(conn).conn())
        }
        Target::PgConn(conn) => Ok(conn),
        #[allow(unreachable_patterns)]
        _ => Err(Error::Unsupported { store: "polystore", what: "a PostgreSQL statement on another store".into() }),
    }
}

/// Opens the transaction that pins one server connection of a transaction-pooling proxy for
/// a statement's round trips ([`Db::with_transaction_pooling`](crate::Db::with_transaction_pooling)).
/// With [`Db::with_local_search_path`](crate::Db::with_local_search_path) the `SET LOCAL`
/// travels in the same message as `BEGIN`.
#[cfg(feature = "postgres")]
async fn pin_server(conn: &mut sqlx::PgConnection, stats: &Stats, schema: Option<&'static ModelSchema>) -> Result<()> {
    let opened = match stats.local_search_path() {
        None => sqlx::raw_sql("BEGIN").execute(conn).await,
        Some(set) => sqlx::raw_sql(AssertSqlSafe(format!("BEGIN; {set}"))).execute(conn).await,
    };
    opened.map(drop).map_err(|e| map_error(e, "postgresql", schema))
}

/// Ends the transaction of [`pin_server`]: commits after a statement that succeeded (a failed
/// commit is the statement's error), rolls back after one that failed.
#[cfg(feature = "postgres")]
async fn unpin_server<T>(
    conn: &mut sqlx::PgConnection,
    result: Result<T>,
    schema: Option<&'static ModelSchema>,
) -> Result<T> {
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    let ended = sqlx::raw_sql(end).execute(conn).await.map_err(|e| map_error(e, "postgresql", schema));
    match (result, ended) {
        (Ok(value), Ok(_)) => Ok(value),
        (Ok(_), Err(e)) => Err(e),
        (Err(e), _) => Err(e),
    }
}

/// Drops every statement `conn` prepared, so the next run prepares afresh against the
/// current table definitions. A failure here surfaces on the connection's next statement.
#[cfg(feature = "postgres")]
async fn forget_statements(conn: &mut sqlx::PgConnection) {
    use sqlx::Connection as _;
    if let Err(e) = conn.clear_cached_statements().await {
        tracing::debug!(error = %e, "clearing the statement cache failed");
    }
}

/// A row as the driver returned it, before it is decoded into a model.
pub(crate) enum RowRef<'r> {
    #[cfg(feature = "postgres")]
    Pg(&'r sqlx::postgres::PgRow),
    #[cfg(feature = "sqlite")]
    Sqlite(&'r sqlx::sqlite::SqliteRow),
}

#[cfg(feature = "postgres")]
impl<'r> From<&'r sqlx::postgres::PgRow> for RowRef<'r> {
    fn from(row: &'r sqlx::postgres::PgRow) -> Self {
        RowRef::Pg(row)
    }
}

#[cfg(feature = "sqlite")]
impl<'r> From<&'r sqlx::sqlite::SqliteRow> for RowRef<'r> {
    fn from(row: &'r sqlx::sqlite::SqliteRow) -> Self {
        RowRef::Sqlite(row)
    }
}

/// Decodes one row into an `M` (fields in schema column order).
pub(crate) fn decode_row<M: Model>(row: RowRef<'_>) -> Result<M> {
    match row {
        #[cfg(feature = "postgres")]
        RowRef::Pg(row) => M::from_reader(&mut PgReader { row, schema: M::SCHEMA }),
        #[cfg(feature = "sqlite")]
        RowRef::Sqlite(row) => M::from_reader(&mut SqliteReader { row, schema: M::SCHEMA }),
    }
}

/// Where [`fetch_rows`] hands the rows it reads. The statement may run more than once (a stale
/// plan, a lost replica): each run starts with `begin`, which drops what an earlier run kept.
pub(crate) trait RowSink: Send {
    /// A run of the statement starts.
    fn begin(&mut self);
    /// One row, in the order the server sent it.
    fn row(&mut self, row: RowRef<'_>) -> Result<()>;
}

/// The rows of a statement, decoded into models as they stream in.
struct Models<M>(Vec<M>);

impl<M: Model> RowSink for Models<M> {
    fn begin(&mut self) {
        self.0.clear();
    }
    fn row(&mut self, row: RowRef<'_>) -> Result<()> {
        self.0.push(decode_row(row)?);
        Ok(())
    }
}

/// The one row of a statement, if it returned one.
struct OneModel<M>(Option<M>);

impl<M: Model> RowSink for OneModel<M> {
    fn begin(&mut self) {
        self.0 = None;
    }
    fn row(&mut self, row: RowRef<'_>) -> Result<()> {
        self.0 = Some(decode_row(row)?);
        Ok(())
    }
}

/// Runs a statement returning rows (all of them, or at most one with `optional`) and hands
/// each to `sink` as it streams in. Not generic: the statement machinery (dispatch, retries,
/// spans, metrics) is compiled once here, and each model only adds its small decoding
/// [`RowSink`]. Boxed in builds with debug assertions only, so that its body is compiled in
/// this crate (see `compiled_here`).
#[crate::compiled_here]
#[allow(clippy::too_many_arguments)]
async fn fetch_rows<'a>(
    target: Target<'a>,
    stats: &'a std::sync::Arc<Stats>,
    op: &'static str,
    schema: &'static ModelSchema,
    sql: String,
    params: Params<'a>,
    optional: bool,
    sink: &'a mut dyn RowSink,
) -> Result<()> {
    dispatch!(target, stats, true, Some(schema), sql, params, |exec, args, sql, reader, system| {
        let sp = span(system, op, Some(schema), &sql);
        let sink: &mut dyn RowSink = &mut *sink;
        run(stats, sp, async move {
            sink.begin();
            let mut read = 0u64;
            let query = sqlx::query_with(AssertSqlSafe(sql), args).persistent(!stats.transaction_pooling());
            if optional {
                let row = query.fetch_optional(exec).await.map_err(|e| map_error(e, system, Some(schema)))?;
                if let Some(row) = row {
                    sink.row(RowRef::from(&row))?;
                    read = 1;
                }
            } else {
                let mut rows = query.fetch(exec);
                while let Some(row) = rows.try_next().await.map_err(|e| map_error(e, system, Some(schema)))? {
                    sink.row(RowRef::from(&row))?;
                    read += 1;
                }
            }
            Ok(RowsRead(read))
        })
        .await
    })
    .map(drop)
}

/// How many rows [`fetch_rows`] handed to its sink: the rows metrics count them.
struct RowsRead(u64);

impl Rows for RowsRead {
    fn rows(&self) -> crate::observe::RowCount {
        crate::observe::RowCount::Returned(self.0)
    }
}

/// Runs a statement returning rows of `M` (in schema column order) and decodes them as they
/// stream in.
pub(crate) async fn fetch_models<M: Model, E: Executor>(
    e: &mut E,
    op: &'static str,
    stmt: Statement,
) -> Result<Vec<M>> {
    let (target, stats) = e.target();
    let mut sink = Models::<M>(Vec::new());
    fetch_rows(target, stats, op, M::SCHEMA, stmt.sql, stmt.params.into(), false, &mut sink).await?;
    Ok(sink.0)
}

/// Runs a row-returning statement on `e` and hands its rows to `sink` (the write paths'
/// statements, whose rows [`Params::Rows`] may borrow from the models being written).
pub(crate) async fn fetch_into(
    e: &mut dyn Executor,
    op: &'static str,
    schema: &'static ModelSchema,
    sql: String,
    params: Params<'_>,
    sink: &mut dyn RowSink,
) -> Result<()> {
    let (target, stats) = e.target();
    fetch_rows(target, stats, op, schema, sql, params, false, sink).await
}

/// Runs a statement returning at most one row of `M`.
pub(crate) async fn fetch_optional_model<M: Model, E: Executor>(
    e: &mut E,
    op: &'static str,
    stmt: Statement,
) -> Result<Option<M>> {
    let (target, stats) = e.target();
    let mut sink = OneModel::<M>(None);
    fetch_rows(target, stats, op, M::SCHEMA, stmt.sql, stmt.params.into(), true, &mut sink).await?;
    Ok(sink.0)
}

/// Runs a statement returning one integer (a count).
pub(crate) async fn fetch_i64<E: Executor>(
    e: &mut E,
    op: &'static str,
    schema: &'static ModelSchema,
    stmt: Statement,
) -> Result<i64> {
    let (target, stats) = e.target();
    fetch_i64_on(target, stats, op, schema, stmt).await
}

/// [`fetch_i64`] on a target: compiled once, whatever the executor (boxed as
/// [`fetch_rows`] is).
#[crate::compiled_here]
async fn fetch_i64_on<'a>(
    target: Target<'a>,
    stats: &'a std::sync::Arc<Stats>,
    op: &'static str,
    schema: &'static ModelSchema,
    stmt: Statement,
) -> Result<i64> {
    let Statement { sql, params } = stmt;
    dispatch!(target, stats, true, Some(schema), sql, params, |exec, args, sql, reader, system| {
        let sp = span(system, op, Some(schema), &sql);
        run(stats, sp, async move {
            sqlx::query_scalar_with::<_, i64, _>(AssertSqlSafe(sql), args)
                .persistent(!stats.transaction_pooling())
                .fetch_one(exec)
                .await
                .map_err(|e| map_error(e, system, Some(schema)))
        })
        .await
    })
}

/// Runs a statement for its effect; returns the number of rows affected.
pub(crate) async fn execute<E: Executor>(
    e: &mut E,
    op: &'static str,
    schema: Option<&'static ModelSchema>,
    stmt: Statement,
) -> Result<u64> {
    let (target, stats) = e.target();
    execute_on(target, stats, op, schema, stmt).await
}

/// [`execute`] on a target: compiled once, whatever the executor (boxed as [`fetch_rows`]
/// is).
#[crate::compiled_here]
async fn execute_on<'a>(
    target: Target<'a>,
    stats: &'a std::sync::Arc<Stats>,
    op: &'static str,
    schema: Option<&'static ModelSchema>,
    stmt: Statement,
) -> Result<u64> {
    let Statement { sql, params } = stmt;
    dispatch!(target, stats, false, schema, sql, params, |exec, args, sql, reader, system| {
        let sp = span(system, op, schema, &sql);
        run(stats, sp, async move {
            sqlx::query_with(AssertSqlSafe(sql), args)
                .persistent(!stats.transaction_pooling())
                .execute(exec)
                .await
                .map(|r| r.rows_affected())
                .map_err(|e| map_error(e, system, schema))
        })
        .await
    })
}

/// Runs a parameterless statement (DDL, health checks).
pub(crate) async fn execute_raw<E: Executor>(
    e: &mut E,
    op: &'static str,
    schema: Option<&'static ModelSchema>,
    sql: &str,
) -> Result<()> {
    execute(e, op, schema, Statement { sql: sql.to_owned(), params: Vec::new() }).await.map(drop)
}

/// Whether an error came from the database running the statement (and so, on PostgreSQL,
/// aborted the enclosing transaction), rather than from encoding or decoding on our side.
pub(crate) fn reached_database(e: &Error) -> bool {
    matches!(
        e,
        Error::UniqueViolation { .. }
            | Error::ConstraintViolation { .. }
            | Error::Database { .. }
            | Error::Connection { .. }
            | Error::Driver(_)
    )
}

/// A connection failure while opening a pool.
pub(crate) fn connection_error(store: &'static str, e: sqlx::Error) -> Error {
    Error::Connection { store, message: crate::error::sqlx_message(&e) }
}

/// Maps a driver error to an [`Error`], naming the model and, for unique violations, the
/// fields of the violated constraint.
pub(crate) fn map_error(e: sqlx::Error, system: &'static str, schema: Option<&'static ModelSchema>) -> Error {
    use sqlx::error::ErrorKind;
    let model = schema.map(|s| s.name).unwrap_or("?");
    match e {
        sqlx::Error::Database(db) => {
            let message = db.message().to_owned();
            let constraint = db.constraint().map(str::to_owned);
            match db.kind() {
                ErrorKind::UniqueViolation => {
                    let (constraint, fields) = unique_details(schema, constraint, &message);
                    Error::UniqueViolation { model, constraint, fields }
                }
                ErrorKind::ForeignKeyViolation => {
                    constraint_violation(schema, ConstraintKind::ForeignKey, constraint, message)
                }
                ErrorKind::NotNullViolation => {
                    constraint_violation(schema, ConstraintKind::NotNull, constraint, message)
                }
                ErrorKind::CheckViolation => constraint_violation(schema, ConstraintKind::Check, constraint, message),
                ErrorKind::ExclusionViolation => {
                    constraint_violation(schema, ConstraintKind::Exclusion, constraint, message)
                }
                _ => {
                    let code = db.code().map(|c| c.into_owned());
                    let message = if code.as_deref() == Some("0A000") && message.contains("cached plan") {
                        format!(
                            "{model}: the table's column types changed since this connection prepared the statement \
                             ({message}); polystore dropped the connection's prepared statements, run the operation again"
                        )
                    } else {
                        message
                    };
                    Error::Database { code, message }
                }
            }
        }
        e @ (sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_)) => Error::Connection { store: system, message: e.to_string() },
        sqlx::Error::Configuration(e) => Error::Config(e.to_string()),
        other => Error::Driver(Box::new(other)),
    }
}

/// Works out which constraint and fields a unique violation concerns. PostgreSQL names the
/// constraint; SQLite names the columns (`UNIQUE constraint failed: users.email`).
fn unique_details(
    schema: Option<&'static ModelSchema>,
    constraint: Option<String>,
    message: &str,
) -> (Option<String>, Vec<&'static str>) {
    let Some(schema) = schema else { return (constraint, Vec::new()) };
    if let Some(name) = constraint {
        let fields = schema.fields_of_constraint(&name);
        return (Some(name), fields);
    }
    let Some(list) = message.split("constraint failed:").nth(1) else { return (None, Vec::new()) };
    let columns: Vec<&str> = list.split(',').map(|c| c.trim().rsplit('.').next().unwrap_or("")).collect();
    let positions: Vec<usize> = columns.iter().filter_map(|c| schema.field_by_column(c).map(|(i, _)| i)).collect();
    let fields = positions.iter().map(|&i| schema.fields[i].name).collect();
    let name = if positions == schema.primary_key {
        Some(schema.primary_key_name())
    } else {
        schema.indexes.iter().find(|ix| ix.unique && ix.fields == positions.as_slice()).map(|ix| ix.name.to_owned())
    };
    (name, fields)
}

mod rows;
#[cfg(feature = "postgres")]
mod shelf;

pub(crate) use rows::{ValueReader, fetch_with, stream_models};
#[cfg(feature = "postgres")]
pub(crate) use shelf::{Busy, Failover, FailoverReport, Leased, PgShelf};
