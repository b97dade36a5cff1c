//! Relation filters (`any`, `matches`, `all`, `none`, `is_empty`) over `belongs_to` (with a
//! NULL key), `has_one`, `has_many` and `many_to_many`, nested and combined with and / or /
//! not: the SQL stores lower them to `EXISTS`, MongoDB to key pre-queries, and all three must
//! return the same rows — including for NULL keys, NULL values and relations without rows.

use super::*;
use polystore::Rel;

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "crf_authors")]
struct Author {
    #[model(primary_key, generated)]
    id: i64,
    name: String,
    #[model(has_many(foreign_key = author_id))]
    books: Rel<Vec<Book>>,
    #[model(has_one)]
    bio: Rel<Option<Bio>>,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "crf_bios")]
struct Bio {
    #[model(primary_key, generated)]
    id: i64,
    #[model(unique)]
    author_id: i64,
    text: String,
    #[model(belongs_to)]
    author: Rel<Author>,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "crf_books")]
struct Book {
    #[model(primary_key, generated)]
    id: i64,
    author_id: Option<i64>,
    title: String,
    price: Option<i32>,
    #[model(belongs_to(key = author_id, on_delete = "set_null"))]
    author: Rel<Option<Author>>,
    #[model(many_to_many(through = BookTag))]
    tags: Rel<Vec<Label>>,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "crf_labels")]
struct Label {
    #[model(primary_key, generated)]
    id: i64,
    name: String,
    #[model(many_to_many(through = BookTag, left = label_id, right = book_id))]
    books: Rel<Vec<Book>>,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "crf_book_labels", primary_key(book_id, label_id))]
struct BookTag {
    book_id: i64,
    label_id: i64,
    #[model(belongs_to(on_delete = "cascade"))]
    book: Rel<Book>,
    #[model(belongs_to(on_delete = "cascade"))]
    label: Rel<Label>,
}

const SCHEMAS: &[&polystore::ModelSchema] =
    &[Author::SCHEMA, Bio::SCHEMA, Book::SCHEMA, Label::SCHEMA, BookTag::SCHEMA];

/// Authors 1 Ada (books 1, 2 — one with a NULL price; bio "math"), 2 Bob (book 3; bio "poet"),
/// 3 Cy (nothing), 4 Dee (book 5); book 4 has no author. Labels 1 rust (books 1, 3), 2 news
/// (books 3, 5), 3 unused.
async fn seed<E: Executor + Copy>(db: E) -> Result<()> {
    let author = |name: &str| Author { id: 0, name: name.into(), books: Rel::NotLoaded, bio: Rel::NotLoaded };
    Author::insert_many(db, &[author("Ada"), author("Bob"), author("Cy"), author("Dee")]).await?;
    let bio = |author_id, text: &str| Bio { id: 0, author_id, text: text.into(), author: Rel::NotLoaded };
    Bio::insert_many(db, &[bio(1, "math"), bio(2, "poet")]).await?;
    let book = |author_id, title: &str, price| Book {
        id: 0,
        author_id,
        title: title.into(),
        price,
        author: Rel::NotLoaded,
        tags: Rel::NotLoaded,
    };
    let books = [
        book(Some(1), "rust tips", Some(10)),
        book(Some(1), "go notes", None),
        book(Some(2), "rust news", Some(5)),
        book(None, "orphan", Some(7)),
        book(Some(4), "dee one", Some(20)),
    ];
    Book::insert_many(db, &books).await?;
    let label = |name: &str| Label { id: 0, name: name.into(), books: Rel::NotLoaded };
    Label::insert_many(db, &[label("rust"), label("news"), label("unused")]).await?;
    let link = |book_id, label_id| BookTag { book_id, label_id, book: Rel::NotLoaded, label: Rel::NotLoaded };
    BookTag::insert_many(db, &[link(1, 1), link(3, 1), link(3, 2), link(5, 2)]).await?;
    Ok(())
}

async fn author_ids<E: Executor>(db: E, expr: Expr<Author>) -> Result<Vec<i64>> {
    let rows = Author::query().filter(expr).order_by(Author::ID.asc()).all(db).await?;
    Ok(rows.into_iter().map(|a| a.id).collect())
}

async fn book_ids<E: Executor>(db: E, expr: Expr<Book>) -> Result<Vec<i64>> {
    let rows = Book::query().filter(expr).order_by(Book::ID.asc()).all(db).await?;
    Ok(rows.into_iter().map(|b| b.id).collect())
}

async fn label_ids<E: Executor>(db: E, expr: Expr<Label>) -> Result<Vec<i64>> {
    let rows = Label::query().filter(expr).order_by(Label::ID.asc()).all(db).await?;
    Ok(rows.into_iter().map(|l| l.id).collect())
}

store_test!(has_many_filters_agree_including_empty_relations_and_nulls, |db| async move {
    db.create_all(SCHEMAS).await?;
    seed(&db).await?;
    let rust = || Book::TITLE.starts_with("rust");
    assert_eq!(author_ids(&db, Author::BOOKS.any(rust())).await?, [1, 2]);
    assert_eq!(author_ids(&db, Author::BOOKS.exists()).await?, [1, 2, 4]);
    assert_eq!(author_ids(&db, Author::BOOKS.is_empty()).await?, [3]);
    assert_eq!(author_ids(&db, Author::BOOKS.none(rust())).await?, [3, 4]);
    // `all` over no rows holds (Cy); a NULL price is unknown, which does not fail it (Ada).
    assert_eq!(author_ids(&db, Author::BOOKS.all(Book::PRICE.gt(6))).await?, [1, 3, 4]);
    let priced = Book::PRICE.gt(6).and(Book::PRICE.is_not_null());
    assert_eq!(author_ids(&db, Author::BOOKS.all(priced)).await?, [3, 4]);
    assert_eq!(author_ids(&db, Author::BOOKS.any(Book::PRICE.is_null())).await?, [1]);
    assert_eq!(author_ids(&db, Author::BOOKS.any(Book::TITLE.eq("nothing"))).await?, Vec::<i64>::new());
    Ok::<_, Error>(())
});

