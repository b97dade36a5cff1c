//! The [`CacheBackend`] trait: the few primitives caching needs from a key-value store, so
//! that single Redis, Redis Cluster and the in-process cache are interchangeable.
//!
//! Writes are batched as [`Op`] lists that a backend sends in as few round trips as it can
//! (one pipeline on single Redis; one pipeline per slot on a cluster).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::error::Result;

/// A boxed, sendable future (what [`CacheBackend`] methods return, keeping it object-safe).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One write in a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// `SET key value [PX ttl]`.
    Set {
        /// The key.
        key: String,
        /// The bytes to store.
        value: Vec<u8>,
        /// Expiry; `None` keeps the value until deleted.
        ttl: Option<Duration>,
    },
    /// `DEL key`.
    Del(String),
    /// `SADD key member`.
    SAdd {
        /// The set.
        key: String,
        /// The member.
        member: String,
    },
    /// `SREM key member`.
    SRem {
        /// The set.
        key: String,
        /// The member.
        member: String,
    },
    /// `ZADD key score member`.
    ZAdd {
        /// The sorted set.
        key: String,
        /// The member.
        member: String,
        /// Its score.
        score: f64,
    },
    /// `ZREM key member`.
    ZRem {
        /// The sorted set.
        key: String,
        /// The member.
        member: String,
    },
}

impl Op {
    /// The key the operation writes.
    pub fn key(&self) -> &str {
        match self {
            Op::Set { key, .. }
            | Op::SAdd { key, .. }
            | Op::SRem { key, .. }
            | Op::ZAdd { key, .. }
            | Op::ZRem { key, .. } => key,
            Op::Del(key) => key,
        }
    }
}

/// Which members of a sorted set to read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ZRange {
    /// The `n` highest scores, highest first (`ZRANGE key 0 n-1 REV WITHSCORES`).
    Top(usize),
    /// Scores in `min..=max`, lowest first (`ZRANGE key min max BYSCORE WITHSCORES`).
    ByScore {
        /// Lowest score included.
        min: f64,
        /// Highest score included.
        max: f64,
    },
}

/// A fill guarded by a lease: `value` is stored at `key` only while `key` still holds `lease`
/// (the marker [`CacheBackend::read_leasing`] stored there), atomically. `value: None`
/// releases the lease (deletes the key if it still holds it).
#[derive(Debug, Clone, PartialEq)]
pub struct Fill {
    /// The key.
    pub key: String,
    /// The lease marker the key must still hold.
    pub lease: Vec<u8>,
    /// What to store, or `None` to release the lease.
    pub value: Option<Vec<u8>>,
    /// The stored value's lifetime.
    pub ttl: Duration,
}

/// What [`CacheBackend::read_leasing`] found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Leased {
    /// The value of the guard key (the cache's generation), read in the same round trip.
    pub guard: Option<Vec<u8>>,
    /// Per key, in order: the value it held (possibly another reader's lease marker), or
    /// `None` when it held nothing and the caller's lease was stored there.
    pub values: Vec<Option<Vec<u8>>>,
}

/// A key-value store the cache can use. Implementations: [`RedisBackend`](super::RedisBackend)
/// (single server), [`ClusterBackend`](super::ClusterBackend) (Redis Cluster) and
/// [`MemoryBackend`](super::MemoryBackend) (in-process).
///
/// Every error is reported, never swallowed: the [`Cache`](super::Cache) above decides that a
/// failing backend degrades to the database.
pub trait CacheBackend: Send + Sync + std::fmt::Debug + 'static {
    /// A short name for logs and metrics (`redis`, `redis-cluster`, `memory`).
    fn name(&self) -> &'static str;

    /// `MGET`: the values of `keys`, in order (`None` where a key is missing).
    fn get_many<'a>(&'a self, keys: &'a [String]) -> BoxFuture<'a, Result<Vec<Option<Vec<u8>>>>>;

    /// The read a cache hit is served from: the values of `keys` like
    /// [`CacheBackend::get_many`], but a backend may answer from replicas, whose values can be
    /// older ([`CacheBackend::probes_replicas`]). Defaults to `get_many`.
    fn probe<'a>(&'a self, keys: &'a [String]) -> BoxFuture<'a, Result<Vec<Option<Vec<u8>>>>> {
        self.get_many(keys)
    }

    /// Whether [`CacheBackend::probe`] may read replicas (then a generation it returns that is
    /// older than one already seen means a lagging replica, not lost data). Default `false`.
    fn probes_replicas(&self) -> bool {
        false
    }

    /// Applies a batch of writes, pipelined. Not atomic.
    fn apply(&self, ops: Vec<Op>) -> BoxFuture<'_, Result<()>>;

    /// Reads `keys` and, atomically per key, stores `lease` (expiring after `lease_ttl`) in
    /// every key that holds nothing; also reads `guard`. A fill of a leased key
    /// ([`CacheBackend::fill`]) succeeds only while no write replaced or deleted the lease:
    /// a value read from the database before a write can then never be stored after that
    /// write's invalidation.
    fn read_leasing<'a>(
        &'a self,
        guard: &'a str,
        keys: &'a [String],
        lease: &'a [u8],
        lease_ttl: Duration,
    ) -> BoxFuture<'a, Result<Leased>>;

    /// Applies each fill whose key still holds its lease (an atomic compare-and-set per key);
    /// returns how many values were stored.
    fn fill(&self, fills: Vec<Fill>) -> BoxFuture<'_, Result<u64>>;

    /// Raises the integer at `key` above both its current value and `past`, returning the new
    /// value (the cache's generation bump after a lost invalidation).
    fn advance<'a>(&'a self, key: &'a str, past: u64) -> BoxFuture<'a, Result<u64>>;

    /// `SMEMBERS key`.
    fn members<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Vec<String>>>;

    /// Members of a sorted set with their scores.
    fn zrange<'a>(&'a self, key: &'a str, range: ZRange) -> BoxFuture<'a, Result<Vec<(String, f64)>>>;

    /// The 0-based rank of `member`, highest score first (`ZREVRANK`); `None` when absent.
    fn zrank_desc<'a>(&'a self, key: &'a str, member: &'a str) -> BoxFuture<'a, Result<Option<u64>>>;

    /// `INCRBY key delta`, returning the new value (a missing key counts as 0).
    fn incr_by<'a>(&'a self, key: &'a str, delta: i64) -> BoxFuture<'a, Result<i64>>;

    /// `PING`.
    fn ping(&self) -> BoxFuture<'_, Result<()>>;
}
