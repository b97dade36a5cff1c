//! Expression functions on every store: `case_when`, `lower` / `upper` / `length` /
//! `concat`, and `trunc` / `extract` on dates and times, selected, filtered on, ordered by,
//! grouped by, used in `having` and assigned, with the same values on PostgreSQL, SQLite and
//! MongoDB — NULL in, NULL out; ASCII-only case mapping; lengths in characters; dates in UTC;
//! ISO days of the week (Monday 1 … Sunday 7).

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone as _, Utc};
use polystore::ObjectId;
use polystore::prelude::*;
use polystore_tests::{StoreKind, TestStore as _, assert_err, store_test};
use rust_decimal::Decimal;

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "c_fn_invoices")]
struct Invoice {
    #[model(primary_key)]
    id: i64,
    customer: String,
    nick: Option<String>,
    total: Decimal,
    ms: i64,
    rating: Option<i32>,
    issued_at: DateTime<Utc>,
    local_at: NaiveDateTime,
    due_on: Option<NaiveDate>,
    label: Option<String>,
}

/// Upper-cased nick, its length, `customer (nick)`, `#customer`.
type NickRow = (Option<String>, Option<i64>, Option<String>, String);
/// An instant truncated to the year, month, day and hour.
type Instants = (DateTime<Utc>, DateTime<Utc>, DateTime<Utc>, DateTime<Utc>);
/// Truncations of each date/time type.
type Truncated = (DateTime<Utc>, NaiveDateTime, Option<NaiveDate>, Option<NaiveDate>);
/// Year, month, day, hour, minute, day of week, due day of week, local month.
type Parts = (i32, i32, i32, i32, i32, i32, Option<i32>, i32);

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s).single().expect("a valid instant")
}

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("a valid date")
}

#[allow(clippy::too_many_arguments)]
fn invoice(
    id: i64,
    customer: &str,
    nick: Option<&str>,
    total: &str,
    ms: i64,
    rating: Option<i32>,
    issued_at: DateTime<Utc>,
    due_on: Option<NaiveDate>,
) -> Invoice {
    Invoice {
        id,
        customer: customer.to_owned(),
        nick: nick.map(str::to_owned),
        total: total.parse().expect("a decimal"),
        ms,
        rating,
        issued_at,
        local_at: issued_at.naive_utc(),
        due_on,
        label: None,
    }
}

/// Five invoices over three months of 2024 (and one of 2023), with non-ASCII names, a NULL
/// nick, NULL ratings and a NULL due date. 2024-01-01 is a Monday, 2024-03-03 a Sunday.
async fn seed<E: Executor>(db: E) -> Result<()> {
    Invoice::insert_many(
        db,
        &[
            invoice(
                1,
                "Ada Lovelace",
                Some("ada"),
                "10.50",
                400_000,
                Some(5),
                at(2024, 1, 1, 23, 59, 59),
                Some(day(2024, 1, 31)),
            ),
            invoice(2, "ÉCOLE Ünï", None, "2.25", 90_000, None, at(2024, 1, 15, 8, 30, 0), Some(day(2024, 2, 29))),
            invoice(3, "bob", Some("Bobby"), "7.00", 30_000, Some(2), at(2024, 3, 3, 0, 0, 0), None),
            invoice(
                4,
                "Ada Lovelace",
                Some("ada"),
                "0.75",
                300_000,
                Some(4),
                at(2024, 3, 31, 12, 5, 7),
                Some(day(2024, 4, 30)),
            ),
            invoice(5, "ß", Some(""), "100.00", 60_001, None, at(2023, 12, 31, 23, 0, 0), Some(day(2024, 1, 1))),
        ],
    )
    .await?;
    Ok(())
}

