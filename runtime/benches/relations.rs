//! Array-bound statements against hand-written sqlx on PostgreSQL, in the same run and on the
//! same pool: batched relation loads (`with(..)`) and `is_in` lists, at sizes and repetition
//! counts where PostgreSQL's plan cache matters.
//!
//! A prepared statement switches to a *generic* plan after its fifth execution; with an array
//! parameter and no index on the filtered column, a generic plan may compare every row with
//! every element of the array. So each scenario here:
//!
//! - runs on tables **with** and **without** an index on the foreign key (the `indexed` and
//!   `bare` phases: the indexes are dropped between them). The models declare neither index,
//!   so polystore knows of them only from the catalog (`Db::forget_index_hints` between the
//!   phases);
//! - runs every statement shape many times before it is measured (see [`PRIME`]), on a pool of
//!   [`POOL`] connections, so every connection is past its fifth execution;
//! - compares polystore with `sqlx` code written the way one writes it by hand (`= ANY($1)`,
//!   grouped with hash maps), and — as a witness that the bench can see the cliff — with
//!   `sqlx_sorted`, the same hand-written code with the `ORDER BY id` polystore used to add.
//!
//! Scenarios (10 000 users; users 1–100 have 10 posts each with 10 comments, the others one post):
//!
//! | name | polystore | sqlx |
//! |---|---|---|
//! | `users_posts/100` | `User::query().order_by(ID).limit(100).with(User::POSTS).all` | 2 statements, `user_id = ANY($1)` (100 keys) |
//! | `users_posts/10000` | `User::query().with(User::POSTS).all` | the same with 10 000 keys (10 900 posts) |
//! | `nested/100x10x10` | `.limit(100).with(User::POSTS.with(Post::COMMENTS))` | 3 statements (100 and 1 000 keys) |
//! | `is_in/5000` | `Post::query().filter(Post::USER_ID.is_in(keys))` | `WHERE user_id = ANY($1)` (5 000 keys) |
//!
//! ```sh
//! scripts/dev-services
//! cargo bench -p polystore --bench relations                 # criterion (~3 minutes)
//! POLYSTORE_BENCH_AB=1 cargo bench -p polystore --bench relations   # interleaved ratios
//! POLYSTORE_BENCH_AB=nested cargo bench -p polystore --bench relations  # one scenario
//! ```
//!
//! `DATABASE_URL` overrides the default `postgres://postgres:postgres@127.0.0.1:5432/polystore_test`.
//! The bench creates and drops `bench_rel_users`, `bench_rel_posts` and `bench_rel_comments`.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use polystore::prelude::*;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio::runtime::Runtime;

const DEFAULT_URL: &str = "postgres://postgres:postgres@127.0.0.1:5432/polystore_test";
/// Connections in the shared pool.
const POOL: u32 = 4;
/// Runs of every side before it is measured: well past five executions on each connection.
const PRIME: usize = 8 * POOL as usize;
const USERS: i64 = 10_000;

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

/// A scenario: how many users, and whether comments are loaded too.
#[derive(Clone, Copy)]
enum Scenario {
    UsersPosts(i64),
    Nested,
    IsIn,
}

impl Scenario {
    fn name(self) -> String {
        match self {
            Scenario::UsersPosts(n) => format!("users_posts/{n}"),
            Scenario::Nested => "nested/100x10x10".into(),
            Scenario::IsIn => "is_in/5000".into(),
        }
    }

    /// How many rows each side returns in total (checked once before measuring).
    fn rows(self) -> usize {
        match self {
            Scenario::UsersPosts(100) => 100 + 1_000,
            Scenario::UsersPosts(_) => 10_000 + 10_900,
            Scenario::Nested => 100 + 1_000 + 10_000,
            Scenario::IsIn => 5_900,
        }
    }
}

fn five_thousand_keys() -> Vec<i64> {
    (1..=5_000).collect()
}

/// polystore's side; returns the number of rows loaded.
async fn polystore(db: &Db, s: Scenario) -> usize {
    let posts = |u: &User| u.posts.get().map_or(0, Vec::len);
    match s {
        Scenario::UsersPosts(n) => {
            let q = User::query().with(User::POSTS);
            let q = if n < USERS { q.order_by(User::ID.asc()).limit(n as u64) } else { q };
            let users = black_box(q.all(db).await.expect("users with posts"));
            users.len() + users.iter().map(posts).sum::<usize>()
        }
        Scenario::Nested => {
            let q = User::query().order_by(User::ID.asc()).limit(100).with(User::POSTS.with(Post::COMMENTS));
            let users = black_box(q.all(db).await.expect("nested load"));
            let comments = |p: &Post| p.comments.get().map_or(0, Vec::len);
            let deep = |u: &User| u.posts.get().map_or(0, |p| p.len() + p.iter().map(comments).sum::<usize>());
            users.len() + users.iter().map(deep).sum::<usize>()
        }
        Scenario::IsIn => {
            let q = Post::query().filter(Post::USER_ID.is_in(five_thousand_keys()));
            black_box(q.all(db).await.expect("is_in")).len()
        }
    }
}

