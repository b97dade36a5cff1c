//! The checked-in migrations (`examples/shop/migrations`) hold every change of the shop's
//! models, and applying them gives exactly the tables the models describe. (The end-to-end
//! script applies them to PostgreSQL as well.)

use polystore::migrate::{MigrationDir, Migrator, Snapshot, diff};
use polystore::{Db, ModelSchema};
use shop::models::{DOCUMENT_MODELS, SQL_MODELS};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");

fn shop_models() -> Vec<&'static ModelSchema> {
    SQL_MODELS.iter().chain(DOCUMENT_MODELS.iter()).copied().collect()
}

#[test]
fn no_model_change_is_missing_from_the_migrations() {
    let latest = MigrationDir::new(DIR).latest_snapshot().expect("read the latest snapshot");
    let steps = diff(&latest, &Snapshot::from_schemas(&shop_models()).expect("snapshot the models")).expect("diff");
    let described: Vec<String> = steps.iter().map(|s| s.describe()).collect();
    assert!(
        described.is_empty(),
        "model changes not in any migration (run `cargo run -p shop --bin migrate -- --dir examples/shop/migrations \
         generate NAME`): {described:#?}"
    );
}

#[tokio::test]
async fn the_migrations_build_the_models_tables_on_sqlite() {
    let db = Db::connect("sqlite::memory:").await.expect("open SQLite");
    let migrator = Migrator::new(&db, DIR);
    assert_eq!(migrator.up(None).await.expect("apply"), ["0001_create_shop"]);
    let drift = migrator.check().await.expect("check");
    assert!(drift.is_empty(), "{drift:#?}");
    db.close().await;
}
