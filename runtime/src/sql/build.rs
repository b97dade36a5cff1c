//! CRUD statement builders: turn a model's schema plus values into [`Statement`]s (queries
//! are lowered in [`crate::sql::lower`]). The same shape always renders the same text (values
//! are parameters, never literals).

use crate::schema::{AutoTimestamp, FieldSchema, ModelSchema, Scalar};
use crate::sql::texts::KeptTexts;
use crate::sql::{Dialect, Param, SqlWriter, Statement};
use crate::value::Value;

mod rows;

#[cfg(all(test, feature = "postgres"))]
pub(crate) use rows::tests;
pub use rows::{InsertStatement, InsertValues, insert, insert_rows, insert_with_keys};

/// `SELECT <all columns> FROM <table>` in schema order (decoders read by position).
pub(crate) fn select_columns(w: &mut SqlWriter<'_>, schema: &ModelSchema) {
    w.push("SELECT ");
    w.list(schema.fields, |w, f| {
        w.ident(f.column);
    });
    w.push(" FROM ").table(schema.table);
}

fn returning(w: &mut SqlWriter<'_>, schema: &ModelSchema) {
    w.push(" RETURNING ");
    w.list(schema.fields, |w, f| {
        w.ident(f.column);
    });
}

fn key_condition(w: &mut SqlWriter<'_>, schema: &ModelSchema, key: Vec<Value>) {
    w.push(" WHERE ");
    for (i, (field, value)) in schema.key_fields().zip(key).enumerate() {
        if i > 0 {
            w.push(" AND ");
        }
        w.ident(field.column).push(" = ").param(value, field.ty);
    }
}

/// ` AND <version> = $n`: the optimistic-locking condition of a versioned write (see
/// `crate::version`), after the key condition.
fn version_condition(w: &mut SqlWriter<'_>, schema: &ModelSchema, expected: Option<(usize, Value)>) {
    if let Some((i, value)) = expected {
        let f = &schema.fields[i];
        w.push(" AND ").ident(f.column).push(" = ").param(value, f.ty);
    }
}

/// ` AND <stamp> IS NULL` for a soft-delete model: a write or read by key that only sees
/// live rows (see `crate::soft_delete`).
fn live_condition(w: &mut SqlWriter<'_>, schema: &ModelSchema) {
    if let Some(i) = schema.soft_delete {
        w.push(" AND ").ident(schema.fields[i].column).push(" IS NULL");
    }
}

/// Finds one row by primary key (a live one, for a soft-delete model).
pub fn find_by_key(d: &dyn Dialect, schema: &ModelSchema, key: Vec<Value>) -> Statement {
    let mut w = SqlWriter::new(d);
    select_columns(&mut w, schema);
    key_condition(&mut w, schema, key);
    live_condition(&mut w, schema);
    w.finish()
}

/// [`find_by_key`] with the text rendered once per model and dialect (see `sql::texts`): a
/// find only differs by its key values, and rendering the statement (quoting every column)
/// cost about a tenth of a find's client-side instructions.
#[cfg_attr(not(any(feature = "postgres", feature = "sqlite")), allow(dead_code))]
pub(crate) fn find_by_key_cached(d: &'static dyn Dialect, schema: &'static ModelSchema, key: Vec<Value>) -> Statement {
    static TEXTS: KeptTexts<()> = KeptTexts::new(usize::MAX, usize::MAX);
    let mut rendered = None;
    let text = TEXTS.get(d, schema, (), || {
        let stmt = find_by_key(d, schema, key.clone());
        rendered.insert(stmt).sql.clone()
    });
    // Rendered just now: its parameters are already there. Otherwise the key's values.
    if let Some(stmt) = rendered {
        return stmt;
    }
    let params = schema.key_fields().zip(key).map(|(f, value)| Param { value, ty: f.ty }).collect();
    Statement { sql: String::from(&*text), params }
}

/// Which fields an INSERT writes: all but database-generated ones, unless `keep_keys` (the
/// caller chose the keys, [`insert_with_keys`]).
fn insert_fields(schema: &ModelSchema, keep_keys: bool) -> impl Iterator<Item = usize> + '_ {
    schema.fields.iter().enumerate().filter(move |(_, f)| keep_keys || !f.generated).map(|(i, _)| i)
}

/// How many rows of this model one INSERT can carry within the dialect's parameter limit.
pub fn rows_per_insert(d: &dyn Dialect, schema: &ModelSchema) -> usize {
    rows_per_statement(d, schema, false)
}

/// How many rows one INSERT writing `insert_fields(schema, keep_keys)` can carry.
pub(crate) fn rows_per_statement(d: &dyn Dialect, schema: &ModelSchema, keep_keys: bool) -> usize {
    let per_row = insert_fields(schema, keep_keys).count().max(1);
    (d.max_params() / per_row).max(1)
}

