//! Migrations: diffs of the schema description, written down as reviewable files and applied
//! by a locked, checksummed runner.
//!
//! The pipeline, one module per stage:
//!
//! 1. [`snapshot`]: every model's [`ModelSchema`](crate::ModelSchema) → a [`Snapshot`] (stable
//!    JSON, stored with each migration);
//! 2. [`diff`]: last snapshot vs. the current models → ordered [`step`]s, each knowing its
//!    inverse and whether it destroys data;
//! 3. [`render`]: steps → SQL up and down per dialect (PostgreSQL alters in place, SQLite
//!    rebuilds tables where it cannot alter; `layout` writes the Citus calls of a change of
//!    layout);
//! 4. [`files`]: the migrations directory ([`MigrationDir::generate`] writes `NNNN_name/`);
//! 5. [`runner`]: the [`Migrator`] applies and reverts them (bookkeeping with checksums, a
//!    lock, one transaction per migration, consent for destructive steps) and checks the live
//!    catalog ([`catalog`]) against the snapshot;
//! 6. [`data`]: Rust data steps run in resumable batches;
//! 7. `mongo`, `mongo_runner` (feature `mongodb`): the same steps as MongoDB commands
//!    (`mongo.json`) and the `MongoMigrator` that applies them;
//! 8. `cli` (feature `cli`): the `generate` / `up` / `down` / `redo` / `status` / `check`
//!    command line a project's `src/bin/migrate.rs` calls.
//!
//! See `docs/migrations.md` for the guide.

pub mod backfill;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
mod bookkeeping;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub mod catalog;
#[cfg(feature = "cli")]
pub mod cli;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub mod data;
pub mod diff;
pub mod files;
mod layout;
#[cfg(feature = "mongodb")]
pub mod mongo;
#[cfg(feature = "mongodb")]
mod mongo_check;
#[cfg(feature = "mongodb")]
pub mod mongo_runner;
pub mod rebuild;
pub mod render;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub mod runner;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
mod session;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
mod shadow;
pub mod snapshot;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
mod split;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
mod sqlite_ddl;
pub mod status;
pub mod step;

use std::path::PathBuf;

#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub use catalog::Catalog;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub use data::{Batch, DataStep};
pub use diff::{diff, reverse};
pub use files::{Generated, Migration, MigrationDir};
#[cfg(feature = "mongodb")]
pub use mongo_runner::MongoMigrator;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub use runner::Migrator;
pub use snapshot::Snapshot;
pub use status::{Drift, MigrationStatus, StatusLine};
pub use step::Step;

/// Everything that can go wrong generating or running migrations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError {
    /// A database operation failed.
    #[error(transparent)]
    Db(Box<crate::Error>),

    /// A file of the migrations directory could not be read or written.
    #[error("{}: {message}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },

    /// A snapshot, a migration or the models are not usable (bad JSON, an ambiguous
    /// `renamed_from`, two models on one table, …).
    #[error("{0}")]
    Invalid(String),

    /// An applied migration's files changed after it was applied.
    #[error(
        "migration {name} was edited after it was applied (checksum {applied} in the database, {on_disk} on disk): \
         restore it, or add a new migration for the change"
    )]
    Edited {
        /// The migration.
        name: String,
        /// The checksum recorded when it was applied.
        applied: String,
        /// The checksum of the files now.
        on_disk: String,
    },

    /// The database records a migration that is not in the directory.
    #[error("migration {0} is applied in the database but missing from the migrations directory")]
    MissingOnDisk(String),

    /// A migration holds destructive steps and consent was not given.
    #[error(
        "migration {name} ({direction}) has destructive steps:\n{}\nre-run with --allow-destructive \
         (Migrator::allow_destructive(true)) once you have made sure the data may go",
        steps.iter().map(|s| format!("  {s}")).collect::<Vec<_>>().join("\n")
    )]
    Destructive {
        /// The migration.
        name: String,
        /// `up` or `down`.
        direction: &'static str,
        /// The destructive steps' comments.
        steps: Vec<String>,
    },

    /// A migration names a data step that is not registered.
    #[error("migration {migration} names data step {step:?}, which is not registered in this program")]
    UnknownDataStep {
        /// The migration.
        migration: String,
        /// The step's name.
        step: String,
    },

    /// A migration named in `up --to` / `down` does not exist.
    #[error("no migration named {0}")]
    UnknownMigration(String),

    /// A migration has no SQL for the database's dialect.
    #[error("migration {name} has no {file}")]
    MissingSql {
        /// The migration.
        name: String,
        /// The missing file.
        file: String,
    },

    /// A statement of a migration failed; the migration's transaction was rolled back.
    #[error("migration {name} failed at statement {index} ({statement}): {source}")]
    Statement {
        /// The migration.
        name: String,
        /// 1-based position of the statement in its file.
        index: usize,
        /// The statement (shortened).
        statement: String,
        /// The database's error.
        #[source]
        source: Box<crate::Error>,
    },
}

impl From<crate::Error> for MigrateError {
    fn from(e: crate::Error) -> Self {
        MigrateError::Db(Box::new(e))
    }
}
// The rendering tests compare both dialects' SQL.
#[cfg(all(test, feature = "postgres", feature = "sqlite"))]
mod tests;
#[cfg(all(test, feature = "postgres"))]
mod tests_schema;
