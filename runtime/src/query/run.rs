//! The terminals that run a [`Query`] on a SQL store: reads (`all`, `first`, `one`, `count`,
//! `exists`, `stream`) and the bulk writes that share its filter (`update_many`,
//! `delete_many`).

use futures_util::Stream;

use crate::db::Executor;
use crate::error::{Error, Result};
use crate::exec;
use crate::model::Model;
use crate::query::{Assign, Assignment, Query};
use crate::sql::{Dialect, build, lower as sql};

/// The SQL dialect of whatever `db` is.
pub(crate) fn dialect<E: Executor>(db: &mut E) -> &'static dyn Dialect {
    db.target().0.dialect()
}

impl<M: Model> Query<M> {
    /// All matching rows, in the query's order, with the relations of [`Query::with`] loaded.
    pub async fn all<E: Executor>(mut self, db: E) -> Result<Vec<M>> {
        let with = std::mem::take(&mut self.with);
        // The query and its relation loads share one pooled connection.
        let mut db = exec::pin(db, !with.is_empty()).await?;
        let mut rows = self.fetch_all(&mut db).await?;
        crate::relation::load_all(&mut rows, &with, &mut db).await?;
        Ok(rows)
    }

    async fn fetch_all<E: Executor>(self, db: &mut E) -> Result<Vec<M>> {
        #[cfg(feature = "mongodb")]
        if let Some(conn) = crate::mongo::conn(db) {
            return crate::mongo::query::all(conn, &self).await;
        }
        let stmt = sql::select(dialect(db), M::SCHEMA, &self)?;
        exec::fetch_models(db, "select", stmt).await
    }

    /// The first matching row (in the query's order), if any, with its relations loaded.
    pub async fn first<E: Executor>(mut self, db: E) -> Result<Option<M>> {
        let with = std::mem::take(&mut self.with);
        // The query and its relation loads share one pooled connection.
        let mut db = exec::pin(db, !with.is_empty()).await?;
        let mut rows = self.fetch_first(&mut db).await?.into_iter().collect::<Vec<_>>();
        crate::relation::load_all(&mut rows, &with, &mut db).await?;
        Ok(rows.pop())
    }

    async fn fetch_first<E: Executor>(self, db: &mut E) -> Result<Option<M>> {
        #[cfg(feature = "mongodb")]
        if let Some(conn) = crate::mongo::conn(db) {
            return crate::mongo::query::first(conn, self).await;
        }
        let stmt = sql::select(dialect(db), M::SCHEMA, &self.limit(1))?;
        exec::fetch_optional_model(db, "select", stmt).await
    }

    /// The only matching row: [`Error::NotExactlyOne`] when there is none (`found: 0`) or more
    /// than one (`found: 2`). Reads at most two rows; loads the relations of [`Query::with`].
    pub async fn one<E: Executor>(mut self, db: E) -> Result<M> {
        let with = std::mem::take(&mut self.with);
        // The query and its relation loads share one pooled connection.
        let mut db = exec::pin(db, !with.is_empty()).await?;
        let mut row = vec![self.fetch_one(&mut db).await?];
        crate::relation::load_all(&mut row, &with, &mut db).await?;
        Ok(row.remove(0))
    }

    async fn fetch_one<E: Executor>(self, db: &mut E) -> Result<M> {
        #[cfg(feature = "mongodb")]
        if let Some(conn) = crate::mongo::conn(db) {
            return crate::mongo::query::one(conn, self).await;
        }
        let limit = self.limit.map_or(2, |n| n.min(2));
        let stmt = sql::select(dialect(db), M::SCHEMA, &self.limit(limit))?;
        let mut rows: Vec<M> = exec::fetch_models(db, "select", stmt).await?;
        match rows.len() {
            1 => Ok(rows.remove(0)),
            n => Err(Error::NotExactlyOne { model: M::SCHEMA.name, found: n as u64 }),
        }
    }

    /// The number of matching rows (ignoring the query's order, limit and offset), as an `i64`
    /// — the same type as [`count_all`](crate::query::count_all) and `Field::count` in a
    /// `select`, and what every store's `COUNT` returns.
    pub async fn count<E: Executor>(self, mut db: E) -> Result<i64> {
        #[cfg(feature = "mongodb")]
        if let Some(conn) = crate::mongo::conn(&mut db) {
            return crate::mongo::query::count(conn, &self).await;
        }
        let stmt = sql::count(dialect(&mut db), M::SCHEMA, &self)?;
        exec::fetch_i64(&mut db, "count", M::SCHEMA, stmt).await
    }

