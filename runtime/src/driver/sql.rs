//! The SQL driver: PostgreSQL and SQLite. Operations are lowered to statements by
//! [`crate::sql`] in the target's [`Dialect`] and run through the SQL execution point
//! (`crate::exec`), which decodes rows through the models' positional readers.

use super::{Capabilities, Driver};
use crate::crud::{Keys, check_given_key, check_key, one_row};
use crate::db::{Executor, Target};
use crate::error::{Error, Result};
use crate::exec;
use crate::model::Model;
use crate::query::page::{KnownKey, plan};
use crate::query::{Assign, Columns, Page, PageRequest, Query, SelectItem};
use crate::schema::ModelSchema;
use crate::sql::{Dialect, KeySequenceSql, Statement, build, lower};
use crate::value::Value;

/// PostgreSQL and SQLite.
pub(crate) struct Sql;

impl Sql {
    /// `postgresql` or `sqlite`, as the target is.
    pub(crate) fn store_name(target: &Target<'_>) -> &'static str {
        match target {
            #[cfg(feature = "postgres")]
            Target::PgPool(_) | Target::PgConn(_) => "postgresql",
            #[cfg(feature = "sqlite")]
            Target::SqlitePool(_) | Target::SqliteConn(_) => "sqlite",
            #[allow(unreachable_patterns)]
            _ => "sql",
        }
    }
}

/// The SQL dialect of whatever `db` is (a SQL target: the driver only runs on those).
pub(crate) fn dialect<E: Executor + ?Sized>(db: &mut E) -> &'static dyn Dialect {
    match db.target().0.dialect() {
        Some(d) => d,
        None => unreachable!("the SQL driver runs on PostgreSQL and SQLite targets only (see `dispatch!`)"),
    }
}

/// How a statement over `schema` filtered by `filter` is lowered on `db`: in `db`'s dialect,
/// with what the catalog says about the table's indexes in scope when the filter's key lists
/// depend on it (a list on a column the schema does not know to be indexed; see `sql::hints`).
/// Every lowering of a filtered statement in this driver starts here, so none can leave the
/// catalog out.
async fn lowering<E: Executor>(
    db: &mut E,
    schema: &'static ModelSchema,
    filter: Option<&crate::query::Node>,
) -> Lowering {
    let (target, stats) = db.target();
    let known = index_answers(target, stats, schema, filter).await;
    Lowering { d: dialect(db), known }
}

/// The dialect and index answers a statement is lowered with (see [`lowering`]).
struct Lowering {
    d: &'static dyn Dialect,
    known: Option<std::sync::Arc<crate::sql::hints::Known>>,
}

impl Lowering {
    /// Runs `lower` in the dialect, with the index answers in scope.
    fn run<R>(self, lower: impl FnOnce(&'static dyn Dialect) -> R) -> R {
        let d = self.d;
        match self.known {
            Some(known) => crate::sql::hints::lowering(Some(known), || lower(d)),
            None => lower(d),
        }
    }
}

/// The catalog's answers about the indexes of `schema`'s table, when the lowering of
/// `filter` could use them: `None` otherwise, and always on SQLite. Not generic, and in dev
/// builds compiled here rather than in every crate that reads models.
#[crate::compiled_here]
async fn index_answers<'a>(
    target: Target<'a>,
    stats: &'a crate::db::Stats,
    schema: &'static ModelSchema,
    filter: Option<&'a crate::query::Node>,
) -> Option<std::sync::Arc<crate::sql::hints::Known>> {
    if !crate::sql::hints::needs_catalog(schema, filter) {
        return None;
    }
    #[cfg(feature = "postgres")]
    {
        crate::sql::hints::answers(target, stats, schema.table).await
    }
    #[cfg(not(feature = "postgres"))]
    {
        let _ = (target, stats);
        None
    }
}

impl Driver for Sql {
    const CAPABILITIES: Capabilities = Capabilities {
        raw_sql: true,
        sql_transactions: true,
        savepoints: true,
        returning: true,
        join_table_writes: true,
    };

