//! Distributed and reference models on a real Citus cluster: the coordinator on port 5440 and
//! two workers (5441, 5442) that `scripts/dev-services` builds and starts
//! (`POLYSTORE_CITUS_URL`). Shard placement is read from `pg_dist_partition` and
//! `citus_shards`; whether a statement runs on one shard from Citus' `EXPLAIN` (`Task Count: 1`).
//!
//! The tests share the cluster's tables, so they take turns ([`SERIAL`]).
//!
//! Tenant scoping (`Db::tenant`): by-key operations, cached reads and Redis structures, relation
//! loads that are not colocated and hooked writes, each through a tenant handle.

use std::sync::{Arc, Mutex};

use polystore::prelude::*;
use polystore::sql::lower;
use polystore::sql::postgres::Postgres;
use polystore::{Error, ShardCheck, Value};
use polystore_tests::{assert_err, execute_sql, query_text, service_unavailable};
use sqlx::AssertSqlSafe;

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "citus_countries", reference)]
struct Country {
    #[model(primary_key)]
    code: String,
    name: String,
    /// Not colocated: a reference parent, and a distributed child through a column other than
    /// its distribution column; only the tenant filter keeps the load on one shard.
    #[model(has_many(foreign_key = country_code))]
    shipments: Rel<Vec<Shipment>>,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "citus_tenants", distributed_by = id)]
struct Tenant {
    #[model(primary_key)]
    id: i64,
    name: String,
    country_code: String,
    #[model(belongs_to(key = country_code))]
    country: Rel<Country>,
    #[model(has_many(foreign_key = tenant_id))]
    orders: Rel<Vec<Order>>,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(
    table = "citus_orders",
    distributed_by = tenant_id,
    colocate_with = "citus_tenants",
    primary_key(tenant_id, id),
    index(tenant_id, number, unique),
    cache(ttl = "5m"),
    dto(OrderPatch, update, only(total))
)]
struct Order {
    tenant_id: i64,
    id: i64,
    number: String,
    #[model(sorted_set)]
    total: i64,
    #[model(set_index)]
    country_code: String,
    #[model(belongs_to(key = tenant_id, on_delete = "cascade"))]
    tenant: Rel<Tenant>,
    #[model(belongs_to(key = country_code))]
    country: Rel<Country>,
}

/// Distributed by the tenant, soft-deleted; loaded from countries through `country_code`.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "citus_shipments", distributed_by = tenant_id, primary_key(tenant_id, id))]
struct Shipment {
    tenant_id: i64,
    id: i64,
    country_code: String,
    carrier: String,
    #[model(soft_delete)]
    deleted_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A distributed model with lifecycle hooks (see `impl Hooks for Parcel`).
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "citus_parcels", distributed_by = tenant_id, primary_key(tenant_id, id), hooks)]
struct Parcel {
    tenant_id: i64,
    id: i64,
    label: String,
}

/// What `Parcel`'s hooks did and saw (the tests take turns, see [`SERIAL`]).
static PROBES: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn probe(entry: String) {
    PROBES.lock().unwrap().push(entry);
}

fn probes() -> Vec<String> {
    std::mem::take(&mut *PROBES.lock().unwrap())
}

/// `ok`, `ShardScope` or the other error's text.
fn outcome<T>(result: &polystore::Result<T>) -> String {
    match result {
        Ok(_) => "ok".into(),
        Err(Error::ShardScope { .. }) => "ShardScope".into(),
        Err(e) => format!("error: {e}"),
    }
}

impl Hooks for Parcel {
    /// A `move` label moves the row to tenant 1: the write as hooked must still be checked.
    async fn before_insert(&mut self, _cx: &mut HookCx<'_>) -> polystore::Result<()> {
        probe(format!("before_insert {}/{}", self.tenant_id, self.id));
        if self.label == "move" {
            self.tenant_id = 1;
        }
        Ok(())
    }

    async fn before_update(&mut self, _cx: &mut HookCx<'_>) -> polystore::Result<()> {
        probe(format!("before_update {}/{}", self.tenant_id, self.id));
        Ok(())
    }

    /// A `probe` label tries, through the hook's executor, another tenant's key, its own
    /// tenant's key, a query without the tenant and a relation load that is not colocated.
    async fn after_update(&mut self, cx: &mut HookCx<'_>) -> polystore::Result<()> {
        if self.label == "probe" {
            probe(format!("other key {}", outcome(&Order::find(cx.db(), (1, 1)).await)));
            probe(format!("own key {}", outcome(&Order::find(cx.db(), (self.tenant_id, 1)).await)));
            probe(format!("unscoped query {}", outcome(&Order::query().count(cx.db()).await)));
            let loaded = Country::query().with(Country::SHIPMENTS).all(cx.db()).await;
            let tenants: Vec<i64> = match &loaded {
                Ok(countries) => countries
                    .iter()
                    .flat_map(|c| c.shipments.get().into_iter().flatten())
                    .map(|s| s.tenant_id)
                    .collect(),
                Err(_) => Vec::new(),
            };
            probe(format!("load {} {tenants:?}", outcome(&loaded)));
        }
        Ok(())
    }

    async fn before_delete(&self, _cx: &mut HookCx<'_>) -> polystore::Result<()> {
        probe(format!("before_delete {}/{}", self.tenant_id, self.id));
        Ok(())
    }
}

/// A local (neither distributed nor reference) model pointing at a distributed one: Citus
/// refuses that foreign key, which the derive of `AuditNote` alone cannot know.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "citus_audit_notes")]
struct AuditNote {
    #[model(primary_key)]
    id: i64,
    tenant_id: i64,
    #[model(belongs_to(key = tenant_id))]
    tenant: Rel<Tenant>,
}

