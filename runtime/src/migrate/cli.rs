//! The migration command line (feature `cli`). A project adds `src/bin/migrate.rs`:
//!
//! ```no_run
//! // src/bin/migrate.rs — links the project's models, so the registry sees them.
//! use my_app as _;
//! # mod my_app {}
//!
//! fn main() -> std::process::ExitCode {
//!     polystore::migrate::cli::run()
//! }
//! ```
//!
//! and runs `cargo run --bin migrate -- generate add_nickname`, `… up`, `… down 1`,
//! `… redo`, `… status`, `… check`, and `… docs --out SCHEMA.md` (Markdown documentation of
//! the models, see [`crate::schema::docs`]; no database needed). The database comes from `--database-url` or
//! `migrate partitions [--expire]` creates the partitions of partitioned models ahead of time
//! and applies their retention (see [`crate::partition`]). The database comes from `--database-url` or
//! `DATABASE_URL` (`postgres://…`, `sqlite:…`, or — with the `mongodb` feature —
//! `mongodb://host/database`, which runs the migrations' `mongo.json` side), the directory from
//! `--dir` (default `migrations`). `advise` (PostgreSQL) suggests indexes for a workload — a
//! file of statements (`--statements`) or `pg_stat_statements` — weighed with HypoPG, as
//! model attributes and migration statements (see [`crate::observe::advise_indexes`]). `check` exits with 1 when the database has drifted from the
//! latest snapshot or the models have changes no migration holds yet, so CI can run it.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[cfg(any(feature = "postgres", feature = "sqlite"))]
use crate::db::Db;
use crate::schema::ModelSchema;

#[cfg(any(feature = "postgres", feature = "sqlite"))]
use super::diff::diff;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
use super::runner::Migrator;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
use super::snapshot::Snapshot;
use super::status::MigrationStatus;
use super::{MigrateError, MigrationDir};

