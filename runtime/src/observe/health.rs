//! Health checks: `health(timeout)` on every handle, for readiness and liveness probes.
//!
//! A check makes one or two cheap round trips (the server's version and role), bounded by the
//! timeout it is given: an unreachable or silent server yields a report saying so when the
//! timeout runs out, never a hang. Checks go straight to the driver (they are not counted in
//! the handle's statements, nor in the statement metrics).

use std::future::Future;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Error, ErrorClass};

/// What a health check found. Serialises to JSON as it reads, for a health endpoint:
///
/// ```json
/// {"store":"postgresql","reachable":true,"latency_ms":0.61,"server_version":"15.10",
///  "role":"primary","replication_lag_ms":null,"pool":{"open":2,"idle":1,"used":1,"max":10},
///  "error":null,"error_type":null}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthReport {
    /// Which store: `postgresql`, `sqlite`, `mongodb`, `redis`, `redis_cluster`.
    pub store: &'static str,
    /// Whether the server answered the check within the timeout.
    pub reachable: bool,
    /// How long the check took (until its answer, failure or timeout), in milliseconds.
    pub latency_ms: f64,
    /// The server's version, when it said.
    pub server_version: Option<String>,
    /// The server's replication role, when the store reports one cheaply.
    pub role: Option<Role>,
    /// How far a replica is behind, in milliseconds, when the store says: a PostgreSQL standby
    /// reports the age of the last transaction it replayed (`now() -
    /// pg_last_xact_replay_timestamp()`, which also grows while the primary is idle). `None`
    /// on primaries and where unknown.
    pub replication_lag_ms: Option<f64>,
    /// The handle's connection pool (the SQL stores).
    pub pool: Option<PoolState>,
    /// Why the check failed.
    pub error: Option<String>,
    /// The failure's class (`unavailable` for a timeout or a refused connection).
    pub error_type: Option<ErrorClass>,
}

/// A server's replication role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Role {
    /// Accepts writes: a PostgreSQL server not in recovery, a replica-set primary, a Redis
    /// master.
    Primary,
    /// A read-only copy: a PostgreSQL standby, a replica-set secondary, a Redis replica.
    Replica,
    /// A MongoDB server outside any replica set.
    Standalone,
    /// A Redis Cluster (the report is of the node that answered and the cluster's state).
    Cluster,
}

/// A connection pool's state at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PoolState {
    /// Open connections (idle and in use).
    pub open: u32,
    /// Open connections waiting in the pool.
    pub idle: u32,
    /// Connections checked out (including the warm connections a PostgreSQL [`Db`](crate::Db)
    /// holds between statements).
    pub used: u32,
    /// The pool's `max_connections`.
    pub max: u32,
}

#[cfg(any(feature = "postgres", feature = "sqlite"))]
impl PoolState {
    /// The state of a sqlx pool now.
    pub fn of<DB: sqlx::Database>(pool: &sqlx::Pool<DB>) -> PoolState {
        let open = pool.size();
        let idle = u32::try_from(pool.num_idle()).unwrap_or(u32::MAX).min(open);
        PoolState { open, idle, used: open - idle, max: pool.options().get_max_connections() }
    }
}

/// What a store-specific check learnt.
#[derive(Default)]
struct Found {
    version: Option<String>,
    role: Option<Role>,
    lag_ms: Option<f64>,
}

/// Runs `check` within `timeout` and builds the report.
async fn report(
    store: &'static str,
    timeout: Duration,
    pool: Option<PoolState>,
    check: impl Future<Output = Result<Found, Error>>,
) -> HealthReport {
    let started = Instant::now();
    let result = tokio::time::timeout(timeout, check).await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let result = result.unwrap_or_else(|_| {
        Err(Error::Connection { store, message: format!("no answer within {} ms", timeout.as_millis()) })
    });
    let mut report = HealthReport {
        store,
        reachable: false,
        latency_ms,
        server_version: None,
        role: None,
        replication_lag_ms: None,
        pool,
        error: None,
        error_type: None,
    };
    match result {
        Ok(found) => {
            report.reachable = true;
            report.server_version = found.version;
            report.role = found.role;
            report.replication_lag_ms = found.lag_ms;
        }
        Err(e) => {
            report.error_type = Some(match e.class() {
                ErrorClass::Permanent | ErrorClass::Configuration => ErrorClass::Unavailable,
                other => other,
            });
            report.error = Some(e.to_string());
        }
    }
    report
}

#[cfg(any(feature = "postgres", feature = "sqlite"))]
impl crate::Db {
    /// Checks that the database answers within `timeout`: its version (PostgreSQL
    /// `server_version`, SQLite `sqlite_version()`), its role (PostgreSQL: `replica` while in
    /// recovery) and the pool's state. Never fails and never waits longer than `timeout`: a
    /// server that does not answer is reported unreachable.
    pub async fn health(&self, timeout: Duration) -> HealthReport {
        let pool = super::pool_state(self);
        #[cfg(feature = "postgres")]
        if let Some(pg) = self.pg_pool() {
            return report("postgresql", timeout, pool, async {
                let (version, in_recovery, lag_ms): (String, bool, Option<f64>) = sqlx::query_as(
                    "SELECT current_setting('server_version'), pg_is_in_recovery(), \
                     CASE WHEN pg_is_in_recovery() THEN \
                     (extract(epoch FROM now() - pg_last_xact_replay_timestamp()) * 1000)::float8 END",
                )
                .fetch_one(pg)
                .await
                .map_err(|e| crate::exec::map_error(e, "postgresql", None))?;
                let role = if in_recovery { Role::Replica } else { Role::Primary };
                Ok(Found { version: Some(version), role: Some(role), lag_ms })
            })
            .await;
        }
        #[cfg(feature = "sqlite")]
        if let Some(lite) = self.sqlite_pool() {
            return report("sqlite", timeout, pool, async {
                let (version,): (String,) = sqlx::query_as("SELECT sqlite_version()")
                    .fetch_one(lite)
                    .await
                    .map_err(|e| crate::exec::map_error(e, "sqlite", None))?;
                Ok(Found { version: Some(version), role: None, lag_ms: None })
            })
            .await;
        }
        report("?", timeout, pool, async { Err(Error::Config("a handle without a pool".into())) }).await
    }
}

