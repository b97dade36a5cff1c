//! PostgreSQL's plan cache against polystore's statements: array-bound statements keep a good
//! plan once PostgreSQL switches them to a generic one, and a column type changed outside
//! polystore does not break reads on a running pool (`0A000 cached plan must not change
//! result type`).

use polystore::PoolConfig;
use polystore::prelude::*;
use polystore::sql::lower;
use polystore::sql::postgres::Postgres;
use polystore_tests::{assert_err, execute_sql, pg_with};
use sqlx::AssertSqlSafe;

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "authors")]
struct Author {
    #[model(primary_key, generated)]
    id: i64,
    name: String,
    #[model(has_many(foreign_key = author_id))]
    books: Rel<Vec<Book>>,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "books")]
struct Book {
    #[model(primary_key, generated)]
    id: i64,
    author_id: i64,
    shelf: Option<i32>,
    title: String,
}

/// One connection, so every statement meets the same statement cache.
fn one_connection() -> PoolConfig {
    PoolConfig { max_connections: 1, acquire_timeout: std::time::Duration::from_secs(10), ..PoolConfig::default() }
}

async fn seed(db: &Db) -> Result<Vec<Author>> {
    db.create_all(&[Author::SCHEMA, Book::SCHEMA]).await?;
    let authors: Vec<Author> =
        (0..3).map(|i| Author { id: 0, name: format!("author {i}"), books: Rel::NotLoaded }).collect();
    let authors = Author::insert_many(db, &authors).await?;
    let books: Vec<Book> = authors
        .iter()
        .flat_map(|a| {
            (0..2).map(|j| Book { id: 0, author_id: a.id, shelf: (j == 0).then_some(7), title: format!("b{j}") })
        })
        .collect();
    Book::insert_many(db, &books).await?;
    Ok(authors)
}

/// Reads through every read path, enough times for PostgreSQL to consider generic plans.
async fn read_everything(db: &Db, authors: &[Author]) -> Result<()> {
    for _ in 0..7 {
        // First a load holding one connection for its two statements, then single statements.
        let loaded = Author::query().with(Author::BOOKS).all(db).await?;
        assert!(loaded.iter().all(|a| a.books.get().map(Vec::len) == Some(2)));
        assert_eq!(Author::find(db, authors[0].id).await?.name, "author 0");
        assert_eq!(Author::query().order_by(Author::ID.asc()).all(db).await?.len(), 3);
        assert_eq!(Author::query().filter(Author::NAME.ne("nobody")).count(db).await?, 3);
    }
    Ok(())
}

#[tokio::test]
async fn reads_survive_a_compatible_column_type_change_made_outside_polystore() {
    let test_db = pg_with(one_connection()).await;
    let db = test_db.db().clone();
    let authors = seed(&db).await.expect("seed");
    read_everything(&db, &authors).await.expect("reads before the change");

    // Another tool changes the column's type; the pool's connection still holds statements
    // prepared against TEXT.
    execute_sql(&db, "ALTER TABLE authors ALTER COLUMN name TYPE VARCHAR(200)").await;

    read_everything(&db, &authors).await.expect("reads after the change retry once on a fresh statement");
    test_db.cleanup().await;
}

#[tokio::test]
async fn a_stale_plan_inside_a_transaction_names_the_model_and_spares_the_next_transaction() {
    let test_db = pg_with(one_connection()).await;
    let db = test_db.db().clone();
    let authors = seed(&db).await.expect("seed");
    let id = authors[0].id;
    for _ in 0..3 {
        let mut tx = db.begin().await.expect("begin");
        Author::find(&mut tx, id).await.expect("find in a transaction");
        tx.commit().await.expect("commit");
    }
    execute_sql(&db, "ALTER TABLE authors ALTER COLUMN name TYPE VARCHAR(200)").await;

    // Inside a transaction the failed statement aborted it, so it cannot be retried there:
    // the error says which model and what happened.
    let mut tx = db.begin().await.expect("begin");
    let err = Author::find(&mut tx, id).await;
    assert_err!(
        err,
        Error::Database { code: Some(code), message }
            if code == "0A000" && message.starts_with("Author: the table's column types changed")
    );
    drop(tx);

    // The connection forgot its statements: the next transaction reads normally.
    let mut tx = db.begin().await.expect("begin");
    assert_eq!(Author::find(&mut tx, id).await.expect("find after the failure").name, "author 0");
    tx.commit().await.expect("commit");
    test_db.cleanup().await;
}

