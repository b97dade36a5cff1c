//! Raw SQL into ad-hoc rows: `polystore::query::raw_rows::<(String, Decimal)>(sql)` decodes
//! each row into a tuple (columns by position), a `#[derive(Row)]` struct (columns by name) or
//! a `serde_json::Map` (every column, by the SQL type the driver reports). A decode error names
//! the row type, the column and the column's SQL type.

use std::marker::PhantomData;

use crate::db::Executor;
use crate::error::{Error, Result, ValueError};
use crate::exec;
use crate::query::{RawParam, ValueRow};
use crate::schema::{ColumnType, Scalar};
use crate::sql::{Param, Statement};
use crate::value::{FieldType, Value};

/// One result row of a raw statement, handed to [`FromRawRow`].
pub struct RawRow<'r> {
    row: &'r dyn ValueRow,
    target: &'static str,
}

impl RawRow<'_> {
    /// A decode error on column `column` (its position `idx`, when found), naming its SQL type.
    fn error(&self, column: &'static str, idx: Option<usize>, source: ValueError) -> Error {
        let ty = idx.and_then(|i| self.row.column_types().into_iter().nth(i)).map(|(_, ty)| ty);
        let source = match ty {
            Some(ty) => ValueError::Driver(format!("column of SQL type {ty}: {source}")),
            None => source,
        };
        Error::Decode { model: self.target, field: column, source }
    }

    /// The column named `name`, as a `T`.
    pub fn column<T: FieldType>(&self, name: &'static str) -> Result<T> {
        let Some(idx) = self.row.column_index(name) else {
            let message = format!("the raw query's result has no column {name:?}");
            return Err(self.error(name, None, ValueError::Driver(message)));
        };
        self.row.value(idx, T::COLUMN).and_then(T::from_value).map_err(|e| self.error(name, Some(idx), e))
    }

    /// The column at position `idx` (from 0), as a `T`; `what` names it in errors.
    pub fn at<T: FieldType>(&self, idx: usize, what: &'static str) -> Result<T> {
        if idx >= self.row.column_types().len() {
            let message = format!("the raw query's result has no column number {}", idx + 1);
            return Err(self.error(what, None, ValueError::Driver(message)));
        }
        self.row.value(idx, T::COLUMN).and_then(T::from_value).map_err(|e| self.error(what, Some(idx), e))
    }

    /// Every column by name, each read by the SQL type the driver reports and turned into JSON
    /// (decimals as exact strings, timestamps as RFC 3339 text, NULL as `null`).
    pub fn to_json(&self) -> Result<serde_json::Map<String, serde_json::Value>> {
        let mut out = serde_json::Map::new();
        for (idx, (name, sql_type)) in self.row.column_types().into_iter().enumerate() {
            let value = match column_type(&sql_type) {
                None if sql_type.eq_ignore_ascii_case("NULL") => Value::Null,
                None => {
                    let e = ValueError::Driver(format!("no JSON form for SQL type {sql_type} (column {name:?})"));
                    return Err(Error::Decode { model: self.target, field: "<column>", source: e });
                }
                Some(ty) => self.row.value(idx, ty).map_err(|e| self.error("<column>", Some(idx), e))?,
            };
            out.insert(name, value.into_json());
        }
        Ok(out)
    }
}

/// The column type to read a column of SQL type `name` as (PostgreSQL and SQLite spellings).
fn column_type(name: &str) -> Option<ColumnType> {
    let upper = name.to_ascii_uppercase();
    let (base, array) = match upper.strip_suffix("[]") {
        Some(base) => (base, true),
        None => (upper.as_str(), false),
    };
    let scalar = match base {
        "BOOL" | "BOOLEAN" => Scalar::Bool,
        "INT2" | "SMALLINT" => Scalar::I16,
        "INT4" | "INT" => Scalar::I32,
        // SQLite reports every integer column as INTEGER (64-bit).
        "INTEGER" | "INT8" | "BIGINT" => Scalar::I64,
        "FLOAT4" => Scalar::F32,
        // SQLite's REAL is a double.
        "REAL" | "FLOAT8" | "DOUBLE PRECISION" => Scalar::F64,
        "NUMERIC" => Scalar::Decimal,
        "TEXT" | "VARCHAR" | "BPCHAR" | "CHAR" | "NAME" => Scalar::Text,
        "TIMESTAMPTZ" => Scalar::TimestampTz,
        "TIMESTAMP" | "DATETIME" => Scalar::Timestamp,
        "DATE" => Scalar::Date,
        "UUID" => Scalar::Uuid,
        "JSON" | "JSONB" => Scalar::Json,
        _ => return None,
    };
    Some(ColumnType { array, ..ColumnType::scalar(scalar).nullable() })
}

