//! Subqueries — `is_in` / `not_in` of a one-column projection, correlated `exists` /
//! `not_exists`, scalar subqueries in filters and projections — on PostgreSQL, SQLite (inline
//! SQL) and MongoDB (key pre-queries): the same rows and the same exact values everywhere,
//! including NULLs in the subquery, an empty subquery, a subquery of the same model, decimal
//! keys written with another scale, and subqueries nested in subqueries.

use super::*;
use polystore::query::{exists, not_exists};

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "csq_customers")]
struct Customer {
    #[model(primary_key, generated)]
    id: i64,
    name: String,
    country: String,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "csq_invoices")]
struct Invoice {
    #[model(primary_key, generated)]
    id: i64,
    customer_id: Option<i64>,
    total: Decimal,
    items: i32,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "csq_refunds")]
struct Refund {
    #[model(primary_key, generated)]
    id: i64,
    amount: Decimal,
}

const SCHEMAS: &[&polystore::ModelSchema] = &[Customer::SCHEMA, Invoice::SCHEMA, Refund::SCHEMA];

fn d(text: &str) -> Decimal {
    text.parse().expect("a decimal")
}

/// Customers 1 Ada UK, 2 Bob US, 3 Cy UK, 4 Dee FI. Invoices (customer, total, items):
/// 1 (1, 10.50, 3), 2 (1, 3.25, 1), 3 (2, 100.00, 10), 4 (none, 7.00, 2), 5 (4, 0.75, 4) —
/// average total 24.3, average items 4. Refunds 10.5 and 7 (the totals of invoices 1 and 4,
/// written with another scale).
async fn seed<E: Executor + Copy>(db: E) -> Result<()> {
    let customer = |name: &str, country: &str| Customer { id: 0, name: name.into(), country: country.into() };
    Customer::insert_many(
        db,
        &[customer("Ada", "UK"), customer("Bob", "US"), customer("Cy", "UK"), customer("Dee", "FI")],
    )
    .await?;
    let invoice = |customer_id, total: &str, items| Invoice { id: 0, customer_id, total: d(total), items };
    let invoices = [
        invoice(Some(1), "10.50", 3),
        invoice(Some(1), "3.25", 1),
        invoice(Some(2), "100.00", 10),
        invoice(None, "7.00", 2),
        invoice(Some(4), "0.75", 4),
    ];
    Invoice::insert_many(db, &invoices).await?;
    Refund::insert_many(db, &[Refund { id: 0, amount: d("10.5") }, Refund { id: 0, amount: d("7") }]).await?;
    Ok(())
}

async fn customers<E: Executor>(db: E, expr: Expr<Customer>) -> Result<Vec<i64>> {
    let rows = Customer::query().filter(expr).order_by(Customer::ID.asc()).all(db).await?;
    Ok(rows.into_iter().map(|c| c.id).collect())
}

async fn invoices<E: Executor>(db: E, expr: Expr<Invoice>) -> Result<Vec<i64>> {
    let rows = Invoice::query().filter(expr).order_by(Invoice::ID.asc()).all(db).await?;
    Ok(rows.into_iter().map(|i| i.id).collect())
}

store_test!(is_in_a_subquery_agrees_and_ignores_the_subquerys_nulls, |db| async move {
    db.create_all(SCHEMAS).await?;
    seed(&db).await?;
    let big = Invoice::query().filter(Invoice::TOTAL.gt(d("5"))).select(Invoice::CUSTOMER_ID);
    assert_eq!(customers(&db, Customer::ID.is_in(big.clone())).await?, [1, 2]);
    assert_eq!(customers(&db, Customer::ID.not_in(big)).await?, [3, 4]);
    // Invoice 4 has no customer: in SQL, `NOT IN` over a list holding NULL selects nothing;
    // polystore leaves the subquery's NULLs out, on every store.
    let billed = Invoice::query().select(Invoice::CUSTOMER_ID);
    assert_eq!(customers(&db, Customer::ID.not_in(billed)).await?, [3]);
    // The other way round (an optional field against a required one): a NULL value is in no
    // list and not outside it either.
    let uk = || Customer::query().filter(Customer::COUNTRY.eq("UK")).select(Customer::ID);
    assert_eq!(invoices(&db, Invoice::CUSTOMER_ID.is_in(uk())).await?, [1, 2]);
    assert_eq!(invoices(&db, Invoice::CUSTOMER_ID.not_in(uk())).await?, [3, 5]);
    assert_eq!(invoices(&db, Invoice::CUSTOMER_ID.is_in(uk()).not()).await?, [3, 5]);
    Ok::<_, Error>(())
});

