//! Fills racing writes: for every write path, concurrent workers each own a few rows, and in
//! every iteration one write of a row races cached reads of it (which miss, because the entry
//! was evicted just before). A read that loaded the row before the write committed must never
//! store it after the write's invalidation. After each iteration the cached read must give
//! what the worker wrote; at the end every entry left in the cache is compared with the store.
//!
//! Each path runs on the in-process cache, single Redis and Redis Cluster (all on PostgreSQL,
//! whose pooled connections let reads and writes really overlap), 4,000 iterations each by
//! default (see [`iterations`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use polystore::cache::codec::{Decoded, decode};
use polystore::cache::{Cache, MemoryBackend};
use polystore::prelude::*;
use polystore::{PoolConfig, Value};

use super::support::{Stores, cache_for, cleanup};

/// The raced model: a key and a counter, cached with negative caching.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "race_items", cache(ttl = "5m", negative_ttl = "5m"))]
pub struct Item {
    #[model(primary_key)]
    pub id: i64,
    pub n: i64,
}

/// Iterations per test (over all workers): `POLYSTORE_RACE_ITERATIONS`, default 4,000.
///
/// 27 tests (9 write paths × 3 caches) run in the suite; at 4,000 iterations each they take
/// about 2.5 minutes on a 2-core machine (a debug build spends about 1 ms of client CPU per
/// iteration). The stale reads these tests were written against showed within the first few
/// hundred iterations. For a soak run, raise it:
/// `POLYSTORE_RACE_ITERATIONS=100000 cargo test -p polystore-tests --all-features --test cache races`.
fn iterations() -> u64 {
    match std::env::var("POLYSTORE_RACE_ITERATIONS") {
        Ok(v) => v.parse().unwrap_or_else(|_| panic!("POLYSTORE_RACE_ITERATIONS must be a number, not {v:?}")),
        Err(_) => 4_000,
    }
}
/// Concurrent workers, each on rows of its own.
const WORKERS: u64 = 40;

/// The write that races the reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    Insert,
    Update,
    UpdateMany,
    Upsert,
    Delete,
    DeleteMany,
    KeyChange,
    Commit,
    Rollback,
}

/// What one worker knows about its rows: the live row's key and counter.
struct Worker {
    db: Db,
    plain: Db,
    cache: Cache,
    path: Path,
    base: i64,
    /// The current row (key, n) for paths that keep one row.
    live: Option<(i64, i64)>,
    /// Every key this worker used.
    keys: Vec<i64>,
    stale: u64,
}

impl Worker {
    async fn setup(&mut self) {
        if matches!(
            self.path,
            Path::Update | Path::UpdateMany | Path::Upsert | Path::KeyChange | Path::Commit | Path::Rollback
        ) {
            Item { id: self.base, n: 0 }.insert(&self.plain).await.expect("seed row");
            self.live = Some((self.base, 0));
            self.keys.push(self.base);
        }
    }

    /// One iteration: evict, then the write against reads of `read` keys; then check.
    async fn iteration(&mut self, i: i64) {
        let fresh = self.base + 1 + i;
        let (read, expect): (Vec<i64>, Vec<Option<i64>>) = match self.path {
            Path::Insert => (vec![fresh], vec![Some(i)]),
            Path::Delete | Path::DeleteMany => {
                Item { id: fresh, n: i }.insert(&self.plain).await.expect("row to delete");
                (vec![fresh], vec![None])
            }
            Path::KeyChange => {
                let (old, _) = self.live.expect("live row");
                (vec![old, fresh], vec![None, Some(i)])
            }
            Path::Rollback if i % 2 == 1 => {
                let (id, n) = self.live.expect("live row");
                (vec![id], vec![Some(n)])
            }
            _ => (vec![self.live.expect("live row").0], vec![Some(i)]),
        };
        for &k in &read {
            self.cache.evict(Item::SCHEMA, &[Value::I64(k)]).await.expect("evict");
            self.keys.push(k);
        }
        let done = AtomicBool::new(false);
        let reader = async {
            // The first read misses and races the write; later ones land before or after its
            // invalidation. A few suffice: reading on adds only hits.
            for _ in 0..4 {
                for &k in &read {
                    Item::get_cached(&self.db, k).await.expect("cached read");
                }
                if done.load(Ordering::Relaxed) {
                    break;
                }
                // An in-process hit never waits: let the write make progress.
                tokio::task::yield_now().await;
            }
        };
        let writer = async {
            self.write(i, &read).await;
            done.store(true, Ordering::Relaxed);
        };
        futures_util::join!(reader, writer);
        for (k, want) in read.iter().zip(&expect) {
            let got = Item::get_cached(&self.db, *k).await.expect("cached read").map(|r| r.n);
            if got != *want {
                self.stale += 1;
            }
        }
        if let Some(Some(n)) = expect.last()
            && self.path != Path::Insert
        {
            self.live = Some((*read.last().expect("a key"), *n));
        }
    }

