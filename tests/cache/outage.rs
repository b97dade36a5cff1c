//! Lost invalidations: rows are cached, then Redis becomes unreachable while they are updated
//! (the invalidations cannot be delivered), then Redis comes back *with its data* — a
//! persistent server killed and restarted, or a network partition healed. The old entries are
//! still in Redis; none of them may be served.
//!
//! Private servers on this suite's ports (7110-7119), data under the worktree's `.dev/`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use polystore::Value;
use polystore::cache::{Cache, RedisBackend};
use polystore::prelude::*;
use polystore::redis::{RedisStore, driver as redis};
use polystore_tests::run_on_postgres;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::support::{PrivateRedis, SCHEMAS, User, user};

/// A cache that gives up on Redis quickly and probes it often (what the tests wait for).
fn quick_cache(store: &RedisStore) -> Cache {
    Cache::builder(RedisBackend::new(store))
        .namespace(polystore_tests::unique_name("psoutage"))
        .op_timeout(Duration::from_millis(200))
        .backoff(Duration::from_millis(20), Duration::from_millis(200))
        .build()
}

/// Waits until the cache uses its backend again (the breaker closed, after the fence).
async fn recovered(db: &Db, cache: &Cache) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        // A cached read starts the background probe once the back-off is over.
        User::get_cached(db, -1).await.expect("read");
        if cache.is_available() {
            return;
        }
        assert!(Instant::now() < deadline, "the cache did not recover");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether Redis (read directly at `url`) still holds `key`.
async fn held(url: &str, key: &str) -> bool {
    let store = RedisStore::connect(url).await.expect("private redis answers");
    let found: Option<Vec<u8>> = redis::cmd("GET").arg(key).query_async(&mut store.connection()).await.expect("GET");
    found.is_some()
}

/// Caches `n` users, returns them with their entry keys (of the current generation).
async fn cached_users(db: &Db, cache: &Cache, n: usize) -> (Vec<User>, Vec<String>) {
    let mut users = Vec::new();
    for i in 0..n {
        let u = user(&format!("u{i}@x"), "NZ", i as i64).insert(db).await.expect("insert");
        assert_eq!(User::get_cached(db, u.id).await.expect("read"), Some(u.clone()));
        users.push(u);
    }
    let keys = users.iter().map(|u| cache.keys().entry(User::SCHEMA, &[Value::I64(u.id)])).collect();
    (users, keys)
}

/// Updates every user while Redis is unreachable: the writes succeed, reads come from the
/// database, and none of them waits on Redis once the breaker is open.
async fn update_during_outage(db: &Db, users: &mut [User]) {
    for u in users.iter_mut() {
        u.score += 100;
        u.update(db).await.expect("writes succeed while Redis is down");
    }
    for u in users.iter() {
        let started = Instant::now();
        assert_eq!(User::find_cached(db, u.id).await.expect("read").score, u.score, "served by the database");
        assert!(started.elapsed() < Duration::from_millis(150), "a read waited on Redis: {:?}", started.elapsed());
    }
}

/// Zero stale reads after recovery, with the old entries still in Redis.
async fn no_stale_reads(db: &Db, cache: &Cache, users: &[User], url: &str, old_keys: &[String]) {
    let mut still_held = 0;
    for key in old_keys {
        still_held += usize::from(held(url, key).await);
    }
    assert_eq!(still_held, users.len(), "Redis came back holding the entries written before the outage");
    for _ in 0..3 {
        for u in users {
            assert_eq!(User::find_cached(db, u.id).await.expect("read").score, u.score, "a stale entry was served");
        }
    }
    assert!(cache.stats().lost_invalidations() > 0 && cache.stats().fences() >= 1, "the fence was made");
    assert!(cache.stats().hits() > 0, "caching resumed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_from_before_a_lost_invalidation_are_not_served_after_a_persistent_redis_restarts() {
    let mut server = PrivateRedis::persistent(7110).await;
    let url = server.url();
    let store = RedisStore::connect(&url).await.expect("private redis-server answers");
    let cache = quick_cache(&store);
    run_on_postgres(|db: Db| async move {
        db.create_all(SCHEMAS).await?;
        let db = db.with_cache(cache.clone());
        let (mut users, old_keys) = cached_users(&db, &cache, 10).await;
        server.stop();
        update_during_outage(&db, &mut users).await;
        assert!(!cache.is_available(), "the breaker is open");
        server.restart().await;
        recovered(&db, &cache).await;
        no_stale_reads(&db, &cache, &users, &url, &old_keys).await;
        Ok::<_, polystore::Error>(())
    })
    .await;
}

/// A TCP proxy of the test's own: forwards to Redis until `cut`, then holds every connection
/// silent (a partition: requests hang, nothing is refused) until `restore` drops them.
struct Proxy {
    up: watch::Sender<bool>,
    port: u16,
}

impl Proxy {
    async fn start(port: u16, upstream: u16) -> Proxy {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("proxy port free");
        let (up, rx) = watch::channel(true);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(forward(client, upstream, rx.clone()));
            }
        });
        Proxy { up, port }
    }

    fn cut(&self) {
        self.up.send_replace(false);
    }

    fn restore(&self) {
        self.up.send_replace(true);
    }
}

