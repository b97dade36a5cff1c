//! The migrations directory: ordered `NNNN_name/` folders, each holding
//!
//! | file | what |
//! |---|---|
//! | `up.postgres.sql`, `down.postgres.sql` | PostgreSQL, both directions |
//! | `up.sqlite.sql`, `down.sqlite.sql` | SQLite, both directions |
//! | `mongo.json` (with the `mongodb` feature) | MongoDB commands, both directions |
//! | `data.json` (optional) | names of [data steps](super::data) run after the SQL: `["backfill_x"]` |
//! | `snapshot.json` | the whole schema after this migration: what the next `generate` diffs against |
//!
//! A migration's checksum covers every file but `snapshot.json` (line endings normalised), so
//! an applied migration that was edited afterwards is detected.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::schema::ModelSchema;

use super::MigrateError;
use super::diff::{Step, diff, reverse};
use super::render::{dialects, render, sql_file};
use super::snapshot::Snapshot;

/// The file holding the schema after a migration.
pub const SNAPSHOT_FILE: &str = "snapshot.json";
/// The file naming a migration's data steps.
pub const DATA_FILE: &str = "data.json";

/// A migrations directory.
#[derive(Debug, Clone)]
pub struct MigrationDir {
    root: PathBuf,
}

/// One migration read from disk.
#[derive(Debug, Clone)]
pub struct Migration {
    /// The folder name, `0002_add_nickname`: the migration's identity in the bookkeeping.
    pub name: String,
    /// Its folder.
    pub dir: PathBuf,
    /// SHA-256 (hex) of its files, `snapshot.json` excepted.
    pub checksum: String,
    files: BTreeMap<String, String>,
}

/// What [`MigrationDir::generate`] wrote.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The new migration's name (`0003_rename_title`).
    pub name: String,
    /// Its folder.
    pub dir: PathBuf,
    /// The steps it holds, in order.
    pub steps: Vec<Step>,
}

impl Generated {
    /// How many of its steps destroy data.
    pub fn destructive(&self) -> usize {
        self.steps.iter().filter(|s| s.is_destructive()).count()
    }
}

impl Migration {
    /// The SQL of one direction (`up` / `down`) for a dialect tag (`postgres`, `sqlite`).
    pub fn sql(&self, direction: &str, dialect: &str) -> Option<&str> {
        self.files.get(&format!("{direction}.{dialect}.sql")).map(String::as_str)
    }

    /// The schema after this migration.
    pub fn snapshot(&self) -> Result<Snapshot, MigrateError> {
        let json = self
            .files
            .get(SNAPSHOT_FILE)
            .ok_or_else(|| MigrateError::Invalid(format!("migration {} has no {SNAPSHOT_FILE}", self.name)))?;
        Snapshot::from_json(json)
    }

    /// Its MongoDB commands (`mongo.json`), if it has any.
    #[cfg(feature = "mongodb")]
    pub fn mongo(&self) -> Result<Option<super::mongo::MongoPlan>, MigrateError> {
        let Some(json) = self.files.get(super::mongo::MONGO_FILE) else { return Ok(None) };
        serde_json::from_str(json)
            .map(Some)
            .map_err(|e| MigrateError::Invalid(format!("{}/{}: {e}", self.name, super::mongo::MONGO_FILE)))
    }

    /// The names of its data steps, in order.
    pub fn data_steps(&self) -> Result<Vec<String>, MigrateError> {
        match self.files.get(DATA_FILE) {
            None => Ok(Vec::new()),
            Some(json) => serde_json::from_str(json).map_err(|e| {
                MigrateError::Invalid(format!("{}/{DATA_FILE}: expected a list of names: {e}", self.name))
            }),
        }
    }
}

