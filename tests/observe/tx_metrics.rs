//! The metrics of transactions, migration runs, pool waits, cache backend operations and
//! health reports, read back from the debugging recorder.

use std::time::Duration;

use polystore::cache::{Cache, MemoryBackend, RedisBackend};
use polystore::observe::{HealthReport, names, record_health_metrics};
use polystore::prelude::*;
use polystore::{Backend, Error, PoolConfig};
use polystore_tests::{pg_with, sql_test};

use crate::support::Recording;

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "obs_ledgers")]
struct Ledger {
    #[model(primary_key)]
    id: i64,
    #[model(unique)]
    code: String,
}

fn ledger(id: i64, code: &str) -> Ledger {
    Ledger { id, code: code.to_owned() }
}

fn system(db: &Db) -> &'static str {
    match db.backend() {
        Backend::Postgres => "postgresql",
        Backend::Sqlite => "sqlite",
    }
}

sql_test!(transactions_are_timed_and_rollbacks_counted_by_reason, |db| async move {
    db.create_all(&[Ledger::SCHEMA]).await?;
    let sys = system(&db);
    let rec = Recording::start();

    let mut tx = db.begin().await?;
    ledger(1, "a").insert(&mut tx).await?;
    {
        // A savepoint is part of its transaction, not a transaction of its own.
        let mut inner = tx.begin().await?;
        ledger(2, "b").insert(&mut inner).await?;
        inner.commit().await?;
    }
    tx.commit().await?;

    let tx = db.begin().await?;
    tx.rollback().await?;

    // Dropped uncommitted, as when `?` leaves a function early.
    async fn early(db: &Db) -> polystore::Result<()> {
        let mut tx = db.begin().await?;
        ledger(3, "a").insert(&mut tx).await?; // duplicate code: fails
        tx.commit().await
    }
    assert!(matches!(early(&db).await, Err(Error::UniqueViolation { .. })));

    let got = rec.snapshot();
    let commits = got.histogram(names::TRANSACTION_DURATION, &[("db.system", sys), ("outcome", "commit")]);
    assert_eq!(commits.len(), 1, "one top-level commit: {got:?}");
    assert!(commits[0] > 0.0 && commits[0] < 10.0, "seconds: {commits:?}");
    assert_eq!(got.histogram(names::TRANSACTION_DURATION, &[("db.system", sys), ("outcome", "rollback")]).len(), 2);
    let rollbacks = |reason| got.counter(names::TRANSACTION_ROLLBACKS, &[("db.system", sys), ("reason", reason)]);
    assert_eq!((rollbacks("explicit"), rollbacks("dropped"), rollbacks("aborted")), (1, 1, 0));
    assert_eq!(got.label_values(names::TRANSACTION_ROLLBACKS, "reason"), ["dropped", "explicit"]);

    if db.backend() == Backend::Postgres {
        // A failed statement aborts a PostgreSQL transaction: committing rolls it back.
        let rec = Recording::start();
        let mut tx = db.begin().await?;
        assert!(ledger(4, "a").insert(&mut tx).await.is_err());
        assert!(matches!(tx.commit().await, Err(Error::TransactionAborted)));
        let got = rec.snapshot();
        assert_eq!(got.counter(names::TRANSACTION_ROLLBACKS, &[("reason", "aborted")]), 1, "{got:?}");
        assert_eq!(got.counter(names::TRANSACTION_ROLLBACKS, &[("reason", "dropped")]), 0, "{got:?}");
    }
    Ok::<_, Error>(())
});

