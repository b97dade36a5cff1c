//! Read-through reads: [`CachedExt`] (`User::get_cached(&db, 42)`) and the per-call builder
//! [`CachedRead`] (`User::cached(&db).ttl(..).get(42)`).
//!
//! A read looks the entry up, and on a miss reads the database and stores what it found
//! (a row, or — with negative caching — "no such row") with the policy's TTL plus jitter.
//! Concurrent misses of one key share one database read (see `flight.rs`); batches use one
//! `MGET` and one `SELECT ... WHERE key IN (...)` for all misses. On a handle without a cache,
//! or inside a transaction (whose view the cache does not share), reads go to the database.

use crate::observe::{self, CacheEvent};
use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::codec::{self, Decoded};
use super::flight::{Outcome, Role, follow};
use super::lease::{self, Found};
use super::{Cache, CachePolicy, CacheScope, Op, PolicyOverride, policy, write::unique_fields};
use crate::db::Executor;
use crate::driver::{Driver as _, Operation, dispatch};
use crate::error::{Error, Result};
use crate::model::{Field, Model};
use crate::query::{CmpOp, Node, Query};
use crate::value::{ToParam, Value};

/// Read-through reads for every model (`use polystore::prelude::*`). Each takes a handle
/// (`&db`, or `&mut tx` — which reads the database directly); the cache is the one attached
/// with [`Db::with_cache`](crate::Db::with_cache). The model must declare a policy
/// (`#[model(cache(ttl = "5m"))]`); [`CachedExt::cached`] overrides it per call.
pub trait CachedExt: Model {
    /// A read with per-call policy overrides: `User::cached(&db).ttl(secs(5)).get(42)`.
    fn cached<E: Executor>(db: E) -> CachedRead<Self, E> {
        CachedRead { db, policy: PolicyOverride::default(), _model: PhantomData }
    }

    /// The row with primary key `key`, if any, through the cache.
    fn get_cached<E: Executor>(db: E, key: Self::Key) -> impl Future<Output = Result<Option<Self>>> + Send {
        Self::cached(db).get(key)
    }

    /// The row with primary key `key` through the cache, or [`Error::NotFound`].
    fn find_cached<E: Executor>(db: E, key: Self::Key) -> impl Future<Output = Result<Self>> + Send {
        Self::cached(db).find(key)
    }

    /// The rows with the given keys, in order (`None` where there is none): one `MGET`, then
    /// one query for all misses.
    fn get_many_cached<E: Executor>(
        db: E,
        keys: Vec<Self::Key>,
    ) -> impl Future<Output = Result<Vec<Option<Self>>>> + Send {
        Self::cached(db).get_many(keys)
    }

    /// The row whose unique field `field` holds `value` (`User::EMAIL`, `"ada@example.com"`),
    /// through a cached lookup key (value → primary key) and the row's entry.
    fn find_by_unique_cached<T, V, E>(
        db: E,
        field: Field<Self, T>,
        value: V,
    ) -> impl Future<Output = Result<Option<Self>>> + Send
    where
        V: ToParam<T>,
        E: Executor,
    {
        let value = value.to_param();
        async move { Self::cached(db).by_unique_value(field.index(), value).await }
    }
}

impl<M: Model> CachedExt for M {}

/// One cached read with its policy overrides (from [`CachedExt::cached`]).
#[derive(Debug)]
pub struct CachedRead<M, E> {
    db: E,
    policy: PolicyOverride,
    _model: PhantomData<fn() -> M>,
}