    async fn write(&self, i: i64, read: &[i64]) {
        let db = &self.db;
        match self.path {
            Path::Insert => drop(Item { id: read[0], n: i }.insert(db).await.expect("insert")),
            Path::Update => drop(Item { id: read[0], n: i }.update(db).await.expect("update")),
            Path::Upsert => drop(Item { id: read[0], n: i }.upsert(db).await.expect("upsert")),
            Path::UpdateMany => {
                let q = Item::query().filter(Item::ID.eq(read[0]));
                assert_eq!(q.update_many(db, [Item::N.set(i)]).await.expect("update_many"), 1);
            }
            Path::Delete => assert!(Item::delete_by_key(db, read[0]).await.expect("delete")),
            Path::DeleteMany => {
                assert_eq!(Item::query().filter(Item::ID.eq(read[0])).delete_many(db).await.expect("delete_many"), 1);
            }
            Path::KeyChange => {
                let q = Item::query().filter(Item::ID.eq(read[0]));
                let n = q.update_many(db, [Item::ID.set(read[1]), Item::N.set(i)]).await.expect("key change");
                assert_eq!(n, 1);
            }
            Path::Commit => {
                let mut tx = db.begin().await.expect("begin");
                Item { id: read[0], n: i }.update(&mut tx).await.expect("update in tx");
                tx.commit().await.expect("commit");
            }
            Path::Rollback => {
                let mut tx = db.begin().await.expect("begin");
                Item { id: read[0], n: i }.update(&mut tx).await.expect("update in tx");
                if i % 2 == 1 {
                    tx.rollback().await.expect("rollback");
                } else {
                    tx.commit().await.expect("commit");
                }
            }
        }
    }
}

/// Entries left in the cache that differ from the store (a cached row or absence that the
/// store does not hold). Leases and other markers are not entries.
async fn stale_entries(cache: &Cache, plain: &Db, keys: &[i64]) -> u64 {
    let mut stale = 0;
    for chunk in keys.chunks(500) {
        let names: Vec<String> = chunk.iter().map(|k| cache.keys().entry(Item::SCHEMA, &[Value::I64(*k)])).collect();
        let found = cache.backend().get_many(&names).await.expect("cache answers");
        let rows = Item::query().filter(Item::ID.is_in(chunk.to_vec())).all(plain).await.expect("store answers");
        for (k, bytes) in chunk.iter().zip(found) {
            let stored = rows.iter().find(|r| r.id == *k).map(|r| r.to_values().expect("values"));
            let cached = match bytes.map(|b| decode(Item::SCHEMA, &b)) {
                Some(Decoded::Row(values)) => Some(values),
                Some(Decoded::Absent) => None,
                _ => continue,
            };
            if cached != stored {
                stale += 1;
            }
        }
    }
    stale
}

/// Runs `path` on `stores` (PostgreSQL under every cache backend).
pub async fn race(stores: Stores, path: Path) {
    let namespace = polystore_tests::unique_name("psrace");
    let (cache, urls) = match stores {
        Stores::MemorySqlite => (Cache::builder(MemoryBackend::new(64 << 20)).namespace(&namespace).build(), vec![]),
        other => cache_for(other, &namespace).await,
    };
    let test_db = polystore_tests::pg_with(PoolConfig {
        max_connections: 12,
        acquire_timeout: std::time::Duration::from_secs(30),
        ..PoolConfig::default()
    })
    .await;
    let plain = test_db.db().clone();
    plain.create_all(&[Item::SCHEMA]).await.expect("create table");
    let db = plain.with_cache(cache.clone());
    let next = Arc::new(AtomicU64::new(0));
    let iterations = iterations();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..WORKERS {
        let mut worker = Worker {
            db: db.clone(),
            plain: plain.clone(),
            cache: cache.clone(),
            path,
            base: (w as i64 + 1) * 1_000_000,
            live: None,
            keys: Vec::new(),
            stale: 0,
        };
        let next = next.clone();
        tasks.spawn(async move {
            worker.setup().await;
            let mut i = 0;
            while next.fetch_add(1, Ordering::Relaxed) < iterations {
                worker.iteration(i).await;
                i += 1;
            }
            (worker.stale, worker.keys)
        });
    }
    let (mut stale_reads, mut keys) = (0, Vec::new());
    while let Some(done) = tasks.join_next().await {
        let (stale, k) = done.expect("worker");
        stale_reads += stale;
        keys.extend(k);
    }
    keys.sort_unstable();
    keys.dedup();
    let stale = stale_entries(&cache, &plain, &keys).await;
    test_db.cleanup().await;
    cleanup(&urls, &namespace).await;
    assert_eq!(
        (stale_reads, stale),
        (0, 0),
        "{path:?} on {stores:?}: stale reads after a write, and stale entries left in the cache, over {iterations} iterations"
    );
}

/// One race test per backend for a write path.
macro_rules! race_test {
    ($name:ident, $path:expr) => {
        mod $name {
            use super::*;

            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                race(Stores::MemorySqlite, $path).await
            }

            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                race(Stores::RedisPostgres, $path).await
            }

            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn cluster() {
                race(Stores::ClusterPostgres, $path).await
            }
        }
    };
}

race_test!(insert_races_reads, Path::Insert);
race_test!(update_races_reads, Path::Update);
race_test!(update_many_races_reads, Path::UpdateMany);
race_test!(upsert_races_reads, Path::Upsert);
race_test!(delete_races_reads, Path::Delete);
race_test!(delete_many_races_reads, Path::DeleteMany);
race_test!(key_change_races_reads, Path::KeyChange);
race_test!(commit_races_reads, Path::Commit);
race_test!(rollback_races_reads, Path::Rollback);
