//! The store seam: every operation polystore runs reaches a store through one [`Driver`].
//!
//! The typed layer (`crud`, `query`, `relation`, `cache`, `patch`) builds a store-neutral
//! operation — a [`Query`] with its filter tree, orderings and window, rows as positional
//! [`Value`]s, keys, assignments — and hands it, with the model's static
//! [`ModelSchema`](crate::schema::ModelSchema), to [`dispatch!`]. That macro is the one place
//! that asks which store an executor reaches: it first lets a routing executor
//! ([`Routed`]) pick the store an operation goes to, then calls the store's `Driver`, which
//! lowers the operation (SQL text through [`crate::sql`], commands through `crate::mongo`),
//! runs it through its execution point and decodes rows through the models' positional
//! readers ([`RowReader`](crate::RowReader)).
//!
//! - `sql`: PostgreSQL and SQLite (one driver, two dialects), behind the `postgres` /
//!   `sqlite` features;
//! - `mongo`: MongoDB, behind the `mongodb` feature;
//! - `route`: [`Router`], [`Routed`] and [`Operation`]: stores that wrap other stores.
//!
//! What a store cannot do at all is declared in its [`Capabilities`] and refused in one place,
//! [`require`], with [`Error::Unsupported`] naming the store and the alternative.

mod pin;
mod route;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub(crate) mod sql;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
mod sql_cache;

#[cfg(feature = "mongodb")]
pub(crate) mod mongo;
#[cfg(not(any(feature = "postgres", feature = "sqlite", feature = "mongodb")))]
pub(crate) mod none;

use std::future::Future;

pub(crate) use pin::pin;
pub use route::{OpKeys, OpKind, Operation, Routed, Router};

use crate::crud::Keys;
use crate::db::{Executor, Target};
use crate::error::{Error, Result};
use crate::model::Model;
use crate::query::page::KnownKey;
use crate::query::{Assign, Page, PageRequest, Query, SelectItem};
use crate::schema::ModelSchema;
use crate::value::Value;

/// What a store can do, declared by its driver and checked by [`require`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// Hand-written SQL (`raw`, `raw_rows`) and the statements of the migration runner.
    pub raw_sql: bool,
    /// Transactions started on any executor (`Db::begin`, and the writes that run several
    /// statements atomically). MongoDB has its own (`MongoStore::begin`).
    pub sql_transactions: bool,
    /// Savepoints: nested transactions.
    pub savepoints: bool,
    /// Writes that return the stored row in the same statement (`RETURNING`).
    pub returning: bool,
    /// Link and unlink rows of a many-to-many relation through its join table.
    pub join_table_writes: bool,
}

/// The matching rows of `q` as a stream holding `db` (see [`Query::stream`]): page by page
/// when relations are loaded or `db` routes operations (each page is then one routed read),
/// otherwise one statement or cursor of the store's driver. The stream is `Unpin`.
pub(crate) fn stream<M: Model, E: Executor>(
    mut db: E,
    q: Query<M>,
) -> impl futures_util::Stream<Item = Result<M>> + Send {
    use futures_util::future::Either;
    if !q.with.is_empty() || db.is_routed() {
        return Either::Left(Box::pin(crate::query::page::stream_pages(db, q)));
    }
    let kind = Kind::of(&mut db);
    #[cfg(all(any(feature = "postgres", feature = "sqlite"), feature = "mongodb"))]
    let rows = match kind {
        Kind::Sql => Either::Left(Box::pin(sql::Sql::stream(db, q))),
        Kind::Mongo => Either::Right(Box::pin(mongo::Mongo::stream(db, q))),
    };
    #[cfg(all(any(feature = "postgres", feature = "sqlite"), not(feature = "mongodb")))]
    let rows = {
        let Kind::Sql = kind;
        Box::pin(sql::Sql::stream(db, q))
    };
    #[cfg(all(not(any(feature = "postgres", feature = "sqlite")), feature = "mongodb"))]
    let rows = {
        let Kind::Mongo = kind;
        Box::pin(mongo::Mongo::stream(db, q))
    };
    #[cfg(not(any(feature = "postgres", feature = "sqlite", feature = "mongodb")))]
    let rows = {
        let Kind::NoStore = kind;
        Box::pin(none::NoStore::stream(db, q))
    };
    Either::Right(rows)
}

/// What to do instead of link/unlink on a store without join-table writes.
pub(crate) const JOIN_WRITES: &str = "insert or delete the join model's documents instead";

/// Which store an executor reaches, as far as dispatch cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// PostgreSQL or SQLite.
    #[cfg(any(feature = "postgres", feature = "sqlite"))]
    Sql,
    /// MongoDB.
    #[cfg(feature = "mongodb")]
    Mongo,
    /// No store is compiled in (no executor exists; operations type-check against
    /// [`none::NoStore`]).
    #[cfg(not(any(feature = "postgres", feature = "sqlite", feature = "mongodb")))]
    NoStore,
}