impl MigrationDir {
    /// The directory at `root` (it need not exist yet).
    pub fn new(root: impl Into<PathBuf>) -> MigrationDir {
        MigrationDir { root: root.into() }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Every migration, in order. A missing directory has none.
    pub fn migrations(&self) -> Result<Vec<Migration>, MigrateError> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&self.root, e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io(&self.root, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.path().is_dir() && number_of(&name).is_some() {
                out.push(read_migration(&entry.path(), name)?);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        if let Some(w) = out.windows(2).find(|w| number_of(&w[0].name) == number_of(&w[1].name)) {
            return Err(MigrateError::Invalid(format!(
                "migrations {} and {} have the same number (two branches each added one: renumber one and regenerate its snapshot)",
                w[0].name, w[1].name
            )));
        }
        Ok(out)
    }

    /// The schema after the last migration (empty when there is none).
    pub fn latest_snapshot(&self) -> Result<Snapshot, MigrateError> {
        match self.migrations()?.last() {
            Some(m) => m.snapshot(),
            None => Ok(Snapshot::empty()),
        }
    }

    /// Diffs `schemas` against the last snapshot and, when anything changed, writes migration
    /// `NNNN_{name}` with SQL up and down for every dialect and the new snapshot. Returns `None`
    /// (writing nothing) when the models match the last snapshot.
    ///
    /// A required field added to an existing table (NOT NULL, no default) is refused with an
    /// error naming it: existing rows would have no value. Give it a default, or use
    /// [`MigrationDir::generate_with_backfill`].
    pub fn generate(&self, name: &str, schemas: &[&'static ModelSchema]) -> Result<Option<Generated>, MigrateError> {
        self.generate_with(name, schemas, false)
    }

    /// [`MigrationDir::generate`], writing a backfill template for each required field added
    /// to an existing table: the column is added nullable, then an `UPDATE` sets it where it
    /// is NULL to [`BACKFILL_PLACEHOLDER`](super::backfill::BACKFILL_PLACEHOLDER) — which you
    /// replace with the value existing rows get, in each `up.*.sql` — and then it is made
    /// NOT NULL. The runner refuses the migration while a placeholder is left.
    pub fn generate_with_backfill(
        &self,
        name: &str,
        schemas: &[&'static ModelSchema],
    ) -> Result<Option<Generated>, MigrateError> {
        self.generate_with(name, schemas, true)
    }

    fn generate_with(
        &self,
        name: &str,
        schemas: &[&'static ModelSchema],
        backfill: bool,
    ) -> Result<Option<Generated>, MigrateError> {
        let slug = slug(name)?;
        let existing = self.migrations()?;
        let before = match existing.last() {
            Some(m) => m.snapshot()?,
            None => Snapshot::empty(),
        };
        let after = Snapshot::from_schemas(schemas)?;
        let steps = diff(&before, &after)?;
        // A change with no step can still change MongoDB indexes (a partition's `retain` maps
        // to a TTL index): such a migration has empty SQL files and the MongoDB commands.
        #[cfg(feature = "mongodb")]
        let mongo = super::mongo::MongoPlan::new(&steps, &before, &after)?;
        #[cfg(feature = "mongodb")]
        let nothing_to_do = steps.is_empty() && mongo.up.is_empty() && mongo.down.is_empty();
        #[cfg(not(feature = "mongodb"))]
        let nothing_to_do = steps.is_empty();
        if nothing_to_do {
            return Ok(None);
        }
        let required = super::backfill::required_columns(&steps, &after);
        if !required.is_empty() && !backfill {
            return Err(super::backfill::refusal(&required));
        }
        let number = existing.last().and_then(|m| number_of(&m.name)).map_or(1, |n| n + 1);
        let full = format!("{number:04}_{slug}");
        let inverse = reverse(&steps);
        // Everything is rendered before anything is written: a failure leaves no folder behind.
        let mut files: Vec<(String, String)> = Vec::new();
        for (tag, dialect) in dialects() {
            let header = |direction: &str| {
                vec![
                    format!("-- {full}: {direction} ({tag})"),
                    "-- Generated by polystore from the models; review it, edit it if needed, then apply it."
                        .to_owned(),
                    "-- Runs in one transaction. Steps marked DESTRUCTIVE need --allow-destructive.".to_owned(),
                ]
            };
            let up = if required.is_empty() {
                render(dialect, &steps, &before, &after, false)?
            } else {
                super::backfill::render_up(dialect, &before, &after, &required)?
            };
            let down = render(dialect, &inverse, &after, &before, true)?;
            files.push((format!("up.{tag}.sql"), sql_file(&header("up"), &up)));
            files.push((format!("down.{tag}.sql"), sql_file(&header("down"), &down)));
        }
        #[cfg(feature = "mongodb")]
        files.push((super::mongo::MONGO_FILE.to_owned(), mongo.to_json()));
        files.push((SNAPSHOT_FILE.to_owned(), after.to_json()));
        let dir = self.root.join(&full);
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        for (name, text) in &files {
            write(&dir.join(name), text)?;
        }
        Ok(Some(Generated { name: full, dir, steps }))
    }
}

/// The number of a migration folder (`0012_x` → 12).
fn number_of(name: &str) -> Option<u32> {
    let (digits, rest) = name.split_once('_')?;
    (digits.len() >= 4 && !rest.is_empty()).then(|| digits.parse().ok()).flatten()
}

/// A migration name as a folder suffix: lowercase ASCII letters, digits and `_`.
fn slug(name: &str) -> Result<String, MigrateError> {
    let s: String =
        name.trim().chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
    let s = s.trim_matches('_').to_owned();
    if s.is_empty() {
        return Err(MigrateError::Invalid(format!("{name:?} is not usable as a migration name")));
    }
    Ok(s)
}

fn read_migration(dir: &Path, name: String) -> Result<Migration, MigrateError> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
        let entry = entry.map_err(|e| io(dir, e))?;
        let file = entry.file_name().to_string_lossy().into_owned();
        if entry.path().is_file() && !file.starts_with('.') {
            let text = std::fs::read_to_string(entry.path()).map_err(|e| io(&entry.path(), e))?;
            files.insert(file, text.replace("\r\n", "\n"));
        }
    }
    let checksum = checksum(&files);
    Ok(Migration { name, dir: dir.to_owned(), checksum, files })
}

/// SHA-256 over every file's name and contents (sorted by name), `snapshot.json` excepted.
fn checksum(files: &BTreeMap<String, String>) -> String {
    let mut hash = Sha256::new();
    for (name, text) in files.iter().filter(|(n, _)| n.as_str() != SNAPSHOT_FILE) {
        hash.update(name.as_bytes());
        hash.update([0]);
        hash.update(text.as_bytes());
        hash.update([0]);
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn write(path: &Path, text: &str) -> Result<(), MigrateError> {
    std::fs::write(path, text).map_err(|e| io(path, e))
}

fn io(path: &Path, e: std::io::Error) -> MigrateError {
    MigrateError::Io { path: path.to_owned(), message: e.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migration_numbers_need_four_digits_and_a_name() {
        assert_eq!(number_of("0001_init"), Some(1));
        assert_eq!(number_of("0012_add_x"), Some(12));
        assert_eq!(number_of("1_x"), None);
        assert_eq!(number_of("0001_"), None);
        assert_eq!(number_of("notes"), None);
    }

    #[test]
    fn names_become_lowercase_slugs() {
        assert_eq!(slug("Add nickname!").unwrap(), "add_nickname");
        assert!(slug("  --  ").is_err());
    }

    #[test]
    fn the_checksum_covers_every_file_but_the_snapshot() {
        let mut a = BTreeMap::new();
        a.insert("up.sqlite.sql".to_owned(), "SELECT 1;\n".to_owned());
        let mut b = a.clone();
        b.insert(SNAPSHOT_FILE.to_owned(), "{}".to_owned());
        assert_eq!(checksum(&a), checksum(&b));
        b.insert("up.sqlite.sql".to_owned(), "SELECT 2;\n".to_owned());
        assert_ne!(checksum(&a), checksum(&b));
    }
}
