//! Soft delete (`#[model(soft_delete)]`) on PostgreSQL, SQLite and MongoDB: a deleted row is
//! invisible through every read path (by key, queries, counts, projections, pagination,
//! streams, relation loads, relation filters and aggregates, joined columns) and through the
//! cache (in-process and Redis), unique values are free again once their row is deleted
//! (partial indexes), `with_deleted` / `only_deleted` / `restore` / `force_delete` do what they
//! say, and a delete racing cached reads is never undone by a stale cache fill.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use polystore::Rel;
use polystore::cache::RedisBackend;
use polystore::migrate::{MigrationDir, Migrator, MongoMigrator};
use polystore::prelude::*;
use polystore_tests::{assert_err, sql_test, store_test};

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "sd_authors", cache(ttl = "5m"))]
pub struct Author {
    #[model(primary_key, generated)]
    pub id: i64,
    #[model(unique)]
    pub email: String,
    pub name: String,
    #[model(soft_delete)]
    pub deleted_at: Option<DateTime<Utc>>,
    #[model(has_many(foreign_key = author_id))]
    pub articles: Rel<Vec<Article>>,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "sd_articles")]
pub struct Article {
    #[model(primary_key, generated)]
    pub id: i64,
    pub author_id: i64,
    pub title: String,
    #[model(soft_delete)]
    pub deleted_at: Option<DateTime<Utc>>,
    #[model(belongs_to(key = author_id))]
    pub author: Rel<Author>,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "sd_notes")]
pub struct Note {
    #[model(primary_key, generated)]
    pub id: i64,
    #[model(unique)]
    pub slug: String,
    #[model(version)]
    pub version: i64,
    #[model(soft_delete)]
    pub deleted_at: Option<DateTime<Utc>>,
}

fn author(email: &str, name: &str) -> Author {
    Author { id: 0, email: email.into(), name: name.into(), deleted_at: None, articles: Rel::NotLoaded }
}

fn article(author_id: i64, title: &str) -> Article {
    Article { id: 0, author_id, title: title.into(), deleted_at: None, author: Rel::NotLoaded }
}

fn emails(rows: &[Author]) -> Vec<&str> {
    rows.iter().map(|a| a.email.as_str()).collect()
}