    async fn get<M: Model, E: Executor>(db: &mut E, key: Vec<Value>) -> Result<Option<M>> {
        let stmt = build::find_by_key_cached(dialect(db), M::SCHEMA, key);
        exec::fetch_optional_model(db, "find", stmt).await
    }

    async fn get_many<M: Model, E: Executor>(db: &mut E, keys: &[Vec<Value>]) -> Result<Vec<M>> {
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(500) {
            let mut query = Query::<M>::new();
            query.filter = Some(crate::cache::keys_filter(M::SCHEMA, chunk));
            let stmt = lower::select(dialect(db), M::SCHEMA, &query)?;
            out.extend(exec::fetch_models::<M, E>(db, "find_many", stmt).await?);
        }
        Ok(out)
    }

    async fn insert<M: Model, E: Executor>(db: &mut E, rows: &[M], keys: Keys, op: &'static str) -> Result<Vec<M>> {
        let d = dialect(db);
        let now = chrono::Utc::now();
        let keep = keys == Keys::Keep;
        let per = build::rows_per_statement(d, M::SCHEMA, keep);
        let mut stmts = Vec::with_capacity(rows.len().div_ceil(per));
        let mut max_key = None;
        for chunk in rows.chunks(per) {
            // The rows' values are borrowed until they are bound (no copy of their strings).
            let mut batch = build::InsertValues::new(M::SCHEMA, keep, chunk.len());
            for row in chunk {
                let given = batch.push_row(|out| row.values_ref(out), now, M::VERSION_FIELD)?;
                max_key = max_key.max(check_given_key(M::SCHEMA, given, keys)?);
            }
            stmts.push(Pending::Insert(build::insert_rows(d, batch)));
        }
        write_rows::<M, E>(db, op, stmts, max_key).await
    }

    async fn update<M: Model, E: Executor>(db: &mut E, row: &M) -> Result<M> {
        let mut values = row.to_values()?;
        build::stamp(M::SCHEMA, &mut values, chrono::Utc::now(), false);
        let expected = crate::version::bump::<M>(&mut values)?;
        let key = expected.as_ref().map(|_| M::SCHEMA.key_of(&values));
        let stmt = build::update_versioned(dialect(db), M::SCHEMA, values, expected.clone());
        let Some(row) = exec::fetch_optional_model(db, "update", stmt).await? else {
            return Err(lost_write::<M>(db, key, expected).await);
        };
        crate::cache::rows_written(&*db, std::slice::from_ref(&row)).await;
        Ok(row)
    }

    async fn update_fields<M: Model, E: Executor>(
        db: &mut E,
        key: Vec<Value>,
        mut sets: Vec<(usize, Value)>,
    ) -> Result<M> {
        let expected = crate::version::bump_sets::<M>(&mut sets)?;
        let lost_key = expected.as_ref().map(|_| key.clone());
        let stmt =
            build::update_columns_versioned(dialect(db), M::SCHEMA, sets, key, chrono::Utc::now(), expected.clone());
        let Some(row) = exec::fetch_optional_model(db, "update", stmt).await? else {
            return Err(lost_write::<M>(db, lost_key, expected).await);
        };
        crate::cache::rows_written(&*db, std::slice::from_ref(&row)).await;
        Ok(row)
    }

