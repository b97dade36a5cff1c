//! Keeping the cache right on writes: the hooks every write path calls after its statement
//! ([`rows_written`], [`rows_deleted`], [`bulk_write`]), and what they send to the backend.
//!
//! For each changed row: its entry is deleted (or, in [`WriteMode::Refresh`], rewritten),
//! lookups of its new unique values are deleted (they may hold a cached "absent"), its
//! set-index memberships move from the old value (remembered in the row's *memo*) to the new
//! one, and its sorted-set scores are updated. Lookups of *old* unique values are not known
//! here; they are checked on read (the row they point at must still hold the value).
//!
//! Outside a transaction all of it goes out as one batch right after the write. Inside one,
//! entries are invalidated at once (so nothing stale is read meanwhile) and the full batch is
//! sent again after the commit; a rollback drops it.

use std::collections::HashSet;
use std::future::Future;

use super::codec::{self, Decoded};
use super::{Cache, CacheScope, Op, Pending, WriteMode, policy, tracked};
use crate::db::Executor;
use crate::error::Result;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
use crate::exec;
use crate::model::Model;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
use crate::model::decode_error;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
use crate::query::{Assign, Node, Query};
use crate::schema::{ModelSchema, RedisIndex};
#[cfg(any(feature = "postgres", feature = "sqlite"))]
use crate::sql::{SqlWriter, Statement, lower};
use crate::value::Value;

/// The rows one write changed, as the cache needs to know them.
#[derive(Debug, Clone)]
#[doc(hidden)]
pub struct Touched {
    schema: &'static ModelSchema,
    changes: Vec<Change>,
}

#[derive(Debug, Clone)]
enum Change {
    /// A row as stored after the write (every field, schema order).
    Row(Vec<Value>),
    /// A row changed by a bulk update: its key and the new values of some fields.
    Partial { key: Vec<Value>, fields: Vec<(usize, Value)> },
    /// A deleted row's key.
    Deleted(Vec<Value>),
}

impl Change {
    fn key(&self, schema: &ModelSchema) -> Vec<Value> {
        match self {
            Change::Row(values) => schema.primary_key.iter().map(|&i| values[i].clone()).collect(),
            Change::Partial { key, .. } | Change::Deleted(key) => key.clone(),
        }
    }

    /// The new value of field `i`, when this change knows it.
    fn new_value(&self, i: usize) -> Option<&Value> {
        match self {
            Change::Row(values) => values.get(i),
            Change::Partial { fields, .. } => fields.iter().find(|(f, _)| *f == i).map(|(_, v)| v),
            Change::Deleted(_) => None,
        }
    }
}

/// The cache of a handle, owned so that the handle can be used mutably meanwhile.
enum Scope {
    None,
    Direct(Cache),
    Tx(Cache, Pending),
}

fn scope_of<E: Executor>(db: &E, schema: &ModelSchema) -> Scope {
    if !tracked(schema) {
        return Scope::None;
    }
    match db.cache_scope() {
        CacheScope::None => Scope::None,
        CacheScope::Direct(c) => Scope::Direct(c.clone()),
        CacheScope::Tx(c, p) => Scope::Tx(c.clone(), p.clone()),
    }
}

/// After an insert, update or upsert: `rows` as stored. (The handle is only looked at before
/// the returned future starts, so the future does not borrow it.)
pub(crate) fn rows_written<M: Model, E: Executor>(db: &E, rows: &[M]) -> impl Future<Output = ()> + Send + use<M, E> {
    let scope = scope_of(db, M::SCHEMA);
    let mut changes = Vec::new();
    if !matches!(scope, Scope::None) {
        for row in rows {
            match row.to_values() {
                Ok(values) => changes.push(Change::Row(values)),
                Err(e) => {
                    tracing::warn!(target: "polystore::cache", error = %e, "cannot read a written row for the cache")
                }
            }
        }
    }
    notify(scope, Touched { schema: M::SCHEMA, changes })
}

