//! MongoDB: the same models and typed queries on collections.
//!
//! [`MongoStore`] is an [`Executor`]: `user.insert(&mongo)`, `User::find(&mongo, key)` and
//! `User::query().filter(..).all(&mongo)` are the calls used with [`crate::Db`]. Each operation
//! checks its target first and, for MongoDB, runs the code in this module instead of SQL:
//!
//! - `bson`: values ↔ BSON, rows ↔ documents, the document reader;
//! - `filter`: the query's [`Node`](crate::query::Node) tree → filter, sort and window;
//! - `crud`: insert / find / update / upsert / delete, generated keys from a counters collection;
//! - `query`: the query terminals, bulk updates and deletes, keyset pagination;
//! - `relation_filter`: relation filters (`any`, `all`, `none`, …) by key pre-queries;
//! - `select`: projections and aggregates (`query.select(..)`) as pipelines;
//! - `indexes`, `validator`: `createIndexes` and the `$jsonSchema` validator from the schema;
//! - `pipeline`: the typed aggregation pipeline builder;
//! - `exec`: the one execution point every command passes through (span, counter, errors).
//!
//! See `docs/mongodb.md` for the mapping and where MongoDB and the SQL stores differ.

mod bson;
pub(crate) mod cached;
mod calc;
pub(crate) mod crud;
mod exec;
mod filter;
mod indexes;
mod pipeline;
pub(crate) mod query;
mod relation_filter;
pub(crate) mod select;
mod shard;
#[cfg(test)]
mod tests;
mod validator;

use std::sync::Arc;

use mongodb::ClientSession;
use mongodb::bson::{Document, doc};

use crate::cache::{Cache, CacheScope, Pending};
use crate::db::{Executor, Stats, Target};
use crate::error::{Error, Result};
use crate::schema::ModelSchema;

/// The MongoDB driver polystore is built on, for code that needs the driver's or BSON's types
/// (`polystore::mongo::driver::bson::doc!`) at the same version.
pub use mongodb as driver;

pub use indexes::index_specs;
pub use pipeline::{Accumulator, Pipeline, Stage};
pub use shard::{is_sharded_reply, shard_commands, shard_key, sharded_index_specs};
pub use validator::json_schema;

/// The collection polystore keeps its generated-key counters in: one document per model,
/// `{ _id: <collection>, seq: <last key handed out> }`.
pub const COUNTERS_COLLECTION: &str = "polystore_counters";

/// Decodes a document (as the server sends it: `_id` holding the key) into a model, e.g. one
/// read with the driver directly. Errors name the model and the field.
pub fn from_document<M: crate::Model>(doc: &mongodb::bson::RawDocument) -> Result<M> {
    crud::decode(doc)
}

/// The document polystore stores for `row` (the key as `_id`, every other field under its
/// column). Automatic timestamps and generated keys are taken as they are in `row`.
pub fn to_document<M: crate::Model>(row: &M) -> Result<Document> {
    bson::to_document(M::SCHEMA, row.to_values()?)
}

/// [`to_document`], serialized: the BSON bytes `insert` sends for `row`.
pub fn to_raw_document<M: crate::Model>(row: &M) -> Result<mongodb::bson::RawDocumentBuf> {
    bson::to_raw_document(M::SCHEMA, &row.to_values()?)
}

/// The filter document `query`'s conditions become on MongoDB: what its `find`, `count` or
/// `delete_many` sends, the soft-delete condition included (e.g. `is_in` gives
/// `{ field: { $in: [..] } }`). For logging a query, or comparing it with a hand-written one.
/// Relation filters (`has`, `in_query`, `exists`) are resolved against the database when the
/// query runs, so here they are an error.
pub fn filter_document<M: crate::Model>(query: &crate::Query<M>) -> Result<Document> {
    filter::filter(M::SCHEMA, query.where_node(M::SCHEMA).as_deref())
}

/// A handle to one MongoDB database: a driver client (itself a connection pool) plus counters,
/// and optionally a [`Cache`] ([`MongoStore::with_cache`]). Cheap to clone; clones share the
/// client and the counters.
#[derive(Debug, Clone)]
pub struct MongoStore {
    client: mongodb::Client,
    db: mongodb::Database,
    stats: Arc<Stats>,
    cache: Option<Cache>,
    /// The causal clock of [`MongoStore::with_causal_consistency`], shared by clones.
    causal: Option<Arc<CausalClock>>,
}

/// The highest `operationTime` a causally consistent handle has seen: its reads carry it as
/// `readConcern.afterClusterTime`.
#[derive(Debug, Default)]
pub(crate) struct CausalClock(std::sync::Mutex<Option<mongodb::bson::Timestamp>>);