store_test!(string_functions_agree_on_every_store, |db| async move {
    db.create_all(&[Invoice::SCHEMA]).await?;
    seed(&db).await?;
    let q = || Invoice::query().order_by(Invoice::ID.asc());
    // ASCII-only case mapping, lengths in characters.
    let rows: Vec<(String, String, i64)> =
        q().select((Invoice::CUSTOMER.lower(), Invoice::CUSTOMER.upper(), Invoice::CUSTOMER.length())).all(&db).await?;
    let expected = [
        ("ada lovelace", "ADA LOVELACE", 12),
        ("École Ünï", "ÉCOLE ÜNï", 9),
        ("bob", "BOB", 3),
        ("ada lovelace", "ADA LOVELACE", 12),
        ("ß", "ß", 1),
    ];
    let expected: Vec<(String, String, i64)> =
        expected.iter().map(|(l, u, n)| ((*l).to_owned(), (*u).to_owned(), *n)).collect();
    assert_eq!(rows, expected);
    // NULL in, NULL out; concat of fields and values, NULL when a part is NULL.
    let rows: Vec<NickRow> = q()
        .select((
            Invoice::NICK.upper(),
            Invoice::NICK.length(),
            Invoice::CUSTOMER.concat(" (").concat(Invoice::NICK).concat(")"),
            concat("#", Invoice::CUSTOMER.lower()),
        ))
        .all(&db)
        .await?;
    let s = |v: &str| Some(v.to_owned());
    assert_eq!(
        rows,
        [
            (s("ADA"), Some(3), s("Ada Lovelace (ada)"), "#ada lovelace".to_owned()),
            (None, None, None, "#École Ünï".to_owned()),
            (s("BOBBY"), Some(5), s("bob (Bobby)"), "#bob".to_owned()),
            (s("ADA"), Some(3), s("Ada Lovelace (ada)"), "#ada lovelace".to_owned()),
            (s(""), Some(0), s("ß ()"), "#ß".to_owned()),
        ]
    );
    // coalesce skips a NULL part.
    let named: Vec<String> = q().select(concat(coalesce(Invoice::NICK, "?"), "!")).all(&db).await?;
    assert_eq!(named, ["ada!", "?!", "Bobby!", "ada!", "!"]);
    // Filter, order and group by string functions.
    let ids: Vec<i64> = q().filter(Invoice::CUSTOMER.lower().eq("ada lovelace")).select(Invoice::ID).all(&db).await?;
    assert_eq!(ids, [1, 4]);
    let ids: Vec<i64> = q().filter(Invoice::NICK.length().lt(4)).select(Invoice::ID).all(&db).await?;
    assert_eq!(ids, [1, 4, 5]);
    let ids: Vec<i64> = Invoice::query()
        .order_by(Invoice::CUSTOMER.length().desc())
        .order_by(Invoice::ID.desc())
        .select(Invoice::ID)
        .all(&db)
        .await?;
    assert_eq!(ids, [4, 1, 2, 3, 5]);
    let groups: Vec<(String, i64)> = Invoice::query()
        .group_by(Invoice::CUSTOMER.upper())
        .having(count_all::<Invoice>().gt(0))
        .order_by(Invoice::CUSTOMER.upper().asc())
        .select((Invoice::CUSTOMER.upper(), count_all::<Invoice>()))
        .all(&db)
        .await?;
    let groups: Vec<(&str, i64)> = groups.iter().map(|(k, n)| (k.as_str(), *n)).collect();
    assert_eq!(groups, [("ADA LOVELACE", 2), ("BOB", 1), ("ÉCOLE ÜNï", 1), ("ß", 1)]);
    // Assignment.
    let changed = Invoice::query()
        .filter(Invoice::ID.is_in([1_i64, 3]))
        .update_many(&db, [Invoice::LABEL.set_to(Invoice::CUSTOMER.lower().concat("/").concat(Invoice::NICK))])
        .await?;
    assert_eq!(changed, 2);
    let labels: Vec<Option<String>> = q().select(Invoice::LABEL).all(&db).await?;
    assert_eq!(labels, [s("ada lovelace/ada"), None, s("bob/Bobby"), None, None]);
    Ok::<_, Error>(())
});

