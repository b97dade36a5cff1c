//! Relations on PostgreSQL and SQLite: 1:1, 1:N, N:M and self-relations loaded in batches (the
//! statement counts are asserted, so N+1 cannot come back unnoticed), nested loading, relation
//! filters, foreign keys with their actions, and link/unlink of N:M rows.

use polystore::prelude::*;
use polystore::{ConstraintKind, Rel};
use polystore_tests::{assert_err, query_text, sql_test, store_test};

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "rel_users")]
pub struct User {
    #[model(primary_key, generated)]
    pub id: i64,
    pub name: String,
    #[model(has_many(foreign_key = author_id))]
    pub posts: Rel<Vec<Post>>,
    #[model(has_one)]
    pub profile: Rel<Option<Profile>>,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "rel_profiles")]
pub struct Profile {
    #[model(primary_key, generated)]
    pub id: i64,
    #[model(unique)]
    pub user_id: i64,
    pub bio: String,
    #[model(belongs_to(on_delete = "cascade"))]
    pub user: Rel<User>,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "rel_posts")]
pub struct Post {
    #[model(primary_key, generated)]
    pub id: i64,
    pub author_id: i64,
    pub title: String,
    #[model(belongs_to(key = author_id, on_delete = "cascade"))]
    pub author: Rel<User>,
    #[model(has_many)]
    pub comments: Rel<Vec<Comment>>,
    #[model(many_to_many(through = PostTag))]
    pub tags: Rel<Vec<Tag>>,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "rel_comments")]
pub struct Comment {
    #[model(primary_key, generated)]
    pub id: i64,
    pub post_id: i64,
    pub body: String,
    #[model(belongs_to(on_delete = "cascade"))]
    pub post: Rel<Post>,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "rel_tags")]
pub struct Tag {
    #[model(primary_key, generated)]
    pub id: i64,
    #[model(unique)]
    pub name: String,
    #[model(many_to_many(through = PostTag, left = tag_id, right = post_id))]
    pub posts: Rel<Vec<Post>>,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "rel_post_tags", primary_key(post_id, tag_id))]
pub struct PostTag {
    pub post_id: i64,
    pub tag_id: i64,
    #[model(belongs_to(on_delete = "cascade"))]
    pub post: Rel<Post>,
    #[model(belongs_to(on_delete = "cascade"))]
    pub tag: Rel<Tag>,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "rel_employees")]
pub struct Employee {
    #[model(primary_key, generated)]
    pub id: i64,
    pub name: String,
    pub manager_id: Option<i64>,
    #[model(belongs_to(key = manager_id, on_delete = "set_null"))]
    pub manager: Rel<Option<Employee>>,
    #[model(has_many(foreign_key = manager_id))]
    pub reports: Rel<Vec<Employee>>,
}

const SCHEMAS: &[&polystore::ModelSchema] =
    &[User::SCHEMA, Profile::SCHEMA, Post::SCHEMA, Comment::SCHEMA, Tag::SCHEMA, PostTag::SCHEMA, Employee::SCHEMA];

fn user(name: &str) -> User {
    User { id: 0, name: name.into(), posts: Rel::NotLoaded, profile: Rel::NotLoaded }
}

fn post(author: &User, title: &str) -> Post {
    Post {
        id: 0,
        author_id: author.id,
        title: title.into(),
        author: Rel::NotLoaded,
        comments: Rel::NotLoaded,
        tags: Rel::NotLoaded,
    }
}

fn comment(post: &Post, body: &str) -> Comment {
    Comment { id: 0, post_id: post.id, body: body.into(), post: Rel::NotLoaded }
}

/// Ada (2 posts: "rust tips" with 2 comments, "go notes" with none), Bob (1 post), Cy (none).
async fn seed(db: &Db) -> Result<(Vec<User>, Vec<Post>)> {
    db.create_all(SCHEMAS).await?;
    let users = User::insert_many(db, &[user("Ada"), user("Bob"), user("Cy")]).await?;
    let posts = Post::insert_many(
        db,
        &[post(&users[0], "rust tips"), post(&users[0], "go notes"), post(&users[1], "rust news")],
    )
    .await?;
    Comment::insert_many(db, &[comment(&posts[0], "great"), comment(&posts[0], "thanks"), comment(&posts[2], "ok")])
        .await?;
    Ok((users, posts))
}