/// After a delete: the primary-key values of the deleted rows.
pub(crate) fn rows_deleted<E: Executor>(
    db: &E,
    schema: &'static ModelSchema,
    keys: Vec<Vec<Value>>,
) -> impl Future<Output = ()> + Send + use<E> {
    let scope = scope_of(db, schema);
    notify(scope, Touched { schema, changes: keys.into_iter().map(Change::Deleted).collect() })
}

/// Whether writes through `db` to `schema` have cache upkeep to do (a cache is attached and
/// the model declares a policy or Redis structures).
pub(crate) fn caches<E: Executor>(db: &E, schema: &ModelSchema) -> bool {
    !matches!(scope_of(db, schema), Scope::None)
}

/// After a bulk update on a store that cannot return the changed rows (MongoDB): the keys of
/// the rows it changed, each with the row as read back afterwards (every field, schema order)
/// when it was still there. Entries are invalidated, never refreshed (a row read back is no
/// authority on its entry); the indexed fields read back update the Redis indexes.
#[cfg_attr(not(feature = "mongodb"), allow(dead_code))]
pub(crate) fn rows_updated<E: Executor>(
    db: &E,
    schema: &'static ModelSchema,
    rows: Vec<(Vec<Value>, Option<Vec<Value>>)>,
) -> impl Future<Output = ()> + Send + use<E> {
    let scope = scope_of(db, schema);
    let indexed = indexed_fields(schema);
    let changes = rows
        .into_iter()
        .map(|(key, values)| {
            let fields = match values {
                Some(values) => indexed.iter().map(|&i| (i, values[i].clone())).collect(),
                None => Vec::new(),
            };
            Change::Partial { key, fields }
        })
        .collect();
    notify(scope, Touched { schema, changes })
}

/// What the statement given to [`bulk_write`] does to the rows it touches.
#[cfg(any(feature = "postgres", feature = "sqlite"))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bulk {
    /// Writes them (`update_many`, a relation's `link` INSERT).
    Update,
    /// Deletes them (`delete_many`, `unlink`).
    Delete,
}

/// Runs an INSERT, UPDATE or DELETE that polystore built without `RETURNING` (bulk writes,
/// join rows of relations) and returns the rows it affected. With a cache attached (and a
/// model it concerns), the statement gets a `RETURNING` list — the primary key, plus for
/// writes the fields the cache indexes — so exactly the affected rows are invalidated.
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub(crate) async fn bulk_write<E: Executor>(
    db: &mut E,
    op: &'static str,
    schema: &'static ModelSchema,
    stmt: Statement,
    kind: Bulk,
) -> Result<u64> {
    bulk_write_moving(db, op, schema, stmt, kind, Vec::new()).await
}

/// [`bulk_write`] of an UPDATE that may change primary keys: `old` are the keys the rows had
/// before (those not returned as new keys are invalidated as deleted rows).
#[cfg(any(feature = "postgres", feature = "sqlite"))]
async fn bulk_write_moving<E: Executor>(
    db: &mut E,
    op: &'static str,
    schema: &'static ModelSchema,
    mut stmt: Statement,
    kind: Bulk,
    old: Vec<Vec<Value>>,
) -> Result<u64> {
    let scope = scope_of(db, schema);
    if matches!(scope, Scope::None) {
        return exec::execute(db, op, Some(schema), stmt).await;
    }
    let mut columns: Vec<usize> = schema.primary_key.to_vec();
    if kind == Bulk::Update {
        for i in indexed_fields(schema) {
            if !columns.contains(&i) {
                columns.push(i);
            }
        }
    }
    let mut w = SqlWriter::new(crate::driver::sql::dialect(db));
    w.push(" RETURNING ");
    w.list(&columns, |w, &i| {
        w.ident(schema.fields[i].column);
    });
    stmt.sql.push_str(&w.finish().sql);
    let rows = exec::fetch_with(db, op, Some(schema), stmt, |row| {
        columns
            .iter()
            .enumerate()
            .map(|(pos, &i)| row.value(pos, schema.fields[i].ty).map_err(|e| decode_error(schema, i, e)))
            .collect::<Result<Vec<Value>>>()
    })
    .await?;
    let affected = rows.len() as u64;
    let key_len = schema.primary_key.len();
    let new_keys: HashSet<String> = rows.iter().map(|r| super::keys::encode_components(&r[..key_len])).collect();
    let moved: Vec<Change> = old
        .into_iter()
        .filter(|k| !new_keys.contains(&super::keys::encode_components(k)))
        .map(Change::Deleted)
        .collect();
    let changes = moved
        .into_iter()
        .chain(rows.into_iter().map(|values| {
            let key = values[..key_len].to_vec();
            match kind {
                Bulk::Delete => Change::Deleted(key),
                // Key fields may be indexed too: every returned column is a known new value.
                Bulk::Update => Change::Partial { key, fields: columns.iter().copied().zip(values).collect() },
            }
        }))
        .collect();
    notify(scope, Touched { schema, changes }).await;
    Ok(affected)
}

