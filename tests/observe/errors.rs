//! Error classes from real failures, and `retry` getting a transaction through a real
//! serialization failure.

use std::time::Duration;

use polystore::observe::{RetryPolicy, retry};
use polystore::prelude::*;
use polystore::{Error, ErrorClass, Tx};
use polystore_tests::pg;

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "obs_accounts")]
struct Account {
    #[model(primary_key)]
    id: i64,
    balance: i64,
}

async fn serializable(db: &Db) -> Result<Tx<'static>, Error> {
    let mut tx = db.begin().await?;
    polystore::raw::<Account>("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE").execute(&mut tx).await?;
    Ok(tx)
}

async fn balance(tx: &mut Tx<'_>) -> Result<i64, Error> {
    Ok(polystore::raw::<Account>("SELECT * FROM obs_accounts WHERE id = 1").one(tx).await?.balance)
}

/// Adds `amount` to account 1 outside any transaction (another client, committed at once).
async fn deposit(db: &Db, amount: i64) {
    polystore::raw::<Account>("UPDATE obs_accounts SET balance = balance + $1 WHERE id = 1")
        .bind(amount)
        .execute(db)
        .await
        .expect("the concurrent deposit");
}

async fn set_balance(tx: &mut Tx<'_>, value: i64) -> Result<u64, Error> {
    polystore::raw::<Account>("UPDATE obs_accounts SET balance = $1 WHERE id = 1").bind(value).execute(tx).await
}

#[tokio::test]
async fn a_serialization_failure_is_a_transient_conflict() {
    let test_db = pg().await;
    let db = test_db.db().clone();
    db.create_all(&[Account::SCHEMA]).await.unwrap();
    Account { id: 1, balance: 100 }.insert(&db).await.unwrap();

    let mut tx = serializable(&db).await.unwrap();
    let seen = balance(&mut tx).await.unwrap();
    deposit(&db, 5).await; // commits after the transaction's snapshot
    let e = set_balance(&mut tx, seen + 10).await.expect_err("a concurrent update of the same row");
    assert_eq!(e.class(), ErrorClass::Conflict, "{e:?}");
    assert!(e.is_transient());
    assert!(matches!(&e, Error::Database { code: Some(code), .. } if code == "40001"), "{e:?}");
    assert_eq!(serde_json::to_value(e.class()).unwrap(), "conflict");
    drop(tx);
    test_db.cleanup().await;
}

#[tokio::test]
async fn retry_runs_a_transaction_again_after_a_serialization_failure() {
    let test_db = pg().await;
    let db = test_db.db().clone();
    db.create_all(&[Account::SCHEMA]).await.unwrap();
    Account { id: 1, balance: 100 }.insert(&db).await.unwrap();

    let policy =
        RetryPolicy { max_attempts: 3, base_delay: Duration::from_millis(5), max_delay: Duration::from_millis(20) };
    let mut attempts = 0;
    let result = retry(policy, || {
        attempts += 1;
        let first = attempts == 1;
        let db = db.clone();
        async move {
            let mut tx = serializable(&db).await?;
            let seen = balance(&mut tx).await?;
            if first {
                deposit(&db, 5).await; // only the first attempt races a concurrent writer
            }
            set_balance(&mut tx, seen + 10).await?;
            tx.commit().await?;
            Ok(seen)
        }
    })
    .await;
    // The first attempt read 100 and failed; the second read 105 and wrote 115.
    assert_eq!(result.unwrap(), 105);
    assert_eq!(attempts, 2);
    let mut tx = db.begin().await.unwrap();
    assert_eq!(balance(&mut tx).await.unwrap(), 115);
    drop(tx);

    // A permanent error is not retried.
    let mut runs = 0;
    let missing = retry(policy, || {
        runs += 1;
        let db = db.clone();
        async move { polystore::raw::<Account>("SELECT * FROM obs_no_such_table").all(&db).await }
    })
    .await;
    assert_eq!(missing.unwrap_err().class(), ErrorClass::Permanent);
    assert_eq!(runs, 1);
    test_db.cleanup().await;
}

#[tokio::test]
async fn a_closed_port_is_unavailable_and_transient() {
    let opts: sqlx::postgres::PgConnectOptions = "postgres://postgres:postgres@127.0.0.1:1/nothing".parse().unwrap();
    let cfg = polystore::PoolConfig { acquire_timeout: Duration::from_millis(300), ..polystore::PoolConfig::default() };
    let e = Db::connect_postgres(opts, cfg).await.expect_err("nothing listens on port 1");
    assert_eq!(e.class(), ErrorClass::Unavailable, "{e:?}");
    assert!(e.is_transient());
}
