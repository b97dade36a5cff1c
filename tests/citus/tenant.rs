//! Part of `tests/citus.rs`: what a tenant handle checks beyond queries — keys of by-key
//! operations, transactions, cached reads and Redis structures, relation loads that are not
//! colocated, hooked writes.

use super::*;

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