    /// Whether any row matches (`SELECT 1 ... LIMIT 1`).
    pub async fn exists<E: Executor>(self, mut db: E) -> Result<bool> {
        #[cfg(feature = "mongodb")]
        if let Some(conn) = crate::mongo::conn(&mut db) {
            return crate::mongo::query::exists(conn, &self).await;
        }
        let stmt = sql::exists(dialect(&mut db), M::SCHEMA, &self)?;
        let rows = exec::fetch_with(&mut db, "exists", Some(M::SCHEMA), stmt, |_| Ok(())).await?;
        Ok(!rows.is_empty())
    }

    /// The matching rows as a stream, decoded one at a time as the database sends them, so
    /// memory stays bounded however many rows match. The stream holds on to `db` (a `&Db`
    /// keeps one pooled connection, a `&mut Tx` its transaction) until it is dropped or
    /// finished; the statement runs when the stream is first polled.
    ///
    /// With relations ([`Query::with`]) the rows are read by keyset pages of 500 instead
    /// ([`Query::paginate`]: ordered by the query's order plus the primary key) and each
    /// page's relations are loaded in one batched query per relation level, so memory stays
    /// bounded by a page and its relations, and no cursor stays open while they load.
    ///
    /// ```no_run
    /// # use polystore::prelude::*;
    /// # async fn f<M: Model + std::fmt::Debug>(db: &Db) -> polystore::Result<()> {
    /// use futures_util::TryStreamExt as _;
    /// let mut rows = M::query().stream(db);
    /// while let Some(row) = rows.try_next().await? {
    ///     println!("{row:?}");
    /// }
    /// # Ok(()) }
    /// ```
    #[allow(clippy::let_and_return)] // without the `mongodb` feature
    pub fn stream<E: Executor>(self, mut db: E) -> impl Stream<Item = Result<M>> + Send {
        use futures_util::future::Either;
        if !self.with.is_empty() {
            return Either::Left(Box::pin(crate::query::page::stream_pages(db, self)));
        }
        #[cfg(feature = "mongodb")]
        if crate::mongo::conn(&mut db).is_some() {
            return Either::Right(Either::Left(Box::pin(crate::mongo::query::stream(db, self))));
        }
        let stmt = sql::select(dialect(&mut db), M::SCHEMA, &self);
        let rows = exec::stream_models::<M, E>(db, "stream", stmt);
        #[cfg(feature = "mongodb")]
        let rows = Either::Right(rows);
        Either::Right(rows)
    }

    /// Applies `assignments` to every matching row in one UPDATE and returns how many rows
    /// changed. `updated_at` fields are set to now unless assigned explicitly. Without a
    /// filter, every row is updated.
    pub async fn update_many<E: Executor>(
        self,
        mut db: E,
        assignments: impl IntoIterator<Item = Assignment<M>>,
    ) -> Result<u64> {
        let mut list: Vec<Assign> = Vec::new();
        for a in assignments {
            list.push(a.assign.map_err(|source| Error::Encode { model: M::SCHEMA.name, field: "?", source })?);
        }
        #[cfg(feature = "mongodb")]
        if crate::mongo::conn(&mut db).is_some() {
            return crate::mongo::cached::update_many(&mut db, &self, list).await;
        }
        let stamps = build::update_stamps(M::SCHEMA, chrono::Utc::now());
        if list.iter().any(|a| M::SCHEMA.is_key(a.field())) {
            // The old keys must be invalidated too: read first (see the cache's write hooks).
            return crate::cache::update_many_moving_keys(&mut db, &self, &list, stamps).await;
        }
        let stmt = sql::update_many(dialect(&mut db), M::SCHEMA, &self, &list, stamps)?;
        crate::cache::bulk_write(&mut db, "update_many", M::SCHEMA, stmt, crate::cache::Bulk::Update).await
    }

    /// Deletes every matching row in one DELETE and returns how many there were. Without a
    /// filter, every row is deleted.
    pub async fn delete_many<E: Executor>(self, mut db: E) -> Result<u64> {
        #[cfg(feature = "mongodb")]
        if crate::mongo::conn(&mut db).is_some() {
            return crate::mongo::cached::delete_many(&mut db, &self).await;
        }
        let stmt = sql::delete_many(dialect(&mut db), M::SCHEMA, &self)?;
        crate::cache::bulk_write(&mut db, "delete_many", M::SCHEMA, stmt, crate::cache::Bulk::Delete).await
    }
}
