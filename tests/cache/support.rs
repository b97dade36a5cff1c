//! What the cache tests share: the models, the matrix of (cache backend, database) every
//! [`cache_test!`] body runs on, key inspection, cleanup, and a private `redis-server` that a
//! test may stop and restart.

use std::future::Future;
use std::net::TcpListener;
use std::panic::AssertUnwindSafe;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::FutureExt as _;
use polystore::cache::{Cache, ClusterBackend, MemoryBackend, RedisBackend};
use polystore::prelude::*;
use polystore::redis::{RedisStore, driver as redis};
use polystore::{ModelSchema, Value};
use polystore_tests::{redis_cluster_urls, redis_url, run_on_postgres, run_on_sqlite, unique_name};

/// A model with every cache feature: a policy with negative caching, a unique field (lookup
/// keys), a set index and a leaderboard.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "cache_users", cache(ttl = "5m", jitter = "10s", negative_ttl = "1m"))]
#[model(dto(UserPatch, update))]
pub struct User {
    #[model(primary_key, generated)]
    pub id: i64,
    #[model(unique)]
    pub email: String,
    #[model(set_index)]
    pub country: String,
    #[model(sorted_set)]
    pub score: i64,
    pub bio: Option<String>,
}

/// A new user (the id is assigned by the database).
pub fn user(email: &str, country: &str, score: i64) -> User {
    User { id: 0, email: email.into(), country: country.into(), score, bio: None }
}

/// A model with a composite text key.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "cache_lines", primary_key(tenant, code), cache(ttl = "5m", negative_ttl = "1m"))]
pub struct Line {
    pub tenant: String,
    pub code: String,
    pub qty: i32,
}

/// A line.
pub fn line(tenant: &str, code: &str, qty: i32) -> Line {
    Line { tenant: tenant.into(), code: code.into(), qty }
}

/// An article with labels (many-to-many through a cached join model).
#[derive(Model, Debug, Clone)]
#[model(table = "cache_articles")]
pub struct Article {
    #[model(primary_key, generated)]
    pub id: i64,
    pub title: String,
    #[model(many_to_many(through = ArticleLabel))]
    pub labels: Rel<Vec<Label>>,
}

/// A label.
#[derive(Model, Debug, Clone)]
#[model(table = "cache_labels")]
pub struct Label {
    #[model(primary_key, generated)]
    pub id: i64,
    pub name: String,
}

/// The join rows, cached, with a set index of articles per label.
#[derive(Model, Debug, Clone)]
#[model(table = "cache_article_labels", primary_key(article_id, label_id), cache(ttl = "5m", negative_ttl = "1m"))]
pub struct ArticleLabel {
    pub article_id: i64,
    #[model(set_index)]
    pub label_id: i64,
    #[model(belongs_to(on_delete = "cascade"))]
    pub article: Rel<Article>,
    #[model(belongs_to(on_delete = "cascade"))]
    pub label: Rel<Label>,
}

/// The schemas every test body gets created.
pub const SCHEMAS: &[&ModelSchema] =
    &[User::SCHEMA, Line::SCHEMA, Article::SCHEMA, Label::SCHEMA, ArticleLabel::SCHEMA];

/// Whether the entry of the row with key `key` is in the cache.
pub async fn is_cached(cache: &Cache, schema: &'static ModelSchema, key: &[Value]) -> bool {
    let k = cache.keys().entry(schema, key);
    let found = cache.backend().get_many(std::slice::from_ref(&k)).await.expect("cache backend answers");
    found[0].is_some()
}

/// Statements run so far through `db`.
pub fn statements(db: &Db) -> u64 {
    db.stats().statements()
}