store_test!(every_read_path_leaves_soft_deleted_rows_out, |db| async move {
    db.create_all(&[Author::SCHEMA, Article::SCHEMA]).await?;
    let a = author("a@x", "Ann").insert(&db).await?;
    let b = author("b@x", "Bob").insert(&db).await?;
    let c = author("c@x", "Cid").insert(&db).await?;
    assert_eq!(b.deleted_at, None);
    b.delete(&db).await?;

    // By key.
    assert_err!(Author::find(&db, b.id).await, Error::NotFound { model: "Author" });
    assert_eq!(Author::get(&db, b.id).await?, None);
    // Queries, counts, existence.
    let by_id = || Author::query().order_by(Author::ID.asc());
    assert_eq!(emails(&by_id().all(&db).await?), ["a@x", "c@x"]);
    assert_eq!(Author::query().count(&db).await?, 2);
    assert!(!Author::query().filter(Author::EMAIL.eq("b@x")).exists(&db).await?);
    assert_eq!(Author::query().filter(Author::EMAIL.eq("b@x")).first(&db).await?, None);
    assert_err!(Author::query().filter(Author::NAME.eq("Bob")).one(&db).await, Error::NotExactlyOne { found: 0, .. });
    let streamed: Vec<Author> = by_id().stream(&db).try_collect().await?;
    assert_eq!(emails(&streamed), ["a@x", "c@x"]);
    // Pagination, projections, aggregates.
    let page = by_id().paginate(&db, PageRequest::first(10)).await?;
    assert_eq!(emails(&page.items), ["a@x", "c@x"]);
    let names: Vec<String> = by_id().select(Author::NAME).all(&db).await?;
    assert_eq!(names, ["Ann", "Cid"]);
    let counted: Vec<i64> = Author::query().select(count_all()).all(&db).await?;
    assert_eq!(counted, [2]);
    // Subqueries: a soft-deleted row is not in the subquery's rows.
    let in_sub = Article::query().filter(Article::AUTHOR_ID.is_in(Author::query().select(Author::ID)));
    assert_eq!(in_sub.count(&db).await?, 0, "no articles yet");

    // Asking for them: `with_deleted` and `only_deleted` on every terminal.
    assert_eq!(Author::query().with_deleted().count(&db).await?, 3);
    let trash = Author::query().only_deleted().all(&db).await?;
    assert_eq!(emails(&trash), ["b@x"]);
    let stamp = trash[0].deleted_at.expect("a soft-deleted row holds its deletion time");
    assert!((Utc::now() - stamp).num_seconds().abs() < 60, "stamped now: {stamp}");
    assert_eq!(Author::query().only_deleted().select(Author::NAME).all(&db).await?, ["Bob"]);
    let all = by_id().with_deleted().paginate(&db, PageRequest::first(10)).await?;
    assert_eq!(emails(&all.items), ["a@x", "b@x", "c@x"]);

    // A soft-deleted row cannot be deleted, updated or patched again: it is not found.
    assert_err!(b.delete(&db).await, Error::NotFound { model: "Author" });
    assert!(!Author::delete_by_key(&db, b.id).await?);
    let mut renamed = b.clone();
    renamed.name = "Bobby".into();
    assert_err!(renamed.update(&db).await, Error::NotFound { model: "Author" });
    assert_eq!(Author::query().only_deleted().one(&db).await?.name, "Bob", "the update wrote nothing");
    // A whole-row update of a live row never writes the stamp (only delete / restore do).
    let mut live = a.clone();
    live.deleted_at = Some(Utc::now());
    live.name = "Anna".into();
    let written = live.update(&db).await?;
    assert_eq!((written.name.as_str(), written.deleted_at), ("Anna", None));
    assert_eq!(Author::query().count(&db).await?, 2);
    let _ = c;
    Ok::<(), Error>(())
});

store_test!(unique_values_are_free_again_after_a_soft_delete, |db| async move {
    db.create_all(&[Author::SCHEMA]).await?;
    let old = author("same@x", "Old").insert(&db).await?;
    assert_err!(author("same@x", "Dup").insert(&db).await, Error::UniqueViolation { .. });
    old.delete(&db).await?;
    let new = author("same@x", "New").insert(&db).await?;
    assert_ne!(new.id, old.id);
    assert_eq!(Author::query().with_deleted().filter(Author::EMAIL.eq("same@x")).count(&db).await?, 2);

    // Restoring the old row while a live one holds its e-mail: a unique violation, nothing written.
    let e = old.restore(&db).await.unwrap_err();
    assert!(matches!(&e, Error::UniqueViolation { model: "Author", .. }), "{e:?}");
    assert_eq!(Author::query().only_deleted().count(&db).await?, 1, "the failed restore wrote nothing");
    assert_eq!(Author::query().one(&db).await?.name, "New");

    // Upsert on the unique field sees live rows only: it updates the new row.
    let up = author("same@x", "Upserted").upsert_on(&db, &[Author::EMAIL.into()]).await?;
    assert_eq!((up.id, up.name.as_str()), (new.id, "Upserted"));

    // Force delete removes the new row for good; the old one can then come back.
    new.force_delete(&db).await?;
    assert_eq!(Author::query().with_deleted().count(&db).await?, 1);
    let back = old.restore(&db).await?;
    assert_eq!((back.id, back.name.as_str(), back.deleted_at), (old.id, "Old", None));
    assert_eq!(Author::find(&db, old.id).await?, back);
    // Restoring a live row, or one that does not exist: not found.
    assert_err!(back.restore(&db).await, Error::NotFound { model: "Author" });
    assert_err!(Author::restore_by_key(&db, 999_999).await, Error::NotFound { model: "Author" });
    // Force delete works on a soft-deleted row too.
    back.delete(&db).await?;
    assert!(Author::force_delete_by_key(&db, back.id).await?);
    assert_eq!(Author::query().with_deleted().count(&db).await?, 0);
    assert!(!Author::force_delete_by_key(&db, back.id).await?);
    Ok::<(), Error>(())
});

