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

    /// Applies a batch of writes, pipelined. Not atomic.
    fn apply(&self, ops: Vec<Op>) -> BoxFuture<'_, Result<()>>;

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