    async fn upsert<M: Model, E: Executor>(db: &mut E, row: &M, conflict: &[usize]) -> Result<M> {
        let mut values = row.to_values()?;
        // Conflicting on the primary key writes the key, a generated one too (see `build::upsert`).
        let max_key = if conflict == M::SCHEMA.primary_key { check_key(M::SCHEMA, &values, Keys::Keep)? } else { None };
        build::stamp(M::SCHEMA, &mut values, chrono::Utc::now(), true);
        let d = dialect(db);
        if M::VERSION_FIELD.is_some() {
            return upsert_versioned::<M, E>(db, values, conflict, max_key).await;
        }
        // A chosen generated key the sequence already handed out (the usual case: updating a
        // row it created) is written in one statement, guarded by that very test; only a key
        // beyond the sequence takes the locked path that advances it.
        if let Some(key) = max_key.filter(|&k| k >= 1)
            && let Some(seq) = key_sequence(d, M::SCHEMA, key)
            && let Some(guarded) = build::upsert_with_generated_key(d, M::SCHEMA, values.clone(), key)
        {
            let rows = exec::fetch_models::<M, _>(db, "upsert", guarded).await?;
            if !rows.is_empty() {
                crate::cache::rows_written(&*db, &rows).await;
                return one_row(rows);
            }
            let stmt = build::upsert(d, M::SCHEMA, values, conflict);
            return one_row(run_atomically::<M, E>(db, "upsert", vec![Pending::Statement(stmt)], Some(seq)).await?);
        }
        let moves_key = conflict != M::SCHEMA.primary_key
            && !M::SCHEMA.key_fields().any(|f| f.generated)
            && crate::cache::caches(&*db, M::SCHEMA);
        if moves_key {
            // The conflicting row may take the written key: its old key is invalidated too.
            let stmt = build::upsert(d, M::SCHEMA, values.clone(), conflict);
            return one_row(super::sql_cache::upsert_moving_key::<M, E>(db, &values, conflict, stmt).await?);
        }
        let stmt = build::upsert(d, M::SCHEMA, values, conflict);
        one_row(write_rows::<M, E>(db, "upsert", vec![Pending::Statement(stmt)], max_key).await?)
    }

    async fn delete_key<M: Model, E: Executor>(db: &mut E, key: Vec<Value>, expected: Option<Value>) -> Result<u64> {
        let expected = M::VERSION_FIELD.zip(expected);
        let stmt = build::delete_versioned(dialect(db), M::SCHEMA, key.clone(), expected.clone());
        let deleted = exec::execute(db, "delete", Some(M::SCHEMA), stmt).await?;
        if deleted == 0 && expected.is_some() {
            return Err(lost_write::<M>(db, Some(key), expected).await);
        }
        crate::cache::rows_deleted(&*db, M::SCHEMA, vec![key]).await;
        Ok(deleted)
    }

    async fn all<M: Model, E: Executor>(db: &mut E, q: &Query<M>) -> Result<Vec<M>> {
        let stmt = lowering(db, M::SCHEMA, q.filter.as_ref()).await.run(|d| lower::select(d, M::SCHEMA, q))?;
        exec::fetch_models(db, "select", stmt).await
    }

    async fn first<M: Model, E: Executor>(db: &mut E, q: Query<M>) -> Result<Option<M>> {
        let stmt =
            lowering(db, M::SCHEMA, q.filter.as_ref()).await.run(|d| lower::select(d, M::SCHEMA, &q.limit(1)))?;
        exec::fetch_optional_model(db, "select", stmt).await
    }

    async fn one<M: Model, E: Executor>(db: &mut E, q: Query<M>) -> Result<M> {
        let limit = q.limit.map_or(2, |n| n.min(2));
        let stmt =
            lowering(db, M::SCHEMA, q.filter.as_ref()).await.run(|d| lower::select(d, M::SCHEMA, &q.limit(limit)))?;
        let mut rows: Vec<M> = exec::fetch_models(db, "select", stmt).await?;
        match rows.len() {
            1 => Ok(rows.remove(0)),
            n => Err(Error::NotExactlyOne { model: M::SCHEMA.name, found: n as u64 }),
        }
    }

    async fn count<M: Model, E: Executor>(db: &mut E, q: &Query<M>) -> Result<i64> {
        let stmt = lowering(db, M::SCHEMA, q.filter.as_ref()).await.run(|d| lower::count(d, M::SCHEMA, q))?;
        exec::fetch_i64(db, "count", M::SCHEMA, stmt).await
    }

