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
//! The cache never serves what the store has overwritten:
//!
//! - **fills are leased**: a read that misses stores a lease marker in the key (atomically,
//!   only if the key is empty), reads the database, and stores the row only if the marker is
//!   still there ([`CacheBackend::read_leasing`], [`CacheBackend::fill`]). A write's
//!   invalidation deletes the marker, so a row read before a write can never be stored after
//!   it — for rows and for "no such row" alike;
//! - **lost invalidations are fenced**: entry and lookup keys carry the namespace's
//!   *generation*, read with every cached read in the same round trip. When an invalidation
//!   cannot be delivered, the cache stops using the backend and, before using it again,
//!   advances the generation: every entry written before is then unreachable.
//! - **failures open a circuit breaker** (`breaker.rs`): after one failure no caller waits on
//!   the backend; reads go to the database, writes record the lost invalidation; a background
//!   probe with exponential back-off closes the breaker (after the fence) when the backend
//!   answers again. Transitions are `tracing` events (target `polystore::cache`).
//!
//! See `docs/caching.md` for the exact guarantee and the tests backing it.
//!
//! Pipeline: [`keys`] (what a key is) → [`codec`] (what a value is) → [`backend`] (where it
//! lives) → `read` / `write` / `structures` (what polystore does with it).

pub mod backend;
mod breaker;
pub mod codec;
mod flight;
pub mod keys;
mod kv;
mod lease;
#[cfg(feature = "memory-cache")]
mod memory;
pub mod policy;
mod read;
#[cfg(feature = "redis")]
mod redis_backend;
mod structures;
mod write;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::Instrument as _;

