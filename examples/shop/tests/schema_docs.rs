//! The checked-in schema documentation (`examples/shop/SCHEMA.md`) must be what
//! `polystore::schema::docs` generates from the shop's models now. After changing a model,
//! regenerate it:
//!
//! ```text
//! cargo run -p shop --bin migrate -- docs --out examples/shop/SCHEMA.md
//! ```
//!
//! (or run this test with `SHOP_SCHEMA_OVERWRITE=1`).

use polystore::ModelSchema;
use shop::models::{DOCUMENT_MODELS, SQL_MODELS};

const CHECKED_IN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/SCHEMA.md");

fn shop_models() -> Vec<&'static ModelSchema> {
    SQL_MODELS.iter().chain(DOCUMENT_MODELS.iter()).copied().collect()
}

#[test]
fn schema_md_is_up_to_date() {
    let fresh = polystore::schema::docs::markdown(&shop_models());
    if std::env::var("SHOP_SCHEMA_OVERWRITE").is_ok_and(|v| v == "1") {
        std::fs::write(CHECKED_IN, &fresh).expect("write SCHEMA.md");
    }
    let on_disk = std::fs::read_to_string(CHECKED_IN).unwrap_or_default();
    assert!(
        on_disk == fresh,
        "examples/shop/SCHEMA.md is out of date: regenerate it with \
         `cargo run -p shop --bin migrate -- docs --out examples/shop/SCHEMA.md`\n--- generated ---\n{fresh}"
    );
}

#[test]
fn the_registry_the_migrate_cli_reads_holds_exactly_the_shop_models() {
    let mut registered: Vec<&str> = polystore::schema::registered().map(|s| s.name).collect();
    registered.sort_unstable();
    let mut expected: Vec<&str> = shop_models().iter().map(|s| s.name).collect();
    expected.sort_unstable();
    assert_eq!(registered, expected);
}
