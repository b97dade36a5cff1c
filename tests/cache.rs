//! Caching against real stores: read-through hits and misses, invalidation by every write
//! path (also in transactions), negative caching, TTL expiry, stampede protection, unique
//! lookups, set indexes and leaderboards, key uniqueness, corrupt entries — each on single
//! Redis (PostgreSQL and SQLite), Redis Cluster and the in-process cache; then Redis stopped
//! and restarted mid-test, and hash-slot co-location on the cluster.

#[macro_use]
#[path = "cache/support.rs"]
mod support;
#[path = "cache/mongo.rs"]
mod mongo;
#[path = "cache/moved_keys.rs"]
mod moved_keys;
#[path = "cache/outage.rs"]
mod outage;
#[path = "cache/races.rs"]
mod races;
#[path = "cache/unavailable.rs"]
mod unavailable;

use std::time::Duration;

use polystore::Value;
use polystore::cache::{Cache, HashTag, MemoryBackend, Op, WriteMode};
use polystore::prelude::*;
use polystore_tests::assert_err;
use support::{Line, User, is_cached, line, statements, user};

fn id(u: &User) -> Vec<Value> {
    vec![Value::I64(u.id)]
}

cache_test!(a_read_misses_once_then_hits, |db: Db, cache: Cache| async move {
    let ada = user("ada@example.com", "UK", 10).insert(&db).await.unwrap();
    let before = statements(&db);
    assert_eq!(User::get_cached(&db, ada.id).await.unwrap(), Some(ada.clone()));
    assert_eq!(User::find_cached(&db, ada.id).await.unwrap(), ada);
    assert_eq!(statements(&db) - before, 1, "the second read is served by the cache");
    assert_eq!((cache.stats().misses(), cache.stats().hits()), (1, 1));
    assert!(is_cached(&cache, User::SCHEMA, &id(&ada)).await);
});

cache_test!(a_missing_row_is_cached_as_absent, |db: Db, cache: Cache| async move {
    let before = statements(&db);
    assert_eq!(Line::get_cached(&db, ("t".into(), "nope".into())).await.unwrap(), None);
    assert_eq!(Line::get_cached(&db, ("t".into(), "nope".into())).await.unwrap(), None);
    assert_err!(Line::find_cached(&db, ("t".into(), "nope".into())).await, Error::NotFound { model: "Line" });
    assert_eq!(statements(&db) - before, 1);
    assert_eq!(cache.stats().negative_hits(), 2);
});

cache_test!(insert_replaces_a_cached_absence, |db: Db, _cache: Cache| async move {
    assert_eq!(Line::get_cached(&db, ("t".into(), "a".into())).await.unwrap(), None);
    line("t", "a", 1).insert(&db).await.unwrap();
    assert_eq!(Line::get_cached(&db, ("t".into(), "a".into())).await.unwrap(), Some(line("t", "a", 1)));
});

cache_test!(insert_many_replaces_cached_absences, |db: Db, _cache: Cache| async move {
    let keys: Vec<(String, String)> = (0..3).map(|i| ("t".to_owned(), format!("k{i}"))).collect();
    assert_eq!(Line::get_many_cached(&db, keys.clone()).await.unwrap(), vec![None, None, None]);
    let rows: Vec<Line> = (0..3).map(|i| line("t", &format!("k{i}"), i)).collect();
    Line::insert_many(&db, &rows).await.unwrap();
    let found = Line::get_many_cached(&db, keys).await.unwrap();
    assert_eq!(found, rows.into_iter().map(Some).collect::<Vec<_>>());
});

cache_test!(update_invalidates_the_entry, |db: Db, cache: Cache| async move {
    let mut ada = user("ada@example.com", "UK", 10).insert(&db).await.unwrap();
    User::get_cached(&db, ada.id).await.unwrap();
    ada.bio = Some("analyst".into());
    ada.update(&db).await.unwrap();
    assert!(!is_cached(&cache, User::SCHEMA, &id(&ada)).await);
    assert_eq!(User::find_cached(&db, ada.id).await.unwrap().bio.as_deref(), Some("analyst"));
});