    async fn exists<M: Model, E: Executor>(db: &mut E, q: &Query<M>) -> Result<bool> {
        let stmt = lowering(db, M::SCHEMA, q.filter.as_ref()).await.run(|d| lower::exists(d, M::SCHEMA, q))?;
        let rows = exec::fetch_with(db, "exists", Some(M::SCHEMA), stmt, |_| Ok(())).await?;
        Ok(!rows.is_empty())
    }

    fn stream<M: Model, E: Executor>(mut db: E, q: Query<M>) -> impl futures_util::Stream<Item = Result<M>> + Send {
        use futures_util::StreamExt;
        // Lowered when the stream is first polled, with the catalog's answers like every other
        // filtered statement (a key list on a column indexed outside polystore).
        futures_util::stream::once(async move {
            let stmt = lowering(&mut db, M::SCHEMA, q.filter.as_ref()).await.run(|d| lower::select(d, M::SCHEMA, &q));
            exec::stream_models::<M, E>(db, "stream", stmt)
        })
        .flatten()
    }

    async fn update_many<M: Model, E: Executor>(db: &mut E, q: &Query<M>, mut list: Vec<Assign>) -> Result<u64> {
        crate::version::bulk_bump::<M>(&mut list);
        let stamps = build::update_stamps(M::SCHEMA, chrono::Utc::now());
        if list.iter().any(|a| M::SCHEMA.is_key(a.field())) {
            // The old keys must be invalidated too: read first (see the cache's write hooks).
            return super::sql_cache::update_many_moving_keys(db, q, &list, stamps).await;
        }
        let stmt = lowering(db, M::SCHEMA, q.filter.as_ref())
            .await
            .run(|d| lower::update_many(d, M::SCHEMA, q, &list, stamps))?;
        super::sql_cache::bulk_write(db, "update_many", M::SCHEMA, stmt, super::sql_cache::Bulk::Update).await
    }

