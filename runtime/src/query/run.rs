//! The terminals that run a [`Query`] on any store (through `crate::driver`): reads (`all`, `first`, `one`, `count`,
//! `exists`, `stream`) and the bulk writes that share its filter (`update_many`,
//! `delete_many`).

use futures_util::Stream;

use crate::db::Executor;
use crate::driver::{Driver as _, Operation, dispatch};
use crate::error::{Error, Result};
use crate::model::Model;
use crate::query::{Assign, Assignment, Query};

impl<M: Model> Query<M> {
    /// All matching rows, in the query's order, with the relations of [`Query::with`] loaded.
    pub async fn all<E: Executor>(self, mut db: E) -> Result<Vec<M>> {
        self.all_on(&mut db).await
    }

    /// [`Query::all`] on any executor. The terminals run on `&mut dyn Executor`, so that what
    /// they instantiate (the driver's operation, decoding, relation loading) is compiled once
    /// per model rather than once per model and executor type; only the one-line public
    /// wrappers are per executor type.
    async fn all_on(mut self, db: &mut dyn Executor) -> Result<Vec<M>> {
        let with = std::mem::take(&mut self.with);
        // The query and its relation loads share one pooled connection.
        let mut db = crate::driver::pin(db, !with.is_empty()).await?;
        let mut rows = self.fetch_all(&mut db).await?;
        crate::relation::load_all(&mut rows, &with, &mut db).await?;
        Ok(rows)
    }

    /// The matching rows, without loading relations ([`Query::with`] is ignored): what
    /// [`Query::all`] reads, and how relation loads read related rows.
    pub(crate) async fn fetch_all(self, mut db: &mut dyn Executor) -> Result<Vec<M>> {
        let db = &mut db;
        let op = Operation::read("select", M::SCHEMA, self.filter.as_ref());
        dispatch!(db, op, D => D::all(db, &self).await)
    }

    /// The first matching row (in the query's order), if any, with its relations loaded.
    pub async fn first<E: Executor>(self, mut db: E) -> Result<Option<M>> {
        self.first_on(&mut db).await
    }

    /// [`Query::first`] on any executor (see [`Query::all_on`]).
    async fn first_on(mut self, db: &mut dyn Executor) -> Result<Option<M>> {
        let with = std::mem::take(&mut self.with);
        // The query and its relation loads share one pooled connection.
        let mut db = crate::driver::pin(db, !with.is_empty()).await?;
        let mut rows = self.fetch_first(&mut db).await?.into_iter().collect::<Vec<_>>();
        crate::relation::load_all(&mut rows, &with, &mut db).await?;
        Ok(rows.pop())
    }

    async fn fetch_first(self, mut db: &mut dyn Executor) -> Result<Option<M>> {
        let db = &mut db;
        let op = Operation::read("select", M::SCHEMA, self.filter.as_ref());
        dispatch!(db, op, D => D::first(db, self).await)
    }

    /// The only matching row: [`Error::NotExactlyOne`] when there is none (`found: 0`) or more
    /// than one (`found: 2`). Reads at most two rows; loads the relations of [`Query::with`].
    pub async fn one<E: Executor>(self, mut db: E) -> Result<M> {
        self.one_on(&mut db).await
    }

    /// [`Query::one`] on any executor (see [`Query::all_on`]).
    async fn one_on(mut self, db: &mut dyn Executor) -> Result<M> {
        let with = std::mem::take(&mut self.with);
        // The query and its relation loads share one pooled connection.
        let mut db = crate::driver::pin(db, !with.is_empty()).await?;
        let mut row = vec![self.fetch_one(&mut db).await?];
        crate::relation::load_all(&mut row, &with, &mut db).await?;
        Ok(row.remove(0))
    }

    async fn fetch_one(self, mut db: &mut dyn Executor) -> Result<M> {
        let db = &mut db;
        let op = Operation::read("select", M::SCHEMA, self.filter.as_ref());
        dispatch!(db, op, D => D::one(db, self).await)
    }

    /// The number of matching rows (ignoring the query's order, limit and offset), as an `i64`
    /// — the same type as [`count_all`](crate::query::count_all) and `Field::count` in a
    /// `select`, and what every store's `COUNT` returns.
    pub async fn count<E: Executor>(self, mut db: E) -> Result<i64> {
        let mut db: &mut dyn Executor = &mut db;
        let db = &mut db;
        dispatch!(db, Operation::read("count", M::SCHEMA, self.filter.as_ref()), D => D::count(db, &self).await)
    }