cache_test!(upsert_invalidates_the_entry, |db: Db, _cache: Cache| async move {
    line("t", "a", 1).insert(&db).await.unwrap();
    assert_eq!(Line::find_cached(&db, ("t".into(), "a".into())).await.unwrap().qty, 1);
    line("t", "a", 2).upsert(&db).await.unwrap();
    assert_eq!(Line::find_cached(&db, ("t".into(), "a".into())).await.unwrap().qty, 2);
});

cache_test!(partial_updates_invalidate_and_move_index_memberships, |db: Db, _cache: Cache| async move {
    let ada = user("ada@example.com", "UK", 10).insert(&db).await.unwrap();
    User::get_cached(&db, ada.id).await.unwrap();
    let patch: support::UserPatch = serde_json::from_str(r#"{"country":"NZ","bio":"moved"}"#).unwrap();
    patch.update(&db, ada.id).await.unwrap();
    let found = User::find_cached(&db, ada.id).await.unwrap();
    assert_eq!((found.country.as_str(), found.bio.as_deref()), ("NZ", Some("moved")));
    assert_eq!(User::members_by_value(&db, User::COUNTRY, "NZ").await.unwrap().len(), 1);
    assert!(User::members_by_value(&db, User::COUNTRY, "UK").await.unwrap().is_empty());
});

cache_test!(relation_links_and_unlinks_keep_join_rows_right, |db: Db, _cache: Cache| async move {
    use polystore::relation::Rel;
    use support::{Article, ArticleLabel, Label};
    let article = Article { id: 0, title: "caching".into(), labels: Rel::NotLoaded }.insert(&db).await.unwrap();
    let label = Label { id: 0, name: "redis".into() }.insert(&db).await.unwrap();
    let key = (article.id, label.id);
    assert!(ArticleLabel::get_cached(&db, key).await.unwrap().is_none(), "absence cached");
    Article::LABELS.link(&db, &article, &label).await.unwrap();
    assert!(ArticleLabel::get_cached(&db, key).await.unwrap().is_some(), "link dropped the cached absence");
    let tagged = ArticleLabel::members_by_value(&db, ArticleLabel::LABEL_ID, label.id).await.unwrap();
    assert_eq!(tagged.iter().map(|j| j.article_id).collect::<Vec<_>>(), [article.id]);
    assert!(Article::LABELS.unlink(&db, &article, &label).await.unwrap());
    assert!(ArticleLabel::get_cached(&db, key).await.unwrap().is_none(), "unlink invalidated the entry");
    assert!(ArticleLabel::members_by_value(&db, ArticleLabel::LABEL_ID, label.id).await.unwrap().is_empty());
});

cache_test!(delete_and_delete_by_key_invalidate_the_entry, |db: Db, _cache: Cache| async move {
    let a = line("t", "a", 1).insert(&db).await.unwrap();
    line("t", "b", 1).insert(&db).await.unwrap();
    Line::get_many_cached(&db, vec![("t".into(), "a".into()), ("t".into(), "b".into())]).await.unwrap();
    a.delete(&db).await.unwrap();
    assert!(Line::delete_by_key(&db, ("t".into(), "b".into())).await.unwrap());
    assert_eq!(Line::get_cached(&db, ("t".into(), "a".into())).await.unwrap(), None);
    assert_eq!(Line::get_cached(&db, ("t".into(), "b".into())).await.unwrap(), None);
});

cache_test!(update_many_invalidates_exactly_the_affected_rows, |db: Db, cache: Cache| async move {
    let nz1 = user("a@x", "NZ", 1).insert(&db).await.unwrap();
    let nz2 = user("b@x", "NZ", 2).insert(&db).await.unwrap();
    let uk = user("c@x", "UK", 3).insert(&db).await.unwrap();
    User::get_many_cached(&db, vec![nz1.id, nz2.id, uk.id]).await.unwrap();
    let n = User::query().filter(User::COUNTRY.eq("NZ")).update_many(&db, [User::SCORE.increment(10)]).await.unwrap();
    assert_eq!(n, 2);
    assert!(!is_cached(&cache, User::SCHEMA, &id(&nz1)).await);
    assert!(!is_cached(&cache, User::SCHEMA, &id(&nz2)).await);
    assert!(is_cached(&cache, User::SCHEMA, &id(&uk)).await, "an unaffected row stays cached");
    assert_eq!(User::find_cached(&db, nz2.id).await.unwrap().score, 12);
});

cache_test!(delete_many_invalidates_exactly_the_affected_rows, |db: Db, cache: Cache| async move {
    let nz = user("a@x", "NZ", 1).insert(&db).await.unwrap();
    let uk = user("c@x", "UK", 3).insert(&db).await.unwrap();
    User::get_many_cached(&db, vec![nz.id, uk.id]).await.unwrap();
    assert_eq!(User::query().filter(User::COUNTRY.eq("NZ")).delete_many(&db).await.unwrap(), 1);
    assert_eq!(User::get_cached(&db, nz.id).await.unwrap(), None);
    assert!(is_cached(&cache, User::SCHEMA, &id(&uk)).await);
});

cache_test!(writes_in_a_transaction_invalidate_now_and_after_commit, |db: Db, cache: Cache| async move {
    let mut ada = user("ada@example.com", "UK", 10).insert(&db).await.unwrap();
    User::get_cached(&db, ada.id).await.unwrap();
    let mut tx = db.begin().await.unwrap();
    ada.score = 99;
    ada.update(&mut tx).await.unwrap();
    assert!(!is_cached(&cache, User::SCHEMA, &id(&ada)).await, "invalidated inside the transaction");
    assert_eq!(User::find_cached(&mut tx, ada.id).await.unwrap().score, 99, "the transaction reads its own write");
    if db.backend() == polystore::Backend::Postgres {
        // Another connection still sees (and caches) the committed row meanwhile...
        assert_eq!(User::find_cached(&db, ada.id).await.unwrap().score, 10);
    }
    tx.commit().await.unwrap();
    // ...which the commit invalidates again.
    assert_eq!(User::find_cached(&db, ada.id).await.unwrap().score, 99);
    assert_eq!(User::top_by(&db, User::SCORE, 1).await.unwrap()[0].1, 99.0);
});

cache_test!(a_rolled_back_write_leaves_the_cache_right, |db: Db, _cache: Cache| async move {
    let mut ada = user("ada@example.com", "UK", 10).insert(&db).await.unwrap();
    let mut tx = db.begin().await.unwrap();
    ada.country = "NZ".into();
    ada.update(&mut tx).await.unwrap();
    let mut inner = tx.begin().await.unwrap();
    User::delete_by_key(&mut inner, ada.id).await.unwrap();
    inner.rollback().await.unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(User::find_cached(&db, ada.id).await.unwrap().country, "UK");
    let uk = User::members_by_value(&db, User::COUNTRY, "UK").await.unwrap();
    assert_eq!(uk.len(), 1);
    assert!(User::members_by_value(&db, User::COUNTRY, "NZ").await.unwrap().is_empty());
});

cache_test!(a_nested_commit_reaches_the_cache_with_the_outer_commit, |db: Db, _cache: Cache| async move {
    let ada = user("ada@example.com", "UK", 10).insert(&db).await.unwrap();
    let mut tx = db.begin().await.unwrap();
    let mut inner = tx.begin().await.unwrap();
    User::query().filter(User::ID.eq(ada.id)).update_many(&mut inner, [User::COUNTRY.set("NZ")]).await.unwrap();
    inner.commit().await.unwrap();
    assert!(User::members_by_value(&mut tx, User::COUNTRY, "NZ").await.unwrap().len() == 1, "SQL inside the tx");
    tx.commit().await.unwrap();
    assert_eq!(User::members_by_value(&db, User::COUNTRY, "NZ").await.unwrap().len(), 1);
    assert!(User::members_by_value(&db, User::COUNTRY, "UK").await.unwrap().is_empty());
    assert_eq!(User::find_cached(&db, ada.id).await.unwrap().country, "NZ");
});

cache_test!(entries_expire_after_their_ttl, |db: Db, cache: Cache| async move {
    let ada = user("ada@example.com", "UK", 10).insert(&db).await.unwrap();
    let short = |db| User::cached(db).ttl(Duration::from_millis(300)).jitter(Duration::ZERO);
    short(&db).get(ada.id).await.unwrap();
    assert!(is_cached(&cache, User::SCHEMA, &id(&ada)).await);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!is_cached(&cache, User::SCHEMA, &id(&ada)).await, "expired");
    let before = statements(&db);
    short(&db).get(ada.id).await.unwrap();
    assert_eq!(statements(&db) - before, 1);
    // A cached absence expires too.
    User::cached(&db).negative_ttl(Some(Duration::from_millis(300))).get(-1).await.unwrap();
    assert!(is_cached(&cache, User::SCHEMA, &[Value::I64(-1)]).await);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!is_cached(&cache, User::SCHEMA, &[Value::I64(-1)]).await);
});

