//! The BSON mapping: store-neutral [`Value`]s to BSON and back, model rows to documents, and
//! [`DocReader`], the [`RowReader`] that decodes a raw document into a model.
//!
//! | column type | BSON | notes |
//! |---|---|---|
//! | `bool` | boolean | |
//! | `i16`, `i32` | int32 | read back from int32, int64 or an integral double, range-checked |
//! | `i64` | int64 | |
//! | `f32`, `f64` | double | |
//! | `String`, enums | string | |
//! | `DateTime<Utc>` | datetime | **millisecond precision**: sub-millisecond digits are dropped |
//! | `NaiveDateTime` | datetime | the wall-clock time read as UTC; milliseconds |
//! | `NaiveDate` | datetime | midnight UTC of the date, so dates sort and compare as dates |
//! | `Uuid` | binary, subtype 4 | |
//! | `Decimal` | decimal128 | exact; compares numerically on the server |
//! | JSON, embedded structs | embedded document / array | real documents, queryable by path |
//! | `Vec<T>` | array | |
//! | `Option<T>` | the value, or `null` | a missing key reads as `None` too |
//!
//! The primary key is `_id`: a single key field is stored *only* as `_id` (not under its own
//! name); a composite key is an embedded document `_id: { <key columns> }`.

use std::borrow::Cow;

use chrono::{DateTime, NaiveTime, Utc};
use mongodb::bson::raw::{RawBinaryRef, RawBson, RawBsonRef, RawDocument};
use mongodb::bson::spec::BinarySubtype;
use mongodb::bson::{Binary, Bson, Decimal128, Document, RawDocumentBuf};
use rust_decimal::Decimal;

use crate::error::{Error, Result, ValueError};
use crate::model::{RowReader, decode_error};
use crate::schema::{ColumnType, ModelSchema, Scalar};
use crate::value::{FieldType, Value, narrow};

/// The document key a field is stored under: `_id` for a single primary key, `_id.<column>`
/// for a part of a composite one, the column otherwise.
pub(crate) fn field_path(schema: &ModelSchema, field: usize) -> Cow<'static, str> {
    let f = &schema.fields[field];
    if schema.is_key(field) {
        if schema.primary_key.len() == 1 {
            return Cow::Borrowed("_id");
        }
        return Cow::Owned(format!("_id.{}", f.column));
    }
    Cow::Borrowed(f.column)
}

/// An instant as a BSON datetime: milliseconds since the epoch (finer digits are dropped,
/// rounding towards the past).
fn bson_datetime(t: DateTime<Utc>) -> mongodb::bson::DateTime {
    mongodb::bson::DateTime::from_millis(t.timestamp_millis())
}

/// Converts a value to BSON (see the module's table).
pub(crate) fn to_bson(value: Value) -> Result<Bson, ValueError> {
    Ok(match value {
        Value::Null => Bson::Null,
        Value::Bool(b) => Bson::Boolean(b),
        Value::I16(n) => Bson::Int32(i32::from(n)),
        Value::I32(n) => Bson::Int32(n),
        Value::I64(n) => Bson::Int64(n),
        Value::F32(n) => Bson::Double(f64::from(n)),
        Value::F64(n) => Bson::Double(n),
        Value::Text(s) => Bson::String(s),
        Value::TimestampTz(t) => Bson::DateTime(bson_datetime(t)),
        Value::Timestamp(t) => Bson::DateTime(bson_datetime(t.and_utc())),
        Value::Date(d) => Bson::DateTime(bson_datetime(d.and_time(NaiveTime::MIN).and_utc())),
        Value::Uuid(u) => Bson::Binary(Binary { subtype: BinarySubtype::Uuid, bytes: u.as_bytes().to_vec() }),
        Value::ObjectId(b) => Bson::ObjectId(mongodb::bson::oid::ObjectId::from_bytes(b)),
        Value::Decimal(d) => {
            let text = d.to_string();
            Bson::Decimal128(text.parse::<Decimal128>().map_err(|e| ValueError::parse(&text, "decimal128", e))?)
        }
        Value::Json(j) => json_to_bson(j),
        Value::Array(items) => Bson::Array(items.into_iter().map(to_bson).collect::<Result<_, _>>()?),
    })
}

