//! Degradation: a private Redis is stopped in the middle of a test — reads are served by the
//! database, writes succeed, failures are counted — then restarted, and caching resumes.

use std::time::{Duration, Instant};

use polystore::cache::{Cache, RedisBackend};
use polystore::prelude::*;
use polystore::redis::RedisStore;
use polystore_tests::run_on_postgres;

use super::support::{PrivateRedis, SCHEMAS, User, statements, user};

#[tokio::test]
async fn reads_fall_through_while_redis_is_down_and_caching_resumes_after_a_restart() {
    let mut server = PrivateRedis::start().await;
    let store = RedisStore::connect(&server.url()).await.expect("private redis-server answers");
    let cache = Cache::builder(RedisBackend::new(&store)).op_timeout(Duration::from_millis(300)).build();
    run_on_postgres(|db: Db| async move {
        db.create_all(SCHEMAS).await?;
        let db = db.with_cache(cache.clone());
        let mut ada = user("ada@example.com", "NZ", 10).insert(&db).await?;
        User::get_cached(&db, ada.id).await?;
        let before = statements(&db);
        User::get_cached(&db, ada.id).await?;
        assert_eq!(statements(&db) - before, 0, "cached while Redis is up");

        server.stop();
        let started = Instant::now();
        assert_eq!(User::find_cached(&db, ada.id).await?.id, ada.id, "served by the database");
        assert!(started.elapsed() < Duration::from_secs(2), "no long stall: {:?}", started.elapsed());
        ada.score = 11;
        ada.update(&db).await?;
        let bob = user("bob@example.com", "NZ", 5).insert(&db).await?;
        assert_eq!(User::query().filter(User::EMAIL.eq("nobody")).delete_many(&db).await?, 0);
        assert_eq!(User::find_cached(&db, ada.id).await?.score, 11);
        let nz = User::members_by_value(&db, User::COUNTRY, "NZ").await?;
        assert_eq!(nz.len(), 2, "set-index questions answered by SQL");
        assert_eq!(User::top_by(&db, User::SCORE, 1).await?[0].0.id, ada.id);
        assert!(cache.stats().errors() > 0, "failures are counted");

        server.restart().await;
        let deadline = Instant::now() + Duration::from_secs(15);
        // Reads start the breaker's background probe; it closes once Redis answers.
        while !cache.is_available() {
            assert!(Instant::now() < deadline, "the cache did not resume");
            User::get_cached(&db, -1).await?;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(User::find_cached(&db, bob.id).await?.score, 5);
        let before = statements(&db);
        assert_eq!(User::find_cached(&db, bob.id).await?.score, 5);
        assert_eq!(statements(&db) - before, 0, "caching resumed");
        Ok::<_, polystore::Error>(())
    })
    .await;
}