const MODELS: [&polystore::ModelSchema; 3] = [Order::SCHEMA, Country::SCHEMA, Tenant::SCHEMA];

/// The models of the tenant-scoping tests, created by [`tenant_cluster`] only (the layout
/// tests list every `citus_` table).
const SCOPING_MODELS: [&polystore::ModelSchema; 2] = [Shipment::SCHEMA, Parcel::SCHEMA];

/// One test at a time on the shared tables.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn citus_url() -> String {
    std::env::var("POLYSTORE_CITUS_URL")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5440/polystore_test".to_owned())
}

/// The coordinator, with fresh tables for the models (dropped and created again).
async fn cluster() -> Db {
    let url = citus_url();
    let db = match Db::connect(&url).await {
        Ok(db) => db,
        Err(e) => service_unavailable("Citus coordinator", &url, e),
    };
    let citus = query_text(&db, "SELECT extversion FROM pg_extension WHERE extname = 'citus'").await;
    assert!(
        citus.is_some(),
        "the server at {url} has no citus extension: run scripts/dev-services, which builds Citus and \
         starts a coordinator on 5440 with workers on 5441 and 5442"
    );
    db.drop_all(&[AuditNote::SCHEMA]).await.expect("drop audit notes");
    db.drop_all(&SCOPING_MODELS).await.expect("drop the tenant-scoping tables");
    db.drop_all(&MODELS).await.expect("drop tables");
    db.create_all(&MODELS).await.expect("create tables on the cluster");
    db
}

/// [`cluster`] with the tenant-scoping tables too, seeded: the rows of [`seed`], one shipment
/// per tenant (`(t, 1)`, to the tenant's country) and one parcel per tenant (`(t, 1)`).
async fn tenant_cluster() -> Db {
    let db = cluster().await;
    db.create_all(&SCOPING_MODELS).await.expect("create the tenant-scoping tables");
    seed(&db).await;
    let shipments: Vec<Shipment> = (1..=4)
        .map(|t| Shipment {
            tenant_id: t,
            id: 1,
            country_code: tenant(t).country_code,
            carrier: format!("carrier {t}"),
            deleted_at: None,
        })
        .collect();
    Shipment::insert_many(&db, &shipments).await.expect("shipments");
    Parcel::insert_many(&db, &(1..=4).map(|t| parcel(t, 1, "parcel")).collect::<Vec<_>>()).await.expect("parcels");
    probes();
    db
}

fn parcel(tenant_id: i64, id: i64, label: &str) -> Parcel {
    Parcel { tenant_id, id, label: label.into() }
}

/// `tenant_id:id:total` of every order, in key order (what a refused write must leave as is).
async fn order_rows(db: &Db) -> Vec<String> {
    text_rows(db, "SELECT tenant_id || ':' || id || ':' || total FROM citus_orders ORDER BY tenant_id, id").await
}

fn tenant(id: i64) -> Tenant {
    Tenant {
        id,
        name: format!("tenant {id}"),
        country_code: if id % 2 == 0 { "de".into() } else { "fr".into() },
        country: Rel::NotLoaded,
        orders: Rel::NotLoaded,
    }
}

fn order(tenant_id: i64, id: i64) -> Order {
    Order {
        tenant_id,
        id,
        number: format!("{tenant_id}-{id}"),
        total: tenant_id * 100 + id,
        country_code: "de".into(),
        tenant: Rel::NotLoaded,
        country: Rel::NotLoaded,
    }
}

/// Two countries, tenants 1..=4 with three orders each.
async fn seed(db: &Db) {
    Country::insert_many(
        db,
        &[
            Country { code: "de".into(), name: "Germany".into(), shipments: Rel::NotLoaded },
            Country { code: "fr".into(), name: "France".into(), shipments: Rel::NotLoaded },
        ],
    )
    .await
    .expect("countries");
    Tenant::insert_many(db, &(1..=4).map(tenant).collect::<Vec<_>>()).await.expect("tenants");
    let orders: Vec<Order> = (1..=4).flat_map(|t| (1..=3).map(move |i| order(t, i))).collect();
    Order::insert_many(db, &orders).await.expect("orders");
}

