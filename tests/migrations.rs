//! Migrations on real PostgreSQL and SQLite: generated from two versions of a set of models
//! (modules `v1`, `v2`, `v3` define the same tables differently), applied, reverted and
//! re-applied with identical catalogs, renames that keep data, concurrent runners, rollback
//! of a failing migration, drift checks, checksums, consent for destructive steps, and
//! resumable data steps. `schemas`: models in schemas (namespaces); `required_columns`:
//! required fields added to tables with rows.
//!
//! Snapshots are built from explicit schema lists, never from the global registry, so the
//! tests do not see each other's models.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use polystore::migrate::catalog::{self, Catalog};
use polystore::migrate::{Batch, DataStep, MigrateError, MigrationDir, MigrationStatus, Migrator, MongoMigrator, Step};
use polystore::model::BoxFuture;
use polystore::mongo::driver::bson::doc;
use polystore::prelude::*;
use polystore::{ModelSchema, raw};
use polystore_tests::{assert_err, execute_sql, query_i64, sql_test, unique_name};

#[path = "migrations/required_columns.rs"]
mod required_columns;
#[path = "migrations/schemas.rs"]
mod schemas;

/// The first version of the models.
pub mod v1 {
    use polystore::Rel;
    use polystore::prelude::*;

    #[derive(Model, Debug, Clone)]
    #[model(table = "mig_users")]
    pub struct User {
        #[model(primary_key, generated)]
        pub id: i64,
        #[model(unique)]
        pub email: String,
        pub name: String,
        pub age: i32,
        pub plan: String,
    }

    #[derive(Model, Debug, Clone)]
    #[model(table = "mig_posts")]
    pub struct Post {
        #[model(primary_key, generated)]
        pub id: i64,
        pub author_id: i64,
        pub title: String,
        #[model(belongs_to(key = author_id, on_delete = "cascade"))]
        pub author: Rel<User>,
    }
}

/// The second version: a column renamed (with `renamed_from`), a type widened, columns
/// added, a CHECK and an index added. Nothing destructive.
pub mod v2 {
    use polystore::Rel;
    use polystore::prelude::*;
    use validator::Validate;

    #[derive(Model, Validate, Debug, Clone)]
    #[model(table = "mig_users", index(age))]
    pub struct User {
        #[model(primary_key, generated)]
        pub id: i64,
        #[model(unique)]
        pub email: String,
        #[model(renamed_from = "name")]
        pub full_name: String,
        #[validate(range(min = 0, max = 150))]
        pub age: i64,
        pub plan: String,
        #[model(default = 0)]
        pub score: i32,
        pub nickname: Option<String>,
    }

    #[derive(Model, Debug, Clone)]
    #[model(table = "mig_posts")]
    pub struct Post {
        #[model(primary_key, generated)]
        pub id: i64,
        pub author_id: i64,
        pub title: String,
        #[model(belongs_to(key = author_id, on_delete = "cascade"))]
        pub author: Rel<User>,
    }
}

/// The third version: a column and a table dropped (destructive).
pub mod v3 {
    use polystore::prelude::*;
    use validator::Validate;

    #[derive(Model, Validate, Debug, Clone)]
    #[model(table = "mig_users", index(age))]
    pub struct User {
        #[model(primary_key, generated)]
        pub id: i64,
        #[model(unique)]
        pub email: String,
        #[model(renamed_from = "name")]
        pub full_name: String,
        #[validate(range(min = 0, max = 150))]
        pub age: i64,
        #[model(default = 0)]
        pub score: i32,
        pub nickname: Option<String>,
    }
}

/// `mig_users` renamed to `mig_members`, with a table that refers to it.
pub mod renamed {
    use polystore::Rel;
    use polystore::prelude::*;

    #[derive(Model, Debug, Clone)]
    #[model(table = "mig_members", renamed_from = "mig_users")]
    pub struct User {
        #[model(primary_key, generated)]
        pub id: i64,
        #[model(unique)]
        pub email: String,
        pub name: String,
        pub age: i32,
        pub plan: String,
    }

