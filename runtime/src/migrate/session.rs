//! One migration's transaction, holding the migration lock, on either SQL database.
//!
//! - PostgreSQL: a [`Tx`] whose first statement is `pg_advisory_xact_lock` keyed by the
//!   current schema (so runners on different schemas of one database do not wait for each
//!   other); the lock is released by the commit or rollback.
//! - SQLite: a pooled connection with `PRAGMA foreign_keys = OFF` (it cannot change inside a
//!   transaction, and a table rebuild must not fire the `ON DELETE` actions of the table it
//!   drops) and a long busy timeout, then `BEGIN IMMEDIATE` (the database's write lock, taken
//!   at once, waiting for another runner's); before the commit `PRAGMA foreign_key_check` must
//!   come back empty, and afterwards foreign keys and the busy timeout are restored. This is
//!   SQLite's documented procedure for schema changes.
//!
//! Statements run through the crate's execution point like every other statement.

use std::sync::Arc;

use crate::db::{Backend, Db, Executor, Stats, Target, Tx};
use crate::exec;

use super::MigrateError;

/// A migration transaction. End it with [`Session::commit`] or [`Session::rollback`].
pub(crate) enum Session {
    /// PostgreSQL.
    Postgres(Tx<'static>),
    /// SQLite.
    #[cfg(feature = "sqlite")]
    Sqlite(SqliteSession),
}

/// The SQLite side of a [`Session`].
#[cfg(feature = "sqlite")]
pub(crate) struct SqliteSession {
    conn: sqlx::pool::PoolConnection<sqlx::Sqlite>,
    stats: Arc<Stats>,
    open: bool,
    /// The connection's `busy_timeout` (ms) before the session raised it.
    busy_timeout: i64,
}

/// How long a SQLite runner waits for another one's write lock (`BEGIN IMMEDIATE`): a
/// migration can take longer than a connection's usual busy timeout.
#[cfg(feature = "sqlite")]
pub(crate) const SQLITE_LOCK_WAIT_MS: i64 = 600_000;

#[cfg(feature = "sqlite")]
impl Drop for SqliteSession {
    fn drop(&mut self) {
        // Dropped mid-transaction (a cancelled future, a panic): never hand a connection with
        // an open transaction and foreign keys off back to the pool.
        if self.open {
            self.conn.close_on_drop();
        }
    }
}

/// Runs statements on a session.
pub(crate) enum SessionExec<'a> {
    Postgres(&'a mut Tx<'static>),
    #[cfg(feature = "sqlite")]
    Sqlite(&'a mut sqlx::SqliteConnection, &'a Arc<Stats>),
}

impl Executor for SessionExec<'_> {
    fn target(&mut self) -> (Target<'_>, &Arc<Stats>) {
        match self {
            SessionExec::Postgres(tx) => tx.target(),
            #[cfg(feature = "sqlite")]
            SessionExec::Sqlite(conn, stats) => (Target::SqliteConn(conn), stats),
        }
    }
}

impl Session {
    /// Starts a migration transaction on `db` and takes the migration lock.
    pub(crate) async fn begin(db: &Db) -> Result<Session, MigrateError> {
        match db.backend() {
            Backend::Postgres => {
                let mut tx = db.begin().await?;
                let lock = "SELECT pg_advisory_xact_lock(hashtext(current_schema() || '._polystore_migrations'))";
                exec::execute_raw(&mut &mut tx, "migrate_lock", None, lock).await?;
                Ok(Session::Postgres(tx))
            }
            #[cfg(feature = "sqlite")]
            Backend::Sqlite => {
                let pool = db.sqlite_pool().ok_or_else(|| MigrateError::Invalid("no SQLite pool".into()))?;
                let conn = pool
                    .acquire()
                    .await
                    .map_err(|e| crate::Error::Connection { store: "sqlite", message: e.to_string() })?;
                let mut s = SqliteSession { conn, stats: Arc::new(Stats::default()), open: true, busy_timeout: 5000 };
                s.busy_timeout = s.busy_timeout().await?;
                s.run(&format!("PRAGMA busy_timeout = {SQLITE_LOCK_WAIT_MS}")).await?;
                s.run("PRAGMA foreign_keys = OFF").await?;
                if let Err(e) = s.run("BEGIN IMMEDIATE").await {
                    s.close().await?;
                    return Err(e);
                }
                Ok(Session::Sqlite(s))
            }
            #[allow(unreachable_patterns)]
            _ => Err(MigrateError::Invalid("this database's cargo feature is not enabled".into())),
        }
    }

