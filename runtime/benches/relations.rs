//! Nested eager loading against hand-written batched sqlx, on PostgreSQL, in the same run and
//! on the same pool: 100 users × 10 posts × 10 comments loaded as users with posts with
//! comments (three queries on both sides).
//!
//! ```sh
//! scripts/dev-services
//! cargo bench -p polystore --bench relations
//! ```
//!
//! `DATABASE_URL` overrides the default `postgres://postgres:postgres@127.0.0.1:5432/polystore_test`.
//! The bench creates and drops `bench_rel_users`, `bench_rel_posts` and `bench_rel_comments`.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::Criterion;
use polystore::prelude::*;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio::runtime::Runtime;

const DEFAULT_URL: &str = "postgres://postgres:postgres@127.0.0.1:5432/polystore_test";

#[derive(Model, Debug, Clone)]
#[model(table = "bench_rel_users")]
struct User {
    #[model(primary_key, generated)]
    id: i64,
    name: String,
    #[model(has_many(foreign_key = user_id))]
    posts: Rel<Vec<Post>>,
}

#[derive(Model, Debug, Clone)]
#[model(table = "bench_rel_posts")]
struct Post {
    #[model(primary_key, generated)]
    id: i64,
    user_id: i64,
    title: String,
    #[model(has_many(foreign_key = post_id))]
    comments: Rel<Vec<Comment>>,
}

#[derive(Model, Debug, Clone)]
#[model(table = "bench_rel_comments")]
struct Comment {
    #[model(primary_key, generated)]
    id: i64,
    post_id: i64,
    body: String,
}

/// The hand-written side: the same rows, grouped by hand.
#[derive(sqlx::FromRow, Debug)]
#[allow(dead_code)] // read through black_box only
struct RawUser {
    id: i64,
    name: String,
    #[sqlx(skip)]
    posts: Vec<RawPost>,
}

#[derive(sqlx::FromRow, Debug)]
#[allow(dead_code)]
struct RawPost {
    id: i64,
    user_id: i64,
    title: String,
    #[sqlx(skip)]
    comments: Vec<RawComment>,
}

#[derive(sqlx::FromRow, Debug)]
#[allow(dead_code)]
struct RawComment {
    id: i64,
    post_id: i64,
    body: String,
}

/// Three batched queries, grouped with hash maps: what one would write by hand with sqlx.
async fn raw_load(pool: &PgPool) -> Vec<RawUser> {
    let mut users: Vec<RawUser> =
        sqlx::query_as("SELECT id, name FROM bench_rel_users").fetch_all(pool).await.expect("users");
    let user_ids: Vec<i64> = users.iter().map(|u| u.id).collect();
    let posts: Vec<RawPost> =
        sqlx::query_as("SELECT id, user_id, title FROM bench_rel_posts WHERE user_id = ANY($1) ORDER BY id")
            .bind(&user_ids)
            .fetch_all(pool)
            .await
            .expect("posts");
    let post_ids: Vec<i64> = posts.iter().map(|p| p.id).collect();
    let comments: Vec<RawComment> =
        sqlx::query_as("SELECT id, post_id, body FROM bench_rel_comments WHERE post_id = ANY($1) ORDER BY id")
            .bind(&post_ids)
            .fetch_all(pool)
            .await
            .expect("comments");
    let mut by_post: HashMap<i64, Vec<RawComment>> = HashMap::new();
    for c in comments {
        by_post.entry(c.post_id).or_default().push(c);
    }
    let mut by_user: HashMap<i64, Vec<RawPost>> = HashMap::new();
    for mut p in posts {
        p.comments = by_post.remove(&p.id).unwrap_or_default();
        by_user.entry(p.user_id).or_default().push(p);
    }
    for u in &mut users {
        u.posts = by_user.remove(&u.id).unwrap_or_default();
    }
    users
}

async fn setup(db: &Db) {
    db.drop_all(&[User::SCHEMA, Post::SCHEMA, Comment::SCHEMA]).await.expect("drop");
    db.create_all(&[User::SCHEMA, Post::SCHEMA, Comment::SCHEMA]).await.expect("create");
    let users: Vec<User> = (0..100).map(|i| User { id: 0, name: format!("user {i}"), posts: Rel::NotLoaded }).collect();
    let users = User::insert_many(db, &users).await.expect("users");
    let posts: Vec<Post> = users
        .iter()
        .flat_map(|u| {
            (0..10).map(move |j| Post { id: 0, user_id: u.id, title: format!("post {j}"), comments: Rel::NotLoaded })
        })
        .collect();
    let posts = Post::insert_many(db, &posts).await.expect("posts");
    let comments: Vec<Comment> = posts
        .iter()
        .flat_map(|p| (0..10).map(move |k| Comment { id: 0, post_id: p.id, body: format!("comment {k}") }))
        .collect();
    Comment::insert_many(db, &comments).await.expect("comments");
}

fn main() {
    let rt = Runtime::new().expect("a tokio runtime");
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
    let pool = rt
        .block_on(PgPoolOptions::new().max_connections(4).test_before_acquire(false).connect(&url))
        .unwrap_or_else(|e| panic!("PostgreSQL is not reachable at {url}: {e}\nstart it with scripts/dev-services"));
    let db = Db::from_pg_pool(pool.clone());
    rt.block_on(setup(&db));

    // Both sides load the same data.
    let ours = rt.block_on(User::query().with(User::POSTS.with(Post::COMMENTS)).all(&db)).expect("load");
    let theirs = rt.block_on(raw_load(&pool));
    let count = |u: &User| u.posts.get().map_or(0, |p| p.iter().map(|p| p.comments.get().map_or(0, Vec::len)).sum());
    assert_eq!(ours.iter().map(count).sum::<usize>(), 10_000);
    assert_eq!(theirs.iter().map(|u| u.posts.iter().map(|p| p.comments.len()).sum::<usize>()).sum::<usize>(), 10_000);

    let mut c = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(8))
        .configure_from_args();
    let mut group = c.benchmark_group("nested_load_100x10x10");
    group.bench_function("polystore", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(User::query().with(User::POSTS.with(Post::COMMENTS)).all(&db).await.expect("load"))
        })
    });
    group.bench_function("sqlx_batched", |b| b.to_async(&rt).iter(|| async { black_box(raw_load(&pool).await) }));
    group.finish();
    c.final_summary();
    rt.block_on(db.drop_all(&[User::SCHEMA, Post::SCHEMA, Comment::SCHEMA])).expect("drop");
}
