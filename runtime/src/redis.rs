//! Redis: the store handle (a reconnecting `ConnectionManager`). Caching on top of it lives in
//! [`crate::cache`] (`Cache::redis(&store)`).

use crate::error::{Error, Result};

/// The redis-rs crate polystore talks to Redis with, for commands polystore does not wrap
/// (`polystore::redis::driver::cmd("SCAN")`, with [`RedisStore::connection`]).
pub use ::redis as driver;

/// A handle to one Redis server.
#[derive(Clone)]
pub struct RedisStore {
    conn: redis::aio::ConnectionManager,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore").finish_non_exhaustive()
    }
}

fn connection_error(e: redis::RedisError) -> Error {
    Error::Connection { store: "redis", message: e.to_string() }
}

impl RedisStore {
    /// Connects to `url` (`redis://host:port/db`) with a 2 s connection timeout and one retry,
    /// so an unreachable server is reported within seconds; once connected, the manager
    /// reconnects in the background after a connection drops.
    pub async fn connect(url: &str) -> Result<RedisStore> {
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(std::time::Duration::from_secs(2)))
            .set_number_of_retries(1);
        RedisStore::connect_with(url, config).await
    }

    /// Connects to `url` with explicit connection-manager settings (timeouts, retries).
    pub async fn connect_with(url: &str, config: redis::aio::ConnectionManagerConfig) -> Result<RedisStore> {
        let client = redis::Client::open(url).map_err(|e| Error::Config(format!("bad Redis URL: {e}")))?;
        let conn = redis::aio::ConnectionManager::new_with_config(client, config).await.map_err(connection_error)?;
        Ok(RedisStore { conn })
    }

    /// Health check: `PING`.
    pub async fn ping(&self) -> Result<()> {
        let mut conn = self.conn.clone();
        let pong: String = redis::cmd("PING").query_async(&mut conn).await.map_err(connection_error)?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(Error::Connection { store: "redis", message: format!("unexpected PING reply {pong:?}") })
        }
    }

    /// The driver's connection manager (cheap to clone).
    pub fn connection(&self) -> redis::aio::ConnectionManager {
        self.conn.clone()
    }
}