/// `update_many` assigning a primary-key field on a handle with a cache. An UPDATE returns
/// only the new keys, so the keys of the matching rows are read first and the UPDATE is
/// restricted to them (`<filter> AND <key> IN (<old keys>)`): every row it changes had one of
/// those keys, and both the old keys (as deleted rows) and the new ones are invalidated. Rows
/// that start matching between the read and the UPDATE are not updated, as if the UPDATE had
/// run at the read. Over 1,000 rows, the chunks run in one transaction.
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub(crate) async fn update_many_moving_keys<M: Model, E: Executor>(
    db: &mut E,
    query: &Query<M>,
    list: &[Assign],
    stamps: Vec<(usize, Value)>,
) -> Result<u64> {
    let schema = M::SCHEMA;
    let d = crate::driver::sql::dialect(db);
    if matches!(scope_of(db, schema), Scope::None) {
        let stmt = lower::update_many(d, schema, query, list, stamps)?;
        return exec::execute(db, "update_many", Some(schema), stmt).await;
    }
    let mut select = Query::<M>::new();
    select.filter = query.filter.clone();
    let stmt = lower::select(d, schema, &select)?;
    let mut old = Vec::new();
    for row in exec::fetch_models::<M, E>(db, "update_many", stmt).await? {
        let values = row.to_values()?;
        old.push(schema.primary_key.iter().map(|&i| values[i].clone()).collect::<Vec<Value>>());
    }
    let restricted = |keys: &[Vec<Value>]| {
        let mut q = Query::<M>::new();
        let by_key = super::read::keys_filter(schema, keys);
        q.filter = Some(match &query.filter {
            Some(f) => Node::And(vec![f.clone(), by_key]),
            None => by_key,
        });
        lower::update_many(d, schema, &q, list, stamps.clone())
    };
    if old.len() <= 1000 {
        let stmt = restricted(&old)?;
        return bulk_write_moving(db, "update_many", schema, stmt, Bulk::Update, old).await;
    }
    let mut tx = crate::db::begin_on(db).await?;
    let mut total = 0;
    for chunk in old.chunks(1000) {
        let stmt = restricted(chunk)?;
        total += bulk_write_moving(&mut &mut tx, "update_many", schema, stmt, Bulk::Update, chunk.to_vec()).await?;
    }
    tx.commit().await?;
    Ok(total)
}

