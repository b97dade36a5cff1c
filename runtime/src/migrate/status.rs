//! What the migration runners of every store report: where each migration stands, and how the
//! live database differs from what the migrations say.

use std::fmt;

use chrono::{DateTime, Utc};

/// Where a migration stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MigrationStatus {
    /// Applied, data steps (if any) finished.
    Applied {
        /// When its SQL was applied.
        at: DateTime<Utc>,
    },
    /// Its SQL is applied; a data step has not finished (the next `up` resumes it).
    DataPending {
        /// When its SQL was applied.
        at: DateTime<Utc>,
        /// The unfinished step.
        step: String,
        /// Rows that step has handled so far.
        processed: u64,
    },
    /// Not applied.
    Pending,
    /// Applied, but its files changed since.
    Edited,
    /// Applied, but not in the migrations directory.
    MissingOnDisk,
}

/// One line of [`Migrator::status`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusLine {
    /// The migration.
    pub name: String,
    /// Where it stands.
    pub status: MigrationStatus,
}

/// One difference between the live database and what the migrations say it should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    /// The table concerned.
    pub table: String,
    /// What differs, in words.
    pub message: String,
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.table, self.message)
    }
}
