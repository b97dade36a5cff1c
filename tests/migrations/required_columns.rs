//! A required field (NOT NULL, no default) added to a table that may have rows: `generate`
//! refuses it, naming the model and field and the two ways out; with a default the migration
//! fills existing rows; with `generate_with_backfill` the up SQL adds the column nullable,
//! leaves an `UPDATE` to fill in (the runner refuses it until then) and sets NOT NULL.

use super::*;
use polystore::migrate::backfill::BACKFILL_PLACEHOLDER;

/// The items table.
pub mod req_v1 {
    use polystore::prelude::*;

    #[derive(Model, Debug, Clone)]
    #[model(table = "req_items")]
    pub struct Item {
        #[model(primary_key, generated)]
        pub id: i64,
        pub name: String,
    }
}

/// A required field without a default added.
pub mod req_v2 {
    use polystore::prelude::*;

    #[derive(Model, Debug, Clone)]
    #[model(table = "req_items")]
    pub struct Item {
        #[model(primary_key, generated)]
        pub id: i64,
        pub name: String,
        pub code: String,
    }
}

/// A required field with a default added.
pub mod req_v2_default {
    use polystore::prelude::*;

    #[derive(Model, Debug, Clone)]
    #[model(table = "req_items")]
    pub struct Item {
        #[model(primary_key, generated)]
        pub id: i64,
        pub name: String,
        #[model(default = 7)]
        pub priority: i32,
    }
}

#[test]
fn generate_refuses_a_required_field_added_to_an_existing_table() {
    let dir = TempDir::new();
    dir.generate(&[("v1", vec![req_v1::Item::SCHEMA])]);
    let err = dir.migrations().generate("add code", &[req_v2::Item::SCHEMA]).expect_err("refused");
    let message = err.to_string();
    for part in ["Item.code", "req_items", "#[model(default = ...)]", "--backfill", "generate_with_backfill"] {
        assert!(message.contains(part), "{part:?} missing from: {message}");
    }
    assert_eq!(dir.migrations().migrations().unwrap().len(), 1, "nothing was written");
    // A new table may have required fields: it has no rows yet.
    let fresh = TempDir::new();
    assert!(fresh.migrations().generate("v2", &[req_v2::Item::SCHEMA]).unwrap().is_some());
}

async fn seed_items(db: &Db) {
    execute_sql(db, "INSERT INTO req_items (name) VALUES ('ada'), ('bob')").await;
}

sql_test!(a_required_field_with_a_default_fills_the_existing_rows, |db| async move {
    let dir = TempDir::new();
    let names = dir.generate(&[("v1", vec![req_v1::Item::SCHEMA]), ("priority", vec![req_v2_default::Item::SCHEMA])]);
    let migrator = Migrator::new(&db, dir.path());
    migrator.up(Some(&names[0])).await?;
    seed_items(&db).await;
    migrator.up(None).await?;
    let items = req_v2_default::Item::query().all(&db).await?;
    assert_eq!(items.iter().map(|i| i.priority).collect::<Vec<_>>(), [7, 7]);
    assert!(migrator.check().await?.is_empty());
    Ok::<_, MigrateError>(())
});

sql_test!(a_backfill_template_runs_once_its_value_is_filled_in, |db| async move {
    let dir = TempDir::new();
    let first = dir.generate(&[("v1", vec![req_v1::Item::SCHEMA])]);
    let second = dir.migrations().generate_with_backfill("add code", &[req_v2::Item::SCHEMA])?.expect("a migration");
    let migrator = Migrator::new(&db, dir.path());
    migrator.up(Some(&first[0])).await?;
    seed_items(&db).await;
    let err = migrator.up(None).await.expect_err("the placeholder is still there").to_string();
    assert!(err.contains(BACKFILL_PLACEHOLDER) && err.contains(&second.name), "{err}");
    assert_eq!(migrator.status().await?[1].status, MigrationStatus::Pending);

    let file = second.dir.join(format!("up.{}.sql", tag(&db)));
    let sql = std::fs::read_to_string(&file).unwrap();
    assert!(sql.contains("BACKFILL Item.code"), "{sql}");
    std::fs::write(&file, sql.replace(BACKFILL_PLACEHOLDER, "upper(\"name\")")).unwrap();
    migrator.up(None).await?;
    let mut codes: Vec<String> = req_v2::Item::query().all(&db).await?.into_iter().map(|i| i.code).collect();
    codes.sort();
    assert_eq!(codes, ["ADA", "BOB"]);
    assert!(migrator.check().await?.is_empty(), "the column ends NOT NULL: {:?}", migrator.check().await?);
    Migrator::new(&db, dir.path()).allow_destructive(true).down(1).await?;
    assert_eq!(query_i64(&db, "SELECT COUNT(*) FROM req_items").await, 2);
    Ok::<_, MigrateError>(())
});
