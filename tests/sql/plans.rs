//! PostgreSQL's plan cache against polystore's statements: array-bound statements keep a good
//! plan once PostgreSQL switches them to a generic one, and a column type changed outside
//! polystore does not break reads on a running pool (`0A000 cached plan must not change
//! result type`).

use polystore::prelude::*;
use polystore::sql::lower;
use polystore::sql::postgres::Postgres;
use polystore::{ErrorClass, PoolConfig};
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
    // A stream is lowered with the same answers (its own shape: a LIMIT, so that its text is
    // new to the connection).
    use futures_util::TryStreamExt;
    let streamed: Vec<Book> =
        Book::query().filter(Book::SHELF.is_in(shelves(10))).limit(50).stream(&db).try_collect().await.expect("stream");
    assert_eq!(streamed.len(), 3);
    let statements = prepared(&db).await;
    let streamed_by_index = statements.iter().any(|s| s.contains("\"shelf\" = ANY($1)") && s.contains("LIMIT"));
    assert!(streamed_by_index, "the stream did not use the index: {statements:#?}");
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

/// The books of `authors` with shelves `0..50` (and every seventh without one), for the
/// key-list races below.
async fn shelved_books(db: &Db) -> Vec<Book> {
    let authors = seed(db).await.expect("seed");
    let books: Vec<Book> = (0..400_i32)
        .map(|i| Book {
            id: 0,
            author_id: authors[i as usize % authors.len()].id,
            shelf: (i % 7 != 0).then_some(i % 50),
            title: format!("t{i}"),
        })
        .collect();
    Book::insert_many(db, &books).await.expect("books");
    Book::query().all(db).await.expect("all books")
}

/// The `n`-th list of shelves a reader filters by: short ones and ones past the long-list
/// threshold (256 keys, another statement form), most of them naming shelves that exist.
fn shelf_list(n: usize) -> Vec<Option<i32>> {
    let len = if n.is_multiple_of(3) { 300 } else { 1 + n % 17 };
    (0..len).map(|k| Some(((n * 7 + k * 3) % 80) as i32)).collect()
}

/// How many of `books` a list of shelves matches.
fn matching(books: &[Book], list: &[Option<i32>]) -> i64 {
    books.iter().filter(|b| b.shelf.is_some() && list.contains(&b.shelf)).count() as i64
}

/// An index made or dropped by other means is taken into account once the handle's answer
/// is older than its freshness, without `forget_index_hints`; until then the old answer
/// stands (the rows are the same in either form).
#[tokio::test]
async fn index_answers_are_looked_up_again_once_older_than_the_handles_freshness() {
    let fresh = std::time::Duration::from_millis(300);
    let test_db = pg_with(one_connection()).await;
    let db = test_db.db().clone().with_index_hint_freshness(fresh);
    seed(&db).await.expect("seed");
    let shelves = |n: i32| (1..=n).map(Some).collect::<Vec<_>>();
    let uses = |statements: &[String], text: &str| statements.iter().any(|s| s.contains(text));

    execute_sql(&db, "CREATE INDEX books_shelf_fresh ON books (shelf)").await;
    let count = Book::query().filter(Book::SHELF.is_in(shelves(300))).count(&db).await.expect("count");
    assert_eq!(count, 3);
    assert!(uses(&prepared(&db).await, "\"shelf\" = ANY($1)"), "the catalog's index is used");

    execute_sql(&db, "DROP INDEX books_shelf_fresh").await;
    let count = Book::query().filter(Book::SHELF.is_in(shelves(300))).count(&db).await.expect("count");
    assert_eq!(count, 3, "the same rows under the answer that is still fresh");
    assert!(!uses(&prepared(&db).await, "\"shelf\" IN (SELECT"), "the answer is still fresh");

    tokio::time::sleep(fresh + std::time::Duration::from_millis(100)).await;
    let count = Book::query().filter(Book::SHELF.is_in(shelves(300))).count(&db).await.expect("count");
    assert_eq!(count, 3);
    assert!(
        uses(&prepared(&db).await, "\"shelf\" IN (SELECT"),
        "the dropped index is noticed: {:#?}",
        prepared(&db).await
    );

    // And the other way: an index made behind the handle's back (another statement shape,
    // rows rather than a count, so that its text is new to the connection).
    execute_sql(&db, "CREATE INDEX books_shelf_again ON books USING hash (shelf)").await;
    tokio::time::sleep(fresh + std::time::Duration::from_millis(100)).await;
    let rows = Book::query().filter(Book::SHELF.is_in(shelves(300))).all(&db).await.expect("rows");
    assert_eq!(rows.len(), 3);
    let statements = prepared(&db).await;
    let rows_by_index =
        statements.iter().any(|s| s.contains("\"shelf\" = ANY($1)") && !s.to_lowercase().contains("count("));
    assert!(rows_by_index, "a hash index is an index too: {statements:#?}");

    // Switched off, the handle never asks, whatever the catalog holds.
    let off = test_db.db().clone().without_index_hints();
    let rows = Book::query().filter(Book::SHELF.is_in(shelves(7))).all(&off).await.expect("rows");
    assert_eq!(rows.len(), 3);
    assert!(uses(&prepared(&off).await, "\"shelf\" IN (SELECT unnest($1))"), "{:#?}", prepared(&off).await);
    test_db.cleanup().await;
}