#[tokio::test]
async fn a_statement_waiting_for_the_only_connection_records_the_wait() {
    let test_db =
        pg_with(PoolConfig { max_connections: 1, acquire_timeout: Duration::from_secs(10), ..PoolConfig::default() })
            .await;
    let db = test_db.db().clone();
    db.create_all(&[Ledger::SCHEMA]).await.unwrap();
    let rec = Recording::start();
    let tx = db.begin().await.unwrap(); // holds the pool's only connection
    // Spawned on this current-thread runtime: it records on this thread's recorder.
    let reader = tokio::spawn({
        let db = db.clone();
        async move { Ledger::get(&db, 1).await }
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    tx.commit().await.unwrap();
    assert_eq!(reader.await.unwrap().unwrap(), None);
    let waits = rec.snapshot().histogram(names::POOL_WAIT, &[("db.system", "postgresql")]);
    assert!(waits.iter().any(|w| *w >= 0.14 && *w < 10.0), "the reader waited ~150 ms: {waits:?}");
    test_db.cleanup().await;
}

#[tokio::test]
async fn migration_runs_are_counted_by_direction_and_outcome() {
    use polystore::migrate::{MigrationDir, Migrator};
    let root = std::env::temp_dir().join(polystore_tests::unique_name("obs_migrate"));
    let dir = root.join("migrations");
    let url = format!("sqlite://{}?mode=rwc", root.join("app.db").display());
    std::fs::create_dir_all(&root).unwrap();
    let generated = MigrationDir::new(&dir).generate("ledgers", &[Ledger::SCHEMA]).unwrap().expect("a migration");
    let db = Db::connect(&url).await.unwrap();
    let migrator = Migrator::new(&db, &dir).allow_destructive(true);

    let rec = Recording::start();
    assert_eq!(migrator.up(None).await.unwrap().len(), 1);
    assert!(migrator.up(None).await.unwrap().is_empty(), "nothing left: not a run");
    assert_eq!(migrator.down(1).await.unwrap().len(), 1);
    // The same migration made unrunnable: its run fails.
    std::fs::write(generated.dir.join("up.sqlite.sql"), "CREATE TABLE broken (").unwrap();
    assert!(migrator.up(None).await.is_err());
    let got = rec.snapshot();
    let runs = |direction, outcome| {
        got.counter(names::MIGRATION_RUNS, &[("db.system", "sqlite"), ("direction", direction), ("outcome", outcome)])
    };
    assert_eq!((runs("up", "ok"), runs("down", "ok"), runs("up", "error")), (1, 1, 1), "{got:?}");
    db.close().await;
    std::fs::remove_dir_all(&root).unwrap();
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "obs_cached_ledgers", cache(ttl = "5m"))]
struct CachedLedger {
    #[model(primary_key)]
    id: i64,
    total: i64,
}

#[tokio::test]
async fn cache_backend_operations_are_timed_per_backend_and_operation() {
    let redis = polystore_tests::redis().await;
    for (backend, cache) in
        [("memory", Cache::builder(MemoryBackend::new(1 << 20))), ("redis", Cache::builder(RedisBackend::new(&redis)))]
    {
        let db = polystore_tests::sqlite().await;
        db.create_all(&[CachedLedger::SCHEMA]).await.unwrap();
        let db = db.with_cache(cache.namespace(polystore_tests::unique_name("obs")).build());
        let row = CachedLedger { id: 1, total: 5 }.insert(&db).await.unwrap();
        let rec = Recording::start();
        assert_eq!(CachedLedger::get_cached(&db, 1).await.unwrap(), Some(row.clone())); // miss, fill
        assert_eq!(CachedLedger::get_cached(&db, 1).await.unwrap(), Some(row)); // hit
        let got = rec.snapshot();
        let ops = got.histogram(names::CACHE_OPERATION_DURATION, &[("cache.backend", backend), ("outcome", "ok")]);
        assert!(ops.len() >= 3, "{backend}: reads and the fill timed: {got:?}");
        assert!(ops.iter().all(|s| *s >= 0.0 && *s < 5.0), "{ops:?}");
        assert_eq!(got.label_values(names::CACHE_OPERATION_DURATION, "cache.backend"), [backend]);
        db.close().await;
    }
}

#[tokio::test]
async fn health_reports_become_gauges() {
    let test_db = polystore_tests::pg().await;
    let rec = Recording::start();
    let up = test_db.db().health(Duration::from_secs(5)).await;
    assert!(up.reachable && up.replication_lag_ms.is_none(), "a primary has no lag: {up:?}");
    let down = HealthReport { store: "redis", reachable: false, latency_ms: 2000.0, ..up.clone() };
    let replica = HealthReport { store: "postgresql_replica", replication_lag_ms: Some(2500.0), ..up.clone() };
    record_health_metrics(&[up, down, replica]);
    let got = rec.snapshot();
    assert_eq!(got.gauge(names::HEALTH_UP, &[("db.system", "postgresql")]), Some(1.0));
    assert_eq!(got.gauge(names::HEALTH_UP, &[("db.system", "redis")]), Some(0.0));
    assert_eq!(got.gauge(names::HEALTH_LATENCY, &[("db.system", "redis")]), Some(2.0));
    assert_eq!(got.gauge(names::REPLICATION_LAG, &[("db.system", "postgresql_replica")]), Some(2.5));
    assert_eq!(got.label_values(names::REPLICATION_LAG, "db.system"), ["postgresql_replica"]);
    test_db.cleanup().await;
}

sql_test!(a_streamed_query_is_timed_when_it_ends_and_counted_in_a_scope, |db| async move {
    use futures_util::TryStreamExt as _;
    use polystore::observe::{StatementLimit, statement_scope};
    db.create_all(&[Ledger::SCHEMA]).await?;
    for i in 1..=3 {
        ledger(i, &format!("c{i}")).insert(&db).await?;
    }
    let sys = system(&db);
    let rec = Recording::start();
    let (rows, report) = statement_scope(StatementLimit::strict(1), async {
        Ledger::query().order_by(Ledger::ID.asc()).stream(&db).try_collect::<Vec<_>>().await
    })
    .await;
    assert_eq!(rows?.len(), 3);
    assert_eq!(report.statements, 1, "the stream's statement is counted: {report:?}");
    let got = rec.snapshot();
    let timed = got.histogram(names::OPERATION_DURATION, &[("db.system", sys), ("polystore.model", "Ledger")]);
    assert_eq!(timed.len(), 1, "{got:?}");
    assert_eq!(got.histogram(names::RETURNED_ROWS, &[("db.system", sys), ("polystore.model", "Ledger")]), [3.0]);

    // A strict scope refuses a second stream of the same shape: its first item is the error.
    let (second, _) =
        statement_scope(StatementLimit::strict(0), async { Ledger::query().stream(&db).try_collect::<Vec<_>>().await })
            .await;
    assert!(matches!(second, Err(Error::TooManyStatements { .. })), "{second:?}");
    Ok::<_, Error>(())
});
