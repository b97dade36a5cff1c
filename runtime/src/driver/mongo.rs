//! The MongoDB driver: operations are lowered to commands and pipelines by `crate::mongo` and
//! run through its execution point, which decodes documents through the models' positional
//! readers.

use super::{Capabilities, Driver, JOIN_WRITES};
use crate::crud::Keys;
use crate::db::Executor;
use crate::error::{Error, Result};
use crate::model::Model;
use crate::mongo::{Conn, cached, crud, query, select};
use crate::query::page::KnownKey;
use crate::query::{Assign, Columns, Page, PageRequest, Query, SelectItem};
use crate::schema::ModelSchema;
use crate::value::Value;

/// MongoDB.
pub(crate) struct Mongo;

impl Mongo {
    /// The store's name in errors.
    pub(crate) const STORE: &'static str = "mongodb";
}

/// The MongoDB connection of `db` (the driver only runs on MongoDB targets).
fn conn<E: Executor>(db: &mut E) -> Result<Conn<'_>> {
    crate::mongo::conn(db).ok_or(Error::Unsupported { store: "sql", what: "a MongoDB operation".into() })
}

impl Driver for Mongo {
    const CAPABILITIES: Capabilities = Capabilities {
        raw_sql: false,
        sql_transactions: false,
        savepoints: false,
        returning: true,
        join_table_writes: false,
    };

    async fn get<M: Model, E: Executor>(db: &mut E, key: Vec<Value>) -> Result<Option<M>> {
        crud::get::<M>(conn(db)?, key).await
    }

    async fn get_many<M: Model, E: Executor>(db: &mut E, keys: &[Vec<Value>]) -> Result<Vec<M>> {
        cached::get_many_by_values::<M>(conn(db)?, keys).await
    }

    async fn insert<M: Model, E: Executor>(db: &mut E, rows: &[M], keys: Keys, op: &'static str) -> Result<Vec<M>> {
        let rows = crud::insert_many(conn(db)?, rows, op, keys).await?;
        crate::cache::rows_written(&*db, &rows).await;
        Ok(rows)
    }

    async fn update<M: Model, E: Executor>(db: &mut E, row: &M) -> Result<M> {
        let row = match crud::update(conn(db)?, row).await {
            Err(Error::NotFound { .. }) if M::VERSION_FIELD.is_some() => {
                return Err(lost_write::<M, E>(db, row_version(row)?).await);
            }
            other => other?,
        };
        crate::cache::rows_written(&*db, std::slice::from_ref(&row)).await;
        Ok(row)
    }

    async fn update_fields<M: Model, E: Executor>(db: &mut E, key: Vec<Value>, sets: Vec<(usize, Value)>) -> Result<M> {
        let expected = M::VERSION_FIELD.and_then(|i| sets.iter().find(|(f, _)| *f == i)).map(|(_, v)| v.clone());
        let row = match crud::update_fields::<M>(conn(db)?, key.clone(), sets).await {
            Err(Error::NotFound { .. }) if expected.is_some() => {
                return Err(lost_write::<M, E>(db, Some(key).zip(expected)).await);
            }
            other => other?,
        };
        crate::cache::rows_written(&*db, std::slice::from_ref(&row)).await;
        Ok(row)
    }

    async fn upsert<M: Model, E: Executor>(db: &mut E, row: &M, conflict: &[usize]) -> Result<M> {
        let row = match crud::upsert(conn(db)?, row, conflict).await {
            // A versioned upsert whose filter (key and version) matched nothing tried to insert
            // a second document with the conflicting values: the row is there at another
            // version.
            Err(Error::UniqueViolation { .. }) if M::VERSION_FIELD.is_some() => {
                let (key, expected) = row_version(row)?.expect("versioned");
                let shown = if key.len() == 1 { key[0].clone() } else { Value::Array(key.clone()) };
                crate::cache::rows_changed(&*db, M::SCHEMA, Vec::new(), vec![(key, Vec::new())]).await;
                return Err(Error::StaleVersion {
                    model: M::SCHEMA.name,
                    key: shown,
                    expected: crate::version::as_i64(&expected),
                });
            }
            other => other?,
        };
        crate::cache::rows_written(&*db, std::slice::from_ref(&row)).await;
        Ok(row)
    }

    async fn delete_key<M: Model, E: Executor>(db: &mut E, key: Vec<Value>, expected: Option<Value>) -> Result<u64> {
        let versioned = M::VERSION_FIELD.and(expected.clone());
        let deleted = crud::delete_key::<M>(conn(db)?, key.clone(), expected).await?;
        if deleted == 0
            && let Some(expected) = versioned
        {
            return Err(lost_write::<M, E>(db, Some((key, expected))).await);
        }
        crate::cache::rows_deleted(&*db, M::SCHEMA, vec![key]).await;
        Ok(deleted)
    }

