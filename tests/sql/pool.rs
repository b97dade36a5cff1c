//! How a `Db` uses its PostgreSQL pool between statements: a statement that ran cleanly leaves
//! its connection on the handle's shelf for the next one (no return-to-pool round trip), and
//! the shelf never keeps connections from other users of the pool, nor from `close`, nor hands
//! out a connection a cancelled statement left behind.

use std::time::Duration;

use polystore::PoolConfig;
use polystore::prelude::*;
use polystore_tests::{TestDb, pg_with};

/// One row naming the server process that ran the statement.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "backend_pids")]
struct BackendPid {
    #[model(primary_key)]
    pid: i64,
}

/// A pool of 4: the shelf keeps at most one connection.
async fn pool_of_four() -> TestDb {
    pg_with(PoolConfig { max_connections: 4, acquire_timeout: Duration::from_secs(10), ..PoolConfig::default() }).await
}

async fn backend_pid(db: &Db) -> i64 {
    polystore::raw::<BackendPid>("SELECT pg_backend_pid()::bigint AS pid").one(db).await.expect("the backend pid").pid
}

#[tokio::test]
async fn sequential_statements_run_on_one_warm_connection() {
    let db = pool_of_four().await;
    let first = backend_pid(&db).await;
    for _ in 0..10 {
        assert_eq!(backend_pid(&db).await, first, "each statement should reuse the shelved connection");
    }
    db.cleanup().await;
}

#[tokio::test]
async fn other_users_of_the_pool_get_every_connection_back() {
    let db = pool_of_four().await;
    backend_pid(&db).await;
    // The shelf holds one of the four; the sweeper hands it back once its lease is over.
    let pool = db.pg_pool().expect("a PostgreSQL pool").clone();
    let all = async {
        let mut held = Vec::new();
        for _ in 0..4 {
            held.push(pool.acquire().await.expect("a connection"));
        }
        held
    };
    let held = tokio::time::timeout(Duration::from_secs(8), all).await.expect("all four connections within 8 s");
    assert_eq!(held.len(), 4);
    drop(held);
    db.cleanup().await;
}

#[tokio::test]
async fn close_does_not_wait_for_shelved_connections() {
    let db = pool_of_four().await;
    backend_pid(&db).await;
    tokio::time::timeout(Duration::from_millis(500), db.close()).await.expect("close returns at once");
    db.cleanup().await;
}

#[tokio::test]
async fn a_cancelled_statement_does_not_leave_its_connection_on_the_shelf() {
    let db = pool_of_four().await;
    backend_pid(&db).await;
    // Cancelled while the server still runs it (on the shelved connection): that connection is
    // busy and must not be handed to the next statement as if it were idle.
    let slow = polystore::raw::<BackendPid>("SELECT pg_backend_pid()::bigint AS pid FROM pg_sleep(2)").one(&*db);
    assert!(tokio::time::timeout(Duration::from_millis(300), slow).await.is_err(), "the sleep was cancelled");
    let pool = db.pg_pool().expect("a PostgreSQL pool");
    let busy: Vec<i32> = sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%FROM pg_sleep(2)' AND pid <> pg_backend_pid()",
    )
    .fetch_all(pool)
    .await
    .expect("the sleeping backend");
    assert_eq!(busy.len(), 1, "one backend still sleeping: {busy:?}");
    for _ in 0..5 {
        assert_ne!(backend_pid(&db).await, i64::from(busy[0]), "a statement ran on the busy connection");
    }
    db.cleanup().await;
}
