//! The Redis backends: [`RedisBackend`] (one server, through the reconnecting
//! `ConnectionManager` of [`RedisStore`]) and [`ClusterBackend`] (Redis Cluster, through
//! redis-rs's `cluster-async` connection, which follows slot moves and node failures).
//!
//! Both send a write batch as pipelines; a cluster only pipelines commands of one slot, so
//! there the batch is split by [`slot`](super::keys::slot) and the per-slot pipelines run
//! concurrently. `MGET` of keys in several slots is split by redis-rs itself.

use std::collections::BTreeMap;

use redis::aio::ConnectionLike;

use std::time::Duration;

use super::backend::{BoxFuture, CacheBackend, Fill, Leased, Op, ZRange};
use super::keys::slot;
use crate::error::{Error, Result};
use crate::redis::RedisStore;

fn redis_error(e: redis::RedisError) -> Error {
    Error::Connection { store: "redis", message: e.to_string() }
}

/// The cache on one Redis server.
#[derive(Clone)]
pub struct RedisBackend {
    conn: redis::aio::ConnectionManager,
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend").finish_non_exhaustive()
    }
}

impl RedisBackend {
    /// A backend on the server `store` is connected to (sharing its connection).
    pub fn new(store: &RedisStore) -> Self {
        RedisBackend { conn: store.connection() }
    }
}

/// The cache on a Redis Cluster.
#[derive(Clone)]
pub struct ClusterBackend {
    conn: redis::cluster_async::ClusterConnection,
}

impl std::fmt::Debug for ClusterBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterBackend").finish_non_exhaustive()
    }
}

impl ClusterBackend {
    /// Connects to the cluster that the `nodes` (`redis://host:port` URLs, any subset of the
    /// cluster's nodes) belong to, with a 2 s connection timeout.
    pub async fn connect(nodes: &[String]) -> Result<Self> {
        let client = redis::cluster::ClusterClient::builder(nodes.iter().map(String::as_str))
            .connection_timeout(std::time::Duration::from_secs(2))
            .build()
            .map_err(|e| Error::Config(format!("bad Redis Cluster node list: {e}")))?;
        let conn = client.get_async_connection().await.map_err(redis_error)?;
        Ok(ClusterBackend { conn })
    }

    /// The driver's cluster connection (cheap to clone), for commands polystore does not send.
    pub fn connection(&self) -> redis::cluster_async::ClusterConnection {
        self.conn.clone()
    }
}

fn pipeline(ops: Vec<Op>) -> redis::Pipeline {
    let mut p = redis::pipe();
    for op in ops {
        match op {
            Op::Set { key, value, ttl: Some(ttl) } => {
                p.cmd("SET").arg(key).arg(value).arg("PX").arg(millis(ttl)).ignore();
            }
            Op::Set { key, value, ttl: None } => {
                p.cmd("SET").arg(key).arg(value).ignore();
            }
            Op::Del(key) => {
                p.cmd("DEL").arg(key).ignore();
            }
            Op::SAdd { key, member } => {
                p.cmd("SADD").arg(key).arg(member).ignore();
            }
            Op::SRem { key, member } => {
                p.cmd("SREM").arg(key).arg(member).ignore();
            }
            Op::ZAdd { key, member, score } => {
                p.cmd("ZADD").arg(key).arg(score).arg(member).ignore();
            }
            Op::ZRem { key, member } => {
                p.cmd("ZREM").arg(key).arg(member).ignore();
            }
        }
    }
    p
}

/// Returns the key's value, or stores the lease (`ARGV[1]`, `PX ARGV[2]`) in an empty key and
/// returns nil. One key per call, so it runs in the key's slot on a cluster.
const READ_LEASING: &str = "local v = redis.call('GET', KEYS[1]) \
if v then return v end \
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) \
return false";

/// Stores `ARGV[2]` (`PX ARGV[3]`) — or deletes the key when `ARGV[2]` is empty — only while
/// the key still holds the lease `ARGV[1]`.
const FILL: &str = "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end \
if ARGV[2] == '' then redis.call('DEL', KEYS[1]) return 0 end \
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) \
return 1";

/// Sets the key to `max(value, ARGV[1]) + 1` and returns it.
const ADVANCE: &str = "local g = tonumber(redis.call('GET', KEYS[1]) or '0') or 0 \
local past = tonumber(ARGV[1]) \
if past > g then g = past end \
g = g + 1 \
redis.call('SET', KEYS[1], g) \
return g";

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

fn lease_cmd(p: &mut redis::Pipeline, key: &str, lease: &[u8], ttl: Duration) {
    p.cmd("EVAL").arg(READ_LEASING).arg(1).arg(key).arg(lease).arg(millis(ttl));
}

fn fill_cmd(p: &mut redis::Pipeline, fill: &Fill) {
    let value: &[u8] = fill.value.as_deref().unwrap_or_default();
    p.cmd("EVAL").arg(FILL).arg(1).arg(&fill.key).arg(&fill.lease).arg(value).arg(millis(fill.ttl));
}

