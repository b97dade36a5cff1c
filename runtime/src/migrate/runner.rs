//! The [`Migrator`]: applies and reverts the migrations of a directory on a [`Db`].
//!
//! - **Bookkeeping**: `_polystore_migrations` (name, checksum, applied_at) records what is
//!   applied; an applied migration whose files changed since is an error
//!   ([`MigrateError::Edited`]), as is one missing from the directory.
//! - **One transaction per migration**: its statements, its bookkeeping row and (for data
//!   steps) its progress rows commit together or not at all (PostgreSQL and SQLite DDL are
//!   transactional).
//! - **A lock**: each migration's transaction first takes a lock and re-reads the bookkeeping,
//!   so two processes never apply the same migration — PostgreSQL
//!   `pg_advisory_xact_lock` keyed by the current schema, SQLite a write to the bookkeeping as
//!   the transaction's first statement (which takes the database's write lock at once, like
//!   `BEGIN IMMEDIATE`).
//! - **Consent**: a migration whose SQL holds a step marked `-- DESTRUCTIVE:` runs only after
//!   [`Migrator::allow_destructive`].

use std::path::PathBuf;

use crate::db::{Backend, Db};
use crate::exec;

use super::bookkeeping::{
    Applied, MIGRATIONS, PROGRESS, applied, data_pending, lock, read_progress, record_applied, record_reverted,
    write_progress,
};
use super::catalog::{self, Drift};
use super::data::{self, DataStep, Progress};
use super::files::{Migration, MigrationDir};
use super::render::DESTRUCTIVE_MARKER;
use super::session::{Session, SessionExec};
use super::{MigrateError, split};

pub use super::status::{MigrationStatus, StatusLine};

/// Applies, reverts and checks the migrations of a directory on one database.
#[derive(Debug, Clone)]
pub struct Migrator {
    db: Db,
    dir: MigrationDir,
    allow_destructive: bool,
    progress: bool,
    data_steps: Vec<&'static DataStep>,
}

impl Migrator {
    /// A migrator for the migrations in `dir` (e.g. `"migrations"`) on `db`. Data steps
    /// registered with [`register_data_step!`](crate::register_data_step) are known.
    pub fn new(db: &Db, dir: impl Into<PathBuf>) -> Migrator {
        Migrator {
            db: db.clone(),
            dir: MigrationDir::new(dir),
            allow_destructive: false,
            progress: false,
            data_steps: data::registered().collect(),
        }
    }

    /// Whether migrations with destructive steps (dropping a table or column, narrowing a
    /// type — in either direction) may run. Off by default.
    pub fn allow_destructive(mut self, allow: bool) -> Migrator {
        self.allow_destructive = allow;
        self
    }

    /// Whether data steps show a progress bar (with the `cli` feature). Off by default.
    pub fn progress(mut self, show: bool) -> Migrator {
        self.progress = show;
        self
    }

    /// Makes a data step known besides the registered ones.
    pub fn data_step(mut self, step: &'static DataStep) -> Migrator {
        self.data_steps.push(step);
        self
    }

    /// The migrations directory.
    pub fn dir(&self) -> &MigrationDir {
        &self.dir
    }

