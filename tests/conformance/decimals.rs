//! Exact decimals on every store: increments, comparisons, ordering and aggregates over
//! `Decimal` fields give the same exact text, scale included, on PostgreSQL (`numeric`),
//! SQLite (text + polystore's decimal functions) and MongoDB (`Decimal128`). Values are chosen
//! so that any detour through `f64` shows: `0.90 + 0.10` must be `1.00`, and
//! `12345678901234567.89` has more digits than a double holds.

use polystore::prelude::*;
use polystore::query::count_all;
use polystore_tests::store_test;
use rust_decimal::Decimal;

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "c_accounts")]
struct Account {
    #[model(primary_key)]
    id: i64,
    owner: String,
    amount: Decimal,
    fee: Option<Decimal>,
}

fn d(s: &str) -> Decimal {
    s.parse().expect("a decimal literal")
}

fn account(id: i64, owner: &str, amount: &str, fee: Option<&str>) -> Account {
    Account { id, owner: owner.to_owned(), amount: d(amount), fee: fee.map(d) }
}

/// Amounts whose float images collide or round: 12345678901234567.89 and .88 are the same
/// `f64`; 9.5 sorts after 10 as text; 0.90 / 0.10 lose their scale through a float.
async fn seed<E: Executor>(db: E) -> Result<()> {
    Account::insert_many(
        db,
        &[
            account(1, "ann", "0.90", Some("0.10")),
            account(2, "ann", "12345678901234567.89", None),
            account(3, "bob", "12345678901234567.88", Some("1.5")),
            account(4, "bob", "9.5", Some("0.25")),
            account(5, "cy", "10", None),
            account(6, "cy", "-2.125", Some("0.10")),
        ],
    )
    .await?;
    Ok(())
}

fn texts(values: impl IntoIterator<Item = Decimal>) -> Vec<String> {
    values.into_iter().map(|v| v.to_string()).collect()
}

async fn amount_of<E: Executor>(db: E, id: i64) -> Result<String> {
    Ok(Account::find(db, id).await?.amount.to_string())
}

store_test!(decimal_increments_are_exact_and_keep_the_scale, |db| async move {
    db.create_all(&[Account::SCHEMA]).await?;
    seed(&db).await?;
    let q = || Account::query().filter(Account::ID.is_in([1, 2]));
    assert_eq!(q().update_many(&db, [Account::AMOUNT.increment(d("0.10"))]).await?, 2);
    assert_eq!(amount_of(&db, 1).await?, "1.00", "0.90 + 0.10 keeps two decimal places");
    assert_eq!(amount_of(&db, 2).await?, "12345678901234567.99", "every digit survives");
    q().update_many(&db, [Account::AMOUNT.decrement(d("0.005"))]).await?;
    assert_eq!(amount_of(&db, 1).await?, "0.995");
    assert_eq!(amount_of(&db, 2).await?, "12345678901234567.985");
    // A NULL stays NULL; a value is increased exactly.
    Account::query().update_many(&db, [Account::FEE.increment(d("0.01"))]).await?;
    let fees: Vec<Option<Decimal>> = Account::query().order_by(Account::ID.asc()).select(Account::FEE).all(&db).await?;
    let fees: Vec<Option<String>> = fees.into_iter().map(|f| f.map(|f| f.to_string())).collect();
    let expected = [Some("0.11"), None, Some("1.51"), Some("0.26"), None, Some("0.11")];
    assert_eq!(fees, expected.map(|f| f.map(str::to_owned)));
    Ok::<_, Error>(())
});

store_test!(decimal_comparisons_and_ordering_are_numeric_and_exact, |db| async move {
    db.create_all(&[Account::SCHEMA]).await?;
    seed(&db).await?;
    let ids = |q: Query<Account>| {
        let db = &db;
        async move {
            let rows = q.order_by(Account::ID.asc()).all(db).await?;
            Ok::<_, Error>(rows.into_iter().map(|a| a.id).collect::<Vec<_>>())
        }
    };
    let q = Account::query;
    assert_eq!(ids(q().filter(Account::AMOUNT.gt(d("12345678901234567.88")))).await?, [2], "digits past f64");
    assert_eq!(ids(q().filter(Account::AMOUNT.eq(d("12345678901234567.88")))).await?, [3]);
    assert_eq!(ids(q().filter(Account::AMOUNT.eq(d("0.9")))).await?, [1], "0.9 equals 0.90");
    assert_eq!(ids(q().filter(Account::AMOUNT.lt(d("10")))).await?, [1, 4, 6], "9.5 < 10 by value, not text");
    assert_eq!(ids(q().filter(Account::AMOUNT.between(d("9.5"), d("10.0")))).await?, [4, 5]);
    let listed = q().filter(Account::AMOUNT.is_in([d("12345678901234567.89"), d("10.00"), d("7")]));
    assert_eq!(ids(listed).await?, [2, 5], "IN compares by value and keeps every digit");
    let ordered: Vec<Decimal> = q().order_by(Account::AMOUNT.desc()).select(Account::AMOUNT).all(&db).await?;
    let expected = ["12345678901234567.89", "12345678901234567.88", "10", "9.5", "0.90", "-2.125"];
    assert_eq!(texts(ordered), expected);
    Ok::<_, Error>(())
});

