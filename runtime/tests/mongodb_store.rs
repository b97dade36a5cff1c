//! The MongoDB store in a MongoDB-only build (`--no-default-features --features
//! mongodb,memory-cache`): CRUD, queries, projections, pages, streams, bulk writes, relation
//! loads, the cache and the refusals, against the real server at `MONGODB_URL`. scripts/test
//! runs this file in that build, so the driver seam is exercised without the SQL stores (and
//! without sqlx) compiled in.
//!
//! Without a reachable server the tests fail, saying how to start one.

#![cfg(feature = "mongodb")]

use futures_util::TryStreamExt as _;
use polystore::mongo::MongoStore;
use polystore::prelude::*;
use polystore::query::PageRequest;

const DEFAULT_URL: &str = "mongodb://127.0.0.1:27017/?directConnection=true&serverSelectionTimeoutMS=5000";

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "mo_authors", cache(ttl = "5m"))]
struct Author {
    #[model(primary_key, generated)]
    id: i64,
    #[model(unique)]
    name: String,
    rank: i64,
    #[model(has_many(foreign_key = author_id))]
    books: Rel<Vec<Book>>,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "mo_books")]
struct Book {
    #[model(primary_key, generated)]
    id: i64,
    author_id: i64,
    title: String,
    pages: i64,
}

fn author(name: &str, rank: i64) -> Author {
    Author { id: 0, name: name.into(), rank, books: Rel::NotLoaded }
}

fn book(author_id: i64, title: &str, pages: i64) -> Book {
    Book { id: 0, author_id, title: title.into(), pages }
}

/// A fresh database on the test server, or a panic that says how to start one.
async fn store() -> MongoStore {
    let url = std::env::var("MONGODB_URL").ok().filter(|u| !u.is_empty()).unwrap_or_else(|| DEFAULT_URL.into());
    let name = format!("psmonly_{}_{}", std::process::id(), uuid::Uuid::new_v4().simple());
    let store = MongoStore::connect(&url, &name).await;
    let store = match store {
        Ok(s) => s,
        Err(e) => panic!("MongoDB at {url} is not usable ({e}): start it with scripts/dev-services"),
    };
    if let Err(e) = store.ping().await {
        panic!("MongoDB at {url} does not answer ({e}): start it with scripts/dev-services");
    }
    store.create_all(&[Author::SCHEMA, Book::SCHEMA]).await.expect("create collections");
    store
}

async fn drop_db(store: &MongoStore) {
    store.database().drop().await.expect("drop the test database");
}

#[tokio::test]
async fn crud_round_trips_through_the_driver() -> Result<()> {
    let db = store().await;
    let a = author("ann", 3).insert(&db).await?;
    assert_eq!(a.id, 1, "the counter hands out 1 first");
    let more = Author::insert_many(&db, &[author("bob", 1), author("cy", 2)]).await?;
    assert_eq!(more.iter().map(|a| a.id).collect::<Vec<_>>(), [2, 3]);
    assert_eq!(Author::find(&db, 2).await?.name, "bob");
    assert_eq!(Author::get(&db, 99).await?, None);
    assert!(matches!(Author::find(&db, 99).await, Err(Error::NotFound { model: "Author" })));

    let mut changed = a.clone();
    changed.rank = 30;
    assert_eq!(changed.update(&db).await?.rank, 30);
    let mut upserted = author("dee", 4);
    upserted.id = 10;
    assert_eq!(upserted.upsert(&db).await?.id, 10);
    assert_eq!(author("eve", 5).insert(&db).await?.id, 11, "the counter moved past the upserted key");

    assert!(matches!(author("ann", 0).insert(&db).await, Err(Error::UniqueViolation { .. })));
    assert!(Author::delete_by_key(&db, 10).await?);
    assert!(!Author::delete_by_key(&db, 10).await?);
    changed.delete(&db).await?;
    assert_eq!(Author::query().count(&db).await?, 3);
    drop_db(&db).await;
    Ok(())
}