    async fn all<M: Model, E: Executor>(db: &mut E, q: &Query<M>) -> Result<Vec<M>> {
        query::all(conn(db)?, q).await
    }

    async fn first<M: Model, E: Executor>(db: &mut E, q: Query<M>) -> Result<Option<M>> {
        query::first(conn(db)?, q).await
    }

    async fn one<M: Model, E: Executor>(db: &mut E, q: Query<M>) -> Result<M> {
        query::one(conn(db)?, q).await
    }

    async fn count<M: Model, E: Executor>(db: &mut E, q: &Query<M>) -> Result<i64> {
        query::count(conn(db)?, q).await
    }

    async fn exists<M: Model, E: Executor>(db: &mut E, q: &Query<M>) -> Result<bool> {
        query::exists(conn(db)?, q).await
    }

    fn stream<M: Model, E: Executor>(db: E, q: Query<M>) -> impl futures_util::Stream<Item = Result<M>> + Send {
        query::stream(db, q)
    }

    async fn update_many<M: Model, E: Executor>(db: &mut E, q: &Query<M>, mut list: Vec<Assign>) -> Result<u64> {
        crate::version::bulk_bump::<M>(&mut list);
        cached::update_many(db, q, list).await
    }

    async fn claim<M: Model, E: Executor>(db: &mut E, q: &Query<M>, n: u64, mut list: Vec<Assign>) -> Result<Vec<M>> {
        crate::version::bulk_bump::<M>(&mut list);
        let mut claimed = Vec::new();
        for _ in 0..n {
            match query::claim_one::<M>(&mut conn(db)?, q, list.clone()).await {
                Ok(Some(row)) => claimed.push(row),
                Ok(None) => break,
                Err(e) if claimed.is_empty() => return Err(e),
                // The rows claimed so far are the caller's now: hand them over; the failure
                // shows again on the next claim.
                Err(e) => {
                    tracing::warn!(target: "polystore::claim", error = %e, "claim stopped early");
                    break;
                }
            }
        }
        crate::cache::rows_written(&*db, &claimed).await;
        Ok(claimed)
    }

    async fn delete_many<M: Model, E: Executor>(db: &mut E, q: &Query<M>) -> Result<u64> {
        cached::delete_many(db, q).await
    }

    async fn select<M: Model, E: Executor, T: Send>(
        db: &mut E,
        q: &Query<M>,
        items: &[SelectItem],
        decode: impl FnMut(&mut Columns<'_>) -> Result<T> + Send,
    ) -> Result<Vec<T>> {
        select::fetch(conn(db)?, q, items, decode).await
    }

    async fn link<E: Executor>(db: &mut E, join: &'static ModelSchema, pair: [(usize, Value); 2]) -> Result<()> {
        let _ = (join, pair);
        Err(super::refuse(&db.target().0, "`link`", JOIN_WRITES))
    }

    async fn unlink<E: Executor>(db: &mut E, join: &'static ModelSchema, pair: [(usize, Value); 2]) -> Result<bool> {
        let _ = (join, pair);
        Err(super::refuse(&db.target().0, "`unlink`", JOIN_WRITES))
    }

    async fn traverse<M: Model, E: Executor>(
        db: &mut E,
        links: crate::relation::TreeLinks,
        direction: crate::relation::Direction,
        start: Value,
        max_depth: u32,
    ) -> Result<Vec<M>> {
        select::tree::all(conn(db)?, links, direction, start, max_depth).await
    }

    async fn paginate<M: Model, E: Executor>(
        db: &mut E,
        q: Query<M>,
        request: PageRequest,
        known: Option<&KnownKey>,
    ) -> Result<Page<M>> {
        query::paginate(conn(db)?, q, request, known).await
    }
}

/// A versioned row's key and the version it holds; `None` for an unversioned model.
fn row_version<M: Model>(row: &M) -> Result<Option<(Vec<Value>, Value)>> {
    let Some(i) = M::VERSION_FIELD else { return Ok(None) };
    let values = row.to_values()?;
    let key = M::SCHEMA.key_of(&values);
    Ok(Some((key, values[i].clone())))
}

/// The error of a versioned write whose filter matched nothing: [`Error::StaleVersion`] when
/// the key is still there, [`Error::NotFound`] otherwise.
async fn lost_write<M: Model, E: Executor>(db: &mut E, versioned: Option<(Vec<Value>, Value)>) -> Error {
    let Some((key, expected)) = versioned else {
        return Error::NotFound { model: M::SCHEMA.name };
    };
    let found = match conn(db) {
        Ok(c) => crud::get::<M>(c, key.clone()).await,
        Err(e) => return e,
    };
    match found {
        Ok(found) => crate::version::lost(&*db, M::SCHEMA, key, &expected, found.is_some()).await,
        Err(e) => e,
    }
}
