//! The SQL driver's cache upkeep for writes that do not return whole rows: bulk writes and
//! join-row writes get a `RETURNING` list (the key, plus the fields the cache indexes) when a
//! cache is attached, so exactly the affected rows are invalidated; writes that may move a
//! primary key read the old keys first. The cache itself only hears which rows changed
//! (`cache::rows_changed`, `rows_written`, `rows_deleted`).

use std::collections::HashSet;

use crate::cache::{self, keys::encode_components};
use crate::db::Executor;
use crate::error::Result;
use crate::exec;
use crate::model::{Model, decode_error};
use crate::query::{Assign, Node, Query};
use crate::schema::ModelSchema;
use crate::sql::{SqlWriter, Statement, lower};
use crate::value::Value;

/// What the statement given to [`bulk_write`] does to the rows it touches.
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
async fn bulk_write_moving<E: Executor>(
    db: &mut E,
    op: &'static str,
    schema: &'static ModelSchema,
    mut stmt: Statement,
    kind: Bulk,
    old: Vec<Vec<Value>>,
) -> Result<u64> {
    if !cache::caches(&*db, schema) {
        return exec::execute(db, op, Some(schema), stmt).await;
    }
    let mut columns: Vec<usize> = schema.primary_key.to_vec();
    if kind == Bulk::Update {
        for i in cache::indexed_fields(schema) {
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
    let new_keys: HashSet<String> = rows.iter().map(|r| encode_components(&r[..key_len])).collect();
    let mut deleted: Vec<Vec<Value>> = old.into_iter().filter(|k| !new_keys.contains(&encode_components(k))).collect();
    let mut partial = Vec::new();
    for values in rows {
        let key = values[..key_len].to_vec();
        match kind {
            Bulk::Delete => deleted.push(key),
            // Key fields may be indexed too: every returned column is a known new value.
            Bulk::Update => partial.push((key, columns.iter().copied().zip(values).collect())),
        }
    }
    cache::rows_changed(&*db, schema, deleted, partial).await;
    Ok(affected)
}

/// `update_many` assigning a primary-key field on a handle with a cache. An UPDATE returns
/// only the new keys, so the keys of the matching rows are read first and the UPDATE is
/// restricted to them (`<filter> AND <key> IN (<old keys>)`): every row it changes had one of
/// those keys, and both the old keys (as deleted rows) and the new ones are invalidated. Rows
/// that start matching between the read and the UPDATE are not updated, as if the UPDATE had
/// run at the read. Over 1,000 rows, the chunks run in one transaction.
pub(crate) async fn update_many_moving_keys<M: Model, E: Executor>(
    db: &mut E,
    query: &Query<M>,
    list: &[Assign],
    stamps: Vec<(usize, Value)>,
) -> Result<u64> {
    let schema = M::SCHEMA;
    let d = crate::driver::sql::dialect(db);
    if !cache::caches(&*db, schema) {
        let stmt = lower::update_many(d, schema, query, list, stamps)?;
        return exec::execute(db, "update_many", Some(schema), stmt).await;
    }
    let mut select = Query::<M>::new();
    select.filter = query.filter.clone();
    select.rows = query.rows;
    let stmt = lower::select(d, schema, &select)?;
    let mut old = Vec::new();
    for row in exec::fetch_models::<M, E>(db, "update_many", stmt).await? {
        let values = row.to_values()?;
        old.push(schema.key_of(&values));
    }
    let restricted = |keys: &[Vec<Value>]| {
        let mut q = Query::<M>::new();
        q.rows = query.rows;
        let by_key = cache::keys_filter(schema, keys);
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
        let key: Vec<Value> = schema.key_of(&values);
        new_keys.insert(encode_components(&key));
    }
    let moved: Vec<Vec<Value>> = old.into_iter().filter(|k| !new_keys.contains(&encode_components(k))).collect();
    cache::rows_deleted(&&mut tx, schema, moved).await;
    cache::rows_written(&&mut tx, &rows).await;
    tx.commit().await?;
    Ok(rows)
}