store_test!(bulk_deletes_stamp_restore_and_purge, |db| async move {
    db.create_all(&[Author::SCHEMA]).await?;
    for i in 0..6 {
        author(&format!("{i}@x"), if i % 2 == 0 { "even" } else { "odd" }).insert(&db).await?;
    }
    assert_eq!(Author::query().filter(Author::NAME.eq("even")).delete_many(&db).await?, 3);
    assert_eq!(Author::query().count(&db).await?, 3);
    assert_eq!(Author::query().only_deleted().count(&db).await?, 3);
    // Already-deleted rows are not stamped again (their deletion time stays).
    let first_stamps: Vec<_> = Author::query().only_deleted().order_by(Author::ID.asc()).all(&db).await?;
    assert_eq!(Author::query().with_deleted().filter(Author::NAME.eq("even")).delete_many(&db).await?, 0);
    assert_eq!(Author::query().only_deleted().delete_many(&db).await?, 0);
    let again: Vec<_> = Author::query().only_deleted().order_by(Author::ID.asc()).all(&db).await?;
    assert_eq!(again, first_stamps);
    // update_many touches live rows unless asked.
    let touched = Author::query().update_many(&db, [Author::NAME.set("live")]).await?;
    assert_eq!(touched, 3);
    assert_eq!(Author::query().only_deleted().filter(Author::NAME.eq("even")).count(&db).await?, 3);
    // restore_many brings back matching deleted rows only.
    assert_eq!(Author::query().filter(Author::EMAIL.eq("0@x")).restore_many(&db).await?, 1);
    assert_eq!(Author::query().count(&db).await?, 4);
    // force_delete_many follows the row mode: purge the trash, then nothing else went.
    assert_eq!(Author::query().only_deleted().force_delete_many(&db).await?, 2);
    assert_eq!(Author::query().with_deleted().count(&db).await?, 4);
    assert_eq!(Author::query().force_delete_many(&db).await?, 4);
    assert_eq!(Author::query().with_deleted().count(&db).await?, 0);
    Ok::<(), Error>(())
});

store_test!(versioned_soft_delete_checks_and_bumps_the_version, |db| async move {
    db.create_all(&[Note::SCHEMA]).await?;
    let note = Note { id: 0, slug: "n".into(), version: 0, deleted_at: None }.insert(&db).await?;
    let mut newer = note.clone();
    newer.slug = "n2".into();
    let newer = newer.update(&db).await?;
    // A stale copy cannot delete: the row moved on.
    assert_err!(note.delete(&db).await, Error::StaleVersion { model: "Note", expected: 1, .. });
    assert_eq!(Note::query().count(&db).await?, 1);
    newer.delete(&db).await?;
    let deleted = Note::query().only_deleted().one(&db).await?;
    assert_eq!(deleted.version, newer.version + 1, "stamping bumps the version");
    // Deleting the deleted row again: not found (not stale).
    assert_err!(newer.delete(&db).await, Error::NotFound { model: "Note" });
    let back = deleted.restore(&db).await?;
    assert_eq!((back.version, back.deleted_at), (deleted.version + 1, None));
    Ok::<(), Error>(())
});

