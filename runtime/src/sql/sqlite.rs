//! SQLite, the embedded default: the dialect, binding and reading. Tables are `STRICT`; types
//! SQLite lacks are stored as TEXT in fixed, order-preserving formats:
//! timestamps as `YYYY-MM-DDTHH:MM:SS.ffffff[Z]`, UUIDs hyphenated, decimals as their exact text,
//! arrays and JSON as JSON text.

use chrono::{DateTime, NaiveDateTime, Utc};

use crate::error::ValueError;
use crate::schema::{ColumnType, Scalar};
use crate::sql::Dialect;

/// The SQLite dialect.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sqlite;

impl Dialect for Sqlite {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    fn texts_reusable(&self) -> bool {
        true
    }

    fn placeholder(&self, out: &mut String, n: usize) {
        use std::fmt::Write as _;
        let _ = write!(out, "?{n}");
    }

    fn column_type(&self, ty: &ColumnType) -> String {
        if ty.array {
            return "TEXT".to_owned();
        }
        match ty.scalar {
            Scalar::Bool | Scalar::I16 | Scalar::I32 | Scalar::I64 => "INTEGER",
            Scalar::F32 | Scalar::F64 => "REAL",
            _ => "TEXT",
        }
        .to_owned()
    }

    fn identity_clause(&self) -> &'static str {
        ""
    }

    fn generated_key_column(&self) -> Option<&'static str> {
        Some("INTEGER PRIMARY KEY AUTOINCREMENT")
    }

    fn bool_literal(&self, b: bool) -> &'static str {
        if b { "1" } else { "0" }
    }

    fn now_default(&self, ty: &ColumnType) -> Option<&'static str> {
        match ty.scalar {
            Scalar::TimestampTz => Some("(strftime('%Y-%m-%dT%H:%M:%f000Z', 'now'))"),
            Scalar::Timestamp => Some("(strftime('%Y-%m-%dT%H:%M:%f000', 'now'))"),
            _ => None,
        }
    }

    fn type_check(&self, ty: &ColumnType) -> Option<&'static str> {
        if ty.array {
            return Some("json_valid({col}) AND json_type({col}) = 'array'");
        }
        match ty.scalar {
            Scalar::Bool => Some("{col} IN (0, 1)"),
            Scalar::I16 => Some("{col} BETWEEN -32768 AND 32767"),
            Scalar::I32 => Some("{col} BETWEEN -2147483648 AND 2147483647"),
            Scalar::Json => Some("json_valid({col})"),
            _ => None,
        }
    }

    fn checks_decimal_text(&self, ty: &ColumnType) -> bool {
        ty.scalar == Scalar::Decimal && !ty.array
    }

    fn exact_decimal(&self, ty: &ColumnType) -> bool {
        ty.scalar == Scalar::Decimal && !ty.array
    }

    fn max_params(&self) -> usize {
        32_766
    }
}

/// Formats an instant as stored on SQLite: fixed width, so text order is time order.
pub fn format_timestamptz(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// Formats a wall-clock time as stored on SQLite.
pub fn format_timestamp(t: &NaiveDateTime) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
}

/// Parses an instant written by [`format_timestamptz`] (or any RFC 3339 text).
pub fn parse_timestamptz(s: &str) -> Result<DateTime<Utc>, ValueError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| parse_timestamp(s.trim_end_matches('Z')).map(|n| n.and_utc()))
        .map_err(|_| ValueError::parse(s, "timestamptz", "not an RFC 3339 timestamp"))
}

/// Parses a wall-clock time written by [`format_timestamp`] (a space instead of `T` is accepted).
pub fn parse_timestamp(s: &str) -> Result<NaiveDateTime, ValueError> {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f"))
        .map_err(|e| ValueError::parse(s, "timestamp", e))
}

#[cfg(feature = "sqlite")]
pub use driver::{bind, read};

#[cfg(feature = "sqlite")]
mod driver {
    use sqlx::sqlite::{SqliteArguments, SqliteRow};
    use sqlx::{Arguments, Row};

    use super::{format_timestamp, format_timestamptz, parse_timestamp, parse_timestamptz};
    use crate::error::ValueError;
    use crate::schema::{ColumnType, Scalar};
    use crate::sql::Param;
    use crate::value::{Value, json_to_value, narrow};

    type BoxErr = Box<dyn std::error::Error + Send + Sync>;