/// A row type raw SQL decodes into: a tuple of up to eight field types (by position),
/// `serde_json::Map<String, serde_json::Value>` (every column), or a struct with
/// `#[derive(Row)]` (by column name).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be decoded from a raw SQL row",
    label = "expected a tuple of field types, `serde_json::Map<String, serde_json::Value>` or a `#[derive(Row)]` struct"
)]
pub trait FromRawRow: Sized {
    /// The name errors give for the row type.
    const NAME: &'static str;
    /// Decodes one row.
    fn from_raw_row(row: &RawRow<'_>) -> Result<Self>;
}

impl FromRawRow for serde_json::Map<String, serde_json::Value> {
    const NAME: &'static str = "serde_json::Map";
    fn from_raw_row(row: &RawRow<'_>) -> Result<Self> {
        row.to_json()
    }
}

macro_rules! tuple_row {
    ($name:literal: $(($t:ident, $idx:tt, $what:literal)),+) => {
        impl<$($t: FieldType),+> FromRawRow for ($($t,)+) {
            const NAME: &'static str = $name;
            fn from_raw_row(row: &RawRow<'_>) -> Result<Self> {
                Ok(($(row.at::<$t>($idx, $what)?,)+))
            }
        }
    };
}

tuple_row!("(tuple of 1)": (A, 0, "column 1"));
tuple_row!("(tuple of 2)": (A, 0, "column 1"), (B, 1, "column 2"));
tuple_row!("(tuple of 3)": (A, 0, "column 1"), (B, 1, "column 2"), (C, 2, "column 3"));
tuple_row!("(tuple of 4)": (A, 0, "column 1"), (B, 1, "column 2"), (C, 2, "column 3"), (D, 3, "column 4"));
tuple_row!("(tuple of 5)": (A, 0, "column 1"), (B, 1, "column 2"), (C, 2, "column 3"), (D, 3, "column 4"),
    (E, 4, "column 5"));
tuple_row!("(tuple of 6)": (A, 0, "column 1"), (B, 1, "column 2"), (C, 2, "column 3"), (D, 3, "column 4"),
    (E, 4, "column 5"), (F, 5, "column 6"));
tuple_row!("(tuple of 7)": (A, 0, "column 1"), (B, 1, "column 2"), (C, 2, "column 3"), (D, 3, "column 4"),
    (E, 4, "column 5"), (F, 5, "column 6"), (G, 6, "column 7"));
tuple_row!("(tuple of 8)": (A, 0, "column 1"), (B, 1, "column 2"), (C, 2, "column 3"), (D, 3, "column 4"),
    (E, 4, "column 5"), (F, 5, "column 6"), (G, 6, "column 7"), (H, 7, "column 8"));

/// A hand-written statement whose rows decode into `R` (see [`FromRawRow`]). Placeholders are
/// `$1`, `$2`, … on both PostgreSQL and SQLite. SQL stores only.
#[derive(Debug, Clone)]
pub struct RawRows<R> {
    sql: String,
    params: Vec<Param>,
    error: Option<ValueError>,
    _row: PhantomData<fn() -> R>,
}

/// Starts a raw statement returning rows of `R`: a tuple, a `serde_json::Map` or a
/// `#[derive(Row)]` struct. Bind its parameters with [`RawRows::bind`].
pub fn raw_rows<R: FromRawRow>(sql: impl Into<String>) -> RawRows<R> {
    RawRows { sql: sql.into(), params: Vec::new(), error: None, _row: PhantomData }
}

impl<R: FromRawRow + Send> RawRows<R> {
    /// Binds the next parameter (`$1`, then `$2`, …).
    pub fn bind<V: RawParam>(mut self, value: V) -> Self {
        match value.into_param() {
            Ok(p) => self.params.push(p),
            Err(e) => self.error = self.error.or(Some(e)),
        }
        self
    }

    /// Every row.
    pub async fn all<E: Executor>(self, mut db: E) -> Result<Vec<R>> {
        if let Some(source) = self.error {
            return Err(Error::Encode { model: R::NAME, field: "?", source });
        }
        let stmt = Statement { sql: self.sql, params: self.params };
        exec::fetch_with(&mut db, "raw", None, stmt, |row: &dyn ValueRow| {
            R::from_raw_row(&RawRow { row, target: R::NAME })
        })
        .await
    }

    /// The first row, if any (the statement should limit itself; all rows are read).
    pub async fn first<E: Executor>(self, db: E) -> Result<Option<R>> {
        Ok(self.all(db).await?.into_iter().next())
    }

    /// The only row: [`Error::NotExactlyOne`] when there are none or several.
    pub async fn one<E: Executor>(self, db: E) -> Result<R> {
        let mut rows = self.all(db).await?;
        match rows.len() {
            1 => Ok(rows.remove(0)),
            n => Err(Error::NotExactlyOne { model: R::NAME, found: n.min(2) as u64 }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_type_names_map_to_column_types_on_both_dialects() {
        let scalar = |name: &str| column_type(name).map(|t| (t.scalar, t.array));
        assert_eq!(scalar("INT4"), Some((Scalar::I32, false)));
        assert_eq!(scalar("INTEGER"), Some((Scalar::I64, false)), "SQLite integers are 64-bit");
        assert_eq!(scalar("REAL"), Some((Scalar::F64, false)), "SQLite REAL is a double");
        assert_eq!(scalar("FLOAT4"), Some((Scalar::F32, false)));
        assert_eq!(scalar("numeric"), Some((Scalar::Decimal, false)));
        assert_eq!(scalar("TEXT[]"), Some((Scalar::Text, true)));
        assert_eq!(scalar("TIMESTAMPTZ"), Some((Scalar::TimestampTz, false)));
        assert_eq!(scalar("BLOB"), None, "no JSON form: reported, not guessed");
        assert!(column_type("INT8").is_some_and(|t| t.nullable), "every column may hold NULL");
    }
}