cache_test!(rows_over_the_size_limit_are_not_cached, |db: Db, cache: Cache| async move {
    let mut ada = user("ada@example.com", "UK", 10).insert(&db).await.unwrap();
    ada.bio = Some("x".repeat(500));
    ada.update(&db).await.unwrap();
    let limited = |db| User::cached(db).max_entry_bytes(Some(200));
    assert_eq!(limited(&db).get(ada.id).await.unwrap(), Some(ada.clone()));
    assert!(!is_cached(&cache, User::SCHEMA, &id(&ada)).await);
    assert_eq!(cache.stats().skipped(), 1);
    ada.bio = None;
    ada.update(&db).await.unwrap();
    limited(&db).get(ada.id).await.unwrap();
    assert!(is_cached(&cache, User::SCHEMA, &id(&ada)).await, "a small row fits");
});

cache_test!(concurrent_misses_read_the_database_once, |db: Db, cache: Cache| async move {
    let ada = user("ada@example.com", "UK", 10).insert(&db).await.unwrap();
    let before = statements(&db);
    let reads = (0..50).map(|_| User::get_cached(&db, ada.id));
    let found = futures_util::future::join_all(reads).await;
    assert!(found.iter().all(|r| r.as_ref().unwrap().as_ref() == Some(&ada)));
    assert_eq!(statements(&db) - before, 1, "50 concurrent misses, one database read");
    assert_eq!(cache.stats().coalesced(), 49);
});