async fn text_rows(db: &Db, sql: &str) -> Vec<String> {
    sqlx::query_scalar::<_, String>(AssertSqlSafe(sql.to_owned()))
        .fetch_all(db.pg_pool().expect("PostgreSQL"))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Citus' `EXPLAIN` of a statement polystore renders, with its integer parameters bound.
async fn explain(db: &Db, stmt: &polystore::sql::Statement) -> String {
    let mut q = sqlx::query_scalar::<_, String>(AssertSqlSafe(format!("EXPLAIN {}", stmt.sql)));
    for p in &stmt.params {
        q = match &p.value {
            Value::I64(n) => q.bind(*n),
            other => panic!("explain binds integers only, got {other:?}"),
        };
    }
    q.fetch_all(db.pg_pool().expect("PostgreSQL")).await.expect("explain").join("\n")
}

#[tokio::test]
async fn create_all_makes_reference_and_colocated_distributed_tables() {
    let _turn = SERIAL.lock().await;
    let db = cluster().await;
    let methods = text_rows(
        &db,
        "SELECT logicalrelid::text || ':' || partmethod::text FROM pg_dist_partition \
         WHERE logicalrelid::text LIKE 'citus\\_%' ORDER BY 1",
    )
    .await;
    assert_eq!(methods, ["citus_countries:n", "citus_orders:h", "citus_tenants:h"], "reference is `n`, hash `h`");
    let colocation = text_rows(
        &db,
        "SELECT DISTINCT colocationid::text FROM pg_dist_partition \
         WHERE logicalrelid IN ('citus_orders'::regclass, 'citus_tenants'::regclass)",
    )
    .await;
    assert_eq!(colocation.len(), 1, "orders and tenants share a colocation group: {colocation:?}");
    let column = query_text(
        &db,
        "SELECT column_to_column_name(logicalrelid, partkey) FROM pg_dist_partition \
         WHERE logicalrelid = 'citus_orders'::regclass",
    )
    .await;
    assert_eq!(column.as_deref(), Some("tenant_id"));
    // Shards spread over both workers; the reference table has a copy on every node.
    let order_nodes = query_text(
        &db,
        "SELECT string_agg(DISTINCT nodeport::text, ',' ORDER BY nodeport::text) FROM citus_shards \
         WHERE table_name = 'citus_orders'::regclass",
    )
    .await;
    assert_eq!(order_nodes.as_deref(), Some("5441,5442"));
    let country_copies = query_text(
        &db,
        "SELECT count(DISTINCT nodeport)::text FROM citus_shards WHERE table_name = 'citus_countries'::regclass",
    )
    .await;
    assert_eq!(country_copies.as_deref(), Some("3"), "coordinator and both workers");
    // The foreign keys were added after distribution (a reference and a colocated one).
    let fks = text_rows(
        &db,
        "SELECT conname::text FROM pg_constraint WHERE conrelid = 'citus_orders'::regclass AND contype = 'f' ORDER BY 1",
    )
    .await;
    assert_eq!(fks, ["citus_orders_country_code_fkey", "citus_orders_tenant_id_fkey"]);
    // Idempotent: existing distributed tables are kept.
    db.create_all(&MODELS).await.expect("second create_all");
    // Rows land on the shard of their tenant, and a tenant's orders on the one of its row.
    seed(&db).await;
    let placements = query_text(
        &db,
        "SELECT count(DISTINCT (SELECT nodeport FROM citus_shards s WHERE s.shardid = \
         get_shard_id_for_distribution_column('citus_orders', o.tenant_id)))::text FROM citus_orders o",
    )
    .await;
    assert_eq!(placements.as_deref(), Some("2"), "four tenants' orders are on both workers");
}

#[tokio::test]
async fn create_all_refuses_a_local_table_referring_to_a_distributed_one() {
    let _turn = SERIAL.lock().await;
    let db = cluster().await;
    let err = db.create_all(&[Country::SCHEMA, Tenant::SCHEMA, AuditNote::SCHEMA]).await;
    match err {
        Err(Error::Config(message)) => {
            assert!(message.contains("AuditNote") && message.contains("Tenant"), "names both models: {message}");
        }
        other => panic!("expected Error::Config, got {other:?}"),
    }
    let exists = query_text(&db, "SELECT to_regclass('citus_audit_notes')::text").await;
    assert_eq!(exists, None, "nothing was created");
}

#[tokio::test]
async fn tenant_scoped_reads_and_relation_loads_run_on_one_shard() {
    let _turn = SERIAL.lock().await;
    let db = cluster().await;
    seed(&db).await;
    let t = db.tenant(2_i64).strict();

    // The scoped query returns the tenant's rows only, and Citus routes it to one shard.
    let orders = t.query::<Order>().order_by(Order::ID.asc()).all(&t).await.expect("tenant orders");
    assert_eq!(orders.iter().map(|o| (o.tenant_id, o.id)).collect::<Vec<_>>(), [(2, 1), (2, 2), (2, 3)]);
    let plan = explain(&db, &lower::select(&Postgres, Order::SCHEMA, &t.query::<Order>()).unwrap()).await;
    assert!(plan.contains("Task Count: 1"), "a router plan:\n{plan}");
    let unscoped = explain(&db, &lower::select(&Postgres, Order::SCHEMA, &Order::query()).unwrap()).await;
    assert!(unscoped.contains("Task Count: 32"), "every shard without the tenant:\n{unscoped}");

    // Relation loads: the colocated has_many and the reference belongs_to, on the strict
    // handle (a multi-shard load would fail).
    let loaded =
        t.query::<Tenant>().with(Tenant::ORDERS).with(Tenant::COUNTRY).one(&t).await.expect("tenant with its orders");
    let loaded_orders = loaded.orders.get().expect("orders loaded");
    assert_eq!(loaded_orders.len(), 3);
    assert!(loaded_orders.iter().all(|o| o.tenant_id == 2));
    assert_eq!(loaded.country.get().map(|c| c.name.as_str()), Some("Germany"));
    let with_country =
        t.query::<Order>().with(Order::COUNTRY).with(Order::TENANT).all(&t).await.expect("orders with country");
    assert!(with_country.iter().all(|o| o.country.get().is_some_and(|c| c.code == "de")));
    assert!(with_country.iter().all(|o| o.tenant.get().is_some_and(|x| x.id == 2)));

    // By key: the key includes the tenant.
    assert_eq!(t.find::<Order>((2, 3)).await.expect("find").total, 203);
    assert_eq!(Order::find(&t, (2, 1)).await.expect("find").number, "2-1");

    // Colocated join and reference-table join (SQL the application writes): one shard.
    let join = explain_sql(
        &db,
        "SELECT o.number, t.name, c.name FROM citus_orders o \
         JOIN citus_tenants t ON t.id = o.tenant_id \
         JOIN citus_countries c ON c.code = o.country_code WHERE o.tenant_id = 2",
    )
    .await;
    assert!(join.contains("Task Count: 1"), "colocated and reference joins on one shard:\n{join}");
    assert!(!join.contains("Repartition"), "no data moves between shards:\n{join}");
}

async fn explain_sql(db: &Db, sql: &str) -> String {
    text_rows(db, &format!("EXPLAIN {sql}")).await.join("\n")
}

#[tokio::test]
async fn tenant_writes_stay_in_the_tenant() {
    let _turn = SERIAL.lock().await;
    let db = cluster().await;
    seed(&db).await;
    let t = db.tenant(3_i64);

    let stored = t.insert(&order(3, 10)).await.expect("own tenant's row");
    assert_eq!(stored.number, "3-10");
    assert_err!(t.insert(&order(4, 11)).await, Error::ShardScope { model: "Order", .. });
    assert_err!(t.insert_many(&[order(3, 12), order(1, 12)]).await, Error::ShardScope { .. });
    assert_eq!(
        query_text(&db, "SELECT count(*)::text FROM citus_orders WHERE id IN (11, 12)").await.as_deref(),
        Some("0")
    );
    assert_err!(t.find::<Order>((1, 1)).await, Error::ShardScope { .. });

    // Bulk writes through the scoped query touch only the tenant's rows.
    let changed = t.query::<Order>().update_many(&t, vec![Order::TOTAL.set(0)]).await.expect("update_many");
    assert_eq!(changed, 4);
    assert_eq!(
        query_text(&db, "SELECT count(*)::text FROM citus_orders WHERE total = 0").await.as_deref(),
        Some("4"),
        "other tenants untouched"
    );
    let deleted = t.query::<Order>().filter(Order::ID.eq(10)).delete_many(&t).await.expect("delete_many");
    assert_eq!(deleted, 1);
    // A query naming another tenant is refused on a scoped handle, strict or not.
    assert_err!(Order::query().filter(Order::TENANT_ID.eq(1)).all(&t).await, Error::ShardScope { .. });
    assert_err!(t.scope(Order::query().filter(Order::TENANT_ID.eq(1))).count(&t).await, Error::ShardScope { .. });
    assert_eq!(query_text(&db, "SELECT count(*)::text FROM citus_orders").await.as_deref(), Some("12"));
}

/// Every operation by primary key run through a tenant handle compares the key's tenant with
/// the handle's: another tenant's key is `Error::ShardScope` before anything runs, on a handle
/// that only warns about multi-shard queries too.
#[tokio::test]
async fn tenant_handle_refuses_another_tenants_key_in_every_by_key_operation() {
    let _turn = SERIAL.lock().await;
    let db = tenant_cluster().await;
    let t = db.tenant(2_i64);
    let before = order_rows(&db).await;
    let theirs = Order::find(&db, (1, 1)).await.expect("tenant 1's order");
    let mut changed = theirs.clone();
    changed.total = 0;

    // Reads.
    assert_err!(Order::find(&t, (1, 1)).await, Error::ShardScope { model: "Order", .. });
    assert_err!(Order::get(&t, (1, 1)).await, Error::ShardScope { .. });
    assert_err!(t.find::<Order>((1, 1)).await, Error::ShardScope { .. });
    // Writes of a whole row, by key, by patch; inserts through the plain `ModelExt` calls.
    assert_err!(changed.update(&t).await, Error::ShardScope { .. });
    assert_err!(changed.upsert(&t).await, Error::ShardScope { .. });
    assert_err!(
        changed.upsert_on(&t, &[Order::TENANT_ID.into(), Order::NUMBER.into()]).await,
        Error::ShardScope { .. }
    );
    assert_err!(OrderPatch { total: Some(0) }.update(&t, (1, 1)).await, Error::ShardScope { .. });
    assert_err!(theirs.delete(&t).await, Error::ShardScope { .. });
    assert_err!(Order::delete_by_key(&t, (1, 2)).await, Error::ShardScope { .. });
    assert_err!(theirs.force_delete(&t).await, Error::ShardScope { .. });
    assert_err!(Order::force_delete_by_key(&t, (1, 3)).await, Error::ShardScope { .. });
    assert_err!(order(1, 20).insert(&t).await, Error::ShardScope { .. });
    assert_err!(order(1, 21).insert_with_key(&t).await, Error::ShardScope { .. });
    assert_err!(Order::insert_many(&t, &[order(2, 22), order(1, 22)]).await, Error::ShardScope { .. });
    assert_err!(t.insert_many(&[order(2, 23), order(1, 23)]).await, Error::ShardScope { .. });
    assert_eq!(order_rows(&db).await, before, "nothing written");

    // A soft-delete model: the stamp (an update by key) and the restore.
    assert_err!(Shipment::delete_by_key(&t, (1, 1)).await, Error::ShardScope { model: "Shipment", .. });
    Shipment::delete_by_key(&db, (3, 1)).await.expect("soft-delete tenant 3's shipment");
    assert_err!(Shipment::restore_by_key(&t, (3, 1)).await, Error::ShardScope { .. });
    let live = text_rows(&db, "SELECT tenant_id::text FROM citus_shipments WHERE deleted_at IS NULL ORDER BY 1").await;
    assert_eq!(live, ["1", "2", "4"], "tenant 1's shipment kept, tenant 3's still deleted");

    // The tenant's own keys work, through the same calls.
    let mut mine = Order::find(&t, (2, 1)).await.expect("own key");
    assert!(Order::get(&t, (2, 9)).await.expect("own key, no row").is_none());
    mine.total = 7;
    assert_eq!(mine.update(&t).await.expect("update").total, 7);
    assert_eq!(OrderPatch { total: Some(8) }.update(&t, (2, 1)).await.expect("patch").total, 8);
    assert_eq!(order(2, 30).insert(&t).await.expect("insert").number, "2-30");
    assert!(Order::delete_by_key(&t, (2, 30)).await.expect("delete"));
    assert!(Shipment::delete_by_key(&t, (2, 1)).await.expect("soft-delete"));
    assert_eq!(Shipment::restore_by_key(&t, (2, 1)).await.expect("restore").carrier, "carrier 2");
}

/// A transaction begun on a tenant handle is scoped like the handle, savepoints too; a
/// transaction begun on the plain handle is not.
#[tokio::test]
async fn tenant_transactions_are_scoped_like_the_handle() {
    let _turn = SERIAL.lock().await;
    let db = tenant_cluster().await;
    let t = db.tenant(2_i64).strict();
    let before = order_rows(&db).await;

    let mut tx = t.begin().await.expect("begin on the tenant handle");
    assert_err!(Order::find(&mut tx, (1, 1)).await, Error::ShardScope { model: "Order", .. });
    assert_err!(order(1, 40).insert(&mut tx).await, Error::ShardScope { .. });
    // Strict: no multi-shard query, and never another tenant's rows.
    assert_err!(Order::query().all(&mut tx).await, Error::ShardScope { .. });
    assert_err!(Order::query().filter(Order::TENANT_ID.eq(1)).delete_many(&mut tx).await, Error::ShardScope { .. });
    let mine = t.query::<Order>().order_by(Order::ID.asc()).with(Order::COUNTRY).all(&mut tx).await.expect("own rows");
    assert_eq!(mine.iter().map(|o| (o.tenant_id, o.id)).collect::<Vec<_>>(), [(2, 1), (2, 2), (2, 3)]);
    let countries = Country::query().with(Country::SHIPMENTS).all(&mut tx).await.expect("relation load");
    let loaded: Vec<i64> =
        countries.iter().flat_map(|c| c.shipments.get().expect("loaded")).map(|s| s.tenant_id).collect();
    assert_eq!(loaded, [2], "a load that is not colocated gets the tenant filter in the transaction too");
    order(2, 40).insert(&mut tx).await.expect("own insert");
    {
        let mut sp = tx.begin().await.expect("savepoint");
        // The savepoint keeps the scope.
        assert_err!(Order::find(&mut sp, (3, 1)).await, Error::ShardScope { .. });
        order(2, 41).insert(&mut sp).await.expect("own insert in the savepoint");
        sp.rollback().await.expect("rollback the savepoint");
    }
    tx.rollback().await.expect("rollback");
    assert_eq!(order_rows(&db).await, before, "nothing written");

    let mut tx = t.begin().await.expect("begin");
    order(2, 42).insert(&mut tx).await.expect("own insert");
    tx.commit().await.expect("commit");
    assert!(Order::get(&db, (2, 42)).await.expect("read").is_some(), "committed");

    // The plain handle's transaction is not scoped (the shard check of the plain handle only).
    let mut plain = db.begin().await.expect("begin");
    assert!(Order::find(&mut plain, (1, 1)).await.is_ok());
    plain.rollback().await.expect("rollback");
    Order::delete_by_key(&db, (2, 42)).await.expect("clean up");
}

/// Cached reads answer from the cache before the store would: the key check runs first. The
/// Redis structures hold every tenant's rows; through a tenant handle they answer for the
/// tenant only.
#[tokio::test]
async fn tenant_cached_reads_and_redis_structures_stay_in_the_tenant() {
    let _turn = SERIAL.lock().await;
    tenant_cluster().await;
    let db = Db::connect(&citus_url()).await.expect("connect").with_cache(Cache::memory());
    Order::rebuild_redis_indexes(&db).await.expect("index every tenant's orders");
    // Tenant 1's row is in the cache: a hit must not be handed to tenant 2's handle either.
    assert!(Order::get_cached(&db, (1, 1)).await.expect("warm").is_some());
    let t = db.tenant(2_i64);
    assert_err!(Order::get_cached(&t, (1, 1)).await, Error::ShardScope { model: "Order", .. });
    assert_err!(Order::find_cached(&t, (1, 2)).await, Error::ShardScope { .. });
    assert_err!(Order::get_many_cached(&t, vec![(2, 1), (1, 1)]).await, Error::ShardScope { .. });
    assert_eq!(Order::get_cached(&t, (2, 1)).await.expect("own key").map(|o| o.total), Some(201));
    let mine = Order::get_many_cached(&t, vec![(2, 2), (2, 3)]).await.expect("own keys");
    assert_eq!(mine.iter().flatten().map(|o| o.total).collect::<Vec<_>>(), [202, 203]);

    // Every order is in country `de`: the set holds all twelve, the tenant gets its three.
    let de = Order::members_by_value(&t, Order::COUNTRY_CODE, "de").await.expect("members");
    let mut keys: Vec<(i64, i64)> = de.iter().map(|o| (o.tenant_id, o.id)).collect();
    keys.sort_unstable();
    assert_eq!(keys, [(2, 1), (2, 2), (2, 3)]);
    assert_eq!(Order::members_by_value(&db, Order::COUNTRY_CODE, "de").await.expect("all members").len(), 12);
    // The sorted set ranks every tenant's orders; the tenant's top and ranks are its own.
    let top: Vec<i64> = Order::top_by(&t, Order::TOTAL, 2).await.expect("top").iter().map(|(o, _)| o.total).collect();
    assert_eq!(top, [203, 202]);
    let global: Vec<i64> =
        Order::top_by(&db, Order::TOTAL, 2).await.expect("top").iter().map(|(o, _)| o.total).collect();
    assert_eq!(global, [403, 402]);
    let range = Order::range_by_score(&t, Order::TOTAL, 100.0, 300.0).await.expect("range");
    assert_eq!(range.iter().map(|(o, _)| o.total).collect::<Vec<_>>(), [201, 202, 203]);
    assert_eq!(Order::rank_by(&t, Order::TOTAL, (2, 3)).await.expect("rank"), Some(0));
    assert_eq!(Order::rank_by(&db, Order::TOTAL, (2, 3)).await.expect("rank"), Some(6));
    assert_err!(Order::rank_by(&t, Order::TOTAL, (1, 1)).await, Error::ShardScope { .. });
}

/// A `has_many` through a column other than the target's distribution column (here from a
/// reference model) is not colocated: through a tenant handle the load gets the tenant's
/// filter, so it runs on one shard (a strict handle accepts it) and returns the tenant's rows.
#[tokio::test]
async fn tenant_relation_loads_that_are_not_colocated_get_the_tenant_filter() {
    use tracing_subscriber::layer::SubscriberExt as _;
    let _turn = SERIAL.lock().await;
    let db = tenant_cluster().await;
    let warnings = Warnings::default();
    let _guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(warnings.clone()));
    tracing::callsite::rebuild_interest_cache();
    let shipments_of =
        |c: &Country| c.shipments.get().expect("loaded").iter().map(|s| (s.tenant_id, s.id)).collect::<Vec<_>>();

    let strict = db.tenant(2_i64).strict();
    let countries = Country::query()
        .with(Country::SHIPMENTS)
        .order_by(Country::CODE.asc())
        .all(&strict)
        .await
        .expect("a single-shard load on a strict handle");
    assert_eq!(countries.iter().map(shipments_of).collect::<Vec<_>>(), [vec![(2, 1)], vec![]], "de, fr");
    // Nested under a colocated load, on a handle that only warns: the tenant's rows, no warning.
    let t = db.tenant(3_i64);
    let tenant = t
        .query::<Tenant>()
        .with(Tenant::COUNTRY.with(Country::SHIPMENTS))
        .one(&t)
        .await
        .expect("tenant, country, shipments");
    assert_eq!(shipments_of(tenant.country.get().expect("country")), [(3, 1)], "tenant 1's `fr` shipment left out");
    assert_eq!(std::mem::take(&mut *warnings.0.lock().unwrap()), Vec::<String>::new());
    // The plain handle loads every tenant's shipments of the country (and warns).
    let all = Country::query().with(Country::SHIPMENTS).filter(Country::CODE.eq("fr")).one(&db).await.expect("plain");
    assert_eq!(shipments_of(&all), [(1, 1), (3, 1)]);
    assert_eq!(std::mem::take(&mut *warnings.0.lock().unwrap()).len(), 1);
}