store_test!(relations_do_not_see_soft_deleted_rows, |db| async move {
    db.create_all(&[Author::SCHEMA, Article::SCHEMA]).await?;
    let ann = author("ann@x", "Ann").insert(&db).await?;
    let bob = author("bob@x", "Bob").insert(&db).await?;
    let kept = article(ann.id, "kept").insert(&db).await?;
    let gone = article(ann.id, "gone").insert(&db).await?;
    let bobs = article(bob.id, "bob's").insert(&db).await?;
    gone.delete(&db).await?;

    // has_many loads skip the deleted child.
    let loaded = Author::query().filter(Author::ID.eq(ann.id)).with(Author::ARTICLES).one(&db).await?;
    let titles: Vec<&str> = match &loaded.articles {
        Rel::Loaded(rows) => rows.iter().map(|a| a.title.as_str()).collect(),
        Rel::NotLoaded => panic!("the relation was loaded"),
    };
    assert_eq!(titles, ["kept"]);
    // Relation filters count live related rows only.
    let with_gone = Author::query().filter(Author::ARTICLES.any(Article::TITLE.eq("gone")));
    assert_eq!(with_gone.count(&db).await?, 0);
    let without = Author::query().filter(Author::ARTICLES.none(Article::TITLE.eq("gone")));
    assert_eq!(without.count(&db).await?, 2);

    // A soft-deleted parent: its live children stay (no cascade), relation filters and
    // subqueries from the children's side do not see it, but the row a foreign key points at
    // still loads (a `belongs_to` promises one).
    bob.delete(&db).await?;
    assert_eq!(Article::get(&db, bobs.id).await?.map(|a| a.title), Some("bob's".into()));
    let with_author = Article::query().filter(Article::ID.eq(bobs.id)).with(Article::AUTHOR).one(&db).await?;
    match &with_author.author {
        Rel::Loaded(a) => assert_eq!((a.name.as_str(), a.deleted_at.is_some()), ("Bob", true)),
        Rel::NotLoaded => panic!("the relation was loaded"),
    }
    let of_live = Article::query().filter(Article::AUTHOR.matches(Author::NAME.eq("Bob")));
    assert_eq!(of_live.count(&db).await?, 0);
    let in_sub = Article::query().filter(Article::AUTHOR_ID.is_in(Author::query().select(Author::ID)));
    assert_eq!(in_sub.count(&db).await?, 1, "only Ann's live article");
    let in_all = Article::query().filter(Article::AUTHOR_ID.is_in(Author::query().with_deleted().select(Author::ID)));
    assert_eq!(in_all.count(&db).await?, 2);

    // Relation aggregates count live related rows; joined columns (through the foreign key)
    // read the row it points at, deleted or not.
    {
        let counts: Vec<(String, i64)> = Author::query()
            .with_deleted()
            .order_by(Author::ID.asc())
            .select((Author::NAME, Author::ARTICLES.count()))
            .all(&db)
            .await?;
        assert_eq!(counts, [("Ann".to_owned(), 1), ("Bob".to_owned(), 1)]);
        let joined: Vec<(String, String)> = Article::query()
            .order_by(Article::ID.asc())
            .select((Article::TITLE, Article::AUTHOR.then(Author::NAME)))
            .all(&db)
            .await?;
        assert_eq!(joined, [("kept".to_owned(), "Ann".to_owned()), ("bob's".to_owned(), "Bob".to_owned())]);
    }
    let _ = kept;
    Ok::<(), Error>(())
});

/// A Redis-backed cache under a namespace of its own.
async fn redis_cache() -> Cache {
    let store = polystore_tests::redis().await;
    Cache::builder(RedisBackend::new(&store)).namespace(polystore_tests::unique_name("pssoft")).build()
}

