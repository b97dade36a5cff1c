//! What a cache attached to a [`MongoStore`](super::MongoStore) needs from MongoDB: the reads
//! behind cached reads (by key values, by many keys, by a unique value) and bulk writes that
//! know which documents they changed.
//!
//! MongoDB's `update` and `delete` commands report counts, not keys. With a cache attached
//! (and a model the cache tracks), `update_many` and `delete_many` therefore first read the
//! matching documents and then write only those (`<filter> AND _id IN <keys read>`): every
//! document the write changes is one whose key is invalidated. A document that starts
//! matching between the read and the write is left alone, as if the write had run at the
//! read. Without a cache they are the single commands of `query.rs`.

use std::collections::HashMap;

use crate::cache::{caches, keys_filter, rows_deleted, rows_updated};
use crate::db::Executor;
use crate::error::Result;
use crate::model::Model;
use crate::mongo::Conn;
use crate::query::{Assign, Node, Query};
use crate::value::Value;

/// Keys per write command of a cached bulk write.
const CHUNK: usize = 1000;

/// The documents with the given primary-key values (in no particular order).
pub(crate) async fn get_many_by_values<M: Model>(conn: Conn<'_>, keys: &[Vec<Value>]) -> Result<Vec<M>> {
    let mut q = Query::<M>::new();
    q.filter = Some(keys_filter(M::SCHEMA, keys));
    super::query::all(conn, &q).await
}

/// The primary-key values of `row`.
fn key_of<M: Model>(row: &M) -> Result<Vec<Value>> {
    let values = row.to_values()?;
    Ok(M::SCHEMA.primary_key.iter().map(|&i| values[i].clone()).collect())
}

/// The keys of the documents `q` matches now.
async fn matching_keys<M: Model, E: Executor>(db: &mut E, q: &Query<M>) -> Result<Vec<Vec<Value>>> {
    let mut read = Query::<M>::new();
    read.filter = q.filter.clone();
    read.rows = q.rows;
    let Some(conn) = super::conn(db) else { return Ok(Vec::new()) };
    super::query::all(conn, &read).await?.iter().map(key_of).collect()
}

/// `q` restricted to the documents with the given keys.
fn restricted<M: Model>(q: &Query<M>, keys: &[Vec<Value>]) -> Query<M> {
    let by_key = keys_filter(M::SCHEMA, keys);
    let mut out = Query::<M>::new();
    out.rows = q.rows;
    out.filter = Some(match &q.filter {
        Some(f) => Node::And(vec![f.clone(), by_key]),
        None => by_key,
    });
    out
}

/// `update_many` on MongoDB: with a cache, on the documents matched first, invalidating each
/// (their indexed fields read back afterwards, for the Redis indexes).
pub(crate) async fn update_many<M: Model, E: Executor>(db: &mut E, q: &Query<M>, list: Vec<Assign>) -> Result<u64> {
    if !caches(db, M::SCHEMA) {
        let Some(conn) = super::conn(db) else { return Ok(0) };
        return super::query::update_many(conn, q, list).await;
    }
    let keys = matching_keys(db, q).await?;
    let mut total = 0;
    for chunk in keys.chunks(CHUNK) {
        let Some(conn) = super::conn(db) else { return Ok(total) };
        total += super::query::update_many(conn, &restricted(q, chunk), list.clone()).await?;
        let rows = match super::conn(db) {
            Some(conn) => get_many_by_values::<M>(conn, chunk).await?,
            None => Vec::new(),
        };
        let mut found: HashMap<String, Vec<Value>> = HashMap::with_capacity(rows.len());
        for row in &rows {
            found.insert(crate::cache::keys::encode_components(&key_of(row)?), row.to_values()?);
        }
        let changed =
            chunk.iter().map(|k| (k.clone(), found.remove(&crate::cache::keys::encode_components(k)))).collect();
        rows_updated(db, M::SCHEMA, changed).await;
    }
    Ok(total)
}

/// `delete_many` on MongoDB: with a cache, on the documents matched first, invalidating each.
pub(crate) async fn delete_many<M: Model, E: Executor>(db: &mut E, q: &Query<M>) -> Result<u64> {
    if !caches(db, M::SCHEMA) {
        let Some(conn) = super::conn(db) else { return Ok(0) };
        return super::query::delete_many(conn, q).await;
    }
    let keys = matching_keys(db, q).await?;
    let mut total = 0;
    for chunk in keys.chunks(CHUNK) {
        let Some(conn) = super::conn(db) else { return Ok(total) };
        total += super::query::delete_many(conn, &restricted(q, chunk)).await?;
        rows_deleted(db, M::SCHEMA, chunk.to_vec()).await;
    }
    Ok(total)
}