/// A hooked write through a tenant handle opens its own transaction: the tenant check runs
/// before it opens (the hooks of a refused write never run), again on the row as the hooks
/// left it, and the hooks' executor (`cx.db()`) is scoped to the same tenant and mode.
#[tokio::test]
async fn hooked_writes_on_a_tenant_handle_stay_scoped() {
    let _turn = SERIAL.lock().await;
    let db = tenant_cluster().await;
    let t = db.tenant(2_i64).strict();
    let parcels = || text_rows(&db, "SELECT tenant_id || ':' || id || ':' || label FROM citus_parcels ORDER BY 1");
    let before = parcels().await;

    assert_err!(parcel(1, 1, "taken").update(&t).await, Error::ShardScope { model: "Parcel", .. });
    assert_err!(Parcel::delete_by_key(&t, (1, 1)).await, Error::ShardScope { .. });
    assert_err!(parcel(1, 1, "parcel").delete(&t).await, Error::ShardScope { .. });
    assert_err!(t.insert(&parcel(1, 5, "new")).await, Error::ShardScope { .. });
    assert_eq!(probes(), Vec::<String>::new(), "no hook ran");
    // The hook moves the row to tenant 1: refused as written, rolled back.
    assert_err!(t.insert(&parcel(2, 6, "move")).await, Error::ShardScope { .. });
    assert_eq!(probes(), ["before_insert 2/6"]);
    assert_eq!(parcels().await, before, "nothing written");

    let stored = parcel(2, 1, "probe").update(&t).await.expect("own parcel");
    assert_eq!(stored.label, "probe");
    assert_eq!(
        probes(),
        ["before_update 2/1", "other key ShardScope", "own key ok", "unscoped query ShardScope", "load ok [2]",]
    );
    assert!(Parcel::delete_by_key(&t, (2, 1)).await.expect("own delete"));
    assert_eq!(probes(), ["before_delete 2/1"]);
}

