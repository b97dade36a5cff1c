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

#[path = "citus/tenant.rs"]
mod tenant;

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
#[path = "citus/layout.rs"]
mod layout_migrations;