    async fn claim<M: Model, E: Executor>(db: &mut E, q: &Query<M>, n: u64, list: Vec<Assign>) -> Result<Vec<M>> {
        use crate::lock::{LockStrength, LockWait, RowLock};
        let mut tx = crate::db::begin_on(db).await?;
        let mut pick = q.clone();
        pick.with.clear();
        pick.limit = Some(pick.limit.map_or(n, |l| l.min(n)));
        let lock = RowLock { strength: LockStrength::Update, wait: LockWait::SkipLocked };
        let picked = locked::<M, _>(&mut &mut tx, &pick, lock).await?;
        if picked.is_empty() {
            tx.commit().await?;
            return Ok(picked);
        }
        let keys = picked
            .iter()
            .map(|row| {
                let values = row.to_values()?;
                Ok(M::SCHEMA.key_of(&values))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut by_key = Query::<M>::new();
        by_key.rows = q.rows;
        by_key.filter = Some(crate::cache::keys_filter(M::SCHEMA, &keys));
        Sql::update_many(&mut &mut tx, &by_key, list).await?;
        let mut rows = Sql::get_many::<M, _>(&mut &mut tx, &keys).await?;
        tx.commit().await?;
        // Back in the order they were picked (the query's).
        let position = |row: &M| row.primary_key_value();
        let order: Vec<Value> = picked.iter().map(position).collect();
        rows.sort_by_key(|row| order.iter().position(|k| *k == position(row)));
        Ok(rows)
    }

    async fn delete_many<M: Model, E: Executor>(db: &mut E, q: &Query<M>) -> Result<u64> {
        let stmt = lowering(db, M::SCHEMA, q.filter.as_ref()).await.run(|d| lower::delete_many(d, M::SCHEMA, q))?;
        super::sql_cache::bulk_write(db, "delete_many", M::SCHEMA, stmt, super::sql_cache::Bulk::Delete).await
    }

    async fn select<M: Model, E: Executor, T: Send>(
        db: &mut E,
        q: &Query<M>,
        items: &[SelectItem],
        mut decode: impl FnMut(&mut Columns<'_>) -> Result<T> + Send,
    ) -> Result<Vec<T>> {
        let stmt =
            lowering(db, M::SCHEMA, q.filter.as_ref()).await.run(|d| lower::select_items(d, M::SCHEMA, q, items))?;
        exec::fetch_with(db, "select", Some(M::SCHEMA), stmt, |row| decode(&mut Columns::new(row, M::SCHEMA.name)))
            .await
    }

    async fn link<E: Executor>(db: &mut E, join: &'static ModelSchema, pair: [(usize, Value); 2]) -> Result<()> {
        let [(left, l), (right, r)] = pair;
        let mut w = crate::sql::SqlWriter::new(dialect(db));
        w.push("INSERT INTO ").table(join.table).push(" (").ident(join.fields[left].column).push(", ");
        w.ident(join.fields[right].column).push(") VALUES (");
        w.param(l, join.fields[left].ty).push(", ");
        w.param(r, join.fields[right].ty).push(")");
        super::sql_cache::bulk_write(db, "link", join, w.finish(), super::sql_cache::Bulk::Update).await.map(drop)
    }

    async fn unlink<E: Executor>(db: &mut E, join: &'static ModelSchema, pair: [(usize, Value); 2]) -> Result<bool> {
        let [(left, l), (right, r)] = pair;
        let mut w = crate::sql::SqlWriter::new(dialect(db));
        w.push("DELETE FROM ").table(join.table).push(" WHERE ").ident(join.fields[left].column).push(" = ");
        w.param(l, join.fields[left].ty).push(" AND ");
        w.ident(join.fields[right].column).push(" = ").param(r, join.fields[right].ty);
        Ok(super::sql_cache::bulk_write(db, "unlink", join, w.finish(), super::sql_cache::Bulk::Delete).await? > 0)
    }

    async fn traverse<M: Model, E: Executor>(
        db: &mut E,
        links: crate::relation::TreeLinks,
        direction: crate::relation::Direction,
        start: Value,
        max_depth: u32,
    ) -> Result<Vec<M>> {
        let stmt = lower::tree::traversal(dialect(db), M::SCHEMA, links, direction, start, max_depth);
        exec::fetch_models(db, "traverse", stmt).await
    }

    async fn paginate<M: Model, E: Executor>(
        db: &mut E,
        q: Query<M>,
        request: PageRequest,
        known: Option<&KnownKey>,
    ) -> Result<Page<M>> {
        let d = dialect(db);
        // PostgreSQL sorts NULLs as larger than every value, SQLite as smaller.
        let plan = plan(M::SCHEMA, &q.order, d.name() == "postgresql", &request, known)?;
        let mut query = q;
        query.limit = None;
        query.offset = None;
        let stmt = lowering(db, M::SCHEMA, query.filter.as_ref()).await.run(|d| {
            lower::select_page(d, M::SCHEMA, &query, plan.keyset.clone(), &plan.run_order, plan.fetch_limit())
        })?;
        let items: Vec<M> = exec::fetch_models(db, "paginate", stmt).await?;
        plan.finish(items)
    }
}

/// The rows `q` matches, read with the row lock `lock` (see `crate::lock`): the query's own
/// `SELECT` with the dialect's lock clause, or on a dialect without row locks (SQLite) after
/// taking the database's write lock.
pub(crate) async fn locked<M: Model, E: Executor>(
    db: &mut E,
    q: &Query<M>,
    lock: crate::lock::RowLock,
) -> Result<Vec<M>> {
    let lowering = lowering(db, M::SCHEMA, q.filter.as_ref()).await;
    let d = lowering.d;
    let mut stmt = lowering.run(|d| lower::select(d, M::SCHEMA, q))?;
    match d.row_lock_clause(lock) {
        Some(clause) => stmt.sql.push_str(clause),
        None => write_lock::<M, E>(db, lock.wait == crate::lock::LockWait::NoWait).await?,
    }
    exec::fetch_models(db, "select_locked", stmt).await
}

/// Takes SQLite's database-wide write lock for the transaction `db` is in: an UPDATE that
/// matches no row still makes the transaction a writer. With `nowait`, the connection's busy
/// timeout is 0 for that statement (and restored after), so a lock held elsewhere fails at once.
async fn write_lock<M: Model, E: Executor>(db: &mut E, nowait: bool) -> Result<()> {
    let d = dialect(db);
    let mut w = crate::sql::SqlWriter::new(d);
    let key = M::SCHEMA.key_fields().next().map_or("rowid", |f| f.column);
    w.push("UPDATE ").table(M::SCHEMA.table).push(" SET ").ident(key).push(" = ").ident(key).push(" WHERE 0 = 1");
    let lock = w.finish();
    if !nowait {
        return exec::execute(db, "lock", Some(M::SCHEMA), lock).await.map(drop);
    }
    let pragma = |sql: String| Statement { sql, params: Vec::new() };
    let before = exec::fetch_i64(db, "lock", M::SCHEMA, pragma("PRAGMA busy_timeout".into())).await?;
    exec::execute(db, "lock", Some(M::SCHEMA), pragma("PRAGMA busy_timeout = 0".into())).await?;
    let taken = exec::execute(db, "lock", Some(M::SCHEMA), lock).await;
    exec::execute(db, "lock", Some(M::SCHEMA), pragma(format!("PRAGMA busy_timeout = {before}"))).await?;
    taken.map(drop)
}

/// The error of a write that matched no row: [`Error::NotFound`] for an unversioned one, and
/// for a versioned one (`key`, `expected` given) whether the key is still there decides
/// between that and [`Error::StaleVersion`]. For a model without a version field the choice is
/// made on the constant outside of any `async` body, so that its writes do not instantiate the
/// versioned lookup (see `hooks::with_hooks_if!`).
fn lost_write<'a, M: Model>(
    db: &'a mut dyn Executor,
    key: Option<Vec<Value>>,
    expected: Option<crate::version::Expected>,
) -> impl std::future::Future<Output = Error> + Send + 'a {
    use futures_util::future::Either;
    if const { M::VERSION_FIELD.is_none() } {
        Either::Left(std::future::ready(Error::NotFound { model: M::SCHEMA.name }))
    } else {
        #[cfg(debug_assertions)]
        let versioned: crate::model::BoxFuture<'a, Error> = Box::pin(lost_versioned_write::<M>(db, key, expected));
        #[cfg(not(debug_assertions))]
        let versioned = lost_versioned_write::<M>(db, key, expected);
        Either::Right(versioned)
    }
}

/// [`lost_write`] of a model with a version field.
async fn lost_versioned_write<M: Model>(
    mut db: &mut dyn Executor,
    key: Option<Vec<Value>>,
    expected: Option<crate::version::Expected>,
) -> Error {
    let (Some(key), Some((_, expected))) = (key, expected) else {
        return Error::NotFound { model: M::SCHEMA.name };
    };
    let stmt = build::find_by_key_cached(dialect(db), M::SCHEMA, key.clone());
    match exec::fetch_optional_model::<M, _>(&mut db, "find", stmt).await {
        Ok(found) => crate::version::lost(&*db, M::SCHEMA, key, &expected, found.is_some()).await,
        Err(e) => e,
    }
}

/// An upsert of a versioned model (`values` stamped, holding the row's version): written
/// only where no row conflicts, or the conflicting row is at the version the row holds; the
/// stored row gets the next version. A conflicting row at another version is
/// [`Error::StaleVersion`] (on the primary key) and nothing is written.
async fn upsert_versioned<M: Model, E: Executor>(
    db: &mut E,
    mut values: Vec<Value>,
    conflict: &[usize],
    max_key: Option<i64>,
) -> Result<M> {
    let expected = crate::version::bump::<M>(&mut values)?;
    let key: Vec<Value> = M::SCHEMA.key_of(&values);
    let moves_key = conflict != M::SCHEMA.primary_key
        && !M::SCHEMA.key_fields().any(|f| f.generated)
        && crate::cache::caches(&*db, M::SCHEMA);
    let stmt = build::upsert_versioned(dialect(db), M::SCHEMA, values.clone(), conflict, expected.clone());
    let rows = if moves_key {
        // As for unversioned rows: the conflicting row's old key is invalidated too.
        super::sql_cache::upsert_moving_key::<M, E>(db, &values, conflict, stmt).await?
    } else {
        write_rows::<M, E>(db, "upsert", vec![Pending::Statement(stmt)], max_key).await?
    };
    match rows.into_iter().next() {
        Some(row) => Ok(row),
        None if conflict == M::SCHEMA.primary_key => Err(lost_write::<M>(db, Some(key), expected).await),
        None => Err(Error::StaleVersion {
            model: M::SCHEMA.name,
            key: if key.len() == 1 { key[0].clone() } else { Value::Array(key) },
            expected: expected.map_or(0, |(_, v)| crate::version::as_i64(&v)),
        }),
    }
}

/// The dialect's statements for keeping the key sequence ahead of `max_key`, when the model
/// has a generated key and the dialect needs them.
fn key_sequence(d: &dyn Dialect, schema: &ModelSchema, max_key: i64) -> Option<KeySequenceSql> {
    let key = schema.fields.iter().find(|f| f.generated)?;
    d.key_sequence_sql(schema.table, key.column, max_key)
}

/// Runs row-returning write statements: a single one alone, several in one transaction.
/// When they write generated keys up to `max_key` chosen by the caller and the key sequence
/// has not reached that far, the transaction takes the dialect's sequence lock first and
/// advances the sequence after the writes. Only decoding the rows is per model: the rest is
/// [`write_rows_on`].
async fn write_rows<M: Model, E: Executor>(
    db: &mut E,
    op: &'static str,
    stmts: Vec<Pending<'_>>,
    max_key: Option<i64>,
) -> Result<Vec<M>> {
    let expected = stmts.iter().map(Pending::rows).sum();
    let mut rows = Written::<M> { rows: Vec::with_capacity(expected), kept: 0 };
    write_rows_on(db, op, M::SCHEMA, stmts, max_key, &mut rows).await?;
    Ok(rows.rows)
}

/// [`write_rows`] with the rows going to `rows`; not generic, compiled here (see
/// `compiled_here`).
#[crate::compiled_here]
async fn write_rows_on<'a>(
    mut db: &'a mut dyn Executor,
    op: &'static str,
    schema: &'static ModelSchema,
    mut stmts: Vec<Pending<'a>>,
    max_key: Option<i64>,
    rows: &'a mut dyn WriteSink,
) -> Result<()> {
    let mut sequence = None;
    // Sequences hand out keys from 1: keys below cannot collide with generated ones.
    if let Some(seq) = max_key.filter(|&k| k >= 1).and_then(|k| key_sequence(dialect(db), schema, k)) {
        let last = exec::fetch_i64(&mut db, "key_sequence", schema, seq.last.clone()).await?;
        if max_key.is_some_and(|k| k > last) {
            sequence = Some(seq);
        }
    }
    if sequence.is_none() && stmts.len() == 1 {
        stmts.remove(0).fetch(db, op, schema, &mut *rows).await?;
        let upkeep = crate::cache::rows_written_by(&*db, schema, &|| rows.values());
        upkeep.await;
        return Ok(());
    }
    run_atomically_on(db, op, schema, stmts, sequence, rows).await
}