store_test!(an_empty_subquery_matches_nothing_and_its_negation_everything, |db| async move {
    db.create_all(SCHEMAS).await?;
    seed(&db).await?;
    let none = || Customer::query().filter(Customer::COUNTRY.eq("NZ")).select(Customer::ID);
    assert_eq!(invoices(&db, Invoice::CUSTOMER_ID.is_in(none())).await?, Vec::<i64>::new());
    // `x NOT IN (empty)` holds even for a NULL x.
    assert_eq!(invoices(&db, Invoice::CUSTOMER_ID.not_in(none())).await?, [1, 2, 3, 4, 5]);
    let nobody = Invoice::query().filter(Invoice::ITEMS.gt(100));
    let linked = exists(nobody.clone()).on(Invoice::CUSTOMER_ID, Customer::ID);
    assert_eq!(customers(&db, linked).await?, Vec::<i64>::new());
    assert_eq!(customers(&db, not_exists(nobody).on(Invoice::CUSTOMER_ID, Customer::ID)).await?, [1, 2, 3, 4]);
    Ok::<_, Error>(())
});

store_test!(correlated_exists_links_any_two_fields_including_the_same_model, |db| async move {
    db.create_all(SCHEMAS).await?;
    seed(&db).await?;
    let large = || Invoice::query().filter(Invoice::TOTAL.ge(d("10")));
    assert_eq!(customers(&db, exists(large()).on(Invoice::CUSTOMER_ID, Customer::ID)).await?, [1, 2]);
    assert_eq!(customers(&db, not_exists(large()).on(Invoice::CUSTOMER_ID, Customer::ID)).await?, [3, 4]);
    // From the other side: invoice 4 has no customer, so no customer is linked to it and
    // `not_exists` holds for it.
    let from_uk = || Customer::query().filter(Customer::COUNTRY.eq("UK"));
    assert_eq!(invoices(&db, exists(from_uk()).on(Customer::ID, Invoice::CUSTOMER_ID)).await?, [1, 2]);
    assert_eq!(invoices(&db, not_exists(from_uk()).on(Customer::ID, Invoice::CUSTOMER_ID)).await?, [3, 4, 5]);
    // The same table inside and out: the inner rows are aliased, the outer row named by its
    // table.
    let cy = Customer::query().filter(Customer::NAME.eq("Cy"));
    assert_eq!(customers(&db, exists(cy).on(Customer::COUNTRY, Customer::COUNTRY)).await?, [1, 3]);
    let same_country = Customer::query().select(Customer::COUNTRY);
    assert_eq!(customers(&db, Customer::COUNTRY.is_in(same_country)).await?, [1, 2, 3, 4]);
    // Combined with other conditions and negated as a whole.
    let either = exists(large()).on(Invoice::CUSTOMER_ID, Customer::ID).or(Customer::NAME.eq("Cy"));
    assert_eq!(customers(&db, either.clone()).await?, [1, 2, 3]);
    assert_eq!(customers(&db, either.not()).await?, [4]);
    Ok::<_, Error>(())
});

store_test!(decimal_keys_written_with_another_scale_still_match, |db| async move {
    db.create_all(SCHEMAS).await?;
    seed(&db).await?;
    // 10.5 = 10.50 and 7 = 7.00: compared as numbers, not as the text SQLite stores.
    let refunded = || Refund::query().select(Refund::AMOUNT);
    assert_eq!(invoices(&db, Invoice::TOTAL.is_in(refunded())).await?, [1, 4]);
    assert_eq!(invoices(&db, Invoice::TOTAL.not_in(refunded())).await?, [2, 3, 5]);
    assert_eq!(invoices(&db, exists(Refund::query()).on(Refund::AMOUNT, Invoice::TOTAL)).await?, [1, 4]);
    Ok::<_, Error>(())
});

store_test!(scalar_subqueries_compare_and_compute_exactly, |db| async move {
    db.create_all(SCHEMAS).await?;
    seed(&db).await?;
    let avg_total = || Invoice::query().select(Invoice::TOTAL.avg());
    assert_eq!(invoices(&db, Invoice::TOTAL.calc().gt(avg_total())).await?, [3]);
    let avg_items = || Invoice::query().select(Invoice::ITEMS.avg());
    assert_eq!(invoices(&db, Invoice::ITEMS.calc().ge(avg_items())).await?, [3, 5]);
    assert_eq!(invoices(&db, Invoice::ITEMS.calc().gt(avg_items())).await?, [3]);
    let ada_max = Invoice::query().filter(Invoice::CUSTOMER_ID.eq(1)).select(Invoice::TOTAL.max());
    assert_eq!(invoices(&db, Invoice::TOTAL.calc().eq(ada_max)).await?, [1]);
    // Over no rows: NULL (nothing compares), a count 0.
    let none = || Invoice::query().filter(Invoice::ID.eq(99));
    assert_eq!(invoices(&db, Invoice::TOTAL.calc().lt(none().select(Invoice::TOTAL.max()))).await?, Vec::<i64>::new());
    let zero = none().select(count_all::<Invoice>());
    assert_eq!(invoices(&db, Invoice::ITEMS.calc().gt(zero)).await?, [1, 2, 3, 4, 5]);
    // In a projection: each total less the refunds' sum (17.5), exact with the operands' scale.
    let refunds = Refund::query().select(Refund::AMOUNT.sum());
    let rows = Invoice::query()
        .order_by(Invoice::ID.asc())
        .select((Invoice::ID, Invoice::TOTAL.calc() - refunds))
        .all(&db)
        .await?;
    let shown: Vec<(i64, String)> =
        rows.into_iter().map(|(id, gap)| (id, gap.map(|g| g.to_string()).unwrap_or_default())).collect();
    let expected = [(1, "-7.00"), (2, "-14.25"), (3, "82.50"), (4, "-10.50"), (5, "-16.75")];
    assert_eq!(shown, expected.map(|(id, gap)| (id, gap.to_owned())));
    Ok::<_, Error>(())
});