    /// The executor statements of the session run on.
    pub(crate) fn exec(&mut self) -> SessionExec<'_> {
        match self {
            Session::Postgres(tx) => SessionExec::Postgres(tx),
            #[cfg(feature = "sqlite")]
            Session::Sqlite(s) => SessionExec::Sqlite(&mut s.conn, &s.stats),
        }
    }

    /// Commits (on SQLite after checking that no foreign key is broken).
    pub(crate) async fn commit(self) -> Result<(), MigrateError> {
        match self {
            Session::Postgres(tx) => Ok(tx.commit().await?),
            #[cfg(feature = "sqlite")]
            Session::Sqlite(mut s) => {
                let broken = s.broken_foreign_keys().await;
                let result = match broken {
                    Ok(0) => s.run("COMMIT").await,
                    Ok(n) => Err(MigrateError::Invalid(format!(
                        "the migration leaves {n} row(s) whose foreign key refers to no row (PRAGMA foreign_key_check); rolled back"
                    ))),
                    Err(e) => Err(e),
                };
                if result.is_err() {
                    let _ = s.run("ROLLBACK").await;
                }
                s.close().await?;
                result
            }
        }
    }

    /// Rolls back.
    pub(crate) async fn rollback(self) -> Result<(), MigrateError> {
        match self {
            Session::Postgres(tx) => Ok(tx.rollback().await?),
            #[cfg(feature = "sqlite")]
            Session::Sqlite(mut s) => {
                s.run("ROLLBACK").await?;
                s.close().await
            }
        }
    }
}

#[cfg(feature = "sqlite")]
impl SqliteSession {
    async fn run(&mut self, sql: &str) -> Result<(), MigrateError> {
        let mut e = SessionExec::Sqlite(&mut self.conn, &self.stats);
        exec::execute_raw(&mut e, "migrate_session", None, sql).await?;
        Ok(())
    }

    async fn broken_foreign_keys(&mut self) -> Result<usize, MigrateError> {
        let mut e = SessionExec::Sqlite(&mut self.conn, &self.stats);
        let stmt = crate::sql::Statement { sql: "PRAGMA foreign_key_check".to_owned(), params: Vec::new() };
        Ok(exec::fetch_with(&mut e, "migrate_session", None, stmt, |_| Ok(())).await?.len())
    }

    async fn busy_timeout(&mut self) -> Result<i64, MigrateError> {
        let mut e = SessionExec::Sqlite(&mut self.conn, &self.stats);
        let stmt = crate::sql::Statement { sql: "PRAGMA busy_timeout".to_owned(), params: Vec::new() };
        let ty = crate::schema::ColumnType::scalar(crate::schema::Scalar::I64);
        let rows = exec::fetch_with(&mut e, "migrate_session", None, stmt, |row| {
            Ok(match row.value(0, ty) {
                Ok(crate::value::Value::I64(ms)) => ms,
                _ => 5000,
            })
        })
        .await?;
        Ok(rows.first().copied().unwrap_or(5000))
    }

    /// Switches foreign keys back on and restores the busy timeout; the connection then goes
    /// back to the pool.
    async fn close(&mut self) -> Result<(), MigrateError> {
        self.run("PRAGMA foreign_keys = ON").await?;
        let restore = format!("PRAGMA busy_timeout = {}", self.busy_timeout);
        self.run(&restore).await?;
        self.open = false;
        Ok(())
    }
}