/// Keeps the `polystore::shard` warnings emitted on this thread.
#[derive(Clone, Default)]
struct Warnings(Arc<Mutex<Vec<String>>>);

struct Message<'a>(&'a mut String);

impl tracing::field::Visit for Message<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            *self.0 = format!("{value:?}");
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Warnings {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() == "polystore::shard" && *event.metadata().level() == tracing::Level::WARN {
            let mut text = String::new();
            event.record(&mut Message(&mut text));
            self.0.lock().unwrap().push(text);
        }
    }
}

#[tokio::test]
async fn multi_shard_queries_are_warned_about_or_refused() {
    use tracing_subscriber::layer::SubscriberExt as _;
    let _turn = SERIAL.lock().await;
    let db = cluster().await;
    seed(&db).await;
    let warnings = Warnings::default();
    let _guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(warnings.clone()));
    tracing::callsite::rebuild_interest_cache();
    let taken = || std::mem::take(&mut *warnings.0.lock().unwrap());

    // Default: a warning naming the model, the operation and the column; the query runs.
    assert_eq!(Order::query().all(&db).await.expect("all").len(), 12);
    let w = taken();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("Order") && w[0].contains("tenant_id") && w[0].contains("select"), "{}", w[0]);
    assert_eq!(Order::query().filter(Order::TOTAL.gt(200)).count(&db).await.expect("count"), 9);
    assert_eq!(taken().len(), 1, "a filter on another column is multi-shard too");
    // Single-shard shapes and models that are not distributed: no warning.
    Order::query().filter(Order::TENANT_ID.eq(1)).all(&db).await.expect("one tenant");
    Order::query().filter(Order::TENANT_ID.is_in([4])).count(&db).await.expect("one tenant");
    Order::find(&db, (1, 2)).await.expect("by key");
    Country::query().all(&db).await.expect("reference table");
    assert_eq!(taken(), Vec::<String>::new());
    // A query over two tenants visits two shards: warned.
    Order::query().filter(Order::TENANT_ID.is_in([1, 2])).all(&db).await.expect("two tenants");
    assert_eq!(taken().len(), 1);

    // Strict mode on the handle: an error, nothing runs.
    let strict = Db::connect(&citus_url()).await.expect("connect").with_shard_check(ShardCheck::Strict);
    match Order::query().all(&strict).await {
        Err(Error::ShardScope { model: "Order", message }) => assert!(message.contains("tenant_id"), "{message}"),
        other => panic!("expected ShardScope, got {:?}", other.map(|r| r.len())),
    }
    assert_err!(Order::query().delete_many(&strict).await, Error::ShardScope { .. });
    assert_eq!(query_text(&db, "SELECT count(*)::text FROM citus_orders").await.as_deref(), Some("12"));
    assert_eq!(Order::query().filter(Order::TENANT_ID.eq(2)).count(&strict).await.expect("scoped"), 3);
    let mut tx = strict.begin().await.expect("begin");
    assert_err!(Order::query().count(&mut tx).await, Error::ShardScope { .. });
    tx.rollback().await.expect("rollback");
    // Off: silent.
    let quiet = Db::connect(&citus_url()).await.expect("connect").with_shard_check(ShardCheck::Off);
    Order::query().all(&quiet).await.expect("all");
    assert_eq!(taken(), Vec::<String>::new());
    // A strict tenant handle refuses the unscoped query, accepts the scoped one.
    let t = db.tenant(1_i64).strict();
    assert_err!(Order::query().all(&t).await, Error::ShardScope { .. });
    assert_eq!(t.query::<Order>().count(&t).await.expect("scoped"), 3);
}