impl<M: Model, E: Executor> CachedRead<M, E> {
    /// Entries written by this read live `ttl` (plus jitter).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.policy.ttl = Some(ttl);
        self
    }

    /// Another jitter for entries written by this read.
    pub fn jitter(mut self, jitter: Duration) -> Self {
        self.policy.jitter = Some(jitter);
        self
    }

    /// Cache a miss for `ttl` (`None`: do not cache misses).
    pub fn negative_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.policy.negative_ttl = Some(ttl);
        self
    }

    /// Do not cache rows larger than `max` bytes (`None`: no limit).
    pub fn max_entry_bytes(mut self, max: Option<usize>) -> Self {
        self.policy.max_entry_bytes = Some(max);
        self
    }

    /// Applies several overrides at once.
    pub fn policy(mut self, policy: PolicyOverride) -> Self {
        self.policy = policy;
        self
    }

    /// The row with primary key `key`, if any.
    pub async fn get(mut self, key: M::Key) -> Result<Option<M>> {
        let key = M::key_values(&key)?;
        get_by_values(&mut self.db, key, &self.policy).await
    }

    /// The row with primary key `key`, or [`Error::NotFound`].
    pub async fn find(self, key: M::Key) -> Result<M> {
        self.get(key).await?.ok_or(Error::NotFound { model: M::SCHEMA.name })
    }

    /// The rows with the given keys, in order.
    pub async fn get_many(mut self, keys: impl IntoIterator<Item = M::Key>) -> Result<Vec<Option<M>>> {
        let keys = keys.into_iter().map(|k| M::key_values(&k)).collect::<Result<Vec<_>>>()?;
        get_many_by_values(&mut self.db, keys, &self.policy).await
    }

    /// The row whose unique field `field` holds `value`.
    pub async fn by_unique<T, V: ToParam<T>>(self, field: Field<M, T>, value: V) -> Result<Option<M>> {
        let value = value.to_param();
        self.by_unique_value(field.index(), value).await
    }

    async fn by_unique_value(mut self, field: usize, value: Result<Value, crate::ValueError>) -> Result<Option<M>> {
        let schema = M::SCHEMA;
        let value =
            value.map_err(|source| Error::Encode { model: schema.name, field: schema.fields[field].name, source })?;
        if !unique_fields(schema).any(|i| i == field) {
            return Err(Error::Config(format!(
                "{}.{} has no single-field unique index: lookups by it cannot be cached (add #[model(unique)])",
                schema.name, schema.fields[field].name
            )));
        }
        by_unique(&mut self.db, field, value, &self.policy).await
    }
}

/// The cache of a handle, when reads should use it.
pub(crate) fn cache_of<E: Executor>(db: &E) -> Option<Cache> {
    match db.cache_scope() {
        CacheScope::Direct(c) => Some(c.clone()),
        _ => None,
    }
}

/// The policy of `schema` with overrides, or a configuration error for undeclared models.
pub(crate) fn policy_for(schema: &crate::schema::ModelSchema, o: &PolicyOverride) -> Result<CachePolicy> {
    match schema.cache {
        Some(p) => Ok(o.apply(p)),
        None => Err(Error::Config(format!(
            "{} declares no cache policy: add #[model(cache(ttl = \"5m\"))] to cache its rows",
            schema.name
        ))),
    }
}

async fn db_get<M: Model, E: Executor>(db: &mut E, key: Vec<Value>) -> Result<Option<M>> {
    dispatch!(db, Operation::read("find", M::SCHEMA, None).with_key(&key), D => D::get::<M, _>(db, key).await)
}

/// Reads the rows with the given keys from the database, by encoded key.
pub(crate) async fn db_get_many<M: Model, E: Executor>(db: &mut E, keys: &[Vec<Value>]) -> Result<HashMap<String, M>> {
    let mut out = HashMap::with_capacity(keys.len());
    let op = Operation::read("find_many", M::SCHEMA, None).with_keys(keys);
    for row in dispatch!(db, op, D => D::get_many::<M, _>(db, keys).await)? {
        out.insert(row_key(&row)?, row);
    }
    Ok(out)
}