#[cfg(feature = "mongodb")]
impl crate::mongo::MongoStore {
    /// Checks that the server answers within `timeout`: `hello` (the role: `primary` /
    /// `replica` in a replica set, else `standalone`) and `buildInfo` (the version; left out
    /// when the server does not answer that command). Never fails and never waits longer than
    /// `timeout`.
    pub async fn health(&self, timeout: Duration) -> HealthReport {
        use mongodb::bson::doc;
        let admin = self.client().database("admin");
        report("mongodb", timeout, None, async move {
            let map = |e: mongodb::error::Error| Error::Connection { store: "mongodb", message: e.to_string() };
            let hello = admin.run_command(doc! { "hello": 1 }).await.map_err(map)?;
            let flag = |k: &str| hello.get_bool(k).unwrap_or(false);
            let role = if hello.get_str("setName").is_ok() {
                if flag("isWritablePrimary") { Role::Primary } else { Role::Replica }
            } else {
                Role::Standalone
            };
            let version = admin
                .run_command(doc! { "buildInfo": 1 })
                .await
                .ok()
                .and_then(|info| info.get_str("version").ok().map(str::to_owned));
            Ok(Found { version, role: Some(role), lag_ms: None })
        })
        .await
    }
}

/// The `key:value` lines of a Redis `INFO` reply.
#[cfg(feature = "redis")]
fn info_field<'a>(info: &'a str, key: &str) -> Option<&'a str> {
    info.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(':')).map(str::trim)
}

#[cfg(feature = "redis")]
fn redis_error(e: redis::RedisError) -> Error {
    Error::Connection { store: "redis", message: e.to_string() }
}

#[cfg(feature = "redis")]
impl crate::redis::RedisStore {
    /// Checks that the server answers within `timeout`: `PING`, then `INFO server` and
    /// `INFO replication` for the version and role (`primary` for a master, `replica`). Never
    /// fails and never waits longer than `timeout`. The Redis cache backend shares this
    /// connection ([`RedisBackend::new`](crate::cache::RedisBackend::new)), so this is its
    /// health too.
    pub async fn health(&self, timeout: Duration) -> HealthReport {
        let mut conn = self.connection();
        report("redis", timeout, None, async move {
            let _: String = redis::cmd("PING").query_async(&mut conn).await.map_err(redis_error)?;
            let server: String = redis::cmd("INFO").arg("server").query_async(&mut conn).await.map_err(redis_error)?;
            let replication: String =
                redis::cmd("INFO").arg("replication").query_async(&mut conn).await.map_err(redis_error)?;
            let role = match info_field(&replication, "role") {
                Some("master") => Some(Role::Primary),
                Some("slave") => Some(Role::Replica),
                _ => None,
            };
            Ok(Found { version: info_field(&server, "redis_version").map(str::to_owned), role, lag_ms: None })
        })
        .await
    }
}

#[cfg(feature = "redis")]
impl crate::cache::ClusterBackend {
    /// Checks that the cluster answers within `timeout` and is serving every slot
    /// (`CLUSTER INFO` reports `cluster_state:ok`; anything else is reported unreachable with
    /// the state), with the primaries' version (`INFO server` of each; several versions, as
    /// during a rolling upgrade, are listed comma-separated). Never fails and never waits
    /// longer than `timeout`.
    pub async fn health(&self, timeout: Duration) -> HealthReport {
        let mut conn = self.connection();
        report("redis_cluster", timeout, None, async move {
            let info: String = redis::cmd("CLUSTER").arg("INFO").query_async(&mut conn).await.map_err(redis_error)?;
            match info_field(&info, "cluster_state") {
                Some("ok") => {}
                state => {
                    return Err(Error::Connection {
                        store: "redis",
                        message: format!("cluster_state is {}", state.unwrap_or("missing")),
                    });
                }
            }
            // A cluster connection sends INFO to every primary and answers node by node.
            let servers: std::collections::BTreeMap<String, String> =
                redis::cmd("INFO").arg("server").query_async(&mut conn).await.map_err(redis_error)?;
            let mut versions: Vec<&str> = servers.values().filter_map(|i| info_field(i, "redis_version")).collect();
            versions.sort_unstable();
            versions.dedup();
            let version = (!versions.is_empty()).then(|| versions.join(", "));
            Ok(Found { version, role: Some(Role::Cluster), lag_ms: None })
        })
        .await
    }
}

#[cfg(all(test, feature = "redis"))]
mod tests {
    use super::info_field;

    #[test]
    fn info_fields_are_read_by_key() {
        let info = "# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\n";
        assert_eq!(info_field(info, "redis_version"), Some("7.0.15"));
        assert_eq!(info_field(info, "redis_mode"), Some("standalone"));
        assert_eq!(info_field(info, "role"), None);
    }
}