#[tokio::test]
async fn cache_keys_of_one_tenant_share_a_redis_cluster_slot() {
    use polystore::cache::KeyScheme;
    let urls = polystore_tests::redis_cluster_urls();
    let url = urls.first().cloned().unwrap_or_else(|| "redis://127.0.0.1:7001/".into());
    let client = redis::Client::open(url.as_str()).expect("redis url");
    let conn = match client.get_multiplexed_async_connection().await {
        Ok(c) => c,
        Err(e) => service_unavailable("Redis Cluster", &url, e),
    };
    let keyslot = |key: String| {
        let mut conn = conn.clone();
        async move {
            let slot: i64 =
                redis::cmd("CLUSTER").arg("KEYSLOT").arg(&key).query_async(&mut conn).await.expect("keyslot");
            (key, slot)
        }
    };
    let keys = KeyScheme::new("citus-test");
    for tenant in [1_i64, 2, 77, -5] {
        let tagged = [
            keys.entry(Order::SCHEMA, &[Value::I64(tenant), Value::I64(1)]),
            keys.entry(Order::SCHEMA, &[Value::I64(tenant), Value::I64(999_999)]),
            keys.memo(Order::SCHEMA, &[Value::I64(tenant), Value::I64(3)]),
            keys.entry(Tenant::SCHEMA, &[Value::I64(tenant)]),
            keys.memo(Tenant::SCHEMA, &[Value::I64(tenant)]),
            // Keys of one tenant's rows: a set index and a lookup of the distribution column.
            keys.set_index(Order::SCHEMA, Order::TENANT_ID.index(), &Value::I64(tenant)),
            keys.set_index(Shipment::SCHEMA, Shipment::TENANT_ID.index(), &Value::I32(tenant as i32)),
            keys.unique(Tenant::SCHEMA, Tenant::ID.index(), &Value::I64(tenant)),
        ];
        let mut slots = Vec::new();
        for key in tagged {
            let (key, slot) = keyslot(key).await;
            assert_eq!(slot, i64::from(polystore::cache::keys::slot(&key)), "{key}");
            slots.push((key, slot));
        }
        assert!(slots.iter().all(|(_, s)| *s == slots[0].1), "one slot per tenant: {slots:?}");
    }
    // Different tenants spread over slots (these two hash apart).
    let (_, a) = keyslot(keys.entry(Order::SCHEMA, &[Value::I64(1), Value::I64(1)])).await;
    let (_, b) = keyslot(keys.entry(Order::SCHEMA, &[Value::I64(2), Value::I64(1)])).await;
    assert_ne!(a, b);
    // A model that is not distributed keeps row tags: its rows spread.
    let c1 = keys.entry(Country::SCHEMA, &[Value::Text("de".into())]);
    let c2 = keys.entry(Country::SCHEMA, &[Value::Text("fr".into())]);
    assert_ne!(keyslot(c1).await.1, keyslot(c2).await.1);
    // Structures over every tenant's rows keep tags of their own (docs/scaling.md): a set
    // index of another column is tagged by its value, a sorted set by nothing but its name.
    let by_country = keys.set_index(Order::SCHEMA, Order::COUNTRY_CODE.index(), &Value::Text("de".into()));
    assert!(by_country.ends_with("{sde}"), "{by_country}");
    let by_total = keys.sorted_set(Order::SCHEMA, Order::TOTAL.index());
    assert!(!by_total.contains('{'), "{by_total}");
}