fn titles(posts: &[Post]) -> Vec<&str> {
    posts.iter().map(|p| p.title.as_str()).collect()
}

sql_test!(has_many_loads_in_one_query_and_tells_empty_from_not_loaded, |db| async move {
    seed(&db).await?;
    let plain = User::query().order_by(User::ID.asc()).all(&db).await?;
    assert_eq!(plain[0].posts.get(), None, "not loaded is not the same as empty");

    let before = db.stats().statements();
    let users = User::query().order_by(User::ID.asc()).with(User::POSTS).all(&db).await?;
    assert_eq!(db.stats().statements() - before, 2, "one query for users, one for all their posts");
    assert_eq!(titles(users[0].posts.get().unwrap()), ["rust tips", "go notes"]);
    assert_eq!(titles(users[1].posts.get().unwrap()), ["rust news"]);
    assert_eq!(users[2].posts.get(), Some(&vec![]), "a user without posts has an empty, loaded list");
    Ok::<_, Error>(())
});

sql_test!(belongs_to_loads_shared_parents_once, |db| async move {
    seed(&db).await?;
    let before = db.stats().statements();
    let posts = Post::query().order_by(Post::ID.asc()).with(Post::AUTHOR).all(&db).await?;
    assert_eq!(db.stats().statements() - before, 2);
    let authors: Vec<&str> = posts.iter().map(|p| p.author.get().unwrap().name.as_str()).collect();
    assert_eq!(authors, ["Ada", "Ada", "Bob"]);
    let one = Post::query().filter(Post::TITLE.eq("rust news")).with(Post::AUTHOR).one(&db).await?;
    assert_eq!(one.author.get().map(|u| u.name.as_str()), Some("Bob"));
    Ok::<_, Error>(())
});

sql_test!(has_one_is_some_or_none_once_loaded, |db| async move {
    let (users, _) = seed(&db).await?;
    Profile { id: 0, user_id: users[0].id, bio: "math".into(), user: Rel::NotLoaded }.insert(&db).await?;
    let loaded = User::query().order_by(User::ID.asc()).with(User::PROFILE).all(&db).await?;
    assert_eq!(loaded[0].profile.get().unwrap().as_ref().map(|p| p.bio.as_str()), Some("math"));
    assert_eq!(loaded[1].profile.get(), Some(&None));
    let profile = Profile::query().with(Profile::USER).one(&db).await?;
    assert_eq!(profile.user.get().unwrap().name, "Ada");
    Ok::<_, Error>(())
});

sql_test!(many_to_many_loads_through_the_join_model_both_ways, |db| async move {
    let (_, posts) = seed(&db).await?;
    let tags = Tag::insert_many(
        &db,
        &[
            Tag { id: 0, name: "lang".into(), posts: Rel::NotLoaded },
            Tag { id: 0, name: "news".into(), posts: Rel::NotLoaded },
        ],
    )
    .await?;
    Post::TAGS.link(&db, &posts[0], &tags[0]).await?;
    Post::TAGS.link(&db, &posts[2], &tags[0]).await?;
    Post::TAGS.link(&db, &posts[2], &tags[1]).await?;
    assert_err!(Post::TAGS.link(&db, &posts[2], &tags[1]).await, Error::UniqueViolation { .. });

    let before = db.stats().statements();
    let loaded = Post::query().order_by(Post::ID.asc()).with(Post::TAGS).all(&db).await?;
    assert_eq!(db.stats().statements() - before, 3, "posts, their links, their tags");
    let names = |p: &Post| p.tags.get().unwrap().iter().map(|t| t.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&loaded[0]), ["lang"]);
    assert!(names(&loaded[1]).is_empty());
    assert_eq!(names(&loaded[2]), ["lang", "news"]);

    let lang = Tag::query().filter(Tag::NAME.eq("lang")).with(Tag::POSTS).one(&db).await?;
    assert_eq!(titles(lang.posts.get().unwrap()), ["rust tips", "rust news"]);

    assert!(Post::TAGS.unlink(&db, &posts[2], &tags[0]).await?);
    assert!(!Post::TAGS.unlink(&db, &posts[2], &tags[0]).await?, "already unlinked");
    let again = Post::query().filter(Post::ID.eq(posts[2].id)).with(Post::TAGS).one(&db).await?;
    assert_eq!(names(&again), ["news"]);
    Ok::<_, Error>(())
});