store_test!(cached_reads_never_serve_a_soft_deleted_row, |db| async move {
    db.create_all(&[Author::SCHEMA]).await?;
    for (label, cache) in [("memory", Cache::memory()), ("redis", redis_cache().await)] {
        let db = db.with_cache(cache);
        let email = format!("{label}@x");
        let row = author(&email, label).insert(&db).await?;
        let other = author(&format!("other-{label}@x"), "other").insert(&db).await?;
        // Warm every cached read path.
        assert_eq!(Author::get_cached(&db, row.id).await?, Some(row.clone()), "{label}");
        assert_eq!(Author::find_by_unique_cached(&db, Author::EMAIL, email.as_str()).await?, Some(row.clone()));
        assert_eq!(Author::get_many_cached(&db, vec![row.id, other.id]).await?.len(), 2);

        row.delete(&db).await?;
        assert_eq!(Author::get_cached(&db, row.id).await?, None, "{label}: by key");
        assert_err!(Author::find_cached(&db, row.id).await, Error::NotFound { .. });
        assert_eq!(Author::find_by_unique_cached(&db, Author::EMAIL, email.as_str()).await?, None, "{label}: unique");
        let many = Author::get_many_cached(&db, vec![row.id, other.id]).await?;
        assert_eq!(many, vec![None, Some(other.clone())], "{label}: many");
        // Read twice more: a miss must not have cached the deleted row either.
        assert_eq!(Author::get_cached(&db, row.id).await?, None, "{label}: by key, again");

        // The same through delete_by_key and delete_many.
        assert_eq!(Author::get_cached(&db, other.id).await?, Some(other.clone()));
        Author::query().filter(Author::ID.eq(other.id)).delete_many(&db).await?;
        assert_eq!(Author::get_cached(&db, other.id).await?, None, "{label}: after delete_many");

        // A restore shows through the cache again; a new row may take the deleted e-mail.
        let back = row.restore(&db).await?;
        assert_eq!(Author::get_cached(&db, row.id).await?, Some(back.clone()), "{label}: restored");
        assert!(Author::delete_by_key(&db, row.id).await?);
        assert_eq!(Author::get_cached(&db, row.id).await?, None, "{label}: after delete_by_key");
        let taken = author(&email, "new").insert(&db).await?;
        assert_eq!(Author::find_by_unique_cached(&db, Author::EMAIL, email.as_str()).await?, Some(taken));
    }
    Ok::<(), Error>(())
});

/// Rounds of the race below, and readers per round.
const RACE_ROUNDS: usize = 30;
const READERS: usize = 4;

store_test!(a_delete_racing_cached_reads_is_never_undone_by_the_cache, |db| async move {
    db.create_all(&[Author::SCHEMA]).await?;
    for (label, cache) in [("memory", Cache::memory()), ("redis", redis_cache().await)] {
        let db = db.with_cache(cache);
        for round in 0..RACE_ROUNDS {
            let row = author(&format!("race-{label}-{round}@x"), "racer").insert(&db).await?;
            let deleted = Arc::new(AtomicBool::new(false));
            let readers = (0..READERS).map(|_| {
                let (db, deleted) = (db.clone(), deleted.clone());
                async move {
                    // Read until a few reads started after the delete returned; none of
                    // those may see the row.
                    let mut after = 0;
                    while after < 5 {
                        let was_deleted = deleted.load(Ordering::SeqCst);
                        let got = Author::get_cached(&db, row.id).await?;
                        if was_deleted {
                            assert_eq!(got, None, "{label} round {round}: a read after the delete saw the row");
                            after += 1;
                        }
                        tokio::task::yield_now().await;
                    }
                    Ok::<(), Error>(())
                }
            });
            let deleter = {
                let (db, deleted) = (db.clone(), deleted.clone());
                async move {
                    tokio::task::yield_now().await;
                    Author::delete_by_key(&db, row.id).await?;
                    deleted.store(true, Ordering::SeqCst);
                    Ok::<(), Error>(())
                }
            };
            let (read, del) = tokio::join!(futures_util::future::try_join_all(readers), deleter);
            read?;
            del?;
        }
    }
    Ok::<(), Error>(())
});

/// A migrations directory under the system temp dir, removed afterwards.
struct Migrations(std::path::PathBuf);

