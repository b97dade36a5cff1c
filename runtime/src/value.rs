//! Values crossing the boundary between Rust fields and stores: the [`Value`] enum (and
//! [`ValueRef`], its borrowing form for binding), the [`FieldType`] trait every storable Rust
//! type implements, and [`ToParam`], which decides what a field may be compared with.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::error::ValueError;
use crate::schema::{ColumnType, Scalar};

/// A store-neutral value: what a field holds on its way to or from a store.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// NULL / a missing value.
    Null,
    /// A boolean.
    Bool(bool),
    /// A 16-bit integer.
    I16(i16),
    /// A 32-bit integer.
    I32(i32),
    /// A 64-bit integer.
    I64(i64),
    /// A 32-bit float.
    F32(f32),
    /// A 64-bit float.
    F64(f64),
    /// Text (also enum variants).
    Text(String),
    /// An instant in UTC.
    TimestampTz(DateTime<Utc>),
    /// A wall-clock date and time.
    Timestamp(NaiveDateTime),
    /// A calendar date.
    Date(NaiveDate),
    /// A UUID.
    Uuid(Uuid),
    /// A MongoDB ObjectId's 12 bytes.
    ObjectId([u8; 12]),
    /// An exact decimal.
    Decimal(Decimal),
    /// A JSON document.
    Json(serde_json::Value),
    /// An array of values of one scalar type.
    Array(Vec<Value>),
}

impl Value {
    /// The variant's name, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::I16(_) => "i16",
            Value::I32(_) => "i32",
            Value::I64(_) => "i64",
            Value::F32(_) => "f32",
            Value::F64(_) => "f64",
            Value::Text(_) => "text",
            Value::TimestampTz(_) => "timestamptz",
            Value::Timestamp(_) => "timestamp",
            Value::Date(_) => "date",
            Value::Uuid(_) => "uuid",
            Value::ObjectId(_) => "objectid",
            Value::Decimal(_) => "decimal",
            Value::Json(_) => "json",
            Value::Array(_) => "array",
        }
    }

    /// This value as JSON (arrays stored as JSON text on SQLite, embedded values).
    pub fn into_json(self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(b),
            Value::I16(n) => J::from(n),
            Value::I32(n) => J::from(n),
            Value::I64(n) => J::from(n),
            Value::F32(n) => J::from(n),
            Value::F64(n) => J::from(n),
            Value::Text(s) => J::String(s),
            Value::TimestampTz(t) => J::String(crate::sql::sqlite::format_timestamptz(&t)),
            Value::Timestamp(t) => J::String(crate::sql::sqlite::format_timestamp(&t)),
            Value::Date(d) => J::String(d.to_string()),
            Value::Uuid(u) => J::String(u.hyphenated().to_string()),
            Value::ObjectId(b) => J::String(crate::ObjectId::from_bytes(b).to_hex()),
            Value::Decimal(d) => J::String(d.to_string()),
            Value::Json(j) => j,
            Value::Array(items) => J::Array(items.into_iter().map(Value::into_json).collect()),
        }
    }
}

/// A field's value on its way into a SQL statement, borrowing what would otherwise be copied:
/// text (`String` fields, enum variant names) and JSON documents by reference, every other
/// value as an owned [`Value`] (scalars, which cost no allocation, and whatever a
/// [`FieldType`] only produces owned).
///
/// Inserts bind these straight into the driver's argument buffer
/// ([`Model::values_ref`](crate::Model::values_ref)), so a `String` field is copied once, into
/// that buffer, rather than into a `Value` first.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueRef<'a> {
    /// Borrowed text (a `TEXT` or enum column).
    Text(&'a str),
    /// A borrowed JSON document.
    Json(&'a serde_json::Value),
    /// Any other value, owned.
    Owned(Value),
}

impl ValueRef<'_> {
    /// The value, copying what is borrowed.
    pub fn into_owned(self) -> Value {
        match self {
            ValueRef::Text(s) => Value::Text(s.to_owned()),
            ValueRef::Json(j) => Value::Json(j.clone()),
            ValueRef::Owned(v) => v,
        }
    }

    /// The owned value, when this is one (keys, versions and timestamps are: they are scalars).
    pub fn as_owned(&self) -> Option<&Value> {
        match self {
            ValueRef::Owned(v) => Some(v),
            _ => None,
        }
    }
}