impl Kind {
    /// The store `db` reaches.
    #[inline]
    pub(crate) fn of<E: Executor + ?Sized>(db: &mut E) -> Kind {
        Kind::of_target(&db.target().0)
    }

    #[inline]
    pub(crate) fn of_target(target: &Target<'_>) -> Kind {
        match target {
            #[cfg(feature = "postgres")]
            Target::PgPool(_) | Target::PgConn(_) => Kind::Sql,
            #[cfg(feature = "sqlite")]
            Target::SqlitePool(_) | Target::SqliteConn(_) => Kind::Sql,
            #[cfg(feature = "mongodb")]
            Target::Mongo(_) => Kind::Mongo,
            #[cfg(not(any(feature = "postgres", feature = "sqlite", feature = "mongodb")))]
            Target::NoStore(never, _) => match *never {},
        }
    }

    /// The store's name (as in [`Error::Unsupported`]) and capabilities.
    pub(crate) fn describe(self, target: &Target<'_>) -> (&'static str, Capabilities) {
        let _ = target;
        match self {
            #[cfg(any(feature = "postgres", feature = "sqlite"))]
            Kind::Sql => (sql::Sql::store_name(target), sql::Sql::CAPABILITIES),
            #[cfg(feature = "mongodb")]
            Kind::Mongo => (mongo::Mongo::STORE, mongo::Mongo::CAPABILITIES),
            #[cfg(not(any(feature = "postgres", feature = "sqlite", feature = "mongodb")))]
            Kind::NoStore => ("none", none::NoStore::CAPABILITIES),
        }
    }
}

/// [`Error::Unsupported`] for `what` on the store `target` reaches; `instead` is the
/// alternative the error names.
pub(crate) fn refuse(target: &Target<'_>, what: &str, instead: &str) -> Error {
    let (store, _) = Kind::of_target(target).describe(target);
    Error::Unsupported { store, what: format!("{what}: {instead}") }
}

/// Refuses `what` with [`Error::Unsupported`] when the store `db` reaches lacks the
/// capability `has` reads; `instead` is the alternative the error names.
pub(crate) fn require<E: Executor + ?Sized>(
    db: &mut E,
    has: impl FnOnce(&Capabilities) -> bool,
    what: &str,
    instead: &str,
) -> Result<()> {
    let target = db.target().0;
    let (_, caps) = Kind::of_target(&target).describe(&target);
    if has(&caps) { Ok(()) } else { Err(refuse(&target, what, instead)) }
}

/// Runs `$body` with `$D` naming the driver of the store `$db` (a `&mut E` place) reaches,
/// after letting a routing executor pick that store for `$op` (an [`Operation`]): then `$db`
/// is rebound to the chosen `&mut &mut dyn Executor`. `$body` must evaluate to the same type
/// in every arm (await inside it).
macro_rules! dispatch {
    ($db:ident, $op:expr, $D:ident => $body:expr) => {{
        $crate::db::Executor::guard(&mut *$db, &$op)?;
        #[allow(unused_mut)]
        if let Some(mut routed) = $crate::db::Executor::routed(&mut *$db, &$op) {
            let $db = &mut routed;
            $crate::driver::on_store!($db, $D => $body)
        } else {
            $crate::driver::on_store!($db, $D => $body)
        }
    }};
}

/// `$body` with `$D` the driver of the store `$db` reaches (no routing).
macro_rules! on_store {
    ($db:ident, $D:ident => $body:expr) => {
        match $crate::driver::Kind::of(&mut *$db) {
            #[cfg(any(feature = "postgres", feature = "sqlite"))]
            $crate::driver::Kind::Sql => {
                #[allow(unused_imports)]
                use $crate::driver::sql::Sql as $D;
                $body
            }
            #[cfg(feature = "mongodb")]
            $crate::driver::Kind::Mongo => {
                #[allow(unused_imports)]
                use $crate::driver::mongo::Mongo as $D;
                $body
            }
            #[cfg(not(any(feature = "postgres", feature = "sqlite", feature = "mongodb")))]
            $crate::driver::Kind::NoStore => {
                #[allow(unused_imports)]
                use $crate::driver::none::NoStore as $D;
                $body
            }
        }
    };
}

pub(crate) use {dispatch, on_store};

/// One store's implementation of every operation of the typed layer. Each function receives
/// the executor the operation runs on (a pool, a transaction, a pinned connection), the
/// store-neutral operation and, through `M`, the model's static schema; it lowers, executes
/// and decodes. Cache upkeep after a write belongs to the driver's write path (it knows when a
/// write became visible: at once, or at a commit).
pub(crate) trait Driver {
    /// What the store can do.
    const CAPABILITIES: Capabilities;

    /// The row with primary-key values `key`.
    fn get<M: Model, E: Executor>(db: &mut E, key: Vec<Value>) -> impl Future<Output = Result<Option<M>>> + Send;

    /// The rows with the given primary-key values, in no particular order.
    fn get_many<M: Model, E: Executor>(db: &mut E, keys: &[Vec<Value>]) -> impl Future<Output = Result<Vec<M>>> + Send;