cache_test!(get_many_uses_one_mget_and_one_query, |db: Db, cache: Cache| async move {
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(user(&format!("u{i}@x"), "UK", i).insert(&db).await.unwrap().id);
    }
    User::get_many_cached(&db, ids[..5].to_vec()).await.unwrap();
    let before = statements(&db);
    let mut asked = ids.clone();
    asked.push(-5);
    let found = User::get_many_cached(&db, asked).await.unwrap();
    assert_eq!(statements(&db) - before, 1, "one query for the five misses and the absent key");
    assert_eq!(
        found.iter().map(|u| u.as_ref().map(|u| u.id)).collect::<Vec<_>>()[..10],
        ids.iter().map(|i| Some(*i)).collect::<Vec<_>>()[..]
    );
    assert_eq!(found[10], None);
    assert_eq!(cache.stats().hits(), 5);
});

cache_test!(unique_lookups_follow_updates, |db: Db, _cache: Cache| async move {
    let mut ada = user("ada@example.com", "UK", 10).insert(&db).await.unwrap();
    let by_email = |db, email: &'static str| User::find_by_unique_cached(db, User::EMAIL, email);
    assert_eq!(by_email(&db, "ada@example.com").await.unwrap(), Some(ada.clone()));
    // The first lookup fills only the lookup key (the entry was not leased); the second
    // fills the entry through a leased read by key; the third is served by the cache.
    assert_eq!(by_email(&db, "ada@example.com").await.unwrap(), Some(ada.clone()));
    let before = statements(&db);
    assert_eq!(by_email(&db, "ada@example.com").await.unwrap(), Some(ada.clone()));
    assert_eq!(statements(&db) - before, 0, "lookup key and entry both cached");
    assert_eq!(by_email(&db, "lovelace@example.com").await.unwrap(), None);
    ada.email = "lovelace@example.com".into();
    ada.update(&db).await.unwrap();
    assert_eq!(by_email(&db, "ada@example.com").await.unwrap(), None, "the old value no longer finds the row");
    assert_eq!(by_email(&db, "lovelace@example.com").await.unwrap(), Some(ada), "the cached absence was dropped");
    assert_err!(User::find_by_unique_cached(&db, User::COUNTRY, "UK").await, Error::Config(_));
});