/// A Rust type that polystore can store in a column or document field.
///
/// Implemented for the supported scalars, `Option<T>` (nullable), `Vec<T>` (arrays), and for
/// user types through `#[derive(Enum)]` (stored as text) and `#[derive(Embedded)]` (stored as
/// JSON / an embedded document). Implement it by hand to store a newtype.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a type polystore can store",
    label = "this field's type cannot be stored",
    note = "supported: i16, i32, i64, f32, f64, bool, String, Option<T>, Vec<T>, chrono DateTime<Utc> / NaiveDate / NaiveDateTime, uuid::Uuid, rust_decimal::Decimal, serde_json::Value",
    note = "for an enum stored as text add #[derive(polystore::Enum)]; for a nested struct stored as JSON add #[derive(polystore::Embedded)]"
)]
pub trait FieldType: Sized + Send + Sync + 'static {
    /// How values of this type are stored.
    const COLUMN: ColumnType;
    /// Converts to a store-neutral value.
    fn to_value(&self) -> Result<Value, ValueError>;
    /// Converts back from a value read with [`FieldType::COLUMN`].
    fn from_value(value: Value) -> Result<Self, ValueError>;

    /// The value borrowed where possible, for binding without a copy (see [`ValueRef`]). The
    /// default is [`FieldType::to_value`], owned; text and JSON types borrow.
    #[inline]
    fn to_value_ref(&self) -> Result<ValueRef<'_>, ValueError> {
        self.to_value().map(ValueRef::Owned)
    }

    /// Reads column `idx` of a PostgreSQL row as this type (SQL `NULL` is
    /// [`ValueError::UnexpectedNull`]). The default reads a [`Value`] of
    /// [`FieldType::COLUMN`] and converts it with [`FieldType::from_value`]; the standard
    /// scalar types, and `Option`s of them, decode straight from the row instead.
    #[doc(hidden)]
    #[cfg(feature = "postgres")]
    #[inline]
    fn read_pg(row: &sqlx::postgres::PgRow, idx: usize) -> Result<Self, ValueError> {
        crate::sql::postgres::read_column(row, idx, Self::COLUMN).and_then(Self::from_value)
    }

    /// [`FieldType::read_pg`] with SQL `NULL` as `None` (how `Option<Self>` reads).
    #[doc(hidden)]
    #[cfg(feature = "postgres")]
    #[inline]
    fn read_pg_nullable(row: &sqlx::postgres::PgRow, idx: usize) -> Result<Option<Self>, ValueError> {
        match crate::sql::postgres::read_column(row, idx, Self::COLUMN)? {
            Value::Null => Ok(None),
            value => Self::from_value(value).map(Some),
        }
    }

    /// Reads field number `field` of a row as this type. Generated code calls it as
    /// `<T as FieldType>::read_field`, like every other use of the field's type, so a type that
    /// cannot be stored is reported once rather than once per use.
    #[doc(hidden)]
    fn read_field<R: crate::model::RowReader>(reader: &mut R, field: usize) -> Result<Self, crate::Error> {
        reader.read::<Self>(field)
    }
}

fn mismatch<T>(expected: &'static str, found: &Value) -> Result<T, ValueError> {
    match found {
        Value::Null => Err(ValueError::UnexpectedNull),
        other => Err(ValueError::TypeMismatch { expected, found: other.kind() }),
    }
}

macro_rules! scalar_field_type {
    ($($ty:ty => $scalar:ident, $variant:ident, $name:literal $(, borrowed as $borrowed:ident)?;)*) => {$(
        impl FieldType for $ty {
            const COLUMN: ColumnType = ColumnType::scalar(Scalar::$scalar);
            #[inline]
            fn to_value(&self) -> Result<Value, ValueError> {
                Ok(Value::$variant(self.clone()))
            }
            $(
                #[inline]
                fn to_value_ref(&self) -> Result<ValueRef<'_>, ValueError> {
                    Ok(ValueRef::$borrowed(self))
                }
            )?
            #[inline]
            fn from_value(value: Value) -> Result<Self, ValueError> {
                match value {
                    Value::$variant(v) => Ok(v),
                    other => mismatch($name, &other),
                }
            }
            // The same `try_get` as `sql::postgres::read` makes for this column type, with
            // no `Value` to build, match and drop.
            #[cfg(feature = "postgres")]
            #[inline]
            fn read_pg(row: &sqlx::postgres::PgRow, idx: usize) -> Result<Self, ValueError> {
                Self::read_pg_nullable(row, idx)?.ok_or(ValueError::UnexpectedNull)
            }
            #[cfg(feature = "postgres")]
            #[inline]
            fn read_pg_nullable(row: &sqlx::postgres::PgRow, idx: usize) -> Result<Option<Self>, ValueError> {
                crate::sql::postgres::get::<$ty>(row, idx)
            }
        }
    )*};
}

scalar_field_type! {
    bool => Bool, Bool, "bool";
    i16 => I16, I16, "i16";
    i32 => I32, I32, "i32";
    i64 => I64, I64, "i64";
    f32 => F32, F32, "f32";
    f64 => F64, F64, "f64";
    String => Text, Text, "text", borrowed as Text;
    DateTime<Utc> => TimestampTz, TimestampTz, "timestamptz";
    NaiveDateTime => Timestamp, Timestamp, "timestamp";
    NaiveDate => Date, Date, "date";
    Uuid => Uuid, Uuid, "uuid";
    Decimal => Decimal, Decimal, "decimal";
    serde_json::Value => Json, Json, "json", borrowed as Json;
}