sql_test!(self_relations_load_managers_and_reports_with_null_keys, |db| async move {
    db.create_all(SCHEMAS).await?;
    let boss =
        Employee { id: 0, name: "Grace".into(), manager_id: None, manager: Rel::NotLoaded, reports: Rel::NotLoaded }
            .insert(&db)
            .await?;
    let mk = |name: &str| Employee {
        id: 0,
        name: name.into(),
        manager_id: Some(boss.id),
        manager: Rel::NotLoaded,
        reports: Rel::NotLoaded,
    };
    Employee::insert_many(&db, &[mk("Ada"), mk("Bob")]).await?;
    let all =
        Employee::query().order_by(Employee::ID.asc()).with(Employee::MANAGER).with(Employee::REPORTS).all(&db).await?;
    assert_eq!(all[0].manager.get(), Some(&None), "a NULL foreign key loads as None");
    assert_eq!(all[1].manager.get().unwrap().as_ref().map(|m| m.name.as_str()), Some("Grace"));
    let reports: Vec<&str> = all[0].reports.get().unwrap().iter().map(|e| e.name.as_str()).collect();
    assert_eq!(reports, ["Ada", "Bob"]);
    assert_eq!(all[1].reports.get(), Some(&vec![]));

    // ON DELETE SET NULL: the reports stay, without a manager.
    boss.delete(&db).await?;
    let left = Employee::query().filter(Employee::MANAGER_ID.is_null()).count(&db).await?;
    assert_eq!(left, 2);
    Ok::<_, Error>(())
});

sql_test!(nested_loading_takes_one_query_per_level, |db| async move {
    seed(&db).await?;
    let before = db.stats().statements();
    let users = User::query()
        .order_by(User::ID.asc())
        .with(User::POSTS.with(Post::COMMENTS.with(Comment::POST)))
        .all(&db)
        .await?;
    assert_eq!(db.stats().statements() - before, 4, "users, posts, comments, the comments' posts");
    let ada_posts = users[0].posts.get().unwrap();
    let bodies: Vec<&str> = ada_posts[0].comments.get().unwrap().iter().map(|c| c.body.as_str()).collect();
    assert_eq!(bodies, ["great", "thanks"]);
    assert_eq!(ada_posts[1].comments.get(), Some(&vec![]));
    let back = ada_posts[0].comments.get().unwrap()[0].post.get().unwrap();
    assert_eq!(back.title, "rust tips");
    assert_eq!(back.comments.get(), None, "only the requested levels are loaded");
    Ok::<_, Error>(())
});

sql_test!(relation_filters_use_exists_subqueries, |db| async move {
    seed(&db).await?;
    let names = |users: Vec<User>| users.into_iter().map(|u| u.name).collect::<Vec<_>>();
    let rusty = User::query().filter(User::POSTS.any(Post::TITLE.starts_with("rust"))).order_by(User::ID.asc());
    assert_eq!(names(rusty.all(&db).await?), ["Ada", "Bob"]);
    let silent = User::query().filter(User::POSTS.exists().not()).all(&db).await?;
    assert_eq!(names(silent), ["Cy"]);
    let commented =
        User::query().filter(User::POSTS.any(Post::COMMENTS.any(Comment::BODY.eq("thanks")))).all(&db).await?;
    assert_eq!(names(commented), ["Ada"], "relation filters nest");
    let bobs = Post::query().filter(Post::AUTHOR.matches(User::NAME.eq("Bob"))).all(&db).await?;
    assert_eq!(titles(&bobs), ["rust news"]);
    Ok::<_, Error>(())
});

