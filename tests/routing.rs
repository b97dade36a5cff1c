//! The driver seam's routing: a [`Router`] sees every operation (name, read or write, model,
//! filter) before it runs and picks the store it runs on. Here reads go to one store and
//! writes to another, with different contents, so every answer shows where it came from;
//! a second router sends one model to MongoDB and the others to PostgreSQL.

use std::sync::{Arc, Mutex};

use futures_util::TryStreamExt as _;
use polystore::driver::{OpKind, Operation};
use polystore::mongo::MongoStore;
use polystore::mongo::driver::bson::doc;
use polystore::prelude::*;
use polystore::{Routed, Router};
use polystore_tests::{mongo, pg, sqlite};

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "route_authors")]
struct Author {
    #[model(primary_key, generated)]
    id: i64,
    name: String,
    #[model(has_many(foreign_key = author_id))]
    books: Rel<Vec<Book>>,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "route_books")]
struct Book {
    #[model(primary_key, generated)]
    id: i64,
    author_id: i64,
    title: String,
}

fn author(name: &str) -> Author {
    Author { id: 0, name: name.into(), books: Rel::NotLoaded }
}

fn book(author_id: i64, title: &str) -> Book {
    Book { id: 0, author_id, title: title.into() }
}

/// What the router saw: operation name, kind, model.
type Log = Arc<Mutex<Vec<(&'static str, OpKind, &'static str)>>>;

/// Writes (and everything else) to `primary`, reads to `replica`, recording each operation.
struct ReadWrite<'a> {
    primary: &'a Db,
    replica: &'a Db,
    log: Log,
}

impl Router for ReadWrite<'_> {
    fn route(&mut self, op: &Operation<'_>) -> &mut dyn Executor {
        let model = op.model.map_or("-", |m| m.name);
        self.log.lock().unwrap().push((op.name, op.kind, model));
        match op.kind {
            OpKind::Read => &mut self.replica,
            _ => &mut self.primary,
        }
    }
}

fn seen(log: &Log) -> Vec<(&'static str, OpKind, &'static str)> {
    std::mem::take(&mut *log.lock().unwrap())
}

#[tokio::test]
async fn reads_go_to_the_replica_and_writes_to_the_primary() -> Result<()> {
    let primary = pg().await;
    let replica = sqlite().await;
    primary.create_all(&[Author::SCHEMA, Book::SCHEMA]).await?;
    replica.create_all(&[Author::SCHEMA, Book::SCHEMA]).await?;
    // The "replica" holds other rows than the primary: every read shows where it ran.
    let on_replica = author("on the replica").insert(&replica).await?;
    book(on_replica.id, "replica book").insert(&replica).await?;

    let log = Log::default();
    let mut routed = Routed(ReadWrite { primary: &primary, replica: &replica, log: log.clone() });

    let written = author("written").insert(&mut routed).await?;
    assert_eq!(seen(&log), [("insert", OpKind::Write, "Author")]);
    assert_eq!(Author::find(&*primary, written.id).await?.name, "written", "the insert ran on the primary");
    assert_eq!(Author::query().count(&replica).await?, 1, "and not on the replica");

    // Reads: the replica's row, found under the same key the primary gave the new row.
    assert_eq!(written.id, on_replica.id, "both stores hand out key 1 first");
    assert_eq!(Author::find(&mut routed, written.id).await?.name, "on the replica");
    let names: Vec<String> = Author::query().all(&mut routed).await?.into_iter().map(|a| a.name).collect();
    assert_eq!(names, ["on the replica"]);
    assert_eq!(Author::query().count(&mut routed).await?, 1);
    assert!(Author::query().filter(Author::NAME.eq("on the replica")).exists(&mut routed).await?);
    let names: Vec<String> = Author::query().select(Author::NAME).all(&mut routed).await?;
    assert_eq!(names, ["on the replica"]);
    assert_eq!(
        seen(&log),
        [
            ("find", OpKind::Read, "Author"),
            ("select", OpKind::Read, "Author"),
            ("count", OpKind::Read, "Author"),
            ("exists", OpKind::Read, "Author"),
            ("select", OpKind::Read, "Author"),
        ]
    );

    // A read carries its filter to the router (a shard router keys on it).
    struct Filters<'a>(&'a Db, Arc<Mutex<Vec<String>>>);
    impl Router for Filters<'_> {
        fn route(&mut self, op: &Operation<'_>) -> &mut dyn Executor {
            self.1.lock().unwrap().push(format!("{:?}", op.filter));
            &mut self.0
        }
    }
    let filters = Arc::new(Mutex::new(Vec::new()));
    let mut by_filter = Routed(Filters(&replica, filters.clone()));
    Author::query().filter(Author::ID.eq(7)).all(&mut by_filter).await?;
    let filters = filters.lock().unwrap().clone();
    assert_eq!(filters.len(), 1);
    assert!(filters[0].contains("I64(7)"), "the filter reaches the router: {filters:?}");

    // Relation loads are reads too, one routed operation per level.
    let with_books = Author::query().with(Author::BOOKS).all(&mut routed).await?;
    assert_eq!(with_books[0].books.get().map(|b| b[0].title.as_str()), Some("replica book"));
    assert_eq!(seen(&log), [("select", OpKind::Read, "Author"), ("select", OpKind::Read, "Book")]);

    // Streams read page by page, each page a routed read.
    let streamed: Vec<Author> = Author::query().stream(&mut routed).try_collect().await?;
    assert_eq!(streamed.len(), 1);
    assert!(seen(&log).iter().all(|(name, kind, _)| *name == "paginate" && *kind == OpKind::Read));

    // Writes of every shape go to the primary.
    let mut changed = written.clone();
    changed.name = "changed".into();
    changed.update(&mut routed).await?;
    Author::query().filter(Author::ID.eq(written.id)).update_many(&mut routed, [Author::NAME.set("bulk")]).await?;
    book(written.id, "primary book").insert(&mut routed).await?;
    Book::query().delete_many(&mut routed).await?;
    assert_eq!(
        seen(&log),
        [
            ("update", OpKind::Write, "Author"),
            ("update_many", OpKind::Write, "Author"),
            ("insert", OpKind::Write, "Book"),
            ("delete_many", OpKind::Write, "Book"),
        ]
    );
    assert_eq!(Author::find(&*primary, written.id).await?.name, "bulk");
    assert_eq!(Book::query().count(&replica).await?, 1, "the replica's book is untouched");

    // Routers nest: the outer one hands every operation to the inner one.
    struct Outer<'a>(&'a mut Routed<ReadWrite<'a>>);
    impl Router for Outer<'_> {
        fn route(&mut self, _: &Operation<'_>) -> &mut dyn Executor {
            &mut self.0
        }
    }
    let mut nested = Routed(Outer(&mut routed));
    assert_eq!(Author::find(&mut nested, written.id).await?.name, "on the replica");
    assert_eq!(seen(&log), [("find", OpKind::Read, "Author")]);

    primary.cleanup().await;
    Ok(())
}