impl CausalClock {
    /// Raises the clock to `t` (never lowers it).
    pub(crate) fn observe(&self, t: Option<mongodb::bson::Timestamp>) {
        let Some(t) = t else { return };
        let mut now = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if now.is_none_or(|n| (n.time, n.increment) < (t.time, t.increment)) {
            *now = Some(t);
        }
    }

    /// The time reads must follow, if any write was seen.
    pub(crate) fn time(&self) -> Option<mongodb::bson::Timestamp> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl MongoStore {
    /// Connects to `url` and selects `database`. The driver connects lazily; call
    /// [`MongoStore::ping`] to find out whether the server answers.
    pub async fn connect(url: &str, database: &str) -> Result<MongoStore> {
        let client = mongodb::Client::with_uri_str(url)
            .await
            .map_err(|e| Error::Connection { store: "mongodb", message: e.to_string() })?;
        Ok(MongoStore::from_client(client, database))
    }

    /// Wraps an existing driver client, using its database `database`.
    pub fn from_client(client: mongodb::Client, database: &str) -> MongoStore {
        let db = client.database(database);
        MongoStore { client, db, stats: Arc::new(Stats::default()), cache: None, causal: None }
    }

    /// This handle with `cache` attached, as [`Db::with_cache`](crate::Db::with_cache) does
    /// for the SQL stores: cached reads ([`CachedExt`](crate::CachedExt)) use it, and every
    /// write through this handle (and its transactions) invalidates the rows it changes and
    /// keeps the declared Redis indexes in sync. The counters are shared with `self`.
    pub fn with_cache(&self, cache: Cache) -> MongoStore {
        MongoStore { cache: Some(cache), ..self.clone() }
    }

    /// The attached cache, if any.
    pub fn cache(&self) -> Option<&Cache> {
        self.cache.as_ref()
    }

    /// This handle with `preference` choosing the server its reads (`find`, `aggregate`,
    /// `count`, `distinct`) go to: `Primary`, `PrimaryPreferred`, `Secondary`,
    /// `SecondaryPreferred` or `Nearest`, optionally with tag sets and a `max_staleness`.
    /// Writes, schema commands and transactions stay on the primary. Meaningful on a replica
    /// set or sharded cluster; a standalone server serves every read. Shares the client,
    /// counters and cache with `self`; cheap enough to make for a single query.
    pub fn with_read_preference(&self, preference: mongodb::options::ReadPreference) -> MongoStore {
        self.with_database_options(|o| {
            o.selection_criteria = Some(mongodb::options::SelectionCriteria::ReadPreference(preference))
        })
    }

    /// This handle with `concern` as the `readConcern` of its reads outside transactions
    /// (`local`, `available`, `majority`, `linearizable`, `snapshot`).
    pub fn with_read_concern(&self, concern: mongodb::options::ReadConcern) -> MongoStore {
        self.with_database_options(|o| o.read_concern = Some(concern))
    }

    /// A causally consistent copy of this handle (a new clock, shared by its clones): it
    /// records the highest `operationTime` the server returns to it (command replies,
    /// `insertMany`, transaction commits), and every read outside a transaction — `find`, `aggregate`,
    /// `count`, `distinct` — carries the highest one seen as `readConcern.afterClusterTime`,
    /// merged into the handle's read concern. On a replica set a secondary then answers only
    /// once it has applied those writes: read-your-writes with any read preference. Writes made
    /// through other handles are not covered; use [`MongoStore::causal_token`] and
    /// [`MongoStore::with_causal_token`] to carry the clock across requests. Reads through such
    /// a handle are sent as `find` commands rather than through the driver's `find`.
    pub fn with_causal_consistency(&self) -> MongoStore {
        MongoStore { causal: Some(Arc::new(CausalClock::default())), ..self.clone() }
    }

    /// A causally consistent copy of this handle whose reads follow `token` (a previous
    /// [`MongoStore::causal_token`], e.g. carried in a cookie) as well as its own writes.
    pub fn with_causal_token(&self, token: mongodb::bson::Timestamp) -> MongoStore {
        let store = self.with_causal_consistency();
        if let Some(clock) = &store.causal {
            clock.observe(Some(token));
        }
        store
    }

    /// The highest `operationTime` this causally consistent handle has seen (`None` before its
    /// first command, or on a handle without causal consistency).
    pub fn causal_token(&self) -> Option<mongodb::bson::Timestamp> {
        self.causal.as_ref().and_then(|c| c.time())
    }

    /// This handle with `concern` as the `writeConcern` of its writes outside transactions
    /// (`w`, `j`, `wtimeout`).
    pub fn with_write_concern(&self, concern: mongodb::options::WriteConcern) -> MongoStore {
        self.with_database_options(|o| o.write_concern = Some(concern))
    }

    fn with_database_options(&self, change: impl FnOnce(&mut mongodb::options::DatabaseOptions)) -> MongoStore {
        let mut options = mongodb::options::DatabaseOptions::default();
        options.selection_criteria = self.db.selection_criteria().cloned();
        options.read_concern = self.db.read_concern().cloned();
        options.write_concern = self.db.write_concern().cloned();
        change(&mut options);
        MongoStore { db: self.client.database_with_options(self.db.name(), options), ..self.clone() }
    }

    /// Logs every command that takes `threshold` or longer as a `WARN` event (target
    /// `polystore::slow_query`: the operation and collection — never the command's values —,
    /// duration, documents, model), as [`Db::with_slow_query_threshold`](crate::Db::with_slow_query_threshold)
    /// does for SQL. Applies to this handle, its clones and their transactions.
    pub fn with_slow_query_threshold(self, threshold: std::time::Duration) -> MongoStore {
        self.stats.set_slow_query_threshold(Some(threshold));
        self
    }

    /// Health check: the `ping` command.
    pub async fn ping(&self) -> Result<()> {
        exec::command(&mut self.conn(), "ping", None, doc! { "ping": 1 }).await.map(drop).map_err(|e| match e {
            Error::Connection { .. } => e,
            other => Error::Connection { store: "mongodb", message: other.to_string() },
        })
    }

    /// The driver's database handle.
    pub fn database(&self) -> &mongodb::Database {
        &self.db
    }

    /// The driver's client.
    pub fn client(&self) -> &mongodb::Client {
        &self.client
    }

    /// The handle's counters: every command sent through polystore is counted.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    fn conn(&self) -> Conn<'_> {
        Conn { db: &self.db, session: None, stats: &self.stats, causal: self.causal.as_deref() }
    }

