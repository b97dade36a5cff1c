//! Caching built on model identity: read-through reads, invalidation by every write path,
//! Redis sets and sorted sets as declared indexes, typed application keys and counters.
//!
//! A [`Cache`] is a [`CacheBackend`] (single Redis, Redis Cluster or in-process) plus a key
//! namespace. Attach it to a SQL handle with [`Db::with_cache`](crate::Db::with_cache); from
//! then on
//!
//! - `User::get_cached(&db, 42)` (and [`CachedExt`]'s other reads) go through the cache,
//! - every write polystore runs on that handle — insert, insert_many, update, upsert, delete,
//!   delete_by_key, update_many, delete_many, also inside transactions — invalidates the
//!   affected entries and keeps the declared Redis indexes in sync.
//!
//! The cache is an optimisation, never a point of failure: when the backend errors or times
//! out, reads fall through to the database and writes still succeed; the failure is logged
//! (`tracing`, target `polystore::cache`) and counted in [`CacheStats`]. See `docs/caching.md`.
//!
//! Pipeline: [`keys`] (what a key is) → [`codec`] (what a value is) → [`backend`] (where it
//! lives) → `read` / `write` / `structures` (what polystore does with it).

pub mod backend;
pub mod codec;
mod flight;
pub mod keys;
mod kv;
#[cfg(feature = "memory-cache")]
mod memory;
pub mod policy;
mod read;
#[cfg(feature = "redis")]
mod redis_backend;
mod structures;
mod write;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::Instrument as _;

pub use backend::{BoxFuture, CacheBackend, Op, ZRange};
pub use keys::{HashTag, KeyScheme};
pub use kv::{Counter, TypedKey};
#[cfg(feature = "memory-cache")]
pub use memory::MemoryBackend;
pub use policy::{CachePolicy, PolicyOverride};
pub use read::{CachedExt, CachedRead};
#[cfg(feature = "redis")]
pub use redis_backend::{ClusterBackend, RedisBackend};
pub use structures::IndexedExt;
#[doc(hidden)]
pub use write::Touched;
pub(crate) use write::{Bulk, bulk_write, flush as flush_committed, rows_deleted, rows_written};

use crate::error::Result;
use crate::schema::ModelSchema;

/// How writes treat cached entries of the rows they change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriteMode {
    /// Delete the entries; the next read loads them (the safe default).
    #[default]
    Invalidate,
    /// Write the stored rows into the cache right away (write-through) where the write
    /// returned them (insert, update, upsert); bulk writes and deletes still invalidate.
    /// Inside a transaction entries are only refreshed after the commit.
    Refresh,
}

/// Counters of one [`Cache`] (all clones of it).
#[derive(Debug, Default)]
pub struct CacheStats {
    hits: AtomicU64,
    negative_hits: AtomicU64,
    misses: AtomicU64,
    coalesced: AtomicU64,
    fills: AtomicU64,
    skipped: AtomicU64,
    corrupt: AtomicU64,
    errors: AtomicU64,
    writes: AtomicU64,
}

macro_rules! counters {
    ($($name:ident: $doc:literal,)*) => {
        impl CacheStats {
            $(
                #[doc = $doc]
                pub fn $name(&self) -> u64 {
                    self.$name.load(Ordering::Relaxed)
                }
            )*
        }
    };
}

counters! {
    hits: "Reads answered by a cached row.",
    negative_hits: "Reads answered by a cached \"no such row\".",
    misses: "Reads that went to the database (the key was not cached, or the cache failed).",
    coalesced: "Reads that waited for a concurrent read of the same key instead of querying.",
    fills: "Entries written by reads and write-through.",
    skipped: "Rows not cached: larger than `max_entry_bytes`, or not encodable.",
    corrupt: "Cached values that could not be decoded (deleted, then read from the database).",
    errors: "Backend operations that failed or timed out.",
    writes: "Write batches sent to the backend for invalidation and index upkeep.",
}

impl CacheStats {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

struct Inner {
    backend: Arc<dyn CacheBackend>,
    keys: KeyScheme,
    op_timeout: Duration,
    write_mode: WriteMode,
    stats: CacheStats,
    flights: flight::Flights,
    degraded: AtomicBool,
}

/// A cache: a backend, a key namespace, counters. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("backend", &self.inner.backend.name())
            .field("namespace", &self.inner.keys.namespace())
            .finish_non_exhaustive()
    }
}

/// Settings of a [`Cache`] being built: `Cache::builder(backend).namespace("app").build()`.
#[derive(Debug)]
pub struct CacheBuilder {
    backend: Arc<dyn CacheBackend>,
    namespace: String,
    tags: Vec<(&'static str, HashTag)>,
    op_timeout: Duration,
    write_mode: WriteMode,
}

impl CacheBuilder {
    /// The prefix of every key (default `polystore`): applications or tests sharing one server
    /// use different namespaces.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// What the Redis Cluster hash tag of `schema`'s keys encloses (default [`HashTag::Row`]).
    pub fn hash_tag(mut self, schema: &'static ModelSchema, tag: HashTag) -> Self {
        self.tags.push((schema.name, tag));
        self
    }

    /// How long one backend operation may take before the cache gives up on it and the
    /// database answers instead (default 250 ms).
    pub fn op_timeout(mut self, timeout: Duration) -> Self {
        self.op_timeout = timeout;
        self
    }

    /// Invalidate (default) or refresh entries on writes.
    pub fn write_mode(mut self, mode: WriteMode) -> Self {
        self.write_mode = mode;
        self
    }