    fn tag(&self) -> &'static str {
        match self.db.backend() {
            Backend::Postgres => "postgres",
            Backend::Sqlite => "sqlite",
        }
    }

    /// Creates the bookkeeping tables if they do not exist (under the lock).
    async fn ensure(&self) -> Result<(), MigrateError> {
        let mut session = Session::begin(&self.db).await?;
        let mut result = Ok(true);
        for schema in [&MIGRATIONS, &PROGRESS] {
            for sql in crate::sql::ddl::create_table(self.db.dialect(), schema, true)? {
                if result.is_ok() {
                    result = exec::execute_raw(&mut session.exec(), "migrate_bookkeeping", None, &sql)
                        .await
                        .map(|()| true)
                        .map_err(MigrateError::from);
                }
            }
        }
        finish(session, result).await.map(drop)
    }

    /// The local migrations and the applied ones, checked against each other: every applied
    /// migration is on disk with the checksum it was applied with.
    async fn load(&self) -> Result<(Vec<Migration>, Vec<Applied>), MigrateError> {
        self.ensure().await?;
        let local = self.dir.migrations()?;
        let applied = applied(&mut &self.db).await?;
        for a in &applied {
            let m =
                local.iter().find(|m| m.name == a.name).ok_or_else(|| MigrateError::MissingOnDisk(a.name.clone()))?;
            if m.checksum != a.checksum {
                return Err(MigrateError::Edited {
                    name: a.name.clone(),
                    applied: a.checksum.clone(),
                    on_disk: m.checksum.clone(),
                });
            }
        }
        Ok((local, applied))
    }

    /// Applies the pending migrations in order — all of them, or up to and including `to` —
    /// and finishes interrupted data steps. Returns the names of the migrations it applied.
    pub async fn up(&self, to: Option<&str>) -> Result<Vec<String>, MigrateError> {
        let (local, _) = self.load().await?;
        let last = match to {
            Some(name) => local
                .iter()
                .position(|m| m.name == name)
                .ok_or_else(|| MigrateError::UnknownMigration(name.to_owned()))?,
            None => local.len().saturating_sub(1),
        };
        let mut done = Vec::new();
        for m in local.iter().take(last + 1) {
            let applied = self.apply(m).await;
            // Even a failed migration may have changed indexes (a non-transactional step).
            self.db.forget_index_hints();
            if applied? {
                done.push(m.name.clone());
            }
            self.run_data_steps(m).await?;
        }
        Ok(done)
    }

    /// Reverts the last `n` applied migrations, newest first. Returns their names.
    pub async fn down(&self, n: usize) -> Result<Vec<String>, MigrateError> {
        let (local, applied) = self.load().await?;
        let mut done = Vec::new();
        for a in applied.iter().rev().take(n) {
            let m =
                local.iter().find(|m| m.name == a.name).ok_or_else(|| MigrateError::MissingOnDisk(a.name.clone()))?;
            let reverted = self.revert(m).await;
            self.db.forget_index_hints();
            if reverted? {
                done.push(m.name.clone());
            }
        }
        Ok(done)
    }

    /// Reverts the last applied migration and applies it again (after editing an unreleased
    /// migration, say). Returns its name, or `None` when nothing is applied.
    pub async fn redo(&self) -> Result<Option<String>, MigrateError> {
        let Some(name) = self.down(1).await?.pop() else { return Ok(None) };
        self.up(Some(&name)).await?;
        Ok(Some(name))
    }

    /// Every migration, local or applied, with where it stands, in order.
    pub async fn status(&self) -> Result<Vec<StatusLine>, MigrateError> {
        self.ensure().await?;
        let local = self.dir.migrations()?;
        let applied = applied(&mut &self.db).await?;
        let pending = data_pending(&mut &self.db).await?;
        let mut names: Vec<String> =
            local.iter().map(|m| m.name.clone()).chain(applied.iter().map(|a| a.name.clone())).collect();
        names.sort();
        names.dedup();
        Ok(names
            .into_iter()
            .map(|name| {
                let m = local.iter().find(|m| m.name == name);
                let a = applied.iter().find(|a| a.name == name);
                let status = match (m, a) {
                    (_, None) => MigrationStatus::Pending,
                    (None, Some(_)) => MigrationStatus::MissingOnDisk,
                    (Some(m), Some(a)) if m.checksum != a.checksum => MigrationStatus::Edited,
                    (Some(_), Some(a)) => match pending.iter().find(|(mig, ..)| *mig == name) {
                        Some((_, step, processed)) => {
                            MigrationStatus::DataPending { at: a.at, step: step.clone(), processed: *processed }
                        }
                        None => MigrationStatus::Applied { at: a.at },
                    },
                };
                StatusLine { name, status }
            })
            .collect())
    }

    /// Drift: the differences between the live catalog and the schema the latest migration's
    /// snapshot describes (empty when they agree). Manual `ALTER`s, tables created behind the
    /// migrations' back, pending migrations, or migrations whose SQL was hand-edited into
    /// something else than their snapshot show up here.
    pub async fn check(&self) -> Result<Vec<Drift>, MigrateError> {
        self.load().await?;
        let snapshot = self.dir.latest_snapshot()?;
        let expected = catalog::expected(&self.db, &snapshot).await?;
        let schemas = snapshot.schemas();
        let schemas: Vec<&str> = schemas.iter().map(String::as_str).collect();
        let actual = catalog::read(&mut &self.db, self.db.backend(), &schemas).await?;
        Ok(catalog::compare(&expected, &actual))
    }

    /// Refuses `sql` when it holds destructive steps and consent was not given.
    fn consent(&self, m: &Migration, direction: &'static str, sql: &str) -> Result<(), MigrateError> {
        let steps: Vec<String> =
            sql.lines().filter(|l| l.trim_start().starts_with(DESTRUCTIVE_MARKER)).map(str::to_owned).collect();
        if steps.is_empty() || self.allow_destructive {
            return Ok(());
        }
        Err(MigrateError::Destructive { name: m.name.clone(), direction, steps })
    }

    fn sql<'m>(&self, m: &'m Migration, direction: &str) -> Result<&'m str, MigrateError> {
        m.sql(direction, self.tag()).ok_or_else(|| MigrateError::MissingSql {
            name: m.name.clone(),
            file: format!("{direction}.{}.sql", self.tag()),
        })
    }

    /// Applies `m` unless it is applied already (by this or another process). Returns whether
    /// it applied it.
    async fn apply(&self, m: &Migration) -> Result<bool, MigrateError> {
        let sql = self.sql(m, "up")?;
        let steps = m.data_steps()?;
        for step in &steps {
            self.find_step(&m.name, step)?;
        }
        let mut session = Session::begin(&self.db).await?;
        let result = self.apply_in(&mut session.exec(), m, sql, &steps).await;
        let result = finish(session, result).await;
        self.count_run("up", &result);
        result
    }

    /// Counts a migration applied or reverted (`Ok(false)`: it already was; not a run).
    fn count_run(&self, direction: &'static str, result: &Result<bool, MigrateError>) {
        if !matches!(result, Ok(false)) {
            let system = match self.db.backend() {
                crate::Backend::Postgres => "postgresql",
                crate::Backend::Sqlite => "sqlite",
            };
            crate::observe::migration_run(system, direction, result.is_ok());
        }
    }

    async fn apply_in(
        &self,
        e: &mut SessionExec<'_>,
        m: &Migration,
        sql: &str,
        steps: &[String],
    ) -> Result<bool, MigrateError> {
        if let Some(a) = applied(e).await?.into_iter().find(|a| a.name == m.name) {
            return check_sum(m, &a).map(|()| false);
        }
        super::backfill::check_filled(&m.name, &format!("up.{}.sql", self.tag()), sql)?;
        self.consent(m, "up", sql)?;
        run_statements(e, m, sql).await?;
        record_applied(e, self.db.dialect(), &m.name, &m.checksum, steps).await?;
        tracing::info!(migration = %m.name, "migration applied");
        Ok(true)
    }

    /// Reverts `m` unless it is no longer applied. Returns whether it reverted it.
    async fn revert(&self, m: &Migration) -> Result<bool, MigrateError> {
        let sql = self.sql(m, "down")?;
        let mut session = Session::begin(&self.db).await?;
        let result = self.revert_in(&mut session.exec(), m, sql).await;
        let result = finish(session, result).await;
        self.count_run("down", &result);
        result
    }

    async fn revert_in(&self, e: &mut SessionExec<'_>, m: &Migration, sql: &str) -> Result<bool, MigrateError> {
        if !applied(e).await?.iter().any(|a| a.name == m.name) {
            return Ok(false);
        }
        self.consent(m, "down", sql)?;
        run_statements(e, m, sql).await?;
        record_reverted(e, self.db.dialect(), &m.name).await?;
        tracing::info!(migration = %m.name, "migration reverted");
        Ok(true)
    }

    fn find_step(&self, migration: &str, name: &str) -> Result<&'static DataStep, MigrateError> {
        self.data_steps
            .iter()
            .copied()
            .find(|s| s.name == name)
            .ok_or_else(|| MigrateError::UnknownDataStep { migration: migration.to_owned(), step: name.to_owned() })
    }

    /// Runs the unfinished data steps of `m`, batch by batch, each batch committed with its
    /// progress under the lock.
    async fn run_data_steps(&self, m: &Migration) -> Result<(), MigrateError> {
        for name in m.data_steps()? {
            let step = self.find_step(&m.name, &name)?;
            let mut progress: Option<Progress> = None;
            loop {
                let mut tx = self.db.begin().await?;
                lock(&mut tx, self.db.backend(), self.db.dialect(), &m.name, &name).await?;
                let Some((cursor, processed, done)) = read_progress(&mut tx, self.db.dialect(), &m.name, &name).await?
                else {
                    break;
                };
                if done {
                    tx.rollback().await?;
                    break;
                }
                if progress.is_none() {
                    let total = match step.total {
                        Some(count) => Some(count(&mut tx).await?),
                        None => None,
                    };
                    progress = Some(Progress::new(&m.name, &name, processed, total, self.progress));
                }
                let batch = (step.batch)(&mut tx, cursor).await?;
                write_progress(&mut tx, self.db.dialect(), &m.name, &name, &batch, processed).await?;
                tx.commit().await?;
                if let Some(p) = progress.as_mut() {
                    p.advance(batch.processed);
                }
                if batch.next.is_none() {
                    break;
                }
            }
            if let Some(p) = progress {
                p.finish();
            }
        }
        Ok(())
    }
}

/// Commits `session` when `result` says there is something to keep, rolls it back otherwise.
async fn finish(session: Session, result: Result<bool, MigrateError>) -> Result<bool, MigrateError> {
    match result {
        Ok(true) => session.commit().await.map(|()| true),
        other => {
            session.rollback().await?;
            other
        }
    }
}

/// Runs the statements of one migration file inside `tx`.
async fn run_statements(e: &mut SessionExec<'_>, m: &Migration, sql: &str) -> Result<(), MigrateError> {
    for (i, statement) in split::statements(sql).into_iter().enumerate() {
        if let Err(source) = exec::execute_raw(e, "migrate", None, &statement).await {
            let short: String = statement.chars().take(200).collect();
            return Err(MigrateError::Statement {
                name: m.name.clone(),
                index: i + 1,
                statement: short,
                source: Box::new(source),
            });
        }
    }
    Ok(())
}

fn check_sum(m: &Migration, a: &Applied) -> Result<(), MigrateError> {
    if m.checksum == a.checksum {
        return Ok(());
    }
    Err(MigrateError::Edited { name: m.name.clone(), applied: a.checksum.clone(), on_disk: m.checksum.clone() })
}