/// Deletes every key of `namespace` from the Redis servers at `urls` (each node of a cluster
/// deletes its own keys).
pub async fn cleanup(urls: &[String], namespace: &str) {
    for url in urls {
        let Ok(store) = RedisStore::connect(url).await else { continue };
        let mut conn = store.connection();
        let mut cursor: u64 = 0;
        loop {
            let Ok((next, keys)): Result<(u64, Vec<String>), _> = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{namespace}*"))
                .arg("COUNT")
                .arg(500)
                .query_async(&mut conn)
                .await
            else {
                break;
            };
            for key in keys {
                let _: Result<i64, _> = redis::cmd("DEL").arg(&key).query_async(&mut conn).await;
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
}

/// Where a [`cache_test!`] body runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stores {
    /// Single Redis + PostgreSQL.
    RedisPostgres,
    /// Single Redis + SQLite.
    RedisSqlite,
    /// Redis Cluster + PostgreSQL.
    ClusterPostgres,
    /// The in-process cache + SQLite.
    MemorySqlite,
}

/// Builds the cache for `stores` in a fresh namespace; returns it with the URLs to clean.
pub async fn cache_for(stores: Stores, namespace: &str) -> (Cache, Vec<String>) {
    match stores {
        Stores::RedisPostgres | Stores::RedisSqlite => {
            let store = polystore_tests::redis().await;
            (Cache::builder(RedisBackend::new(&store)).namespace(namespace).build(), vec![redis_url()])
        }
        Stores::ClusterPostgres => {
            let backend: ClusterBackend = polystore_tests::redis_cluster().await;
            (Cache::builder(backend).namespace(namespace).build(), redis_cluster_urls())
        }
        Stores::MemorySqlite => (Cache::builder(MemoryBackend::new(16 << 20)).namespace(namespace).build(), vec![]),
    }
}

/// Runs `body` with a database holding [`SCHEMAS`] and a cache attached to it.
pub async fn run<F, Fut>(stores: Stores, body: F)
where
    F: FnOnce(Db, Cache) -> Fut,
    Fut: Future<Output = ()>,
{
    let namespace = unique_name("pscache");
    let (cache, urls) = cache_for(stores, &namespace).await;
    let c = cache.clone();
    let wrapped = move |db: Db| async move {
        db.create_all(SCHEMAS).await.expect("create tables");
        body(db.with_cache(c.clone()), c).await;
    };
    let outcome = AssertUnwindSafe(async {
        match stores {
            Stores::RedisPostgres | Stores::ClusterPostgres => run_on_postgres(wrapped).await,
            Stores::RedisSqlite | Stores::MemorySqlite => run_on_sqlite(wrapped).await,
        }
    })
    .catch_unwind()
    .await;
    cleanup(&urls, &namespace).await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// Defines a test body run on every (cache, database) pair of [`Stores`]: a module with the
/// tests `redis_postgres`, `redis_sqlite`, `cluster_postgres` and `memory_sqlite`.
macro_rules! cache_test {
    ($name:ident, $body:expr $(,)?) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[::tokio::test]
            async fn redis_postgres() {
                $crate::support::run($crate::support::Stores::RedisPostgres, $body).await
            }

            #[::tokio::test]
            async fn redis_sqlite() {
                $crate::support::run($crate::support::Stores::RedisSqlite, $body).await
            }

            #[::tokio::test]
            async fn cluster_postgres() {
                $crate::support::run($crate::support::Stores::ClusterPostgres, $body).await
            }

            #[::tokio::test]
            async fn memory_sqlite() {
                $crate::support::run($crate::support::Stores::MemorySqlite, $body).await
            }
        }
    };
}

/// A `redis-server` of the test's own, which it may stop and restart (the shared server on
/// 6379 is never touched).
pub struct PrivateRedis {
    /// The port it listens on.
    pub port: u16,
    /// Persistence: the data directory of an append-only-file server.
    data_dir: Option<std::path::PathBuf>,
    child: Option<Child>,
}

impl PrivateRedis {
    /// Starts a server without persistence on a free port and waits until it answers.
    pub async fn start() -> PrivateRedis {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port");
        let mut server = PrivateRedis { port, data_dir: None, child: None };
        server.restart().await;
        server
    }

    /// Starts a server on `port` with `appendonly yes` (every write fsynced), its data in
    /// `.dev/redis-<port>` of the worktree (emptied first), and waits until it answers. A
    /// restart then comes back with every entry it held.
    pub async fn persistent(port: u16) -> PrivateRedis {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../.dev/redis-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the private Redis data directory");
        let mut server = PrivateRedis { port, data_dir: Some(dir), child: None };
        server.restart().await;
        server
    }

    /// The server's URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// (Re)starts the server on its port.
    pub async fn restart(&mut self) {
        let port = self.port.to_string();
        let mut args = vec!["--bind", "127.0.0.1", "--port", &port, "--save", ""];
        let dir = self.data_dir.as_ref().map(|d| d.to_string_lossy().into_owned());
        match &dir {
            Some(dir) => args.extend(["--appendonly", "yes", "--appendfsync", "always", "--dir", dir]),
            None => args.extend(["--appendonly", "no"]),
        }
        let child = Command::new("redis-server")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start redis-server ({e}): install it with scripts/dev-services (apt-get install redis-server)")
            });
        self.child = Some(child);
        for _ in 0..100 {
            if let Ok(store) = RedisStore::connect(&self.url()).await
                && store.ping().await.is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("private redis-server on port {} did not start", self.port);
    }

    /// Stops the server (SIGKILL) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}