impl<T: FieldType> FieldType for Option<T> {
    const COLUMN: ColumnType = T::COLUMN.nullable();
    #[inline]
    fn to_value(&self) -> Result<Value, ValueError> {
        match self {
            Some(v) => v.to_value(),
            None => Ok(Value::Null),
        }
    }
    #[inline]
    fn to_value_ref(&self) -> Result<ValueRef<'_>, ValueError> {
        match self {
            Some(v) => v.to_value_ref(),
            None => Ok(ValueRef::Owned(Value::Null)),
        }
    }
    #[inline]
    fn from_value(value: Value) -> Result<Self, ValueError> {
        match value {
            Value::Null => Ok(None),
            v => T::from_value(v).map(Some),
        }
    }
    #[cfg(feature = "postgres")]
    #[inline]
    fn read_pg(row: &sqlx::postgres::PgRow, idx: usize) -> Result<Self, ValueError> {
        T::read_pg_nullable(row, idx)
    }
}

impl<T: FieldType> FieldType for Vec<T> {
    const COLUMN: ColumnType = ColumnType::array_of(T::COLUMN);
    fn to_value(&self) -> Result<Value, ValueError> {
        let items = self.iter().map(T::to_value).collect::<Result<Vec<_>, _>>()?;
        if Self::COLUMN.array {
            Ok(Value::Array(items))
        } else {
            Ok(Value::Json(serde_json::Value::Array(items.into_iter().map(Value::into_json).collect())))
        }
    }
    fn from_value(value: Value) -> Result<Self, ValueError> {
        match value {
            Value::Array(items) => items.into_iter().map(T::from_value).collect(),
            Value::Json(serde_json::Value::Array(items)) => {
                items.into_iter().map(|j| T::from_value(json_element::<T>(j)?)).collect()
            }
            other => mismatch("array", &other),
        }
    }
}

/// Turns one JSON array element back into the value `T` expects (used for arrays kept as JSON).
pub(crate) fn json_element<T: FieldType>(j: serde_json::Value) -> Result<Value, ValueError> {
    json_to_value(j, T::COLUMN)
}

/// Interprets a JSON value as a value of column type `ty` (the inverse of [`Value::into_json`]).
pub(crate) fn json_to_value(j: serde_json::Value, ty: ColumnType) -> Result<Value, ValueError> {
    use serde_json::Value as J;
    if j.is_null() {
        // A JSON `null` held by a non-optional JSON field (an element of a
        // `Vec<serde_json::Value>`) is that JSON value, not a missing one.
        if ty.scalar == Scalar::Json && !ty.array && !ty.nullable {
            return Ok(Value::Json(J::Null));
        }
        return Ok(Value::Null);
    }
    if ty.array {
        return match j {
            J::Array(items) => {
                let el = ColumnType { array: false, nullable: false, ..ty };
                items.into_iter().map(|i| json_to_value(i, el)).collect::<Result<_, _>>().map(Value::Array)
            }
            other => Err(ValueError::TypeMismatch { expected: "array", found: json_kind(&other) }),
        };
    }
    let int = |j: &J, target: &'static str| {
        j.as_i64().ok_or(ValueError::TypeMismatch { expected: target, found: json_kind(j) })
    };
    let text = |j: J| match j {
        J::String(s) => Ok(s),
        other => Err(ValueError::TypeMismatch { expected: "text", found: json_kind(&other) }),
    };
    Ok(match ty.scalar {
        Scalar::Bool => {
            Value::Bool(j.as_bool().ok_or(ValueError::TypeMismatch { expected: "bool", found: json_kind(&j) })?)
        }
        Scalar::ObjectId => crate::object_id::from_hex(Value::Text(text(j)?)),
        Scalar::I16 => Value::I16(narrow(int(&j, "i16")?, "i16")?),
        Scalar::I32 => Value::I32(narrow(int(&j, "i32")?, "i32")?),
        Scalar::I64 => Value::I64(int(&j, "i64")?),
        Scalar::F32 => {
            Value::F32(j.as_f64().ok_or(ValueError::TypeMismatch { expected: "f32", found: json_kind(&j) })? as f32)
        }
        Scalar::F64 => {
            Value::F64(j.as_f64().ok_or(ValueError::TypeMismatch { expected: "f64", found: json_kind(&j) })?)
        }
        Scalar::Text | Scalar::Enum(_) => Value::Text(text(j)?),
        Scalar::TimestampTz => Value::TimestampTz(crate::sql::sqlite::parse_timestamptz(&text(j)?)?),
        Scalar::Timestamp => Value::Timestamp(crate::sql::sqlite::parse_timestamp(&text(j)?)?),
        Scalar::Date => {
            let s = text(j)?;
            Value::Date(s.parse().map_err(|e| ValueError::parse(&s, "date", e))?)
        }
        Scalar::Uuid => {
            let s = text(j)?;
            Value::Uuid(s.parse().map_err(|e| ValueError::parse(&s, "uuid", e))?)
        }
        Scalar::Decimal => match j {
            J::String(s) => Value::Decimal(s.parse().map_err(|e| ValueError::parse(&s, "decimal", e))?),
            J::Number(n) => {
                let s = n.to_string();
                Value::Decimal(s.parse().map_err(|e| ValueError::parse(&s, "decimal", e))?)
            }
            other => return Err(ValueError::TypeMismatch { expected: "decimal", found: json_kind(&other) }),
        },
        Scalar::Json => Value::Json(j),
    })
}