/// Runs several row-returning statements in one transaction (a savepoint when already inside
/// one), so that a failure leaves nothing behind; inside the key `sequence`'s lock, advancing
/// it afterwards, when given.
async fn run_atomically<M: Model, E: Executor>(
    db: &mut E,
    op: &'static str,
    stmts: Vec<Pending<'_>>,
    sequence: Option<KeySequenceSql>,
) -> Result<Vec<M>> {
    let mut rows = Written::<M>::new();
    run_atomically_on(db, op, M::SCHEMA, stmts, sequence, &mut rows).await?;
    Ok(rows.rows)
}

/// [`run_atomically`] with the rows going to `rows`; not generic, compiled here.
#[crate::compiled_here]
async fn run_atomically_on<'a>(
    db: &'a mut dyn Executor,
    op: &'static str,
    schema: &'static ModelSchema,
    stmts: Vec<Pending<'a>>,
    sequence: Option<KeySequenceSql>,
    rows: &'a mut dyn WriteSink,
) -> Result<()> {
    let mut tx = crate::db::begin_on(db).await?;
    {
        let mut held = &mut tx;
        let mut db: &mut dyn Executor = &mut held;
        if let Some(seq) = &sequence {
            exec::execute(&mut db, "key_sequence", Some(schema), seq.lock.clone()).await?;
        }
        for stmt in stmts {
            stmt.fetch(db, op, schema, &mut *rows).await?;
        }
        if let Some(seq) = sequence {
            exec::execute(&mut db, "key_sequence", Some(schema), seq.advance).await?;
        }
        let upkeep = crate::cache::rows_written_by(&*db, schema, &|| rows.values());
        upkeep.await;
    }
    crate::db::commit_tx(tx).await
}