    /// The cache.
    pub fn build(self) -> Cache {
        let mut keys = KeyScheme::new(&self.namespace);
        for (model, tag) in self.tags {
            keys.set_hash_tag(model, tag);
        }
        Cache {
            inner: Arc::new(Inner {
                backend: self.backend,
                keys,
                op_timeout: self.op_timeout,
                write_mode: self.write_mode,
                stats: CacheStats::default(),
                flights: flight::Flights::default(),
                degraded: AtomicBool::new(false),
            }),
        }
    }
}

impl Cache {
    /// Starts building a cache on `backend`.
    pub fn builder(backend: impl CacheBackend) -> CacheBuilder {
        CacheBuilder {
            backend: Arc::new(backend),
            namespace: "polystore".into(),
            tags: Vec::new(),
            op_timeout: Duration::from_millis(250),
            write_mode: WriteMode::default(),
        }
    }

    /// An in-process cache of at most 64 MiB, namespace `polystore`: the embedded default.
    #[cfg(feature = "memory-cache")]
    pub fn memory() -> Cache {
        Cache::builder(MemoryBackend::new(64 << 20)).build()
    }

    /// A cache on the Redis server `store` talks to, namespace `polystore`.
    #[cfg(feature = "redis")]
    pub fn redis(store: &crate::redis::RedisStore) -> Cache {
        Cache::builder(RedisBackend::new(store)).build()
    }

    /// The backend's name (`redis`, `redis-cluster`, `memory`).
    pub fn backend_name(&self) -> &'static str {
        self.inner.backend.name()
    }

    /// The backend itself, for operations polystore does not wrap.
    pub fn backend(&self) -> &dyn CacheBackend {
        &*self.inner.backend
    }

    /// The key scheme (to compute the key of a row, e.g. to inspect it).
    pub fn keys(&self) -> &KeyScheme {
        &self.inner.keys
    }

    /// The cache's counters.
    pub fn stats(&self) -> &CacheStats {
        &self.inner.stats
    }

    /// The write mode.
    pub fn write_mode(&self) -> WriteMode {
        self.inner.write_mode
    }

    /// Health check: `PING` the backend (with the operation timeout).
    pub async fn ping(&self) -> Result<()> {
        self.timed(self.inner.backend.ping()).await
    }

    /// Deletes the cached entry of the row of `schema` with primary-key values `key`.
    pub async fn evict(&self, schema: &'static ModelSchema, key: &[crate::Value]) -> Result<()> {
        self.inner.backend.apply(vec![Op::Del(self.inner.keys.entry(schema, key))]).await
    }

    /// The span of one backend operation (`db.system` is the backend: `redis`, `memory`, …).
    fn span(&self, op: &'static str) -> tracing::Span {
        tracing::debug_span!(
            "polystore.cache",
            db.system = self.inner.backend.name(),
            db.operation.name = op,
            polystore.cache.namespace = self.inner.keys.namespace(),
        )
    }

    /// Runs one backend operation under the timeout. A failure is counted and logged (a
    /// warning when the backend stops answering, debug lines while it stays down, an info
    /// line when it answers again) and becomes `None`: the caller falls back to the database.
    pub(crate) async fn guard<T>(&self, op: &'static str, fut: impl Future<Output = Result<T>>) -> Option<T> {
        let outcome = match tokio::time::timeout(self.inner.op_timeout, fut).instrument(self.span(op)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("timed out after {:?}", self.inner.op_timeout)),
        };
        let backend = self.inner.backend.name();
        match outcome {
            Ok(v) => {
                if self.inner.degraded.swap(false, Ordering::Relaxed) {
                    tracing::info!(target: "polystore::cache", backend, "cache backend answers again");
                }
                Some(v)
            }
            Err(error) => {
                CacheStats::add(&self.inner.stats.errors, 1);
                if self.inner.degraded.swap(true, Ordering::Relaxed) {
                    tracing::debug!(target: "polystore::cache", backend, op, %error, "cache operation failed");
                } else {
                    tracing::warn!(target: "polystore::cache", backend, op, %error,
                        "cache operation failed; reads fall through to the database until it answers again");
                }
                None
            }
        }
    }

    /// Runs one backend operation under the timeout, reporting its error (for application
    /// keys and maintenance, where the caller decides what a failure means).
    pub(crate) async fn timed<T>(&self, fut: impl Future<Output = Result<T>>) -> Result<T> {
        match tokio::time::timeout(self.inner.op_timeout, fut).instrument(self.span("app")).await {
            Ok(r) => r,
            Err(_) => Err(crate::Error::Connection {
                store: self.inner.backend.name(),
                message: format!("timed out after {:?}", self.inner.op_timeout),
            }),
        }
    }
}

/// The cache a statement's handle carries, and whether the statement runs in a transaction
/// (whose invalidations are repeated, with index upkeep, after the commit). Not for direct use.
#[doc(hidden)]
pub enum CacheScope<'a> {
    /// No cache attached.
    None,
    /// A pooled handle with a cache.
    Direct(&'a Cache),
    /// A transaction on a handle with a cache, and its pending writes.
    Tx(&'a Cache, &'a Pending),
}

/// Writes made inside a transaction, applied to the cache once it commits. Not for direct use.
#[doc(hidden)]
pub type Pending = Arc<Mutex<Vec<Touched>>>;

/// Whether writes to `schema` concern the cache at all: it declares a cache policy or Redis
/// structures.
pub(crate) fn tracked(schema: &ModelSchema) -> bool {
    schema.cache.is_some() || schema.fields.iter().any(|f| f.redis != crate::schema::RedisIndex::None)
}
