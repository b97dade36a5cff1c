//! The cached-value format: a 4-byte header — `p`, `s`, the format version, a kind byte —
//! followed by compact JSON.
//!
//! | kind | payload |
//! |---|---|
//! | `R` a row | the fields' values in schema order, a JSON array (no field names) |
//! | `N` absent | nothing: the database had no such row (negative caching) |
//! | `L` a lookup | the primary-key values of the row a unique value belongs to |
//! | `M` an index memo | the set-indexed fields' values last recorded for a row |
//! | `P` a lease | a reader's token: it is loading the key from the database (see `read.rs`) |
//!
//! Values are written with [`Value::into_json`] and read back with the field's stored type,
//! exactly as SQLite's JSON columns are. Anything else under a polystore key — another version,
//! a truncated or foreign value — decodes to [`Decoded::Corrupt`], which the cache treats as
//! a miss (and deletes); it never panics.

use crate::error::{Error, Result, ValueError};
use crate::model::{Model, RowReader, decode_error};
use crate::schema::{ColumnType, ModelSchema, Scalar};
use crate::value::{FieldType, Value, json_to_value};

use super::keys::FORMAT_VERSION;

const ROW: u8 = b'R';
const ABSENT: u8 = b'N';
const LOOKUP: u8 = b'L';
const MEMO: u8 = b'M';
const LEASE: u8 = b'P';

/// What a cached value turned out to be.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    /// A row's field values, in schema order.
    Row(Vec<Value>),
    /// The row does not exist (a cached miss).
    Absent,
    /// The primary-key values a unique lookup points at.
    Lookup(Vec<Value>),
    /// Set-indexed values of a row.
    Memo(Vec<Value>),
    /// A reader's lease: the key is being loaded; not a value.
    Lease,
    /// Not a value polystore can read: treat as a miss.
    Corrupt(String),
}

fn header(kind: u8, capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(capacity + 4);
    out.extend_from_slice(&[b'p', b's', FORMAT_VERSION, kind]);
    out
}

/// A nullable JSON field wraps a present value in a one-element array, so that JSON `null`
/// and SQL NULL stay distinct.
fn wraps(ty: ColumnType) -> bool {
    ty.nullable && !ty.array && ty.scalar == Scalar::Json
}

/// Encodes a row's values (schema order). Fails when a value has no faithful JSON form
/// (a NaN or infinite float): such rows are simply not cached.
pub fn encode_row(schema: &ModelSchema, values: Vec<Value>) -> Result<Vec<u8>, String> {
    let mut items = Vec::with_capacity(values.len());
    for (f, v) in schema.fields.iter().zip(values) {
        if !finite(&v) {
            return Err(format!("{}.{} holds a non-finite float", schema.name, f.name));
        }
        let present = v != Value::Null;
        let j = v.into_json();
        items.push(if wraps(f.ty) && present { serde_json::Value::Array(vec![j]) } else { j });
    }
    let mut out = header(ROW, 16 * items.len());
    serde_json::to_writer(&mut out, &items).map_err(|e| e.to_string())?;
    Ok(out)
}

fn finite(v: &Value) -> bool {
    match v {
        Value::F32(x) => x.is_finite(),
        Value::F64(x) => x.is_finite(),
        Value::Array(items) => items.iter().all(finite),
        _ => true,
    }
}

/// The "no such row" marker.
pub fn encode_absent() -> Vec<u8> {
    header(ABSENT, 0)
}

/// A unique lookup pointing at the row with primary-key values `key`.
pub fn encode_lookup(key: &[Value]) -> Vec<u8> {
    let mut out = header(LOOKUP, 16);
    out.extend_from_slice(member(key).as_bytes());
    out
}

/// An index memo holding `values`.
pub fn encode_memo(values: &[Value]) -> Vec<u8> {
    let mut out = header(MEMO, 16);
    out.extend_from_slice(member(values).as_bytes());
    out
}

/// A lease marker holding `token` (unique per read).
pub fn encode_lease(token: u128) -> Vec<u8> {
    let mut out = header(LEASE, 32);
    out.extend_from_slice(format!("{token:032x}").as_bytes());
    out
}

/// Whether `bytes` is a lease marker (of any reader).
pub fn is_lease(bytes: &[u8]) -> bool {
    bytes.len() > 4 && bytes[..4] == [b'p', b's', FORMAT_VERSION, LEASE]
}

/// A set or sorted-set member naming a row: its primary-key values as a JSON array.
pub fn member(values: &[Value]) -> String {
    serde_json::Value::Array(values.iter().cloned().map(Value::into_json).collect()).to_string()
}

/// Reads a member back as values of the given types.
pub fn parse_member(text: &str, types: impl ExactSizeIterator<Item = ColumnType>) -> Option<Vec<Value>> {
    let serde_json::Value::Array(items) = serde_json::from_str(text).ok()? else { return None };
    if items.len() != types.len() {
        return None;
    }
    items.into_iter().zip(types).map(|(j, ty)| json_to_value(j, ty).ok()).collect()
}

