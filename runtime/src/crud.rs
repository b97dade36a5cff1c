//! CRUD on SQL stores for every model ([`ModelExt`], implemented for all [`Model`]s). The
//! terminals that run a [`Query`] live in `query/run.rs`.

use std::future::Future;
use std::marker::PhantomData;

use crate::db::Executor;
use crate::error::{Error, Result};
use crate::exec;
use crate::model::{Field, Model};
use crate::query::Query;
use crate::sql::{Statement, build};
use crate::value::Value;

/// A field of model `M` with its type erased, for lists of fields (conflict targets, …).
#[derive(Debug)]
pub struct AnyField<M> {
    index: usize,
    _model: PhantomData<fn() -> M>,
}

impl<M> Clone for AnyField<M> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<M> Copy for AnyField<M> {}

impl<M> AnyField<M> {
    /// The field's position in the model's schema.
    pub fn index(&self) -> usize {
        self.index
    }
}

impl<M, T> From<Field<M, T>> for AnyField<M> {
    fn from(f: Field<M, T>) -> Self {
        AnyField { index: f.index(), _model: PhantomData }
    }
}

/// Operations every model gets: `User::find(&db, 1)`, `user.insert(&db)`, `User::query()`…
///
/// Each takes an [`Executor`]: `&db` for a pooled connection, or `&mut tx` inside a
/// transaction.
pub trait ModelExt: Model {
    /// A query over this model that matches every row.
    fn query() -> Query<Self> {
        Query::new()
    }

    /// The row with primary key `key`, or [`Error::NotFound`].
    fn find<E: Executor>(mut db: E, key: Self::Key) -> impl Future<Output = Result<Self>> + Send {
        async move {
            #[cfg(feature = "mongodb")]
            if let Some(conn) = crate::mongo::conn(&mut db) {
                return crate::mongo::crud::find::<Self>(conn, &key).await;
            }
            let stmt = build::find_by_key(dialect(&mut db), Self::SCHEMA, Self::key_values(&key)?);
            exec::fetch_optional_model(&mut db, "find", stmt).await?.ok_or(Error::NotFound { model: Self::SCHEMA.name })
        }
    }

    /// The row with primary key `key`, if there is one.
    fn get<E: Executor>(mut db: E, key: Self::Key) -> impl Future<Output = Result<Option<Self>>> + Send {
        async move {
            #[cfg(feature = "mongodb")]
            if let Some(conn) = crate::mongo::conn(&mut db) {
                return crate::mongo::crud::get::<Self>(conn, &key).await;
            }
            let stmt = build::find_by_key(dialect(&mut db), Self::SCHEMA, Self::key_values(&key)?);
            exec::fetch_optional_model(&mut db, "find", stmt).await
        }
    }

    /// Inserts this row and returns it as stored: with its generated key, automatic timestamps
    /// and database defaults.
    fn insert<E: Executor>(&self, mut db: E) -> impl Future<Output = Result<Self>> + Send {
        async move {
            check_all(self, &mut db).await?;
            #[cfg(feature = "mongodb")]
            if let Some(conn) = crate::mongo::conn(&mut db) {
                return crate::mongo::crud::insert(conn, self).await;
            }
            let mut values = self.to_values()?;
            build::stamp(Self::SCHEMA, &mut values, chrono::Utc::now(), true);
            let stmt = build::insert(dialect(&mut db), Self::SCHEMA, vec![values]);
            let mut rows: Vec<Self> = exec::fetch_models(&mut db, "insert", stmt).await?;
            crate::cache::rows_written(&db, &rows).await;
            rows.pop().ok_or(Error::NotFound { model: Self::SCHEMA.name })
        }
    }

    /// Inserts all `rows` with one multi-row INSERT (several when the rows exceed the
    /// database's parameter limit, then inside one transaction), returning them as stored, in
    /// order. Either every row is inserted or none is.
    fn insert_many<E: Executor>(mut db: E, rows: &[Self]) -> impl Future<Output = Result<Vec<Self>>> + Send {
        async move {
            if rows.is_empty() {
                return Ok(Vec::new());
            }
            for row in rows {
                check_all(row, &mut db).await?;
            }
            #[cfg(feature = "mongodb")]
            if let Some(conn) = crate::mongo::conn(&mut db) {
                return crate::mongo::crud::insert_many(conn, rows, "insert_many").await;
            }
            let d = dialect(&mut db);
            let now = chrono::Utc::now();
            let per = build::rows_per_insert(d, Self::SCHEMA);
            let mut stmts = Vec::with_capacity(rows.len().div_ceil(per));
            for chunk in rows.chunks(per) {
                let mut batch = Vec::with_capacity(chunk.len());
                for row in chunk {
                    let mut values = row.to_values()?;
                    build::stamp(Self::SCHEMA, &mut values, now, true);
                    batch.push(values);
                }
                stmts.push(build::insert(d, Self::SCHEMA, batch));
            }
            if stmts.len() == 1 {
                let rows = exec::fetch_models(&mut db, "insert_many", stmts.remove(0)).await?;
                crate::cache::rows_written(&db, &rows).await;
                return Ok(rows);
            }
            run_atomically::<Self, E>(db, "insert_many", stmts).await
        }
    }

