//! Exact SQL for models in schemas (`#[model(schema = "..")]`), per dialect, and the diff of a
//! model moved between schemas (no database).

use super::diff::{Step, diff, reverse};
use super::render::{dialects, render};
use super::snapshot::Snapshot;
use crate::Model;
use crate::schema::ModelSchema;

mod v1 {
    #[derive(crate::Model, Debug, Clone)]
    #[model(schema = "billing", table = "invoices", index(total))]
    pub struct Invoice {
        #[model(primary_key, generated)]
        pub id: i64,
        pub total: i64,
    }
}

mod v2 {
    #[derive(crate::Model, Debug, Clone)]
    #[model(schema = "archive", table = "invoices", index(total))]
    pub struct Invoice {
        #[model(primary_key, generated)]
        pub id: i64,
        pub total: i64,
    }
}

mod plain {
    #[derive(crate::Model, Debug, Clone)]
    #[model(table = "invoices", index(total))]
    pub struct Invoice {
        #[model(primary_key, generated)]
        pub id: i64,
        pub total: i64,
    }
}

fn snap(schemas: &[&'static ModelSchema]) -> Snapshot {
    Snapshot::from_schemas(schemas).unwrap()
}

fn up_sql(tag: &str, before: &Snapshot, after: &Snapshot) -> Vec<String> {
    let (_, d) = dialects().into_iter().find(|(t, _)| *t == tag).unwrap();
    let steps = diff(before, after).unwrap();
    render(d, &steps, before, after, false).unwrap().into_iter().flat_map(|s| s.statements).collect()
}

fn down_sql(tag: &str, before: &Snapshot, after: &Snapshot) -> Vec<String> {
    let (_, d) = dialects().into_iter().find(|(t, _)| *t == tag).unwrap();
    let inverse = reverse(&diff(before, after).unwrap());
    render(d, &inverse, after, before, true).unwrap().into_iter().flat_map(|s| s.statements).collect()
}

#[test]
fn the_schema_is_part_of_the_table_name_and_names_of_indexes_leave_it_out() {
    let s = v1::Invoice::SCHEMA;
    assert_eq!((s.table, s.schema_name(), s.table_name()), ("billing.invoices", Some("billing"), "invoices"));
    assert_eq!(s.indexes[0].name, "invoices_total_idx");
    assert_eq!(s.primary_key_name(), "invoices_pkey");
}

#[test]
fn a_first_table_in_a_schema_creates_the_schema_on_postgres_only() {
    let after = snap(&[v1::Invoice::SCHEMA]);
    let pg = up_sql("postgres", &Snapshot::empty(), &after);
    assert_eq!(pg[0], "CREATE SCHEMA IF NOT EXISTS \"billing\"");
    assert!(pg[1].starts_with("CREATE TABLE \"billing\".\"invoices\" ("), "{}", pg[1]);
    assert_eq!(pg[2], "CREATE INDEX \"invoices_total_idx\" ON \"billing\".\"invoices\" (\"total\")");
    let sqlite = up_sql("sqlite", &Snapshot::empty(), &after);
    assert!(sqlite[0].starts_with("CREATE TABLE \"billing.invoices\" ("), "{}", sqlite[0]);
    assert!(sqlite.iter().all(|s| !s.contains("SCHEMA")), "{sqlite:?}");
}

#[test]
fn a_model_moved_to_another_schema_is_moved_with_its_rows() {
    let (before, after) = (snap(&[v1::Invoice::SCHEMA]), snap(&[v2::Invoice::SCHEMA]));
    let steps = diff(&before, &after).unwrap();
    assert!(
        matches!(&steps[..], [Step::RenameTable { from, to, .. }] if from == "billing.invoices" && to == "archive.invoices"),
        "{steps:?}"
    );
    assert_eq!(
        up_sql("postgres", &before, &after),
        ["CREATE SCHEMA IF NOT EXISTS \"archive\"", "ALTER TABLE \"billing\".\"invoices\" SET SCHEMA \"archive\"",]
    );
    assert_eq!(
        down_sql("postgres", &before, &after),
        ["CREATE SCHEMA IF NOT EXISTS \"billing\"", "ALTER TABLE \"archive\".\"invoices\" SET SCHEMA \"billing\""],
        "down moves it back (creating the schema if it is gone)"
    );
    assert_eq!(up_sql("sqlite", &before, &after), ["ALTER TABLE \"billing.invoices\" RENAME TO \"archive.invoices\""]);
}

#[test]
fn a_model_moved_to_the_default_schema_goes_to_the_current_one() {
    let (before, after) = (snap(&[v1::Invoice::SCHEMA]), snap(&[plain::Invoice::SCHEMA]));
    assert_eq!(
        up_sql("postgres", &before, &after),
        [
            "DO $$ BEGIN EXECUTE format('ALTER TABLE %s SET SCHEMA %I', '\"billing\".\"invoices\"', current_schema()); END $$"
        ]
    );
    assert_eq!(
        down_sql("postgres", &before, &after),
        ["CREATE SCHEMA IF NOT EXISTS \"billing\"", "ALTER TABLE \"invoices\" SET SCHEMA \"billing\""]
    );
}

#[test]
fn statements_name_the_table_with_its_schema_on_postgres() {
    use crate::value::Value;
    let s = v1::Invoice::SCHEMA;
    let pg = crate::sql::build::find_by_key(&crate::sql::postgres::Postgres, s, vec![Value::I64(1)]);
    assert!(pg.sql.contains(" FROM \"billing\".\"invoices\" WHERE "), "{}", pg.sql);
    let sqlite = crate::sql::build::find_by_key(&crate::sql::sqlite::Sqlite, s, vec![Value::I64(1)]);
    assert!(sqlite.sql.contains(" FROM \"billing.invoices\" WHERE "), "{}", sqlite.sql);
    let ddl = crate::sql::ddl::create_schema(&crate::sql::postgres::Postgres, s);
    assert_eq!(ddl.as_deref(), Some("CREATE SCHEMA IF NOT EXISTS \"billing\""));
    assert_eq!(crate::sql::ddl::create_schema(&crate::sql::sqlite::Sqlite, s), None);
}