/// The hand-written side. `sorted` adds the `ORDER BY id` polystore's loader used to send.
async fn sqlx_side(pool: &PgPool, s: Scenario, sorted: bool) -> usize {
    let order = if sorted { " ORDER BY id" } else { "" };
    if matches!(s, Scenario::IsIn) {
        let sql = format!("SELECT id, user_id, title FROM bench_rel_posts WHERE user_id = ANY($1){order}");
        let rows: Vec<RawPost> =
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(five_thousand_keys()).fetch_all(pool).await.expect("is_in");
        return black_box(rows).len();
    }
    let mut users: Vec<RawUser> = match s {
        Scenario::UsersPosts(USERS) => sqlx::query_as("SELECT id, name FROM bench_rel_users").fetch_all(pool).await,
        Scenario::UsersPosts(n) => {
            sqlx::query_as("SELECT id, name FROM bench_rel_users ORDER BY id LIMIT $1").bind(n).fetch_all(pool).await
        }
        _ => {
            sqlx::query_as("SELECT id, name FROM bench_rel_users ORDER BY id LIMIT $1")
                .bind(100i64)
                .fetch_all(pool)
                .await
        }
    }
    .expect("users");
    let ids: Vec<i64> = users.iter().map(|u| u.id).collect();
    let sql = format!("SELECT id, user_id, title FROM bench_rel_posts WHERE user_id = ANY($1){order}");
    let posts: Vec<RawPost> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(&ids).fetch_all(pool).await.expect("posts");
    let mut comments_of: HashMap<i64, Vec<RawComment>> = HashMap::new();
    let mut count = users.len() + posts.len();
    if matches!(s, Scenario::Nested) {
        let ids: Vec<i64> = posts.iter().map(|p| p.id).collect();
        let sql = format!("SELECT id, post_id, body FROM bench_rel_comments WHERE post_id = ANY($1){order}");
        let comments: Vec<RawComment> =
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(&ids).fetch_all(pool).await.expect("comments");
        count += comments.len();
        for c in comments {
            comments_of.entry(c.post_id).or_default().push(c);
        }
    }
    let mut by_user: HashMap<i64, Vec<RawPost>> = HashMap::new();
    for mut p in posts {
        p.comments = comments_of.remove(&p.id).unwrap_or_default();
        by_user.entry(p.user_id).or_default().push(p);
    }
    for u in &mut users {
        u.posts = by_user.remove(&u.id).unwrap_or_default();
    }
    black_box(users);
    count
}

async fn setup(db: &Db) {
    db.drop_all(&[User::SCHEMA, Post::SCHEMA, Comment::SCHEMA]).await.expect("drop");
    db.create_all(&[User::SCHEMA, Post::SCHEMA, Comment::SCHEMA]).await.expect("create");
    let users: Vec<User> =
        (0..USERS).map(|i| User { id: 0, name: format!("user {i}"), posts: Rel::NotLoaded }).collect();
    let users = User::insert_many(db, &users).await.expect("users");
    let posts: Vec<Post> = users
        .iter()
        .flat_map(|u| {
            let n = if u.id <= 100 { 10 } else { 1 };
            (0..n).map(move |j| Post { id: 0, user_id: u.id, title: format!("post {j}"), comments: Rel::NotLoaded })
        })
        .collect();
    let posts = Post::insert_many(db, &posts).await.expect("posts");
    let comments: Vec<Comment> = posts
        .iter()
        .filter(|p| p.user_id <= 100)
        .flat_map(|p| (0..10).map(move |k| Comment { id: 0, post_id: p.id, body: format!("comment {k}") }))
        .collect();
    Comment::insert_many(db, &comments).await.expect("comments");
}

/// Creates (`indexed`) or drops the foreign-key indexes, then refreshes the statistics.
async fn set_indexes(pool: &PgPool, indexed: bool) {
    let statements: &[&str] = if indexed {
        &[
            "CREATE INDEX IF NOT EXISTS bench_rel_posts_user_ix ON bench_rel_posts (user_id)",
            "CREATE INDEX IF NOT EXISTS bench_rel_comments_post_ix ON bench_rel_comments (post_id)",
        ]
    } else {
        &["DROP INDEX IF EXISTS bench_rel_posts_user_ix", "DROP INDEX IF EXISTS bench_rel_comments_post_ix"]
    };
    for sql in
        statements.iter().chain(&["ANALYZE bench_rel_users", "ANALYZE bench_rel_posts", "ANALYZE bench_rel_comments"])
    {
        sqlx::query(sqlx::AssertSqlSafe(*sql)).execute(pool).await.expect("index change");
    }
}