/// The filter matching the rows with the given primary-key values.
pub(crate) fn keys_filter(schema: &crate::schema::ModelSchema, keys: &[Vec<Value>]) -> Node {
    match schema.primary_key {
        [field] => Node::In { field: *field, values: keys.iter().map(|k| k[0].clone()).collect(), negated: false },
        pk => Node::Or(
            keys.iter()
                .map(|k| {
                    Node::And(
                        pk.iter()
                            .zip(k)
                            .map(|(&field, v)| Node::Compare { field, op: CmpOp::Eq, value: v.clone() })
                            .collect(),
                    )
                })
                .collect(),
        ),
    }
}

fn row_key<M: Model>(row: &M) -> Result<String> {
    let values = row.to_values()?;
    let key: Vec<Value> = M::SCHEMA.key_of(&values);
    Ok(super::keys::encode_components(&key))
}

/// What to store for a row just read from the database (`None`: nothing, the lease is
/// released), and what to tell followers.
fn entry_for<M: Model>(
    cache: &Cache,
    row: Option<&M>,
    policy: &CachePolicy,
) -> (Option<(Vec<u8>, Duration)>, Option<Outcome>) {
    let stats = &cache.inner.stats;
    let Some(row) = row else {
        return (policy.negative_ttl.map(|ttl| (codec::encode_absent(), ttl)), Some(Outcome::Absent));
    };
    let bytes = match row.to_values().map_err(|e| e.to_string()).and_then(|v| codec::encode_row(M::SCHEMA, v)) {
        Ok(b) => b,
        Err(why) => {
            stats.skipped.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(target: "polystore::cache", model = M::SCHEMA.name, %why, "row not cached");
            return (None, None);
        }
    };
    let outcome = Some(Outcome::Found(bytes.clone().into()));
    if policy.max_entry_bytes.is_some_and(|max| bytes.len() > max) {
        stats.skipped.fetch_add(1, Ordering::Relaxed);
        return (None, outcome);
    }
    (Some((bytes, policy::entry_ttl(policy))), outcome)
}

/// Decodes a cached value; a corrupt one is logged, counted and queued for deletion.
fn decoded<M: Model>(cache: &Cache, key: &str, bytes: &[u8], deletes: &mut Vec<Op>) -> Option<Option<M>> {
    match codec::decode_model::<M>(bytes) {
        Ok(Some(m)) => {
            cache.inner.stats.hits.fetch_add(1, Ordering::Relaxed);
            observe::cache(CacheEvent::Hit, M::SCHEMA.name, 1);
            Some(Some(m))
        }
        Ok(None) => {
            cache.inner.stats.negative_hits.fetch_add(1, Ordering::Relaxed);
            observe::cache(CacheEvent::Hit, M::SCHEMA.name, 1);
            Some(None)
        }
        Err(why) => {
            cache.inner.stats.corrupt.fetch_add(1, Ordering::Relaxed);
            observe::cache(CacheEvent::Corrupt, M::SCHEMA.name, 1);
            tracing::warn!(target: "polystore::cache", key, %why, "unreadable cache entry deleted");
            deletes.push(Op::Del(key.to_owned()));
            None
        }
    }
}

async fn write_ops(cache: &Cache, ops: Vec<Op>) {
    if !ops.is_empty() {
        cache.guard("delete", cache.inner.backend.apply(ops)).await;
    }
}