    /// Writes every field but the key (and `created_at`) to the row with this row's key, and
    /// returns it as stored; [`Error::NotFound`] when no row has the key.
    fn update<E: Executor>(&self, mut db: E) -> impl Future<Output = Result<Self>> + Send {
        async move {
            check_all(self, &mut db).await?;
            #[cfg(feature = "mongodb")]
            if let Some(conn) = crate::mongo::conn(&mut db) {
                return crate::mongo::crud::update(conn, self).await;
            }
            let mut values = self.to_values()?;
            build::stamp(Self::SCHEMA, &mut values, chrono::Utc::now(), false);
            let stmt = build::update(dialect(&mut db), Self::SCHEMA, values);
            let row = exec::fetch_optional_model(&mut db, "update", stmt)
                .await?
                .ok_or(Error::NotFound { model: Self::SCHEMA.name })?;
            crate::cache::rows_written(&db, std::slice::from_ref(&row)).await;
            Ok(row)
        }
    }

    /// Inserts this row, or, when its primary key exists, updates that row; returns it as stored.
    fn upsert<E: Executor>(&self, db: E) -> impl Future<Output = Result<Self>> + Send {
        async move { upsert_by(self, db, Self::SCHEMA.primary_key).await }
    }

    /// Inserts this row, or, when a row with the same values in `conflict` (a unique index's
    /// fields) exists, updates that row; returns it as stored.
    fn upsert_on<E: Executor>(&self, db: E, conflict: &[AnyField<Self>]) -> impl Future<Output = Result<Self>> + Send {
        let fields: Vec<usize> = conflict.iter().map(AnyField::index).collect();
        async move {
            if fields.is_empty() {
                return Err(Error::Config(format!(
                    "{}: upsert_on needs at least one conflict field",
                    Self::SCHEMA.name
                )));
            }
            upsert_by(self, db, &fields).await
        }
    }

    /// Deletes this row (by its key); [`Error::NotFound`] when it does not exist.
    fn delete<E: Executor>(&self, db: E) -> impl Future<Output = Result<()>> + Send {
        async move {
            let values = self.to_values()?;
            let key: Vec<Value> = Self::SCHEMA.primary_key.iter().map(|&i| values[i].clone()).collect();
            match delete_key::<Self, E>(db, key).await? {
                0 => Err(Error::NotFound { model: Self::SCHEMA.name }),
                _ => Ok(()),
            }
        }
    }

    /// Deletes the row with primary key `key`; returns whether there was one.
    fn delete_by_key<E: Executor>(db: E, key: Self::Key) -> impl Future<Output = Result<bool>> + Send {
        async move { Ok(delete_key::<Self, E>(db, Self::key_values(&key)?).await? > 0) }
    }
}

impl<M: Model> ModelExt for M {}

fn dialect<E: Executor>(db: &mut E) -> &'static dyn crate::sql::Dialect {
    db.target().0.dialect()
}

/// Runs a row's validation rules, then its async business rules (which may query `db`).
async fn check_all<M: Model, E: Executor>(row: &M, db: &mut E) -> Result<()> {
    row.check_rules()?;
    if M::HAS_ASYNC_RULES {
        row.check_rules_async(db).await?;
    }
    Ok(())
}

async fn upsert_by<M: Model, E: Executor>(row: &M, mut db: E, conflict: &[usize]) -> Result<M> {
    check_all(row, &mut db).await?;
    #[cfg(feature = "mongodb")]
    if let Some(conn) = crate::mongo::conn(&mut db) {
        return crate::mongo::crud::upsert(conn, row, conflict).await;
    }
    let mut values = row.to_values()?;
    build::stamp(M::SCHEMA, &mut values, chrono::Utc::now(), true);
    let stmt = build::upsert(dialect(&mut db), M::SCHEMA, values, conflict);
    let mut rows: Vec<M> = exec::fetch_models(&mut db, "upsert", stmt).await?;
    crate::cache::rows_written(&db, &rows).await;
    rows.pop().ok_or(Error::NotFound { model: M::SCHEMA.name })
}

async fn delete_key<M: Model, E: Executor>(mut db: E, key: Vec<Value>) -> Result<u64> {
    #[cfg(feature = "mongodb")]
    if let Some(conn) = crate::mongo::conn(&mut db) {
        return crate::mongo::crud::delete_key::<M>(conn, key).await;
    }
    let stmt = build::delete_by_key(dialect(&mut db), M::SCHEMA, key.clone());
    let deleted = exec::execute(&mut db, "delete", Some(M::SCHEMA), stmt).await?;
    crate::cache::rows_deleted(&db, M::SCHEMA, vec![key]).await;
    Ok(deleted)
}

/// Runs several row-returning statements in one transaction (a savepoint when already inside
/// one), so that a failure leaves nothing behind.
async fn run_atomically<M: Model, E: Executor>(mut db: E, op: &'static str, stmts: Vec<Statement>) -> Result<Vec<M>> {
    let mut tx = crate::db::begin_on(&mut db).await?;
    let mut out = Vec::new();
    for stmt in stmts {
        out.extend(exec::fetch_models::<M, _>(&mut &mut tx, op, stmt).await?);
    }
    crate::cache::rows_written(&&mut tx, &out).await;
    tx.commit().await?;
    Ok(out)
}
