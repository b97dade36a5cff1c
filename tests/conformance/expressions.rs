//! Typed expressions on every store: arithmetic over integer, float and `Decimal` fields and
//! values, selected, filtered on, ordered by and assigned, with the same exact results —
//! decimals compared as text, scale included — on PostgreSQL, SQLite and MongoDB. Integer
//! division truncates toward zero, a decimal quotient is truncated at 16 places, and dividing
//! by zero gives NULL everywhere.

use polystore::prelude::*;
use polystore_tests::store_test;
use rust_decimal::Decimal;

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "c_lines")]
struct Line {
    #[model(primary_key)]
    id: i64,
    customer: String,
    unit_price: Decimal,
    quantity: i32,
    discount: Option<Decimal>,
    weight: f64,
    stock: i64,
    total: Option<Decimal>,
}

fn d(s: &str) -> Decimal {
    s.parse().expect("a decimal literal")
}

fn line(id: i64, customer: &str, price: &str, quantity: i32, discount: Option<&str>, stock: i64) -> Line {
    let weight = id as f64 * 0.5;
    Line {
        id,
        customer: customer.to_owned(),
        unit_price: d(price),
        quantity,
        discount: discount.map(d),
        weight,
        stock,
        total: None,
    }
}

/// Prices whose products lose digits through `f64` (`0.10 * 3`), negative quantities for the
/// truncation direction, a zero quantity for division by zero, a NULL discount.
async fn seed<E: Executor>(db: E) -> Result<()> {
    Line::insert_many(
        db,
        &[
            line(1, "ann", "0.10", 3, Some("0.05"), 7),
            line(2, "ann", "12345678901234567.89", 2, None, -7),
            line(3, "bob", "9.99", 0, Some("1.00"), 9_007_199_254_740_993),
            line(4, "bob", "2.50", -4, Some("0.10"), 5),
            line(5, "cy", "1.5", 7, None, -9),
        ],
    )
    .await?;
    Ok(())
}

fn texts(values: Vec<Option<Decimal>>) -> Vec<Option<String>> {
    values.into_iter().map(|v| v.map(|v| v.to_string())).collect()
}

fn some(values: &[&str]) -> Vec<Option<String>> {
    values.iter().map(|v| if *v == "NULL" { None } else { Some((*v).to_owned()) }).collect()
}

store_test!(decimal_arithmetic_is_exact_and_keeps_the_scale, |db| async move {
    db.create_all(&[Line::SCHEMA]).await?;
    seed(&db).await?;
    let q = || Line::query().order_by(Line::ID.asc());
    let products: Vec<Decimal> = q().select(Line::UNIT_PRICE * Line::QUANTITY).all(&db).await?;
    // A zero product reads back as `0` on PostgreSQL and SQLite, `0.00` on MongoDB (the
    // drivers' decimal decoding of zero): compared by value.
    assert!(products[2].is_zero());
    let products: Vec<String> = products.into_iter().map(|v| v.to_string()).collect();
    assert_eq!([&products[..2], &products[3..]].concat(), ["0.30", "24691357802469135.78", "-10.00", "10.5"]);
    // NULL in, NULL out; decimal minus decimal and a decimal value.
    let net: Vec<Option<Decimal>> = q().select((Line::UNIT_PRICE - Line::DISCOUNT) * 2 + d("0.001")).all(&db).await?;
    assert_eq!(texts(net), some(&["0.101", "NULL", "17.981", "4.801", "NULL"]));
    // coalesce gives NULL a value, in a select and in a filter.
    let net: Vec<Decimal> = q().select(Line::UNIT_PRICE - coalesce(Line::DISCOUNT, Decimal::ZERO)).all(&db).await?;
    let net: Vec<String> = net.into_iter().map(|v| v.to_string()).collect();
    assert_eq!(net, ["0.05", "12345678901234567.89", "8.99", "2.40", "1.5"]);
    let undiscounted: Vec<i64> = q().filter(coalesce(Line::DISCOUNT, d("0")).eq(0)).select(Line::ID).all(&db).await?;
    assert_eq!(undiscounted, [2, 5]);
    let negated: Vec<Decimal> = q().select(-Line::UNIT_PRICE).all(&db).await?;
    assert_eq!(negated[0].to_string(), "-0.10");
    assert_eq!(negated[1].to_string(), "-12345678901234567.89");
    Ok::<_, Error>(())
});