/// The value an automatic timestamp field `f` takes in a write happening `now`, if it is due
/// (`created_at` only when `inserting`, `updated_at` always).
fn stamp_of(f: &FieldSchema, now: chrono::DateTime<chrono::Utc>, inserting: bool) -> Option<Value> {
    let due = match f.auto {
        AutoTimestamp::None => false,
        AutoTimestamp::CreatedAt => inserting,
        AutoTimestamp::UpdatedAt => true,
    };
    due.then(|| match f.ty.scalar {
        Scalar::Timestamp => Value::Timestamp(now.naive_utc()),
        _ => Value::TimestampTz(now),
    })
}

/// Sets automatic timestamps in `values` for a write happening `now`.
pub fn stamp(schema: &ModelSchema, values: &mut [Value], now: chrono::DateTime<chrono::Utc>, inserting: bool) {
    for (f, v) in schema.fields.iter().zip(values.iter_mut()) {
        if let Some(t) = stamp_of(f, now, inserting) {
            *v = t;
        }
    }
}

/// INSERT ... ON CONFLICT (`conflict` fields) DO UPDATE SET every other written field.
///
/// Conflicting on the primary key writes the key too, even a generated one; conflicting on a
/// unique index leaves a generated key to the database.
pub fn upsert(d: &dyn Dialect, schema: &ModelSchema, values: Vec<Value>, conflict: &[usize]) -> Statement {
    upsert_guarded(d, schema, values, conflict, None, None).expect("an unguarded upsert always renders")
}

/// [`upsert`] of a versioned row: a new row is inserted as `values` holds it (the next
/// version); an existing one is updated only while its version field (position, value) holds
/// `expected` — otherwise the statement returns no row and writes nothing.
pub fn upsert_versioned(
    d: &dyn Dialect,
    schema: &ModelSchema,
    values: Vec<Value>,
    conflict: &[usize],
    expected: Option<(usize, Value)>,
) -> Statement {
    upsert_guarded(d, schema, values, conflict, None, expected).expect("an unguarded upsert always renders")
}

/// [`upsert`] of a row whose generated key the caller chose (`key`), written only if the key
/// generator already handed that key out (see [`Dialect::key_generated_condition`]): such a
/// key can never be drawn again, so the write needs neither the sequence lock nor advancing
/// the sequence, and takes one round trip. It returns no row when the key is beyond the
/// generator (then nothing was written). `None` when the dialect has no such condition.
pub fn upsert_with_generated_key(
    d: &dyn Dialect,
    schema: &ModelSchema,
    values: Vec<Value>,
    key: i64,
) -> Option<Statement> {
    upsert_guarded(d, schema, values, schema.primary_key, Some(key), None)
}

fn upsert_guarded(
    d: &dyn Dialect,
    schema: &ModelSchema,
    mut values: Vec<Value>,
    conflict: &[usize],
    guard: Option<i64>,
    expected: Option<(usize, Value)>,
) -> Option<Statement> {
    let on_key = conflict == schema.primary_key;
    let mut w = SqlWriter::new(d);
    let written: Vec<usize> = schema
        .fields
        .iter()
        .enumerate()
        .filter(|(i, f)| !f.generated || (on_key && schema.is_key(*i)))
        .map(|(i, _)| i)
        .collect();
    w.push("INSERT INTO ").table(schema.table).push(" (");
    w.list(&written, |w, &i| {
        w.ident(schema.fields[i].column);
    });
    w.push(if guard.is_some() { ") SELECT " } else { ") VALUES (" });
    w.list(&written, |w, &i| {
        let v = std::mem::replace(&mut values[i], Value::Null);
        w.param(v, schema.fields[i].ty);
    });
    if let Some(key) = guard {
        let column = schema.fields.iter().find(|f| f.generated)?.column;
        w.push(" WHERE ");
        if !d.key_generated_condition(&mut w, schema.table, column, key) {
            return None;
        }
    } else {
        w.push(")");
    }
    w.push(" ON CONFLICT (");
    w.list(conflict, |w, &i| {
        w.ident(schema.fields[i].column);
    });
    w.push(")");
    // A soft-delete model's unique indexes are partial (live rows only): the conflict target
    // repeats their condition so the store infers them.
    if let (false, Some(i)) = (on_key, schema.soft_delete) {
        w.push(" WHERE ").ident(schema.fields[i].column).push(" IS NULL");
    }
    w.push(" DO UPDATE SET ");
    let updated: Vec<usize> = written
        .iter()
        .copied()
        .filter(|i| !conflict.contains(i) && schema.fields[*i].auto != AutoTimestamp::CreatedAt)
        .collect();
    // With nothing else to update, touch the conflict column so RETURNING still yields the row.
    let set = if updated.is_empty() { &conflict[..1] } else { &updated[..] };
    w.list(set, |w, &i| {
        let c = schema.fields[i].column;
        w.ident(c).push(" = EXCLUDED.").ident(c);
    });
    if let Some((i, value)) = expected {
        let f = &schema.fields[i];
        w.push(" WHERE ").table(schema.table).push(".").ident(f.column).push(" = ").param(value, f.ty);
    }
    returning(&mut w, schema);
    Some(w.finish())
}