store_test!(case_when_takes_the_first_branch_that_holds, |db| async move {
    db.create_all(&[Invoice::SCHEMA]).await?;
    seed(&db).await?;
    let q = || Invoice::query().order_by(Invoice::ID.asc());
    let size =
        || case_when(Invoice::MS.gt(300_000_i64), "long").when(Invoice::MS.gt(60_000_i64), "song").otherwise("short");
    let sizes: Vec<String> = q().select(size()).all(&db).await?;
    assert_eq!(sizes, ["long", "song", "short", "song", "song"]);
    // No `otherwise`: NULL. A condition unknown because of a NULL holds neither as itself nor
    // negated; `is_null`, `is_in`, `between`, `and` / `or` and expression comparisons work.
    let rows: Vec<(Option<i32>, Option<i32>, Option<String>)> = q()
        .select((
            case_when(Invoice::RATING.gt(3), 1).end(),
            case_when(Invoice::RATING.gt(3).not(), 0).when(Invoice::RATING.is_null(), -1).end(),
            case_when(Invoice::ID.is_in([2_i64, 3]).or(Invoice::TOTAL.between(Decimal::ONE, Decimal::TEN)), "in")
                .when((Invoice::TOTAL * 2).gt(Invoice::TOTAL + Decimal::TEN), Invoice::NICK)
                .end(),
        ))
        .all(&db)
        .await?;
    let s = |v: &str| Some(v.to_owned());
    assert_eq!(
        rows,
        [
            (Some(1), None, s("ada")),
            (None, Some(-1), s("in")),
            (None, Some(0), s("in")),
            (Some(1), None, None),
            (None, Some(-1), s("")),
        ]
    );
    // Filter, order by, group by, aggregate over, and assign a case.
    let ids: Vec<i64> = q().filter(size().eq("song")).select(Invoice::ID).all(&db).await?;
    assert_eq!(ids, [2, 4, 5]);
    let rank = || case_when(Invoice::CUSTOMER.eq("bob"), 0).otherwise(1);
    let ids: Vec<i64> =
        Invoice::query().order_by(rank().asc()).order_by(Invoice::ID.desc()).select(Invoice::ID).all(&db).await?;
    assert_eq!(ids, [3, 5, 4, 2, 1]);
    let big = || case_when(Invoice::MS.ge(60_000_i64), Invoice::TOTAL).otherwise(Decimal::ZERO).sum();
    let groups: Vec<(String, i64, Option<Decimal>)> = Invoice::query()
        .group_by(size())
        .having(big().gt(1))
        .order_by(size().asc())
        .select((size(), count_all::<Invoice>(), big()))
        .all(&db)
        .await?;
    let groups: Vec<(String, i64, Option<String>)> =
        groups.into_iter().map(|(k, n, t)| (k, n, t.map(|t| t.to_string()))).collect();
    assert_eq!(groups, [("long".to_owned(), 1, s("10.50")), ("song".to_owned(), 3, s("103.00"))]);
    let changed = Invoice::query()
        .filter(Invoice::RATING.is_not_null())
        .update_many(&db, [Invoice::LABEL.set_to(case_when(Invoice::RATING.ge(4), "good").otherwise("meh"))])
        .await?;
    assert_eq!(changed, 3);
    let labels: Vec<Option<String>> = q().select(Invoice::LABEL).all(&db).await?;
    assert_eq!(labels, [s("good"), None, s("meh"), s("good"), None]);
    // A text match as a condition: SQL writes it as in a filter; MongoDB refuses it by name
    // rather than evaluating it differently.
    let initial = q().select(case_when(Invoice::CUSTOMER.starts_with("Ada"), 1).otherwise(0)).all(&db).await;
    if db.kind() == StoreKind::Mongo {
        assert_err!(initial, Error::Unsupported { store: "mongodb", ref what } if what.contains("case_when"));
    } else {
        assert_eq!(initial?, [1, 0, 0, 1, 0]);
    }
    Ok::<_, Error>(())
});

