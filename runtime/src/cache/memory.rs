//! The in-process backend: cached entries in a [moka](https://docs.rs/moka) cache bounded by
//! bytes, with a per-entry TTL; sets, sorted sets, counters and values without a TTL in a plain
//! map (they are indexes and application data, never evicted). The embedded default: no server,
//! nothing shared between processes.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::backend::{BoxFuture, CacheBackend, Fill, Leased, Op, ZRange};
use crate::error::{Error, Result};

#[derive(Clone)]
struct Entry {
    bytes: std::sync::Arc<[u8]>,
    ttl: Duration,
}

struct PerEntryTtl;

impl moka::Expiry<String, Entry> for PerEntryTtl {
    fn expire_after_create(&self, _key: &String, value: &Entry, _created_at: Instant) -> Option<Duration> {
        Some(value.ttl)
    }

    fn expire_after_update(
        &self,
        _key: &String,
        value: &Entry,
        _updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// What the durable map holds under a key.
#[derive(Debug)]
enum Durable {
    Bytes(Vec<u8>),
    Set(HashSet<String>),
    Sorted(HashMap<String, f64>),
    Counter(i64),
}

/// The in-process cache backend.
pub struct MemoryBackend {
    entries: moka::future::Cache<String, Entry>,
    durable: Mutex<HashMap<String, Durable>>,
    /// Serialises the writes of entries (sets, deletes, leases, guarded fills), so that a
    /// lease check and the store it guards are one atomic step; plain reads do not take it.
    writes: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for MemoryBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBackend").field("entries", &self.entries.entry_count()).finish_non_exhaustive()
    }
}

impl MemoryBackend {
    /// A cache holding at most about `max_bytes` of entries (keys and values); the least
    /// useful entries are evicted first.
    pub fn new(max_bytes: u64) -> Self {
        let entries = moka::future::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|k: &String, v: &Entry| u32::try_from(k.len() + v.bytes.len()).unwrap_or(u32::MAX))
            .expire_after(PerEntryTtl)
            .build();
        MemoryBackend { entries, durable: Mutex::new(HashMap::new()), writes: tokio::sync::Mutex::new(()) }
    }

    async fn get_one(&self, key: &str) -> Option<Vec<u8>> {
        match self.entries.get(key).await {
            Some(e) => Some(e.bytes.to_vec()),
            None => match self.durable().get(key) {
                Some(Durable::Bytes(b)) => Some(b.clone()),
                Some(Durable::Counter(n)) => Some(n.to_string().into_bytes()),
                _ => None,
            },
        }
    }

