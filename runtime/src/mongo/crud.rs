//! CRUD on MongoDB collections: what [`ModelExt`](crate::ModelExt)'s operations run when their
//! target is a [`MongoStore`](crate::mongo::MongoStore).
//!
//! Writes return the row *as stored*: decoded from the document that was written (or, for
//! updates and upserts, from the document `findAndModify` returns), so a timestamp comes back
//! with BSON's millisecond precision, as a later read would see it.
//!
//! **Generated keys.** MongoDB has no sequences: a `#[model(generated)]` integer key is taken
//! from the counters collection ([`COUNTERS_COLLECTION`]), one document per collection,
//! advanced atomically with `findAndModify` + `$inc` (by the number of rows for
//! `insert_many`, so a batch costs one round trip). Keys are unique and increasing; a failed
//! insert leaves a gap, as a PostgreSQL sequence does. A key the caller writes
//! (`insert_with_key`, `upsert`) first raises the counter to it with `$max`.

use mongodb::bson::raw::RawDocument;
use mongodb::bson::{Bson, Document, RawDocumentBuf, doc};

use crate::crud::{Keys, check_key};
use crate::error::{Error, Result};
use crate::model::Model;
use crate::mongo::bson::{DocReader, key_filter, to_bson, to_raw_document};
use crate::mongo::exec::Read;
use crate::mongo::{COUNTERS_COLLECTION, Conn, exec};
use crate::schema::{AutoTimestamp, ModelSchema, Scalar};
use crate::sql::build::stamp;
use crate::value::Value;

/// Decodes one document into a model.
pub(crate) fn decode<M: Model>(doc: &RawDocument) -> Result<M> {
    M::from_reader(&mut DocReader::new(M::SCHEMA, doc)?)
}

fn decode_owned<M: Model>(doc: &Document) -> Result<M> {
    let raw = RawDocumentBuf::from_document(doc).map_err(|e| Error::Driver(Box::new(e)))?;
    decode(&raw)
}

/// Adds `{<stamp>: null}` to `filter` for a soft-delete model: only live documents match
/// (a missing stamp counts as live, as `null` matches a missing field).
pub(crate) fn live_only(schema: &'static ModelSchema, filter: &mut Document) {
    if let Some(i) = schema.soft_delete {
        filter.insert(crate::mongo::bson::field_path(schema, i), Bson::Null);
    }
}

/// The model with primary-key values `key`, if any (a live one, for a soft-delete model).
pub(crate) async fn get<M: Model>(mut conn: Conn<'_>, key: Vec<Value>) -> Result<Option<M>> {
    let mut filter = key_filter(M::SCHEMA, key)?;
    live_only(M::SCHEMA, &mut filter);
    let read =
        Read::Find { collection: M::SCHEMA.table, filter, sort: None, skip: None, limit: Some(1), projection: None };
    let mut found = None;
    exec::cursor(&mut conn, "find", Some(M::SCHEMA), read, |d| {
        found = Some(decode::<M>(d)?);
        Ok(())
    })
    .await?;
    Ok(found)
}

/// Reserves `n` generated keys for `schema`; returns the first.
async fn reserve_keys(conn: &mut Conn<'_>, schema: &'static ModelSchema, n: usize) -> Result<i64> {
    let n = i64::try_from(n).unwrap_or(i64::MAX);
    let cmd = doc! {
        "findAndModify": COUNTERS_COLLECTION,
        "query": { "_id": schema.table },
        "update": { "$inc": { "seq": n } },
        "upsert": true,
        "new": true,
    };
    // Two first uses of a counter racing each other both try to create its document; the
    // loser can get no document back (or a duplicate-key error) although nothing was counted
    // for it. Such an attempt reserved nothing, so it is simply sent again.
    for _ in 0..COUNTER_ATTEMPTS {
        let reply = match exec::command(conn, "next_key", Some(schema), cmd.clone()).await {
            Ok(reply) => reply,
            Err(e) if is_duplicate_key(&e) => continue,
            Err(e) => return Err(e),
        };
        let seq = reply.get_document("value").ok().and_then(|v| match v.get("seq") {
            Some(Bson::Int64(s)) => Some(*s),
            Some(Bson::Int32(s)) => Some(i64::from(*s)),
            Some(Bson::Double(s)) => Some(*s as i64),
            _ => None,
        });
        if let Some(seq) = seq {
            return Ok(seq - n + 1);
        }
    }
    Err(Error::Database {
        code: None,
        message: format!("{}: the key counter returned no value after {COUNTER_ATTEMPTS} attempts", schema.name),
    })
}

