//! Stored types: the store-neutral vocabulary that every Rust field type maps to.

/// The scalar part of a stored type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scalar {
    /// `bool`.
    Bool,
    /// `i16`.
    I16,
    /// `i32`.
    I32,
    /// `i64`.
    I64,
    /// `f32`.
    F32,
    /// `f64`.
    F64,
    /// `String`.
    Text,
    /// A Rust enum stored as the text of its variant; the slice lists the allowed values.
    Enum(&'static [&'static str]),
    /// `chrono::DateTime<Utc>`: an instant.
    TimestampTz,
    /// `chrono::NaiveDateTime`: a wall-clock date and time.
    Timestamp,
    /// `chrono::NaiveDate`.
    Date,
    /// `uuid::Uuid`.
    Uuid,
    /// [`ObjectId`](crate::ObjectId): a BSON ObjectId on MongoDB, 24-character hex text on SQL.
    ObjectId,
    /// `rust_decimal::Decimal`.
    Decimal,
    /// `serde_json::Value` or a nested serde type (`#[derive(Embedded)]`).
    Json,
}

/// A stored type: a scalar, possibly an array of it, possibly nullable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColumnType {
    /// The element type.
    pub scalar: Scalar,
    /// A `Vec<scalar>`: a PostgreSQL array, JSON text on SQLite, a BSON array on MongoDB.
    pub array: bool,
    /// `Option<_>`: the column may be NULL.
    pub nullable: bool,
}

impl ColumnType {
    /// A non-null, non-array column of `scalar`.
    pub const fn scalar(scalar: Scalar) -> Self {
        ColumnType { scalar, array: false, nullable: false }
    }

    /// The same type, nullable.
    pub const fn nullable(self) -> Self {
        ColumnType { nullable: true, ..self }
    }

    /// An array of this type's scalar. Arrays of JSON, and arrays of arrays, are stored as one
    /// JSON value instead.
    pub const fn array_of(element: ColumnType) -> Self {
        if element.array || matches!(element.scalar, Scalar::Json) {
            ColumnType::scalar(Scalar::Json)
        } else {
            ColumnType { scalar: element.scalar, array: true, nullable: false }
        }
    }

    /// Whether values of this type are integers (candidates for generated keys).
    pub const fn is_integer(&self) -> bool {
        !self.array && matches!(self.scalar, Scalar::I16 | Scalar::I32 | Scalar::I64)
    }

    /// A short human name for messages (`i32`, `text[]`, `timestamptz?`).
    pub fn describe(&self) -> String {
        let base = match self.scalar {
            Scalar::Bool => "bool",
            Scalar::I16 => "i16",
            Scalar::I32 => "i32",
            Scalar::I64 => "i64",
            Scalar::F32 => "f32",
            Scalar::F64 => "f64",
            Scalar::Text => "text",
            Scalar::Enum(_) => "enum",
            Scalar::TimestampTz => "timestamptz",
            Scalar::Timestamp => "timestamp",
            Scalar::Date => "date",
            Scalar::Uuid => "uuid",
            Scalar::ObjectId => "objectid",
            Scalar::Decimal => "decimal",
            Scalar::Json => "json",
        };
        format!("{base}{}{}", if self.array { "[]" } else { "" }, if self.nullable { "?" } else { "" })
    }
}