/// Decodes a cached value of `schema`'s model.
pub fn decode(schema: &ModelSchema, bytes: &[u8]) -> Decoded {
    let Some((head, body)) = bytes.split_at_checked(4) else {
        return Decoded::Corrupt(format!("{} bytes, shorter than the header", bytes.len()));
    };
    if head[..2] != *b"ps" || head[2] != FORMAT_VERSION {
        return Decoded::Corrupt("not a polystore cache value of this version".into());
    }
    let text = match std::str::from_utf8(body) {
        Ok(t) => t,
        Err(e) => return Decoded::Corrupt(format!("payload is not UTF-8: {e}")),
    };
    match head[3] {
        ROW => decode_row(schema, text).unwrap_or_else(Decoded::Corrupt),
        ABSENT if body.is_empty() => Decoded::Absent,
        LEASE if !body.is_empty() => Decoded::Lease,
        LOOKUP => parse_member(text, schema.key_fields().map(|f| f.ty))
            .map(Decoded::Lookup)
            .unwrap_or_else(|| Decoded::Corrupt("bad lookup payload".into())),
        MEMO => {
            let types: Vec<ColumnType> =
                schema.fields.iter().filter(|f| f.redis == crate::schema::RedisIndex::Set).map(|f| f.ty).collect();
            parse_member(text, types.into_iter())
                .map(Decoded::Memo)
                .unwrap_or_else(|| Decoded::Corrupt("bad memo payload".into()))
        }
        other => Decoded::Corrupt(format!("unknown kind byte {other:#04x}")),
    }
}

fn decode_row(schema: &ModelSchema, text: &str) -> Result<Decoded, String> {
    let items: Vec<serde_json::Value> = serde_json::from_str(text).map_err(|e| format!("bad JSON: {e}"))?;
    if items.len() != schema.fields.len() {
        return Err(format!("{} values for {} fields", items.len(), schema.fields.len()));
    }
    let mut values = Vec::with_capacity(items.len());
    for (f, j) in schema.fields.iter().zip(items) {
        let value = match j {
            // A present value of a nullable JSON field: any JSON, `null` included.
            serde_json::Value::Array(mut inner) if wraps(f.ty) && inner.len() == 1 => Value::Json(inner.remove(0)),
            serde_json::Value::Null if wraps(f.ty) => Value::Null,
            other if wraps(f.ty) => return Err(format!("{}: unwrapped nullable JSON {other}", f.name)),
            other => json_to_value(other, f.ty).map_err(|e| format!("{}: {e}", f.name))?,
        };
        values.push(value);
    }
    Ok(Decoded::Row(values))
}

/// Builds a model from its values in schema order.
pub fn model_from_values<M: Model>(values: Vec<Value>) -> Result<M> {
    let mut reader = ValuesReader { values: values.into_iter().map(Some).collect(), schema: M::SCHEMA };
    M::from_reader(&mut reader)
}

/// A [`RowReader`] over values already in memory (a decoded cache entry).
pub struct ValuesReader {
    values: Vec<Option<Value>>,
    schema: &'static ModelSchema,
}

impl RowReader for ValuesReader {
    fn read<T: FieldType>(&mut self, field: usize) -> Result<T> {
        let value = self.values.get_mut(field).and_then(Option::take).ok_or_else(|| {
            decode_error(self.schema, field, ValueError::Driver("value missing or read twice".into()))
        })?;
        T::from_value(value).map_err(|e| decode_error(self.schema, field, e))
    }
}

/// Decodes a cached row into `M`, or says why it cannot be used.
pub fn decode_model<M: Model>(bytes: &[u8]) -> Result<Option<M>, String> {
    match decode(M::SCHEMA, bytes) {
        Decoded::Row(values) => model_from_values(values).map(Some).map_err(|e: Error| e.to_string()),
        Decoded::Absent => Ok(None),
        Decoded::Corrupt(why) => Err(why),
        other => Err(format!("expected a row, found {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use rust_decimal::Decimal;

    use super::*;

    #[derive(crate::Model, Debug, Clone, PartialEq)]
    #[model(crate = "crate")]
    struct Sample {
        #[model(primary_key)]
        id: uuid::Uuid,
        name: String,
        at: DateTime<Utc>,
        price: Decimal,
        tags: Vec<String>,
        doc: Option<serde_json::Value>,
        score: Option<f64>,
    }

    fn sample(doc: Option<serde_json::Value>) -> Sample {
        Sample {
            id: uuid::Uuid::from_u128(7),
            name: "a:{b}".into(),
            at: DateTime::from_timestamp(1_700_000_000, 123_456_000).unwrap(),
            price: "12.50".parse().unwrap(),
            tags: vec!["x".into(), String::new()],
            doc,
            score: Some(0.5),
        }
    }

    #[test]
    fn rows_round_trip_including_json_null_versus_sql_null() {
        for doc in [None, Some(serde_json::Value::Null), Some(serde_json::json!({"k": [1, null]}))] {
            let row = sample(doc);
            let bytes = encode_row(Sample::SCHEMA, row.to_values().unwrap()).unwrap();
            assert_eq!(decode_model::<Sample>(&bytes).unwrap(), Some(row));
        }
    }

    #[test]
    fn foreign_or_damaged_values_are_corrupt_not_panics() {
        let good = encode_row(Sample::SCHEMA, sample(None).to_values().unwrap()).unwrap();
        for bad in
            [&b""[..], b"ps", b"ps\x01", b"xx\x01R[]", b"ps\x02R[]", b"ps\x01Z", b"ps\x01R[1]", &good[..good.len() - 3]]
        {
            assert!(matches!(decode(Sample::SCHEMA, bad), Decoded::Corrupt(_)), "{bad:?}");
        }
        assert_eq!(decode(Sample::SCHEMA, &encode_absent()), Decoded::Absent);
    }

    #[test]
    fn non_finite_floats_are_not_cached() {
        let mut row = sample(None);
        row.score = Some(f64::NAN);
        assert!(encode_row(Sample::SCHEMA, row.to_values().unwrap()).is_err());
    }

    #[test]
    fn lookups_and_members_round_trip() {
        let key = vec![Value::Uuid(uuid::Uuid::from_u128(9))];
        assert_eq!(decode(Sample::SCHEMA, &encode_lookup(&key)), Decoded::Lookup(key.clone()));
        let types = Sample::SCHEMA.key_fields().map(|f| f.ty);
        assert_eq!(parse_member(&member(&key), types), Some(key));
    }
}