async fn forward(mut client: TcpStream, upstream: u16, mut up: watch::Receiver<bool>) {
    if !*up.borrow() {
        // Accepted during the partition: silent until it heals, then closed.
        let _ = up.wait_for(|up| *up).await;
        return;
    }
    let Ok(mut server) = TcpStream::connect(("127.0.0.1", upstream)).await else { return };
    let cut = tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => false,
        _ = up.wait_for(|up| !*up) => true,
    };
    if cut {
        let _ = up.wait_for(|up| *up).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_from_before_a_lost_invalidation_are_not_served_after_a_partition_heals() {
    let server = PrivateRedis::persistent(7111).await;
    let proxy = Arc::new(Proxy::start(7112, server.port).await);
    let store = RedisStore::connect(&format!("redis://127.0.0.1:{}/", proxy.port)).await.expect("redis via the proxy");
    let cache = quick_cache(&store);
    let direct = server.url();
    run_on_postgres(|db: Db| async move {
        db.create_all(SCHEMAS).await?;
        let db = db.with_cache(cache.clone());
        let (mut users, old_keys) = cached_users(&db, &cache, 10).await;
        proxy.cut();
        update_during_outage(&db, &mut users).await;
        assert!(!cache.is_available(), "the breaker is open");
        proxy.restore();
        recovered(&db, &cache).await;
        no_stale_reads(&db, &cache, &users, &direct, &old_keys).await;
        drop(server);
        Ok::<_, polystore::Error>(())
    })
    .await;
}

/// Declared indexes after a lost invalidation: the set index and the leaderboard in Redis
/// still hold what they held before the outage (a member missing from the new value's set, an
/// old score), so until `rebuild_redis_indexes` runs they must not answer — the store does —
/// and after it they answer from Redis again, right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_indexes_are_not_used_after_a_lost_invalidation_until_rebuilt() {
    let mut server = PrivateRedis::persistent(7113).await;
    let url = server.url();
    let store = RedisStore::connect(&url).await.expect("private redis-server answers");
    let cache = quick_cache(&store);
    run_on_postgres(|db: Db| async move {
        db.create_all(SCHEMAS).await?;
        let db = db.with_cache(cache.clone());
        let (mut users, _) = cached_users(&db, &cache, 5).await;
        assert_eq!(User::rank_by(&db, User::SCORE, users[0].id).await?, Some(4));
        server.stop();
        users[0].score = 1_000;
        users[0].country = "FR".into();
        users[0].update(&db).await.expect("the write succeeds while Redis is down");
        server.restart().await;
        recovered(&db, &cache).await;
        let check = |when: &'static str| {
            let (db, first) = (db.clone(), users[0].clone());
            async move {
                let fr: Vec<i64> =
                    User::members_by_value(&db, User::COUNTRY, "FR").await?.iter().map(|u| u.id).collect();
                assert_eq!(fr, vec![first.id], "{when}: the set index missed the moved member");
                assert_eq!(User::rank_by(&db, User::SCORE, first.id).await?, Some(0), "{when}: stale rank");
                let top = User::top_by(&db, User::SCORE, 1).await?;
                assert_eq!(top[0].0.id, first.id, "{when}: stale leaderboard");
                Ok::<_, polystore::Error>(())
            }
        };
        check("after recovery").await?;
        assert_eq!(User::rebuild_redis_indexes(&db).await?, 5);
        check("after the rebuild").await?;
        // The rows are cached now: a degraded answer would count misses, Redis answers none.
        let misses = cache.stats().misses();
        check("from Redis").await?;
        assert_eq!(cache.stats().misses(), misses, "after the rebuild the indexes answer from Redis");
        Ok::<_, polystore::Error>(())
    })
    .await;
}