/// The plan PostgreSQL uses for polystore's `is_in` statement once it plans it generically
/// (what it does after the fifth execution of a prepared statement when it estimates that
/// cheaper), on a table without an index on the filtered column.
async fn generic_plan(db: &Db, sql: &str) -> String {
    use sqlx::Connection as _;
    let pool = db.pg_pool().expect("a PostgreSQL pool");
    let mut conn = pool.acquire().await.expect("a connection");
    let mut tx = conn.begin().await.expect("begin");
    sqlx::query("SET LOCAL plan_cache_mode = force_generic_plan").execute(&mut *tx).await.expect("set");
    sqlx::query(AssertSqlSafe(format!("PREPARE probe(bigint[]) AS {sql}"))).execute(&mut *tx).await.expect("prepare");
    let lines: Vec<String> = sqlx::query_scalar(AssertSqlSafe("EXPLAIN EXECUTE probe('{1,2,3}')"))
        .fetch_all(&mut *tx)
        .await
        .expect("explain");
    sqlx::query("DEALLOCATE probe").execute(&mut *tx).await.expect("deallocate");
    lines.join("\n")
}

#[tokio::test]
async fn array_bound_membership_keeps_a_hashed_plan_when_planned_generically() {
    let test_db = pg_with(one_connection()).await;
    let db = test_db.db().clone();
    seed(&db).await.expect("seed");
    execute_sql(&db, "DROP INDEX IF EXISTS books_author_id_idx").await;

    // A short list and a long one: two statement texts.
    for keys in [(1..=3).collect::<Vec<i64>>(), (1..=500).collect()] {
        let query = Book::query().filter(Book::AUTHOR_ID.is_in(keys));
        let stmt = lower::select(&Postgres, Book::SCHEMA, &query).expect("render");
        let plan = generic_plan(&db, &stmt.sql).await;
        // `= ANY($1)` would read `Filter: (author_id = ANY ($1))`: every row against every key.
        assert!(!plan.contains("ANY ($1)"), "a per-row scan of the array:\n{plan}");
        assert!(plan.contains("Hash"), "no hash join without an index:\n{plan}");
    }
    // On the primary key the list stays `= ANY($1)`: an index condition, not a filter.
    let query = Author::query().filter(Author::ID.is_in((1..=500).collect::<Vec<i64>>()));
    let stmt = lower::select(&Postgres, Author::SCHEMA, &query).expect("render");
    let plan = generic_plan(&db, &stmt.sql).await;
    assert!(plan.contains("Index Cond: (id = ANY ($1))"), "not an index scan:\n{plan}");
    test_db.cleanup().await;
}

/// The statements PostgreSQL holds prepared on the pool's connection (one connection).
async fn prepared(db: &Db) -> Vec<String> {
    let pool = db.pg_pool().expect("a PostgreSQL pool");
    sqlx::query_scalar("SELECT statement FROM pg_prepared_statements").fetch_all(pool).await.expect("prepared")
}

/// An index made outside polystore is found in the catalog: a key list on its column becomes
/// `= ANY($1)`, an index condition in generic and custom plans alike. Once the index is gone
/// (and the handle has forgotten its answer, or a minute has passed) the list is a set again.
#[tokio::test]
async fn key_lists_use_an_index_made_outside_polystore_and_stop_when_it_is_dropped() {
    let test_db = pg_with(one_connection()).await;
    let db = test_db.db().clone();
    seed(&db).await.expect("seed");
    execute_sql(&db, "CREATE INDEX books_shelf_outside ON books (shelf)").await;
    let shelves = |n: i32| (1..=n).map(Some).collect::<Vec<_>>();
    let uses = |statements: &[String], text: &str| statements.iter().any(|s| s.contains(text));

    for n in [8, 300] {
        let query = Book::query().filter(Book::SHELF.is_in(shelves(n)));
        assert_eq!(query.count(&db).await.expect("count"), 3);
        let statements = prepared(&db).await;
        assert!(uses(&statements, "\"shelf\" = ANY($1)"), "{n} keys, not an index condition: {statements:#?}");
        assert!(!uses(&statements, "\"shelf\" IN (SELECT"), "{n} keys: {statements:#?}");
    }
    // Inside a transaction (another statement shape: rows, not a count): the handle's answer.
    let mut tx = db.begin().await.expect("begin");
    assert_eq!(Book::query().filter(Book::SHELF.is_in(shelves(9))).all(&mut tx).await.expect("rows").len(), 3);
    tx.commit().await.expect("commit");
    let statements = prepared(&db).await;
    let rows_by_index =
        statements.iter().any(|s| s.contains("\"shelf\" = ANY($1)") && !s.to_lowercase().contains("count("));
    assert!(rows_by_index, "the transaction's read did not use the index: {statements:#?}");

    execute_sql(&db, "DROP INDEX books_shelf_outside").await;
    db.forget_index_hints();
    let query = Book::query().filter(Book::SHELF.is_in(shelves(300)));
    assert_eq!(query.count(&db).await.expect("count"), 3);
    let statements = prepared(&db).await;
    assert!(uses(&statements, "\"shelf\" IN (SELECT"), "a set once the index is gone: {statements:#?}");

    // A batch load on a foreign key that only the database indexes: `= ANY` as well.
    execute_sql(&db, "CREATE INDEX IF NOT EXISTS books_author_outside ON books (author_id)").await;
    db.forget_index_hints();
    let loaded = Author::query().with(Author::BOOKS).all(&db).await.expect("load");
    assert!(loaded.iter().all(|a| a.books.get().map(Vec::len) == Some(2)));
    let statements = prepared(&db).await;
    assert!(uses(&statements, "\"author_id\" = ANY($1)"), "{statements:#?}");
    test_db.cleanup().await;
}

