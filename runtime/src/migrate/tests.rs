//! Exact-SQL and diff tests of the migration pipeline (no database).

use super::diff::{Step, diff, reverse};
use super::render::{dialects, render, sql_file};
use super::snapshot::Snapshot;
use crate::Model;
use crate::schema::ModelSchema;

mod v1 {
    use crate::Rel;

    #[derive(crate::Model, Debug, Clone)]
    #[model(table = "t_users")]
    pub struct User {
        #[model(primary_key, generated)]
        pub id: i64,
        #[model(unique)]
        pub email: String,
        pub name: String,
        pub age: i32,
    }

    #[derive(crate::Model, Debug, Clone)]
    #[model(table = "t_posts")]
    pub struct Post {
        #[model(primary_key, generated)]
        pub id: i64,
        pub author_id: i64,
        #[model(belongs_to(key = author_id, on_delete = "cascade"))]
        pub author: Rel<User>,
    }
}

mod v2 {
    #[derive(crate::Model, Debug, Clone)]
    #[model(table = "t_members", renamed_from = "t_users")]
    pub struct User {
        #[model(primary_key, generated)]
        pub id: i64,
        #[model(unique)]
        pub email: String,
        #[model(renamed_from = "name")]
        pub full_name: String,
        pub age: i16,
        pub nickname: Option<String>,
    }
}

