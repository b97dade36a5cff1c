//! The cache on a [`MongoStore`]: read-through by key (rows and "no such row"), invalidation by
//! every MongoDB write path (also inside `MongoTx`, committed and rolled back), the declared
//! Redis indexes, and fills racing each write path — on the in-process cache, single Redis and
//! Redis Cluster.
//!
//! The MongoDB server of the test setup (SecantusDB) is a Python server: a few hundred
//! commands a second. The race tests therefore run [`ITERATIONS`] iterations per path and
//! backend (see docs/caching.md, "Consistency"), enough for the read to hit each window of
//! the lease protocol many times over, while keeping the suite within about 90 s.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use polystore::Value;
use polystore::cache::codec::{Decoded, decode};
use polystore::cache::{Cache, ClusterBackend, MemoryBackend, RedisBackend};
use polystore::mongo::MongoStore;
use polystore::prelude::*;
use polystore_tests::{redis_cluster_urls, redis_url, run_on_mongo, unique_name};

use super::support::{User, UserPatch, cleanup, is_cached, user};

/// The raced model (its own collection): a key and a counter, with negative caching.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "mrace_items", cache(ttl = "5m", negative_ttl = "5m"))]
pub struct Item {
    #[model(primary_key)]
    pub id: i64,
    pub n: i64,
}

/// Iterations per race test (over all workers); see the module comment.
const ITERATIONS: u64 = 150;
/// Concurrent workers, each on documents of its own.
const WORKERS: u64 = 12;

/// Which cache a Mongo test runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Memory,
    Redis,
    Cluster,
}

async fn cache_on(backend: Backend, namespace: &str) -> (Cache, Vec<String>) {
    match backend {
        Backend::Memory => (Cache::builder(MemoryBackend::new(16 << 20)).namespace(namespace).build(), vec![]),
        Backend::Redis => {
            let store = polystore_tests::redis().await;
            (Cache::builder(RedisBackend::new(&store)).namespace(namespace).build(), vec![redis_url()])
        }
        Backend::Cluster => {
            let backend: ClusterBackend = polystore_tests::redis_cluster().await;
            (Cache::builder(backend).namespace(namespace).build(), redis_cluster_urls())
        }
    }
}

/// Runs `body` with a fresh MongoDB database (holding `User`) and a cache attached.
async fn with_mongo<F, Fut>(backend: Backend, body: F)
where
    F: FnOnce(MongoStore, Cache) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let namespace = unique_name("psmcache");
    let (cache, urls) = cache_on(backend, &namespace).await;
    let c = cache.clone();
    run_on_mongo(move |store: MongoStore| async move {
        store.create_all(&[User::SCHEMA]).await.expect("create collection");
        body(store.with_cache(c.clone()), c).await;
    })
    .await;
    cleanup(&urls, &namespace).await;
}

fn key(id: i64) -> Vec<Value> {
    vec![Value::I64(id)]
}