/// `upsert_on` a unique index (not the primary key) that writes the primary key, on a SQL
/// handle with a cache: the row holding the conflict values may move to the written key, and
/// an UPDATE returns only the new key. So, in one transaction, the key of the row holding the
/// conflict values is read first (locked `FOR UPDATE` on PostgreSQL), then `stmt` (the upsert)
/// runs; when that row's key differs from the stored row's, the old key is invalidated as a
/// deleted row (its entry, memo and index memberships).
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub(crate) async fn upsert_moving_key<M: Model, E: Executor>(
    db: &mut E,
    values: &[Value],
    conflict: &[usize],
    stmt: Statement,
) -> Result<Vec<M>> {
    let schema = M::SCHEMA;
    let d = crate::driver::sql::dialect(db);
    let mut w = SqlWriter::new(d);
    w.push("SELECT ");
    w.list(schema.primary_key, |w, &i| {
        w.ident(schema.fields[i].column);
    });
    w.push(" FROM ").table(schema.table).push(" WHERE ");
    for (n, &i) in conflict.iter().enumerate() {
        if n > 0 {
            w.push(" AND ");
        }
        w.ident(schema.fields[i].column).push(" = ");
        w.param(values[i].clone(), schema.fields[i].ty);
    }
    if d.name() == "postgresql" {
        w.push(" FOR UPDATE");
    }
    let mut tx = crate::db::begin_on(db).await?;
    let old = exec::fetch_with(&mut &mut tx, "upsert", Some(schema), w.finish(), |row| {
        schema
            .primary_key
            .iter()
            .enumerate()
            .map(|(pos, &i)| row.value(pos, schema.fields[i].ty).map_err(|e| decode_error(schema, i, e)))
            .collect::<Result<Vec<Value>>>()
    })
    .await?;
    let rows = exec::fetch_models::<M, _>(&mut &mut tx, "upsert", stmt).await?;
    let mut new_keys = HashSet::new();
    for row in &rows {
        let values = row.to_values()?;
        let key: Vec<Value> = schema.primary_key.iter().map(|&i| values[i].clone()).collect();
        new_keys.insert(super::keys::encode_components(&key));
    }
    let moved: Vec<Vec<Value>> =
        old.into_iter().filter(|k| !new_keys.contains(&super::keys::encode_components(k))).collect();
    rows_deleted(&&mut tx, schema, moved).await;
    rows_written(&&mut tx, &rows).await;
    tx.commit().await?;
    Ok(rows)
}

