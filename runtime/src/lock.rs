//! Pessimistic locking: locking reads inside a SQL transaction ([`Query::for_update`],
//! [`Query::for_share`], with [`Locked::skip_locked`] or [`Locked::nowait`]), and the
//! work-queue helper [`Query::claim`] on every store.
//!
//! A locked query runs only on a transaction: its terminals take `&mut Tx`, so locking rows
//! that would be released at once (on a pooled connection outside a transaction) does not
//! compile. The statement is the query's own `SELECT`, lowered as for [`Query::all`], with the
//! dialect's lock clause appended (`FOR UPDATE SKIP LOCKED` on PostgreSQL). SQLite has no row
//! locks — a transaction that writes holds the one database-wide write lock — so a locking
//! read there first takes that lock (a write that changes nothing), which waits like any
//! SQLite writer (the connection's busy timeout, or not at all with `nowait`).

use crate::db::Executor;
use crate::driver::{Driver as _, Operation, dispatch};
use crate::error::{Error, Result};
use crate::model::Model;
use crate::query::{Assign, Assignment, Query};

/// How strong a row lock is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockStrength {
    /// `FOR UPDATE`: other transactions can neither lock nor change the rows until this one
    /// ends.
    Update,
    /// `FOR SHARE`: other transactions can share-lock the rows but not change them.
    Share,
}

/// What a locking read does about rows another transaction has locked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockWait {
    /// Wait until they are released.
    Wait,
    /// Leave them out of the result (`SKIP LOCKED`): the work-queue pattern.
    SkipLocked,
    /// Fail at once (`NOWAIT`) with a [transient](crate::ErrorClass::Transient) error.
    NoWait,
}

/// A row lock: its strength and what to do about rows locked elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowLock {
    /// The lock's strength.
    pub strength: LockStrength,
    /// What to do about rows another transaction holds.
    pub wait: LockWait,
}

/// A query whose rows are locked as they are read, until the transaction it runs in ends
/// (built by [`Query::for_update`] / [`Query::for_share`]). Its terminals take `&mut Tx`.
///
/// ```
/// use polystore::prelude::*;
/// #[derive(Model)]
/// struct Account { #[model(primary_key)] id: i64, balance: i64 }
/// # async fn run(db: &Db) -> polystore::Result<()> {
/// let mut tx = db.begin().await?;
/// let mut acc = Account::query().filter(Account::ID.eq(7)).for_update().one(&mut tx).await?;
/// acc.balance -= 10; // no other transaction can change the row meanwhile
/// acc.update(&mut tx).await?;
/// tx.commit().await?;
/// # Ok(()) }
/// ```
///
/// Outside a transaction it does not compile:
///
/// ```compile_fail
/// use polystore::prelude::*;
/// #[derive(Model)]
/// struct Account { #[model(primary_key)] id: i64, balance: i64 }
/// # async fn run(db: &Db) -> polystore::Result<()> {
/// let acc = Account::query().for_update().all(db).await?;
/// # Ok(()) }
/// ```
#[cfg(any(feature = "postgres", feature = "sqlite"))]
#[must_use = "a locked query does nothing until a terminal (`all`, `first`, `one`) runs it on a transaction"]
pub struct Locked<M> {
    query: Query<M>,
    lock: RowLock,
}

/// An executor that is a SQL transaction: what the terminals of a [`Locked`] query take, so
/// that a locking read outside a transaction does not compile.
#[diagnostic::on_unimplemented(
    message = "row locks need a transaction: `{Self}` is not one",
    label = "a locking read runs on `&mut tx`",
    note = "start one with `let mut tx = db.begin().await?;`, pass `&mut tx`, and commit when done: the locks last until then"
)]
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub trait InTransaction: Executor {}

#[cfg(any(feature = "postgres", feature = "sqlite"))]
impl InTransaction for &mut crate::db::Tx<'_> {}

#[cfg(any(feature = "postgres", feature = "sqlite"))]
impl<M> std::fmt::Debug for Locked<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Locked").field("lock", &self.lock).finish_non_exhaustive()
    }
}

impl<M: Model> Query<M> {
    /// Locks the matching rows against changes and other locks until the transaction ends
    /// (`SELECT … FOR UPDATE`). See [`Locked`].
    #[cfg(any(feature = "postgres", feature = "sqlite"))]
    pub fn for_update(self) -> Locked<M> {
        Locked { query: self, lock: RowLock { strength: LockStrength::Update, wait: LockWait::Wait } }
    }