/// Every write path of a `MongoStore` invalidates: after each, the cached read gives what the
/// store holds; the Redis indexes follow.
async fn every_write_path_invalidates(backend: Backend) {
    with_mongo(backend, |m: MongoStore, cache: Cache| async move {
        let ada = user("ada@example.com", "UK", 10).insert(&m).await.unwrap();
        assert_eq!(User::get_cached(&m, ada.id).await.unwrap(), Some(ada.clone()));
        assert!(is_cached(&cache, User::SCHEMA, &key(ada.id)).await, "a read fills the entry");
        let before = m.stats().statements();
        assert_eq!(User::get_cached(&m, ada.id).await.unwrap(), Some(ada.clone()));
        assert_eq!(m.stats().statements(), before, "a hit sends no MongoDB command");

        // Negative entry, then insert.
        assert_eq!(User::get_cached(&m, 999).await.unwrap(), None);
        assert!(is_cached(&cache, User::SCHEMA, &key(999)).await, "the absence is cached");
        let bob = User { id: 999, ..user("bob@example.com", "FR", 5) }.insert_with_key(&m).await.unwrap();
        assert_eq!(User::get_cached(&m, 999).await.unwrap(), Some(bob.clone()), "insert drops the absence");

        let ada2 = User { score: 11, ..ada.clone() }.update(&m).await.unwrap();
        assert_eq!(User::get_cached(&m, ada.id).await.unwrap(), Some(ada2.clone()), "update");
        let patch: UserPatch = serde_json::from_str(r#"{"bio":"hi"}"#).unwrap();
        let ada3 = patch.update(&m, ada.id).await.unwrap();
        assert_eq!(User::get_cached(&m, ada.id).await.unwrap(), Some(ada3.clone()), "partial update");
        let ada4 = User { country: "DE".into(), ..ada3.clone() }.upsert(&m).await.unwrap();
        assert_eq!(User::get_cached(&m, ada.id).await.unwrap(), Some(ada4.clone()), "upsert");
        let ada5 = User { id: 0, score: 42, ..ada4.clone() }.upsert_on(&m, &[User::EMAIL.into()]).await.unwrap();
        assert_eq!(ada5.id, ada.id, "MongoDB keeps the existing document's _id");
        assert_eq!(User::get_cached(&m, ada.id).await.unwrap(), Some(ada5.clone()), "upsert_on");

        let n = User::query().filter(User::COUNTRY.eq("DE")).update_many(&m, [User::SCORE.increment(1)]).await.unwrap();
        assert_eq!(n, 1);
        assert_eq!(User::get_cached(&m, ada.id).await.unwrap().map(|u| u.score), Some(43), "update_many");
        assert_eq!(User::top_by(&m, User::SCORE, 1).await.unwrap()[0].1, 43.0, "the leaderboard follows");
        let de: Vec<i64> =
            User::members_by_value(&m, User::COUNTRY, "DE").await.unwrap().iter().map(|u| u.id).collect();
        assert_eq!(de, vec![ada.id], "the set index follows");
        assert_eq!(User::rank_by(&m, User::SCORE, bob.id).await.unwrap(), Some(1));

        // Transactions: a committed write is never served stale, a rolled-back one loses nothing.
        let mut tx = m.begin().await.unwrap();
        User { score: 50, ..bob.clone() }.update(&mut tx).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(User::get_cached(&m, bob.id).await.unwrap().map(|u| u.score), Some(50), "commit");
        let mut tx = m.begin().await.unwrap();
        User { score: 60, ..bob.clone() }.update(&mut tx).await.unwrap();
        tx.rollback().await.unwrap();
        assert_eq!(User::get_cached(&m, bob.id).await.unwrap().map(|u| u.score), Some(50), "rollback");
        assert_eq!(User::top_by(&m, User::SCORE, 1).await.unwrap()[0].0.id, bob.id);

        assert!(User::delete_by_key(&m, bob.id).await.unwrap());
        assert_eq!(User::get_cached(&m, bob.id).await.unwrap(), None, "delete");
        let gone = User::query().filter(User::ID.eq(ada.id)).delete_many(&m).await.unwrap();
        assert_eq!(gone, 1);
        assert_eq!(User::get_cached(&m, ada.id).await.unwrap(), None, "delete_many");
        assert!(User::members_by_value(&m, User::COUNTRY, "DE").await.unwrap().is_empty());
        assert!(User::top_by(&m, User::SCORE, 5).await.unwrap().is_empty());
    })
    .await
}

#[tokio::test]
async fn mongo_every_write_path_invalidates_memory() {
    every_write_path_invalidates(Backend::Memory).await
}

#[tokio::test]
async fn mongo_every_write_path_invalidates_redis() {
    every_write_path_invalidates(Backend::Redis).await
}

/// The write that races the reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    Insert,
    Update,
    UpdateMany,
    Upsert,
    Delete,
    DeleteMany,
    Commit,
    Rollback,
}

struct Worker {
    db: MongoStore,
    plain: MongoStore,
    cache: Cache,
    path: Path,
    base: i64,
    live: i64,
    keys: Vec<i64>,
    stale: u64,
}

impl Worker {
    async fn setup(&mut self) {
        if !matches!(self.path, Path::Insert | Path::Delete | Path::DeleteMany) {
            Item { id: self.base, n: 0 }.insert(&self.plain).await.expect("seed document");
            self.keys.push(self.base);
        }
    }

    /// One iteration: evict, then the write against cached reads of the key; then check.
    async fn iteration(&mut self, i: i64) {
        let id = match self.path {
            Path::Insert | Path::Delete | Path::DeleteMany => self.base + 1 + i,
            _ => self.base,
        };
        if matches!(self.path, Path::Delete | Path::DeleteMany) {
            Item { id, n: i }.insert(&self.plain).await.expect("document to delete");
        }
        let expect = match self.path {
            Path::Delete | Path::DeleteMany => None,
            Path::Rollback if i % 2 == 1 => Some(self.live),
            _ => Some(i),
        };
        self.cache.evict(Item::SCHEMA, &key(id)).await.expect("evict");
        self.keys.push(id);
        let done = AtomicBool::new(false);
        let reader = async {
            for _ in 0..4 {
                Item::get_cached(&self.db, id).await.expect("cached read");
                if done.load(Ordering::Relaxed) {
                    break;
                }
                tokio::task::yield_now().await;
            }
        };
        let writer = async {
            self.write(id, i).await;
            done.store(true, Ordering::Relaxed);
        };
        futures_util::join!(reader, writer);
        let got = Item::get_cached(&self.db, id).await.expect("cached read").map(|r| r.n);
        if got != expect {
            self.stale += 1;
        }
        if let Some(n) = expect {
            self.live = n;
        }
    }

