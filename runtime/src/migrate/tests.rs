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

/// Local tables (v1) that v2 lays out on Citus: countries reference, tenants distributed by
/// their key, orders distributed by tenant and colocated with tenants.
mod layout_v1 {
    use crate::Rel;

    #[derive(crate::Model, Debug, Clone)]
    #[model(table = "l_countries")]
    pub struct Country {
        #[model(primary_key)]
        pub code: String,
    }

    #[derive(crate::Model, Debug, Clone)]
    #[model(table = "l_tenants")]
    pub struct Tenant {
        #[model(primary_key)]
        pub id: i64,
        pub country_code: String,
        #[model(belongs_to(key = country_code))]
        pub country: Rel<Country>,
    }

    #[derive(crate::Model, Debug, Clone)]
    #[model(table = "l_orders")]
    pub struct Order {
        #[model(primary_key)]
        pub id: i64,
        pub tenant_id: i64,
        #[model(belongs_to(key = tenant_id, on_delete = "cascade"))]
        pub tenant: Rel<Tenant>,
    }
}

mod layout_v2 {
    use crate::Rel;

    #[derive(crate::Model, Debug, Clone)]
    #[model(table = "l_countries", reference)]
    pub struct Country {
        #[model(primary_key)]
        pub code: String,
    }

    #[derive(crate::Model, Debug, Clone)]
    #[model(table = "l_tenants", distributed_by = id)]
    pub struct Tenant {
        #[model(primary_key)]
        pub id: i64,
        pub country_code: String,
        #[model(belongs_to(key = country_code))]
        pub country: Rel<Country>,
    }

    #[derive(crate::Model, Debug, Clone)]
    #[model(table = "l_orders", distributed_by = tenant_id, colocate_with = "l_tenants", primary_key(tenant_id, id))]
    pub struct Order {
        pub tenant_id: i64,
        pub id: i64,
        #[model(belongs_to(key = tenant_id, on_delete = "cascade"))]
        pub tenant: Rel<Tenant>,
    }
}

fn layout_snapshots() -> (Snapshot, Snapshot) {
    use layout_v1 as a;
    use layout_v2 as b;
    (
        snap(&[a::Order::SCHEMA, a::Tenant::SCHEMA, a::Country::SCHEMA]),
        snap(&[b::Order::SCHEMA, b::Tenant::SCHEMA, b::Country::SCHEMA]),
    )
}

/// The tables of the layout steps, in order, with the index of the first one.
fn layout_order(steps: &[Step]) -> (usize, Vec<&str>) {
    let at = steps.iter().position(|s| matches!(s, Step::ChangeLayout { .. })).expect("a layout step");
    (at, steps.iter().filter(|s| matches!(s, Step::ChangeLayout { .. })).map(Step::table).collect())
}

#[test]
fn a_change_of_layout_is_a_step_ordered_targets_first_and_after_the_key_it_needs() {
    let (v1, v2) = layout_snapshots();
    let steps = diff(&v1, &v2).unwrap();
    let described: Vec<String> = steps.iter().map(Step::describe).collect();
    assert_eq!(
        described,
        [
            r#"drop index "l_orders_tenant_id_idx" on "l_orders""#,
            r#"change the primary key of "l_orders" from (id) to (tenant_id, id)"#,
            r#"change the Citus layout of "l_countries" from local to reference"#,
            r#"change the Citus layout of "l_tenants" from local to distributed by "id""#,
            r#"change the Citus layout of "l_orders" from local to distributed by "tenant_id" colocated with "l_tenants""#,
        ]
    );
    assert!(steps.iter().all(|s| !s.is_destructive() && s.loss().is_none()), "Citus keeps the rows");
    assert!(steps[2].caveat().unwrap().contains("locks the table"));
    // Down: the tables that depend on others first, and the key goes back only once orders is
    // local again (a distributed table's key must hold its distribution column).
    let back = reverse(&steps);
    assert_eq!(layout_order(&back), (0, vec!["l_orders", "l_tenants", "l_countries"]));
    assert!(matches!(&back[3], Step::SetPrimaryKey { table, .. } if table == "l_orders"));
    assert_eq!(
        back[0].describe(),
        r#"change the Citus layout of "l_orders" from distributed by "tenant_id" colocated with "l_tenants" to local"#
    );
    // And the opposite migration (distributed → local): its down distributes tenants before
    // the orders colocated with them.
    let undo = reverse(&diff(&v2, &v1).unwrap());
    assert_eq!(layout_order(&undo).1, ["l_tenants", "l_orders", "l_countries"]);
}