    fn durable(&self) -> std::sync::MutexGuard<'_, HashMap<String, Durable>> {
        self.durable.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn wrong_type(key: &str) -> Error {
    Error::Database { code: Some("WRONGTYPE".into()), message: format!("{key} holds another kind of value") }
}

impl CacheBackend for MemoryBackend {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn get_many<'a>(&'a self, keys: &'a [String]) -> BoxFuture<'a, Result<Vec<Option<Vec<u8>>>>> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(keys.len());
            for key in keys {
                out.push(self.get_one(key).await);
            }
            Ok(out)
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
            let _writes = self.writes.lock().await;
            let mut values = Vec::with_capacity(keys.len());
            for key in keys {
                let found = self.get_one(key).await;
                if found.is_none() {
                    self.entries.insert(key.clone(), Entry { bytes: lease.into(), ttl: lease_ttl }).await;
                }
                values.push(found);
            }
            Ok(Leased { guard: self.get_one(guard).await, values })
        })
    }

    fn fill(&self, fills: Vec<Fill>) -> BoxFuture<'_, Result<u64>> {
        Box::pin(async move {
            let _writes = self.writes.lock().await;
            let mut stored = 0;
            for fill in fills {
                let held = self.entries.get(&fill.key).await;
                if held.is_none_or(|e| *e.bytes != *fill.lease) {
                    continue;
                }
                match fill.value {
                    Some(value) => {
                        self.entries.insert(fill.key, Entry { bytes: value.into(), ttl: fill.ttl }).await;
                        stored += 1;
                    }
                    None => self.entries.invalidate(&fill.key).await,
                }
            }
            Ok(stored)
        })
    }

    fn advance<'a>(&'a self, key: &'a str, past: u64) -> BoxFuture<'a, Result<u64>> {
        Box::pin(async move {
            let mut map = self.durable();
            let current = match map.get(key) {
                Some(Durable::Counter(n)) => u64::try_from(*n).unwrap_or(0),
                Some(Durable::Bytes(b)) => std::str::from_utf8(b).ok().and_then(|s| s.parse().ok()).unwrap_or(0),
                _ => 0,
            };
            let next = current.max(past) + 1;
            map.insert(key.to_owned(), Durable::Counter(i64::try_from(next).unwrap_or(i64::MAX)));
            Ok(next)
        })
    }

    fn apply(&self, ops: Vec<Op>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let _writes = self.writes.lock().await;
            for op in ops {
                match op {
                    Op::Set { key, value, ttl: Some(ttl) } => {
                        self.durable().remove(&key);
                        self.entries.insert(key, Entry { bytes: value.into(), ttl }).await;
                    }
                    Op::Set { key, value, ttl: None } => {
                        self.entries.invalidate(&key).await;
                        self.durable().insert(key, Durable::Bytes(value));
                    }
                    Op::Del(key) => {
                        self.entries.invalidate(&key).await;
                        self.durable().remove(&key);
                    }
                    Op::SAdd { key, member } => {
                        let mut map = self.durable();
                        match map.entry(key).or_insert_with(|| Durable::Set(HashSet::new())) {
                            Durable::Set(s) => {
                                s.insert(member);
                            }
                            _ => return Err(wrong_type("set")),
                        }
                    }
                    Op::SRem { key, member } => {
                        let mut map = self.durable();
                        if let Some(Durable::Set(s)) = map.get_mut(&key) {
                            s.remove(&member);
                            if s.is_empty() {
                                map.remove(&key);
                            }
                        }
                    }
                    Op::ZAdd { key, member, score } => {
                        let mut map = self.durable();
                        match map.entry(key).or_insert_with(|| Durable::Sorted(HashMap::new())) {
                            Durable::Sorted(z) => {
                                z.insert(member, score);
                            }
                            _ => return Err(wrong_type("sorted set")),
                        }
                    }
                    Op::ZRem { key, member } => {
                        let mut map = self.durable();
                        if let Some(Durable::Sorted(z)) = map.get_mut(&key) {
                            z.remove(&member);
                            if z.is_empty() {
                                map.remove(&key);
                            }
                        }
                    }
                }
            }
            Ok(())
        })
    }

    fn members<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Vec<String>>> {
        Box::pin(async move {
            Ok(match self.durable().get(key) {
                Some(Durable::Set(s)) => s.iter().cloned().collect(),
                _ => Vec::new(),
            })
        })
    }

    fn zrange<'a>(&'a self, key: &'a str, range: ZRange) -> BoxFuture<'a, Result<Vec<(String, f64)>>> {
        Box::pin(async move {
            let map = self.durable();
            let Some(Durable::Sorted(z)) = map.get(key) else { return Ok(Vec::new()) };
            Ok(match range {
                ZRange::Top(n) => sorted_desc(z).into_iter().take(n).collect(),
                ZRange::ByScore { min, max } => {
                    let mut v: Vec<(String, f64)> = sorted_desc(z);
                    v.reverse();
                    v.into_iter().filter(|(_, s)| *s >= min && *s <= max).collect()
                }
            })
        })
    }

    fn zrank_desc<'a>(&'a self, key: &'a str, member: &'a str) -> BoxFuture<'a, Result<Option<u64>>> {
        Box::pin(async move {
            let map = self.durable();
            let Some(Durable::Sorted(z)) = map.get(key) else { return Ok(None) };
            Ok(sorted_desc(z).iter().position(|(m, _)| m == member).map(|p| p as u64))
        })
    }

    fn incr_by<'a>(&'a self, key: &'a str, delta: i64) -> BoxFuture<'a, Result<i64>> {
        Box::pin(async move {
            let mut map = self.durable();
            let slot = map.entry(key.to_owned()).or_insert(Durable::Counter(0));
            match slot {
                Durable::Counter(n) => {
                    *n = n.checked_add(delta).ok_or_else(|| Error::Database {
                        code: None,
                        message: format!("increment of {key} overflows"),
                    })?;
                    Ok(*n)
                }
                Durable::Bytes(b) => {
                    let n: i64 =
                        std::str::from_utf8(b).ok().and_then(|s| s.parse().ok()).ok_or_else(|| wrong_type(key))?;
                    let n = n + delta;
                    *slot = Durable::Counter(n);
                    Ok(n)
                }
                _ => Err(wrong_type(key)),
            }
        })
    }

    fn ping(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async { Ok(()) })
    }
}

/// Members highest score first; equal scores in reverse lexicographic order, like `ZREVRANGE`.
fn sorted_desc(z: &HashMap<String, f64>) -> Vec<(String, f64)> {
    let ordered: BTreeSet<(OrderedScore, &String)> = z.iter().map(|(m, s)| (OrderedScore(*s), m)).collect();
    ordered.into_iter().rev().map(|(s, m)| (m.clone(), s.0)).collect()
}

struct OrderedScore(f64);

impl PartialEq for OrderedScore {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for OrderedScore {}

impl PartialOrd for OrderedScore {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for OrderedScore {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}