    /// Appends one parameter to `args`, converting types SQLite lacks to their stored text.
    pub fn bind(args: &mut SqliteArguments, param: Param) -> Result<(), BoxErr> {
        let Param { value, ty } = param;
        if ty.array || (ty.scalar == Scalar::Json && !matches!(value, Value::Null)) {
            let json = match value {
                Value::Null => return args.add(None::<String>),
                Value::Json(j) => j,
                v => v.into_json(),
            };
            return args.add(json.to_string());
        }
        match value {
            Value::Null => match ty.scalar {
                Scalar::Bool | Scalar::I16 | Scalar::I32 | Scalar::I64 => args.add(None::<i64>),
                Scalar::F32 | Scalar::F64 => args.add(None::<f64>),
                _ => args.add(None::<String>),
            },
            Value::Bool(v) => args.add(v),
            Value::I16(v) => args.add(i64::from(v)),
            Value::I32(v) => args.add(i64::from(v)),
            Value::I64(v) => args.add(v),
            Value::F32(v) => args.add(f64::from(v)),
            Value::F64(v) => args.add(v),
            Value::Text(v) => args.add(v),
            Value::TimestampTz(v) => args.add(format_timestamptz(&v)),
            Value::Timestamp(v) => args.add(format_timestamp(&v)),
            Value::Date(v) => args.add(v.format("%Y-%m-%d").to_string()),
            Value::Uuid(v) => args.add(v.hyphenated().to_string()),
            Value::ObjectId(b) => args.add(crate::ObjectId::from_bytes(b).to_hex()),
            Value::Decimal(v) => args.add(v.to_string()),
            Value::Json(v) => args.add(v.to_string()),
            Value::Array(_) => Err("an array value for a non-array column".into()),
        }
    }

    fn driver(e: sqlx::Error) -> ValueError {
        ValueError::Driver(e.to_string())
    }

    /// Reads column `idx` of `row` as a value of type `ty`.
    #[inline]
    pub fn read(row: &SqliteRow, idx: usize, ty: ColumnType) -> Result<Value, ValueError> {
        let int = |row: &SqliteRow| row.try_get::<Option<i64>, _>(idx).map_err(driver);
        let text = |row: &SqliteRow| row.try_get::<Option<String>, _>(idx).map_err(driver);
        let json = |row: &SqliteRow| -> Result<Option<serde_json::Value>, ValueError> {
            match text(row)? {
                None => Ok(None),
                Some(s) => serde_json::from_str(&s).map(Some).map_err(|e| ValueError::parse(&s, "json", e)),
            }
        };
        if ty.array {
            return json(row)?.map_or(Ok(Value::Null), |j| json_to_value(j, ty));
        }
        Ok(match ty.scalar {
            Scalar::ObjectId => crate::object_id::from_hex(text(row)?.map_or(Value::Null, Value::Text)),
            Scalar::Bool => row.try_get::<Option<bool>, _>(idx).map_err(driver)?.map_or(Value::Null, Value::Bool),
            Scalar::I16 => match int(row)? {
                None => Value::Null,
                Some(n) => Value::I16(narrow(n, "i16")?),
            },
            Scalar::I32 => match int(row)? {
                None => Value::Null,
                Some(n) => Value::I32(narrow(n, "i32")?),
            },
            Scalar::I64 => int(row)?.map_or(Value::Null, Value::I64),
            Scalar::F32 => {
                row.try_get::<Option<f64>, _>(idx).map_err(driver)?.map_or(Value::Null, |x| Value::F32(x as f32))
            }
            Scalar::F64 => row.try_get::<Option<f64>, _>(idx).map_err(driver)?.map_or(Value::Null, Value::F64),
            Scalar::Text | Scalar::Enum(_) => text(row)?.map_or(Value::Null, Value::Text),
            Scalar::TimestampTz => match text(row)? {
                None => Value::Null,
                Some(s) => Value::TimestampTz(parse_timestamptz(&s)?),
            },
            Scalar::Timestamp => match text(row)? {
                None => Value::Null,
                Some(s) => Value::Timestamp(parse_timestamp(&s)?),
            },
            Scalar::Date => match text(row)? {
                None => Value::Null,
                Some(s) => Value::Date(s.parse().map_err(|e| ValueError::parse(&s, "date", e))?),
            },
            Scalar::Uuid => match text(row)? {
                None => Value::Null,
                Some(s) => Value::Uuid(s.parse().map_err(|e| ValueError::parse(&s, "uuid", e))?),
            },
            Scalar::Decimal => match text(row)? {
                None => Value::Null,
                Some(s) => Value::Decimal(s.parse().map_err(|e| ValueError::parse(&s, "decimal", e))?),
            },
            Scalar::Json => json(row)?.map_or(Value::Null, Value::Json),
        })
    }
}
