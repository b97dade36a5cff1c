//! Health checks of every handle against the real servers, and against a closed port and a
//! server that accepts connections but never answers: reported unreachable within the
//! timeout, never a hang.

use std::time::{Duration, Instant};

use polystore::Db;
use polystore::ErrorClass;
use polystore::mongo::MongoStore;
use polystore::observe::{HealthReport, Role};
use sqlx::Row as _;

const TIMEOUT: Duration = Duration::from_secs(5);

fn assert_healthy(r: &HealthReport, store: &str) {
    assert_eq!(r.store, store);
    assert!(r.reachable, "{r:?}");
    assert_eq!(r.error, None);
    assert_eq!(r.error_type, None);
    assert!(r.latency_ms > 0.0 && r.latency_ms < TIMEOUT.as_secs_f64() * 1000.0, "{r:?}");
}

#[tokio::test]
async fn postgresql_reports_its_version_role_and_pool() {
    let test_db = polystore_tests::pg().await;
    let r = test_db.health(TIMEOUT).await;
    assert_healthy(&r, "postgresql");
    let pool = test_db.pg_pool().unwrap();
    let row = sqlx::query("SHOW server_version").fetch_one(pool).await.unwrap();
    assert_eq!(r.server_version.as_deref(), Some(row.get::<String, _>(0).as_str()));
    assert_eq!(r.role, Some(Role::Primary));
    let p = r.pool.expect("the pool's state");
    assert_eq!(p.max, 5);
    assert_eq!(p.used + p.idle, p.open);
    assert!(p.open >= 1, "{p:?}");
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["store"], "postgresql");
    assert_eq!(json["reachable"], true);
    assert_eq!(json["role"], "primary");
    assert_eq!(json["pool"]["max"], 5);
    assert!(json["error"].is_null());
    test_db.cleanup().await;
}

#[tokio::test]
async fn sqlite_reports_its_library_version() {
    let db = polystore_tests::sqlite().await;
    let r = db.health(TIMEOUT).await;
    assert_healthy(&r, "sqlite");
    let row = sqlx::query("SELECT sqlite_version()").fetch_one(db.sqlite_pool().unwrap()).await.unwrap();
    assert_eq!(r.server_version.as_deref(), Some(row.get::<String, _>(0).as_str()));
    assert_eq!(r.role, None);
    assert_eq!(r.pool.map(|p| p.max), Some(1));
}

#[tokio::test]
async fn mongodb_reports_its_role() {
    let store = polystore_tests::mongo().await;
    let r = store.health(TIMEOUT).await;
    assert_healthy(&r, "mongodb");
    let hello = store.run_command(polystore::mongo::driver::bson::doc! { "hello": 1 }).await.unwrap();
    let expected = match hello.get_str("setName") {
        Ok(_) if hello.get_bool("isWritablePrimary").unwrap_or(false) => Role::Primary,
        Ok(_) => Role::Replica,
        Err(_) => Role::Standalone,
    };
    assert_eq!(r.role, Some(expected));
    assert_eq!(r.pool, None);
    store.database().drop().await.unwrap();
}

#[tokio::test]
async fn redis_reports_its_version_and_role() {
    let store = polystore_tests::redis().await;
    let r = store.health(TIMEOUT).await;
    assert_healthy(&r, "redis");
    let mut conn = store.connection();
    let info: String = redis::cmd("INFO").arg("server").query_async(&mut conn).await.unwrap();
    let version = info.lines().find_map(|l| l.strip_prefix("redis_version:")).map(str::trim);
    assert_eq!(r.server_version.as_deref(), version);
    assert_eq!(r.role, Some(Role::Primary));
}

#[tokio::test]
async fn a_redis_cluster_reports_its_state() {
    let backend = polystore_tests::redis_cluster().await;
    let r = backend.health(TIMEOUT).await;
    assert_healthy(&r, "redis_cluster");
    assert_eq!(r.role, Some(Role::Cluster));
    assert!(r.server_version.as_deref().is_some_and(|v| v.split('.').count() == 3), "{r:?}");
}

/// A TCP server that accepts connections and never says a word; alive while the handle lives.
async fn silent_server() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (port, task)
}

/// A port nothing listens on.
async fn closed_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

/// A lazily connecting PostgreSQL handle with a long acquire timeout: only the health check's
/// own timeout can end its wait.
fn lazy_pg(port: u16) -> Db {
    let opts: sqlx::postgres::PgConnectOptions =
        format!("postgres://postgres:postgres@127.0.0.1:{port}/nothing").parse().unwrap();
    let pool = sqlx::postgres::PgPoolOptions::new().acquire_timeout(Duration::from_secs(60)).connect_lazy_with(opts);
    Db::from_pg_pool(pool)
}

async fn lazy_mongo(port: u16) -> MongoStore {
    let url = format!("mongodb://127.0.0.1:{port}/?directConnection=true&serverSelectionTimeoutMS=60000");
    MongoStore::connect(&url, "nothing").await.unwrap()
}

fn assert_unreachable_in_time(r: &HealthReport, timeout: Duration, took: Duration) {
    assert!(!r.reachable, "{r:?}");
    assert_eq!(r.error_type, Some(ErrorClass::Unavailable), "{r:?}");
    assert!(r.error.is_some());
    assert!(took < timeout + Duration::from_secs(2), "the check took {took:?} with a {timeout:?} timeout");
}

#[tokio::test]
async fn a_silent_server_is_reported_unreachable_when_the_timeout_runs_out() {
    let timeout = Duration::from_millis(400);
    let (port, server) = silent_server().await;

    let db = lazy_pg(port);
    let started = Instant::now();
    let r = db.health(timeout).await;
    assert_unreachable_in_time(&r, timeout, started.elapsed());
    assert_eq!(r.error.as_deref(), Some("connection to postgresql failed: no answer within 400 ms"));
    assert!(r.latency_ms >= 400.0, "{r:?}");

    let store = lazy_mongo(port).await;
    let started = Instant::now();
    let r = store.health(timeout).await;
    assert_unreachable_in_time(&r, timeout, started.elapsed());
    assert_eq!(r.error.as_deref(), Some("connection to mongodb failed: no answer within 400 ms"));
    server.abort();
}

#[tokio::test]
async fn a_closed_port_is_reported_unreachable_within_the_timeout() {
    let timeout = Duration::from_millis(400);
    let port = closed_port().await;
    let started = Instant::now();
    let r = lazy_pg(port).health(timeout).await;
    assert_unreachable_in_time(&r, timeout, started.elapsed());
    let started = Instant::now();
    let r = lazy_mongo(port).await.health(timeout).await;
    assert_unreachable_in_time(&r, timeout, started.elapsed());
}
