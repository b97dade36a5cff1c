//! Part of `tests/citus.rs` (see the module's doc there): migrations that change the Citus
//! layout of existing tables.

use polystore::migrate::{MigrationDir, Migrator};
use polystore::prelude::*;
use polystore::{Db, PoolConfig};
use polystore_tests::{execute_sql, query_text, service_unavailable};
use sqlx::AssertSqlSafe;
use sqlx::postgres::PgConnectOptions;

use super::{TempDir, citus_url};

/// The schema on the cluster the first test's tables and migration bookkeeping live in.
const SCHEMA: &str = "lay_migrations";
/// The schema of the test that swaps layouts between distributed ones and reference.
const SWAP_SCHEMA: &str = "lay_migrations_swap";

/// Version 1: three local tables.
mod v1 {
    use polystore::prelude::*;

    #[derive(Model, Debug, Clone, PartialEq)]
    #[model(table = "lay_countries")]
    pub struct Country {
        #[model(primary_key)]
        pub code: String,
        pub name: String,
    }

    #[derive(Model, Debug, Clone, PartialEq)]
    #[model(table = "lay_tenants")]
    pub struct Tenant {
        #[model(primary_key)]
        pub id: i64,
        pub name: String,
        pub country_code: String,
        #[model(belongs_to(key = country_code))]
        pub country: Rel<Country>,
    }

    #[derive(Model, Debug, Clone, PartialEq)]
    #[model(table = "lay_orders")]
    pub struct Order {
        #[model(primary_key)]
        pub id: i64,
        pub tenant_id: i64,
        pub total: i64,
        #[model(belongs_to(key = tenant_id, on_delete = "cascade"))]
        pub tenant: Rel<Tenant>,
    }

    pub const MODELS: [&polystore::ModelSchema; 3] = [Order::SCHEMA, Country::SCHEMA, Tenant::SCHEMA];
}

/// Version 2: countries copied to every node, tenants distributed by their key, orders by
/// tenant and colocated with them (their key now includes the tenant).
mod v2 {
    use polystore::prelude::*;

    #[derive(Model, Debug, Clone, PartialEq)]
    #[model(table = "lay_countries", reference)]
    pub struct Country {
        #[model(primary_key)]
        pub code: String,
        pub name: String,
    }

    #[derive(Model, Debug, Clone, PartialEq)]
    #[model(table = "lay_tenants", distributed_by = id)]
    pub struct Tenant {
        #[model(primary_key)]
        pub id: i64,
        pub name: String,
        pub country_code: String,
        #[model(belongs_to(key = country_code))]
        pub country: Rel<Country>,
    }

    #[derive(Model, Debug, Clone, PartialEq)]
    #[model(
        table = "lay_orders",
        distributed_by = tenant_id,
        colocate_with = "lay_tenants",
        primary_key(tenant_id, id)
    )]
    pub struct Order {
        pub tenant_id: i64,
        pub id: i64,
        pub total: i64,
        #[model(belongs_to(key = tenant_id, on_delete = "cascade"))]
        pub tenant: Rel<Tenant>,
    }

    pub const MODELS: [&polystore::ModelSchema; 3] = [Order::SCHEMA, Country::SCHEMA, Tenant::SCHEMA];
}