    /// Starts a multi-document transaction on a new client session. Operations take
    /// `&mut tx` wherever they take `&mongo`; dropping the [`MongoTx`] without
    /// [`MongoTx::commit`] aborts it. Needs a replica set or sharded cluster on real MongoDB.
    pub async fn begin(&self) -> Result<MongoTx> {
        let mut session = self.client.start_session().await.map_err(|e| exec::map_error(e, None))?;
        session.start_transaction().await.map_err(|e| exec::map_error(e, None))?;
        Ok(MongoTx { store: self.clone(), session, pending: Pending::default() })
    }

    /// Creates the collections of `schemas` that do not exist yet (with their `$jsonSchema`
    /// validator), and their indexes (`createIndexes` is idempotent for identical specs).
    ///
    /// A range-partitioned model with `retain` gets a TTL index on its partition column (see
    /// [`index_specs`]). When the server is a sharded cluster (`hello` says `isdbgrid`) and a
    /// model is distributed (`#[model(distributed_by = ..)]`), its collection is sharded on
    /// that column and its unique indexes are prefixed by it (see [`shard_commands`] and
    /// [`sharded_index_specs`]); otherwise nothing is sharded.
    pub async fn create_all(&self, schemas: &[&'static ModelSchema]) -> Result<()> {
        let sharded = if schemas.iter().any(|s| s.distribution.is_some()) { self.is_sharded().await? } else { false };
        let mut conn = self.conn();
        let existing = indexes::collection_names(&mut conn).await?;
        for &schema in schemas {
            if !existing.iter().any(|n| n == schema.table) {
                let cmd = doc! { "create": schema.table, "validator": json_schema(schema) };
                exec::command(&mut conn, "create_collection", Some(schema), cmd).await?;
            }
            if sharded && schema.distribution.is_some() {
                for cmd in shard_commands(self.db.name(), schema) {
                    self.admin_command(schema, cmd).await?;
                }
                let specs = sharded_index_specs(schema);
                if !specs.is_empty() {
                    let cmd = doc! { "createIndexes": schema.table, "indexes": specs };
                    exec::command(&mut conn, "create_indexes", Some(schema), cmd).await?;
                }
            } else {
                indexes::create_indexes(&mut conn, schema).await?;
            }
        }
        Ok(())
    }

    /// Drops the collections of `schemas` (those that exist), in reverse order, and their
    /// generated-key counters.
    pub async fn drop_all(&self, schemas: &[&'static ModelSchema]) -> Result<()> {
        let mut conn = self.conn();
        let existing = indexes::collection_names(&mut conn).await?;
        for &schema in schemas.iter().rev() {
            if existing.iter().any(|n| n == schema.table) {
                exec::command(&mut conn, "drop_collection", Some(schema), doc! { "drop": schema.table }).await?;
            }
            if existing.iter().any(|n| n == COUNTERS_COLLECTION) {
                let cmd =
                    doc! { "delete": COUNTERS_COLLECTION, "deletes": [{ "q": { "_id": schema.table }, "limit": 0 }] };
                exec::command(&mut conn, "delete", Some(schema), cmd).await?;
            }
        }
        Ok(())
    }

    /// Replaces the `$jsonSchema` validator of an existing collection with the one generated
    /// from `schema` (`collMod`), e.g. after a field was added.
    pub async fn update_validator(&self, schema: &'static ModelSchema) -> Result<()> {
        let cmd = doc! { "collMod": schema.table, "validator": json_schema(schema) };
        exec::command(&mut self.conn(), "coll_mod", Some(schema), cmd).await.map(drop)
    }

    /// Runs a database command polystore does not build, through the execution point (traced
    /// and counted), and returns the server's reply.
    pub async fn run_command(&self, command: Document) -> Result<Document> {
        exec::command(&mut self.conn(), "command", None, command).await
    }
}

/// A MongoDB transaction: a client session with a transaction started on it. Operations take
/// `&mut tx` wherever they take `&mongo`. Dropping it without [`MongoTx::commit`] aborts it.
pub struct MongoTx {
    store: MongoStore,
    session: ClientSession,
    /// Cache upkeep owed once the transaction commits (see `cache::write`).
    pending: Pending,
}

impl std::fmt::Debug for MongoTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MongoTx").finish_non_exhaustive()
    }
}