/// How many times [`reserve_keys`] asks the counter before giving up.
const COUNTER_ATTEMPTS: usize = 5;

/// Whether `e` is MongoDB's duplicate-key error (code 11000, mapped by `exec`).
fn is_duplicate_key(e: &Error) -> bool {
    matches!(e, Error::UniqueViolation { .. })
}

/// Puts generated key number `next` into `values` (the schema's generated field).
fn assign_key(schema: &'static ModelSchema, values: &mut [Value], next: i64) -> Result<()> {
    for (i, f) in schema.fields.iter().enumerate().filter(|(_, f)| f.generated) {
        let out_of_range = || Error::Encode {
            model: schema.name,
            field: f.name,
            source: crate::error::ValueError::OutOfRange { value: next.to_string(), target: "generated key" },
        };
        values[i] = match f.ty.scalar {
            Scalar::I16 => Value::I16(i16::try_from(next).map_err(|_| out_of_range())?),
            Scalar::I32 => Value::I32(i32::try_from(next).map_err(|_| out_of_range())?),
            _ => Value::I64(next),
        };
    }
    Ok(())
}

fn has_generated(schema: &ModelSchema) -> bool {
    schema.fields.iter().any(|f| f.generated)
}

/// Raises the counter of `schema`'s generated key to at least `key` (`$max`, atomic), so
/// that keys handed out later are above a key the caller wrote.
async fn raise_counter(conn: &mut Conn<'_>, schema: &'static ModelSchema, key: i64) -> Result<()> {
    let cmd = doc! {
        "update": COUNTERS_COLLECTION,
        "updates": [{ "q": { "_id": schema.table }, "u": { "$max": { "seq": key } }, "upsert": true }],
    };
    exec::command(conn, "next_key", Some(schema), cmd).await.map(drop)
}

/// Inserts `rows` with one `insert` command (ordered), returning them as stored. Without a
/// transaction the batch is not atomic: on a failure, the rows before the failing one stay.
/// With [`Keys::Keep`] the rows' generated keys are written as given and the counter is
/// raised past them first; with [`Keys::Assign`] they must be 0 and come from the counter.
pub(crate) async fn insert_many<M: Model>(
    mut conn: Conn<'_>,
    rows: &[M],
    op: &'static str,
    keys: Keys,
) -> Result<Vec<M>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let schema = M::SCHEMA;
    let now = chrono::Utc::now();
    let assign = keys == Keys::Assign && has_generated(schema);
    let mut all_values = Vec::with_capacity(rows.len());
    let mut max_key = None;
    for row in rows {
        let values = row.to_values()?;
        max_key = max_key.max(check_key(schema, &values, keys)?);
        all_values.push(values);
    }
    if let Some(key) = max_key {
        raise_counter(&mut conn, schema, key).await?;
    }
    let mut next = if assign { reserve_keys(&mut conn, schema, rows.len()).await? } else { 0 };
    let mut docs = Vec::with_capacity(rows.len());
    let mut stored = Vec::with_capacity(rows.len());
    for mut values in all_values {
        stamp(schema, &mut values, now, true);
        if let Some(i) = M::VERSION_FIELD {
            crate::version::initial_value(&mut values[i]);
        }
        if assign {
            assign_key(schema, &mut values, next)?;
            next += 1;
        }
        let doc = to_raw_document(schema, &values)?;
        stored.push(decode::<M>(&doc)?);
        docs.push(doc);
    }
    exec::insert_many(&mut conn, op, schema, docs).await?;
    Ok(stored)
}