/// A write that needs a transaction (a chosen key beyond the key sequence: lock, insert,
/// advance) runs all of it on the store the router picked for the write.
#[tokio::test]
async fn a_write_needing_a_transaction_runs_it_on_the_routed_store() -> Result<()> {
    let primary = pg().await;
    let replica = sqlite().await;
    primary.create_all(&[Author::SCHEMA, Book::SCHEMA]).await?;
    replica.create_all(&[Author::SCHEMA, Book::SCHEMA]).await?;
    let log = Log::default();
    let mut routed = Routed(ReadWrite { primary: &primary, replica: &replica, log: log.clone() });
    let mut keyed = author("keyed");
    keyed.id = 50;
    keyed.insert_with_key(&mut routed).await?;
    assert_eq!(seen(&log), [("insert", OpKind::Write, "Author")]);
    let next = author("next").insert(&mut routed).await?;
    assert_eq!(next.id, 51, "the primary's sequence moved past the chosen key");
    assert_eq!(Author::query().count(&replica).await?, 0);
    primary.cleanup().await;
    Ok(())
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "route_notes")]
struct Note {
    #[model(primary_key, generated)]
    id: i64,
    text: String,
}

/// Sends `Note` to MongoDB and every other model to PostgreSQL.
struct ByModel<'a> {
    sql: &'a Db,
    documents: &'a MongoStore,
}

impl Router for ByModel<'_> {
    fn route(&mut self, op: &Operation<'_>) -> &mut dyn Executor {
        match op.model {
            Some(m) if m.name == "Note" => &mut self.documents,
            _ => &mut self.sql,
        }
    }
}

#[tokio::test]
async fn one_handle_can_spread_models_over_postgresql_and_mongodb() -> Result<()> {
    let sql = pg().await;
    let documents = mongo().await;
    sql.create_all(&[Author::SCHEMA, Book::SCHEMA]).await?;
    documents.create_all(&[Note::SCHEMA]).await?;
    let mut both = Routed(ByModel { sql: &sql, documents: &documents });

    let a = author("sql author").insert(&mut both).await?;
    let n = Note { id: 0, text: "a document".into() }.insert(&mut both).await?;
    assert_eq!(Author::find(&*sql, a.id).await?.name, "sql author");
    assert_eq!(Note::find(&documents, n.id).await?.text, "a document");
    assert_eq!(Note::query().count(&mut both).await?, 1);
    assert_eq!(Author::query().count(&mut both).await?, 1);
    let texts: Vec<String> = Note::query().select(Note::TEXT).all(&mut both).await?;
    assert_eq!(texts, ["a document"]);
    let counted = documents.run_command(doc! { "count": "route_notes" }).await?;
    assert_eq!(counted.get_i32("n").ok().map(i64::from).or(counted.get_i64("n").ok()), Some(1), "a MongoDB document");

    documents.database().drop().await.map_err(|e| Error::Driver(Box::new(e)))?;
    sql.cleanup().await;
    Ok(())
}