/// Indexes come and go (plain, hash, built and dropped concurrently) while readers on a small
/// pool filter by key lists, and the handle looks its answers up again on every statement
/// and forgets them now and then: every read returns exactly the rows it should, whichever
/// form its list was written in, and both forms were in play.
#[tokio::test]
async fn key_lists_stay_right_while_indexes_come_and_go_under_concurrent_readers() {
    let cfg =
        PoolConfig { max_connections: 3, acquire_timeout: std::time::Duration::from_secs(20), ..PoolConfig::default() };
    let test_db = pg_with(cfg).await;
    let db = test_db.db().clone().with_index_hint_freshness(std::time::Duration::ZERO);
    let books = std::sync::Arc::new(shelved_books(&db).await);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));

    let ddl = {
        let (db, done) = (db.clone(), done.clone());
        tokio::spawn(async move {
            let mut cycles = 0_usize;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let (create, drop) = match cycles % 3 {
                    0 => ("CREATE INDEX books_shelf_race ON books (shelf)", "DROP INDEX books_shelf_race"),
                    1 => ("CREATE INDEX books_shelf_race ON books USING hash (shelf)", "DROP INDEX books_shelf_race"),
                    _ => (
                        "CREATE INDEX CONCURRENTLY books_shelf_race ON books (shelf)",
                        "DROP INDEX CONCURRENTLY books_shelf_race",
                    ),
                };
                execute_sql(&db, create).await;
                tokio::time::sleep(std::time::Duration::from_millis(15)).await;
                execute_sql(&db, drop).await;
                if cycles % 4 == 3 {
                    db.forget_index_hints();
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                cycles += 1;
            }
            cycles
        })
    };
    let readers: Vec<_> = (0..4)
        .map(|r| {
            let (db, books) = (db.clone(), books.clone());
            tokio::spawn(async move {
                for i in 0..120 {
                    let list = shelf_list(r * 1000 + i);
                    let expected = matching(&books, &list);
                    if i % 2 == 0 {
                        let count = Book::query().filter(Book::SHELF.is_in(list.clone())).count(&db).await;
                        assert_eq!(count.expect("count"), expected, "reader {r}, read {i}: {} keys", list.len());
                    } else {
                        let rows = Book::query().filter(Book::SHELF.is_in(list.clone())).all(&db).await.expect("rows");
                        assert_eq!(rows.len() as i64, expected, "reader {r}, read {i}: {} keys", list.len());
                        assert!(
                            rows.iter().all(|b| list.contains(&b.shelf)),
                            "reader {r}, read {i}: a row outside the list"
                        );
                    }
                }
            })
        })
        .collect();
    for reader in readers {
        reader.await.expect("a reader failed");
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let cycles = ddl.await.expect("the DDL task failed");
    assert!(cycles >= 5, "only {cycles} index cycles ran beside the readers");

    // Both forms ran: the statements prepared on the pool's connections.
    let pool = db.pg_pool().expect("a PostgreSQL pool");
    let mut conns = Vec::new();
    let mut statements = Vec::new();
    for _ in 0..3 {
        let Ok(mut conn) = pool.try_acquire().map_or_else(|| Err(()), Ok) else { break };
        let held: Vec<String> = sqlx::query_scalar("SELECT statement FROM pg_prepared_statements")
            .fetch_all(&mut *conn)
            .await
            .expect("prepared statements");
        statements.extend(held);
        conns.push(conn);
    }
    drop(conns);
    let uses = |text: &str| statements.iter().any(|s| s.contains(text));
    assert!(uses("\"shelf\" = ANY($1)"), "no read used an index: {statements:#?}");
    assert!(uses("\"shelf\" IN (SELECT"), "no read used the set form: {statements:#?}");
    test_db.cleanup().await;
}