store_test!(subqueries_nest_and_work_in_counts_pages_updates_and_deletes, |db| async move {
    db.create_all(SCHEMAS).await?;
    seed(&db).await?;
    // Customers with an invoice above the average invoice: a scalar subquery inside the
    // filter of an `is_in` subquery.
    let above = Invoice::query()
        .filter(Invoice::TOTAL.calc().gt(Invoice::query().select(Invoice::TOTAL.avg())))
        .select(Invoice::CUSTOMER_ID);
    assert_eq!(customers(&db, Customer::ID.is_in(above)).await?, [2]);
    let uk = || Customer::query().filter(Customer::COUNTRY.eq("UK")).select(Customer::ID);
    let outside_uk = || Invoice::query().filter(Invoice::CUSTOMER_ID.not_in(uk()));
    assert_eq!(outside_uk().count(&db).await?, 2);
    assert!(outside_uk().exists(&db).await?);
    let page = outside_uk().order_by(Invoice::ID.asc()).paginate(&db, PageRequest::first(1)).await?;
    assert_eq!(page.items.iter().map(|i| i.id).collect::<Vec<_>>(), [3]);
    let counted = outside_uk().select(count_all::<Invoice>()).one(&db).await?;
    assert_eq!(counted, 2);
    assert_eq!(outside_uk().update_many(&db, [Invoice::ITEMS.set(0)]).await?, 2);
    assert_eq!(invoices(&db, Invoice::ITEMS.eq(0)).await?, [3, 5]);
    let linked = exists(Invoice::query().filter(Invoice::ITEMS.eq(0))).on(Invoice::CUSTOMER_ID, Customer::ID);
    assert_eq!(Customer::query().filter(linked).delete_many(&db).await?, 2);
    assert_eq!(customers(&db, Customer::ID.gt(0)).await?, [1, 3]);
    Ok::<_, Error>(())
});

store_test!(a_subquery_with_an_ordering_or_a_window_is_refused_on_every_store, |db| async move {
    db.create_all(SCHEMAS).await?;
    seed(&db).await?;
    let limited = Invoice::query().order_by(Invoice::ID.asc()).limit(1).select(Invoice::CUSTOMER_ID);
    assert_err!(customers(&db, Customer::ID.is_in(limited)).await, Error::Config(m) if m.contains("filter only"));
    let paged = Invoice::query().offset(1);
    let linked = exists(paged).on(Invoice::CUSTOMER_ID, Customer::ID);
    assert_err!(customers(&db, linked).await, Error::Config(m) if m.contains("filter only"));
    Ok::<_, Error>(())
});

store_test!(a_named_subquery_is_written_once_and_used_anywhere, |db| async move {
    db.create_all(SCHEMAS).await?;
    seed(&db).await?;
    // `WITH "uk" AS (..)` on SQL, used twice; a pre-query per use on MongoDB.
    let uk = || Customer::query().filter(Customer::COUNTRY.eq("UK")).select(Customer::ID).named("uk");
    let either = Invoice::CUSTOMER_ID.is_in(uk()).or(Invoice::CUSTOMER_ID.not_in(uk()).and(Invoice::ITEMS.gt(5)));
    assert_eq!(invoices(&db, either).await?, [1, 2, 3]);
    // A name is an identifier, quoted like any other: quotes and SQL in it are just text.
    let odd =
        Customer::query().filter(Customer::COUNTRY.eq("UK")).select(Customer::ID).named("uk\"); DROP TABLE x; --");
    assert_eq!(invoices(&db, Invoice::CUSTOMER_ID.is_in(odd)).await?, [1, 2]);
    // Nested named subqueries, in a count, an update and a delete.
    let uk_buyers =
        || Invoice::query().filter(Invoice::CUSTOMER_ID.is_in(uk())).select(Invoice::CUSTOMER_ID).named("uk_buyers");
    assert_eq!(Customer::query().filter(Customer::ID.is_in(uk_buyers())).count(&db).await?, 1);
    let renamed =
        Customer::query().filter(Customer::ID.is_in(uk_buyers())).update_many(&db, [Customer::NAME.set("Ada L.")]);
    assert_eq!(renamed.await?, 1);
    assert_eq!(Customer::query().filter(Customer::ID.not_in(uk_buyers())).delete_many(&db).await?, 3);
    assert_eq!(Customer::query().all(&db).await?.into_iter().map(|c| c.name).collect::<Vec<_>>(), ["Ada L."]);
    Ok::<_, Error>(())
});
