//! [`MongoMigrator`] (feature `mongodb`): applies and reverts the `mongo.json` side of the
//! migrations of a directory on a [`MongoStore`].
//!
//! - **Bookkeeping**: the collection `_polystore_migrations`, one document per applied
//!   migration (`{ _id: name, checksum, applied_at }`), checked like the SQL side (an applied
//!   migration edited afterwards is an error).
//! - **A lock**: a document `{ _id: "migrations" }` in `_polystore_lock`, inserted to take the
//!   lock (the unique `_id` makes a second insert fail, so the second runner waits and
//!   retries) and deleted to release it; a lock older than [`STALE_LOCK`] (a crashed runner)
//!   is taken over.
//! - **No transaction**: MongoDB does not run `create`, `createIndexes` or `collMod` inside
//!   transactions. Commands run in order; re-running a partly applied migration skips what
//!   already exists (a collection or index that is there, one to drop that is gone).

use std::path::PathBuf;
use std::time::Duration;

use chrono::Utc;
use mongodb::bson::{Bson, DateTime, Document, doc};

use crate::error::Error;
use crate::mongo::MongoStore;

use super::MigrateError;
use super::files::{Migration, MigrationDir};
use super::mongo::to_document;
use super::status::{MigrationStatus, StatusLine};

const MIGRATIONS: &str = "_polystore_migrations";
const LOCK: &str = "_polystore_lock";

/// A lock held this long is considered abandoned by a crashed runner and taken over.
pub const STALE_LOCK: Duration = Duration::from_secs(600);

/// Applies and reverts the MongoDB side of the migrations in a directory.
#[derive(Debug, Clone)]
pub struct MongoMigrator {
    store: MongoStore,
    dir: MigrationDir,
    allow_destructive: bool,
    lock_timeout: Duration,
}

impl MongoMigrator {
    /// A migrator for the migrations in `dir` on `store`'s database.
    pub fn new(store: &MongoStore, dir: impl Into<PathBuf>) -> MongoMigrator {
        MongoMigrator {
            store: store.clone(),
            dir: MigrationDir::new(dir),
            allow_destructive: false,
            lock_timeout: Duration::from_secs(60),
        }
    }

    /// The migrations directory.
    pub(crate) fn directory(&self) -> &MigrationDir {
        &self.dir
    }

    /// The store.
    pub(crate) fn store(&self) -> &MongoStore {
        &self.store
    }

    /// Whether migrations with destructive steps may run (off by default).
    pub fn allow_destructive(mut self, allow: bool) -> MongoMigrator {
        self.allow_destructive = allow;
        self
    }

    /// How long to wait for another runner's lock (default 60 s).
    pub fn lock_timeout(mut self, timeout: Duration) -> MongoMigrator {
        self.lock_timeout = timeout;
        self
    }

    /// Applies the pending migrations (all, or up to and including `to`); returns their names.
    pub async fn up(&self, to: Option<&str>) -> Result<Vec<String>, MigrateError> {
        let holder = self.lock().await?;
        let result = self.up_locked(to).await;
        self.unlock(&holder).await?;
        result
    }

    /// Reverts the last `n` applied migrations, newest first; returns their names.
    pub async fn down(&self, n: usize) -> Result<Vec<String>, MigrateError> {
        let holder = self.lock().await?;
        let result = self.down_locked(n).await;
        self.unlock(&holder).await?;
        result
    }

    /// Reverts the last applied migration and applies it again; returns its name.
    pub async fn redo(&self) -> Result<Option<String>, MigrateError> {
        let Some(name) = self.down(1).await?.pop() else { return Ok(None) };
        self.up(Some(&name)).await?;
        Ok(Some(name))
    }

    /// The names of the applied migrations, in order.
    pub async fn applied(&self) -> Result<Vec<String>, MigrateError> {
        Ok(self.applied_docs().await?.into_iter().map(|(name, ..)| name).collect())
    }

    /// Every migration, local or applied, with where it stands, in order.
    pub async fn status(&self) -> Result<Vec<StatusLine>, MigrateError> {
        let local = self.dir.migrations()?;
        let applied = self.applied_docs().await?;
        let mut names: Vec<String> =
            local.iter().map(|m| m.name.clone()).chain(applied.iter().map(|a| a.0.clone())).collect();
        names.sort();
        names.dedup();
        Ok(names
            .into_iter()
            .map(|name| {
                let m = local.iter().find(|m| m.name == name);
                let status = match (m, applied.iter().find(|a| a.0 == name)) {
                    (_, None) => MigrationStatus::Pending,
                    (None, Some(_)) => MigrationStatus::MissingOnDisk,
                    (Some(m), Some(a)) if m.checksum != a.1 => MigrationStatus::Edited,
                    (Some(_), Some(a)) => MigrationStatus::Applied { at: a.2 },
                };
                StatusLine { name, status }
            })
            .collect())
    }

    async fn up_locked(&self, to: Option<&str>) -> Result<Vec<String>, MigrateError> {
        let local = self.checked().await?;
        let applied = self.applied().await?;
        let last = match to {
            Some(name) => local
                .iter()
                .position(|m| m.name == name)
                .ok_or_else(|| MigrateError::UnknownMigration(name.to_owned()))?,
            None => local.len().saturating_sub(1),
        };
        let mut done = Vec::new();
        for m in local.iter().take(last + 1).filter(|m| !applied.contains(&m.name)) {
            let one = async {
                let plan = m.mongo()?.unwrap_or_default();
                self.consent(m, "up", &plan.destructive_up)?;
                for command in &plan.up {
                    self.run(to_document(command)?).await?;
                }
                let record = doc! { "_id": &m.name, "checksum": &m.checksum, "applied_at": DateTime::now() };
                self.store.run_command(doc! { "insert": MIGRATIONS, "documents": [record] }).await?;
                Ok::<_, MigrateError>(())
            }
            .await;
            crate::observe::migration_run("mongodb", "up", one.is_ok());
            one?;
            done.push(m.name.clone());
        }
        Ok(done)
    }