/// Connections cut again and again (`pg_terminate_backend`) while readers filter by key lists
/// and the handle asks the catalog on those same connections: a read returns exactly its rows
/// or fails as the server being unavailable, none hangs, and once the cutting stops every read
/// succeeds.
#[tokio::test]
async fn key_list_reads_and_their_catalog_lookups_survive_cut_connections() {
    const APP: &str = "polystore_cut_lookups";
    let test_db = pg_with(one_connection()).await;
    let books = std::sync::Arc::new(shelved_books(test_db.db()).await);
    execute_sql(test_db.db(), "CREATE INDEX books_shelf_cut ON books (shelf)").await;
    // A pool of its own, named, so that only its connections are cut.
    let base = test_db.db().pg_pool().expect("a PostgreSQL pool");
    let opts = (*base.connect_options()).clone().application_name(APP);
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(3)
        .acquire_timeout(std::time::Duration::from_secs(10))
        .connect_with(opts)
        .await
        .expect("a second pool");
    let db = Db::from_pg_pool(pool).with_index_hint_freshness(std::time::Duration::ZERO);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));

    let cutter = {
        let (admin, done) = (base.clone(), done.clone());
        tokio::spawn(async move {
            let mut cut = 0_i64;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let killed: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE application_name = $1 AND pid <> pg_backend_pid()) t",
                )
                .bind(APP)
                .fetch_one(&admin)
                .await
                .expect("cutting connections");
                cut += killed;
                tokio::time::sleep(std::time::Duration::from_millis(7)).await;
            }
            cut
        })
    };
    let read = |db: Db, books: std::sync::Arc<Vec<Book>>, n: usize| async move {
        let list = shelf_list(n);
        let expected = matching(&books, &list);
        let read = Book::query().filter(Book::SHELF.is_in(list.clone())).all(&db);
        match tokio::time::timeout(std::time::Duration::from_secs(30), read).await {
            Err(_) => panic!("read {n} hung"),
            Ok(Ok(rows)) => {
                assert_eq!(rows.len() as i64, expected, "read {n}: {} keys", list.len());
                true
            }
            Ok(Err(e)) => {
                let class = e.class();
                assert!(
                    matches!(class, ErrorClass::Unavailable | ErrorClass::Transient),
                    "read {n} failed as {class:?}, not as a lost server: {e}"
                );
                false
            }
        }
    };
    let readers: Vec<_> = (0..3)
        .map(|r| {
            let (db, books) = (db.clone(), books.clone());
            tokio::spawn(async move {
                let mut ok = 0;
                for i in 0..100 {
                    ok += usize::from(read(db.clone(), books.clone(), r * 1000 + i).await);
                }
                ok
            })
        })
        .collect();
    let mut succeeded = 0;
    for reader in readers {
        succeeded += reader.await.expect("a reader failed");
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let cut = cutter.await.expect("the cutter failed");
    eprintln!("{cut} connections cut; {succeeded} of 300 reads got through");
    assert!(cut > 0, "no connection was cut");
    assert!(succeeded > 0, "no read got through between the cuts");
    for n in 0..30 {
        assert!(read(db.clone(), books.clone(), 5000 + n).await, "read {n} after the cutting stopped failed");
    }
    test_db.cleanup().await;
}