fn snap(schemas: &[&'static ModelSchema]) -> Snapshot {
    Snapshot::from_schemas(schemas).unwrap()
}

fn v1_snapshot() -> Snapshot {
    snap(&[v1::Post::SCHEMA, v1::User::SCHEMA])
}

fn v2_snapshot() -> Snapshot {
    snap(&[v2::User::SCHEMA])
}

/// The statements of `steps` for a dialect tag, one string per statement.
fn sql(tag: &str, steps: &[Step], before: &Snapshot, after: &Snapshot) -> Vec<String> {
    let d = dialects().into_iter().find(|(t, _)| *t == tag).expect("dialect").1;
    render(d, steps, before, after, false).unwrap().into_iter().flat_map(|r| r.statements).collect()
}

fn up(tag: &str, before: &Snapshot, after: &Snapshot) -> Vec<String> {
    sql(tag, &diff(before, after).unwrap(), before, after)
}

fn down(tag: &str, before: &Snapshot, after: &Snapshot) -> Vec<String> {
    sql(tag, &reverse(&diff(before, after).unwrap()), after, before)
}

#[test]
fn a_snapshot_round_trips_through_stable_json() {
    let a = v1_snapshot();
    let json = a.to_json();
    assert_eq!(Snapshot::from_json(&json).unwrap(), a);
    assert_eq!(v1_snapshot().to_json(), json, "the same models give the same bytes");
    assert!(json.find("\"t_posts\"").unwrap() < json.find("\"t_users\"").unwrap(), "tables by name");
    assert!(json.contains("\"t_posts_author_id_idx\""), "the foreign-key index is part of the snapshot");
}

#[test]
fn identical_snapshots_diff_to_nothing() {
    assert!(diff(&v1_snapshot(), &v1_snapshot()).unwrap().is_empty());
}

#[test]
fn new_tables_are_created_referenced_table_first() {
    let steps = diff(&Snapshot::empty(), &v1_snapshot()).unwrap();
    let created: Vec<&str> = steps.iter().map(Step::table).collect();
    assert_eq!(created, ["t_users", "t_posts"], "t_posts refers to t_users");
    let down: Vec<String> = reverse(&steps).iter().map(Step::describe).collect();
    assert_eq!(down, [r#"drop table "t_posts""#, r#"drop table "t_users""#]);
    assert!(reverse(&steps).iter().all(Step::is_destructive), "down of a create drops data");
}

#[test]
fn a_column_renamed_without_renamed_from_is_dropped_and_added() {
    let before = v1_snapshot();
    let mut after = before.clone();
    let users = after.tables.iter_mut().find(|t| t.table == "t_users").unwrap();
    users.columns.iter_mut().find(|c| c.name == "name").unwrap().name = "full_name".into();
    let steps: Vec<String> = diff(&before, &after).unwrap().iter().map(Step::describe).collect();
    assert_eq!(steps, [r#"add column "t_users"."full_name" text"#, r#"drop column "t_users"."name""#]);
}

#[test]
fn renamed_from_naming_a_column_that_still_exists_is_an_error() {
    let before = v1_snapshot();
    let mut after = before.clone();
    let users = after.tables.iter_mut().find(|t| t.table == "t_users").unwrap();
    users.columns.iter_mut().find(|c| c.name == "age").unwrap().renamed_from = Some("name".into());
    let mut extra = users.columns[0].clone();
    extra.name = "age2".into();
    extra.renamed_from = Some("email".into());
    users.columns.push(extra);
    let err = diff(&before, &after).unwrap_err().to_string();
    assert!(err.contains(r#"says renamed_from = "email", but the table still has a column "email""#), "{err}");
}

#[test]
fn postgres_renames_a_table_with_its_constraints_and_indexes() {
    let sql = up("postgres", &v1_snapshot(), &v2_snapshot());
    assert_eq!(
        sql[..6],
        [
            r#"ALTER TABLE "t_users" RENAME TO "t_members""#,
            r#"ALTER TABLE "t_members" RENAME CONSTRAINT "t_users_pkey" TO "t_members_pkey""#,
            r#"ALTER TABLE "t_members" RENAME COLUMN "name" TO "full_name""#,
            r#"ALTER TABLE "t_members" ALTER COLUMN "age" TYPE SMALLINT USING "age"::SMALLINT"#,
            r#"ALTER TABLE "t_members" ADD COLUMN "nickname" TEXT"#,
            r#"ALTER INDEX "t_users_email_key" RENAME TO "t_members_email_key""#,
        ]
    );
    assert_eq!(sql[6], r#"DROP TABLE "t_posts""#);
}

#[test]
fn postgres_down_renames_back_before_recreating_what_refers_to_the_table() {
    let sql = down("postgres", &v1_snapshot(), &v2_snapshot());
    let rename = sql.iter().position(|s| s == r#"ALTER TABLE "t_members" RENAME TO "t_users""#).unwrap();
    let create = sql.iter().position(|s| s.starts_with(r#"CREATE TABLE "t_posts""#)).unwrap();
    assert!(rename < create, "{sql:#?}");
    assert_eq!(sql[0], r#"ALTER INDEX "t_members_email_key" RENAME TO "t_users_email_key""#);
}

#[test]
fn sqlite_renames_a_table_in_place_then_rebuilds_it() {
    let sql = up("sqlite", &v1_snapshot(), &v2_snapshot());
    assert_eq!(sql[0], r#"ALTER TABLE "t_users" RENAME TO "t_members""#);
    assert!(
        sql[1].starts_with("CREATE TABLE \"_polystore_new_t_members\" (\n  \"id\" INTEGER PRIMARY KEY AUTOINCREMENT")
    );
    assert!(sql[1].contains(r#""age" INTEGER NOT NULL CHECK ("age" BETWEEN -32768 AND 32767)"#), "{}", sql[1]);
    assert_eq!(
        sql[2..],
        [
            r#"INSERT INTO "_polystore_new_t_members" ("id", "email", "full_name", "age") SELECT "id", "email", "name", "age" FROM "t_members""#,
            r#"DROP TABLE "t_members""#,
            r#"ALTER TABLE "_polystore_new_t_members" RENAME TO "t_members""#,
            r#"CREATE UNIQUE INDEX "t_members_email_key" ON "t_members" ("email")"#,
            r#"DROP TABLE "t_posts""#,
        ]
    );
}

#[test]
fn widening_is_safe_and_narrowing_is_destructive() {
    let steps = diff(&v1_snapshot(), &v2_snapshot()).unwrap();
    let narrowing = steps.iter().find(|s| matches!(s, Step::AlterColumn { .. })).unwrap();
    assert!(narrowing.is_destructive(), "i32 -> i16");
    assert!(!narrowing.inverse().is_destructive(), "i16 -> i32");
    assert!(narrowing.inverse().caveat().is_none(), "a widening always converts");
    assert!(narrowing.loss().unwrap().contains("converting i32 to i16"));
}

#[test]
fn postgres_replaces_an_enum_check_when_the_variants_change() {
    let before = v1_snapshot();
    let mut after = before.clone();
    let users = after.tables.iter_mut().find(|t| t.table == "t_users").unwrap();
    let name = users.columns.iter_mut().find(|c| c.name == "name").unwrap();
    name.ty.scalar = "enum".into();
    name.ty.variants = vec!["a".into(), "b".into()];
    let sql = up("postgres", &before, &after);
    assert_eq!(
        sql,
        [
            r#"ALTER TABLE "t_users" ALTER COLUMN "name" TYPE TEXT USING "name"::TEXT"#,
            r#"ALTER TABLE "t_users" ADD CONSTRAINT "t_users_name_check" CHECK ("name" IN ('a', 'b'))"#,
        ]
    );
    let steps = diff(&before, &after).unwrap();
    assert!(steps[0].is_destructive(), "text -> enum may not convert");
    assert!(!steps[0].inverse().is_destructive(), "enum -> text always converts");
    assert_eq!(
        down("postgres", &before, &after)[0],
        r#"ALTER TABLE "t_users" DROP CONSTRAINT IF EXISTS "t_users_name_check""#
    );
}

#[test]
fn a_not_null_column_without_default_warns_that_it_needs_an_empty_table() {
    let before = v1_snapshot();
    let mut after = before.clone();
    let users = after.tables.iter_mut().find(|t| t.table == "t_users").unwrap();
    let mut col = users.columns[1].clone();
    col.name = "handle".into();
    users.columns.push(col);
    let steps = diff(&before, &after).unwrap();
    assert_eq!(steps[0].caveat(), Some("a NOT NULL column without a default: fails if the table has rows"));
    let file = sql_file(&[], &render(dialects()[0].1, &steps, &before, &after, false).unwrap());
    assert!(file.contains("--   note: a NOT NULL column without a default"), "{file}");
}