/// Adds the optimistic-locking condition (`version == expected`) to a write's filter.
fn version_filter(schema: &'static ModelSchema, filter: &mut Document, expected: Option<(usize, Value)>) -> Result<()> {
    if let Some((i, value)) = expected {
        let b = to_bson(value).map_err(|source| Error::Encode {
            model: schema.name,
            field: schema.fields[i].name,
            source,
        })?;
        filter.insert(crate::mongo::bson::field_path(schema, i), b);
    }
    Ok(())
}

/// `$set` of the fields an update writes: all but the key, the `created_at` fields and the
/// fields in `skip`.
fn set_document(schema: &'static ModelSchema, values: &[Value], skip: &[usize]) -> Result<Document> {
    let mut set = Document::new();
    for (i, f) in schema.fields.iter().enumerate() {
        if schema.is_key(i) || f.auto == AutoTimestamp::CreatedAt || skip.contains(&i) {
            continue;
        }
        let b =
            to_bson(values[i].clone()).map_err(|source| Error::Encode { model: schema.name, field: f.name, source })?;
        set.insert(f.column, b);
    }
    Ok(set)
}

/// Runs `findAndModify` and decodes the document it returns (after the change).
async fn find_and_modify<M: Model>(
    conn: &mut Conn<'_>,
    op: &'static str,
    query: Document,
    update: Document,
    upsert: bool,
) -> Result<Option<M>> {
    let cmd = doc! {
        "findAndModify": M::SCHEMA.table,
        "query": query,
        "update": update,
        "upsert": upsert,
        "new": true,
    };
    let reply = exec::command(conn, op, Some(M::SCHEMA), cmd).await?;
    match reply.get("value") {
        Some(Bson::Document(d)) => decode_owned::<M>(d).map(Some),
        _ => Ok(None),
    }
}

/// Writes every field but the key and `created_at` (`$set`, so `created_at` keeps its stored
/// value) to the document with this row's key.
pub(crate) async fn update<M: Model>(mut conn: Conn<'_>, row: &M) -> Result<M> {
    let schema = M::SCHEMA;
    let mut values = row.to_values()?;
    stamp(schema, &mut values, chrono::Utc::now(), false);
    let expected = crate::version::bump::<M>(&mut values)?;
    let key = schema.primary_key.iter().map(|&i| values[i].clone()).collect();
    let mut query = key_filter(schema, key)?;
    live_only(schema, &mut query);
    version_filter(schema, &mut query, expected)?;
    // The soft-delete stamp is polystore's to write (`delete`, `restore`), never an update's.
    let stamp: Vec<usize> = schema.soft_delete.into_iter().collect();
    let set = set_document(schema, &values, &stamp)?;
    let update = if set.is_empty() {
        doc! { "$setOnInsert": {} }
    } else {
        doc! { "$set": set }
    };
    find_and_modify::<M>(&mut conn, "update", query, update, false).await?.ok_or(Error::NotFound { model: schema.name })
}

/// Writes only `sets` (field position, value), plus the automatic `updated_at` stamps, to the
/// document with primary key `key` (a partial update from an update DTO); returns it as stored.
pub(crate) async fn update_fields<M: Model>(
    mut conn: Conn<'_>,
    key: Vec<Value>,
    mut sets: Vec<(usize, Value)>,
) -> Result<M> {
    let schema = M::SCHEMA;
    sets.retain(|(i, _)| schema.soft_delete != Some(*i));
    if sets.is_empty() {
        return get::<M>(conn, key).await?.ok_or(Error::NotFound { model: schema.name });
    }
    let expected = crate::version::bump_sets::<M>(&mut sets)?;
    let mut query = key_filter(schema, key)?;
    live_only(schema, &mut query);
    version_filter(schema, &mut query, expected)?;
    let mut set = Document::new();
    let stamps = crate::sql::build::update_stamps(schema, chrono::Utc::now());
    let assigned: Vec<usize> = sets.iter().map(|(f, _)| *f).collect();
    for (field, value) in sets.into_iter().chain(stamps.into_iter().filter(|(f, _)| !assigned.contains(f))) {
        let f = &schema.fields[field];
        if schema.is_key(field) {
            return Err(Error::Unsupported {
                store: "mongodb",
                what: "changing a primary key (`_id` is immutable)".into(),
            });
        }
        let b = to_bson(value).map_err(|source| Error::Encode { model: schema.name, field: f.name, source })?;
        set.insert(f.column, b);
    }
    find_and_modify::<M>(&mut conn, "update", query, doc! { "$set": set }, false)
        .await?
        .ok_or(Error::NotFound { model: schema.name })
}

