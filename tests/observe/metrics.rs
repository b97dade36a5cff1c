//! Metrics recorded at the execution points, per store, read back exactly.

use polystore::cache::{Cache, MemoryBackend};
use polystore::observe::names;
use polystore::prelude::*;
use polystore::{Error, ErrorClass};
use polystore_tests::{StoreKind, TestStore as _, assert_err, store_test};

use crate::support::{Recording, Spans};

/// A model only these tests use, so its label is theirs.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "obs_meters")]
struct Meter {
    #[model(primary_key)]
    id: i64,
    #[model(unique)]
    code: String,
}

fn meter(id: i64, code: &str) -> Meter {
    Meter { id, code: code.to_owned() }
}

fn system(kind: StoreKind) -> &'static str {
    match kind {
        StoreKind::Postgres => "postgresql",
        StoreKind::Sqlite => "sqlite",
        StoreKind::Mongo => "mongodb",
    }
}

store_test!(statements_are_timed_and_counted_by_store_operation_and_model, |db| async move {
    db.create_all(&[Meter::SCHEMA]).await?;
    meter(1, "a").insert(&db).await?;
    meter(2, "b").insert(&db).await?;
    let rec = Recording::start();
    assert_eq!(Meter::get(&db, 1).await?, Some(meter(1, "a")));
    assert_eq!(Meter::get(&db, 99).await?, None);
    assert_err!(meter(3, "a").insert(&db).await, Error::UniqueViolation { .. });
    meter(2, "b").delete(&db).await?;
    let got = rec.snapshot();

    let sys = system(db.kind());
    let find = [("db.system", sys), ("db.operation.name", "find"), ("polystore.model", "Meter")];
    let ok_finds = got.histogram(names::OPERATION_DURATION, &[find[0], find[1], find[2], ("outcome", "ok")]);
    assert_eq!(ok_finds.len(), 2, "two finds timed: {got:?}");
    assert!(ok_finds.iter().all(|s| *s > 0.0 && *s < 10.0), "durations in seconds: {ok_finds:?}");
    assert_eq!(got.histogram(names::RETURNED_ROWS, &find), [0.0, 1.0]);
    assert_eq!(got.label_values(names::OPERATION_DURATION, "db.collection.name"), ["obs_meters"]);

    // The failed insert: one error of class `constraint`, timed with its outcome.
    let failed = [("db.system", sys), ("polystore.model", "Meter"), ("outcome", "error"), ("error.type", "constraint")];
    assert_eq!(got.histogram(names::OPERATION_DURATION, &failed).len(), 1);
    assert_eq!(got.counter(names::ERRORS, &[("db.system", sys), ("error.type", "constraint")]), 1);
    assert_eq!(got.label_values(names::ERRORS, "error.type"), ["constraint"]);

    // The delete changed one row.
    let delete = [("db.system", sys), ("db.operation.name", "delete"), ("polystore.model", "Meter")];
    assert_eq!(got.counter(names::AFFECTED_ROWS, &delete), 1);
    assert_eq!(got.histogram(names::OPERATION_DURATION, &delete).len(), 1);
    Ok::<_, Error>(())
});

/// A cached model (the in-process cache: no server needed for the cache side).
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "obs_cached_meters", cache(ttl = "5m", negative_ttl = "1m"))]
struct CachedMeter {
    #[model(primary_key)]
    id: i64,
    reading: i64,
}