cache_test!(set_indexes_track_every_write_path, |db: Db, _cache: Cache| async move {
    let countries = |db| async move {
        let mut nz: Vec<String> =
            User::members_by_value(db, User::COUNTRY, "NZ").await.unwrap().into_iter().map(|u| u.email).collect();
        nz.sort();
        nz
    };
    let mut a = user("a@x", "NZ", 1).insert(&db).await.unwrap();
    User::insert_many(&db, &[user("b@x", "NZ", 2), user("c@x", "UK", 3)]).await.unwrap();
    assert_eq!(countries(&db).await, ["a@x", "b@x"]);
    a.country = "UK".into();
    a.update(&db).await.unwrap();
    assert_eq!(countries(&db).await, ["b@x"]);
    User::query().filter(User::EMAIL.eq("c@x")).update_many(&db, [User::COUNTRY.set("NZ")]).await.unwrap();
    assert_eq!(countries(&db).await, ["b@x", "c@x"]);
    User::query().filter(User::EMAIL.eq("b@x")).delete_many(&db).await.unwrap();
    assert_eq!(countries(&db).await, ["c@x"]);
    let uk = User::members_by_value(&db, User::COUNTRY, "UK").await.unwrap();
    assert_eq!(uk.iter().map(|u| u.email.as_str()).collect::<Vec<_>>(), ["a@x"]);
});

cache_test!(leaderboards_answer_top_rank_and_range, |db: Db, _cache: Cache| async move {
    let mut users = Vec::new();
    for (i, score) in [50, 20, 90, 70].into_iter().enumerate() {
        users.push(user(&format!("u{i}@x"), "UK", score).insert(&db).await.unwrap());
    }
    let top: Vec<(String, f64)> =
        User::top_by(&db, User::SCORE, 3).await.unwrap().into_iter().map(|(u, s)| (u.email, s)).collect();
    assert_eq!(top, [("u2@x".to_owned(), 90.0), ("u3@x".to_owned(), 70.0), ("u0@x".to_owned(), 50.0)]);
    assert_eq!(User::rank_by(&db, User::SCORE, users[1].id).await.unwrap(), Some(3));
    let mid: Vec<i64> =
        User::range_by_score(&db, User::SCORE, 20.0, 60.0).await.unwrap().into_iter().map(|(u, _)| u.score).collect();
    assert_eq!(mid, [20, 50]);
    User::query().filter(User::EMAIL.eq("u1@x")).update_many(&db, [User::SCORE.increment(100)]).await.unwrap();
    assert_eq!(User::rank_by(&db, User::SCORE, users[1].id).await.unwrap(), Some(0));
    users[2].delete(&db).await.unwrap();
    assert_eq!(User::rank_by(&db, User::SCORE, users[2].id).await.unwrap(), None);
    assert_eq!(User::top_by(&db, User::SCORE, 10).await.unwrap().len(), 3);
    assert_err!(User::top_by(&db, User::COUNTRY, 1).await, Error::Config(_));
});

cache_test!(indexes_can_be_rebuilt_for_existing_rows, |db: Db, _cache: Cache| async move {
    // Rows written behind polystore's back (raw SQL)...
    for (i, score) in [5, 7].into_iter().enumerate() {
        polystore_tests::execute_sql(
            &db,
            &format!("INSERT INTO cache_users (email, country, score) VALUES ('r{i}@x', 'FR', {score})"),
        )
        .await;
    }
    assert!(User::members_by_value(&db, User::COUNTRY, "FR").await.unwrap().is_empty());
    // ...are indexed by a rebuild.
    assert_eq!(User::rebuild_redis_indexes(&db).await.unwrap(), 2);
    assert_eq!(User::members_by_value(&db, User::COUNTRY, "FR").await.unwrap().len(), 2);
    assert_eq!(User::top_by(&db, User::SCORE, 1).await.unwrap()[0].1, 7.0);
});

