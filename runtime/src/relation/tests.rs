//! Exact SQL of relation filters and foreign-key DDL, per dialect.

use crate::prelude::*;
use crate::sql::{ddl, lower, postgres::Postgres, sqlite::Sqlite};

#[derive(crate::Model, Debug, Clone)]
#[model(table = "authors")]
struct Author {
    #[model(primary_key, generated)]
    id: i64,
    name: String,
    #[model(has_many(foreign_key = author_id))]
    books: Rel<Vec<Book>>,
}

#[derive(crate::Model, Debug, Clone)]
#[model(table = "books")]
struct Book {
    #[model(primary_key, generated)]
    id: i64,
    author_id: i64,
    title: String,
    #[model(belongs_to(key = author_id, on_delete = "cascade"))]
    author: Rel<Author>,
    #[model(many_to_many(through = Shelving, left = book_id, right = shelf_id))]
    shelves: Rel<Vec<Shelf>>,
}

#[derive(crate::Model, Debug, Clone)]
#[model(table = "shelves")]
struct Shelf {
    #[model(primary_key)]
    id: i64,
    label: String,
}

#[derive(crate::Model, Debug, Clone)]
#[model(table = "shelvings", primary_key(book_id, shelf_id))]
struct Shelving {
    book_id: i64,
    shelf_id: i64,
    #[model(belongs_to(on_delete = "cascade"))]
    book: Rel<Book>,
    #[model(belongs_to(on_delete = "restrict"))]
    shelf: Rel<Shelf>,
}

#[test]
fn has_many_filter_renders_a_correlated_exists_postgres() {
    let q = Author::query().filter(Author::BOOKS.any(Book::TITLE.eq("Dune")));
    let stmt = lower::select(&Postgres, Author::SCHEMA, &q).unwrap();
    assert_eq!(
        stmt.sql,
        "SELECT \"id\", \"name\" FROM \"authors\" WHERE EXISTS (SELECT 1 FROM \"books\" AS \"r1\" \
         WHERE \"r1\".\"author_id\" = \"authors\".\"id\" AND \"title\" = $1)"
    );
}

#[test]
fn belongs_to_filter_and_its_negation_sqlite() {
    let q = Book::query().filter(Book::AUTHOR.matches(Author::NAME.eq("Le Guin")).not());
    let stmt = lower::select(&Sqlite, Book::SCHEMA, &q).unwrap();
    assert_eq!(
        stmt.sql,
        "SELECT \"id\", \"author_id\", \"title\" FROM \"books\" WHERE NOT (EXISTS (SELECT 1 FROM \"authors\" AS \"r1\" \
         WHERE \"r1\".\"id\" = \"books\".\"author_id\" AND \"name\" = ?1))"
    );
}

#[test]
fn many_to_many_filter_goes_through_the_join_table_postgres() {
    let q = Book::query().filter(Book::SHELVES.any(Shelf::LABEL.eq("sf")));
    let stmt = lower::select(&Postgres, Book::SCHEMA, &q).unwrap();
    assert_eq!(
        stmt.sql,
        "SELECT \"id\", \"author_id\", \"title\" FROM \"books\" WHERE EXISTS (SELECT 1 FROM \"shelvings\" AS \"r1\" \
         WHERE \"r1\".\"book_id\" = \"books\".\"id\" AND \"r1\".\"shelf_id\" IN \
         (SELECT \"r2\".\"id\" FROM \"shelves\" AS \"r2\" WHERE \"label\" = $1))"
    );
}

#[test]
fn nested_relation_filters_refer_to_the_enclosing_alias() {
    let q = Author::query().filter(Author::BOOKS.any(Book::SHELVES.exists()));
    let stmt = lower::select(&Postgres, Author::SCHEMA, &q).unwrap();
    assert!(
        stmt.sql.contains("\"r2\".\"book_id\" = \"r1\".\"id\""),
        "the inner subquery correlates with the outer alias: {}",
        stmt.sql
    );
}

#[test]
fn belongs_to_creates_a_foreign_key_with_its_actions_and_an_index() {
    let sql = ddl::create_table(&Postgres, Shelving::SCHEMA, false).unwrap();
    assert!(sql[0].contains(
        "CONSTRAINT \"shelvings_book_id_fkey\" FOREIGN KEY (\"book_id\") REFERENCES \"books\" (\"id\") \
         ON DELETE CASCADE ON UPDATE NO ACTION"
    ));
    assert!(sql[0].contains("REFERENCES \"shelves\" (\"id\") ON DELETE RESTRICT"));
    // book_id leads the primary key, so only shelf_id gets its own index.
    assert_eq!(sql[1..], ["CREATE INDEX \"shelvings_shelf_id_idx\" ON \"shelvings\" (\"shelf_id\")"]);
    let books = ddl::create_table(&Sqlite, Book::SCHEMA, true).unwrap();
    assert!(
        books.iter().any(|s| s == "CREATE INDEX IF NOT EXISTS \"books_author_id_idx\" ON \"books\" (\"author_id\")")
    );
}