async fn advance<C: ConnectionLike + Send>(conn: &mut C, key: &str, past: u64) -> Result<u64> {
    redis::cmd("EVAL").arg(ADVANCE).arg(1).arg(key).arg(past).query_async(conn).await.map_err(redis_error)
}

/// Groups `items` by the slot of their key, keeping each item's position.
fn by_slot<T>(items: impl IntoIterator<Item = T>, key: impl Fn(&T) -> &str) -> BTreeMap<u16, Vec<(usize, T)>> {
    let mut out: BTreeMap<u16, Vec<(usize, T)>> = BTreeMap::new();
    for (i, item) in items.into_iter().enumerate() {
        out.entry(slot(key(&item))).or_default().push((i, item));
    }
    out
}

/// Flattens a reply (RESP2 flat arrays or RESP3 nested pairs) into its strings.
fn strings(value: redis::Value, out: &mut Vec<String>) {
    match value {
        redis::Value::Array(items) | redis::Value::Set(items) => items.into_iter().for_each(|v| strings(v, out)),
        redis::Value::BulkString(b) => out.push(String::from_utf8_lossy(&b).into_owned()),
        redis::Value::SimpleString(s) => out.push(s),
        redis::Value::Double(d) => out.push(d.to_string()),
        redis::Value::Int(n) => out.push(n.to_string()),
        _ => {}
    }
}

fn scored(value: redis::Value) -> Vec<(String, f64)> {
    let mut flat = Vec::new();
    strings(value, &mut flat);
    flat.chunks_exact(2).map(|pair| (pair[0].clone(), pair[1].parse().unwrap_or(f64::NAN))).collect()
}

async fn get_many<C: ConnectionLike + Send>(conn: &mut C, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    redis::cmd("MGET").arg(keys).query_async(conn).await.map_err(redis_error)
}

async fn members<C: ConnectionLike + Send>(conn: &mut C, key: &str) -> Result<Vec<String>> {
    redis::cmd("SMEMBERS").arg(key).query_async(conn).await.map_err(redis_error)
}

async fn zrange<C: ConnectionLike + Send>(conn: &mut C, key: &str, range: ZRange) -> Result<Vec<(String, f64)>> {
    let mut cmd = redis::cmd("ZRANGE");
    match range {
        ZRange::Top(0) => return Ok(Vec::new()),
        ZRange::Top(n) => cmd.arg(key).arg(0).arg(n as i64 - 1).arg("REV"),
        ZRange::ByScore { min, max } => cmd.arg(key).arg(min).arg(max).arg("BYSCORE"),
    };
    cmd.arg("WITHSCORES");
    let reply: redis::Value = cmd.query_async(conn).await.map_err(redis_error)?;
    Ok(scored(reply))
}

async fn zrank_desc<C: ConnectionLike + Send>(conn: &mut C, key: &str, member: &str) -> Result<Option<u64>> {
    redis::cmd("ZREVRANK").arg(key).arg(member).query_async(conn).await.map_err(redis_error)
}

async fn incr_by<C: ConnectionLike + Send>(conn: &mut C, key: &str, delta: i64) -> Result<i64> {
    redis::cmd("INCRBY").arg(key).arg(delta).query_async(conn).await.map_err(redis_error)
}

async fn ping<C: ConnectionLike + Send>(conn: &mut C) -> Result<()> {
    let pong: String = redis::cmd("PING").query_async(conn).await.map_err(redis_error)?;
    if pong == "PONG" {
        Ok(())
    } else {
        Err(Error::Connection { store: "redis", message: format!("unexpected PING reply {pong:?}") })
    }
}

impl CacheBackend for RedisBackend {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn get_many<'a>(&'a self, keys: &'a [String]) -> BoxFuture<'a, Result<Vec<Option<Vec<u8>>>>> {
        Box::pin(async move { get_many(&mut self.conn.clone(), keys).await })
    }

    fn apply(&self, ops: Vec<Op>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            if ops.is_empty() {
                return Ok(());
            }
            pipeline(ops).query_async::<()>(&mut self.conn.clone()).await.map_err(redis_error)
        })
    }

    fn read_leasing<'a>(
        &'a self,
        guard: &'a str,
        keys: &'a [String],
        lease: &'a [u8],
        lease_ttl: Duration,
    ) -> BoxFuture<'a, Result<Leased>> {
        Box::pin(async move {
            let mut p = redis::pipe();
            p.cmd("GET").arg(guard);
            for key in keys {
                lease_cmd(&mut p, key, lease, lease_ttl);
            }
            let mut replies: Vec<Option<Vec<u8>>> = p.query_async(&mut self.conn.clone()).await.map_err(redis_error)?;
            let guard = if replies.is_empty() { None } else { replies.remove(0) };
            Ok(Leased { guard, values: replies })
        })
    }

    fn fill(&self, fills: Vec<Fill>) -> BoxFuture<'_, Result<u64>> {
        Box::pin(async move {
            if fills.is_empty() {
                return Ok(0);
            }
            let mut p = redis::pipe();
            for fill in &fills {
                fill_cmd(&mut p, fill);
            }
            let stored: Vec<u64> = p.query_async(&mut self.conn.clone()).await.map_err(redis_error)?;
            Ok(stored.iter().sum())
        })
    }

    fn advance<'a>(&'a self, key: &'a str, past: u64) -> BoxFuture<'a, Result<u64>> {
        Box::pin(async move { advance(&mut self.conn.clone(), key, past).await })
    }

    fn members<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Vec<String>>> {
        Box::pin(async move { members(&mut self.conn.clone(), key).await })
    }

    fn zrange<'a>(&'a self, key: &'a str, range: ZRange) -> BoxFuture<'a, Result<Vec<(String, f64)>>> {
        Box::pin(async move { zrange(&mut self.conn.clone(), key, range).await })
    }

    fn zrank_desc<'a>(&'a self, key: &'a str, member: &'a str) -> BoxFuture<'a, Result<Option<u64>>> {
        Box::pin(async move { zrank_desc(&mut self.conn.clone(), key, member).await })
    }

    fn incr_by<'a>(&'a self, key: &'a str, delta: i64) -> BoxFuture<'a, Result<i64>> {
        Box::pin(async move { incr_by(&mut self.conn.clone(), key, delta).await })
    }

    fn ping(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move { ping(&mut self.conn.clone()).await })
    }
}

