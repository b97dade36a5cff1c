//! Declared Redis structures as indexes: a `#[model(set_index)]` field keeps one set of
//! primary keys per value (members-by-value queries), a `#[model(sorted_set)]` field one
//! sorted set scored by the field (a leaderboard: top N, rank, range by score). Every write
//! path keeps them in sync (`write.rs`); [`IndexedExt::rebuild_redis_indexes`] fills them for
//! rows written before the cache was attached.
//!
//! The structures only hold keys: rows are loaded through the cache (or the database), and
//! checked against the asked-for value, so a stale member is never returned.
//!
//! **Fence.** After a lost invalidation the cache raises its generation and records it as the
//! *index fence* (`<ns>:#ixlost`): upkeep of the indexes may have been lost with it (a missing
//! member cannot be detected on read). From then on a model's indexes answer nothing until
//! [`IndexedExt::rebuild_redis_indexes`] has rebuilt them (it records `<ns>:#ixok:<table>`);
//! meanwhile the store answers. Without a cache,
//! inside a transaction, or when the backend fails, the same questions are answered by the
//! store (SQL, or a MongoDB query).
//!
//! **Tenants.** A structure of a distributed model holds every tenant's rows (a set index of
//! the distribution column itself holds one tenant's, and is tagged with it, see `keys.rs`).
//! Through a tenant handle ([`crate::TenantDb`]) the answers are the tenant's: members of
//! other tenants are dropped before their rows are loaded, and the questions a shared
//! structure cannot answer for one tenant (`top_by`, `rank_by`) go to the store with the
//! tenant's filter.

use std::future::Future;
use std::sync::atomic::Ordering;

use super::backend::ZRange;
use super::codec;
use super::read::{cache_of, db_get_many, get_many_by_values};
use super::write::{reindex, score};
use super::{Cache, Op, PolicyOverride};
use crate::db::Executor;
use crate::driver::{Driver as _, Operation, dispatch};
use crate::error::{Error, Result};
use crate::model::{Field, Model};
use crate::query::{CmpOp, Node, OrderTerm, Query};
use crate::schema::{ModelSchema, RedisIndex, Scalar};
use crate::value::{ToParam, Value};

/// Queries answered by the declared Redis structures, for every model
/// (`use polystore::prelude::*`).
pub trait IndexedExt: Model {
    /// The rows whose `#[model(set_index)]` field `field` holds `value` (in no particular
    /// order).
    fn members_by_value<T, V, E>(
        db: E,
        field: Field<Self, T>,
        value: V,
    ) -> impl Future<Output = Result<Vec<Self>>> + Send
    where
        V: ToParam<T>,
        E: Executor,
    {
        let value = value.to_param();
        async move {
            let mut db = db;
            let field = checked(Self::SCHEMA, field.index(), RedisIndex::Set)?;
            let value = value.map_err(|source| Error::Encode { model: Self::SCHEMA.name, field: "?", source })?;
            members::<Self, E>(&mut db, field, value).await
        }
    }

    /// The `n` rows with the highest `#[model(sorted_set)]` field `field`, highest first, with
    /// their scores.
    fn top_by<T, E: Executor>(
        db: E,
        field: Field<Self, T>,
        n: usize,
    ) -> impl Future<Output = Result<Vec<(Self, f64)>>> + Send {
        async move {
            let mut db = db;
            let field = checked(Self::SCHEMA, field.index(), RedisIndex::SortedSet)?;
            ranged::<Self, E>(&mut db, field, ZRange::Top(n)).await
        }
    }

    /// The rows whose sorted-set field `field` lies in `min..=max`, lowest first, with scores.
    fn range_by_score<T, E: Executor>(
        db: E,
        field: Field<Self, T>,
        min: f64,
        max: f64,
    ) -> impl Future<Output = Result<Vec<(Self, f64)>>> + Send {
        async move {
            let mut db = db;
            let field = checked(Self::SCHEMA, field.index(), RedisIndex::SortedSet)?;
            ranged::<Self, E>(&mut db, field, ZRange::ByScore { min, max }).await
        }
    }

    /// The 0-based rank of the row with key `key` by sorted-set field `field`, highest score
    /// first; `None` when the row does not exist or its field is NULL.
    fn rank_by<T, E: Executor>(
        db: E,
        field: Field<Self, T>,
        key: Self::Key,
    ) -> impl Future<Output = Result<Option<u64>>> + Send {
        async move {
            let mut db = db;
            let field = checked(Self::SCHEMA, field.index(), RedisIndex::SortedSet)?;
            let key = Self::key_values(&key)?;
            rank::<Self, E>(&mut db, field, key).await
        }
    }