    #[derive(Model, Debug, Clone)]
    #[model(table = "mig_posts")]
    pub struct Post {
        #[model(primary_key, generated)]
        pub id: i64,
        pub author_id: i64,
        pub title: String,
        #[model(belongs_to(key = author_id, on_delete = "cascade"))]
        pub author: Rel<User>,
    }
}

/// One table in three versions of its retention bound (MongoDB maps `retain` to a TTL index).
pub mod retention {
    /// Partitioned by month, no retention.
    pub mod none {
        use chrono::{DateTime, Utc};
        use polystore::prelude::*;

        #[derive(Model, Debug, Clone)]
        #[model(table = "mig_events", primary_key(id, at), partition(range(at), every = "1 month"))]
        pub struct Event {
            pub id: i64,
            pub at: DateTime<Utc>,
        }
    }

    /// Kept three months: a TTL index of its own.
    pub mod three_months {
        use chrono::{DateTime, Utc};
        use polystore::prelude::*;

        #[derive(Model, Debug, Clone)]
        #[model(
            table = "mig_events",
            primary_key(id, at),
            partition(range(at), every = "1 month", retain = "3 months")
        )]
        pub struct Event {
            pub id: i64,
            pub at: DateTime<Utc>,
        }
    }

    /// Kept one month, with a declared index on the column that takes the TTL.
    pub mod one_month {
        use chrono::{DateTime, Utc};
        use polystore::prelude::*;

        #[derive(Model, Debug, Clone)]
        #[model(
            table = "mig_events",
            primary_key(id, at),
            index(at),
            partition(range(at), every = "1 month", retain = "1 month")
        )]
        pub struct Event {
            pub id: i64,
            pub at: DateTime<Utc>,
        }
    }
}

fn v1() -> Vec<&'static ModelSchema> {
    vec![v1::User::SCHEMA, v1::Post::SCHEMA]
}

fn v2() -> Vec<&'static ModelSchema> {
    vec![v2::User::SCHEMA, v2::Post::SCHEMA]
}

fn v3() -> Vec<&'static ModelSchema> {
    vec![v3::User::SCHEMA]
}

