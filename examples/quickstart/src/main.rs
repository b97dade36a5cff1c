//! The polystore tour: two models, their tables, inserts, queries, an update and a
//! transaction.
//!
//! Runs on an in-memory SQLite database by default (nothing to install):
//!
//! ```text
//! cargo run -p quickstart
//! ```
//!
//! or on PostgreSQL when `DATABASE_URL` is set (the tables `quickstart_authors` and
//! `quickstart_books` are dropped and re-created, so the example can run again and again):
//!
//! ```text
//! DATABASE_URL=postgres://postgres:postgres@127.0.0.1:5432/polystore_test cargo run -p quickstart
//! ```

use chrono::{DateTime, Utc};
use polystore::prelude::*;
use rust_decimal::Decimal;

/// An author; the database assigns the id, e-mail addresses are unique.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "quickstart_authors")]
pub struct Author {
    #[model(primary_key, generated)]
    pub id: i64,
    #[model(unique)]
    pub email: String,
    pub name: String,
    #[model(created_at)]
    pub created_at: DateTime<Utc>,
}

/// What a book is about; stored as text (`science_fiction`, ...).
#[derive(Enum, Debug, Clone, Copy, PartialEq)]
#[model(rename_all = "snake_case")]
pub enum Genre {
    Novel,
    ScienceFiction,
    Science,
    Poetry,
}

/// A book, written by an author.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "quickstart_books")]
#[model(index(genre, year))]
pub struct Book {
    #[model(primary_key, generated)]
    pub id: i64,
    #[model(index)]
    pub author_id: i64,
    pub title: String,
    pub genre: Genre,
    pub year: i32,
    pub price: Decimal,
    #[model(default = 0)]
    pub stock: i32,
    #[model(created_at)]
    pub created_at: DateTime<Utc>,
    #[model(updated_at)]
    pub updated_at: DateTime<Utc>,
}

fn author(email: &str, name: &str) -> Author {
    Author { id: 0, email: email.into(), name: name.into(), created_at: Utc::now() }
}

fn book(author: &Author, title: &str, genre: Genre, year: i32, price: Decimal, stock: i32) -> Book {
    Book {
        id: 0,
        author_id: author.id,
        title: title.into(),
        genre,
        year,
        price,
        stock,
        created_at: Utc::now(),
        updated_at: Utc::now(),
    }
}

/// A price from cents: `price(1299)` is 12.99.
fn price(cents: i64) -> Decimal {
    Decimal::new(cents, 2)
}

/// The URL without its password, for printing.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            let user = credentials.split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