/// A JSON value as BSON: objects become embedded documents, arrays arrays, integers int32
/// when they fit (int64 otherwise), other numbers doubles.
pub(crate) fn json_to_bson(j: serde_json::Value) -> Bson {
    use serde_json::Value as J;
    match j {
        J::Null => Bson::Null,
        J::Bool(b) => Bson::Boolean(b),
        J::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i32::try_from(i).map(Bson::Int32).unwrap_or(Bson::Int64(i)),
            (None, Some(f)) => Bson::Double(f),
            (None, None) => Bson::String(n.to_string()),
        },
        J::String(s) => Bson::String(s),
        J::Array(items) => Bson::Array(items.into_iter().map(json_to_bson).collect()),
        J::Object(map) => Bson::Document(map.into_iter().map(|(k, v)| (k, json_to_bson(v))).collect()),
    }
}

/// A BSON value as JSON (for JSON and embedded fields): the inverse of [`json_to_bson`];
/// other BSON types become their relaxed extended-JSON form.
pub(crate) fn raw_to_json(b: RawBsonRef<'_>) -> Result<serde_json::Value, ValueError> {
    use serde_json::Value as J;
    Ok(match b {
        RawBsonRef::Null | RawBsonRef::Undefined => J::Null,
        RawBsonRef::Boolean(v) => J::Bool(v),
        RawBsonRef::Int32(n) => J::from(n),
        RawBsonRef::Int64(n) => J::from(n),
        RawBsonRef::Double(f) => serde_json::Number::from_f64(f).map_or(J::Null, J::Number),
        RawBsonRef::String(s) => J::String(s.to_owned()),
        RawBsonRef::Array(a) => {
            let mut out = Vec::new();
            for item in a {
                out.push(raw_to_json(item.map_err(driver)?)?);
            }
            J::Array(out)
        }
        RawBsonRef::Document(d) => {
            let mut out = serde_json::Map::new();
            for item in d {
                let (k, v) = item.map_err(driver)?;
                out.insert(k.to_owned(), raw_to_json(v)?);
            }
            J::Object(out)
        }
        other => Bson::try_from(other).map_err(driver)?.into_relaxed_extjson(),
    })
}

fn driver(e: impl std::fmt::Display) -> ValueError {
    ValueError::Driver(e.to_string())
}