impl CacheBackend for ClusterBackend {
    fn name(&self) -> &'static str {
        "redis-cluster"
    }

    fn get_many<'a>(&'a self, keys: &'a [String]) -> BoxFuture<'a, Result<Vec<Option<Vec<u8>>>>> {
        Box::pin(async move { get_many(&mut self.conn.clone(), keys).await })
    }

    fn apply(&self, ops: Vec<Op>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let mut by_slot: BTreeMap<u16, Vec<Op>> = BTreeMap::new();
            for op in ops {
                by_slot.entry(slot(op.key())).or_default().push(op);
            }
            let sends = by_slot.into_values().map(|ops| {
                let mut conn = self.conn.clone();
                async move { pipeline(ops).query_async::<()>(&mut conn).await.map_err(redis_error) }
            });
            futures_util::future::join_all(sends).await.into_iter().collect()
        })
    }

    fn read_leasing<'a>(
        &'a self,
        guard: &'a str,
        keys: &'a [String],
        lease: &'a [u8],
        lease_ttl: Duration,
    ) -> BoxFuture<'a, Result<Leased>> {
        Box::pin(async move {
            let reads = by_slot(keys, |k| k.as_str()).into_values().map(|group| {
                let mut conn = self.conn.clone();
                async move {
                    let mut p = redis::pipe();
                    for (_, key) in &group {
                        lease_cmd(&mut p, key, lease, lease_ttl);
                    }
                    let found: Vec<Option<Vec<u8>>> = p.query_async(&mut conn).await.map_err(redis_error)?;
                    Ok::<_, Error>(group.into_iter().map(|(i, _)| i).zip(found).collect::<Vec<_>>())
                }
            });
            let mut conn = self.conn.clone();
            let guard_read = async move {
                redis::cmd("GET").arg(guard).query_async::<Option<Vec<u8>>>(&mut conn).await.map_err(redis_error)
            };
            let (guard, groups) = futures_util::join!(guard_read, futures_util::future::join_all(reads));
            let mut values = vec![None; keys.len()];
            for group in groups {
                for (i, v) in group? {
                    values[i] = v;
                }
            }
            Ok(Leased { guard: guard?, values })
        })
    }

    fn fill(&self, fills: Vec<Fill>) -> BoxFuture<'_, Result<u64>> {
        Box::pin(async move {
            let sends = by_slot(fills, |f| f.key.as_str()).into_values().map(|group| {
                let mut conn = self.conn.clone();
                async move {
                    let mut p = redis::pipe();
                    for (_, fill) in &group {
                        fill_cmd(&mut p, fill);
                    }
                    let stored: Vec<u64> = p.query_async(&mut conn).await.map_err(redis_error)?;
                    Ok::<u64, Error>(stored.iter().sum())
                }
            });
            let mut total = 0;
            for n in futures_util::future::join_all(sends).await {
                total += n?;
            }
            Ok(total)
        })
    }

    fn advance<'a>(&'a self, key: &'a str, past: u64) -> BoxFuture<'a, Result<u64>> {
        Box::pin(async move { advance(&mut self.conn.clone(), key, past).await })
    }

    fn members<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Vec<String>>> {
        Box::pin(async move { members(&mut self.conn.clone(), key).await })
    }

    fn zrange<'a>(&'a self, key: &'a str, range: ZRange) -> BoxFuture<'a, Result<Vec<(String, f64)>>> {
        Box::pin(async move { zrange(&mut self.conn.clone(), key, range).await })
    }

    fn zrank_desc<'a>(&'a self, key: &'a str, member: &'a str) -> BoxFuture<'a, Result<Option<u64>>> {
        Box::pin(async move { zrank_desc(&mut self.conn.clone(), key, member).await })
    }

    fn incr_by<'a>(&'a self, key: &'a str, delta: i64) -> BoxFuture<'a, Result<i64>> {
        Box::pin(async move { incr_by(&mut self.conn.clone(), key, delta).await })
    }

    fn ping(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move { ping(&mut self.conn.clone()).await })
    }
}