/// The coordinator, confined to a fresh `schema` (dropped with everything in it first).
async fn cluster_schema(schema: &str) -> Db {
    let url = citus_url();
    let admin: PgConnectOptions = url.parse().unwrap_or_else(|e| panic!("{url:?} is not a PostgreSQL URL: {e}"));
    let setup = async {
        let db = Db::connect(&url).await?;
        let citus = query_text(&db, "SELECT extversion FROM pg_extension WHERE extname = 'citus'").await;
        assert!(citus.is_some(), "the server at {url} has no citus extension: run scripts/dev-services");
        execute_sql(&db, &format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await;
        execute_sql(&db, &format!("CREATE SCHEMA {schema}")).await;
        db.close().await;
        Db::connect_postgres(admin.options([("search_path", schema)]), PoolConfig::default()).await
    };
    match setup.await {
        Ok(db) => db,
        Err(e) => service_unavailable("Citus coordinator", &url, e),
    }
}

/// Version 1 tables with rows: two countries, four tenants, three orders each.
async fn seed(db: &Db) {
    v1::Country::insert_many(
        db,
        &[
            v1::Country { code: "de".into(), name: "Germany".into() },
            v1::Country { code: "fr".into(), name: "France".into() },
        ],
    )
    .await
    .expect("countries");
    let tenants: Vec<v1::Tenant> = (1..=4)
        .map(|id| v1::Tenant {
            id,
            name: format!("tenant {id}"),
            country_code: if id % 2 == 0 { "de".into() } else { "fr".into() },
            country: Rel::NotLoaded,
        })
        .collect();
    v1::Tenant::insert_many(db, &tenants).await.expect("tenants");
    let orders: Vec<v1::Order> = (1..=4)
        .flat_map(|t| {
            (1..=3).map(move |i| v1::Order { id: t * 10 + i, tenant_id: t, total: t * 100 + i, tenant: Rel::NotLoaded })
        })
        .collect();
    v1::Order::insert_many(db, &orders).await.expect("orders");
}

/// Every row of the three tables, as text, in a fixed order: what must survive each move.
async fn all_rows(db: &Db) -> String {
    query_text(
        db,
        "SELECT concat_ws(' | ', \
         (SELECT string_agg(code || '=' || name, ',' ORDER BY code) FROM lay_countries), \
         (SELECT string_agg(id || ':' || name || ':' || country_code, ',' ORDER BY id) FROM lay_tenants), \
         (SELECT string_agg(tenant_id || '/' || id || '=' || total, ',' ORDER BY tenant_id, id) FROM lay_orders))",
    )
    .await
    .expect("rows")
}

async fn text_rows(db: &Db, sql: &str) -> Vec<String> {
    sqlx::query_scalar::<_, String>(AssertSqlSafe(sql.to_owned()))
        .fetch_all(db.pg_pool().expect("PostgreSQL"))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The foreign keys of the `lay_*` tables of the connection's schema.
async fn foreign_keys(db: &Db) -> Vec<String> {
    text_rows(
        db,
        "SELECT conname::text FROM pg_constraint WHERE contype = 'f' \
         AND connamespace = current_schema()::regnamespace AND conname LIKE 'lay\\_%' ORDER BY 1",
    )
    .await
}

/// The tables of the connection's schema Citus knows, as `table:method:column` (method `n`
/// reference, `h` hash; the distribution column of a hash-distributed one).
async fn citus_tables(db: &Db) -> Vec<String> {
    text_rows(
        db,
        "SELECT concat_ws(':', c.relname::text, p.partmethod::text, column_to_column_name(p.logicalrelid, p.partkey)) \
         FROM pg_dist_partition p JOIN pg_class c ON c.oid = p.logicalrelid \
         WHERE c.relnamespace = current_schema()::regnamespace ORDER BY 1",
    )
    .await
}

/// How many colocation groups the distributed tables of the connection's schema form.
async fn colocation_groups(db: &Db) -> Option<String> {
    query_text(
        db,
        "SELECT count(DISTINCT p.colocationid)::text FROM pg_dist_partition p JOIN pg_class c ON c.oid = p.logicalrelid \
         WHERE c.relnamespace = current_schema()::regnamespace AND p.partmethod = 'h'",
    )
    .await
}

/// Writes the two migrations (local tables, then the Citus layout) into `dir`.
fn generate(dir: &TempDir) -> String {
    let migrations = MigrationDir::new(&dir.0);
    migrations.generate("local_tables", &v1::MODELS).expect("generate v1").expect("a first migration");
    let second = migrations.generate("citus_layout", &v2::MODELS).expect("generate v2").expect("a layout migration");
    second.name
}

#[tokio::test]
async fn a_change_of_layout_moves_existing_rows_onto_the_cluster_and_back() {
    // Citus conversions in two transactions at once can deadlock on its metadata locks
    // (PostgreSQL then rolls one back): one cluster test at a time.
    let _turn = super::SERIAL.lock().await;
    let db = cluster_schema(SCHEMA).await;
    let dir = TempDir::new();
    let name = generate(&dir);
    let up = std::fs::read_to_string(dir.0.join(&name).join("up.postgres.sql")).expect("up.postgres.sql");
    assert!(up.contains("create_reference_table") && up.contains("create_distributed_table"), "{up}");
    let down = std::fs::read_to_string(dir.0.join(&name).join("down.postgres.sql")).expect("down.postgres.sql");
    assert!(down.contains("undistribute_table"), "{down}");
    assert!(
        !up.contains("-- DESTRUCTIVE:") && !down.contains("-- DESTRUCTIVE:"),
        "no row is lost either way:\n{up}\n{down}"
    );

    let migrator = Migrator::new(&db, &dir.0);
    assert_eq!(migrator.up(Some("0001_local_tables")).await.expect("up v1").len(), 1);
    seed(&db).await;
    let rows = all_rows(&db).await;
    assert!(rows.contains("4/43=403"), "{rows}");
    assert_eq!(citus_tables(&db).await, Vec::<String>::new(), "version 1 is local");

    assert_eq!(migrator.up(None).await.expect("up: change the layout").len(), 1);
    assert_eq!(citus_tables(&db).await, ["lay_countries:n", "lay_orders:h:tenant_id", "lay_tenants:h:id"]);
    assert_eq!(colocation_groups(&db).await.as_deref(), Some("1"), "orders are colocated with their tenants");
    let shards = query_text(
        &db,
        "SELECT string_agg(DISTINCT nodeport::text, ',' ORDER BY nodeport::text) FROM citus_shards \
         WHERE table_name = 'lay_orders'::regclass",
    )
    .await;
    assert_eq!(shards.as_deref(), Some("5441,5442"), "the orders' shards are on both workers");
    assert_eq!(all_rows(&db).await, rows, "every row is readable from the shards");
    assert_eq!(foreign_keys(&db).await, ["lay_orders_tenant_id_fkey", "lay_tenants_country_code_fkey"]);
    // The coordinator's own copy of the rows was freed once they were in the shards.
    let local = query_text(&db, "SELECT pg_relation_size('lay_orders')::text").await;
    assert_eq!(local.as_deref(), Some("0"), "the coordinator keeps no stale copy");
    let t = db.tenant(4_i64).strict();
    let orders = t.query::<v2::Order>().order_by(v2::Order::ID.asc()).all(&t).await.expect("one tenant's orders");
    assert_eq!(orders.iter().map(|o| o.total).collect::<Vec<_>>(), [401, 402, 403]);
    assert!(migrator.check().await.expect("check").is_empty(), "{:?}", migrator.check().await);
    // The foreign key holds on the cluster: an order of a tenant that does not exist fails.
    let orphan = v2::Order { tenant_id: 99, id: 1, total: 0, tenant: Rel::NotLoaded };
    assert!(orphan.insert(&db).await.is_err(), "the colocated foreign key is enforced");

    assert_eq!(migrator.down(1).await.expect("down: local again").len(), 1);
    assert_eq!(citus_tables(&db).await, Vec::<String>::new(), "no table is distributed any more");
    assert_eq!(all_rows(&db).await, rows, "the rows are back on the coordinator");
    assert_eq!(foreign_keys(&db).await, ["lay_orders_tenant_id_fkey", "lay_tenants_country_code_fkey"]);
    // And up once more, from the undone state.
    assert_eq!(migrator.up(None).await.expect("up again").len(), 1);
    assert_eq!(citus_tables(&db).await, ["lay_countries:n", "lay_orders:h:tenant_id", "lay_tenants:h:id"]);
    assert_eq!(all_rows(&db).await, rows);
    execute_sql(&db, &format!("DROP SCHEMA {SCHEMA} CASCADE")).await;
}

/// Kinds of events, a reference table (w1), then distributed by their code (w2).
mod w1 {
    use polystore::prelude::*;

    #[derive(Model, Debug, Clone, PartialEq)]
    #[model(table = "lay_kinds", reference)]
    pub struct Kind {
        #[model(primary_key)]
        pub code: String,
        pub label: String,
    }

    #[derive(Model, Debug, Clone, PartialEq)]
    #[model(table = "lay_events", distributed_by = id)]
    pub struct Event {
        #[model(primary_key)]
        pub id: i64,
        pub kind_code: String,
        pub payload: String,
        #[model(belongs_to(key = kind_code))]
        pub kind: Rel<Kind>,
    }

    pub const MODELS: [&polystore::ModelSchema; 2] = [Event::SCHEMA, Kind::SCHEMA];
}

/// Kinds distributed by their code; events distributed by their kind, colocated with it.
mod w2 {
    use polystore::prelude::*;

    #[derive(Model, Debug, Clone, PartialEq)]
    #[model(table = "lay_kinds", distributed_by = code)]
    pub struct Kind {
        #[model(primary_key)]
        pub code: String,
        pub label: String,
    }

    #[derive(Model, Debug, Clone, PartialEq)]
    #[model(table = "lay_events", distributed_by = kind_code, colocate_with = "lay_kinds", primary_key(kind_code, id))]
    pub struct Event {
        pub id: i64,
        pub kind_code: String,
        pub payload: String,
        #[model(belongs_to(key = kind_code))]
        pub kind: Rel<Kind>,
    }

    pub const MODELS: [&polystore::ModelSchema; 2] = [Event::SCHEMA, Kind::SCHEMA];
}

/// A reference table becomes a distributed one (undistributed, then distributed) and a
/// distributed table gets a new distribution column and colocation
/// (`alter_distributed_table`), with the foreign key between them moved out of the way and
/// back; down swaps both back.
#[tokio::test]
async fn reference_and_distributed_layouts_swap_with_their_rows() {
    // Citus conversions in two transactions at once can deadlock on its metadata locks
    // (PostgreSQL then rolls one back): one cluster test at a time.
    let _turn = super::SERIAL.lock().await;
    let db = cluster_schema(SWAP_SCHEMA).await;
    let dir = TempDir::new();
    let migrations = MigrationDir::new(&dir.0);
    migrations.generate("events", &w1::MODELS).expect("generate w1").expect("a first migration");
    let swap = migrations.generate("by_kind", &w2::MODELS).expect("generate w2").expect("a layout migration");
    let up = std::fs::read_to_string(dir.0.join(&swap.name).join("up.postgres.sql")).expect("up.postgres.sql");
    assert!(up.contains("alter_distributed_table") && up.contains("undistribute_table"), "{up}");
    let migrator = Migrator::new(&db, &dir.0);
    assert_eq!(migrator.up(Some("0001_events")).await.expect("up w1").len(), 1);
    assert_eq!(citus_tables(&db).await, ["lay_events:h:id", "lay_kinds:n"]);
    let kinds = ["click", "view", "buy"].map(|c| w1::Kind { code: c.into(), label: c.to_uppercase() });
    w1::Kind::insert_many(&db, &kinds).await.expect("kinds");
    let events: Vec<w1::Event> = (1..=30)
        .map(|id| w1::Event {
            id,
            kind_code: kinds[id as usize % 3].code.clone(),
            payload: format!("event {id}"),
            kind: Rel::NotLoaded,
        })
        .collect();
    w1::Event::insert_many(&db, &events).await.expect("events");
    let rows_sql = "SELECT concat_ws(' | ', \
        (SELECT string_agg(code || '=' || label, ',' ORDER BY code) FROM lay_kinds), \
        (SELECT string_agg(id || ':' || kind_code || ':' || payload, ',' ORDER BY id) FROM lay_events))";
    let rows = query_text(&db, rows_sql).await.expect("rows");

    assert_eq!(migrator.up(None).await.expect("up: swap the layouts").len(), 1);
    assert_eq!(citus_tables(&db).await, ["lay_events:h:kind_code", "lay_kinds:h:code"]);
    assert_eq!(colocation_groups(&db).await.as_deref(), Some("1"), "events are colocated with their kind");
    assert_eq!(query_text(&db, rows_sql).await.as_deref(), Some(rows.as_str()));
    assert_eq!(foreign_keys(&db).await, ["lay_events_kind_code_fkey"]);
    assert!(migrator.check().await.expect("check").is_empty(), "{:?}", migrator.check().await);

    assert_eq!(migrator.down(1).await.expect("down: swap back").len(), 1);
    assert_eq!(citus_tables(&db).await, ["lay_events:h:id", "lay_kinds:n"]);
    assert_eq!(query_text(&db, rows_sql).await.as_deref(), Some(rows.as_str()));
    assert_eq!(foreign_keys(&db).await, ["lay_events_kind_code_fkey"]);
    execute_sql(&db, &format!("DROP SCHEMA {SWAP_SCHEMA} CASCADE")).await;
}

/// The same migrations on PostgreSQL without Citus: the layout steps do nothing, the key
/// change and every row and foreign key stay as they were.
#[tokio::test]
async fn a_change_of_layout_does_nothing_on_plain_postgresql() {
    let test_db = polystore_tests::pg().await;
    let db = test_db.db().clone();
    let dir = TempDir::new();
    generate(&dir);
    let migrator = Migrator::new(&db, &dir.0);
    assert_eq!(migrator.up(Some("0001_local_tables")).await.expect("up v1").len(), 1);
    seed(&db).await;
    let rows = all_rows(&db).await;
    assert_eq!(migrator.up(None).await.expect("up: the layout migration").len(), 1);
    assert_eq!(all_rows(&db).await, rows);
    assert_eq!(foreign_keys(&db).await, ["lay_orders_tenant_id_fkey", "lay_tenants_country_code_fkey"]);
    let key = query_text(
        &db,
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'lay_orders_pkey' \
         AND connamespace = current_schema()::regnamespace",
    )
    .await;
    assert_eq!(key.as_deref(), Some("PRIMARY KEY (tenant_id, id)"));
    assert!(migrator.check().await.expect("check").is_empty(), "{:?}", migrator.check().await);
    assert_eq!(migrator.down(1).await.expect("down").len(), 1);
    assert_eq!(all_rows(&db).await, rows);
    assert_eq!(foreign_keys(&db).await, ["lay_orders_tenant_id_fkey", "lay_tenants_country_code_fkey"]);
    test_db.cleanup().await;
}