impl Migrations {
    fn generate(schemas: &[&'static polystore::ModelSchema]) -> Migrations {
        let path = std::env::temp_dir().join(polystore_tests::unique_name("polystore_soft"));
        std::fs::create_dir_all(&path).expect("create a temp dir");
        MigrationDir::new(&path).generate("soft", schemas).expect("generate").expect("a non-empty diff");
        Migrations(path)
    }

    /// The text of every file of the generated migration.
    fn text(&self) -> String {
        let mut out = String::new();
        for dir in std::fs::read_dir(&self.0).expect("read the migrations").flatten() {
            for file in std::fs::read_dir(dir.path()).expect("read a migration").flatten() {
                out.push_str(&std::fs::read_to_string(file.path()).unwrap_or_default());
            }
        }
        out
    }
}

impl Drop for Migrations {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

sql_test!(migrations_create_the_partial_unique_indexes_and_see_no_drift, |db| async move {
    let dir = Migrations::generate(&[Author::SCHEMA, Article::SCHEMA]);
    let text = dir.text();
    let index = Author::SCHEMA.indexes.iter().find(|ix| ix.unique).expect("the e-mail's unique index").name;
    let partial = format!(r#"CREATE UNIQUE INDEX "{index}" ON "sd_authors" ("email") WHERE "deleted_at" IS NULL"#);
    assert!(text.contains(&partial), "{partial} in {text}");
    assert!(text.contains(r#""where_null": "deleted_at""#), "the snapshot records the partial index: {text}");
    let migrator = Migrator::new(&db, &dir.0);
    migrator.up(None).await.expect("migrate up");
    assert_eq!(migrator.check().await.expect("check"), vec![], "freshly migrated: no drift");
    // create_all over the migrated tables: the same shape, partial indexes included.
    db.create_all(&[Author::SCHEMA, Article::SCHEMA]).await?;
    // The index really is partial: the e-mail of a deleted row can be taken again.
    let old = author("m@x", "old").insert(&db).await?;
    old.delete(&db).await?;
    author("m@x", "new").insert(&db).await?;
    // A plain unique index where a partial one belongs is drift.
    old.force_delete(&db).await?;
    polystore_tests::execute_sql(&db, &format!(r#"DROP INDEX "{index}""#)).await;
    polystore_tests::execute_sql(&db, &format!(r#"CREATE UNIQUE INDEX "{index}" ON "sd_authors" ("email")"#)).await;
    let e = db.create_all(&[Author::SCHEMA]).await.unwrap_err();
    assert!(matches!(&e, Error::TableMismatch { table, .. } if table == "sd_authors"), "{e:?}");
    let drift: Vec<String> = migrator.check().await.expect("check").iter().map(ToString::to_string).collect();
    assert_eq!(drift.len(), 1, "{drift:#?}");
    assert!(drift[0].contains(index), "{drift:#?}");
    Ok::<(), Error>(())
});

#[tokio::test]
async fn mongodb_unique_indexes_of_soft_delete_models_are_partial() {
    polystore_tests::run_on_mongo(|store| async move {
        store.create_all(&[Author::SCHEMA]).await?;
        let old = author("p@x", "old").insert(&store).await?;
        old.delete(&store).await?;
        let new = author("p@x", "new").insert(&store).await?;
        assert_err!(author("p@x", "dup").insert(&store).await, Error::UniqueViolation { .. });
        assert_err!(old.restore(&store).await, Error::UniqueViolation { .. });
        new.force_delete(&store).await?;
        assert_eq!(old.restore(&store).await?.name, "old");

        let dir = Migrations::generate(&[Author::SCHEMA]);
        let migrator = MongoMigrator::new(&store, &dir.0);
        // The collection exists already with the same index: the check sees no drift.
        let drift = migrator.check().await.expect("check");
        assert!(drift.iter().all(|d| !d.to_string().contains("partial")), "{drift:#?}");
        Ok::<(), Error>(())
    })
    .await
}