store_test!(decimal_aggregates_are_exact_on_every_store, |db| async move {
    db.create_all(&[Account::SCHEMA]).await?;
    seed(&db).await?;
    type Row = (String, Option<Decimal>, Option<Decimal>, Option<Decimal>, Option<Decimal>, i64, i64);
    let rows: Vec<Row> = Account::query()
        .group_by(Account::OWNER)
        .order_by(Account::OWNER.asc())
        .select((
            Account::OWNER,
            Account::AMOUNT.sum(),
            Account::AMOUNT.avg(),
            Account::AMOUNT.min(),
            Account::FEE.max(),
            Account::FEE.count(),
            Account::FEE.count_distinct(),
        ))
        .all(&db)
        .await?;
    let text = |v: &Option<Decimal>| v.map(|v| v.to_string());
    let got: Vec<_> = rows
        .iter()
        .map(|(o, sum, avg, min, max, n, nd)| (o.as_str(), text(sum), text(avg), text(min), text(max), *n, *nd))
        .collect();
    let s = |v: &str| Some(v.to_owned());
    assert_eq!(
        got,
        [
            ("ann", s("12345678901234568.79"), s("6172839450617284.395"), s("0.90"), s("0.10"), 1, 1),
            ("bob", s("12345678901234577.38"), s("6172839450617288.69"), s("9.5"), s("1.5"), 2, 2),
            ("cy", s("7.875"), s("3.9375"), s("-2.125"), s("0.10"), 1, 1),
        ]
    );

    // Totals over all rows, and over none: SUM / AVG / MIN of nothing are NULL.
    let total: (Option<Decimal>, Option<Decimal>) =
        Account::query().select((Account::FEE.sum(), Account::FEE.avg())).one(&db).await?;
    assert_eq!((text(&total.0), text(&total.1)), (s("1.95"), s("0.4875")));
    let none: (Option<Decimal>, Option<Decimal>, Option<Decimal>, i64) = Account::query()
        .filter(Account::ID.gt(100))
        .select((Account::AMOUNT.sum(), Account::AMOUNT.avg(), Account::AMOUNT.max(), count_all::<Account>()))
        .one(&db)
        .await?;
    assert_eq!(none, (None, None, None, 0));

    // `count()` and `count_all()` in a select have one type (i64): comparable without casts.
    let counted = Account::query().count(&db).await?;
    let selected = Account::query().select(count_all::<Account>()).one(&db).await?;
    assert_eq!(counted, selected);
    assert_eq!(counted, 6);

    // HAVING compares the exact sum: …68.79 > …68.78 only past a double's digits.
    let rich: Vec<String> = Account::query()
        .group_by(Account::OWNER)
        .having(Account::AMOUNT.sum().gt(d("12345678901234568.78")))
        .order_by(Account::OWNER.asc())
        .select(Account::OWNER)
        .all(&db)
        .await?;
    assert_eq!(rich, ["ann", "bob"]);
    Ok::<_, Error>(())
});