#[test]
fn postgres_changes_the_layout_on_citus_only_moving_foreign_keys_out_of_the_way() {
    let (v1, v2) = layout_snapshots();
    let sql = up("postgres", &v1, &v2);
    assert_eq!(sql.len(), 7, "{sql:#?}");
    assert_eq!(
        sql[0],
        "DO $polystore$ BEGIN IF EXISTS (SELECT FROM pg_extension WHERE extname = 'citus') THEN \
         PERFORM set_config('citus.multi_shard_modify_mode', 'sequential', true); END IF; END $polystore$",
        "sequential before the first statement: the key change already touches shards on Citus"
    );
    let guard = "DO $polystore$ BEGIN IF EXISTS (SELECT FROM pg_extension WHERE extname = 'citus') THEN\n  \
                 PERFORM set_config('citus.multi_shard_modify_mode', 'sequential', true);\n  ";
    let partitioned =
        |t: &str| format!("EXISTS (SELECT FROM pg_dist_partition WHERE logicalrelid = '\"{t}\"'::regclass)");
    assert_eq!(
        sql[4],
        format!(
            "{guard}ALTER TABLE \"l_tenants\" DROP CONSTRAINT \"l_tenants_country_code_fkey\";\n  \
             IF NOT {} THEN PERFORM create_reference_table('\"l_countries\"'); \
             PERFORM truncate_local_data_after_distributing_table('\"l_countries\"'); END IF;\nEND IF; END $polystore$",
            partitioned("l_countries")
        ),
        "the foreign key of local tenants is added back once tenants is distributed"
    );
    assert_eq!(
        sql[5],
        format!(
            "{guard}ALTER TABLE \"l_orders\" DROP CONSTRAINT \"l_orders_tenant_id_fkey\";\n  \
             IF NOT {} THEN PERFORM create_distributed_table('\"l_tenants\"', 'id'); \
             PERFORM truncate_local_data_after_distributing_table('\"l_tenants\"'); END IF;\n  \
             ALTER TABLE \"l_tenants\" ADD CONSTRAINT \"l_tenants_country_code_fkey\" FOREIGN KEY (\"country_code\") \
             REFERENCES \"l_countries\" (\"code\") ON DELETE NO ACTION ON UPDATE NO ACTION;\nEND IF; END $polystore$",
            partitioned("l_tenants")
        )
    );
    assert!(sql[6].contains("create_distributed_table('\"l_orders\"', 'tenant_id', colocate_with => '\"l_tenants\"')"));
    assert!(sql[6].contains("ADD CONSTRAINT \"l_orders_tenant_id_fkey\""), "{}", sql[6]);
    assert!(!sql[6].contains("DROP CONSTRAINT"), "dropped by the tenants step already: {}", sql[6]);
    let down = down("postgres", &v1, &v2);
    assert!(down[1].contains("IF EXISTS (SELECT FROM pg_dist_partition WHERE logicalrelid = '\"l_orders\"'::regclass) THEN PERFORM undistribute_table('\"l_orders\"'); END IF;"), "{}", down[1]);
    assert!(down[3].ends_with("ADD CONSTRAINT \"l_tenants_country_code_fkey\" FOREIGN KEY (\"country_code\") REFERENCES \"l_countries\" (\"code\") ON DELETE NO ACTION ON UPDATE NO ACTION;\nEND IF; END $polystore$"), "{}", down[3]);
    // SQLite has no Citus: the key change only.
    let sqlite = up("sqlite", &v1, &v2);
    assert!(sqlite.iter().all(|s| !s.contains("citus") && !s.contains("DO $")), "{sqlite:#?}");
    let file = sql_file(&[], &render(dialects()[1].1, &diff(&v1, &v2).unwrap(), &v1, &v2, false).unwrap());
    assert!(
        file.contains("-- change the Citus layout of \"l_countries\" from local to reference\n--   note: on a Citus")
    );
}