/// Where the rows a write's statements return go: decoded into models, each statement's rows
/// after those of the statements before it (see [`Written`]).
trait WriteSink: exec::RowSink {
    /// The next statement starts: what the sink holds so far stays.
    fn next_statement(&mut self);
    /// The values of the rows held (every field, schema order), for the cache.
    fn values(&self) -> Vec<Result<Vec<Value>>>;
}

/// The rows of a write's statements, as models of `M`.
struct Written<M> {
    rows: Vec<M>,
    /// How many rows the statements before the current one returned: a statement that runs
    /// again (see [`exec::RowSink::begin`]) drops only its own.
    kept: usize,
}

impl<M> Written<M> {
    fn new() -> Self {
        Written { rows: Vec::new(), kept: 0 }
    }
}

impl<M: Model> exec::RowSink for Written<M> {
    fn begin(&mut self) {
        self.rows.truncate(self.kept);
    }
    fn row(&mut self, row: exec::RowRef<'_>) -> Result<()> {
        self.rows.push(exec::decode_row(row)?);
        Ok(())
    }
}

impl<M: Model> WriteSink for Written<M> {
    fn next_statement(&mut self) {
        self.kept = self.rows.len();
    }
    fn values(&self) -> Vec<Result<Vec<Value>>> {
        let mut values = Vec::with_capacity(self.rows.len());
        for row in &self.rows {
            values.push(row.to_values());
        }
        values
    }
}

/// A row-returning write statement about to run: one built from owned values, or a
/// multi-row INSERT whose parameters borrow from the rows it writes.
enum Pending<'a> {
    /// An UPDATE or upsert.
    Statement(Statement),
    /// A multi-row INSERT.
    Insert(build::InsertStatement<'a>),
}

impl Pending<'_> {
    /// How many rows the statement returns when it writes every row it is given.
    fn rows(&self) -> usize {
        match self {
            Pending::Statement(_) => 1,
            Pending::Insert(stmt) => stmt.values.rows(),
        }
    }

    /// Runs the statement and hands the rows it returns to `rows`, after those of the
    /// statements before it.
    async fn fetch(
        self,
        db: &mut dyn Executor,
        op: &'static str,
        schema: &'static ModelSchema,
        rows: &mut dyn WriteSink,
    ) -> Result<()> {
        rows.next_statement();
        let (sql, params) = match self {
            Pending::Statement(stmt) => (stmt.sql, exec::Params::from(stmt.params)),
            Pending::Insert(stmt) => (stmt.sql, exec::Params::Rows(stmt.values)),
        };
        exec::fetch_into(db, op, schema, sql, params, rows).await
    }
}