fn show(books: &[Book]) {
    for b in books {
        println!(
            "    #{:<3} {:<34} {:<16} {}  {:>6}  stock {}",
            b.id,
            b.title,
            format!("{:?}", b.genre),
            b.year,
            b.price,
            b.stock
        );
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| "sqlite::memory:".to_owned());
    let db = Db::connect(&url).await?;
    println!("polystore quickstart on {:?} ({})", db.backend(), redacted(&url));

    // Tables: drop whatever a previous run left, then create them (and their indexes).
    let schemas = [Author::SCHEMA, Book::SCHEMA];
    db.drop_all(&schemas).await?;
    db.create_all(&schemas).await?;
    println!("created tables {} and {}", Author::SCHEMA.table, Book::SCHEMA.table);

    // Insert one row: the stored row comes back with its generated id and timestamp.
    let ursula = author("ursula@example.com", "Ursula K. Le Guin").insert(&db).await?;
    println!(
        "\ninserted author #{} {} <{}> at {}",
        ursula.id,
        ursula.name,
        ursula.email,
        ursula.created_at.format("%H:%M:%S")
    );

    // Insert several in one statement.
    let authors = Author::insert_many(
        &db,
        &[author("octavia@example.com", "Octavia E. Butler"), author("carl@example.com", "Carl Sagan")],
    )
    .await?;
    let (octavia, carl) = (&authors[0], &authors[1]);
    println!(
        "inserted {} more authors: {}",
        authors.len(),
        authors.iter().map(|a| a.name.as_str()).collect::<Vec<_>>().join(", ")
    );

    let statements_before = db.stats().statements();
    let books = Book::insert_many(
        &db,
        &[
            book(&ursula, "A Wizard of Earthsea", Genre::Novel, 1968, price(1099), 12),
            book(&ursula, "The Left Hand of Darkness", Genre::ScienceFiction, 1969, price(1450), 4),
            book(&ursula, "The Dispossessed", Genre::ScienceFiction, 1974, price(1399), 0),
            book(octavia, "Kindred", Genre::Novel, 1979, price(1250), 7),
            book(octavia, "Parable of the Sower", Genre::ScienceFiction, 1993, price(1600), 3),
            book(carl, "Cosmos", Genre::Science, 1980, price(1999), 9),
            book(carl, "Pale Blue Dot", Genre::Science, 1994, price(1800), 2),
        ],
    )
    .await?;
    println!("inserted {} books with {} statement(s)", books.len(), db.stats().statements() - statements_before);

    // A unique index at work.
    match author("carl@example.com", "Another Carl").insert(&db).await {
        Err(Error::UniqueViolation { constraint, fields, .. }) => {
            println!("duplicate e-mail rejected: constraint {}, fields {fields:?}", constraint.unwrap_or_default())
        }
        other => return Err(format!("expected a unique violation, got {other:?}").into()),
    }

    // Queries: filter, order, limit, count.
    let sf = Book::query().filter(Book::GENRE.eq(Genre::ScienceFiction)).order_by(Book::YEAR.asc()).all(&db).await?;
    println!("\nscience fiction, oldest first:");
    show(&sf);

    let recent = Book::query()
        .filter(Book::YEAR.ge(1975).and(Book::STOCK.gt(0)))
        .order_by(Book::YEAR.desc())
        .limit(2)
        .all(&db)
        .await?;
    println!("the two newest books since 1975 that are in stock:");
    show(&recent);

    let by_ursula = Book::query().filter(Book::AUTHOR_ID.eq(ursula.id)).count(&db).await?;
    println!("{} has {by_ursula} books; there are {} books in all", ursula.name, Book::query().count(&db).await?);

    // Update: the row comes back with a new updated_at.
    let mut dispossessed =
        Book::query().filter(Book::TITLE.eq("The Dispossessed")).first(&db).await?.ok_or("missing book")?;
    dispossessed.stock += 5;
    dispossessed.price = price(1299);
    let dispossessed = dispossessed.update(&db).await?;
    println!("\nrestocked: {} now has {} copies at {}", dispossessed.title, dispossessed.stock, dispossessed.price);

    // A transaction: a new author and their first book, together or not at all.
    let mut tx = db.begin().await?;
    let mary = author("mary@example.com", "Mary Shelley").insert(&mut tx).await?;
    book(&mary, "Frankenstein", Genre::Novel, 1818, price(899), 5).insert(&mut tx).await?;
    tx.commit().await?;
    println!("committed: {} and her first book", mary.name);

    let mut tx = db.begin().await?;
    let ghost = author("ghost@example.com", "Nobody").insert(&mut tx).await?;
    book(&ghost, "Unwritten", Genre::Poetry, 2099, price(100), 1).insert(&mut tx).await?;
    tx.rollback().await?;
    let ghosts = Author::query().filter(Author::EMAIL.eq("ghost@example.com")).count(&db).await?;
    println!("rolled back: authors named Nobody afterwards: {ghosts}");

    // Lookups by key.
    let found = Author::find(&db, mary.id).await?;
    println!("\nfind({}) -> {} <{}>", mary.id, found.name, found.email);
    println!("get(999999) -> {:?}", Author::get(&db, 999_999).await?.map(|a| a.name));

    // Delete.
    let deleted = Book::delete_by_key(&db, books[0].id).await?;
    println!("deleted {:?}: {deleted}", books[0].title);
    println!(
        "{} authors, {} books, {} statements in all",
        Author::query().count(&db).await?,
        Book::query().count(&db).await?,
        db.stats().statements()
    );

    db.close().await;
    println!("\ndone");
    Ok(())
}