/// UPDATE every non-key field (but `created_at`) of the row with the given key, RETURNING it.
pub fn update(d: &dyn Dialect, schema: &ModelSchema, values: Vec<Value>) -> Statement {
    update_versioned(d, schema, values, None)
}

/// [`update`] that writes only while the version field (position, value) holds `expected`
/// (optimistic locking; `values` already holds the next version).
pub fn update_versioned(
    d: &dyn Dialect,
    schema: &ModelSchema,
    mut values: Vec<Value>,
    expected: Option<(usize, Value)>,
) -> Statement {
    let mut w = SqlWriter::new(d);
    w.push("UPDATE ").table(schema.table).push(" SET ");
    let set: Vec<usize> = (0..schema.fields.len())
        .filter(|&i| {
            !schema.is_key(i) && schema.fields[i].auto != AutoTimestamp::CreatedAt && schema.soft_delete != Some(i)
        })
        .collect();
    if set.is_empty() {
        // A model made only of key columns: a no-op assignment keeps the statement valid.
        let c = schema.key_fields().next().map(|f| f.column).unwrap_or_default();
        w.ident(c).push(" = ").ident(c);
    }
    w.list(&set, |w, &i| {
        let v = std::mem::replace(&mut values[i], Value::Null);
        w.ident(schema.fields[i].column).push(" = ").param(v, schema.fields[i].ty);
    });
    let key: Vec<Value> = schema.primary_key.iter().map(|&i| std::mem::replace(&mut values[i], Value::Null)).collect();
    key_condition(&mut w, schema, key);
    live_condition(&mut w, schema);
    version_condition(&mut w, schema, expected);
    returning(&mut w, schema);
    w.finish()
}

/// DELETE the row with the given key.
pub fn delete_by_key(d: &dyn Dialect, schema: &ModelSchema, key: Vec<Value>) -> Statement {
    delete_versioned(d, schema, key, None)
}

/// [`delete_by_key`] that deletes only while the version field (position, value) holds
/// `expected` (optimistic locking).
pub fn delete_versioned(
    d: &dyn Dialect,
    schema: &ModelSchema,
    key: Vec<Value>,
    expected: Option<(usize, Value)>,
) -> Statement {
    let mut w = SqlWriter::new(d);
    w.push("DELETE FROM ").table(schema.table);
    key_condition(&mut w, schema, key);
    version_condition(&mut w, schema, expected);
    w.finish()
}

/// The automatic `updated_at` values of a write happening `now`, as (field, value) pairs.
pub fn update_stamps(schema: &ModelSchema, now: chrono::DateTime<chrono::Utc>) -> Vec<(usize, Value)> {
    schema
        .fields
        .iter()
        .enumerate()
        .filter(|(_, f)| f.auto == AutoTimestamp::UpdatedAt)
        .map(|(i, f)| {
            let v = match f.ty.scalar {
                Scalar::Timestamp => Value::Timestamp(now.naive_utc()),
                _ => Value::TimestampTz(now),
            };
            (i, v)
        })
        .collect()
}

/// UPDATE only the `sets` columns (plus automatic `updated_at` columns not among them) of the
/// row with the given key, RETURNING it: what a partial update (a patch DTO) runs. With
/// nothing to set it degrades to a lookup by key.
pub fn update_columns(
    d: &dyn Dialect,
    schema: &ModelSchema,
    sets: Vec<(usize, Value)>,
    key: Vec<Value>,
    now: chrono::DateTime<chrono::Utc>,
) -> Statement {
    update_columns_versioned(d, schema, sets, key, now, None)
}

/// [`update_columns`] that writes only while the version field (position, value) holds
/// `expected` (optimistic locking; `sets` already holds the next version).
pub fn update_columns_versioned(
    d: &dyn Dialect,
    schema: &ModelSchema,
    mut sets: Vec<(usize, Value)>,
    key: Vec<Value>,
    now: chrono::DateTime<chrono::Utc>,
    expected: Option<(usize, Value)>,
) -> Statement {
    // The soft-delete stamp is polystore's to write (`delete`, `restore`), never a patch's.
    sets.retain(|(i, _)| schema.soft_delete != Some(*i));
    if sets.is_empty() {
        return find_by_key(d, schema, key);
    }
    for (i, v) in update_stamps(schema, now) {
        if !sets.iter().any(|(s, _)| *s == i) {
            sets.push((i, v));
        }
    }
    let mut w = SqlWriter::new(d);
    w.push("UPDATE ").table(schema.table).push(" SET ");
    w.list(sets, |w, (i, v)| {
        let f = &schema.fields[i];
        w.ident(f.column).push(" = ").param(v, f.ty);
    });
    key_condition(&mut w, schema, key);
    live_condition(&mut w, schema);
    version_condition(&mut w, schema, expected);
    returning(&mut w, schema);
    w.finish()
}