fn json_kind(j: &serde_json::Value) -> &'static str {
    match j {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "bool",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

/// Narrows a stored 64-bit integer to the field's integer type, or says it does not fit.
pub(crate) fn narrow<T: TryFrom<i64>>(n: i64, target: &'static str) -> Result<T, ValueError> {
    T::try_from(n).map_err(|_| ValueError::OutOfRange { value: n.to_string(), target })
}

/// A Rust value that may be compared with (or assigned to) a field of type `T`.
///
/// `User::AGE.eq(18)` compiles because `i32: ToParam<i32>`; `User::AGE.eq("x")` does not.
#[diagnostic::on_unimplemented(
    message = "a `{Self}` cannot be compared with a field of type `{T}`",
    label = "expected a value of the field's type `{T}`"
)]
pub trait ToParam<T> {
    /// The value to bind.
    fn to_param(self) -> Result<Value, ValueError>;
}

impl<T: FieldType> ToParam<T> for T {
    #[inline]
    fn to_param(self) -> Result<Value, ValueError> {
        self.to_value()
    }
}

impl<T: FieldType> ToParam<T> for &T {
    #[inline]
    fn to_param(self) -> Result<Value, ValueError> {
        self.to_value()
    }
}

impl ToParam<String> for &str {
    #[inline]
    fn to_param(self) -> Result<Value, ValueError> {
        Ok(Value::Text(self.to_owned()))
    }
}

impl<T: FieldType> ToParam<Option<T>> for T {
    #[inline]
    fn to_param(self) -> Result<Value, ValueError> {
        self.to_value()
    }
}

impl<T: FieldType> ToParam<Option<T>> for &T {
    #[inline]
    fn to_param(self) -> Result<Value, ValueError> {
        self.to_value()
    }
}

impl ToParam<Option<String>> for &str {
    #[inline]
    fn to_param(self) -> Result<Value, ValueError> {
        Ok(Value::Text(self.to_owned()))
    }
}

/// Support for `#[derive(Enum)]`: an enum stored as the text of its variant.
pub trait TextEnum: Sized + Send + Sync + 'static {
    /// The stored names of the variants, in declaration order.
    const VARIANTS: &'static [&'static str];
    /// The stored name of this variant.
    fn as_str(&self) -> &'static str;
    /// The variant with the stored name `s`.
    fn from_str(s: &str) -> Option<Self>;
}

/// `to_value` for a [`TextEnum`] (called by generated `FieldType` impls).
#[doc(hidden)]
pub fn enum_to_value<E: TextEnum>(e: &E) -> Result<Value, ValueError> {
    Ok(Value::Text(e.as_str().to_owned()))
}

/// `from_value` for a [`TextEnum`] (called by generated `FieldType` impls).
#[doc(hidden)]
pub fn enum_from_value<E: TextEnum>(value: Value, name: &'static str) -> Result<E, ValueError> {
    match value {
        Value::Text(s) => {
            E::from_str(&s).ok_or_else(|| ValueError::parse(&s, name, format!("not one of {}", E::VARIANTS.join(", "))))
        }
        other => mismatch("text", &other),
    }
}

/// `to_value` for an embedded serde type (called by generated `FieldType` impls).
#[doc(hidden)]
pub fn embedded_to_value<T: serde::Serialize>(v: &T) -> Result<Value, ValueError> {
    serde_json::to_value(v).map(Value::Json).map_err(|e| ValueError::Serde(e.to_string()))
}

/// `from_value` for an embedded serde type (called by generated `FieldType` impls).
#[doc(hidden)]
pub fn embedded_from_value<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, ValueError> {
    match value {
        Value::Json(j) => serde_json::from_value(j).map_err(|e| ValueError::Serde(e.to_string())),
        other => mismatch("json", &other),
    }
}