/// A migrations directory of its own under the system temp dir, removed on drop.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let path = std::env::temp_dir().join(polystore_tests::unique_name("polystore_citus_migrations"));
        std::fs::create_dir_all(&path).expect("create a temp dir");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Drops the models' tables and the migration bookkeeping, for a migration test from scratch.
async fn fresh_for_migrations(db: &Db) {
    db.drop_all(&MODELS).await.expect("drop tables");
    execute_sql(db, "DROP TABLE IF EXISTS _polystore_migrations, _polystore_data_progress").await;
}

#[tokio::test]
async fn migrations_distribute_tables_and_roll_back_on_the_cluster() {
    use polystore::migrate::{MigrationDir, Migrator};
    let _turn = SERIAL.lock().await;
    let db = cluster().await;
    fresh_for_migrations(&db).await;
    let dir = TempDir::new();
    let generated = MigrationDir::new(&dir.0).generate("tenants", &MODELS).expect("generate").expect("a migration");
    let up = std::fs::read_to_string(dir.0.join(&generated.name).join("up.postgres.sql")).expect("up.postgres.sql");
    assert!(up.contains("create_distributed_table") && up.contains("create_reference_table"), "{up}");

    let migrator = Migrator::new(&db, &dir.0).allow_destructive(true);
    assert_eq!(migrator.up(None).await.expect("up").len(), 1);
    let methods = text_rows(
        &db,
        "SELECT logicalrelid::text || ':' || partmethod::text FROM pg_dist_partition \
         WHERE logicalrelid::text LIKE 'citus\\_%' ORDER BY 1",
    )
    .await;
    assert_eq!(methods, ["citus_countries:n", "citus_orders:h", "citus_tenants:h"]);
    let colocated = query_text(
        &db,
        "SELECT count(DISTINCT colocationid)::text FROM pg_dist_partition \
         WHERE logicalrelid IN ('citus_orders'::regclass, 'citus_tenants'::regclass)",
    )
    .await;
    assert_eq!(colocated.as_deref(), Some("1"));
    assert!(migrator.check().await.expect("check").is_empty(), "{:?}", migrator.check().await);
    seed(&db).await;
    let t = db.tenant(1_i64).strict();
    assert_eq!(t.query::<Order>().count(&t).await.expect("count"), 3);

    assert_eq!(migrator.down(1).await.expect("down").len(), 1);
    let left =
        query_text(&db, "SELECT count(*)::text FROM pg_dist_partition WHERE logicalrelid::text LIKE 'citus\\_%'").await;
    assert_eq!(left.as_deref(), Some("0"), "the distributed tables are gone");
    assert_eq!(query_text(&db, "SELECT to_regclass('citus_orders')::text").await, None);
    // And up again.
    assert_eq!(migrator.up(None).await.expect("up again").len(), 1);
    assert!(migrator.check().await.expect("check").is_empty());
    fresh_for_migrations(&db).await;
    db.create_all(&MODELS).await.expect("leave the tables as the other tests expect them");
}