/// `migrate` — generate and apply polystore migrations.
#[derive(Debug, Parser)]
#[command(name = "migrate", about = "Generate and apply polystore migrations", version)]
pub struct Cli {
    /// Database URL (postgres://…, sqlite:…, mongodb://host/db); defaults to $DATABASE_URL.
    #[arg(long, global = true)]
    pub database_url: Option<String>,
    /// The migrations directory.
    #[arg(long, global = true, default_value = "migrations")]
    pub dir: PathBuf,
    /// Allow migrations with destructive steps (dropping tables or columns, narrowing types).
    #[arg(long, global = true)]
    pub allow_destructive: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Diff the models against the latest snapshot and write a migration (if anything changed).
    Generate {
        /// The migration's name (`add_nickname`).
        name: String,
        /// For required fields added to existing tables: add the column nullable, leave an
        /// UPDATE to fill in (replace POLYSTORE_BACKFILL_VALUE in up.*.sql), then SET NOT NULL.
        #[arg(long)]
        backfill: bool,
    },
    /// Apply pending migrations (all, or up to and including --to).
    Up {
        /// The last migration to apply.
        #[arg(long)]
        to: Option<String>,
    },
    /// Revert the last N applied migrations.
    Down {
        /// How many.
        #[arg(default_value_t = 1)]
        n: usize,
    },
    /// Revert the last applied migration and apply it again.
    Redo,
    /// List migrations and whether they are applied.
    Status,
    /// Compare the database with the latest snapshot, and the models with it; exit 1 on any
    /// difference.
    Check,
    /// Write Markdown documentation of every registered model (fields, stored types, keys,
    /// indexes, rules, relations, cache policy, and a Mermaid ER diagram); needs no database.
    Docs {
        /// The file to write; standard output when absent.
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Partition maintenance (PostgreSQL): create the partitions the partitioned models need now
    /// (range partitions for the current period and `ahead` more, missing list and hash
    /// partitions); with --expire, also detach and drop (or move to the `archive` schema) the
    /// partitions older than each model's `retain` bound. Run it on a schedule.
    Partitions {
        /// Also apply retention.
        #[arg(long)]
        expire: bool,
    },
    /// Suggest indexes (PostgreSQL): plan the workload's statements, find filters and sorts read
    /// with sequential scans, weigh an index for each with HypoPG, and print the model
    /// attribute and migration statement of each that lowers the estimated cost.
    Advise {
        /// A file with the workload: SQL, one statement per line, or a JSON `ScopeReport`.
        /// Without it, the top statements of `pg_stat_statements`.
        #[arg(long)]
        statements: Option<PathBuf>,
        /// How many `pg_stat_statements` entries to read (by total time).
        #[arg(long, default_value_t = 50)]
        top: usize,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Parses the process arguments and runs the command against the models registered in this
/// program. Prints to stdout / stderr and returns the exit code.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let schemas: Vec<&'static ModelSchema> = crate::schema::registered().collect();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout();
    match runtime.block_on(execute(cli, &schemas, &mut stdout)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one parsed command with `schemas` as the models, writing its report to `out`.
/// Returns `Ok(false)` when the command ran but found a problem (`check` with differences).
pub async fn execute(cli: Cli, schemas: &[&'static ModelSchema], out: &mut dyn Write) -> Result<bool, MigrateError> {
    if let Command::Docs { out: file } = &cli.command {
        let page = crate::schema::docs::markdown(schemas);
        match file {
            None => {
                let _ = out.write_all(page.as_bytes());
            }
            Some(path) => {
                std::fs::write(path, page)
                    .map_err(|e| MigrateError::Io { path: path.clone(), message: e.to_string() })?;
                say(out, &format!("wrote {}", path.display()));
            }
        }
        return Ok(true);
    }
    let dir = MigrationDir::new(&cli.dir);
    if let Command::Generate { name, backfill } = &cli.command {
        let generated =
            if *backfill { dir.generate_with_backfill(name, schemas)? } else { dir.generate(name, schemas)? };
        match generated {
            None => say(out, "no changes: the models match the latest snapshot"),
            Some(g) => {
                say(out, &format!("wrote {}", g.dir.display()));
                for step in &g.steps {
                    let mark = if step.is_destructive() { "  DESTRUCTIVE " } else { "  " };
                    say(out, &format!("{mark}{}", step.describe()));
                }
            }
        }
        return Ok(true);
    }
    let url = match cli.database_url.clone().or_else(|| std::env::var("DATABASE_URL").ok()) {
        Some(url) if !url.trim().is_empty() => url,
        _ => return Err(MigrateError::Invalid("no database: pass --database-url or set DATABASE_URL".into())),
    };
    #[cfg(feature = "mongodb")]
    if url.starts_with("mongodb://") || url.starts_with("mongodb+srv://") {
        if matches!(cli.command, Command::Advise { .. }) {
            return Err(MigrateError::Invalid(
                "`advise` plans SQL on PostgreSQL; for MongoDB call polystore::observe::explain_find, which \
                 flags collection scans"
                    .into(),
            ));
        }
        return mongo_command(&cli, &url, out).await;
    }
    #[cfg(feature = "postgres")]
    if let Command::Advise { statements, top, json } = &cli.command {
        return advise(&url, statements.as_deref(), *top, *json, schemas, out).await;
    }
    #[cfg(any(feature = "postgres", feature = "sqlite"))]
    {
        let db = Db::connect(&url).await?;
        if let Command::Partitions { expire } = &cli.command {
            let result = partitions(&db, *expire, schemas, out).await;
            db.close().await;
            return result;
        }
        let migrator = Migrator::new(&db, &cli.dir).allow_destructive(cli.allow_destructive).progress(true);
        let ok = command(&cli.command, &migrator, &dir, schemas, out).await;
        db.close().await;
        ok
    }
    #[cfg(not(any(feature = "postgres", feature = "sqlite")))]
    {
        let _ = (dir, schemas);
        let scheme = url.split(':').next().unwrap_or_default();
        Err(MigrateError::Invalid(format!(
            "no store of this build runs {scheme:?} URLs: enable polystore's postgres, sqlite or mongodb feature"
        )))
    }
}

#[cfg(any(feature = "postgres", feature = "sqlite"))]
async fn command(
    command: &Command,
    migrator: &Migrator,
    dir: &MigrationDir,
    schemas: &[&'static ModelSchema],
    out: &mut dyn Write,
) -> Result<bool, MigrateError> {
    match command {
        Command::Generate { .. } | Command::Docs { .. } | Command::Partitions { .. } => Ok(true),
        Command::Advise { .. } => Err(MigrateError::Invalid(
            "`advise` needs PostgreSQL (it plans statements there and weighs indexes with HypoPG)".into(),
        )),
        Command::Up { to } => {
            let applied = migrator.up(to.as_deref()).await?;
            report(out, "applied", &applied);
            Ok(true)
        }
        Command::Down { n } => {
            let reverted = migrator.down(*n).await?;
            report(out, "reverted", &reverted);
            Ok(true)
        }
        Command::Redo => {
            match migrator.redo().await? {
                Some(name) => say(out, &format!("redone: {name}")),
                None => say(out, "nothing to redo: no migration is applied"),
            }
            Ok(true)
        }
        Command::Status => {
            status(out, &migrator.status().await?, dir.path());
            Ok(true)
        }
        Command::Check => check(migrator, dir, schemas, out).await,
    }
}

/// `partitions [--expire]`: [`Db::ensure_partitions`], then [`Db::expire_partitions`].
#[cfg(any(feature = "postgres", feature = "sqlite"))]
async fn partitions(
    db: &Db,
    expire: bool,
    schemas: &[&'static ModelSchema],
    out: &mut dyn Write,
) -> Result<bool, MigrateError> {
    let partitioned: Vec<&'static ModelSchema> = schemas.iter().copied().filter(|s| s.partition.is_some()).collect();
    if partitioned.is_empty() {
        say(out, "no partitioned models");
        return Ok(true);
    }
    if db.backend() != crate::db::Backend::Postgres {
        say(out, "nothing to do: partitioned models are plain tables on SQLite");
        return Ok(true);
    }
    let created = db.ensure_partitions(&partitioned).await.map_err(MigrateError::from)?;
    if created.is_empty() {
        say(out, "partitions: all present");
    }
    for name in &created {
        say(out, &format!("created partition: {name}"));
    }
    if expire {
        for e in db.expire_partitions(&partitioned).await.map_err(MigrateError::from)? {
            match &e.archived_as {
                Some(to) => say(out, &format!("archived partition: {} (now {to})", e.partition)),
                None => say(out, &format!("dropped partition: {}", e.partition)),
            }
        }
    }
    Ok(true)
}

#[cfg(any(feature = "postgres", feature = "sqlite"))]
async fn check(
    migrator: &Migrator,
    dir: &MigrationDir,
    schemas: &[&'static ModelSchema],
    out: &mut dyn Write,
) -> Result<bool, MigrateError> {
    let drift = migrator.check().await?;
    let pending: Vec<String> =
        migrator.status().await?.into_iter().filter(|l| l.status == MigrationStatus::Pending).map(|l| l.name).collect();
    let models = diff(&dir.latest_snapshot()?, &Snapshot::from_schemas(schemas)?)?;
    for d in &drift {
        say(out, &format!("drift: {d}"));
    }
    if !pending.is_empty() {
        say(out, &format!("pending migrations (run `up`): {}", pending.join(", ")));
    }
    for step in &models {
        say(out, &format!("not in any migration (run `generate`): {}", step.describe()));
    }
    let clean = drift.is_empty() && models.is_empty();
    if clean {
        say(out, "ok: the database matches the latest snapshot, and so do the models");
    }
    Ok(clean)
}

/// `advise`: the workload from a file or `pg_stat_statements`, the report to `out`.
#[cfg(feature = "postgres")]
async fn advise(
    url: &str,
    statements: Option<&std::path::Path>,
    top: usize,
    json: bool,
    schemas: &[&'static ModelSchema],
    out: &mut dyn Write,
) -> Result<bool, MigrateError> {
    use crate::observe::{Workload, advise_indexes};
    let db = Db::connect(url).await?;
    if db.pg_pool().is_none() {
        db.close().await;
        return Err(MigrateError::Invalid(
            "`advise` needs PostgreSQL (it plans statements there and weighs indexes with HypoPG)".into(),
        ));
    }
    let result = async {
        let workload = match statements {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| MigrateError::Io { path: path.to_owned(), message: e.to_string() })?;
                Workload::from_text(&text).map_err(|e| MigrateError::Invalid(format!("{}: {e}", path.display())))?
            }
            None => Workload::from_pg_stat_statements(&db, top).await?,
        };
        Ok::<_, MigrateError>(advise_indexes(&db, &workload, schemas).await?)
    }
    .await;
    db.close().await;
    let report = result?;
    if json {
        let text = serde_json::to_string_pretty(&report).map_err(|e| MigrateError::Invalid(e.to_string()))?;
        say(out, &text);
    } else {
        let _ = write!(out, "{report}");
    }
    Ok(true)
}

/// The database name in a MongoDB URL's path (`mongodb://host/app?…` → `app`).
#[cfg(feature = "mongodb")]
fn mongo_database(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let path = rest.split_once('/')?.1;
    let name = path.split('?').next().unwrap_or_default();
    (!name.is_empty()).then_some(name)
}

/// `up`, `down`, `redo`, `status` and `check` on MongoDB (`mongo.json`, collections, indexes,
/// validators).
#[cfg(feature = "mongodb")]
async fn mongo_command(cli: &Cli, url: &str, out: &mut dyn Write) -> Result<bool, MigrateError> {
    let database = mongo_database(url).ok_or_else(|| {
        MigrateError::Invalid("name the database in the MongoDB URL: mongodb://host:27017/app".into())
    })?;
    let store = crate::mongo::MongoStore::connect(url, database).await?;
    let migrator = super::MongoMigrator::new(&store, &cli.dir).allow_destructive(cli.allow_destructive);
    match &cli.command {
        Command::Generate { .. } | Command::Docs { .. } | Command::Advise { .. } => {}
        Command::Partitions { .. } => say(
            out,
            "nothing to do on MongoDB: a partitioned model's retention is a TTL index, made with the collection's indexes",
        ),
        Command::Up { to } => report(out, "applied", &migrator.up(to.as_deref()).await?),
        Command::Down { n } => report(out, "reverted", &migrator.down(*n).await?),
        Command::Redo => match migrator.redo().await? {
            Some(name) => say(out, &format!("redone: {name}")),
            None => say(out, "nothing to redo: no migration is applied"),
        },
        Command::Status => status(out, &migrator.status().await?, &cli.dir),
        Command::Check => {
            let drift = migrator.check().await?;
            let pending: Vec<String> = migrator
                .status()
                .await?
                .into_iter()
                .filter(|l| l.status == MigrationStatus::Pending)
                .map(|l| l.name)
                .collect();
            for d in &drift {
                say(out, &format!("drift: {d}"));
            }
            if !pending.is_empty() {
                say(out, &format!("pending migrations (run `up`): {}", pending.join(", ")));
            }
            if drift.is_empty() {
                say(out, "ok: the database matches the latest snapshot");
            }
            return Ok(drift.is_empty());
        }
    }
    Ok(true)
}

/// One line per migration; with none, says so and how to create the first (instead of printing
/// nothing, which reads as "the command did not run").
fn status(out: &mut dyn Write, lines: &[super::status::StatusLine], dir: &std::path::Path) {
    if lines.is_empty() {
        let place = if dir.is_dir() { "no migrations in" } else { "no migrations folder at" };
        say(
            out,
            &format!(
                "{place} {}: create the first migration from your models with `migrate generate <name>` \
                 (pass --dir to use another folder)",
                dir.display()
            ),
        );
    }
    for line in lines {
        say(out, &format!("{:<12} {}", label(&line.status), line.name));
    }
}

fn label(status: &MigrationStatus) -> String {
    match status {
        MigrationStatus::Applied { at } => format!("applied {}", at.format("%Y-%m-%d %H:%M")),
        MigrationStatus::DataPending { step, processed, .. } => format!("data pending ({step}: {processed} rows done)"),
        MigrationStatus::Pending => "pending".to_owned(),
        MigrationStatus::Edited => "EDITED".to_owned(),
        MigrationStatus::MissingOnDisk => "MISSING".to_owned(),
    }
}

fn report(out: &mut dyn Write, what: &str, names: &[String]) {
    if names.is_empty() {
        say(out, &format!("nothing {what}"));
    }
    for name in names {
        say(out, &format!("{what}: {name}"));
    }
}

fn say(out: &mut dyn Write, line: &str) {
    let _ = writeln!(out, "{line}");
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{Cli, Command};

    #[cfg(feature = "mongodb")]
    #[test]
    fn the_mongodb_database_comes_from_the_url_path() {
        assert_eq!(super::mongo_database("mongodb://127.0.0.1:27017/app?directConnection=true"), Some("app"));
        assert_eq!(super::mongo_database("mongodb://127.0.0.1:27017/?directConnection=true"), None);
        assert_eq!(super::mongo_database("mongodb://127.0.0.1:27017"), None);
    }

    mod models {
        #[derive(crate::Model, Debug, Clone)]
        #[model(table = "cli_notes")]
        pub struct Note {
            #[model(primary_key, generated)]
            pub id: i64,
            pub body: String,
        }
    }

    /// Runs the CLI on `args` with the `Note` model; returns (success, output).
    async fn cli(args: &[&str]) -> (bool, String) {
        let mut out = Vec::new();
        let schemas = [<models::Note as crate::Model>::SCHEMA];
        let ok = super::execute(Cli::parse_from(args), &schemas, &mut out).await.expect("the command runs");
        (ok, String::from_utf8(out).expect("utf-8"))
    }

    #[tokio::test]
    async fn generate_up_status_check_down_on_a_sqlite_file() {
        let dir = std::env::temp_dir().join(format!(
            "polystore_cli_{}_{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let d = dir.join("migrations").display().to_string();
        let url = format!("sqlite://{}", dir.join("app.db").display());
        let base = ["migrate", "--dir", &d, "--database-url", &url];
        let run = |cmd: &'static [&'static str]| {
            let args: Vec<&str> = base.iter().copied().chain(cmd.iter().copied()).collect();
            async move { cli(&args).await }
        };
        let (ok, out) = run(&["status"]).await;
        assert!(ok && out.starts_with("no migrations folder at") && out.contains("migrate generate"), "{out}");
        let (ok, out) = run(&["generate", "create notes"]).await;
        assert!(ok && out.contains("0001_create_notes") && out.contains(r#"create table "cli_notes""#), "{out}");
        assert!(run(&["generate", "again"]).await.1.contains("no changes"));
        let (ok, out) = run(&["check"]).await;
        assert!(!ok && out.contains("pending migrations (run `up`): 0001_create_notes"), "{out}");
        assert!(run(&["up"]).await.1.contains("applied: 0001_create_notes"));
        assert!(run(&["status"]).await.1.starts_with("applied"));
        let (ok, out) = run(&["check"]).await;
        assert!(ok && out.starts_with("ok:"), "{out}");
        let (ok, out) = run(&["--allow-destructive", "down"]).await;
        assert!(ok && out.contains("reverted: 0001_create_notes"), "{out}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn docs_prints_the_schema_page_or_writes_it_to_a_file_without_a_database() {
        let schemas = [<models::Note as crate::Model>::SCHEMA];
        let expected = crate::schema::docs::markdown(&schemas);
        assert!(expected.contains("| `body` | `String` | `TEXT` | `TEXT` | `string` |"), "{expected}");
        let (ok, printed) = cli(&["migrate", "docs"]).await;
        assert!(ok);
        assert_eq!(printed, expected);
        let file = std::env::temp_dir().join(format!("polystore_cli_docs_{}.md", std::process::id()));
        let path = file.display().to_string();
        let (ok, said) = cli(&["migrate", "docs", "--out", &path]).await;
        assert!(ok);
        assert_eq!(said, format!("wrote {path}\n"));
        assert_eq!(std::fs::read_to_string(&file).unwrap(), expected);
        std::fs::remove_file(&file).unwrap();
    }

    #[test]
    fn parses_every_subcommand_with_defaults() {
        let cli = Cli::parse_from(["migrate", "down"]);
        assert!(matches!(cli.command, Command::Down { n: 1 }));
        assert_eq!(cli.dir, std::path::PathBuf::from("migrations"));
        let cli = Cli::parse_from(["migrate", "--dir", "db/m", "up", "--to", "0002_x", "--allow-destructive"]);
        assert!(matches!(cli.command, Command::Up { to: Some(ref t) } if t == "0002_x"));
        assert!(cli.allow_destructive);
        assert!(matches!(
            Cli::parse_from(["migrate", "generate", "add_x"]).command,
            Command::Generate { backfill: false, .. }
        ));
        assert!(matches!(
            Cli::parse_from(["migrate", "generate", "add_x", "--backfill"]).command,
            Command::Generate { backfill: true, .. }
        ));
        assert!(matches!(Cli::parse_from(["migrate", "docs"]).command, Command::Docs { out: None }));
        assert!(matches!(
            Cli::parse_from(["migrate", "docs", "--out", "SCHEMA.md"]).command,
            Command::Docs { out: Some(ref p) } if p == std::path::Path::new("SCHEMA.md")
        ));
        for cmd in ["redo", "status", "check"] {
            Cli::parse_from(["migrate", cmd]);
        }
    }
}