    /// Whether any row matches (`SELECT 1 ... LIMIT 1`).
    pub async fn exists<E: Executor>(self, mut db: E) -> Result<bool> {
        let mut db: &mut dyn Executor = &mut db;
        let db = &mut db;
        dispatch!(db, Operation::read("exists", M::SCHEMA, self.filter.as_ref()), D => D::exists(db, &self).await)
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
    pub fn stream<E: Executor>(self, db: E) -> impl Stream<Item = Result<M>> + Send {
        crate::driver::stream(db, self)
    }

    /// Applies `assignments` to every matching row in one UPDATE and returns how many rows
    /// changed. `updated_at` fields are set to now unless assigned explicitly. Without a
    /// filter, every row is updated.
    ///
    /// A bulk update does not read the rows it changes, so it cannot run lifecycle hooks: on
    /// a model with `#[model(hooks)]` it is [`Error::Config`]; update the rows one by one, or
    /// use [`Query::update_many_without_hooks`] to skip the hooks on purpose.
    pub async fn update_many<E: Executor>(
        self,
        db: E,
        assignments: impl IntoIterator<Item = Assignment<M>>,
    ) -> Result<u64> {
        if M::HAS_HOOKS {
            return Err(crate::hooks::refused::<M>(
                "update_many",
                "update the rows one by one (`update`, patch DTOs), or call `update_many_without_hooks` to skip the hooks",
            ));
        }
        self.update_many_without_hooks(db, assignments).await
    }

    /// [`Query::update_many`] without the model's lifecycle hooks, also on a model that has
    /// them: the explicit way to bulk-update such a model.
    pub async fn update_many_without_hooks<E: Executor>(
        self,
        mut db: E,
        assignments: impl IntoIterator<Item = Assignment<M>>,
    ) -> Result<u64> {
        let mut list: Vec<Assign> = Vec::new();
        for a in assignments {
            list.push(a.assign.map_err(|source| Error::Encode { model: M::SCHEMA.name, field: "?", source })?);
        }
        let mut db: &mut dyn Executor = &mut db;
        let db = &mut db;
        let op = Operation::write("update_many", M::SCHEMA, self.filter.as_ref());
        dispatch!(db, op, D => D::update_many(db, &self, list).await)
    }

    /// Deletes every matching row in one DELETE and returns how many there were. Without a
    /// filter, every row is deleted.
    ///
    /// On a `#[model(soft_delete)]` model this soft-deletes instead: one UPDATE sets the stamp
    /// of every matching *live* row to now and returns how many it stamped (a row already
    /// soft-deleted keeps its deletion time, so `only_deleted().delete_many(..)` stamps
    /// nothing). [`Query::force_delete_many`] removes rows for good.
    ///
    /// On a model with `#[model(hooks)]` it is [`Error::Config`] (a bulk delete does not read
    /// the rows it deletes): delete the rows one by one, or use
    /// [`Query::delete_many_without_hooks`] to skip the hooks on purpose.
    pub async fn delete_many<E: Executor>(self, db: E) -> Result<u64> {
        if M::HAS_HOOKS {
            return Err(crate::hooks::refused::<M>(
                "delete_many",
                "delete the rows one by one (`delete`, `delete_by_key`), or call `delete_many_without_hooks` to skip the hooks",
            ));
        }
        self.delete_many_without_hooks(db).await
    }

    /// [`Query::delete_many`] without the model's lifecycle hooks, also on a model that has
    /// them: the explicit way to bulk-delete such a model.
    pub async fn delete_many_without_hooks<E: Executor>(mut self, mut db: E) -> Result<u64> {
        let mut db: &mut dyn Executor = &mut db;
        let db = &mut db;
        if let Some(stamp) = M::SCHEMA.soft_delete {
            if self.rows == crate::soft_delete::Rows::OnlyDeleted {
                return Ok(0);
            }
            self.rows = crate::soft_delete::Rows::Live;
            let list = vec![Assign::Set { field: stamp, value: crate::value::Value::TimestampTz(chrono::Utc::now()) }];
            let op = Operation::write("delete_many", M::SCHEMA, self.filter.as_ref());
            return dispatch!(db, op, D => D::update_many(db, &self, list).await);
        }
        let op = Operation::write("delete_many", M::SCHEMA, self.filter.as_ref());
        dispatch!(db, op, D => D::delete_many(db, &self).await)
    }

    /// Deletes every matching row for good, in one DELETE, and returns how many there were.
    /// On a `#[model(soft_delete)]` model the query's row mode applies as for reads: live rows
    /// by default, `only_deleted()` to purge soft-deleted rows, `with_deleted()` for both. On
    /// other models it is [`Query::delete_many`].
    ///
    /// On a model with `#[model(hooks)]` it is [`Error::Config`], as for [`Query::delete_many`].
    pub async fn force_delete_many<E: Executor>(self, mut db: E) -> Result<u64> {
        if M::HAS_HOOKS {
            return Err(crate::hooks::refused::<M>(
                "force_delete_many",
                "force-delete the rows one by one (`force_delete`, `force_delete_by_key`)",
            ));
        }
        let mut db: &mut dyn Executor = &mut db;
        let db = &mut db;
        let op = Operation::write("delete_many", M::SCHEMA, self.filter.as_ref());
        dispatch!(db, op, D => D::delete_many(db, &self).await)
    }

    /// Brings back every matching soft-deleted row (clears its stamp, bumping `updated_at` and
    /// the version, if any) in one UPDATE and returns how many it restored; live rows are left
    /// alone whatever the row mode. One restored row taking a unique value a live row holds
    /// fails the whole statement with [`Error::UniqueViolation`] and restores nothing.
    /// [`Error::Config`] on a model without a `#[model(soft_delete)]` field, and on a model
    /// with `#[model(hooks)]` (a bulk update runs no hooks): restore those rows one by one.
    pub async fn restore_many<E: Executor>(mut self, mut db: E) -> Result<u64> {
        if M::HAS_HOOKS {
            return Err(crate::hooks::refused::<M>(
                "restore_many",
                "restore the rows one by one (`restore`, `restore_by_key`)",
            ));
        }
        let Some(stamp) = M::SCHEMA.soft_delete else {
            return Err(Error::Config(format!(
                "{}: restore_many needs a #[model(soft_delete)] field; the model has none",
                M::SCHEMA.name
            )));
        };
        self.rows = crate::soft_delete::Rows::OnlyDeleted;
        let mut db: &mut dyn Executor = &mut db;
        let db = &mut db;
        let op = Operation::write("restore", M::SCHEMA, self.filter.as_ref());
        dispatch!(db, op, D => D::update_many(db, &self, vec![Assign::SetNull { field: stamp }]).await)
    }
}