store_test!(division_truncates_and_zero_divisors_give_null, |db| async move {
    db.create_all(&[Line::SCHEMA]).await?;
    seed(&db).await?;
    let q = || Line::query().order_by(Line::ID.asc());
    // Integers: truncation toward zero (-7 / 2 = -3), exact beyond 2^53, NULL for / 0.
    let ints: Vec<(Option<i64>, Option<i32>)> =
        q().select((Line::STOCK / 2_i64, Line::QUANTITY / Line::QUANTITY)).all(&db).await?;
    assert_eq!(
        ints,
        [
            (Some(3), Some(1)),
            (Some(-3), Some(1)),
            (Some(4_503_599_627_370_496), None),
            (Some(2), Some(1)),
            (Some(-4), Some(1)),
        ]
    );
    // Decimals: truncated toward zero at 16 places, the same digits on every store (a quotient
    // wider than a `Decimal`'s 96-bit mantissa drops trailing zeros).
    let quotients: Vec<Option<Decimal>> = q().select(Line::UNIT_PRICE / Line::QUANTITY).all(&db).await?;
    assert_eq!(
        texts(quotients),
        some(&[
            "0.0333333333333333",
            "6172839450617283.9450000000000",
            "NULL",
            "-0.6250000000000000",
            "0.2142857142857142"
        ])
    );
    // Floats.
    let floats: Vec<Option<f64>> = q().select(Line::WEIGHT / Line::QUANTITY).all(&db).await?;
    assert_eq!(floats, [Some(0.5 / 3.0), Some(0.5), None, Some(-0.5), Some(2.5 / 7.0)]);
    Ok::<_, Error>(())
});

store_test!(expressions_filter_and_order_rows, |db| async move {
    db.create_all(&[Line::SCHEMA]).await?;
    seed(&db).await?;
    let amount = || Line::UNIT_PRICE * Line::QUANTITY;
    let ids = |q: Query<Line>| {
        let db = &db;
        async move { q.select(Line::ID).all(db).await }
    };
    // Decimal expression against an integer value, against a decimal value, and between two
    // expressions; `0.30` equals `0.3`.
    assert_eq!(ids(Line::query().filter(amount().gt(10)).order_by(Line::ID.asc())).await?, [2, 5]);
    assert_eq!(ids(Line::query().filter(amount().eq(d("0.3")))).await?, [1]);
    assert_eq!(ids(Line::query().filter(amount().lt(Line::UNIT_PRICE * 2)).order_by(Line::ID.asc())).await?, [3, 4]);
    // A NULL operand is unknown: neither the condition nor its negation selects the row.
    let cheap = || (Line::UNIT_PRICE - Line::DISCOUNT).lt(d("5"));
    assert_eq!(ids(Line::query().filter(cheap()).order_by(Line::ID.asc())).await?, [1, 4]);
    assert_eq!(ids(Line::query().filter(cheap().not())).await?, [3]);
    // Ordering by an expression, with NULL as the smallest value; rows and projections.
    assert_eq!(ids(Line::query().order_by(amount().desc())).await?, [2, 5, 1, 3, 4]);
    let by_net: Vec<i64> = Line::query()
        .order_by((Line::UNIT_PRICE - Line::DISCOUNT).asc())
        .order_by(Line::ID.asc())
        .select(Line::ID)
        .all(&db)
        .await?;
    assert_eq!(by_net, [2, 5, 1, 4, 3]);
    let rows = Line::query().order_by((Line::QUANTITY * Line::WEIGHT).asc()).limit(2).all(&db).await?;
    assert_eq!(rows.iter().map(|l| l.id).collect::<Vec<_>>(), [4, 3]);
    Ok::<_, Error>(())
});

