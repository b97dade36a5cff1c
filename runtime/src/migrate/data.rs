//! Data migrations: Rust steps, registered by name, that a migration lists in its
//! `data.json` and the runner runs after the migration's SQL.
//!
//! A step works in batches: each call gets a transaction and the cursor the previous batch
//! returned (`None` the first time), does one bounded piece of work, and returns how many
//! rows it handled and the next cursor (`None` when finished). Each batch commits together
//! with the step's progress in the bookkeeping table `_polystore_data_progress`, so an
//! interrupted run resumes after the last committed batch, and a batch is never applied
//! twice. With the `cli` feature, progress shows as an indicatif bar.
//!
//! ```no_run
//! use polystore::migrate::{Batch, DataStep};
//! use polystore::model::BoxFuture;
//! use polystore::{Tx, raw};
//! # #[derive(polystore::Model)] #[model(table = "users")] struct User { #[model(primary_key)] id: i64 }
//!
//! /// Copies `name` into the new `display_name` column, 500 rows at a time, in key order.
//! fn backfill<'a>(tx: &'a mut Tx<'static>, cursor: Option<String>) -> BoxFuture<'a, polystore::Result<Batch>> {
//!     Box::pin(async move {
//!         let after: i64 = cursor.map_or(0, |c| c.parse().unwrap_or(0));
//!         let ids: Vec<User> = raw::<User>("SELECT id FROM users WHERE id > $1 ORDER BY id LIMIT 500")
//!             .bind(after)
//!             .all(&mut *tx)
//!             .await?;
//!         let Some(last) = ids.last().map(|u| u.id) else { return Ok(Batch::done(0)) };
//!         raw::<User>("UPDATE users SET display_name = name WHERE id > $1 AND id <= $2")
//!             .bind(after)
//!             .bind(last)
//!             .execute(&mut *tx)
//!             .await?;
//!         Ok(Batch::more(ids.len() as u64, last.to_string()))
//!     })
//! }
//!
//! polystore::register_data_step!(DataStep::new("backfill_display_name", backfill));
//! ```

use crate::db::Tx;
use crate::model::BoxFuture;

/// One batch of a data step: `(transaction, cursor) -> what was done`.
pub type BatchFn = for<'a> fn(&'a mut Tx<'static>, Option<String>) -> BoxFuture<'a, crate::Result<Batch>>;

/// How many rows a step will handle in all (for the progress bar), counted before it starts.
pub type TotalFn = for<'a> fn(&'a mut Tx<'static>) -> BoxFuture<'a, crate::Result<u64>>;

/// A named data-migration step.
#[derive(Debug, Clone, Copy)]
pub struct DataStep {
    /// The name a migration's `data.json` refers to it by. Unique in the program.
    pub name: &'static str,
    /// Runs one batch.
    pub batch: BatchFn,
    /// Counts the work up front, for a progress bar with an end; optional.
    pub total: Option<TotalFn>,
}

impl DataStep {
    /// A step named `name` running `batch`.
    pub const fn new(name: &'static str, batch: BatchFn) -> DataStep {
        DataStep { name, batch, total: None }
    }

    /// The same step, with a function counting its work for the progress bar.
    pub const fn with_total(self, total: TotalFn) -> DataStep {
        DataStep { total: Some(total), ..self }
    }
}

/// What one batch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Rows (or items) handled by this batch.
    pub processed: u64,
    /// Where the next batch starts; `None` when the step is finished.
    pub next: Option<String>,
}

impl Batch {
    /// More to do: the next batch gets `cursor`.
    pub fn more(processed: u64, cursor: impl Into<String>) -> Batch {
        Batch { processed, next: Some(cursor.into()) }
    }

    /// The step is finished.
    pub fn done(processed: u64) -> Batch {
        Batch { processed, next: None }
    }
}

inventory::collect!(DataStep);

/// Registers a [`DataStep`] so every [`Migrator`](super::Migrator) (and the CLI) in the
/// program finds it by name: `polystore::register_data_step!(DataStep::new("name", f));`.
#[macro_export]
macro_rules! register_data_step {
    ($step:expr $(,)?) => {
        $crate::__private::inventory::submit! { $step }
    };
}

/// Every step registered with [`register_data_step!`](crate::register_data_step).
pub fn registered() -> impl Iterator<Item = &'static DataStep> {
    inventory::iter::<DataStep>.into_iter()
}

/// Shows a step's progress: an indicatif bar with the `cli` feature, `tracing` otherwise.
pub(crate) struct Progress {
    #[cfg(feature = "cli")]
    bar: Option<indicatif::ProgressBar>,
    name: String,
    done: u64,
}

impl Progress {
    /// Progress of `step` of `migration`, starting at `done` rows, out of `total` if known.
    pub(crate) fn new(migration: &str, step: &str, done: u64, total: Option<u64>, visible: bool) -> Progress {
        let name = format!("{migration}/{step}");
        #[cfg(feature = "cli")]
        let bar = visible.then(|| {
            let bar = match total {
                Some(t) => indicatif::ProgressBar::new(t.max(done)),
                None => indicatif::ProgressBar::new_spinner(),
            };
            let template =
                if total.is_some() { "{msg} [{bar:40}] {pos}/{len} ({eta})" } else { "{spinner} {msg}: {pos} rows" };
            if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(name.clone());
            bar.set_position(done);
            bar
        });
        #[cfg(not(feature = "cli"))]
        let _ = (total, visible);
        Progress {
            #[cfg(feature = "cli")]
            bar,
            name,
            done,
        }
    }

    /// A batch handled `n` more rows.
    pub(crate) fn advance(&mut self, n: u64) {
        self.done += n;
        #[cfg(feature = "cli")]
        if let Some(bar) = &self.bar {
            bar.set_position(self.done);
        }
        tracing::debug!(step = %self.name, rows = self.done, "data step batch committed");
    }

    /// The step finished.
    pub(crate) fn finish(self) {
        #[cfg(feature = "cli")]
        if let Some(bar) = &self.bar {
            bar.finish();
        }
        tracing::info!(step = %self.name, rows = self.done, "data step finished");
    }
}