    /// Locks the matching rows against changes until the transaction ends, letting other
    /// transactions share the lock (`SELECT … FOR SHARE`). On SQLite it takes the database's
    /// write lock, as [`Query::for_update`] does. See [`Locked`].
    #[cfg(any(feature = "postgres", feature = "sqlite"))]
    pub fn for_share(self) -> Locked<M> {
        Locked { query: self, lock: RowLock { strength: LockStrength::Share, wait: LockWait::Wait } }
    }

    /// Claims up to `n` matching rows for one worker and returns them as changed by
    /// `assignments` — the work-queue pattern. Rows come in the query's order; two workers
    /// never claim the same row, however many run at once.
    ///
    /// `assignments` must take a claimed row out of the query's filter (set a `status`, a
    /// `claimed_by`), or a later claim picks it again.
    ///
    /// - PostgreSQL: in one transaction (a savepoint inside one), the rows are read
    ///   `FOR UPDATE SKIP LOCKED` — rows another worker is claiming are passed over, not waited
    ///   for — then updated, then read back.
    /// - SQLite: the same transaction, after taking the database's write lock: claims run one
    ///   at a time (each waits for the previous, within the busy timeout).
    /// - MongoDB: one `findAndModify` per row (up to `n`), each atomic: a document is changed
    ///   only if it still matches when the server writes it. The query's order is kept, but
    ///   `nulls_first`/`nulls_last` placement is MongoDB's own here.
    ///
    /// Bulk write rules apply: automatic `updated_at` stamps, and a `#[model(version)]` goes
    /// up by one. Like the other bulk writes it cannot run lifecycle hooks: on a model with
    /// `#[model(hooks)]` it is [`Error::Config`].
    pub async fn claim<E: Executor>(
        self,
        mut db: E,
        n: u64,
        assignments: impl IntoIterator<Item = Assignment<M>>,
    ) -> Result<Vec<M>> {
        if M::HAS_HOOKS {
            return Err(crate::hooks::refused::<M>(
                "claim",
                "claim rows of a model without hooks (e.g. a separate queue model)",
            ));
        }
        let mut list: Vec<Assign> = Vec::new();
        for a in assignments {
            list.push(a.assign.map_err(|source| Error::Encode { model: M::SCHEMA.name, field: "?", source })?);
        }
        if list.is_empty() {
            return Err(Error::Config(format!(
                "{}: claim needs at least one assignment (one that takes a claimed row out of the filter)",
                M::SCHEMA.name
            )));
        }
        if n == 0 {
            return Ok(Vec::new());
        }
        let db = &mut db;
        let op = Operation::write("claim", M::SCHEMA, self.filter.as_ref());
        dispatch!(db, op, D => D::claim(db, &self, n, list).await)
    }
}

#[cfg(any(feature = "postgres", feature = "sqlite"))]
impl<M: Model> Locked<M> {
    /// Leaves rows another transaction has locked out of the result instead of waiting for
    /// them (`SKIP LOCKED`). On SQLite nothing is ever locked row by row: the read waits for
    /// the database's write lock, then sees every matching row.
    pub fn skip_locked(mut self) -> Self {
        self.lock.wait = LockWait::SkipLocked;
        self
    }

    /// Fails at once, with a [transient](crate::ErrorClass::Transient) error, when a row (on
    /// SQLite: the database's write lock) is held by another transaction (`NOWAIT`).
    pub fn nowait(mut self) -> Self {
        self.lock.wait = LockWait::NoWait;
        self
    }

    /// The lock this query takes.
    pub fn lock(&self) -> RowLock {
        self.lock
    }

    /// All matching rows, locked, with the relations of [`Query::with`] loaded (those are
    /// not locked).
    pub async fn all<T: InTransaction>(mut self, mut tx: T) -> Result<Vec<M>> {
        let with = std::mem::take(&mut self.query.with);
        let db = &mut tx;
        let mut rows = crate::driver::sql::locked::<M, _>(db, &self.query, self.lock).await?;
        crate::relation::load_all(&mut rows, &with, db).await?;
        Ok(rows)
    }

    /// The first matching row, locked.
    pub async fn first<T: InTransaction>(mut self, tx: T) -> Result<Option<M>> {
        self.query = self.query.limit(1);
        Ok(self.all(tx).await?.pop())
    }

    /// The only matching row, locked: [`Error::NotExactlyOne`] when there is none or more
    /// than one.
    pub async fn one<T: InTransaction>(mut self, tx: T) -> Result<M> {
        let limit = self.query.limit.map_or(2, |n| n.min(2));
        self.query = self.query.limit(limit);
        let mut rows = self.all(tx).await?;
        match rows.len() {
            1 => Ok(rows.remove(0)),
            n => Err(Error::NotExactlyOne { model: M::SCHEMA.name, found: n as u64 }),
        }
    }
}
