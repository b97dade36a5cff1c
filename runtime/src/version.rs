//! Optimistic locking (`#[model(version)]`): the small, store-neutral part every driver's
//! write path shares. A versioned write carries the version the row held when it was read
//! (the *expected* version); the store writes only where the stored version still equals it,
//! and stores the next one. When nothing matched, [`lost`] tells a missing row
//! ([`Error::NotFound`]) from a lost race ([`Error::StaleVersion`]).
//!
//! Models without a version field never reach these functions past a check of the constant
//! [`Model::VERSION_FIELD`].

use std::future::Future;

use crate::db::Executor;
use crate::error::{Error, Result};
use crate::model::Model;
use crate::query::Assign;
use crate::schema::ModelSchema;
use crate::value::Value;

/// A versioned write's condition: the version field's position and the value it must hold.
pub(crate) type Expected = (usize, Value);

/// `value + 1` in the same integer type; an error at the type's maximum.
fn next(schema: &ModelSchema, field: usize, value: &Value) -> Result<Value> {
    let overflow = || Error::Encode {
        model: schema.name,
        field: schema.fields[field].name,
        source: crate::error::ValueError::OutOfRange { value: format!("{value:?} + 1"), target: "version" },
    };
    Ok(match value {
        Value::I16(n) => Value::I16(n.checked_add(1).ok_or_else(overflow)?),
        Value::I32(n) => Value::I32(n.checked_add(1).ok_or_else(overflow)?),
        Value::I64(n) => Value::I64(n.checked_add(1).ok_or_else(overflow)?),
        _ => return Err(overflow()),
    })
}

/// The expected version as an `i64` (for [`Error::StaleVersion`]).
pub(crate) fn as_i64(value: &Value) -> i64 {
    match value {
        Value::I16(n) => i64::from(*n),
        Value::I32(n) => i64::from(*n),
        Value::I64(n) => *n,
        _ => 0,
    }
}

/// Before an insert: `version`, the row's value of the version field
/// ([`Model::VERSION_FIELD`]), is stored as 1 where it holds 0 (any other version is stored as
/// given).
#[inline]
pub(crate) fn initial_value(version: &mut Value) {
    match version {
        Value::I16(v @ 0) => *v = 1,
        Value::I32(v @ 0) => *v = 1,
        Value::I64(v @ 0) => *v = 1,
        _ => {}
    }
}

/// Before an update, upsert or delete of a whole row (`values` in schema order): the version
/// the row holds becomes the expected one, and `values` gets the next version in its place.
#[inline]
pub(crate) fn bump<M: Model>(values: &mut [Value]) -> Result<Option<Expected>> {
    let Some(i) = M::VERSION_FIELD else { return Ok(None) };
    let expected = values[i].clone();
    values[i] = next(M::SCHEMA, i, &expected)?;
    Ok(Some((i, expected)))
}

/// Before a partial update: the version among `sets` (an update DTO always carries it) becomes
/// the expected one and is replaced by the next. A partial update of a versioned model without
/// its version is refused: it could not be checked.
#[inline]
pub(crate) fn bump_sets<M: Model>(sets: &mut [(usize, Value)]) -> Result<Option<Expected>> {
    let Some(i) = M::VERSION_FIELD else { return Ok(None) };
    let Some((_, value)) = sets.iter_mut().find(|(f, _)| *f == i) else {
        return Err(Error::Config(format!(
            "{}: a partial update of a versioned model must carry the version it expects (field `{}`)",
            M::SCHEMA.name,
            M::SCHEMA.fields[i].name
        )));
    };
    let expected = std::mem::replace(value, Value::Null);
    *value = next(M::SCHEMA, i, &expected)?;
    Ok(Some((i, expected)))
}

/// For bulk updates (`update_many`), which carry no expected version: every changed row's
/// version goes up by one, so that copies read before the bulk write become stale. A list
/// that assigns the version itself is left as it is.
#[inline]
pub(crate) fn bulk_bump<M: Model>(list: &mut Vec<Assign>) {
    let Some(i) = M::VERSION_FIELD else { return };
    if list.iter().any(|a| a.field() == i) {
        return;
    }
    let one = match M::SCHEMA.fields[i].ty.scalar {
        crate::schema::Scalar::I16 => Value::I16(1),
        crate::schema::Scalar::I32 => Value::I32(1),
        _ => Value::I64(1),
    };
    list.push(Assign::Add { field: i, value: one });
}

/// The error for a versioned write that matched no row: [`Error::StaleVersion`] when a row
/// with the key is there (its version moved on; its cache entry is dropped, so the next cached
/// read sees the winner's row), [`Error::NotFound`] otherwise. `exists` is the store's lookup.
/// Not generic: the model only names its schema.
pub(crate) fn lost(
    db: &dyn Executor,
    schema: &'static ModelSchema,
    key: Vec<Value>,
    expected: &Value,
    exists: bool,
) -> impl Future<Output = Error> + Send + use<> {
    let (error, upkeep) = if exists {
        let shown = if key.len() == 1 { key[0].clone() } else { Value::Array(key.clone()) };
        let error = Error::StaleVersion { model: schema.name, key: shown, expected: as_i64(expected) };
        (error, Some(crate::cache::rows_changed(db, schema, Vec::new(), vec![(key, Vec::new())])))
    } else {
        (Error::NotFound { model: schema.name }, None)
    };
    async move {
        if let Some(upkeep) = upkeep {
            upkeep.await;
        }
        error
    }
}