impl MongoTx {
    /// Makes the transaction's writes permanent; with a cache attached, then invalidates
    /// (again) every row the transaction wrote and updates the declared Redis indexes.
    pub async fn commit(mut self) -> Result<()> {
        self.store.stats.record_statement();
        self.session.commit_transaction().await.map_err(|e| exec::map_error(e, None))?;
        if let Some(clock) = &self.store.causal {
            clock.observe(self.session.operation_time());
        }
        if let Some(cache) = &self.store.cache {
            let pending = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
            crate::cache::flush_committed(cache, pending).await;
        }
        Ok(())
    }

    /// Undoes the transaction's writes (their cache entries were already deleted when they
    /// were made; the index upkeep owed after a commit is dropped).
    pub async fn rollback(mut self) -> Result<()> {
        self.store.stats.record_statement();
        self.session.abort_transaction().await.map_err(|e| exec::map_error(e, None))
    }
}

/// Where a MongoDB command runs: the database, inside a session's transaction or not, and the
/// counters to record into. Not for direct use.
#[doc(hidden)]
pub struct Conn<'a> {
    db: &'a mongodb::Database,
    session: Option<&'a mut ClientSession>,
    stats: &'a Stats,
    /// The handle's causal clock (outside transactions).
    causal: Option<&'a CausalClock>,
}

impl Executor for &MongoStore {
    fn target(&mut self) -> (Target<'_>, &Arc<Stats>) {
        (
            Target::Mongo(Conn { db: &self.db, session: None, stats: &self.stats, causal: self.causal.as_deref() }),
            &self.stats,
        )
    }

    fn cache_scope(&self) -> CacheScope<'_> {
        match &self.cache {
            Some(c) => CacheScope::Direct(c),
            None => CacheScope::None,
        }
    }

    fn mongo_store(&self) -> Option<&MongoStore> {
        Some(*self)
    }
}

impl MongoTx {
    /// What `Executor::target` of `&mut MongoTx` returns, reachable from a `&mut MongoTx` held
    /// in place (the transactions hooked writes open, see `crate::hooks`).
    pub(crate) fn tx_target(&mut self) -> (Target<'_>, &Arc<Stats>) {
        let MongoTx { store, session, .. } = self;
        (Target::Mongo(Conn { db: &store.db, session: Some(session), stats: &store.stats, causal: None }), &store.stats)
    }

    /// What `Executor::cache_scope` of `&mut MongoTx` returns.
    pub(crate) fn tx_cache_scope(&self) -> CacheScope<'_> {
        match &self.store.cache {
            Some(c) => CacheScope::Tx(c, &self.pending),
            None => CacheScope::None,
        }
    }
}

impl Executor for &mut MongoTx {
    fn target(&mut self) -> (Target<'_>, &Arc<Stats>) {
        self.tx_target()
    }

    fn cache_scope(&self) -> CacheScope<'_> {
        self.tx_cache_scope()
    }
}

/// The MongoDB target of `db`, when it is one: the dispatch hook at the start of every
/// operation.
#[inline]
pub(crate) fn conn<E: Executor>(db: &mut E) -> Option<Conn<'_>> {
    #[allow(unreachable_patterns)]
    match db.target().0 {
        Target::Mongo(conn) => Some(conn),
        _ => None,
    }
}