#[tokio::test]
async fn membership_keeps_its_meaning_with_nulls_and_negation() {
    let test_db = pg_with(one_connection()).await;
    let db = test_db.db().clone();
    seed(&db).await.expect("seed");
    let count = |e: Expr<Book>| {
        let db = db.clone();
        async move { Book::query().filter(e).count(&db).await.expect("count") }
    };
    assert_eq!(count(Book::SHELF.is_in([Some(7)])).await, 3);
    assert_eq!(count(Book::SHELF.is_in([Some(7), None])).await, 3, "NULL never equals");
    assert_eq!(count(Book::SHELF.not_in([Some(8)])).await, 3, "NULL shelves are neither in nor not in");
    assert_eq!(count(Book::SHELF.not_in([Some(8), None])).await, 0, "NOT IN a list holding NULL is never true");
    assert_eq!(count(Book::TITLE.not_in(["b0"])).await, 3);
    assert_eq!(count(Book::TITLE.not_in(Vec::<String>::new())).await, 6);
    // Long lists take the other form (`= ANY`, unprepared): the same answers.
    let many = |extra: Option<i32>| (100..200).map(Some).chain([extra]).collect::<Vec<_>>();
    assert_eq!(count(Book::SHELF.is_in(many(Some(7)))).await, 3);
    assert_eq!(count(Book::SHELF.not_in(many(Some(8)))).await, 3);
    assert_eq!(count(Book::SHELF.not_in(many(None))).await, 0, "NOT IN a long list holding NULL");
    assert_eq!(count(Book::TITLE.not_in((0..100).map(|i| format!("b{i}")))).await, 0);
    test_db.cleanup().await;
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "shelves")]
struct Shelf {
    #[model(primary_key)]
    id: i64,
    #[model(has_many(foreign_key = shelf_id))]
    items: Rel<Vec<Item>>,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "items")]
struct Item {
    #[model(primary_key)]
    id: i64,
    shelf_id: i64,
}

/// has_many rows come in key order per parent, whatever order the table stores them in (the
/// loader sorts integer keys itself instead of asking for `ORDER BY`).
#[tokio::test]
async fn loaded_children_come_in_key_order_whatever_the_storage_order() {
    let test_db = pg_with(one_connection()).await;
    let db = test_db.db().clone();
    db.create_all(&[Shelf::SCHEMA, Item::SCHEMA]).await.expect("create");
    let shelves: Vec<Shelf> = (1..=300).map(|id| Shelf { id, items: Rel::NotLoaded }).collect();
    Shelf::insert_many(&db, &shelves).await.expect("shelves");
    // Stored out of key order: 30, 10, 20, 5 on shelf 1; 40, 1 on shelf 2.
    for (id, shelf_id) in [(30, 1), (10, 1), (40, 2), (20, 1), (1, 2), (5, 1)] {
        Item { id, shelf_id }.insert(&db).await.expect("item");
    }
    let ids = |s: &Shelf| s.items.get().expect("loaded").iter().map(|i| i.id).collect::<Vec<_>>();
    // A short key list and a long one (two statement forms).
    for limit in [2, 300] {
        let loaded = Shelf::query().order_by(Shelf::ID.asc()).limit(limit).with(Shelf::ITEMS).all(&db).await;
        let loaded = loaded.expect("load");
        assert_eq!(ids(&loaded[0]), [5, 10, 20, 30]);
        assert_eq!(ids(&loaded[1]), [1, 40]);
    }
    test_db.cleanup().await;
}
