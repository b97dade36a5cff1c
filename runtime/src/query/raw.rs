//! The raw-SQL escape hatch: `polystore::raw::<User>("SELECT * FROM users WHERE age > $1")
//! .bind(18).all(&db)`. The text is the caller's; values are still bound as parameters, and
//! rows decode into the model by column name.

use std::marker::PhantomData;

use crate::db::Executor;
use crate::error::{Error, Result, ValueError};
use crate::exec::{self, ValueReader};
use crate::model::Model;
use crate::query::ValueRow;
use crate::sql::{Param, Statement};
use crate::value::{FieldType, Value};

/// A hand-written statement whose rows decode into model `M`. Placeholders are `$1`, `$2`, …
/// on both PostgreSQL and SQLite. Every column of the model must appear in the result (by
/// its column name, in any order; `SELECT *` works); extra columns are ignored.
#[derive(Debug, Clone)]
pub struct Raw<M> {
    sql: String,
    params: Vec<Param>,
    error: Option<ValueError>,
    _model: PhantomData<fn() -> M>,
}

/// Starts a raw statement returning rows of `M`; bind its parameters with [`Raw::bind`].
pub fn raw<M: Model>(sql: impl Into<String>) -> Raw<M> {
    Raw { sql: sql.into(), params: Vec::new(), error: None, _model: PhantomData }
}

/// A value that [`Raw::bind`] accepts: any storable type, and `&str`.
pub trait RawParam {
    /// The value and the type it is bound as.
    fn into_param(self) -> Result<Param, ValueError>;
}

impl<T: FieldType> RawParam for T {
    fn into_param(self) -> Result<Param, ValueError> {
        Ok(Param { value: self.to_value()?, ty: T::COLUMN })
    }
}

impl RawParam for &str {
    fn into_param(self) -> Result<Param, ValueError> {
        Ok(Param { value: Value::Text(self.to_owned()), ty: String::COLUMN })
    }
}

impl<M: Model> Raw<M> {
    /// Binds the next parameter (`$1`, then `$2`, …).
    pub fn bind<V: RawParam>(mut self, value: V) -> Self {
        match value.into_param() {
            Ok(p) => self.params.push(p),
            Err(e) => self.error = self.error.or(Some(e)),
        }
        self
    }

    async fn fetch<E: Executor>(self, mut db: E, op: &'static str) -> Result<Vec<M>> {
        if let Some(source) = self.error {
            return Err(Error::Encode { model: M::SCHEMA.name, field: "?", source });
        }
        let schema = M::SCHEMA;
        let stmt = Statement { sql: self.sql, params: self.params };
        let mut columns: Option<Vec<usize>> = None;
        exec::fetch_with(&mut db, op, Some(schema), stmt, |row: &dyn ValueRow| {
            if columns.is_none() {
                columns = Some(column_map::<M>(row)?);
            }
            M::from_reader(&mut ValueReader { row, schema, columns: columns.as_deref() })
        })
        .await
    }

    /// Every row.
    pub async fn all<E: Executor>(self, db: E) -> Result<Vec<M>> {
        self.fetch(db, "raw").await
    }

    /// The first row, if any (the statement should limit itself; all rows are read).
    pub async fn first<E: Executor>(self, db: E) -> Result<Option<M>> {
        Ok(self.fetch(db, "raw").await?.into_iter().next())
    }

    /// The only row: [`Error::NotExactlyOne`] when there are none or several.
    pub async fn one<E: Executor>(self, db: E) -> Result<M> {
        let mut rows = self.fetch(db, "raw").await?;
        match rows.len() {
            1 => Ok(rows.remove(0)),
            n => Err(Error::NotExactlyOne { model: M::SCHEMA.name, found: n.min(2) as u64 }),
        }
    }
}

impl<M: Model> Raw<M> {
    /// Runs the statement for its effect (an UPDATE, a DELETE, DDL) and returns the number of
    /// rows affected; the rows of a SELECT are discarded.
    pub async fn execute<E: Executor>(self, mut db: E) -> Result<u64> {
        if let Some(source) = self.error {
            return Err(Error::Encode { model: M::SCHEMA.name, field: "?", source });
        }
        let stmt = Statement { sql: self.sql, params: self.params };
        exec::execute(&mut db, "raw", Some(M::SCHEMA), stmt).await
    }
}

/// Finds each field's column in the result by name.
fn column_map<M: Model>(row: &dyn ValueRow) -> Result<Vec<usize>> {
    M::SCHEMA
        .fields
        .iter()
        .map(|f| {
            row.column_index(f.column).ok_or_else(|| Error::Decode {
                model: M::SCHEMA.name,
                field: f.name,
                source: ValueError::Driver(format!("the raw query's result has no column {:?}", f.column)),
            })
        })
        .collect()
}
