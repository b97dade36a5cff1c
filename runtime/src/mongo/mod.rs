//! MongoDB: the store handle. Models on collections arrive with the MongoDB work; for now the
//! handle connects, pings (health check) and exposes the driver's database.

use crate::error::{Error, Result};

/// A handle to one MongoDB database.
#[derive(Debug, Clone)]
pub struct MongoStore {
    client: mongodb::Client,
    db: mongodb::Database,
}

impl MongoStore {
    /// Connects to `url` and selects `database`. The driver connects lazily; call
    /// [`MongoStore::ping`] to find out whether the server answers.
    pub async fn connect(url: &str, database: &str) -> Result<MongoStore> {
        let client = mongodb::Client::with_uri_str(url)
            .await
            .map_err(|e| Error::Connection { store: "mongodb", message: e.to_string() })?;
        let db = client.database(database);
        Ok(MongoStore { client, db })
    }

    /// Health check: the `ping` command.
    pub async fn ping(&self) -> Result<()> {
        self.db
            .run_command(mongodb::bson::doc! { "ping": 1 })
            .await
            .map(drop)
            .map_err(|e| Error::Connection { store: "mongodb", message: e.to_string() })
    }

    /// The driver's database handle.
    pub fn database(&self) -> &mongodb::Database {
        &self.db
    }

    /// The driver's client.
    pub fn client(&self) -> &mongodb::Client {
        &self.client
    }
}