/// A migrations directory of its own under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let path = std::env::temp_dir().join(unique_name("polystore_migrations"));
        std::fs::create_dir_all(&path).expect("create a temp dir");
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn migrations(&self) -> MigrationDir {
        MigrationDir::new(&self.0)
    }

    /// Generates one migration per model version, in order; returns their names.
    fn generate(&self, versions: &[(&str, Vec<&'static ModelSchema>)]) -> Vec<String> {
        versions
            .iter()
            .map(|(name, schemas)| {
                let g = self.migrations().generate(name, schemas).expect("generate").expect("a non-empty diff");
                g.name
            })
            .collect()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tag(db: &Db) -> &'static str {
    match db.backend() {
        polystore::Backend::Postgres => "postgres",
        polystore::Backend::Sqlite => "sqlite",
    }
}

async fn catalog_of(db: &Db) -> Catalog {
    catalog::read(&mut &*db, db.backend(), &[]).await.expect("read the catalog")
}

#[test]
fn generate_writes_a_migration_only_when_the_models_changed() {
    let dir = TempDir::new();
    let first = dir.migrations().generate("create users", &v1()).unwrap().expect("a first migration");
    assert_eq!(first.name, "0001_create_users");
    assert!(matches!(first.steps[..], [Step::CreateTable { .. }, Step::CreateTable { .. }]), "{:?}", first.steps);
    assert!(dir.migrations().generate("again", &v1()).unwrap().is_none(), "no diff, no migration");

    let second = dir.migrations().generate("rename name", &v2()).unwrap().expect("a second migration");
    assert_eq!(second.name, "0002_rename_name");
    let described: Vec<String> = second.steps.iter().map(Step::describe).collect();
    assert!(described.contains(&r#"rename column "mig_users"."name" to "full_name""#.to_owned()), "{described:#?}");
    assert!(described.iter().any(|d| d.starts_with(r#"add column "mig_users"."nickname""#)), "{described:#?}");
    assert!(described.iter().any(|d| d.contains("type i32 -> i64")), "{described:#?}");
    assert!(described.iter().any(|d| d.starts_with(r#"add check "mig_users_age_range_check""#)), "{described:#?}");
    assert_eq!(second.destructive(), 0, "widening and renaming destroy nothing");
    for file in ["up.postgres.sql", "down.postgres.sql", "up.sqlite.sql", "down.sqlite.sql", "snapshot.json"] {
        assert!(second.dir.join(file).is_file(), "{file} written");
    }
    let up_sqlite = std::fs::read_to_string(second.dir.join("up.sqlite.sql")).unwrap();
    assert!(up_sqlite.contains(r#"CREATE TABLE "_polystore_new_mig_users""#), "SQLite rebuilds:\n{up_sqlite}");
    let up_pg = std::fs::read_to_string(second.dir.join("up.postgres.sql")).unwrap();
    assert!(up_pg.contains(r#"ALTER TABLE "mig_users" RENAME COLUMN "name" TO "full_name""#), "{up_pg}");
    assert!(up_pg.contains(r#"ALTER COLUMN "age" TYPE BIGINT USING "age"::BIGINT"#), "{up_pg}");

    let third = dir.migrations().generate("drop plan", &v3()).unwrap().expect("a third migration");
    assert_eq!(third.destructive(), 2, "drops a column and a table: {:?}", third.steps);
    let down = std::fs::read_to_string(third.dir.join("down.postgres.sql")).unwrap();
    assert!(down.contains("CANNOT RESTORE"), "the down file says what is lost:\n{down}");
    let up = std::fs::read_to_string(third.dir.join("up.postgres.sql")).unwrap();
    assert!(up.contains("-- DESTRUCTIVE: drop column \"mig_users\".\"plan\""), "{up}");

    let snapshot = dir.migrations().latest_snapshot().unwrap();
    assert_eq!(snapshot, polystore::migrate::Snapshot::from_schemas(&v3()).unwrap());
}

sql_test!(up_down_up_leaves_an_identical_catalog, |db| async move {
    let dir = TempDir::new();
    dir.generate(&[("v1", v1()), ("v2", v2())]);
    let migrator = Migrator::new(&db, dir.path()).allow_destructive(true);
    assert_eq!(migrator.up(None).await?.len(), 2);
    let applied = catalog_of(&db).await;
    assert!(applied.tables.contains_key("mig_users") && applied.tables.contains_key("mig_posts"));
    assert!(migrator.check().await?.is_empty(), "{:?}", migrator.check().await?);

    assert_eq!(migrator.down(1).await?.len(), 1);
    assert!(!migrator.check().await?.is_empty(), "one migration back, the latest snapshot no longer matches");
    assert_eq!(migrator.down(1).await?.len(), 1);
    assert!(catalog_of(&db).await.tables.is_empty(), "all the way down: no tables left");

    assert_eq!(migrator.up(None).await?.len(), 2);
    assert_eq!(catalog_of(&db).await, applied, "up → down → up gives the same catalog");
    assert!(migrator.check().await?.is_empty());
    Ok::<_, MigrateError>(())
});

sql_test!(a_database_built_by_migrations_matches_create_all, |db| async move {
    let dir = TempDir::new();
    dir.generate(&[("v1", v1()), ("v2", v2())]);
    Migrator::new(&db, dir.path()).up(None).await?;
    let migrated = catalog_of(&db).await;
    // Rebuild from scratch with create_all and compare.
    db.drop_all(&v2()).await?;
    assert!(catalog_of(&db).await.tables.is_empty());
    db.create_all(&v2()).await?;
    assert_eq!(catalog_of(&db).await, migrated);
    Ok::<_, MigrateError>(())
});

sql_test!(a_column_rename_keeps_the_data, |db| async move {
    let dir = TempDir::new();
    dir.generate(&[("v1", v1())]);
    let migrator = Migrator::new(&db, dir.path());
    migrator.up(None).await?;
    let ada =
        v1::User { id: 0, email: "ada@example.com".into(), name: "Ada Lovelace".into(), age: 36, plan: "pro".into() }
            .insert(&db)
            .await?;
    let post = v1::Post { id: 0, author_id: ada.id, title: "Notes".into(), author: polystore::Rel::NotLoaded };
    post.insert(&db).await?;

    dir.generate(&[("v2", v2())]);
    migrator.up(None).await?;
    let user = v2::User::find(&db, ada.id).await?;
    assert_eq!(user.full_name, "Ada Lovelace");
    assert_eq!((user.age, user.score, user.nickname), (36, 0, None));
    assert_eq!(query_i64(&db, "SELECT COUNT(*) FROM mig_posts").await, 1, "the child row survived the rebuild");
    Ok::<_, MigrateError>(())
});

sql_test!(two_concurrent_runners_apply_each_migration_once, |db| async move {
    let dir = TempDir::new();
    let names = dir.generate(&[("v1", v1()), ("v2", v2())]);
    let (a, b) = (Migrator::new(&db, dir.path()), Migrator::new(&db, dir.path()));
    let (ra, rb) = tokio::join!(a.up(None), b.up(None));
    let (mut ra, rb) = (ra?, rb?);
    ra.extend(rb);
    ra.sort();
    assert_eq!(ra, names, "each migration applied by exactly one runner");
    assert_eq!(query_i64(&db, "SELECT COUNT(*) FROM _polystore_migrations").await, 2);
    Ok::<_, MigrateError>(())
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_sqlite_file_apply_each_migration_once() {
    let dir = TempDir::new();
    let names = dir.generate(&[("v1", v1()), ("v2", v2())]);
    let file = dir.path().join("db.sqlite");
    let url = format!("sqlite://{}", file.display());
    let (one, two) = (Db::connect(&url).await.unwrap(), Db::connect(&url).await.unwrap());
    let (a, b) = (Migrator::new(&one, dir.path()), Migrator::new(&two, dir.path()));
    let (ha, hb) = (tokio::spawn(async move { a.up(None).await }), tokio::spawn(async move { b.up(None).await }));
    let mut all = ha.await.unwrap().unwrap();
    all.extend(hb.await.unwrap().unwrap());
    all.sort();
    assert_eq!(all, names);
    assert_eq!(query_i64(&one, "SELECT COUNT(*) FROM _polystore_migrations").await, 2);
    one.close().await;
    two.close().await;
}

sql_test!(a_failing_step_leaves_the_schema_untouched, |db| async move {
    let dir = TempDir::new();
    dir.generate(&[("v1", v1())]);
    let migrator = Migrator::new(&db, dir.path());
    migrator.up(None).await?;
    let before = catalog_of(&db).await;
    let bad = dir.path().join("0002_bad");
    std::fs::create_dir(&bad).unwrap();
    let sql = "ALTER TABLE mig_users ADD COLUMN extra TEXT;\nCREATE INDEX mig_users_extra_idx ON mig_users (extra);\n\
               INSERT INTO no_such_table VALUES (1);\n";
    for file in ["up.postgres.sql", "up.sqlite.sql"] {
        std::fs::write(bad.join(file), sql).unwrap();
    }
    let snapshot = dir.path().join("0001_v1").join("snapshot.json");
    std::fs::copy(snapshot, bad.join("snapshot.json")).unwrap();
    assert_err!(migrator.up(None).await, MigrateError::Statement { index: 3, .. });
    assert_eq!(catalog_of(&db).await, before, "the column and index added before the failure were rolled back");
    let status = migrator.status().await?;
    assert_eq!(status[1].status, MigrationStatus::Pending);
    Ok::<_, MigrateError>(())
});

sql_test!(check_reports_a_manual_alter, |db| async move {
    let dir = TempDir::new();
    dir.generate(&[("v1", v1()), ("v2", v2())]);
    let migrator = Migrator::new(&db, dir.path());
    migrator.up(None).await?;
    assert_eq!(migrator.check().await?, vec![]);
    execute_sql(&db, "ALTER TABLE mig_users ADD COLUMN extra TEXT").await;
    execute_sql(&db, "DROP INDEX mig_users_age_idx").await;
    let drift: Vec<String> = migrator.check().await?.iter().map(ToString::to_string).collect();
    assert!(drift.contains(&r#"mig_users: column "extra" is not in the schema"#.to_owned()), "{drift:#?}");
    assert!(drift.contains(&r#"mig_users: index "mig_users_age_idx" is missing"#.to_owned()), "{drift:#?}");
    assert_eq!(drift.len(), 2, "{drift:#?}");
    Ok::<_, MigrateError>(())
});

sql_test!(an_edited_applied_migration_is_an_error, |db| async move {
    let dir = TempDir::new();
    let names = dir.generate(&[("v1", v1())]);
    let migrator = Migrator::new(&db, dir.path());
    migrator.up(None).await?;
    let file = dir.path().join(&names[0]).join(format!("up.{}.sql", tag(&db)));
    let mut sql = std::fs::read_to_string(&file).unwrap();
    sql.push_str("-- an innocent-looking edit\n");
    std::fs::write(&file, sql).unwrap();
    assert_err!(migrator.up(None).await, MigrateError::Edited { ref name, .. } if name == &names[0]);
    assert_err!(migrator.down(1).await, MigrateError::Edited { .. });
    assert_eq!(migrator.status().await?[0].status, MigrationStatus::Edited);
    Ok::<_, MigrateError>(())
});

sql_test!(destructive_steps_are_refused_without_consent, |db| async move {
    let dir = TempDir::new();
    let names = dir.generate(&[("v1", v1()), ("v2", v2()), ("v3", v3())]);
    let careful = Migrator::new(&db, dir.path());
    assert_err!(careful.up(None).await, MigrateError::Destructive { ref name, direction: "up", .. } if name == &names[2]);
    let before = catalog_of(&db).await;
    assert!(before.tables["mig_users"].columns.contains_key("plan"), "the refused migration changed nothing");
    assert_err!(careful.down(1).await, MigrateError::Destructive { direction: "down", .. });

    let consenting = Migrator::new(&db, dir.path()).allow_destructive(true);
    assert_eq!(consenting.up(None).await?, vec![names[2].clone()]);
    let after = catalog_of(&db).await;
    assert!(!after.tables["mig_users"].columns.contains_key("plan"));
    assert!(!after.tables.contains_key("mig_posts"));
    assert_eq!(consenting.down(1).await?, vec![names[2].clone()]);
    assert_eq!(catalog_of(&db).await, before, "down restores the structure");
    Ok::<_, MigrateError>(())
});

/// Fails once, on the call after this many batches, to simulate an interrupted run.
static FAIL_AFTER: AtomicUsize = AtomicUsize::new(usize::MAX);
static CALLS: AtomicUsize = AtomicUsize::new(0);

/// Marks users 2 at a time by appending `!` to their name, in key order.
fn mark_users<'a>(tx: &'a mut Tx<'static>, cursor: Option<String>) -> BoxFuture<'a, polystore::Result<Batch>> {
    Box::pin(async move {
        if CALLS.fetch_add(1, Ordering::SeqCst) == FAIL_AFTER.load(Ordering::SeqCst) {
            return Err(polystore::Error::Config("simulated crash".into()));
        }
        let after: i64 = cursor.map_or(0, |c| c.parse().unwrap_or(0));
        let page = raw::<v1::User>("SELECT * FROM mig_users WHERE id > $1 ORDER BY id LIMIT 2")
            .bind(after)
            .all(&mut *tx)
            .await?;
        let Some(last) = page.last().map(|u| u.id) else { return Ok(Batch::done(0)) };
        raw::<v1::User>("UPDATE mig_users SET name = name || '!' WHERE id > $1 AND id <= $2")
            .bind(after)
            .bind(last)
            .execute(&mut *tx)
            .await?;
        Ok(Batch::more(page.len() as u64, last.to_string()))
    })
}

static MARK_USERS: DataStep = DataStep::new("mig_mark_users", mark_users);

/// The step's counters are shared: its PostgreSQL and SQLite runs take turns.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

sql_test!(data_steps_run_in_batches_and_resume_after_an_interruption, |db| async move {
    let _turn = ONE_AT_A_TIME.lock().await;
    let dir = TempDir::new();
    let names = dir.generate(&[("v1", v1())]);
    let migrator = Migrator::new(&db, dir.path()).data_step(&MARK_USERS);
    migrator.up(None).await?;
    for i in 0..5 {
        let user =
            v1::User { id: 0, email: format!("u{i}@example.com"), name: format!("u{i}"), age: 20, plan: "free".into() };
        user.insert(&db).await?;
    }
    // A data-only migration: no SQL, one data step.
    let data = dir.path().join("0002_mark_users");
    std::fs::create_dir(&data).unwrap();
    for file in ["up.postgres.sql", "down.postgres.sql", "up.sqlite.sql", "down.sqlite.sql"] {
        std::fs::write(data.join(file), "-- data only\n").unwrap();
    }
    std::fs::write(data.join("data.json"), r#"["mig_mark_users"]"#).unwrap();
    std::fs::copy(dir.path().join(&names[0]).join("snapshot.json"), data.join("snapshot.json")).unwrap();

    CALLS.store(0, Ordering::SeqCst);
    FAIL_AFTER.store(1, Ordering::SeqCst);
    assert_err!(migrator.up(None).await, MigrateError::Db(ref e) if matches!(**e, polystore::Error::Config(_)));
    let status = migrator.status().await?;
    assert!(
        matches!(status[1].status, MigrationStatus::DataPending { processed: 2, .. }),
        "the first batch is committed and recorded: {status:?}"
    );
    FAIL_AFTER.store(usize::MAX, Ordering::SeqCst);
    migrator.up(None).await?;
    assert!(matches!(migrator.status().await?[1].status, MigrationStatus::Applied { .. }));
    let marked = query_i64(&db, "SELECT COUNT(*) FROM mig_users WHERE name LIKE '%!' AND name NOT LIKE '%!!'").await;
    assert_eq!(marked, 5, "every row marked exactly once across the two runs");
    Ok::<_, MigrateError>(())
});

sql_test!(a_table_rename_keeps_rows_and_the_foreign_keys_that_refer_to_it, |db| async move {
    let dir = TempDir::new();
    dir.generate(&[("v1", v1())]);
    let migrator = Migrator::new(&db, dir.path());
    migrator.up(None).await?;
    let before = catalog_of(&db).await;
    let ada = v1::User { id: 0, email: "ada@example.com".into(), name: "Ada".into(), age: 36, plan: "pro".into() }
        .insert(&db)
        .await?;
    v1::Post { id: 0, author_id: ada.id, title: "Notes".into(), author: polystore::Rel::NotLoaded }.insert(&db).await?;

    let names = dir.generate(&[("rename users", vec![renamed::User::SCHEMA, renamed::Post::SCHEMA])]);
    let up = std::fs::read_to_string(dir.path().join(&names[0]).join(format!("up.{}.sql", tag(&db)))).unwrap();
    assert!(!up.contains("-- DESTRUCTIVE:"), "a rename destroys nothing:\n{up}");
    migrator.up(None).await?;
    assert_eq!(migrator.check().await?, vec![], "the catalog is what the snapshot says");
    assert_eq!(renamed::User::find(&db, ada.id).await?.name, "Ada");
    // The posts' foreign key follows the table to its new name: deleting the member cascades.
    renamed::User::delete_by_key(&db, ada.id).await?;
    assert_eq!(query_i64(&db, "SELECT COUNT(*) FROM mig_posts").await, 0);

    migrator.down(1).await?;
    assert_eq!(catalog_of(&db).await, before, "down renames everything back");
    Ok::<_, MigrateError>(())
});

#[tokio::test]
async fn mongodb_collections_indexes_and_validators_follow_the_migrations() {
    polystore_tests::run_on_mongo(|store| async move {
        let dir = TempDir::new();
        let names = dir.generate(&[("v1", v1()), ("v2", v2())]);
        let migrator = MongoMigrator::new(&store, dir.path());
        assert_eq!(migrator.up(Some(&names[0])).await?, [names[0].clone()]);
        let ada = v1::User { id: 0, email: "ada@example.com".into(), name: "Ada".into(), age: 36, plan: "pro".into() }
            .insert(&store)
            .await?;

        let (a, b) = (migrator.clone(), MongoMigrator::new(&store, dir.path()));
        let (ra, rb) = tokio::join!(a.up(None), b.up(None));
        let mut both = ra?;
        both.extend(rb?);
        assert_eq!(both, [names[1].clone()], "applied once by one of the two runners");
        let user = v2::User::find(&store, ada.id).await?;
        assert_eq!((user.full_name.as_str(), user.score), ("Ada", 0), "renamed in place, default set");
        let indexes = store.run_command(doc! { "listIndexes": "mig_users" }).await?;
        let names_of: Vec<String> = indexes
            .get_document("cursor")
            .and_then(|c| c.get_array("firstBatch"))
            .map(|b| b.iter().filter_map(|i| i.as_document()?.get_str("name").ok().map(str::to_owned)).collect())
            .unwrap_or_default();
        assert!(names_of.contains(&"mig_users_age_idx".to_owned()), "{names_of:?}");
        assert_err!(
            v2::User {
                id: 0,
                email: "x@example.com".into(),
                full_name: "X".into(),
                age: 1,
                plan: "p".into(),
                score: 0,
                nickname: None
            }
            .insert(&store)
            .await
            .map(drop)
            .and(store.run_command(doc! { "insert": "mig_users", "documents": [{ "_id": 99_i64, "email": 1 }] }).await),
            polystore::Error::ConstraintViolation { .. }
        );

        assert_err!(migrator.down(1).await, MigrateError::Destructive { direction: "down", .. });
        let consenting = migrator.clone().allow_destructive(true);
        assert_eq!(consenting.down(1).await?, [names[1].clone()]);
        assert_eq!(v1::User::find(&store, ada.id).await?.name, "Ada", "down renamed the field back");
        assert_eq!(consenting.down(1).await?, [names[0].clone()]);
        assert!(migrator.applied().await?.is_empty());
        Ok::<_, MigrateError>(())
    })
    .await
}

#[tokio::test]
async fn mongodb_a_renamed_model_renames_its_collection() {
    polystore_tests::run_on_mongo(|store| async move {
        let dir = TempDir::new();
        dir.generate(&[("v1", v1()), ("rename users", vec![renamed::User::SCHEMA, renamed::Post::SCHEMA])]);
        let migrator = MongoMigrator::new(&store, dir.path());
        migrator.up(Some("0001_v1")).await?;
        let ada = v1::User { id: 0, email: "ada@example.com".into(), name: "Ada".into(), age: 36, plan: "pro".into() }
            .insert(&store)
            .await?;
        migrator.up(None).await?;
        assert_eq!(renamed::User::find(&store, ada.id).await?.email, "ada@example.com");
        migrator.down(1).await?;
        assert_eq!(v1::User::find(&store, ada.id).await?.email, "ada@example.com");
        Ok::<_, MigrateError>(())
    })
    .await
}

sql_test!(up_to_stops_at_the_named_migration_and_redo_reapplies_the_last, |db| async move {
    let dir = TempDir::new();
    let names = dir.generate(&[("v1", v1()), ("v2", v2())]);
    let migrator = Migrator::new(&db, dir.path()).allow_destructive(true);
    assert_err!(migrator.up(Some("0009_nope")).await, MigrateError::UnknownMigration(_));
    assert_eq!(migrator.up(Some(&names[0])).await?, [names[0].clone()]);
    let status = migrator.status().await?;
    assert!(matches!(status[0].status, MigrationStatus::Applied { .. }));
    assert_eq!(status[1].status, MigrationStatus::Pending);
    assert_eq!(migrator.up(None).await?, [names[1].clone()]);
    let before = catalog_of(&db).await;
    assert_eq!(migrator.redo().await?, Some(names[1].clone()));
    assert_eq!(catalog_of(&db).await, before);
    assert!(migrator.up(None).await?.is_empty(), "nothing left to apply");
    Ok::<_, MigrateError>(())
});

#[tokio::test]
async fn mongodb_check_reports_collections_indexes_and_validators_that_drifted() {
    polystore_tests::run_on_mongo(|store| async move {
        let dir = TempDir::new();
        dir.generate(&[("v1", v1()), ("v2", v2())]);
        let migrator = MongoMigrator::new(&store, dir.path());
        migrator.up(None).await?;
        assert_eq!(migrator.check().await?, [], "freshly migrated: no drift");

        store
            .run_command(
                doc! { "createIndexes": "mig_users", "indexes": [{ "key": { "plan": 1 }, "name": "by_hand" }] },
            )
            .await?;
        store.run_command(doc! { "dropIndexes": "mig_users", "index": "mig_users_age_idx" }).await?;
        store.run_command(doc! { "collMod": "mig_users", "validator": {} }).await?;
        store.run_command(doc! { "create": "stray" }).await?;
        let drift: Vec<String> = migrator.check().await?.iter().map(|d| d.to_string()).collect();
        for wanted in [
            "mig_users: index by_hand is not in the migrations",
            "mig_users: index mig_users_age_idx is missing",
            "mig_users: the $jsonSchema validator differs from the snapshot's",
            "stray: collection is not in the migrations",
        ] {
            assert!(drift.iter().any(|d| d == wanted), "expected {wanted:?} in {drift:#?}");
        }
        Ok::<_, MigrateError>(())
    })
    .await
}

/// The TTL of each index of `collection` that has one, by name.
async fn ttl_indexes(store: &polystore::mongo::MongoStore, collection: &str) -> Vec<(String, i64)> {
    let reply = store.run_command(doc! { "listIndexes": collection }).await.expect("listIndexes");
    let batch = reply.get_document("cursor").and_then(|c| c.get_array("firstBatch")).expect("a cursor");
    let mut out: Vec<(String, i64)> = batch
        .iter()
        .filter_map(|i| i.as_document())
        .filter_map(|i| {
            let ttl = i.get("expireAfterSeconds")?;
            let secs = ttl.as_i64().or(ttl.as_i32().map(i64::from)).or(ttl.as_f64().map(|f| f as i64))?;
            Some((i.get_str("name").ok()?.to_owned(), secs))
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn mongodb_migrations_follow_a_changed_retention_bound() {
    polystore_tests::run_on_mongo(|store| async move {
        let dir = TempDir::new();
        let mut names = dir.generate(&[
            ("none", vec![retention::none::Event::SCHEMA]),
            ("three_months", vec![retention::three_months::Event::SCHEMA]),
        ]);
        let migrator = MongoMigrator::new(&store, dir.path());
        let day = 86_400_i64;
        let (none, three, one): (Vec<(String, i64)>, _, _) = (
            vec![],
            vec![("mig_events_at_retention".to_owned(), 3 * 31 * day)],
            vec![("mig_events_at_idx".to_owned(), 31 * day)],
        );

        migrator.up(Some(&names[0])).await?;
        assert_eq!(ttl_indexes(&store, "mig_events").await, none);
        migrator.up(None).await?;
        assert_eq!(ttl_indexes(&store, "mig_events").await, three, "adding `retain` adds the TTL index");
        assert_eq!(migrator.check().await?, [], "no drift after adding the retention bound");

        // The check compares with the newest migration, so it runs once that is applied.
        names.extend(dir.generate(&[("one_month", vec![retention::one_month::Event::SCHEMA])]));
        migrator.up(None).await?;
        assert_eq!(ttl_indexes(&store, "mig_events").await, one, "the declared index takes the TTL over");
        assert_eq!(migrator.check().await?, [], "no drift after moving the TTL");

        migrator.down(1).await?;
        assert_eq!(ttl_indexes(&store, "mig_events").await, three, "down gives the retention index back");
        migrator.down(1).await?;
        assert_eq!(ttl_indexes(&store, "mig_events").await, none, "down removes the TTL");
        assert_eq!(migrator.applied().await?, [names[0].clone()]);
        Ok::<_, MigrateError>(())
    })
    .await
}