#[test]
fn a_new_distribution_column_or_colocation_alters_the_distributed_table() {
    let (_, v2) = layout_snapshots();
    let mut moved = v2.clone();
    let orders = moved.tables.iter_mut().find(|t| t.table == "l_orders").unwrap();
    orders.distribution.as_mut().unwrap().colocate_with = None;
    let tenants = moved.tables.iter_mut().find(|t| t.table == "l_tenants").unwrap();
    tenants.distribution.as_mut().unwrap().column = "country_code".into();
    let sql = up("postgres", &v2, &moved);
    assert_eq!(sql.len(), 3, "{sql:#?}");
    assert!(sql[1].contains("PERFORM alter_distributed_table('\"l_tenants\"', distribution_column := 'country_code', colocate_with := 'default');"), "{}", sql[1]);
    assert!(sql[2].contains("PERFORM alter_distributed_table('\"l_orders\"', distribution_column := 'tenant_id', colocate_with := 'default');"), "{}", sql[2]);
    let back = down("postgres", &v2, &moved);
    assert!(back.iter().any(|s| s.contains("colocate_with := '\"l_tenants\"'")), "{back:#?}");
    // Reference → distributed: back to local first.
    let mut swapped = v2.clone();
    let countries = swapped.tables.iter_mut().find(|t| t.table == "l_countries").unwrap();
    countries.reference = false;
    countries.distribution = v2.table("l_tenants").unwrap().distribution.clone().map(|mut d| {
        d.column = "code".into();
        d
    });
    let sql = up("postgres", &v2, &swapped);
    assert!(sql[1].contains("PERFORM undistribute_table('\"l_countries\"'); END IF; PERFORM create_distributed_table('\"l_countries\"', 'code');"), "{}", sql[1]);
}

#[test]
fn a_table_renamed_while_its_layout_changes_is_converted_under_the_name_it_has_then() {
    let (v1, mut v2) = layout_snapshots();
    for t in &mut v2.tables {
        match t.table.as_str() {
            "l_tenants" => {
                t.table = "l_clients".into();
                t.renamed_from = Some("l_tenants".into());
                t.foreign_keys[0].name = "l_clients_country_code_fkey".into();
            }
            "l_orders" => {
                t.foreign_keys[0].references = "l_clients".into();
                t.distribution.as_mut().unwrap().colocate_with = Some("l_clients".into());
            }
            _ => {}
        }
    }
    v2.tables.sort_by(|a, b| a.table.cmp(&b.table));
    let sql = up("postgres", &v1, &v2);
    let at = |needle: &str| sql.iter().position(|s| s.contains(needle)).unwrap_or_else(|| panic!("{needle}: {sql:#?}"));
    assert!(at(r#"RENAME TO "l_clients""#) < at(r#"create_distributed_table('"l_clients"', 'id')"#));
    let orders = &sql[at(r#"create_distributed_table('"l_orders"'"#)];
    assert!(orders.contains(r#"colocate_with => '"l_clients"'"#), "{orders}");
    assert!(orders.contains(r#"FOREIGN KEY ("tenant_id") REFERENCES "l_clients" ("id")"#), "{orders}");
    assert!(at(r#"ADD CONSTRAINT "l_clients_country_code_fkey""#) > at(r#"create_reference_table"#));
    // Down converts the table while it still has its new name, then renames it back.
    let back = down("postgres", &v1, &v2);
    let at =
        |needle: &str| back.iter().position(|s| s.contains(needle)).unwrap_or_else(|| panic!("{needle}: {back:#?}"));
    assert!(at(r#"undistribute_table('"l_clients"')"#) < at(r#"ALTER TABLE "l_clients" RENAME TO "l_tenants""#));
    assert!(
        back[at(r#"undistribute_table('"l_orders"')"#)]
            .contains(r#"ALTER TABLE "l_orders" DROP CONSTRAINT "l_orders_tenant_id_fkey""#)
    );
}
