//! The slow-statement log: a real slow statement (`pg_sleep`) becomes one WARN event with its
//! text and never its bound values; fast statements stay quiet.

use std::time::Duration;

use polystore::observe::names;
use polystore::prelude::*;
use polystore_tests::{pg, run_on_mongo};

use crate::support::{Events, Recording};

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "obs_sleepers")]
struct Sleeper {
    #[model(primary_key)]
    id: i64,
    name: String,
}

const SECRET: &str = "secret-value-7391";

#[tokio::test]
async fn a_slow_postgresql_statement_is_logged_with_its_text_and_never_its_values() {
    let test_db = pg().await;
    let db = test_db.db().clone().with_slow_query_threshold(Duration::from_millis(200));
    db.create_all(&[Sleeper::SCHEMA]).await.unwrap();
    Sleeper { id: 1, name: SECRET.into() }.insert(&db).await.unwrap();
    let rec = Recording::start();
    let (events, guard) = Events::capture();

    // Fast: not logged.
    assert_eq!(Sleeper::get(&db, 1).await.unwrap().map(|s| s.name), Some(SECRET.to_owned()));
    // Slow: 0.3 s, inside a transaction (the threshold is the handle's).
    let mut tx = db.begin().await.unwrap();
    let sql = "SELECT * FROM obs_sleepers WHERE name = $1 AND pg_sleep($2) IS NOT NULL";
    let rows = polystore::raw::<Sleeper>(sql).bind(SECRET).bind(0.3f64).all(&mut tx).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(rows.len(), 1);
    drop(guard);

    let slow = events.with_target("polystore::slow_query");
    assert_eq!(slow.len(), 1, "exactly the sleeping statement: {slow:?}");
    let e = &slow[0];
    assert_eq!(e.level, tracing::Level::WARN);
    assert_eq!(e.get("db.query.text"), Some(sql));
    assert_eq!(e.get("db.system"), Some("postgresql"));
    assert_eq!(e.get("db.operation.name"), Some("raw"));
    assert_eq!(e.get("polystore.model"), Some("Sleeper"));
    assert_eq!(e.get("rows"), Some("1"));
    assert_eq!(e.get("threshold_ms"), Some("200.0"));
    let ms: f64 = e.get("duration_ms").unwrap().parse().unwrap();
    assert!((300.0..10_000.0).contains(&ms), "slept 300 ms, took {ms}");
    for event in events.0.lock().unwrap().iter() {
        assert!(!format!("{event:?}").contains(SECRET), "a bound value was logged: {event:?}");
    }
    let got = rec.snapshot();
    assert_eq!(got.counter(names::SLOW_STATEMENTS, &[("db.system", "postgresql"), ("polystore.model", "Sleeper")]), 1);
    drop(rec);
    test_db.cleanup().await;
}

#[tokio::test]
async fn without_a_threshold_nothing_is_logged() {
    let test_db = pg().await;
    let db = test_db.db().clone();
    let (events, guard) = Events::capture();
    polystore::raw::<Sleeper>("SELECT pg_sleep($1)").bind(0.05f64).execute(&db).await.unwrap();
    drop(guard);
    assert_eq!(events.with_target("polystore::slow_query").len(), 0);
    test_db.cleanup().await;
}

#[tokio::test]
async fn mongodb_commands_past_the_threshold_are_logged_by_operation_without_values() {
    run_on_mongo(|store| async move {
        let store = store.with_slow_query_threshold(Duration::ZERO);
        store.create_all(&[Sleeper::SCHEMA]).await?;
        Sleeper { id: 1, name: SECRET.into() }.insert(&store).await?;
        let (events, guard) = Events::capture();
        let found = Sleeper::query().filter(Sleeper::NAME.eq(SECRET)).all(&store).await?;
        drop(guard);
        assert_eq!(found.len(), 1);
        let slow = events.with_target("polystore::slow_query");
        assert_eq!(slow.len(), 1, "{slow:?}");
        let e = &slow[0];
        assert_eq!(e.get("db.system"), Some("mongodb"));
        assert_eq!(e.get("db.operation.name"), Some("find"));
        assert_eq!(e.get("db.query.text"), Some("find"));
        assert_eq!(e.get("db.collection.name"), Some("obs_sleepers"));
        assert_eq!(e.get("rows"), Some("1"));
        assert!(!format!("{slow:?}").contains(SECRET));
        Ok::<_, polystore::Error>(())
    })
    .await
}

#[tokio::test]
async fn the_plan_of_a_slow_postgresql_statement_flags_a_sequential_scan() {
    let test_db = pg().await;
    let db = test_db
        .db()
        .clone()
        .with_slow_query_threshold(Duration::from_millis(100))
        .with_slow_query_explain(Duration::from_secs(60));
    db.create_all(&[Sleeper::SCHEMA]).await.unwrap();
    Sleeper { id: 1, name: SECRET.into() }.insert(&db).await.unwrap();
    let (events, guard) = Events::capture();
    let sql = "SELECT * FROM obs_sleepers WHERE name = $1 AND pg_sleep($2) IS NOT NULL";
    for _ in 0..2 {
        let rows = polystore::raw::<Sleeper>(sql).bind(SECRET).bind(0.15f64).all(&db).await.unwrap();
        assert_eq!(rows.len(), 1);
    }
    // The explain runs on a task of its own: wait for its event.
    let mut plans = Vec::new();
    for _ in 0..100 {
        plans = events.with_target("polystore::slow_query::plan");
        if !plans.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(guard);
    // Two slow statements, one plan: one explain per interval.
    assert_eq!(events.with_target("polystore::slow_query").len(), 2);
    assert_eq!(plans.len(), 1, "{:?}", events.0.lock().unwrap());
    let plan = &plans[0];
    assert_eq!(plan.level, tracing::Level::WARN);
    assert_eq!(plan.get("seq_scans"), Some("obs_sleepers"));
    assert_eq!(plan.get("db.query.text"), Some(sql));
    assert!(plan.get("plan").unwrap().contains("\"Node Type\":\"Seq Scan\""), "{plan:?}");
    assert!(plan.get("message").unwrap().contains("is an index missing?"));
    assert!(!format!("{plan:?}").contains(SECRET));
    // The explain left nothing behind: the statement still runs, and the row is there.
    assert_eq!(Sleeper::get(&db, 1).await.unwrap().map(|s| s.id), Some(1));
    test_db.cleanup().await;
}