#[tokio::test]
async fn queries_projections_pages_and_streams() -> Result<()> {
    let db = store().await;
    let authors = Author::insert_many(&db, &[author("ann", 3), author("bob", 1), author("cy", 2)]).await?;
    let ann = authors[0].id;
    Book::insert_many(&db, &[book(ann, "a", 100), book(ann, "b", 250), book(authors[1].id, "c", 80)]).await?;

    let by_rank: Vec<String> =
        Author::query().order_by(Author::RANK.desc()).all(&db).await?.into_iter().map(|a| a.name).collect();
    assert_eq!(by_rank, ["ann", "cy", "bob"]);
    let first = Author::query().filter(Author::RANK.lt(3)).order_by(Author::RANK.asc()).first(&db).await?;
    assert_eq!(first.map(|a| a.name), Some("bob".into()));
    assert!(matches!(Author::query().one(&db).await, Err(Error::NotExactlyOne { found: 2, .. })));
    assert!(Author::query().filter(Author::NAME.eq("cy")).exists(&db).await?);

    let totals: Vec<(i64, Option<i64>)> = Book::query()
        .group_by(Book::AUTHOR_ID)
        .order_by(Book::AUTHOR_ID.asc())
        .select((Book::AUTHOR_ID, Book::PAGES.sum()))
        .all(&db)
        .await?;
    assert_eq!(totals, [(ann, Some(350)), (authors[1].id, Some(80))]);

    let page = Author::query().order_by(Author::NAME.asc()).paginate(&db, PageRequest::first(2)).await?;
    assert_eq!(page.items.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(), ["ann", "bob"]);
    let next = page.next.expect("a second page");
    let page = Author::query().order_by(Author::NAME.asc()).paginate(&db, PageRequest::after(next, 2)).await?;
    assert_eq!(page.items.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(), ["cy"]);

    let streamed: Vec<Author> = Author::query().order_by(Author::ID.asc()).stream(&db).try_collect().await?;
    assert_eq!(streamed.len(), 3);

    let with_books = Author::query().with(Author::BOOKS).order_by(Author::ID.asc()).all(&db).await?;
    let titles: Vec<&str> = with_books[0].books.get().expect("loaded").iter().map(|b| b.title.as_str()).collect();
    assert_eq!(titles, ["a", "b"]);
    assert_eq!(with_books[2].books.get().map(Vec::len), Some(0));

    let changed = Book::query().filter(Book::PAGES.gt(90)).update_many(&db, [Book::PAGES.set(1)]).await?;
    assert_eq!(changed, 2);
    assert_eq!(Book::query().filter(Book::PAGES.eq(1)).count(&db).await?, 2);
    assert_eq!(Book::query().filter(Book::AUTHOR_ID.eq(ann)).delete_many(&db).await?, 2);
    assert_eq!(Book::query().count(&db).await?, 1);
    drop_db(&db).await;
    Ok(())
}

#[tokio::test]
async fn the_cache_reads_through_and_writes_invalidate() -> Result<()> {
    let plain = store().await;
    let db = plain.with_cache(Cache::memory());
    let a = author("ann", 1).insert(&db).await?;
    assert_eq!(Author::find_cached(&db, a.id).await?.rank, 1);
    let before = db.stats().statements();
    assert_eq!(Author::find_cached(&db, a.id).await?.rank, 1, "a hit");
    assert_eq!(db.stats().statements(), before, "a hit sends no command");
    let mut changed = a.clone();
    changed.rank = 2;
    changed.update(&db).await?;
    assert_eq!(Author::find_cached(&db, a.id).await?.rank, 2, "the update invalidated the entry");
    drop_db(&plain).await;
    Ok(())
}

#[tokio::test]
async fn what_mongodb_cannot_do_is_refused_by_name() -> Result<()> {
    #[derive(Model, Debug, Clone, PartialEq)]
    #[model(table = "mo_tags")]
    struct Tag {
        #[model(primary_key, generated)]
        id: i64,
        label: String,
    }
    #[derive(Model, Debug, Clone, PartialEq)]
    #[model(table = "mo_post_tags", primary_key(post_id, tag_id))]
    struct PostTag {
        post_id: i64,
        tag_id: i64,
    }
    #[derive(Model, Debug, Clone, PartialEq)]
    #[model(table = "mo_posts")]
    struct Post {
        #[model(primary_key, generated)]
        id: i64,
        #[model(many_to_many(through = PostTag))]
        tags: Rel<Vec<Tag>>,
    }
    let db = store().await;
    let post = Post { id: 1, tags: Rel::NotLoaded };
    let tag = Tag { id: 1, label: "x".into() };
    match Post::TAGS.link(&db, &post, &tag).await {
        Err(Error::Unsupported { store: "mongodb", what }) => {
            assert!(what.contains("join model's documents"), "names the alternative: {what}")
        }
        other => panic!("link on MongoDB must be refused, got {other:?}"),
    }
    drop_db(&db).await;
    Ok(())
}