sql_test!(foreign_keys_are_enforced_indexed_and_cascade, |db| async move {
    let (users, posts) = seed(&db).await?;
    let ghost = User { id: 999_999, ..user("ghost") };
    match post(&ghost, "orphan").insert(&db).await {
        Err(Error::ConstraintViolation { kind: ConstraintKind::ForeignKey, .. }) => {}
        other => panic!("expected a foreign-key violation, got {other:?}"),
    }
    let index_sql = if db.backend() == polystore::Backend::Postgres {
        "SELECT indexname FROM pg_indexes WHERE indexname = 'rel_posts_author_id_idx'"
    } else {
        "SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'rel_posts_author_id_idx'"
    };
    assert_eq!(query_text(&db, index_sql).await.as_deref(), Some("rel_posts_author_id_idx"));

    // ON DELETE CASCADE through two levels: Ada's posts and their comments go with her.
    users[0].delete(&db).await?;
    assert_eq!(Post::query().count(&db).await?, 1);
    assert_eq!(Comment::query().count(&db).await?, 1);
    assert!(Post::get(&db, posts[0].id).await?.is_none());
    Ok::<_, Error>(())
});

store_test!(batched_loading_agrees_on_every_store, |db| async move {
    db.create_all(SCHEMAS).await?;
    let users = User::insert_many(&db, &[user("Ada"), user("Bob"), user("Cy")]).await?;
    let posts = Post::insert_many(
        &db,
        &[post(&users[0], "rust tips"), post(&users[0], "go notes"), post(&users[1], "rust news")],
    )
    .await?;
    Comment::insert_many(&db, &[comment(&posts[0], "great"), comment(&posts[0], "thanks"), comment(&posts[2], "ok")])
        .await?;
    let tag = Tag { id: 0, name: "lang".into(), posts: Rel::NotLoaded }.insert(&db).await?;
    let link = |p: &Post| PostTag { post_id: p.id, tag_id: tag.id, post: Rel::NotLoaded, tag: Rel::NotLoaded };
    PostTag::insert_many(&db, &[link(&posts[0]), link(&posts[2])]).await?;

    let before = db.stats().statements();
    let loaded =
        User::query().order_by(User::ID.asc()).with(User::POSTS.with(Post::COMMENTS).with(Post::TAGS)).all(&db).await?;
    assert_eq!(db.stats().statements() - before, 5, "users, posts, comments, links, tags");
    let ada = loaded[0].posts.get().unwrap();
    assert_eq!(titles(ada), ["rust tips", "go notes"]);
    assert_eq!(ada[0].comments.get().unwrap().len(), 2);
    assert_eq!(ada[0].tags.get().unwrap()[0].name, "lang");
    assert_eq!(ada[1].tags.get(), Some(&vec![]));
    assert_eq!(loaded[2].posts.get(), Some(&vec![]));

    let with_authors = Post::query().order_by(Post::ID.asc()).with(Post::AUTHOR).all(&db).await?;
    let authors: Vec<&str> = with_authors.iter().map(|p| p.author.get().unwrap().name.as_str()).collect();
    assert_eq!(authors, ["Ada", "Ada", "Bob"]);
    Ok::<_, Error>(())
});

#[tokio::test]
async fn mongodb_pipelines_look_up_declared_relations() {
    use polystore::mongo::Pipeline;
    use polystore::mongo::driver::bson::Document;
    polystore_tests::run_on_mongo(|store| async move {
        store.create_all(SCHEMAS).await?;
        let users = User::insert_many(&store, &[user("Ada"), user("Bob")]).await?;
        let posts = Post::insert_many(&store, &[post(&users[0], "rust tips"), post(&users[0], "go notes")]).await?;
        let tag = Tag { id: 0, name: "lang".into(), posts: Rel::NotLoaded }.insert(&store).await?;
        PostTag { post_id: posts[1].id, tag_id: tag.id, post: Rel::NotLoaded, tag: Rel::NotLoaded }
            .insert(&store)
            .await?;

        let docs: Vec<Document> =
            Pipeline::<User>::new().sort([User::ID.asc()]).lookup(User::POSTS).documents(&store).await?;
        let counts: Vec<usize> = docs.iter().map(|d| d.get_array("posts").map_or(usize::MAX, Vec::len)).collect();
        assert_eq!(counts, [2, 0], "has_many: each user's posts");

        let docs: Vec<Document> = Pipeline::<Post>::new()
            .sort([Post::ID.asc()])
            .lookup(Post::AUTHOR)
            .lookup(Post::TAGS)
            .documents(&store)
            .await?;
        fn author(d: &Document) -> Option<&str> {
            d.get_array("author").ok()?.first()?.as_document()?.get_str("name").ok()
        }
        assert_eq!(docs.iter().map(author).collect::<Vec<_>>(), [Some("Ada"), Some("Ada")], "belongs_to");
        let tags = |d: &Document| d.get_array("tags").map_or(usize::MAX, Vec::len);
        assert_eq!(docs.iter().map(tags).collect::<Vec<_>>(), [0, 1], "many_to_many through the join collection");
        assert!(docs.iter().all(|d| d.keys().all(|k| !k.starts_with("__"))), "the helper fields are removed");
        Ok::<_, Error>(())
    })
    .await
}