/// The same migration on PostgreSQL without Citus: the distribution calls are skipped and the
/// tables are plain ones with their foreign keys.
#[tokio::test]
async fn distributed_migrations_also_apply_on_plain_postgresql() {
    use polystore::migrate::{MigrationDir, Migrator};
    let test_db = polystore_tests::pg().await;
    let db = test_db.db().clone();
    let dir = TempDir::new();
    MigrationDir::new(&dir.0).generate("tenants", &MODELS).expect("generate").expect("a migration");
    let migrator = Migrator::new(&db, &dir.0).allow_destructive(true);
    assert_eq!(migrator.up(None).await.expect("up").len(), 1);
    assert!(migrator.check().await.expect("check").is_empty(), "{:?}", migrator.check().await);
    let fks = query_text(
        &db,
        "SELECT string_agg(conname::text, ',' ORDER BY conname) FROM pg_constraint \
         WHERE conrelid = to_regclass('citus_orders') AND contype = 'f'",
    )
    .await;
    assert_eq!(fks.as_deref(), Some("citus_orders_country_code_fkey,citus_orders_tenant_id_fkey"));
    // create_all on plain PostgreSQL: no Citus, no distribution, no shard warnings turned errors.
    db.create_all(&MODELS).await.expect("create_all sees the migrated tables as they should be");
    assert_eq!(migrator.down(1).await.expect("down").len(), 1);
    test_db.cleanup().await;
}

/// Migrations that change the layout of existing tables with rows (issue #17): local tables
/// made reference and colocated distributed tables by `up`, local again by `down`, with every
/// row and foreign key kept; and the same files on PostgreSQL without Citus. The tables live
/// in a schema of their own on the cluster (`lay_migrations`), named `lay_*`, so these tests
/// share nothing with the `citus_*` tables of the tests above.
mod layout_migrations {
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
                (1..=3).map(move |i| v1::Order {
                    id: t * 10 + i,
                    tenant_id: t,
                    total: t * 100 + i,
                    tenant: Rel::NotLoaded,
                })
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
        let second =
            migrations.generate("citus_layout", &v2::MODELS).expect("generate v2").expect("a layout migration");
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
}
