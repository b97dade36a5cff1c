//! N+1 detection: a scope counts statements by shape; loading a relation row by row trips it,
//! `.with(..)` does not. Also the `error.type` recorded on a failed statement's span.

use polystore::observe::{StatementLimit, assert_max_statements, statement_scope};
use polystore::prelude::*;
use polystore::{Error, Rel};
use polystore_tests::{StoreKind, TestStore as _, assert_err, store_test};

use crate::support::Events;

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "obs_writers")]
struct Writer {
    #[model(primary_key)]
    id: i64,
    name: String,
    #[model(has_many(foreign_key = writer_id))]
    books: Rel<Vec<Book>>,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "obs_books")]
struct Book {
    #[model(primary_key)]
    id: i64,
    writer_id: i64,
    title: String,
    #[model(belongs_to(key = writer_id))]
    writer: Rel<Writer>,
}

/// Five books by five writers.
macro_rules! library {
    ($db:expr) => {{
        $db.create_all(&[Writer::SCHEMA, Book::SCHEMA]).await?;
        for i in 1..=5 {
            Writer { id: i, name: format!("w{i}"), books: Rel::NotLoaded }.insert(&$db).await?;
            Book { id: i, writer_id: i, title: format!("b{i}"), writer: Rel::NotLoaded }.insert(&$db).await?;
        }
    }};
}

store_test!(one_query_per_row_is_reported_and_with_is_not, |db| async move {
    library!(db);
    let (events, guard) = Events::capture();
    // The N+1 pattern: the books, then each writer by key.
    let (names, report) = statement_scope(StatementLimit::warn_after(3), async {
        let mut names = Vec::new();
        for book in Book::query().order_by(Book::ID.asc()).all(&db).await? {
            names.push(Writer::find(&db, book.writer_id).await?.name);
        }
        Ok::<_, Error>(names)
    })
    .await;
    drop(guard);
    assert_eq!(names?, ["w1", "w2", "w3", "w4", "w5"]);
    assert_eq!(report.statements, 6);
    assert_eq!(report.over_limit.len(), 1, "{report:?}");
    let shape = &report.over_limit[0];
    assert_eq!((shape.operation, shape.model, shape.count), ("find", "Writer", 5));
    // Where the loop is: this file, at the `Writer::find` line (the path as the backtrace
    // prints it: relative to the working directory).
    let site = shape.call_site.as_deref().unwrap_or_default();
    let line: usize = site
        .rsplit_once("observe/scope.rs:")
        .and_then(|(_, l)| l.split(':').next()?.parse().ok())
        .unwrap_or_else(|| panic!("call site {site:?} is not in this file"));
    let source = include_str!("scope.rs").lines().nth(line - 1).unwrap_or_default();
    assert!(source.contains("Writer::find(&db, book.writer_id)"), "call site {site:?} is line {source:?}");
    match db.kind() {
        StoreKind::Mongo => assert_eq!(shape.statement, "find obs_writers"),
        _ => assert!(shape.statement.starts_with("SELECT") && shape.statement.contains("obs_writers"), "{shape:?}"),
    }
    assert_eq!(report.shapes.len(), 2);
    assert_eq!(report.shapes[1].count, 1);
    // One warning, when the shape first went past the limit.
    let warnings = events.with_target("polystore::n_plus_one");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0].get("polystore.model"), Some("Writer"));
    assert_eq!(warnings[0].get("code.location"), Some(site));
    assert!(warnings[0].get("message").unwrap().contains(".with(..)"), "{warnings:?}");

    // The same data with `.with(..)`: one query per level.
    let (books, report) = statement_scope(StatementLimit::strict(1), Book::query().with(Book::WRITER).all(&db)).await;
    let books = books?;
    assert_eq!(books[4].writer.get().map(|w| w.name.as_str()), Some("w5"));
    assert_eq!(report.statements, 2);
    assert!(report.over_limit.is_empty());
    Ok::<_, Error>(())
});

store_test!(a_strict_scope_refuses_the_statement_past_the_limit, |db| async move {
    library!(db);
    let (results, report) = statement_scope(StatementLimit::strict(2), async {
        let mut results = Vec::new();
        for id in 1..=4 {
            results.push(Writer::find(&db, id).await.map(|w| w.name));
        }
        results
    })
    .await;
    assert_eq!(results[0].as_deref().ok(), Some("w1"));
    assert_eq!(results[1].as_deref().ok(), Some("w2"));
    for refused in results.into_iter().skip(2) {
        assert_err!(refused, Error::TooManyStatements { model: "Writer", operation: "find", limit: 2, .. });
    }
    assert_eq!(report.statements, 2);
    assert_eq!(report.shapes[0].count, 2);
    Ok::<_, Error>(())
});

store_test!(assert_max_statements_passes_within_the_limit, |db| async move {
    library!(db);
    let books = assert_max_statements(2, Book::query().with(Book::WRITER).all(&db)).await?;
    assert_eq!(books.len(), 5);
    Ok::<_, Error>(())
});

#[tokio::test]
#[should_panic(expected = "expected at most 2 statements, 5 ran")]
async fn assert_max_statements_panics_listing_the_shapes() {
    let db = polystore_tests::sqlite().await;
    let run = async {
        library!(db);
        Ok::<_, Error>(())
    };
    run.await.unwrap();
    assert_max_statements(2, async {
        for id in 1..=5 {
            Writer::get(&db, id).await.unwrap();
        }
    })
    .await;
}