const SCENARIOS: [Scenario; 4] =
    [Scenario::UsersPosts(100), Scenario::UsersPosts(10_000), Scenario::Nested, Scenario::IsIn];

/// Checks both sides return the same rows, and runs each side [`PRIME`] times.
fn prime(rt: &Runtime, db: &Db, pool: &PgPool, s: Scenario) {
    rt.block_on(async {
        assert_eq!(polystore(db, s).await, s.rows(), "{}: polystore", s.name());
        assert_eq!(sqlx_side(pool, s, false).await, s.rows(), "{}: sqlx", s.name());
        for _ in 0..PRIME {
            polystore(db, s).await;
            sqlx_side(pool, s, false).await;
            sqlx_side(pool, s, true).await;
        }
    });
}

fn criterion_mode(rt: &Runtime, db: &Db, pool: &PgPool, phase: &str) {
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    for s in SCENARIOS {
        prime(rt, db, pool, s);
        let mut g = c.benchmark_group(format!("{phase}/{}", s.name()));
        g.bench_function(BenchmarkId::new("polystore", ""), |b| {
            b.to_async(rt).iter(|| async { black_box(polystore(db, s).await) })
        });
        g.bench_function(BenchmarkId::new("sqlx", ""), |b| {
            b.to_async(rt).iter(|| async { black_box(sqlx_side(pool, s, false).await) })
        });
        g.bench_function(BenchmarkId::new("sqlx_sorted", ""), |b| {
            b.to_async(rt).iter(|| async { black_box(sqlx_side(pool, s, true).await) })
        });
        g.finish();
    }
    c.final_summary();
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

/// Interleaved rounds: each round times a batch of every side, the order rotating, and the
/// ratios to `sqlx` are taken within the round (drift hits the three sides alike).
fn ab_mode(rt: &Runtime, db: &Db, pool: &PgPool, phase: &str, filter: &str) {
    const ROUNDS: usize = 11;
    for s in SCENARIOS {
        if !matches!(filter, "" | "1" | "all") && !s.name().contains(filter) && !phase.contains(filter) {
            continue;
        }
        prime(rt, db, pool, s);
        let iters = match s {
            Scenario::UsersPosts(100) => 100,
            Scenario::Nested | Scenario::IsIn => 10,
            Scenario::UsersPosts(_) => 4,
        };
        let (mut times, mut ps_ratio, mut sorted_ratio) =
            ([Vec::new(), Vec::new(), Vec::new()], Vec::new(), Vec::new());
        rt.block_on(async {
            for round in 0..ROUNDS {
                let mut t = [0.0; 3];
                for k in 0..3 {
                    let side = (round + k) % 3;
                    let t0 = Instant::now();
                    for _ in 0..iters {
                        match side {
                            0 => black_box(polystore(db, s).await),
                            1 => black_box(sqlx_side(pool, s, false).await),
                            _ => black_box(sqlx_side(pool, s, true).await),
                        };
                    }
                    t[side] = t0.elapsed().as_secs_f64() * 1e6 / f64::from(iters);
                }
                for (k, v) in t.iter().enumerate() {
                    times[k].push(*v);
                }
                ps_ratio.push(t[0] / t[1]);
                sorted_ratio.push(t[2] / t[1]);
            }
        });
        let [a, b, c] = &mut times;
        println!(
            "{phase:<8} {:<18} polystore {:>9.0} µs  sqlx {:>9.0} µs  sqlx_sorted {:>9.0} µs   polystore/sqlx {:.3}  sqlx_sorted/sqlx {:.2}",
            s.name(),
            median(a),
            median(b),
            median(c),
            median(&mut ps_ratio),
            median(&mut sorted_ratio),
        );
    }
}

fn main() {
    let rt = Runtime::new().expect("a tokio runtime");
    // The handle drops its kept connections back into sqlx's pool, which needs the runtime.
    let _in_runtime = rt.enter();
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
    let pool = rt
        .block_on(PgPoolOptions::new().max_connections(POOL).test_before_acquire(false).connect(&url))
        .unwrap_or_else(|e| panic!("PostgreSQL is not reachable at {url}: {e}\nstart it with scripts/dev-services"));
    let db = Db::from_pg_pool(pool.clone());
    rt.block_on(setup(&db));
    let ab = std::env::var("POLYSTORE_BENCH_AB").ok();
    for (phase, indexed) in [("indexed", true), ("bare", false)] {
        rt.block_on(set_indexes(&pool, indexed));
        // The indexes changed behind polystore's back: without this, the handle would use its
        // answer from the catalog for up to a minute (as an application would).
        db.forget_index_hints();
        match &ab {
            Some(filter) => ab_mode(&rt, &db, &pool, phase, filter),
            None => criterion_mode(&rt, &db, &pool, phase),
        }
    }
    rt.block_on(db.drop_all(&[User::SCHEMA, Post::SCHEMA, Comment::SCHEMA])).expect("drop");
}