store_test!(paginate_and_stream_load_relations_in_batches, |db| async move {
    use futures_util::TryStreamExt as _;
    db.create_all(SCHEMAS).await?;
    let users = User::insert_many(&db, &[user("Ada"), user("Bob"), user("Cy")]).await?;
    let posts = Post::insert_many(
        &db,
        &[post(&users[0], "rust tips"), post(&users[0], "go notes"), post(&users[1], "rust news")],
    )
    .await?;
    Comment::insert_many(&db, &[comment(&posts[0], "great"), comment(&posts[0], "thanks")]).await?;
    let query = || User::query().order_by(User::ID.asc()).with(User::POSTS.with(Post::COMMENTS));

    let before = db.stats().statements();
    let first = query().paginate(&db, PageRequest::first(2)).await?;
    assert_eq!(db.stats().statements() - before, 3, "the page, its users' posts, their comments");
    let loaded: Vec<Option<usize>> = first.items.iter().map(|u| u.posts.get().map(Vec::len)).collect();
    assert_eq!(loaded, [Some(2), Some(1)]);
    assert_eq!(first.items[0].posts.get().unwrap()[0].comments.get().map(Vec::len), Some(2), "nested");
    let next = first.next.clone().expect("a second page");
    let second = query().paginate(&db, PageRequest::after(next, 2)).await?;
    assert_eq!(second.items[0].posts.get(), Some(&vec![]), "Cy has no posts, and they are loaded");

    let before = db.stats().statements();
    let streamed: Vec<User> = query().stream(&db).try_collect().await?;
    assert_eq!(db.stats().statements() - before, 3, "one page of users, posts, comments");
    assert_eq!(streamed.iter().map(|u| u.posts.get().map(Vec::len)).collect::<Vec<_>>(), [Some(2), Some(1), Some(0)]);
    let window: Vec<User> = query().offset(1).limit(1).stream(&db).try_collect().await?;
    assert_eq!(
        window.iter().map(|u| (u.name.as_str(), u.posts.get().map(Vec::len))).collect::<Vec<_>>(),
        [("Bob", Some(1))]
    );
    Ok::<_, Error>(())
});

sql_test!(streams_with_relations_page_through_many_rows_and_work_in_a_transaction, |db| async move {
    use futures_util::TryStreamExt as _;
    db.create_all(SCHEMAS).await?;
    let many: Vec<User> = (0..1100).map(|i| user(&format!("u{i}"))).collect();
    let users = User::insert_many(&db, &many).await?;
    Post::insert_many(&db, &users.iter().map(|u| post(u, "hello")).collect::<Vec<_>>()).await?;

    let before = db.stats().statements();
    let streamed: Vec<User> = User::query().with(User::POSTS).stream(&db).try_collect().await?;
    assert_eq!(db.stats().statements() - before, 6, "three pages of 500, each with one posts query");
    assert_eq!(streamed.len(), 1100);
    assert!(streamed.iter().all(|u| u.posts.get().map(Vec::len) == Some(1)), "every row has its posts");
    let ids: Vec<i64> = streamed.iter().map(|u| u.id).collect();
    assert_eq!(ids, users.iter().map(|u| u.id).collect::<Vec<_>>(), "each row once, in key order");

    let mut tx = db.begin().await?;
    let in_tx: Vec<User> =
        User::query().filter(User::NAME.starts_with("u10")).with(User::POSTS).stream(&mut tx).try_collect().await?;
    assert_eq!(in_tx.len(), 111, "u10, u100..=u109, u1000..=u1099");
    assert!(in_tx.iter().all(|u| u.posts.get().is_some()));
    tx.commit().await?;
    Ok::<_, Error>(())
});