store_test!(dates_truncate_and_extract_in_utc, |db| async move {
    db.create_all(&[Invoice::SCHEMA]).await?;
    seed(&db).await?;
    let q = || Invoice::query().order_by(Invoice::ID.asc());
    let rows: Vec<Instants> = q()
        .select((
            Invoice::ISSUED_AT.trunc(TimeUnit::Year),
            Invoice::ISSUED_AT.trunc(TimeUnit::Month),
            Invoice::ISSUED_AT.trunc(TimeUnit::Day),
            Invoice::ISSUED_AT.trunc(TimeUnit::Hour),
        ))
        .all(&db)
        .await?;
    assert_eq!(
        rows,
        [
            (at(2024, 1, 1, 0, 0, 0), at(2024, 1, 1, 0, 0, 0), at(2024, 1, 1, 0, 0, 0), at(2024, 1, 1, 23, 0, 0)),
            (at(2024, 1, 1, 0, 0, 0), at(2024, 1, 1, 0, 0, 0), at(2024, 1, 15, 0, 0, 0), at(2024, 1, 15, 8, 0, 0)),
            (at(2024, 1, 1, 0, 0, 0), at(2024, 3, 1, 0, 0, 0), at(2024, 3, 3, 0, 0, 0), at(2024, 3, 3, 0, 0, 0)),
            (at(2024, 1, 1, 0, 0, 0), at(2024, 3, 1, 0, 0, 0), at(2024, 3, 31, 0, 0, 0), at(2024, 3, 31, 12, 0, 0)),
            (at(2023, 1, 1, 0, 0, 0), at(2023, 12, 1, 0, 0, 0), at(2023, 12, 31, 0, 0, 0), at(2023, 12, 31, 23, 0, 0)),
        ]
    );
    let minutes: Vec<Truncated> = q()
        .select((
            Invoice::ISSUED_AT.trunc(TimeUnit::Minute),
            Invoice::LOCAL_AT.trunc(TimeUnit::Month),
            Invoice::DUE_ON.trunc(TimeUnit::Month),
            Invoice::DUE_ON.trunc(TimeUnit::Hour),
        ))
        .all(&db)
        .await?;
    let expected = [
        (at(2024, 1, 1, 23, 59, 0), at(2024, 1, 1, 0, 0, 0), Some(day(2024, 1, 1)), Some(day(2024, 1, 31))),
        (at(2024, 1, 15, 8, 30, 0), at(2024, 1, 1, 0, 0, 0), Some(day(2024, 2, 1)), Some(day(2024, 2, 29))),
        (at(2024, 3, 3, 0, 0, 0), at(2024, 3, 1, 0, 0, 0), None, None),
        (at(2024, 3, 31, 12, 5, 0), at(2024, 3, 1, 0, 0, 0), Some(day(2024, 4, 1)), Some(day(2024, 4, 30))),
        (at(2023, 12, 31, 23, 0, 0), at(2023, 12, 1, 0, 0, 0), Some(day(2024, 1, 1)), Some(day(2024, 1, 1))),
    ];
    let expected: Vec<_> = expected.into_iter().map(|(a, b, c, d)| (a, b.naive_utc(), c, d)).collect();
    assert_eq!(minutes, expected);
    // Parts, with ISO days of the week (2024-01-01 is a Monday, 2024-03-03 a Sunday).
    let parts: Vec<Parts> = q()
        .select((
            Invoice::ISSUED_AT.extract(DatePart::Year),
            Invoice::ISSUED_AT.extract(DatePart::Month),
            Invoice::ISSUED_AT.extract(DatePart::Day),
            Invoice::ISSUED_AT.extract(DatePart::Hour),
            Invoice::ISSUED_AT.extract(DatePart::Minute),
            Invoice::ISSUED_AT.extract(DatePart::DayOfWeek),
            Invoice::DUE_ON.extract(DatePart::DayOfWeek),
            Invoice::LOCAL_AT.extract(DatePart::Month),
        ))
        .all(&db)
        .await?;
    assert_eq!(
        parts,
        [
            (2024, 1, 1, 23, 59, 1, Some(3), 1),
            (2024, 1, 15, 8, 30, 1, Some(4), 1),
            (2024, 3, 3, 0, 0, 7, None, 3),
            (2024, 3, 31, 12, 5, 7, Some(2), 3),
            (2023, 12, 31, 23, 0, 7, Some(1), 12),
        ]
    );
    // Filters on parts and on truncated values, ordering by a part.
    let ids: Vec<i64> =
        q().filter(Invoice::ISSUED_AT.extract(DatePart::DayOfWeek).eq(7)).select(Invoice::ID).all(&db).await?;
    assert_eq!(ids, [3, 4, 5]);
    let ids: Vec<i64> = q()
        .filter(Invoice::ISSUED_AT.trunc(TimeUnit::Month).eq(at(2024, 1, 1, 0, 0, 0)))
        .select(Invoice::ID)
        .all(&db)
        .await?;
    assert_eq!(ids, [1, 2]);
    let ids: Vec<i64> =
        q().filter(Invoice::DUE_ON.trunc(TimeUnit::Year).lt(day(2024, 6, 1))).select(Invoice::ID).all(&db).await?;
    assert_eq!(ids, [1, 2, 4, 5]);
    let ids: Vec<i64> = Invoice::query()
        .order_by(Invoice::ISSUED_AT.extract(DatePart::Hour).desc())
        .order_by(Invoice::ID.asc())
        .select(Invoice::ID)
        .all(&db)
        .await?;
    assert_eq!(ids, [1, 5, 4, 2, 3]);
    // Assignment of a truncated date.
    let changed = Invoice::query()
        .filter(Invoice::DUE_ON.is_not_null().and(Invoice::ID.le(4)))
        .update_many(&db, [Invoice::DUE_ON.set_to(Invoice::DUE_ON.trunc(TimeUnit::Month))])
        .await?;
    assert_eq!(changed, 3);
    let due: Vec<Option<NaiveDate>> = q().select(Invoice::DUE_ON).all(&db).await?;
    assert_eq!(due, [Some(day(2024, 1, 1)), Some(day(2024, 2, 1)), None, Some(day(2024, 4, 1)), Some(day(2024, 1, 1))]);
    Ok::<_, Error>(())
});