    /// Rewrites the sorted sets and set-index memberships of every row from the database
    /// (after attaching a cache to existing data, or after a Redis data loss). Returns the
    /// number of rows indexed. Needs a handle with a cache.
    fn rebuild_redis_indexes<E: Executor>(db: E) -> impl Future<Output = Result<u64>> + Send {
        async move {
            let mut db = db;
            let Some(cache) = cache_of(&db) else {
                return Err(Error::Config("rebuild_redis_indexes needs a handle with a cache (Db::with_cache)".into()));
            };
            let rows = query::<Self, E>(&mut db, &Query::<Self>::new()).await?;
            let values = rows.iter().map(Model::to_values).collect::<Result<Vec<_>>>()?;
            let n = values.len() as u64;
            // The generation before the rebuild: a fence made meanwhile leaves them unusable.
            let generation = cache.generation();
            reindex(&cache, Self::SCHEMA, values).await?;
            let done = Op::Set {
                key: cache.keys().index_rebuilt_key(Self::SCHEMA),
                value: generation.to_string().into_bytes(),
                ttl: None,
            };
            cache.timed(cache.backend().apply(vec![done])).await?;
            Ok(n)
        }
    }
}

impl<M: Model> IndexedExt for M {}

fn checked(schema: &ModelSchema, field: usize, kind: RedisIndex) -> Result<usize> {
    if schema.fields[field].redis == kind {
        return Ok(field);
    }
    let attr = if kind == RedisIndex::Set { "set_index" } else { "sorted_set" };
    Err(Error::Config(format!("{}.{} is not declared #[model({attr})]", schema.name, schema.fields[field].name)))
}

/// Loads rows by key values through the cache when the model is cached, else the database.
async fn load<M: Model, E: Executor>(db: &mut E, keys: Vec<Vec<Value>>) -> Result<Vec<Option<M>>> {
    if M::SCHEMA.cache.is_some() {
        return get_many_by_values(db, keys, &PolicyOverride::default()).await;
    }
    let mut found = db_get_many::<M, E>(db, &keys).await?;
    Ok(keys.iter().map(|k| found.remove(&super::keys::encode_components(k))).collect())
}

/// The primary keys in `members`, keeping only the tenant's on an executor scoped to one.
fn parse_keys<E: Executor>(db: &E, schema: &ModelSchema, members: &[String]) -> Vec<Vec<Value>> {
    let parsed = members.iter().filter_map(|m| codec::parse_member(m, schema.key_fields().map(|f| f.ty)));
    match db.tenant() {
        Some(tenant) => parsed.filter(|key| tenant.owns_key(schema, key)).collect(),
        None => parsed.collect(),
    }
}

fn field_value<M: Model>(row: &M, field: usize) -> Result<Value> {
    Ok(row.to_values()?.swap_remove(field))
}

async fn query<M: Model, E: Executor>(db: &mut E, q: &Query<M>) -> Result<Vec<M>> {
    dispatch!(db, Operation::read("select", M::SCHEMA, q.filter.as_ref()), D => D::all(db, q).await)
}

async fn count<M: Model, E: Executor>(db: &mut E, q: &Query<M>) -> Result<i64> {
    dispatch!(db, Operation::read("count", M::SCHEMA, q.filter.as_ref()), D => D::count(db, q).await)
}

/// Whether `schema`'s declared indexes may answer: no fence was made since they were last
/// rebuilt (a fence means some index upkeep may have been lost). `None` when the backend
/// cannot say (the store answers then).
async fn indexes_usable(cache: &Cache, schema: &'static ModelSchema) -> Option<bool> {
    let keys = [cache.keys().index_fence_key(), cache.keys().index_rebuilt_key(schema)];
    let found = cache.guard("index fence", cache.backend().get_many(&keys)).await?;
    let number = |b: &Option<Vec<u8>>| {
        b.as_deref().and_then(|b| std::str::from_utf8(b).ok()).and_then(|s| s.parse::<u64>().ok())
    };
    Some(match (number(&found[0]), number(&found[1])) {
        (None, _) => true,
        (Some(lost), Some(rebuilt)) => rebuilt >= lost,
        (Some(_), None) => false,
    })
}

/// The structure read `read`, only when the indexes are usable (see [`indexes_usable`]).
async fn index_read<T>(
    cache: &Cache,
    schema: &'static ModelSchema,
    op: &'static str,
    read: impl std::future::Future<Output = Result<T>>,
) -> Option<T> {
    let (usable, found) = futures_util::join!(indexes_usable(cache, schema), cache.guard(op, read));
    if usable == Some(true) { found } else { None }
}

fn degraded(cache: &Cache) {
    cache.inner.stats.misses.fetch_add(1, Ordering::Relaxed);
}