/// Fields whose values the cache keeps keys for: set indexes, sorted sets, unique fields.
fn indexed_fields(schema: &ModelSchema) -> Vec<usize> {
    let mut out: Vec<usize> =
        (0..schema.fields.len()).filter(|&i| schema.fields[i].redis != RedisIndex::None).collect();
    for i in unique_fields(schema) {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

/// Fields with a single-field unique index (the ones with lookup keys).
pub(crate) fn unique_fields(schema: &ModelSchema) -> impl Iterator<Item = usize> + '_ {
    schema.indexes.iter().filter(|ix| ix.unique && ix.fields.len() == 1).map(|ix| ix.fields[0])
}

fn set_fields(schema: &ModelSchema) -> Vec<usize> {
    (0..schema.fields.len()).filter(|&i| schema.fields[i].redis == RedisIndex::Set).collect()
}

async fn notify(scope: Scope, touched: Touched) {
    if touched.changes.is_empty() {
        return;
    }
    match scope {
        Scope::None => {}
        Scope::Direct(cache) => apply(&cache, touched).await,
        Scope::Tx(cache, pending) => {
            invalidate_now(&cache, &touched).await;
            pending.lock().unwrap_or_else(|p| p.into_inner()).push(touched);
        }
    }
}

/// Applies the writes of a committed transaction.
pub(crate) async fn flush(cache: &Cache, pending: Vec<Touched>) {
    for touched in pending {
        apply(cache, touched).await;
    }
}

/// Inside a transaction: delete the entries and the new values' lookups right away (not the
/// authoritative invalidation — that is sent after the commit — so a failure is not fenced).
async fn invalidate_now(cache: &Cache, t: &Touched) {
    let keys = &cache.inner.keys;
    let mut ops = Vec::new();
    for change in &t.changes {
        let entry = keys.entry(t.schema, &change.key(t.schema));
        cache.inner.flights.forget(&entry);
        ops.push(Op::Del(entry));
        for i in unique_fields(t.schema) {
            if let Some(v) = change.new_value(i) {
                ops.push(Op::Del(keys.unique(t.schema, i, v)));
            }
        }
    }
    if !ops.is_empty() {
        cache.inner.stats.writes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        cache.guard("write", cache.inner.backend.apply(ops)).await;
    }
}

/// How sending an invalidation batch went.
enum Delivery {
    /// Delivered under the backend's current generation.
    Done,
    /// Delivered, but the backend has moved to a newer generation (now adopted): send again.
    Again,
    /// Not delivered (breaker open, failure, timeout): a fence is owed.
    Lost,
}

/// Sends an invalidation batch and reads the backend's generation alongside (both after the
/// write committed), so that a batch sent under a retired generation is sent again.
async fn deliver(cache: &Cache, ops: Vec<Op>) -> Delivery {
    cache.inner.stats.writes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if !cache.admit() {
        cache.lost_invalidation("write", None);
        return Delivery::Lost;
    }
    let gkey = [cache.keys().generation_key()];
    let backend = &cache.inner.backend;
    let sent = async {
        let (applied, generation) = futures_util::join!(backend.apply(ops), backend.get_many(&gkey));
        applied?;
        generation
    };
    match cache.run("write", sent).await {
        Ok(generation) => {
            if cache.check_generation(generation.into_iter().next().flatten().as_deref()) {
                Delivery::Done
            } else if cache.is_available() {
                Delivery::Again
            } else {
                Delivery::Lost
            }
        }
        Err(error) => {
            cache.lost_invalidation("write", Some(&error));
            Delivery::Lost
        }
    }
}

/// Reads the index memos of the changed rows (the set-indexed values recorded for them).
async fn memos(cache: &Cache, schema: &'static ModelSchema, row_keys: &[Vec<Value>]) -> Vec<Option<Vec<Value>>> {
    if set_fields(schema).is_empty() {
        return vec![None; row_keys.len()];
    }
    let keys = &cache.inner.keys;
    let memo_keys: Vec<String> = row_keys.iter().map(|k| keys.memo(schema, k)).collect();
    match cache.guard("read memo", cache.inner.backend.get_many(&memo_keys)).await {
        Some(found) => found
            .into_iter()
            .map(|b| match b.map(|b| codec::decode(schema, &b)) {
                Some(Decoded::Memo(values)) => Some(values),
                _ => None,
            })
            .collect(),
        None => vec![None; row_keys.len()],
    }
}

/// The full batch for `t`: entries, lookups, set indexes (reading the memos first), sorted
/// sets; sent again under the new generation if the backend moved on meanwhile.
async fn apply(cache: &Cache, t: Touched) {
    let schema = t.schema;
    crate::observe::cache(crate::observe::CacheEvent::Invalidation, schema.name, t.changes.len() as u64);
    let row_keys: Vec<Vec<Value>> = t.changes.iter().map(|c| c.key(schema)).collect();
    let memos = memos(cache, schema, &row_keys).await;
    for _ in 0..3 {
        let ops = batch(cache, &t, &row_keys, &memos);
        if ops.is_empty() {
            return;
        }
        match deliver(cache, ops).await {
            Delivery::Again => continue,
            Delivery::Done | Delivery::Lost => return,
        }
    }
}

/// The operations of one invalidation batch, with the keys of the current generation.
fn batch(cache: &Cache, t: &Touched, row_keys: &[Vec<Value>], memos: &[Option<Vec<Value>>]) -> Vec<Op> {
    let schema = t.schema;
    let keys = &cache.inner.keys;
    let sets = set_fields(schema);
    let refresh = cache.inner.write_mode == WriteMode::Refresh;
    let mut ops = Vec::new();
    let mut seen = HashSet::new();
    for ((change, key), memo) in t.changes.iter().zip(row_keys).zip(memos) {
        let entry = keys.entry(schema, key);
        if !seen.insert(entry.clone()) {
            continue;
        }
        cache.inner.flights.forget(&entry);
        match (refresh, change, schema.cache) {
            (true, Change::Row(values), Some(policy)) => match codec::encode_row(schema, values.clone()) {
                Ok(bytes) if policy.max_entry_bytes.is_none_or(|max| bytes.len() <= max) => {
                    ops.push(Op::Set { key: entry, value: bytes, ttl: Some(policy::entry_ttl(&policy)) });
                }
                _ => ops.push(Op::Del(entry)),
            },
            _ => ops.push(Op::Del(entry)),
        }
        for i in unique_fields(schema) {
            if let Some(v) = change.new_value(i) {
                ops.push(Op::Del(keys.unique(schema, i, v)));
            }
        }
        let member = codec::member(key);
        index_ops(cache, schema, change, &sets, memo.clone(), key, &member, &mut ops);
    }
    ops
}

/// Set-index and sorted-set upkeep for one changed row.
#[allow(clippy::too_many_arguments)]
fn index_ops(
    cache: &Cache,
    schema: &'static ModelSchema,
    change: &Change,
    sets: &[usize],
    memo: Option<Vec<Value>>,
    key: &[Value],
    member: &str,
    ops: &mut Vec<Op>,
) {
    let keys = &cache.inner.keys;
    if !sets.is_empty() {
        let deleted = matches!(change, Change::Deleted(_));
        let mut recorded = Vec::with_capacity(sets.len());
        for (j, &i) in sets.iter().enumerate() {
            let old = memo.as_ref().and_then(|m| m.get(j));
            let new = change.new_value(i);
            if let Some(old) = old
                && *old != Value::Null
                && (deleted || new.is_some_and(|n| n != old))
            {
                ops.push(Op::SRem { key: keys.set_index(schema, i, old), member: member.to_owned() });
            }
            if let Some(new) = new
                && *new != Value::Null
            {
                ops.push(Op::SAdd { key: keys.set_index(schema, i, new), member: member.to_owned() });
            }
            recorded.push(new.or(old).cloned().unwrap_or(Value::Null));
        }
        let memo_key = keys.memo(schema, key);
        if deleted {
            ops.push(Op::Del(memo_key));
        } else {
            ops.push(Op::Set { key: memo_key, value: codec::encode_memo(&recorded), ttl: None });
        }
    }
    for i in (0..schema.fields.len()).filter(|&i| schema.fields[i].redis == RedisIndex::SortedSet) {
        let zkey = keys.sorted_set(schema, i);
        match (change, change.new_value(i).and_then(score)) {
            (Change::Deleted(_), _) => ops.push(Op::ZRem { key: zkey, member: member.to_owned() }),
            (_, Some(s)) => ops.push(Op::ZAdd { key: zkey, member: member.to_owned(), score: s }),
            (_, None) if change.new_value(i).is_some() => ops.push(Op::ZRem { key: zkey, member: member.to_owned() }),
            _ => {}
        }
    }
}

/// A field value as a sorted-set score (`None` for NULL and non-numbers).
pub(crate) fn score(v: &Value) -> Option<f64> {
    match v {
        Value::I16(n) => Some(f64::from(*n)),
        Value::I32(n) => Some(f64::from(*n)),
        Value::I64(n) => Some(*n as f64),
        Value::F32(n) => Some(f64::from(*n)),
        Value::F64(n) => Some(*n),
        _ => None,
    }
}

/// Rewrites the sorted sets and set memberships of `rows` (every field, schema order): the
/// sorted sets are dropped first, then every row is applied as freshly written.
pub(crate) async fn reindex(cache: &Cache, schema: &'static ModelSchema, rows: Vec<Vec<Value>>) -> Result<()> {
    let drops: Vec<Op> = (0..schema.fields.len())
        .filter(|&i| schema.fields[i].redis == RedisIndex::SortedSet)
        .map(|i| Op::Del(cache.inner.keys.sorted_set(schema, i)))
        .collect();
    if !drops.is_empty() {
        cache.timed(cache.inner.backend.apply(drops)).await?;
    }
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let changes = rows.by_ref().take(500).map(Change::Row).collect();
        apply(cache, Touched { schema, changes }).await;
    }
    Ok(())
}