/// Inserts `row`, or updates the document with the same values in `conflict` (the primary
/// key, or a unique index's fields): one `findAndModify` with `upsert`. Fields only written
/// on insert (`created_at`, and a generated key when conflicting on another index) go in
/// `$setOnInsert`; a generated key is reserved even when the row turns out to exist.
pub(crate) async fn upsert<M: Model>(mut conn: Conn<'_>, row: &M, conflict: &[usize]) -> Result<M> {
    let schema = M::SCHEMA;
    let mut values = row.to_values()?;
    stamp(schema, &mut values, chrono::Utc::now(), true);
    let on_key = conflict == schema.primary_key;
    if on_key && let Some(key) = check_key(schema, &values, Keys::Keep)? {
        raise_counter(&mut conn, schema, key).await?;
    }
    if !on_key && has_generated(schema) {
        let next = reserve_keys(&mut conn, schema, 1).await?;
        assign_key(schema, &mut values, next)?;
    }
    let expected = crate::version::bump::<M>(&mut values)?;
    let mut query = if on_key {
        key_filter(schema, conflict.iter().map(|&i| values[i].clone()).collect())?
    } else {
        let mut q = Document::new();
        for &i in conflict {
            let b = to_bson(values[i].clone()).map_err(|source| Error::Encode {
                model: schema.name,
                field: schema.fields[i].name,
                source,
            })?;
            q.insert(crate::mongo::bson::field_path(schema, i), doc! { "$eq": b });
        }
        // A soft-delete model's unique indexes cover live documents only.
        live_only(schema, &mut q);
        q
    };
    version_filter(schema, &mut query, expected)?;
    let set = set_document(schema, &values, conflict)?;
    let mut on_insert = Document::new();
    for (i, f) in schema.fields.iter().enumerate() {
        let insert_only = f.auto == AutoTimestamp::CreatedAt || (!on_key && schema.is_key(i));
        if insert_only {
            let b = to_bson(values[i].clone()).map_err(|source| Error::Encode {
                model: schema.name,
                field: f.name,
                source,
            })?;
            on_insert.insert(crate::mongo::bson::field_path(schema, i), b);
        }
    }
    let mut update = Document::new();
    if !set.is_empty() {
        update.insert("$set", set);
    }
    if !on_insert.is_empty() || update.is_empty() {
        update.insert("$setOnInsert", on_insert);
    }
    find_and_modify::<M>(&mut conn, "upsert", query, update, true).await?.ok_or(Error::NotFound { model: schema.name })
}

/// Deletes the document with primary key `key` (and, with `expected`, that version); returns
/// how many were deleted (0 or 1).
pub(crate) async fn delete_key<M: Model>(mut conn: Conn<'_>, key: Vec<Value>, expected: Option<Value>) -> Result<u64> {
    let mut filter = key_filter(M::SCHEMA, key)?;
    version_filter(M::SCHEMA, &mut filter, M::VERSION_FIELD.zip(expected))?;
    let cmd = doc! { "delete": M::SCHEMA.table, "deletes": [{ "q": filter, "limit": 1 }] };
    let reply = exec::command(&mut conn, "delete", Some(M::SCHEMA), cmd).await?;
    Ok(count_of(&reply, "n"))
}

/// A count field of a reply (`n`, `nModified`), 0 when absent.
pub(crate) fn count_of(reply: &Document, key: &str) -> u64 {
    match reply.get(key) {
        Some(Bson::Int32(n)) => u64::try_from(*n).unwrap_or(0),
        Some(Bson::Int64(n)) => u64::try_from(*n).unwrap_or(0),
        Some(Bson::Double(n)) => *n as u64,
        _ => 0,
    }
}