store_test!(groups_are_ordered_by_aggregates_for_a_top_n, |db| async move {
    db.create_all(&[Account::SCHEMA]).await?;
    seed(&db).await?;
    // Top two owners by exact total: bob's and ann's totals differ past a double's digits, and
    // cy's 7.875 would come first if decimal text were compared as text.
    let top: Vec<(String, Option<Decimal>)> = Account::query()
        .group_by(Account::OWNER)
        .order_by(Account::AMOUNT.sum().desc())
        .limit(2)
        .select((Account::OWNER, Account::AMOUNT.sum()))
        .all(&db)
        .await?;
    let top: Vec<(&str, String)> = top.iter().map(|(o, s)| (o.as_str(), s.unwrap().to_string())).collect();
    assert_eq!(top, [("bob", "12345678901234577.38".into()), ("ann", "12345678901234568.79".into())]);

    // Aggregate and field terms interleave in the order they were given.
    let by_fees: Vec<String> = Account::query()
        .group_by(Account::OWNER)
        .order_by(Account::FEE.sum().asc())
        .order_by(Account::OWNER.desc())
        .select(Account::OWNER)
        .all(&db)
        .await?;
    assert_eq!(by_fees, ["cy", "ann", "bob"], "0.10 = 0.10 < 1.75, ties by owner descending");
    let by_count: Vec<(String, i64)> = Account::query()
        .group_by(Account::OWNER)
        .order_by(Account::OWNER.asc())
        .order_by(count_all::<Account>().desc())
        .select((Account::OWNER, count_all::<Account>()))
        .all(&db)
        .await?;
    assert_eq!(by_count, [("ann".into(), 2), ("bob".into(), 2), ("cy".into(), 2)]);

    // Reading rows cannot be ordered by an aggregate: a clear error, not a guess.
    let rows = Account::query().order_by(count_all::<Account>().desc()).all(&db).await;
    assert!(matches!(rows, Err(Error::Config(ref m)) if m.contains("aggregate")), "{rows:?}");
    Ok::<_, Error>(())
});

/// A table with range rules on decimals (`share` in [0, 1], `big` ≤ 2^53), as `create_all`
/// declares them for `#[validate(range(..))]` rules (`validator`'s derive does not range-check
/// a `Decimal` in Rust, so the schema is written out here).
static LIMITS: polystore::ModelSchema = {
    use polystore::schema::{AutoTimestamp, Check, FieldSchema, RedisIndex};
    const fn field(name: &'static str, ty: polystore::ColumnType, checks: &'static [Check]) -> FieldSchema {
        FieldSchema {
            name,
            column: name,
            ty,
            generated: false,
            auto: AutoTimestamp::None,
            default: None,
            redis: RedisIndex::None,
            renamed_from: None,
            checks,
        }
    }
    const SHARE: &[Check] =
        &[Check::Range { min: Some(0.0), max: Some(1.0), exclusive_min: false, exclusive_max: false }];
    const BIG: &[Check] =
        &[Check::Range { min: None, max: Some(9007199254740992.0), exclusive_min: false, exclusive_max: false }];
    polystore::ModelSchema {
        name: "Limit",
        table: "c_decimal_limits",
        fields: &[
            field("id", <i64 as FieldType>::COLUMN, &[]),
            field("share", <Decimal as FieldType>::COLUMN, SHARE),
            field("big", <Decimal as FieldType>::COLUMN, BIG),
        ],
        primary_key: &[0],
        indexes: &[],
        ..polystore::ModelSchema::EMPTY
    }
};

/// Runs raw SQL behind polystore's back; the database's error as polystore classifies it.
async fn raw_write(db: &Db, sql: String) -> Result<u64> {
    #[derive(Model)]
    #[model(table = "c_decimal_limits")]
    struct Row {
        #[model(primary_key)]
        id: i64,
    }
    polystore::raw::<Row>(sql).execute(db).await
}

polystore_tests::sql_test!(decimal_range_checks_are_exact_at_the_boundary, |db| async move {
    db.create_all(&[&LIMITS]).await?;
    let insert = |id: i64, share: &str, big: &str| {
        raw_write(&db, format!("INSERT INTO c_decimal_limits (id, share, big) VALUES ({id}, '{share}', '{big}')"))
    };
    // On the boundary, whatever the scale: accepted.
    assert_eq!(insert(1, "1", "9007199254740992").await?, 1);
    assert_eq!(insert(2, "1.000", "0").await?, 1);
    assert_eq!(insert(3, "0", "-1").await?, 1);
    // Just past it: a float comparison (`CAST(.. AS REAL)`) reads 1.00000000000000001 as 1 and
    // 9007199254740993 as 2^53, and would accept both.
    let past = [(4, "1.00000000000000001", "0"), (5, "0.5", "9007199254740993"), (6, "-0.00000000000000001", "0")];
    for (id, share, big) in past {
        let result = insert(id, share, big).await;
        assert!(
            matches!(result, Err(Error::ConstraintViolation { kind: polystore::ConstraintKind::Check, .. })),
            "{share} / {big}: {result:?}"
        );
    }
    let kept = raw_write(&db, "UPDATE c_decimal_limits SET share = share WHERE id > 0".into()).await?;
    assert_eq!(kept, 3, "exactly the three valid rows were written");
    Ok::<_, Error>(())
});
