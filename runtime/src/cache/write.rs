//! Keeping the cache right on writes: the hooks every write path calls after its statement
//! ([`rows_written`], [`rows_deleted`], [`rows_changed`]; the SQL driver's bulk writes read back
//! their rows with `RETURNING` for it), and what they send to the backend.
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
use crate::model::Model;
use crate::schema::{ModelSchema, RedisIndex};
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
            Change::Row(values) => schema.key_of(values),
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

fn scope_of(db: &dyn Executor, schema: &ModelSchema) -> Scope {
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
/// the returned future starts, so the future does not borrow it.) Only reading the rows'
/// values is per model; the rest is [`written`].
pub(crate) fn rows_written<M: Model>(db: &dyn Executor, rows: &[M]) -> impl Future<Output = ()> + Send + use<M> {
    rows_written_by(db, M::SCHEMA, &|| {
        let mut values = Vec::with_capacity(rows.len());
        for row in rows {
            values.push(row.to_values());
        }
        values
    })
}

/// [`rows_written`] of rows of `schema` whose values (every field, schema order) `values`
/// reads, only when there is cache upkeep to do. A row that could not be read is left out,
/// with a warning.
pub(crate) fn rows_written_by(
    db: &dyn Executor,
    schema: &'static ModelSchema,
    values: &dyn Fn() -> Vec<Result<Vec<Value>>>,
) -> impl Future<Output = ()> + Send + use<> {
    let scope = scope_of(db, schema);
    let values = match scope {
        Scope::None => Vec::new(),
        _ => values(),
    };
    let mut changes = Vec::with_capacity(values.len());
    for row in values {
        match row {
            Ok(values) => changes.push(Change::Row(values)),
            Err(e) => {
                tracing::warn!(target: "polystore::cache", error = %e, "cannot read a written row for the cache")
            }
        }
    }
    notify(scope, Touched { schema, changes })
}

/// After a delete: the primary-key values of the deleted rows.
pub(crate) fn rows_deleted(
    db: &dyn Executor,
    schema: &'static ModelSchema,
    keys: Vec<Vec<Value>>,
) -> impl Future<Output = ()> + Send + use<> {
    let scope = scope_of(db, schema);
    notify(scope, Touched { schema, changes: keys.into_iter().map(Change::Deleted).collect() })
}

/// Whether writes through `db` to `schema` have cache upkeep to do (a cache is attached and
/// the model declares a policy or Redis structures).
pub(crate) fn caches(db: &dyn Executor, schema: &ModelSchema) -> bool {
    !matches!(scope_of(db, schema), Scope::None)
}

/// After a bulk update on a store that cannot return the changed rows (MongoDB): the keys of
/// the rows it changed, each with the row as read back afterwards (every field, schema order)
/// when it was still there. Entries are invalidated, never refreshed (a row read back is no
/// authority on its entry); the indexed fields read back update the Redis indexes.
#[cfg_attr(not(feature = "mongodb"), allow(dead_code))]
pub(crate) fn rows_updated(
    db: &dyn Executor,
    schema: &'static ModelSchema,
    rows: Vec<(Vec<Value>, Option<Vec<Value>>)>,
) -> impl Future<Output = ()> + Send + use<> {
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

/// A row's key and the new values of some of its fields (position, value).
pub(crate) type PartlyRead = (Vec<Value>, Vec<(usize, Value)>);

/// After a write whose rows were only partly read back (a SQL bulk write's `RETURNING` list):
/// `deleted` are keys of rows gone (or moved to another key), `partial` keys of rows written
/// with the new values of some fields (the indexed ones, when read back).
pub(crate) fn rows_changed(
    db: &dyn Executor,
    schema: &'static ModelSchema,
    deleted: Vec<Vec<Value>>,
    partial: Vec<PartlyRead>,
) -> impl Future<Output = ()> + Send + use<> {
    let scope = scope_of(db, schema);
    let changes = deleted
        .into_iter()
        .map(Change::Deleted)
        .chain(partial.into_iter().map(|(key, fields)| Change::Partial { key, fields }))
        .collect();
    notify(scope, Touched { schema, changes })
}

/// Fields whose values the cache keeps keys for: set indexes, sorted sets, unique fields.
pub(crate) fn indexed_fields(schema: &ModelSchema) -> Vec<usize> {
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

/// Sends the cache upkeep of `touched` to the backend: at once outside a transaction; inside
/// one, the invalidation now and the full batch after the commit. Every write path awaits it
/// from code generic over the model: compiled here (see `compiled_here`).
#[crate::compiled_here]
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
#[crate::compiled_here]
pub(crate) async fn flush<'a>(cache: &'a Cache, pending: Vec<Touched>) {
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