store_test!(expressions_can_be_assigned, |db| async move {
    db.create_all(&[Line::SCHEMA]).await?;
    seed(&db).await?;
    let changed = Line::query()
        .filter(Line::QUANTITY.gt(0))
        .update_many(
            &db,
            [Line::TOTAL.set_to(Line::UNIT_PRICE * Line::QUANTITY), Line::STOCK.set_to(Line::STOCK - 1_i64)],
        )
        .await?;
    assert_eq!(changed, 3);
    let rows: Vec<(Option<Decimal>, i64)> =
        Line::query().order_by(Line::ID.asc()).select((Line::TOTAL, Line::STOCK)).all(&db).await?;
    let rows: Vec<(Option<String>, i64)> = rows.into_iter().map(|(t, s)| (t.map(|t| t.to_string()), s)).collect();
    assert_eq!(
        rows,
        [
            (Some("0.30".to_owned()), 6),
            (Some("24691357802469135.78".to_owned()), -8),
            (None, 9_007_199_254_740_993),
            (None, 5),
            (Some("10.5".to_owned()), -10),
        ]
    );
    Ok::<_, Error>(())
});

store_test!(aggregates_over_expressions_order_filter_and_group, |db| async move {
    db.create_all(&[Line::SCHEMA]).await?;
    seed(&db).await?;
    let revenue = || (Line::UNIT_PRICE * Line::QUANTITY).sum();
    // Revenue per customer, top first, groups with revenue above 5 only.
    let rows: Vec<(String, Option<Decimal>)> = Line::query()
        .group_by(Line::CUSTOMER)
        .having(revenue().gt(5))
        .order_by(revenue().desc())
        .select((Line::CUSTOMER, revenue()))
        .all(&db)
        .await?;
    let rows: Vec<(String, Option<String>)> = rows.into_iter().map(|(c, r)| (c, r.map(|r| r.to_string()))).collect();
    assert_eq!(
        rows,
        [("ann".to_owned(), Some("24691357802469136.08".to_owned())), ("cy".to_owned(), Some("10.5".to_owned()))]
    );
    // A decimal average is the exact sum over the count, truncated at 16 places.
    let averages: Vec<Option<Decimal>> = Line::query()
        .group_by(Line::CUSTOMER)
        .order_by(Line::CUSTOMER.asc())
        .select((Line::UNIT_PRICE * Line::QUANTITY).avg())
        .all(&db)
        .await?;
    assert_eq!(
        texts(averages),
        some(&["12345678901234568.040000000000", "-5.0000000000000000", "10.5000000000000000"])
    );
    // Integer and float aggregates over expressions; one row without grouping.
    let (stock, weight, most): (Option<i64>, Option<f64>, Option<i64>) = Line::query()
        .select(((Line::STOCK * 2_i64).sum(), (Line::WEIGHT * 2).avg(), (Line::STOCK - 1_i64).max()))
        .one(&db)
        .await?;
    assert_eq!((stock, weight, most), (Some(2 * 9_007_199_254_740_989), Some(3.0), Some(9_007_199_254_740_992)));
    // Grouping by an expression: quantity / 4 truncates toward zero.
    let buckets: Vec<(Option<i32>, i64, Option<i64>)> = Line::query()
        .group_by(Line::QUANTITY / 4)
        .order_by((Line::QUANTITY / 4).asc())
        .select((Line::QUANTITY / 4, count_all::<Line>(), Line::QUANTITY.sum()))
        .all(&db)
        .await?;
    assert_eq!(buckets, [(Some(-1), 1, Some(-4)), (Some(0), 3, Some(5)), (Some(1), 1, Some(7))]);
    Ok::<_, Error>(())
});