/// The read-through read of one row by primary-key values: a leased read, then on a miss the
/// database and a guarded fill (see `lease.rs`).
pub(crate) async fn get_by_values<M: Model, E: Executor>(
    db: &mut E,
    key: Vec<Value>,
    o: &PolicyOverride,
) -> Result<Option<M>> {
    let Some(cache) = cache_of(db) else { return db_get(db, key).await };
    // The cache answers before the store would: the guard (a tenant handle's key check) first.
    db.guard(&Operation::read("find", M::SCHEMA, None).with_key(&key))?;
    let policy = policy_for(M::SCHEMA, o)?;
    let flight_key = cache.keys().entry(M::SCHEMA, &key);
    let leader = match cache.inner.flights.join(&flight_key) {
        Role::Leader(leader) => leader,
        Role::Follower(rx) => {
            cache.inner.stats.coalesced.fetch_add(1, Ordering::Relaxed);
            match follow(rx).await {
                Some(Outcome::Absent) => return Ok(None),
                Some(Outcome::Found(bytes)) => {
                    if let Ok(found) = codec::decode_model::<M>(&bytes) {
                        return Ok(found);
                    }
                }
                None => {}
            }
            return db_get(db, key).await;
        }
    };
    let lease = lease::new_lease();
    let mut ops = Vec::new();
    let mut leased_key = None;
    if let Some((keys, found)) = lease::read(&cache, |k| vec![k.entry(M::SCHEMA, &key)], &lease).await {
        let ekey = keys.into_iter().next().unwrap_or_default();
        match found.into_iter().next() {
            Some(Found::Value(bytes)) => {
                if let Some(row) = decoded::<M>(&cache, &ekey, &bytes, &mut ops) {
                    leader.finish(if row.is_some() { Outcome::Found(bytes.into()) } else { Outcome::Absent });
                    return Ok(row);
                }
            }
            Some(Found::Leased) => leased_key = Some(ekey),
            Some(Found::Busy) | None => {}
        }
    }
    cache.inner.stats.misses.fetch_add(1, Ordering::Relaxed);
    observe::cache(CacheEvent::Miss, M::SCHEMA.name, 1);
    let row = db_get::<M, E>(db, key).await?;
    let (value, outcome) = entry_for(&cache, row.as_ref(), &policy);
    write_ops(&cache, ops).await;
    if let Some(ekey) = leased_key {
        observe::cache(CacheEvent::Fill, M::SCHEMA.name, u64::from(value.is_some()));
        lease::store(&cache, vec![lease::fill(ekey, &lease, value)]).await;
    }
    if let Some(outcome) = outcome {
        leader.finish(outcome);
    }
    Ok(row)
}

/// The read-through read of many rows: one leased read of every key, one query for the
/// misses, one batch of guarded fills.
pub(crate) async fn get_many_by_values<M: Model, E: Executor>(
    db: &mut E,
    keys: Vec<Vec<Value>>,
    o: &PolicyOverride,
) -> Result<Vec<Option<M>>> {
    let cache = cache_of(db);
    let Some(cache) = cache else {
        let mut found = db_get_many::<M, E>(db, &keys).await?;
        return Ok(keys.iter().map(|k| found.remove(&super::keys::encode_components(k))).collect());
    };
    // The cache answers before the store would: the guard (a tenant handle's key check) first.
    db.guard(&Operation::read("find_many", M::SCHEMA, None).with_keys(&keys))?;
    let policy = policy_for(M::SCHEMA, o)?;
    let lease = lease::new_lease();
    let make = |k: &super::KeyScheme| keys.iter().map(|key| k.entry(M::SCHEMA, key)).collect();
    let (ekeys, found) = lease::read(&cache, make, &lease).await.unwrap_or_default();
    let mut ops = Vec::new();
    let mut out: Vec<Option<Option<M>>> = Vec::with_capacity(keys.len());
    let mut leased = vec![false; keys.len()];
    for i in 0..keys.len() {
        out.push(match found.get(i) {
            Some(Found::Value(bytes)) => decoded::<M>(&cache, &ekeys[i], bytes, &mut ops),
            Some(Found::Leased) => {
                leased[i] = true;
                None
            }
            _ => None,
        });
    }
    let missing: Vec<Vec<Value>> = keys.iter().zip(&out).filter(|(_, o)| o.is_none()).map(|(k, _)| k.clone()).collect();
    cache.inner.stats.misses.fetch_add(missing.len() as u64, Ordering::Relaxed);
    observe::cache(CacheEvent::Miss, M::SCHEMA.name, missing.len() as u64);
    let mut fills = Vec::new();
    if !missing.is_empty() {
        let mut rows = db_get_many::<M, E>(db, &missing).await?;
        for (i, slot) in out.iter_mut().enumerate() {
            if slot.is_none() {
                let row = rows.remove(&super::keys::encode_components(&keys[i]));
                if leased[i] {
                    let (value, _) = entry_for(&cache, row.as_ref(), &policy);
                    fills.push(lease::fill(ekeys[i].clone(), &lease, value));
                }
                *slot = Some(row);
            }
        }
    }
    write_ops(&cache, ops).await;
    observe::cache(CacheEvent::Fill, M::SCHEMA.name, fills.iter().filter(|f| f.value.is_some()).count() as u64);
    lease::store(&cache, fills).await;
    Ok(out.into_iter().map(Option::flatten).collect())
}

