//! The four stores answer their health checks, and an unreachable server is reported as
//! `Error::Connection` naming the store (quickly, not after a long hang).

use std::time::{Duration, Instant};

use polystore::mongo::MongoStore;
use polystore::redis::RedisStore;
use polystore::{Backend, Db, Error, PoolConfig};
use polystore_tests::{mongo, pg, redis, sqlite};

/// A TCP port nothing listens on: connections are refused at once.
const CLOSED: &str = "127.0.0.1:1";

fn short_timeouts() -> PoolConfig {
    PoolConfig { max_connections: 1, acquire_timeout: Duration::from_secs(3), ..PoolConfig::default() }
}

#[tokio::test]
async fn postgres_answers_ping() {
    let db = pg().await;
    assert_eq!(db.backend(), Backend::Postgres);
    let before = db.stats().statements();
    db.ping().await.expect("PostgreSQL ping");
    assert_eq!(db.stats().statements() - before, 1, "a ping is one round trip");
    db.cleanup().await;
}

#[tokio::test]
async fn sqlite_answers_ping() {
    let db = sqlite().await;
    assert_eq!(db.backend(), Backend::Sqlite);
    db.ping().await.expect("SQLite ping");
}

#[tokio::test]
async fn sqlite_file_database_is_created_and_answers_ping() {
    let dir = std::env::temp_dir().join(polystore_tests::unique_name("pstest_sqlite"));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let path = dir.join("test.db");
    let db = Db::connect(&format!("sqlite://{}", path.display())).await.expect("open a SQLite file");
    db.ping().await.expect("SQLite ping");
    assert!(path.exists(), "the database file was created");
    db.close().await;
    std::fs::remove_dir_all(&dir).expect("remove the temporary directory");
}

#[tokio::test]
async fn mongodb_answers_ping() {
    let store = mongo().await;
    store.ping().await.expect("MongoDB ping");
}

#[tokio::test]
async fn redis_answers_ping() {
    let store = redis().await;
    store.ping().await.expect("Redis ping");
}

/// Asserts a connection error for `store`, returned within `limit`.
fn assert_connection_error<T: std::fmt::Debug>(
    result: Result<T, Error>,
    store: &str,
    started: Instant,
    limit: Duration,
) {
    match result {
        Err(Error::Connection { store: s, message }) => {
            assert_eq!(s, store);
            assert!(!message.is_empty());
        }
        other => panic!("expected Error::Connection for {store}, got {other:?}"),
    }
    let took = started.elapsed();
    assert!(took < limit, "reporting the failure took {took:?}");
}

#[tokio::test]
async fn postgres_on_a_closed_port_is_a_connection_error() {
    let started = Instant::now();
    let result =
        Db::connect_with(&format!("postgres://postgres:postgres@{CLOSED}/polystore_test"), short_timeouts()).await;
    assert_connection_error(result, "postgresql", started, Duration::from_secs(10));
}

#[tokio::test]
async fn sqlite_in_a_missing_directory_is_a_connection_error() {
    let path = std::env::temp_dir().join(polystore_tests::unique_name("pstest_missing")).join("nested").join("x.db");
    let started = Instant::now();
    let result = Db::connect_with(&format!("sqlite://{}", path.display()), short_timeouts()).await;
    assert_connection_error(result, "sqlite", started, Duration::from_secs(10));
}

#[tokio::test]
async fn bad_database_url_is_a_configuration_error() {
    match Db::connect("mysql://localhost/db").await {
        Err(Error::Config(message)) => assert!(message.contains("mysql"), "{message}"),
        other => panic!("expected Error::Config, got {other:?}"),
    }
}

#[tokio::test]
async fn mongodb_on_a_closed_port_is_a_connection_error() {
    let started = Instant::now();
    let url = format!("mongodb://{CLOSED}/?directConnection=true&serverSelectionTimeoutMS=1000");
    let result = match MongoStore::connect(&url, "polystore_unreachable").await {
        Ok(store) => store.ping().await,
        Err(e) => Err(e),
    };
    assert_connection_error(result, "mongodb", started, Duration::from_secs(15));
}

#[tokio::test]
async fn redis_on_a_closed_port_is_a_connection_error() {
    let started = Instant::now();
    let result = match RedisStore::connect(&format!("redis://{CLOSED}/")).await {
        Ok(store) => store.ping().await,
        Err(e) => Err(e),
    };
    assert_connection_error(result, "redis", started, Duration::from_secs(30));
}

/// The harness itself: each PostgreSQL test gets a schema of its own, invisible to the others
/// and gone after cleanup.
#[tokio::test]
async fn postgres_test_schemas_are_isolated_and_dropped_afterwards() {
    let (a, b) = (pg().await, pg().await);
    assert_ne!(a.schema(), b.schema());
    for db in [&a, &b] {
        polystore_tests::execute_sql(db, "CREATE TABLE probe (n INTEGER NOT NULL)").await;
    }
    polystore_tests::execute_sql(&a, "INSERT INTO probe (n) VALUES (1), (2)").await;
    assert_eq!(polystore_tests::query_i64(&a, "SELECT COUNT(*) FROM probe").await, 2);
    assert_eq!(polystore_tests::query_i64(&b, "SELECT COUNT(*) FROM probe").await, 0);

    let (schema_a, schema_b) = (a.schema().to_owned(), b.schema().to_owned());
    a.cleanup().await;
    drop(b); // not cleaned up explicitly: Drop removes the schema
    let admin = Db::connect(&polystore_tests::database_url()).await.expect("PostgreSQL");
    let sql = format!("SELECT COUNT(*) FROM pg_namespace WHERE nspname IN ('{schema_a}', '{schema_b}')");
    assert_eq!(polystore_tests::query_i64(&admin, &sql).await, 0, "both test schemas are dropped");
    admin.close().await;
}

/// The harness itself: `sql_test!` bodies run through `run_on_postgres`, which drops the test's
/// schema even when the body panics, and lets the panic through.
#[tokio::test]
async fn postgres_test_schema_is_dropped_when_the_test_body_panics() {
    use futures_util::FutureExt as _;

    let seen = std::sync::Arc::new(std::sync::Mutex::new(None::<String>));
    let record = seen.clone();
    let outcome = std::panic::AssertUnwindSafe(polystore_tests::run_on_postgres(|db| async move {
        let schema = polystore_tests::query_text(&db, "SELECT current_schema()").await;
        let saw_schema = schema.is_some();
        *record.lock().unwrap() = schema;
        if saw_schema {
            panic!("deliberate failure inside a test body");
        }
    }))
    .catch_unwind()
    .await;
    let panic = outcome.expect_err("the body's panic reaches the test");
    assert_eq!(panic.downcast_ref::<&str>().copied(), Some("deliberate failure inside a test body"));

    let schema = seen.lock().unwrap().clone().expect("the body saw its schema");
    assert!(schema.starts_with("pstest_"), "the body ran in a test schema, not in {schema}");
    let admin = Db::connect(&polystore_tests::database_url()).await.expect("PostgreSQL");
    let sql = format!("SELECT COUNT(*) FROM pg_namespace WHERE nspname = '{schema}'");
    assert_eq!(polystore_tests::query_i64(&admin, &sql).await, 0, "the schema was dropped");
    admin.close().await;
}