store_test!(cached_reads_count_hits_misses_fills_and_invalidations_per_model, |db| async move {
    db.create_all(&[CachedMeter::SCHEMA]).await?;
    let namespace = polystore_tests::unique_name("obs");
    let db = db.with_cache(Cache::builder(MemoryBackend::new(1 << 20)).namespace(namespace).build());
    let row = CachedMeter { id: 7, reading: 1 }.insert(&db).await?;
    let rec = Recording::start();
    assert_eq!(CachedMeter::get_cached(&db, 7).await?, Some(row.clone())); // miss, fill
    assert_eq!(CachedMeter::get_cached(&db, 7).await?, Some(row.clone())); // hit
    assert_eq!(CachedMeter::get_cached(&db, 8).await?, None); // miss, negative fill
    assert_eq!(CachedMeter::get_cached(&db, 8).await?, None); // negative hit
    CachedMeter { id: 7, reading: 2 }.update(&db).await?; // invalidates one row
    let got = rec.snapshot();
    let model = [("polystore.model", "CachedMeter")];
    assert_eq!(got.counter(names::CACHE_MISSES, &model), 2);
    assert_eq!(got.counter(names::CACHE_HITS, &model), 2);
    assert_eq!(got.counter(names::CACHE_FILLS, &model), 2);
    assert_eq!(got.counter(names::CACHE_INVALIDATIONS, &model), 1);
    assert_eq!(got.counter(names::CACHE_CORRUPT, &model), 0);
    // The two misses reached the store, the hits did not.
    let finds = [("db.operation.name", "find"), ("polystore.model", "CachedMeter"), ("outcome", "ok")];
    assert_eq!(got.histogram(names::OPERATION_DURATION, &finds).len(), 2);
    Ok::<_, Error>(())
});

#[tokio::test]
async fn pool_gauges_are_read_from_the_pool_on_demand() {
    let db = polystore_tests::pg_with(polystore::PoolConfig {
        max_connections: 3,
        acquire_timeout: std::time::Duration::from_secs(10),
        ..polystore::PoolConfig::default()
    })
    .await;
    let rec = Recording::start();
    let pool = db.pg_pool().expect("a PostgreSQL pool").clone();
    let held = pool.acquire().await.expect("a connection");
    let state = polystore::observe::record_pool_metrics(&db, "main").expect("a pool");
    assert_eq!(state.max, 3);
    assert_eq!(state.open, pool.size());
    assert_eq!(state.used + state.idle, state.open);
    assert!(state.used >= 1, "one connection is checked out: {state:?}");
    let got = rec.snapshot();
    let labels = |s| [("db.system", "postgresql"), ("db.client.connection.pool.name", "main"), ("state", s)];
    assert_eq!(got.gauge(names::POOL_CONNECTIONS, &labels("used")), Some(f64::from(state.used)));
    assert_eq!(got.gauge(names::POOL_CONNECTIONS, &labels("idle")), Some(f64::from(state.idle)));
    assert_eq!(got.gauge(names::POOL_MAX, &[("db.client.connection.pool.name", "main")]), Some(3.0));
    drop(held);
    drop(rec);
    db.cleanup().await;
}

#[tokio::test]
async fn errors_are_classified_by_class_not_by_message() {
    let db = polystore_tests::sqlite().await;
    let rec = Recording::start();
    let missing = polystore::raw::<Meter>("SELECT * FROM no_such_table").all(&db).await;
    let e = missing.expect_err("the table does not exist");
    assert_eq!(e.class(), ErrorClass::Permanent);
    assert!(!e.is_transient());
    let got = rec.snapshot();
    assert_eq!(got.counter(names::ERRORS, &[("db.system", "sqlite"), ("error.type", "permanent")]), 1);
    assert_eq!(
        got.histogram(names::OPERATION_DURATION, &[("db.operation.name", "raw"), ("error.type", "permanent")]).len(),
        1
    );
}

store_test!(a_failed_statement_span_carries_its_error_type, |db| async move {
    db.create_all(&[Meter::SCHEMA]).await?;
    meter(1, "a").insert(&db).await?;
    let (spans, guard) = Spans::capture();
    assert_eq!(Meter::get(&db, 1).await?, Some(meter(1, "a")));
    assert_err!(meter(2, "a").insert(&db).await, Error::UniqueViolation { .. });
    drop(guard);
    let ops: Vec<Option<String>> = spans.field("db.operation.name");
    let errors: Vec<Option<String>> = spans.field("error.type");
    // The find succeeded (no error.type); the insert's span says `constraint`.
    assert_eq!(ops.first(), Some(&Some("find".to_owned())), "{ops:?}");
    assert_eq!(errors.first(), Some(&None));
    assert_eq!(errors.last(), Some(&Some("constraint".to_owned())), "{ops:?} {errors:?}");
    assert_eq!(errors.iter().filter(|e| e.is_some()).count(), 1, "{ops:?} {errors:?}");
    Ok::<_, Error>(())
});