store_test!(belongs_to_and_has_one_filters_agree_with_a_null_key, |db| async move {
    db.create_all(SCHEMAS).await?;
    seed(&db).await?;
    assert_eq!(book_ids(&db, Book::AUTHOR.matches(Author::NAME.eq("Bob"))).await?, [3]);
    // Book 4 has no author: it never matches, so every negation selects it.
    assert_eq!(book_ids(&db, Book::AUTHOR.is_empty()).await?, [4]);
    assert_eq!(book_ids(&db, Book::AUTHOR.matches(Author::NAME.ne("Bob")).not()).await?, [3, 4]);
    assert_eq!(book_ids(&db, Book::AUTHOR.none(Author::NAME.eq("Ada"))).await?, [3, 4, 5]);
    assert_eq!(book_ids(&db, Book::AUTHOR.all(Author::NAME.eq("Ada"))).await?, [1, 2, 4]);
    assert_eq!(author_ids(&db, Author::BIO.matches(Bio::TEXT.eq("poet"))).await?, [2]);
    assert_eq!(author_ids(&db, Author::BIO.is_empty()).await?, [3, 4]);
    let bios = Bio::query().filter(Bio::AUTHOR.matches(Author::NAME.starts_with("A"))).all(&db).await?;
    assert_eq!(bios.iter().map(|b| b.id).collect::<Vec<_>>(), [1]);
    Ok::<_, Error>(())
});

store_test!(many_to_many_filters_agree_from_both_sides, |db| async move {
    db.create_all(SCHEMAS).await?;
    seed(&db).await?;
    assert_eq!(book_ids(&db, Book::TAGS.any(Label::NAME.eq("news"))).await?, [3, 5]);
    assert_eq!(book_ids(&db, Book::TAGS.is_empty()).await?, [2, 4]);
    assert_eq!(book_ids(&db, Book::TAGS.all(Label::NAME.eq("news"))).await?, [2, 4, 5]);
    assert_eq!(book_ids(&db, Book::TAGS.none(Label::NAME.eq("rust"))).await?, [2, 4, 5]);
    assert_eq!(label_ids(&db, Label::BOOKS.any(Book::TITLE.starts_with("rust"))).await?, [1, 2]);
    assert_eq!(label_ids(&db, Label::BOOKS.is_empty()).await?, [3]);
    Ok::<_, Error>(())
});

store_test!(relation_filters_nest_and_combine_with_and_or_not, |db| async move {
    db.create_all(SCHEMAS).await?;
    seed(&db).await?;
    let news = Author::BOOKS.any(Book::TAGS.any(Label::NAME.eq("news")));
    assert_eq!(author_ids(&db, news.clone()).await?, [2, 4]);
    assert_eq!(author_ids(&db, news.clone().not()).await?, [1, 3]);
    let no_books_or_math = Author::BOOKS.is_empty().or(Author::BIO.matches(Bio::TEXT.eq("math")));
    assert_eq!(author_ids(&db, no_books_or_math).await?, [1, 3]);
    let not_ada = Author::NAME.ne("Ada").and(Author::BOOKS.any(Book::PRICE.is_null()).not());
    assert_eq!(author_ids(&db, not_ada).await?, [2, 3, 4]);
    // Three levels, back up a belongs_to: labels of books by authors with a bio "poet".
    let poets = Label::BOOKS.any(Book::AUTHOR.matches(Author::BIO.matches(Bio::TEXT.eq("poet"))));
    assert_eq!(label_ids(&db, poets).await?, [1, 2]);
    Ok::<_, Error>(())
});

store_test!(relation_filters_work_in_counts_updates_deletes_and_pages, |db| async move {
    db.create_all(SCHEMAS).await?;
    seed(&db).await?;
    let orphans = || Book::query().filter(Book::AUTHOR.is_empty());
    assert_eq!(orphans().count(&db).await?, 1);
    assert!(Author::query().filter(Author::BOOKS.is_empty()).exists(&db).await?);
    let page = Author::query().filter(Author::BOOKS.exists()).order_by(Author::ID.asc());
    let first = page.clone().paginate(&db, PageRequest::first(2)).await?;
    assert_eq!(first.items.iter().map(|a| a.id).collect::<Vec<_>>(), [1, 2]);
    let counted = Book::query().filter(Book::TAGS.exists()).select(count_all::<Book>()).one(&db).await?;
    assert_eq!(counted, 3);
    let repriced =
        Book::query().filter(Book::AUTHOR.matches(Author::NAME.eq("Dee"))).update_many(&db, [Book::PRICE.set(1)]);
    assert_eq!(repriced.await?, 1);
    assert_eq!(book_ids(&db, Book::PRICE.eq(1)).await?, [5]);
    assert_eq!(orphans().delete_many(&db).await?, 1);
    assert_eq!(Book::query().count(&db).await?, 4);
    Ok::<_, Error>(())
});
