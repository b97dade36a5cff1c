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
    /// A second connection that routes read-only commands to replicas
    /// ([`ClusterOptions::read_from_replicas`]): used for cache-hit probes only.
    replica_reads: Option<redis::cluster_async::ClusterConnection>,
    /// `WAIT numreplicas timeout-ms` sent after every write pipeline, with replica reads.
    wait: Option<(u32, u64)>,
    /// Write batches whose `WAIT` returned fewer acknowledgements than asked.
    short_acks: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// Options of [`ClusterBackend::connect_with`].
///
/// With `read_from_replicas`, a cached read's first look-up (one `MGET` per slot group: the
/// hits) goes to a replica of each key's master, chosen at random; misses (the leasing script),
/// fills, writes, invalidations and application keys stay on the masters. Replication is
/// asynchronous, so every write pipeline (a batch sends one per hash slot) and generation bump
/// then ends with `WAIT replica_acks ack_timeout` on its master: the write returns once that
/// many replicas of the master hold it, or when the timeout passes (counted in
/// [`ClusterBackend::unacknowledged_writes`] and logged). See `docs/scaling.md` for the exact
/// guarantee.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Serve cache hits from replicas (default `false`).
    pub read_from_replicas: bool,
    /// With replica reads: how many replicas of a master must acknowledge a write batch before
    /// it returns (default 1: set it to the replicas per master for the guarantee to cover
    /// every replica; 0 skips the wait and gives up read-after-invalidation on replicas).
    pub replica_acks: u32,
    /// With replica reads: the longest a write batch waits for those acknowledgements
    /// (default 100 ms). A master without enough live replicas makes every write wait this
    /// long.
    pub ack_timeout: Duration,
    /// Connection timeout per node (default 2 s).
    pub connection_timeout: Duration,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            read_from_replicas: false,
            replica_acks: 1,
            ack_timeout: Duration::from_millis(100),
            connection_timeout: Duration::from_secs(2),
        }
    }
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
        Self::connect_with(nodes, ClusterOptions::default()).await
    }

    /// Connects with explicit options, e.g. to serve cache hits from replicas:
    /// `ClusterBackend::connect_with(&nodes, ClusterOptions { read_from_replicas: true, ..Default::default() })`.
    pub async fn connect_with(nodes: &[String], options: ClusterOptions) -> Result<Self> {
        let builder = || {
            redis::cluster::ClusterClient::builder(nodes.iter().map(String::as_str))
                .connection_timeout(options.connection_timeout)
        };
        let bad = |e: redis::RedisError| Error::Config(format!("bad Redis Cluster node list: {e}"));
        let conn = builder().build().map_err(bad)?.get_async_connection().await.map_err(redis_error)?;
        let (replica_reads, wait) = if options.read_from_replicas {
            let client = builder()
                .read_routing_strategy(redis::cluster_read_routing::RandomReplicaStrategy)
                .build()
                .map_err(bad)?;
            let replicas = client.get_async_connection().await.map_err(redis_error)?;
            let wait = (options.replica_acks > 0).then(|| (options.replica_acks, millis(options.ack_timeout)));
            (Some(replicas), wait)
        } else {
            (None, None)
        };
        Ok(ClusterBackend { conn, replica_reads, wait, short_acks: Default::default() })
    }

    /// How many write pipelines (one per hash slot of a batch) returned before `replica_acks` replicas
    /// acknowledged them (the `WAIT` timed out: a replica down or far behind). Their
    /// invalidations may be read back stale from a replica for a while. Always 0 without
    /// replica reads.
    pub fn unacknowledged_writes(&self) -> u64 {
        self.short_acks.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Sends `p` (commands of one slot) followed, with replica reads, by `WAIT` on the same
    /// master, and checks the acknowledgements.
    async fn write_acknowledged<T: redis::FromRedisValue>(&self, mut p: redis::Pipeline) -> Result<T> {
        let Some((acks, timeout)) = self.wait else {
            return p.query_async(&mut self.conn.clone()).await.map_err(redis_error);
        };
        p.cmd("WAIT").arg(acks).arg(timeout);
        let mut replies: Vec<redis::Value> = p.query_async(&mut self.conn.clone()).await.map_err(redis_error)?;
        let acked = match replies.pop() {
            Some(redis::Value::Int(n)) => n,
            other => {
                return Err(Error::Connection { store: "redis", message: format!("unexpected WAIT reply {other:?}") });
            }
        };
        if acked < i64::from(acks) {
            self.short_acks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(
                acked,
                wanted = acks,
                "redis cluster: a cache write was not acknowledged by enough replicas in time; replica reads may see the old entry for a while"
            );
        }
        let rest = redis::Value::Array(replies);
        redis::FromRedisValue::from_redis_value(rest)
            .map_err(|e| Error::Connection { store: "redis", message: e.to_string() })
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
            let sends = by_slot.into_values().map(|ops| self.write_acknowledged::<()>(pipeline(ops)));
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
        Box::pin(async move {
            if self.wait.is_none() {
                return advance(&mut self.conn.clone(), key, past).await;
            }
            let mut p = redis::pipe();
            p.cmd("EVAL").arg(ADVANCE).arg(1).arg(key).arg(past);
            let (generation,): (u64,) = self.write_acknowledged(p).await?;
            Ok(generation)
        })
    }

    fn probe<'a>(&'a self, keys: &'a [String]) -> BoxFuture<'a, Result<Vec<Option<Vec<u8>>>>> {
        match &self.replica_reads {
            // A replica that cannot answer (down, or not yet known to the client): the masters.
            Some(replicas) => Box::pin(async move {
                match get_many(&mut replicas.clone(), keys).await {
                    Ok(found) => Ok(found),
                    Err(_) => get_many(&mut self.conn.clone(), keys).await,
                }
            }),
            None => self.get_many(keys),
        }
    }

    fn probes_replicas(&self) -> bool {
        self.replica_reads.is_some()
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