pub use backend::{BoxFuture, CacheBackend, Fill, Leased, Op, ZRange};
pub use keys::{HashTag, KeyScheme};
pub use kv::{Counter, TypedKey};
#[cfg(feature = "memory-cache")]
pub use memory::MemoryBackend;
pub use policy::{CachePolicy, PolicyOverride};
pub(crate) use read::keys_filter;
pub use read::{CachedExt, CachedRead};
#[cfg(feature = "redis")]
pub use redis_backend::{ClusterBackend, ClusterOptions, RedisBackend};
pub use structures::IndexedExt;
#[doc(hidden)]
pub use write::Touched;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub(crate) use write::indexed_fields;
pub(crate) use write::rows_changed;
#[cfg(feature = "mongodb")]
pub(crate) use write::rows_updated;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub(crate) use write::rows_written_by;
pub(crate) use write::{caches, flush as flush_committed, rows_deleted, rows_written};

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
    skipped_backend: AtomicU64,
    lost_invalidations: AtomicU64,
    fences: AtomicU64,
    refused_fills: AtomicU64,
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
    skipped_backend: "Operations that did not use the backend because its circuit breaker was open.",
    lost_invalidations: "Invalidations that could not be delivered (each owes a generation bump).",
    fences: "Generation bumps made after lost invalidations.",
    refused_fills: "Fills dropped because a write replaced their lease (the row read was already old).",
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
    breaker: breaker::Breaker,
    lease_ttl: Duration,
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
    backoff: (Duration, Duration),
    lease_ttl: Duration,
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

    /// The circuit breaker's back-off: after a failure the backend is probed again after `min`,
    /// then after twice as long each time it still fails, up to `max` (defaults 50 ms, 1 s).
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.backoff = (min, max);
        self
    }

    /// How long a read's lease on a missing key lasts (default 5 s): while it lasts, other
    /// readers of the key read the database without filling. Only a reader that dies between
    /// its lease and its fill leaves one to expire.
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
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
                breaker: breaker::Breaker::new(self.backoff.0, self.backoff.1),
                lease_ttl: self.lease_ttl,
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
            backoff: (Duration::from_millis(50), Duration::from_secs(1)),
            lease_ttl: Duration::from_secs(5),
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

    /// Runs one backend operation under the timeout, unless the circuit breaker is open. A
    /// failure is counted, opens the breaker (a warning) and becomes `None`: the caller falls
    /// back to the database.
    pub(crate) async fn guard<T>(&self, op: &'static str, fut: impl Future<Output = Result<T>>) -> Option<T> {
        if !self.admit() {
            return None;
        }
        match self.run(op, fut).await {
            Ok(v) => Some(v),
            Err(error) => {
                self.failed(op, &error, false);
                None
            }
        }
    }

    /// Runs `fut` under the operation timeout and the operation's span.
    async fn run<T>(&self, op: &'static str, fut: impl Future<Output = Result<T>>) -> Result<T, String> {
        let started = std::time::Instant::now();
        let result = match tokio::time::timeout(self.inner.op_timeout, fut).instrument(self.span(op)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("timed out after {:?}", self.inner.op_timeout)),
        };
        crate::observe::cache_operation(self.inner.backend.name(), op, started.elapsed(), result.is_ok());
        result
    }

    /// Whether the backend may be used now; starts the background probe when the back-off is
    /// over.
    fn admit(&self) -> bool {
        match self.inner.breaker.admit() {
            breaker::Admit::Pass => return true,
            breaker::Admit::Probe => {
                let cache = self.clone();
                tokio::spawn(async move { cache.probe().await });
            }
            breaker::Admit::Skip => {}
        }
        CacheStats::add(&self.inner.stats.skipped_backend, 1);
        false
    }

    /// Records a failed operation: counted, logged, the breaker opened.
    fn failed(&self, op: &'static str, error: &str, lost_invalidation: bool) {
        CacheStats::add(&self.inner.stats.errors, 1);
        let backend = self.inner.backend.name();
        if self.inner.breaker.trip(lost_invalidation) {
            tracing::warn!(target: "polystore::cache", backend, op, %error, breaker = "open",
                "cache operation failed; circuit breaker open: the database answers until a probe succeeds");
        } else {
            tracing::debug!(target: "polystore::cache", backend, op, %error, "cache operation failed");
        }
    }

    /// An invalidation was not delivered (skipped by the open breaker, or failed).
    pub(crate) fn lost_invalidation(&self, op: &'static str, error: Option<&str>) {
        CacheStats::add(&self.inner.stats.lost_invalidations, 1);
        match error {
            Some(error) => self.failed(op, error, true),
            None => self.inner.breaker.owe_fence(),
        }
    }

    /// The background probe: `PING`, then the fence if one is owed, then the verdict.
    async fn probe(&self) {
        let backend = self.inner.backend.name();
        tracing::debug!(target: "polystore::cache", backend, breaker = "half-open", "probing the cache backend");
        let mut ok = self.run("probe", self.inner.backend.ping()).await.is_ok();
        if ok && self.inner.breaker.fence_owed() {
            ok = self.fence().await;
        }
        match self.inner.breaker.finish_probe(ok) {
            Some("closed") => tracing::info!(target: "polystore::cache", backend, breaker = "closed",
                generation = self.inner.keys.generation(), "cache backend answers again; circuit breaker closed"),
            Some(_) => tracing::debug!(target: "polystore::cache", backend, breaker = "open", "probe failed"),
            None => {}
        }
    }

    /// Advances the generation past every entry written so far (after a lost invalidation).
    async fn fence(&self) -> bool {
        let keys = &self.inner.keys;
        let gkey = keys.generation_key();
        let advanced = async {
            let generation = self.inner.backend.advance(&gkey, keys.generation()).await?;
            // Declared indexes may have lost upkeep too: unusable until rebuilt (structures.rs).
            let mark = Op::Set { key: keys.index_fence_key(), value: generation.to_string().into_bytes(), ttl: None };
            self.inner.backend.apply(vec![mark]).await?;
            Ok(generation)
        };
        match self.run("fence", advanced).await {
            Ok(generation) => {
                keys.adopt(generation);
                self.inner.breaker.fence_made();
                CacheStats::add(&self.inner.stats.fences, 1);
                tracing::info!(target: "polystore::cache", backend = self.inner.backend.name(), generation,
                    "cache generation advanced: entries written before the lost invalidation are retired");
                true
            }
            Err(_) => false,
        }
    }

    /// Compares the generation a backend reply carried with this process's: `true` when they
    /// agree. A newer one is adopted (the caller retries with the new keys); an older one
    /// means the backend lost data, and a fence is owed.
    pub(crate) fn check_generation(&self, seen: Option<&[u8]>) -> bool {
        let seen = parse_generation(seen);
        let mine = self.inner.keys.generation();
        if seen == mine {
            return true;
        }
        if seen > mine {
            self.inner.keys.adopt(seen);
        } else {
            self.lost_invalidation("generation", Some("the backend's generation went back: it lost data"));
        }
        false
    }

    /// Whether a generation read from a replica is older than the one this cache works under
    /// (the replica lags; the caller asks a master instead).
    pub(crate) fn generation_behind(&self, seen: Option<&[u8]>) -> bool {
        parse_generation(seen) < self.inner.keys.generation()
    }

    /// Whether the circuit breaker is closed (the backend is in use).
    pub fn is_available(&self) -> bool {
        self.inner.breaker.is_closed()
    }

    /// The generation entries are read and written under (see [`KeyScheme::generation`]).
    pub fn generation(&self) -> u64 {
        self.inner.keys.generation()
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

/// The generation stored in the generation key (absent or unreadable: 0).
fn parse_generation(seen: Option<&[u8]>) -> u64 {
    seen.and_then(|b| std::str::from_utf8(b).ok()).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)
}
