//! Writes that move a row to another primary key: the old key's entry (and its index
//! memberships) must not outlive the move.

use polystore::Value;
use polystore::cache::Cache;
use polystore::prelude::*;

use super::support::is_cached;

/// A model whose key the caller chooses, with a unique handle and a set index.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "cache_accounts", cache(ttl = "5m", negative_ttl = "1m"))]
pub struct Account {
    #[model(primary_key)]
    pub id: i64,
    #[model(unique)]
    pub handle: String,
    #[model(set_index)]
    pub team: String,
    pub n: i64,
}

fn account(id: i64, handle: &str, team: &str, n: i64) -> Account {
    Account { id, handle: handle.into(), team: team.into(), n }
}

cache_test!(upsert_on_that_changes_the_key_invalidates_the_old_key, |db: Db, cache: Cache| async move {
    db.create_all(&[Account::SCHEMA]).await.unwrap();
    let old = account(1, "ada", "red", 0).insert(&db).await.unwrap();
    assert_eq!(Account::get_cached(&db, 1).await.unwrap(), Some(old.clone()));
    assert_eq!(Account::get_cached(&db, 2).await.unwrap(), None, "an absence is cached for key 2");
    assert!(is_cached(&cache, Account::SCHEMA, &[Value::I64(1)]).await);

    // The row with handle "ada" takes key 2.
    let moved = account(2, "ada", "blue", 5).upsert_on(&db, &[Account::HANDLE.into()]).await.unwrap();
    assert_eq!(moved.id, 2);
    assert_eq!(Account::find(&db, 2).await.unwrap(), moved, "the store moved the row");
    assert_eq!(Account::get_cached(&db, 1).await.unwrap(), None, "the old key's entry is invalidated");
    assert_eq!(Account::get_cached(&db, 2).await.unwrap(), Some(moved.clone()), "the new key's absence is dropped");
    assert!(Account::members_by_value(&db, Account::TEAM, "red").await.unwrap().is_empty());
    assert_eq!(Account::members_by_value(&db, Account::TEAM, "blue").await.unwrap(), vec![moved.clone()]);

    // Inside a transaction too.
    let mut tx = db.begin().await.unwrap();
    let again = account(3, "ada", "blue", 6).upsert_on(&mut tx, &[Account::HANDLE.into()]).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(Account::get_cached(&db, 2).await.unwrap(), None, "moved inside a transaction");
    assert_eq!(Account::get_cached(&db, 3).await.unwrap(), Some(again));
});

cache_test!(upsert_on_that_keeps_the_key_or_inserts_is_unchanged, |db: Db, _cache: Cache| async move {
    db.create_all(&[Account::SCHEMA]).await.unwrap();
    let a = account(1, "ada", "red", 0).upsert_on(&db, &[Account::HANDLE.into()]).await.unwrap();
    assert_eq!(Account::get_cached(&db, 1).await.unwrap(), Some(a));
    let b = account(1, "ada", "red", 9).upsert_on(&db, &[Account::HANDLE.into()]).await.unwrap();
    assert_eq!(Account::get_cached(&db, 1).await.unwrap(), Some(b));
});
