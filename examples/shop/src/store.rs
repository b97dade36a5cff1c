//! Which stores the shop runs on, from the environment, and how they are opened:
//!
//! | variable | when set | when unset |
//! |---|---|---|
//! | `DATABASE_URL` | PostgreSQL (`postgres://…`) or a SQLite file (`sqlite://shop.db?mode=rwc`) | in-memory SQLite |
//! | `MONGODB_URL` | reviews and order events on MongoDB (database `SHOP_MONGO_DB`, default `shop`) | on the SQL store |
//! | `REDIS_URL` | cache, leaderboard and set index on Redis | the in-process cache |
//! | `SHOP_PG_SCHEMA` | on PostgreSQL, keep every table (and the migration bookkeeping) in this schema | the connection's default schema |
//! | `SHOP_CACHE_NAMESPACE` | the cache's key prefix | `shop` |
//! | `SHOP_RESET=1` | start empty: drop the `SHOP_PG_SCHEMA` schema and the MongoDB database first | keep the data |
//!
//! The SQL schema comes from the checked-in migrations (`examples/shop/migrations`), applied at
//! start; the MongoDB collections, validators and indexes from `MongoStore::create_all`.

use polystore::cache::{Cache, MemoryBackend, RedisBackend};
use polystore::migrate::{MigrateError, Migrator};
use polystore::mongo::MongoStore;
use polystore::mongo::driver::bson::doc;
use polystore::{Db, PoolConfig};

use crate::models::{Category, DOCUMENT_MODELS};

/// Where the document models (reviews, order events) live.
#[derive(Debug, Clone)]
pub enum Docs {
    /// On the SQL store, through the same models.
    Sql(Db),
    /// On MongoDB.
    Mongo(MongoStore),
}

/// Runs `$body` with `$store` bound to the document store's handle, whichever it is (the two
/// arms compile the same code for `&Db` and `&MongoStore`).
#[macro_export]
macro_rules! on_docs {
    ($docs:expr, $store:ident => $body:expr) => {
        match $docs {
            $crate::store::Docs::Sql($store) => $body,
            $crate::store::Docs::Mongo($store) => $body,
        }
    };
}

/// The shop's handles; cheap to clone (every handle is a pool).
#[derive(Debug, Clone)]
pub struct Shop {
    /// The SQL store, with the cache attached.
    pub db: Db,
    /// The document store.
    pub docs: Docs,
    /// What the shop runs on, for the start-up line.
    pub description: String,
    /// The Redis connection behind the cache, when the cache is on Redis (for `/health`).
    pub redis: Option<polystore::redis::RedisStore>,
    /// The Prometheus recorder `/metrics` renders; `None` when none is installed (the `shop`
    /// binary installs one, see `routes::ops::install_metrics`).
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
}

/// The settings read from the environment (see the module documentation).
#[derive(Debug, Clone)]
pub struct Config {
    /// The SQL store's URL.
    pub database_url: String,
    /// MongoDB, when the document models live there.
    pub mongodb_url: Option<String>,
    /// The MongoDB database.
    pub mongo_database: String,
    /// Redis, when the cache lives there.
    pub redis_url: Option<String>,
    /// The PostgreSQL schema to confine the shop to.
    pub pg_schema: Option<String>,
    /// The cache's key namespace.
    pub cache_namespace: String,
    /// Start from empty stores.
    pub reset: bool,
    /// The migrations directory.
    pub migrations: String,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Config {
    /// Reads the settings from the environment.
    pub fn from_env() -> Config {
        Config {
            database_url: var("DATABASE_URL").unwrap_or_else(|| "sqlite::memory:".to_owned()),
            mongodb_url: var("MONGODB_URL"),
            mongo_database: var("SHOP_MONGO_DB").unwrap_or_else(|| "shop".to_owned()),
            redis_url: var("REDIS_URL"),
            pg_schema: var("SHOP_PG_SCHEMA"),
            cache_namespace: var("SHOP_CACHE_NAMESPACE").unwrap_or_else(|| "shop".to_owned()),
            reset: var("SHOP_RESET").is_some_and(|v| v == "1"),
            migrations: var("SHOP_MIGRATIONS")
                .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/migrations").to_owned()),
        }
    }
}

/// Why the shop could not start.
#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

impl From<polystore::Error> for StartError {
    fn from(e: polystore::Error) -> Self {
        StartError(e.to_string())
    }
}

impl From<MigrateError> for StartError {
    fn from(e: MigrateError) -> Self {
        StartError(format!("migrations: {e}"))
    }
}

/// Opens the stores, applies the migrations and attaches the cache.
pub async fn open(config: &Config) -> Result<Shop, StartError> {
    let db = open_sql(config).await?;
    let applied = Migrator::new(&db, &config.migrations).up(None).await?;
    let mut redis_store = None;
    let cache = match &config.redis_url {
        Some(url) => {
            let redis = polystore::redis::RedisStore::connect(url).await?;
            let cache = Cache::builder(RedisBackend::new(&redis)).namespace(config.cache_namespace.clone()).build();
            redis_store = Some(redis);
            cache
        }
        None => Cache::builder(MemoryBackend::new(64 << 20)).namespace(config.cache_namespace.clone()).build(),
    };
    let db = db.with_cache(cache);
    let docs = match &config.mongodb_url {
        Some(url) => {
            let mongo = MongoStore::connect(url, &config.mongo_database).await?;
            if config.reset {
                mongo.run_command(doc! { "dropDatabase": 1 }).await?;
            }
            mongo.create_all(&DOCUMENT_MODELS).await?;
            Docs::Mongo(mongo)
        }
        None => Docs::Sql(db.clone()),
    };
    let description = format!(
        "SQL: {:?}{} ({} migration(s) applied now); documents: {}; cache: {} (namespace {})",
        db.backend(),
        config.pg_schema.as_deref().map(|s| format!(", schema {s}")).unwrap_or_default(),
        applied.len(),
        match &docs {
            Docs::Sql(_) => "the SQL store".to_owned(),
            Docs::Mongo(_) => format!("MongoDB, database {}", config.mongo_database),
        },
        if config.redis_url.is_some() { "Redis" } else { "in-process" },
        config.cache_namespace,
    );
    Ok(Shop { db, docs, description, redis: redis_store, metrics: None })
}

/// The SQL store: confined to `SHOP_PG_SCHEMA` on PostgreSQL when set (created if missing,
/// dropped first with `SHOP_RESET=1`).
async fn open_sql(config: &Config) -> Result<Db, StartError> {
    let url = &config.database_url;
    let Some(schema) = config.pg_schema.as_deref().filter(|_| url.starts_with("postgres")) else {
        if config.reset && !url.contains(":memory:") {
            return Err(StartError("SHOP_RESET=1 needs SHOP_PG_SCHEMA on PostgreSQL, or in-memory SQLite".into()));
        }
        return Ok(Db::connect(url).await?);
    };
    if schema.is_empty() || !schema.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
        return Err(StartError(format!("SHOP_PG_SCHEMA {schema:?}: use lowercase letters, digits and _")));
    }
    let admin = Db::connect_with(url, PoolConfig { max_connections: 1, ..PoolConfig::default() }).await?;
    if config.reset {
        polystore::raw::<Category>(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")).execute(&admin).await?;
    }
    polystore::raw::<Category>(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"")).execute(&admin).await?;
    admin.close().await;
    let options: sqlx::postgres::PgConnectOptions =
        url.parse().map_err(|e| StartError(format!("DATABASE_URL is not a PostgreSQL URL: {e}")))?;
    Ok(Db::connect_postgres(options.options([("search_path", schema)]), PoolConfig::default()).await?)
}