    async fn down_locked(&self, n: usize) -> Result<Vec<String>, MigrateError> {
        let local = self.checked().await?;
        let mut done = Vec::new();
        for name in self.applied().await?.into_iter().rev().take(n) {
            let m = local.iter().find(|m| m.name == name).ok_or_else(|| MigrateError::MissingOnDisk(name.clone()))?;
            let one = async {
                let plan = m.mongo()?.unwrap_or_default();
                self.consent(m, "down", &plan.destructive_down)?;
                for command in &plan.down {
                    self.run(to_document(command)?).await?;
                }
                let delete = doc! { "delete": MIGRATIONS, "deletes": [{ "q": { "_id": &name }, "limit": 1 }] };
                self.store.run_command(delete).await?;
                Ok::<_, MigrateError>(())
            }
            .await;
            crate::observe::migration_run("mongodb", "down", one.is_ok());
            one?;
            done.push(name);
        }
        Ok(done)
    }

    fn consent(&self, m: &Migration, direction: &'static str, steps: &[String]) -> Result<(), MigrateError> {
        if steps.is_empty() || self.allow_destructive {
            return Ok(());
        }
        Err(MigrateError::Destructive { name: m.name.clone(), direction, steps: steps.to_vec() })
    }

    /// The local migrations, after checking the applied ones against them.
    async fn checked(&self) -> Result<Vec<Migration>, MigrateError> {
        let local = self.dir.migrations()?;
        for (name, checksum, _) in self.applied_docs().await? {
            let m = local.iter().find(|m| m.name == name).ok_or_else(|| MigrateError::MissingOnDisk(name.clone()))?;
            if m.checksum != checksum {
                return Err(MigrateError::Edited { name, applied: checksum, on_disk: m.checksum.clone() });
            }
        }
        Ok(local)
    }

    /// (name, checksum, applied at) of the applied migrations, in order.
    async fn applied_docs(&self) -> Result<Vec<(String, String, chrono::DateTime<Utc>)>, MigrateError> {
        let reply =
            self.store.run_command(doc! { "find": MIGRATIONS, "sort": { "_id": 1 }, "batchSize": 100_000 }).await?;
        let batch = reply.get_document("cursor").and_then(|c| c.get_array("firstBatch")).cloned().unwrap_or_default();
        Ok(batch
            .iter()
            .filter_map(Bson::as_document)
            .filter_map(|d| {
                let at = d.get_datetime("applied_at").ok().map(|t| t.timestamp_millis()).unwrap_or_default();
                Some((
                    d.get_str("_id").ok()?.to_owned(),
                    d.get_str("checksum").ok()?.to_owned(),
                    chrono::DateTime::from_timestamp_millis(at).unwrap_or_default(),
                ))
            })
            .collect())
    }

    /// Runs one stored command; what is already as the command wants it is not an error.
    async fn run(&self, command: Document) -> Result<(), MigrateError> {
        let first = command.keys().next().cloned().unwrap_or_default();
        let result = if first == "renameCollection" {
            let db = self.store.database().name().to_owned();
            let from = format!("{db}.{}", command.get_str("renameCollection").unwrap_or_default());
            let to = format!("{db}.{}", command.get_str("to").unwrap_or_default());
            let admin = self.store.client().database("admin");
            admin
                .run_command(doc! { "renameCollection": from, "to": to })
                .await
                .map(drop)
                .map_err(|e| Error::Database { code: None, message: e.to_string() })
        } else {
            self.store.run_command(command).await.map(drop)
        };
        match result {
            Err(Error::Database { code: Some(code), .. }) if already_done(&first, &code) => Ok(()),
            other => Ok(other?),
        }
    }

    /// Takes the lock, waiting for another runner's; returns the holder id to release it with.
    async fn lock(&self) -> Result<String, MigrateError> {
        let holder = uuid::Uuid::new_v4().to_string();
        let started = std::time::Instant::now();
        loop {
            let record = doc! { "_id": "migrations", "holder": &holder, "at": DateTime::now() };
            match self.store.run_command(doc! { "insert": LOCK, "documents": [record] }).await {
                Ok(_) => return Ok(holder),
                Err(Error::UniqueViolation { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            let stale_ms = i64::try_from(STALE_LOCK.as_millis()).unwrap_or(i64::MAX);
            let stale = DateTime::from_millis(Utc::now().timestamp_millis().saturating_sub(stale_ms));
            let q = doc! { "_id": "migrations", "at": { "$lt": stale } };
            self.store.run_command(doc! { "delete": LOCK, "deletes": [{ "q": q, "limit": 1 }] }).await?;
            if started.elapsed() > self.lock_timeout {
                return Err(MigrateError::Invalid(format!(
                    "another runner holds the MongoDB migration lock ({LOCK}) for more than {:?}",
                    self.lock_timeout
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn unlock(&self, holder: &str) -> Result<(), MigrateError> {
        let q = doc! { "_id": "migrations", "holder": holder };
        self.store.run_command(doc! { "delete": LOCK, "deletes": [{ "q": q, "limit": 1 }] }).await?;
        Ok(())
    }
}

/// Server errors meaning a command's effect is already there: a collection that exists
/// (48), an index or collection to drop that does not (27, 26), an index that exists with
/// the same name (85/86 are real conflicts and stay errors).
fn already_done(command: &str, code: &str) -> bool {
    matches!((command, code), ("create", "48") | ("dropIndexes", "27") | ("dropIndexes", "26") | ("drop", "26"))
}