store_test!(a_monthly_report_groups_by_truncated_dates, |db| async move {
    db.create_all(&[Invoice::SCHEMA]).await?;
    seed(&db).await?;
    let month = || Invoice::ISSUED_AT.trunc(TimeUnit::Month);
    let report: Vec<(DateTime<Utc>, i64, Option<Decimal>)> = Invoice::query()
        .filter(Invoice::ISSUED_AT.extract(DatePart::Year).eq(2024))
        .group_by(month())
        .having(Invoice::TOTAL.sum().gt(Decimal::ONE))
        .order_by(month().asc())
        .select((month(), count_all::<Invoice>(), Invoice::TOTAL.sum()))
        .all(&db)
        .await?;
    let report: Vec<(DateTime<Utc>, i64, Option<String>)> =
        report.into_iter().map(|(m, n, t)| (m, n, t.map(|t| t.to_string()))).collect();
    assert_eq!(
        report,
        [(at(2024, 1, 1, 0, 0, 0), 2, Some("12.75".to_owned())), (at(2024, 3, 1, 0, 0, 0), 2, Some("7.75".to_owned()))]
    );
    // Grouped by a part: months across years fall together.
    let by_month: Vec<(i32, i64)> = Invoice::query()
        .group_by(Invoice::ISSUED_AT.extract(DatePart::Month))
        .order_by(Invoice::ISSUED_AT.extract(DatePart::Month).desc())
        .select((Invoice::ISSUED_AT.extract(DatePart::Month), count_all::<Invoice>()))
        .all(&db)
        .await?;
    assert_eq!(by_month, [(12, 1), (3, 2), (1, 2)]);
    Ok::<_, Error>(())
});

#[derive(Enum, Debug, Clone, Copy, PartialEq)]
enum Tier {
    Gold,
    Silver,
    Bronze,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "c_fn_members")]
struct Member {
    #[model(primary_key)]
    id: i64,
    tier: Tier,
    previous: Option<Tier>,
    points: i32,
    owner: ObjectId,
    backup: Option<ObjectId>,
}

store_test!(case_when_yields_enums_and_object_ids, |db| async move {
    db.create_all(&[Member::SCHEMA]).await?;
    let (a, b) = (ObjectId::new(), ObjectId::new());
    let member = |id, tier, previous, points, backup| Member { id, tier, previous, points, owner: a, backup };
    Member::insert_many(
        &db,
        &[
            member(1, Tier::Bronze, None, 900, Some(b)),
            member(2, Tier::Silver, Some(Tier::Gold), 50, None),
            member(3, Tier::Gold, None, 10, None),
        ],
    )
    .await?;
    let q = || Member::query().order_by(Member::ID.asc());
    // An enum field or a variant (`lit`) in each branch; the result decodes as the enum.
    let earned = || case_when(Member::POINTS.ge(500), lit(Tier::Gold)).when(Member::POINTS.ge(100), lit(Tier::Silver));
    let tiers: Vec<(Tier, Option<Tier>, Option<Tier>)> = q()
        .select((
            earned().otherwise(Member::TIER),
            case_when(Member::PREVIOUS.is_not_null(), Member::PREVIOUS).otherwise(Member::TIER),
            earned().end(),
        ))
        .all(&db)
        .await?;
    assert_eq!(
        tiers,
        [
            (Tier::Gold, Some(Tier::Bronze), Some(Tier::Gold)),
            (Tier::Silver, Some(Tier::Gold), None),
            (Tier::Gold, Some(Tier::Gold), None),
        ]
    );
    // ObjectIds: a field or a value per branch, NULL when nothing holds.
    let contact: Vec<(Option<ObjectId>, Option<ObjectId>)> = q()
        .select((
            case_when(Member::BACKUP.is_not_null(), Member::BACKUP).otherwise(Member::OWNER),
            case_when(Member::ID.eq(2), b).end(),
        ))
        .all(&db)
        .await?;
    assert_eq!(contact, [(Some(b), None), (Some(a), Some(b)), (Some(a), None)]);
    // In a filter, an ObjectId expression compares with a field or a value.
    let same = case_when(Member::BACKUP.is_not_null(), Member::BACKUP).otherwise(Member::OWNER).eq(b);
    assert_eq!(q().filter(same).all(&db).await?.into_iter().map(|m| m.id).collect::<Vec<_>>(), [1]);
    Ok::<_, Error>(())
});