/// The BSON type's name, for messages.
fn kind(b: &RawBsonRef<'_>) -> &'static str {
    match b {
        RawBsonRef::Double(_) => "double",
        RawBsonRef::String(_) => "string",
        RawBsonRef::Array(_) => "array",
        RawBsonRef::Document(_) => "document",
        RawBsonRef::Boolean(_) => "bool",
        RawBsonRef::Null => "null",
        RawBsonRef::Int32(_) => "int32",
        RawBsonRef::Int64(_) => "int64",
        RawBsonRef::Binary(_) => "binary",
        RawBsonRef::ObjectId(_) => "objectId",
        RawBsonRef::DateTime(_) => "date",
        RawBsonRef::Decimal128(_) => "decimal128",
        _ => "other BSON type",
    }
}

fn mismatch(expected: &'static str, b: &RawBsonRef<'_>) -> ValueError {
    ValueError::TypeMismatch { expected, found: kind(b) }
}

fn int(b: RawBsonRef<'_>, target: &'static str) -> Result<i64, ValueError> {
    match b {
        RawBsonRef::Int32(n) => Ok(i64::from(n)),
        RawBsonRef::Int64(n) => Ok(n),
        RawBsonRef::Double(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(f as i64),
        other => Err(mismatch(target, &other)),
    }
}

fn float(b: RawBsonRef<'_>, target: &'static str) -> Result<f64, ValueError> {
    match b {
        RawBsonRef::Double(f) => Ok(f),
        RawBsonRef::Int32(n) => Ok(f64::from(n)),
        RawBsonRef::Int64(n) => Ok(n as f64),
        RawBsonRef::Decimal128(d) => d.to_string().parse().map_err(|e| ValueError::parse(&d.to_string(), target, e)),
        other => Err(mismatch(target, &other)),
    }
}

fn datetime(b: RawBsonRef<'_>, target: &'static str) -> Result<DateTime<Utc>, ValueError> {
    match b {
        RawBsonRef::DateTime(t) => DateTime::from_timestamp_millis(t.timestamp_millis())
            .ok_or_else(|| ValueError::OutOfRange { value: t.timestamp_millis().to_string(), target: "chrono date" }),
        other => Err(mismatch(target, &other)),
    }
}

/// Parses decimal128 text (`1.50`, `1.05E+3`) exactly.
fn decimal(text: &str) -> Result<Decimal, ValueError> {
    text.parse::<Decimal>()
        .or_else(|_| Decimal::from_scientific(text))
        .map_err(|e| ValueError::parse(text, "decimal", e))
}

/// Reads a BSON value as a value of column type `ty`. `null` (and a missing key, which the
/// reader passes as `None`) is [`Value::Null`].
pub(crate) fn from_bson(b: Option<RawBsonRef<'_>>, ty: ColumnType) -> Result<Value, ValueError> {
    let b = match b {
        None | Some(RawBsonRef::Null | RawBsonRef::Undefined) => {
            if ty.scalar == Scalar::Json && !ty.nullable && !ty.array {
                return Ok(Value::Json(serde_json::Value::Null));
            }
            return Ok(Value::Null);
        }
        Some(b) => b,
    };
    if ty.array {
        let RawBsonRef::Array(items) = b else { return Err(mismatch("array", &b)) };
        let element = ColumnType { array: false, nullable: false, ..ty };
        let mut out = Vec::new();
        for item in items {
            out.push(from_bson(Some(item.map_err(driver)?), element)?);
        }
        return Ok(Value::Array(out));
    }
    Ok(match ty.scalar {
        Scalar::Bool => match b {
            RawBsonRef::Boolean(v) => Value::Bool(v),
            other => return Err(mismatch("bool", &other)),
        },
        Scalar::I16 => Value::I16(narrow(int(b, "i16")?, "i16")?),
        Scalar::I32 => Value::I32(narrow(int(b, "i32")?, "i32")?),
        Scalar::I64 => Value::I64(int(b, "i64")?),
        Scalar::F32 => Value::F32(float(b, "f32")? as f32),
        Scalar::F64 => Value::F64(float(b, "f64")?),
        Scalar::Text | Scalar::Enum(_) => match b {
            RawBsonRef::String(s) => Value::Text(s.to_owned()),
            other => return Err(mismatch("string", &other)),
        },
        Scalar::TimestampTz => Value::TimestampTz(datetime(b, "date")?),
        Scalar::Timestamp => Value::Timestamp(datetime(b, "date")?.naive_utc()),
        Scalar::Date => Value::Date(datetime(b, "date")?.date_naive()),
        Scalar::Uuid => match b {
            RawBsonRef::Binary(bin) if matches!(bin.subtype, BinarySubtype::Uuid | BinarySubtype::UuidOld) => {
                Value::Uuid(uuid::Uuid::from_slice(bin.bytes).map_err(|e| ValueError::parse("<binary>", "uuid", e))?)
            }
            other => return Err(mismatch("binary (UUID)", &other)),
        },
        Scalar::Decimal => match b {
            RawBsonRef::Decimal128(d) => Value::Decimal(decimal(&d.to_string())?),
            RawBsonRef::Int32(n) => Value::Decimal(Decimal::from(n)),
            RawBsonRef::Int64(n) => Value::Decimal(Decimal::from(n)),
            RawBsonRef::Double(f) => Value::Decimal(decimal(&f.to_string())?),
            other => return Err(mismatch("decimal128", &other)),
        },
        Scalar::ObjectId => match b {
            RawBsonRef::ObjectId(id) => Value::ObjectId(id.bytes()),
            RawBsonRef::String(s) => crate::object_id::from_hex(Value::Text(s.to_owned())),
            other => return Err(mismatch("objectId", &other)),
        },
        Scalar::Json => Value::Json(raw_to_json(b)?),
    })
}

/// The document holding a row's `values` (in schema order): the key as `_id`, then every other
/// field under its column.
pub(crate) fn to_document(schema: &'static ModelSchema, values: Vec<Value>) -> Result<Document> {
    let mut doc = Document::new();
    let mut key = Document::new();
    let mut rest = Vec::with_capacity(values.len());
    for (i, value) in values.into_iter().enumerate() {
        let f = &schema.fields[i];
        let b = to_bson(value).map_err(|source| Error::Encode { model: schema.name, field: f.name, source })?;
        if schema.is_key(i) {
            key.insert(f.column, b);
        } else {
            rest.push((f.column, b));
        }
    }
    match schema.primary_key.len() {
        0 => {}
        1 => {
            doc.insert("_id", key.into_iter().next().map(|(_, v)| v).unwrap_or(Bson::Null));
        }
        _ => {
            doc.insert("_id", key);
        }
    }
    for (k, v) in rest {
        doc.insert(k, v);
    }
    Ok(doc)
}

/// Appends `value` under `key`, straight into BSON bytes (scalars without an intermediate
/// [`Bson`]).
fn append(doc: &mut RawDocumentBuf, key: &str, value: &Value) -> Result<(), ValueError> {
    match value {
        Value::Null => doc.append_ref(key, RawBsonRef::Null),
        Value::Bool(b) => doc.append_ref(key, RawBsonRef::Boolean(*b)),
        Value::I16(n) => doc.append_ref(key, RawBsonRef::Int32(i32::from(*n))),
        Value::I32(n) => doc.append_ref(key, RawBsonRef::Int32(*n)),
        Value::I64(n) => doc.append_ref(key, RawBsonRef::Int64(*n)),
        Value::F32(n) => doc.append_ref(key, RawBsonRef::Double(f64::from(*n))),
        Value::F64(n) => doc.append_ref(key, RawBsonRef::Double(*n)),
        Value::Text(s) => doc.append_ref(key, RawBsonRef::String(s)),
        Value::TimestampTz(t) => doc.append_ref(key, RawBsonRef::DateTime(bson_datetime(*t))),
        Value::Timestamp(t) => doc.append_ref(key, RawBsonRef::DateTime(bson_datetime(t.and_utc()))),
        Value::Uuid(u) => doc.append_ref(key, RawBinaryRef { subtype: BinarySubtype::Uuid, bytes: u.as_bytes() }),
        other => {
            let b = to_bson(other.clone())?;
            doc.append(key, RawBson::try_from(b).map_err(driver)?);
        }
    }
    Ok(())
}

/// [`to_document`], serialized: the row's document as BSON bytes.
pub(crate) fn to_raw_document(schema: &'static ModelSchema, values: &[Value]) -> Result<RawDocumentBuf> {
    let encode =
        |i: usize, e: ValueError| Error::Encode { model: schema.name, field: schema.fields[i].name, source: e };
    let mut doc = RawDocumentBuf::new();
    match schema.primary_key {
        [] => {}
        [single] => append(&mut doc, "_id", &values[*single]).map_err(|e| encode(*single, e))?,
        keys => {
            let mut key = RawDocumentBuf::new();
            for &i in keys {
                append(&mut key, schema.fields[i].column, &values[i]).map_err(|e| encode(i, e))?;
            }
            doc.append("_id", key);
        }
    }
    for (i, value) in values.iter().enumerate() {
        if !schema.is_key(i) {
            append(&mut doc, schema.fields[i].column, value).map_err(|e| encode(i, e))?;
        }
    }
    Ok(doc)
}

/// The filter matching the primary key `key` (values in key order).
pub(crate) fn key_filter(schema: &'static ModelSchema, key: Vec<Value>) -> Result<Document> {
    let mut doc = Document::new();
    for (&i, value) in schema.primary_key.iter().zip(key) {
        let b = to_bson(value).map_err(|source| Error::Encode {
            model: schema.name,
            field: schema.fields[i].name,
            source,
        })?;
        doc.insert(field_path(schema, i), b);
    }
    Ok(doc)
}

/// Reads a raw document into a model: one pass over its elements puts each field's value in
/// its slot, then [`RowReader::read`] converts slot N. Unknown keys are ignored; missing keys
/// read as `null`.
pub(crate) struct DocReader<'a> {
    schema: &'static ModelSchema,
    slots: Vec<Option<RawBsonRef<'a>>>,
}

impl<'a> DocReader<'a> {
    /// Indexes `doc`'s elements by field.
    pub(crate) fn new(schema: &'static ModelSchema, doc: &'a RawDocument) -> Result<Self> {
        let mut slots = vec![None; schema.fields.len()];
        let bad = |e: mongodb::bson::raw::Error| Error::Decode {
            model: schema.name,
            field: "<document>",
            source: ValueError::Driver(e.to_string()),
        };
        for item in doc {
            let (k, v) = item.map_err(bad)?;
            if k == "_id" {
                match (schema.primary_key, v) {
                    ([single], v) => slots[*single] = Some(v),
                    (keys, RawBsonRef::Document(inner)) if !keys.is_empty() => {
                        for part in inner {
                            let (k, v) = part.map_err(bad)?;
                            if let Some(&i) = keys.iter().find(|&&i| schema.fields[i].column == k) {
                                slots[i] = Some(v);
                            }
                        }
                    }
                    _ => {}
                }
                continue;
            }
            if let Some(i) = (0..schema.fields.len()).find(|&i| schema.fields[i].column == k && !schema.is_key(i)) {
                slots[i] = Some(v);
            }
        }
        Ok(DocReader { schema, slots })
    }
}

impl RowReader for DocReader<'_> {
    #[inline]
    fn read<T: FieldType>(&mut self, field: usize) -> Result<T> {
        from_bson(self.slots[field], T::COLUMN).and_then(T::from_value).map_err(|e| decode_error(self.schema, field, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveDate, TimeZone};
    use mongodb::bson::RawDocumentBuf;

    fn round_trip(value: Value, ty: ColumnType) -> Value {
        let doc = mongodb::bson::doc! { "v": to_bson(value).unwrap() };
        let raw = RawDocumentBuf::from_document(&doc).unwrap();
        from_bson(raw.get("v").unwrap(), ty).unwrap()
    }

    #[test]
    fn every_scalar_round_trips() {
        let s = ColumnType::scalar;
        let dec: Decimal = "12.3400".parse().unwrap();
        let id = uuid::Uuid::new_v4();
        let day = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
        let cases = [
            (Value::Bool(true), s(Scalar::Bool)),
            (Value::I16(-3), s(Scalar::I16)),
            (Value::I32(7), s(Scalar::I32)),
            (Value::I64(1 << 40), s(Scalar::I64)),
            (Value::F32(0.1), s(Scalar::F32)),
            (Value::F64(2.5), s(Scalar::F64)),
            (Value::Text("{\"$ne\": null}".into()), s(Scalar::Text)),
            (Value::Decimal(dec), s(Scalar::Decimal)),
            (Value::Uuid(id), s(Scalar::Uuid)),
            (Value::Date(day), s(Scalar::Date)),
            (Value::Json(serde_json::json!({"a": [1, "x", null], "$k": {"b": true}})), s(Scalar::Json)),
            (Value::Array(vec![Value::Text("a".into())]), ColumnType { array: true, ..s(Scalar::Text) }),
            (Value::Null, s(Scalar::I32).nullable()),
        ];
        for (value, ty) in cases {
            assert_eq!(round_trip(value.clone(), ty), value, "{ty:?}");
        }
        assert_eq!(round_trip(Value::Decimal(dec), s(Scalar::Decimal)).into_json(), serde_json::json!("12.3400"));
    }

    #[test]
    fn raw_documents_match_documents() {
        let values = vec![
            Value::Null,
            Value::Text("x".into()),
            Value::Uuid(uuid::Uuid::new_v4()),
            Value::Decimal("1.5".parse().unwrap()),
            Value::Json(serde_json::json!({"a": [1]})),
            Value::Array(vec![Value::I64(1)]),
            Value::TimestampTz(Utc.timestamp_opt(1, 5_000_000).unwrap()),
        ];
        for v in values {
            let mut raw = RawDocumentBuf::new();
            append(&mut raw, "v", &v).unwrap();
            let doc = mongodb::bson::doc! { "v": to_bson(v.clone()).unwrap() };
            assert_eq!(raw.to_document().unwrap(), doc, "{v:?}");
        }
    }

    #[test]
    fn timestamps_keep_milliseconds_only() {
        let t = Utc.timestamp_opt(1_700_000_000, 123_456_789).unwrap();
        let back = round_trip(Value::TimestampTz(t), ColumnType::scalar(Scalar::TimestampTz));
        assert_eq!(back, Value::TimestampTz(Utc.timestamp_opt(1_700_000_000, 123_000_000).unwrap()));
        let naive = t.naive_utc();
        let back = round_trip(Value::Timestamp(naive), ColumnType::scalar(Scalar::Timestamp));
        assert_eq!(back, Value::Timestamp(Utc.timestamp_opt(1_700_000_000, 123_000_000).unwrap().naive_utc()));
    }

    #[test]
    fn integers_are_range_checked_and_types_named() {
        let doc = mongodb::bson::doc! { "big": 1_i64 << 40, "s": "x" };
        let raw = RawDocumentBuf::from_document(&doc).unwrap();
        let e = from_bson(raw.get("big").unwrap(), ColumnType::scalar(Scalar::I32)).unwrap_err();
        assert!(matches!(e, ValueError::OutOfRange { .. }), "{e}");
        let e = from_bson(raw.get("s").unwrap(), ColumnType::scalar(Scalar::I64)).unwrap_err();
        assert_eq!(e.to_string(), "expected i64, found string");
        assert_eq!(from_bson(None, ColumnType::scalar(Scalar::Text).nullable()).unwrap(), Value::Null);
    }
}