cache_test!(a_corrupt_entry_is_a_miss_and_is_replaced, |db: Db, cache: Cache| async move {
    let ada = user("ada@example.com", "UK", 10).insert(&db).await.unwrap();
    let key = cache.keys().entry(User::SCHEMA, &id(&ada));
    for garbage in [&b"\xff\x00garbage"[..], b"ps", b"ps\x01R[1,2]", b"ps\x01R{\"not\":\"a row\"}", b"ps\x09N"] {
        cache.backend().apply(vec![Op::Set { key: key.clone(), value: garbage.to_vec(), ttl: None }]).await.unwrap();
        assert_eq!(User::get_cached(&db, ada.id).await.unwrap(), Some(ada.clone()));
        assert_eq!(User::get_cached(&db, ada.id).await.unwrap(), Some(ada.clone()), "replaced by a good entry");
    }
    assert_eq!(cache.stats().corrupt(), 5);
});

cache_test!(composite_keys_never_collide, |db: Db, cache: Cache| async move {
    // Keys built from the characters the encoding must neutralise: every distinct key pair
    // renders a distinct Redis key, and each reads back its own row.
    let alphabet = ["", ":", "{", "}", ",", "%", "%3A", "a", "é", "🦀", "\n", "s", "i1", "a:b", "{x}"];
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut pick = || -> String {
        let n = (next() % 4) as usize;
        (0..n).map(|_| alphabet[(next() % alphabet.len() as u64) as usize]).collect()
    };
    let mut seen = std::collections::HashMap::new();
    let mut rows = Vec::new();
    for _ in 0..3000 {
        let (t, c) = (pick(), pick());
        let key = cache.keys().entry(Line::SCHEMA, &[Value::Text(t.clone()), Value::Text(c.clone())]);
        assert_eq!(key.matches('{').count(), 1, "{key}: exactly one hash tag");
        if let Some(prev) = seen.insert(key.clone(), (t.clone(), c.clone())) {
            assert_eq!(prev, (t.clone(), c.clone()), "two keys render as {key}");
        } else if rows.len() < 300 {
            rows.push(line(&t, &c, rows.len() as i32));
        }
    }
    assert!(seen.len() > 1000, "the generator produced {} distinct keys", seen.len());
    Line::insert_many(&db, &rows).await.unwrap();
    let keys: Vec<(String, String)> = rows.iter().map(|l| (l.tenant.clone(), l.code.clone())).collect();
    Line::get_many_cached(&db, keys.clone()).await.unwrap();
    let before = statements(&db);
    let found = Line::get_many_cached(&db, keys).await.unwrap();
    assert_eq!(statements(&db) - before, 0, "all served by the cache");
    assert_eq!(found, rows.into_iter().map(Some).collect::<Vec<_>>());
});