    async fn write(&self, id: i64, i: i64) {
        let db = &self.db;
        match self.path {
            Path::Insert => drop(Item { id, n: i }.insert(db).await.expect("insert")),
            Path::Update => drop(Item { id, n: i }.update(db).await.expect("update")),
            Path::Upsert => drop(Item { id, n: i }.upsert(db).await.expect("upsert")),
            Path::UpdateMany => {
                let q = Item::query().filter(Item::ID.eq(id));
                assert_eq!(q.update_many(db, [Item::N.set(i)]).await.expect("update_many"), 1);
            }
            Path::Delete => assert!(Item::delete_by_key(db, id).await.expect("delete")),
            Path::DeleteMany => {
                assert_eq!(Item::query().filter(Item::ID.eq(id)).delete_many(db).await.expect("delete_many"), 1);
            }
            Path::Commit | Path::Rollback => {
                let mut tx = db.begin().await.expect("begin");
                Item { id, n: i }.update(&mut tx).await.expect("update in tx");
                if self.path == Path::Rollback && i % 2 == 1 {
                    tx.rollback().await.expect("rollback");
                } else {
                    tx.commit().await.expect("commit");
                }
            }
        }
    }
}

/// Entries left in the cache that differ from the store.
async fn stale_entries(cache: &Cache, plain: &MongoStore, keys: &[i64]) -> u64 {
    let names: Vec<String> = keys.iter().map(|k| cache.keys().entry(Item::SCHEMA, &key(*k))).collect();
    let found = cache.backend().get_many(&names).await.expect("cache answers");
    let rows = Item::query().filter(Item::ID.is_in(keys.to_vec())).all(plain).await.expect("store answers");
    let mut stale = 0;
    for (k, bytes) in keys.iter().zip(found) {
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
    stale
}

/// Runs `path` against MongoDB with `backend`'s cache.
async fn race(backend: Backend, path: Path) {
    let namespace = unique_name("psmrace");
    let (cache, urls) = cache_on(backend, &namespace).await;
    let c = cache.clone();
    run_on_mongo(move |plain: MongoStore| async move {
        let db = plain.with_cache(c.clone());
        let next = Arc::new(AtomicU64::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for w in 0..WORKERS {
            let mut worker = Worker {
                db: db.clone(),
                plain: plain.clone(),
                cache: c.clone(),
                path,
                base: (w as i64 + 1) * 1_000_000,
                live: 0,
                keys: Vec::new(),
                stale: 0,
            };
            let next = next.clone();
            tasks.spawn(async move {
                worker.setup().await;
                let mut i = 0;
                while next.fetch_add(1, Ordering::Relaxed) < ITERATIONS {
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
        let stale = stale_entries(&c, &plain, &keys).await;
        assert_eq!(
            (stale_reads, stale),
            (0, 0),
            "{path:?} on MongoDB with {backend:?}: stale reads, and stale entries left, over {ITERATIONS} iterations"
        );
    })
    .await;
    cleanup(&urls, &namespace).await;
}

/// One race test per cache backend for a MongoDB write path.
macro_rules! mongo_race_test {
    ($name:ident, $path:expr) => {
        mod $name {
            use super::*;

            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                race(Backend::Memory, $path).await
            }

            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                race(Backend::Redis, $path).await
            }

            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn cluster() {
                race(Backend::Cluster, $path).await
            }
        }
    };
}

mongo_race_test!(mongo_insert_races_reads, Path::Insert);
mongo_race_test!(mongo_update_races_reads, Path::Update);
mongo_race_test!(mongo_update_many_races_reads, Path::UpdateMany);
mongo_race_test!(mongo_upsert_races_reads, Path::Upsert);
mongo_race_test!(mongo_delete_races_reads, Path::Delete);
mongo_race_test!(mongo_delete_many_races_reads, Path::DeleteMany);
mongo_race_test!(mongo_commit_races_reads, Path::Commit);
mongo_race_test!(mongo_rollback_races_reads, Path::Rollback);