async fn members<M: Model, E: Executor>(db: &mut E, field: usize, value: Value) -> Result<Vec<M>> {
    if let Some(cache) = cache_of(db) {
        let key = cache.keys().set_index(M::SCHEMA, field, &value);
        match index_read(&cache, M::SCHEMA, "smembers", cache.backend().members(&key)).await {
            Some(members) => {
                let keys = parse_keys(&*db, M::SCHEMA, &members);
                let rows = load::<M, E>(db, keys).await?;
                let mut out = Vec::with_capacity(rows.len());
                for row in rows.into_iter().flatten() {
                    if field_value(&row, field)? == value {
                        out.push(row);
                    }
                }
                return Ok(out);
            }
            None => degraded(&cache),
        }
    }
    let mut q = Query::<M>::new();
    q.filter = Some(Node::Compare { field, op: CmpOp::Eq, value });
    let q = crate::db::scope_for(&*db, q);
    query(db, &q).await
}

async fn ranged<M: Model, E: Executor>(db: &mut E, field: usize, range: ZRange) -> Result<Vec<(M, f64)>> {
    let shared = matches!(range, ZRange::Top(_)) && crate::db::tenant_scoped(&*db, M::SCHEMA);
    if let Some(cache) = cache_of(db).filter(|_| !shared) {
        let key = cache.keys().sorted_set(M::SCHEMA, field);
        match index_read(&cache, M::SCHEMA, "zrange", cache.backend().zrange(&key, range)).await {
            Some(scored) => {
                let keys = parse_keys(&*db, M::SCHEMA, &scored.iter().map(|(m, _)| m.clone()).collect::<Vec<_>>());
                let rows = load::<M, E>(db, keys).await?;
                let mut out = Vec::with_capacity(rows.len());
                for row in rows.into_iter().flatten() {
                    if let Some(s) = score(&field_value(&row, field)?) {
                        out.push((row, s));
                    }
                }
                // The rows' own scores are authoritative; keep the order they give.
                match range {
                    ZRange::Top(_) => out.sort_by(|a, b| b.1.total_cmp(&a.1)),
                    ZRange::ByScore { min, max } => {
                        out.retain(|(_, s)| *s >= min && *s <= max);
                        out.sort_by(|a, b| a.1.total_cmp(&b.1));
                    }
                }
                return Ok(out);
            }
            None => degraded(&cache),
        }
    }
    let scalar = M::SCHEMA.fields[field].ty.scalar;
    let mut q = Query::<M>::new();
    match range {
        ZRange::Top(n) => {
            q.filter = Some(Node::IsNull { field, negated: true });
            q.order = vec![OrderTerm { field, descending: true, nulls: None }];
            q.limit = Some(n as u64);
        }
        ZRange::ByScore { min, max } => {
            q.filter = Some(Node::And(vec![
                Node::Compare { field, op: CmpOp::Ge, value: score_value(scalar, min, true) },
                Node::Compare { field, op: CmpOp::Le, value: score_value(scalar, max, false) },
            ]));
            q.order = vec![OrderTerm { field, descending: false, nulls: None }];
        }
    }
    let q = crate::db::scope_for(&*db, q);
    let rows = query(db, &q).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        if let Some(s) = score(&field_value(&row, field)?) {
            out.push((row, s));
        }
    }
    Ok(out)
}

/// A score bound as a value of the field's type (integers rounded inwards, clamped).
fn score_value(scalar: Scalar, x: f64, lower: bool) -> Value {
    let int = if lower { x.ceil() } else { x.floor() };
    match scalar {
        Scalar::I16 => Value::I16(int.clamp(f64::from(i16::MIN), f64::from(i16::MAX)) as i16),
        Scalar::I32 => Value::I32(int.clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i32),
        Scalar::I64 => Value::I64(int.clamp(i64::MIN as f64, i64::MAX as f64) as i64),
        Scalar::F32 => Value::F32(x as f32),
        _ => Value::F64(x),
    }
}

async fn rank<M: Model, E: Executor>(db: &mut E, field: usize, key: Vec<Value>) -> Result<Option<u64>> {
    // By key: a tenant handle refuses another tenant's key before anything is read.
    db.guard(&Operation::read("rank", M::SCHEMA, None).with_key(&key))?;
    if let Some(cache) = cache_of(db).filter(|_| !crate::db::tenant_scoped(&*db, M::SCHEMA)) {
        let zkey = cache.keys().sorted_set(M::SCHEMA, field);
        let member = codec::member(&key);
        match index_read(&cache, M::SCHEMA, "zrevrank", cache.backend().zrank_desc(&zkey, &member)).await {
            Some(rank) => return Ok(rank),
            None => degraded(&cache),
        }
    }
    let mut q = Query::<M>::new();
    q.filter = Some(super::read::keys_filter(M::SCHEMA, std::slice::from_ref(&key)));
    let Some(row) = query::<M, E>(db, &q).await?.pop() else { return Ok(None) };
    let value = field_value(&row, field)?;
    if value == Value::Null {
        return Ok(None);
    }
    let mut q = Query::<M>::new();
    q.filter = Some(Node::Compare { field, op: CmpOp::Gt, value });
    let q = crate::db::scope_for(&*db, q);
    let above = count::<M, E>(db, &q).await?;
    Ok(Some(above.max(0) as u64))
}