    /// Inserts `rows` (all or none), returning them as stored.
    fn insert<M: Model, E: Executor>(
        db: &mut E,
        rows: &[M],
        keys: Keys,
        op: &'static str,
    ) -> impl Future<Output = Result<Vec<M>>> + Send;

    /// Writes every field of `row` but its key to the row with its key.
    fn update<M: Model, E: Executor>(db: &mut E, row: &M) -> impl Future<Output = Result<M>> + Send;

    /// Writes the fields `sets` (position, value) to the row with primary-key values `key`.
    fn update_fields<M: Model, E: Executor>(
        db: &mut E,
        key: Vec<Value>,
        sets: Vec<(usize, Value)>,
    ) -> impl Future<Output = Result<M>> + Send;

    /// Inserts `row`, or updates the row that has its values in the fields `conflict`.
    fn upsert<M: Model, E: Executor>(db: &mut E, row: &M, conflict: &[usize])
    -> impl Future<Output = Result<M>> + Send;

    /// Deletes the row with primary-key values `key`; how many there were. With `expected` (a
    /// versioned model's version, see [`Model::VERSION_FIELD`]) only while the row is at that
    /// version: a row at another one is [`Error::StaleVersion`].
    fn delete_key<M: Model, E: Executor>(
        db: &mut E,
        key: Vec<Value>,
        expected: Option<Value>,
    ) -> impl Future<Output = Result<u64>> + Send;

    /// The rows `q` matches, in its order.
    fn all<M: Model, E: Executor>(db: &mut E, q: &Query<M>) -> impl Future<Output = Result<Vec<M>>> + Send;

    /// The first row `q` matches.
    fn first<M: Model, E: Executor>(db: &mut E, q: Query<M>) -> impl Future<Output = Result<Option<M>>> + Send;

    /// The only row `q` matches ([`Error::NotExactlyOne`] otherwise).
    fn one<M: Model, E: Executor>(db: &mut E, q: Query<M>) -> impl Future<Output = Result<M>> + Send;

    /// How many rows `q` matches.
    fn count<M: Model, E: Executor>(db: &mut E, q: &Query<M>) -> impl Future<Output = Result<i64>> + Send;

    /// Whether `q` matches a row.
    fn exists<M: Model, E: Executor>(db: &mut E, q: &Query<M>) -> impl Future<Output = Result<bool>> + Send;

    /// The rows `q` matches as a stream holding `db`.
    fn stream<M: Model, E: Executor>(db: E, q: Query<M>) -> impl futures_util::Stream<Item = Result<M>> + Send;

    /// Applies `list` to every row `q` matches.
    fn update_many<M: Model, E: Executor>(
        db: &mut E,
        q: &Query<M>,
        list: Vec<Assign>,
    ) -> impl Future<Output = Result<u64>> + Send;

    /// Claims up to `n` rows `q` matches for one worker, applying `list` to them, and returns
    /// them as changed; concurrent claims never return the same row (see [`Query::claim`]).
    fn claim<M: Model, E: Executor>(
        db: &mut E,
        q: &Query<M>,
        n: u64,
        list: Vec<Assign>,
    ) -> impl Future<Output = Result<Vec<M>>> + Send;

    /// Deletes every row `q` matches.
    fn delete_many<M: Model, E: Executor>(db: &mut E, q: &Query<M>) -> impl Future<Output = Result<u64>> + Send;

    /// The projection `items` of the rows `q` matches, each decoded by `decode`.
    fn select<M: Model, E: Executor, T: Send>(
        db: &mut E,
        q: &Query<M>,
        items: &[SelectItem],
        decode: impl FnMut(&mut crate::query::Columns<'_>) -> Result<T> + Send,
    ) -> impl Future<Output = Result<Vec<T>>> + Send;

    /// Inserts the join row holding `pair` (field position, value) into `join`.
    fn link<E: Executor>(
        db: &mut E,
        join: &'static ModelSchema,
        pair: [(usize, Value); 2],
    ) -> impl Future<Output = Result<()>> + Send;

    /// Deletes the join rows holding `pair` from `join`; whether there was one.
    fn unlink<E: Executor>(
        db: &mut E,
        join: &'static ModelSchema,
        pair: [(usize, Value); 2],
    ) -> impl Future<Output = Result<bool>> + Send;

    /// The rows reached from the row whose linking key is `start` along a self-relation,
    /// `max_depth` (≥ 1) links at most, nearest first.
    fn traverse<M: Model, E: Executor>(
        db: &mut E,
        links: crate::relation::TreeLinks,
        direction: crate::relation::Direction,
        start: Value,
        max_depth: u32,
    ) -> impl Future<Output = Result<Vec<M>>> + Send;

    /// One keyset page of `q`.
    fn paginate<M: Model, E: Executor>(
        db: &mut E,
        q: Query<M>,
        request: PageRequest,
        known: Option<&KnownKey>,
    ) -> impl Future<Output = Result<Page<M>>> + Send;
}