/// The first row whose `field` holds `value`, from the database.
async fn db_by_value<M: Model, E: Executor>(db: &mut E, field: usize, value: Value) -> Result<Option<M>> {
    let mut q = Query::<M>::new();
    q.filter = Some(Node::Compare { field, op: CmpOp::Eq, value });
    let op = Operation::read("find_by_unique", M::SCHEMA, q.filter.as_ref());
    dispatch!(db, op, D => D::first(db, q).await)
}

/// A lookup by a unique field's value: lookup key → primary key → the row's entry, checked
/// against the value (a lookup left from before an update is deleted and redone).
async fn by_unique<M: Model, E: Executor>(
    db: &mut E,
    field: usize,
    value: Value,
    o: &PolicyOverride,
) -> Result<Option<M>> {
    let schema = M::SCHEMA;
    let Some(cache) = cache_of(db) else { return db_by_value(db, field, value).await };
    let policy = policy_for(schema, o)?;
    let lease = lease::new_lease();
    let mut ops = Vec::new();
    let mut leased_key = None;
    if let Some((keys, found)) = lease::read(&cache, |k| vec![k.unique(schema, field, &value)], &lease).await {
        let lkey = keys.into_iter().next().unwrap_or_default();
        match found.into_iter().next() {
            Some(Found::Value(bytes)) => match codec::decode(schema, &bytes) {
                Decoded::Lookup(key) => {
                    let row: Option<M> = get_by_values(db, key, o).await?;
                    match row {
                        Some(row) if row.to_values()?.get(field) == Some(&value) => return Ok(Some(row)),
                        _ => ops.push(Op::Del(lkey)),
                    }
                }
                Decoded::Absent => {
                    cache.inner.stats.negative_hits.fetch_add(1, Ordering::Relaxed);
                    observe::cache(CacheEvent::Hit, schema.name, 1);
                    return Ok(None);
                }
                other => {
                    cache.inner.stats.corrupt.fetch_add(1, Ordering::Relaxed);
                    observe::cache(CacheEvent::Corrupt, schema.name, 1);
                    tracing::warn!(target: "polystore::cache", key = lkey, found = ?other, "unreadable lookup deleted");
                    ops.push(Op::Del(lkey));
                }
            },
            Some(Found::Leased) => leased_key = Some(lkey),
            Some(Found::Busy) | None => {}
        }
    }
    cache.inner.stats.misses.fetch_add(1, Ordering::Relaxed);
    observe::cache(CacheEvent::Miss, schema.name, 1);
    let row = db_by_value::<M, E>(db, field, value).await?;
    write_ops(&cache, ops).await;
    if let Some(lkey) = leased_key {
        // Only the lookup is filled: the row's entry is not leased here (it is filled by the
        // next read by key).
        let value = match &row {
            Some(r) => {
                let values = r.to_values()?;
                let key: Vec<Value> = schema.key_of(&values);
                Some((codec::encode_lookup(&key), policy::entry_ttl(&policy)))
            }
            None => policy.negative_ttl.map(|ttl| (codec::encode_absent(), ttl)),
        };
        observe::cache(CacheEvent::Fill, schema.name, u64::from(value.is_some()));
        lease::store(&cache, vec![lease::fill(lkey, &lease, value)]).await;
    }
    Ok(row)
}