cache_test!(typed_keys_and_counters, |_db: Db, cache: Cache| async move {
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Settings {
        theme: String,
        limit: u32,
    }
    let settings = cache.key::<Settings>("settings:{main}");
    assert_eq!(settings.get().await.unwrap(), None);
    settings.set(&Settings { theme: "dark".into(), limit: 3 }, None).await.unwrap();
    assert_eq!(settings.get().await.unwrap(), Some(Settings { theme: "dark".into(), limit: 3 }));
    settings.delete().await.unwrap();
    assert_eq!(settings.get().await.unwrap(), None);
    let visits = cache.counter("visits");
    assert_eq!(visits.get().await.unwrap(), 0);
    assert_eq!(visits.incr().await.unwrap(), 1);
    assert_eq!(visits.incr_by(41).await.unwrap(), 42);
    visits.reset().await.unwrap();
    assert_eq!(visits.get().await.unwrap(), 0);
    let temp = cache.key::<u32>("temp");
    temp.set(&7, Some(Duration::from_millis(200))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(temp.get().await.unwrap(), None);
});

#[tokio::test]
async fn write_through_stores_written_rows_instead_of_deleting_them() {
    let cache = Cache::builder(MemoryBackend::new(1 << 20)).write_mode(WriteMode::Refresh).build();
    let db = polystore_tests::sqlite().await.with_cache(cache.clone());
    db.create_all(support::SCHEMAS).await.unwrap();
    let mut ada = user("ada@example.com", "UK", 10).insert(&db).await.unwrap();
    let before = statements(&db);
    assert_eq!(User::find_cached(&db, ada.id).await.unwrap(), ada, "the insert stored the row");
    ada.score = 77;
    ada.update(&db).await.unwrap();
    assert_eq!(User::find_cached(&db, ada.id).await.unwrap().score, 77);
    assert_eq!(statements(&db) - before, 1, "only the update ran");
    User::query().update_many(&db, [User::SCORE.set(1)]).await.unwrap();
    assert!(!is_cached(&cache, User::SCHEMA, &id(&ada)).await, "bulk writes still invalidate");
}

#[tokio::test]
async fn a_model_without_a_policy_cannot_be_read_through_the_cache() {
    #[derive(Model, Debug)]
    struct Plain {
        #[model(primary_key)]
        id: i64,
    }
    let db = polystore_tests::sqlite().await.with_cache(Cache::memory());
    db.create_all(&[Plain::SCHEMA]).await.unwrap();
    assert_err!(Plain::get_cached(&db, 1).await, Error::Config(m) if m.contains("cache(ttl"));
}

#[tokio::test]
async fn hash_tags_colocate_related_keys_on_the_cluster() {
    let backend = polystore_tests::redis_cluster().await;
    let conn = backend.connection();
    let cache = Cache::builder(backend)
        .namespace(polystore_tests::unique_name("psslot"))
        .hash_tag(Line::SCHEMA, HashTag::KeyPrefix(1))
        .hash_tag(User::SCHEMA, HashTag::Model)
        .build();
    let keys = cache.keys();
    let keyslot = |key: String| {
        let mut conn = conn.clone();
        async move {
            let slot: u16 = polystore::redis::driver::cmd("CLUSTER")
                .arg("KEYSLOT")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .expect("CLUSTER KEYSLOT");
            assert_eq!(slot, polystore::cache::keys::slot(&key), "our slot of {key}");
            slot
        }
    };
    let text = |s: &str| Value::Text(s.into());
    // KeyPrefix(1): all of a tenant's lines share a slot; other tenants spread out.
    let acme = keyslot(keys.entry(Line::SCHEMA, &[text("acme"), text("a:1")])).await;
    assert_eq!(keyslot(keys.entry(Line::SCHEMA, &[text("acme"), text("{b}")])).await, acme);
    let mut slots = std::collections::HashSet::new();
    for t in 0..20 {
        slots.insert(keyslot(keys.entry(Line::SCHEMA, &[text(&format!("t{t}")), text("x")])).await);
    }
    assert!(slots.len() > 10, "tenants spread over the cluster");
    // Model: an entry, its lookup, set index and leaderboard all in one slot.
    let one = keyslot(keys.entry(User::SCHEMA, &[Value::I64(1)])).await;
    assert_eq!(keyslot(keys.unique(User::SCHEMA, 1, &text("a@x"))).await, one);
    assert_eq!(keyslot(keys.set_index(User::SCHEMA, 2, &text("NZ"))).await, one);
    assert_eq!(keyslot(keys.sorted_set(User::SCHEMA, 3)).await, one);
    // Row (the default): a row's entry and its index memo share a slot.
    let rows = Cache::builder(polystore::cache::MemoryBackend::new(1 << 20)).build();
    for n in 0..20 {
        let k = [Value::I64(n)];
        assert_eq!(
            keyslot(rows.keys().entry(User::SCHEMA, &k)).await,
            keyslot(rows.keys().memo(User::SCHEMA, &k)).await
        );
    }
}

/// `User` after a schema change: `score` became a float.
mod v2 {
    use polystore::prelude::*;

    #[derive(Model)]
    #[model(table = "cache_users", cache(ttl = "5m"))]
    pub struct User {
        #[model(primary_key, generated)]
        pub id: i64,
        #[model(unique)]
        pub email: String,
        pub country: String,
        pub score: f64,
        pub bio: Option<String>,
    }
}

#[test]
fn a_schema_change_changes_every_key() {
    let fp = polystore::cache::keys::fingerprint;
    assert_eq!(User::SCHEMA.name, v2::User::SCHEMA.name);
    assert_ne!(fp(User::SCHEMA), fp(v2::User::SCHEMA));
    assert_eq!(fp(User::SCHEMA), fp(User::SCHEMA));
    let keys = polystore::cache::KeyScheme::new("ns");
    assert_ne!(keys.entry(User::SCHEMA, &[Value::I64(1)]), keys.entry(v2::User::SCHEMA, &[Value::I64(1)]));
}
