//! One conformance suite, written once and run on PostgreSQL, SQLite and MongoDB
//! (`store_test!`): CRUD, every filter including NULL / missing-field semantics, ordering,
//! pagination, counts, bulk writes, value types and aggregates. The stores must agree; where
//! they cannot, the difference is asserted per store and documented in `docs/mongodb.md`.

use chrono::{DateTime, NaiveDate, TimeZone as _, Utc};
use polystore::Order;
use polystore::prelude::*;
use polystore::query::count_all;
use polystore_tests::{StoreKind, TestStore as _, assert_err, store_test};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "c_people", index(country, score))]
struct Person {
    #[model(primary_key, generated)]
    id: i64,
    #[model(unique)]
    email: String,
    name: String,
    nick: Option<String>,
    country: String,
    score: i32,
    bonus: Option<i32>,
    tags: Vec<String>,
    #[model(created_at)]
    created_at: DateTime<Utc>,
}

fn person(email: &str, name: &str, nick: Option<&str>, country: &str, score: i32, bonus: Option<i32>) -> Person {
    Person {
        id: 0,
        email: email.to_owned(),
        name: name.to_owned(),
        nick: nick.map(str::to_owned),
        country: country.to_owned(),
        score,
        bonus,
        tags: Vec::new(),
        created_at: DateTime::UNIX_EPOCH,
    }
}

/// Six people, ids 1..=6: NULL nicks and bonuses, tied scores, regex and LIKE metacharacters
/// and an operator-looking string in the data.
async fn seed<E: Executor>(db: E) -> Result<Vec<Person>> {
    let mut rows = vec![
        person("ada@x.io", "Ada", Some("countess"), "UK", 36, Some(5)),
        person("alan@x.io", "alan.t", None, "UK", 41, None),
        person("grace@x.io", "Grace%", Some("amazing"), "US", 36, Some(-2)),
        person("linus@x.io", "Linus", None, "FI", 20, Some(0)),
        person("op@x.io", "{\"$ne\": null}", Some("$where"), "US", 10, None),
        person("mia@x.io", "mia", Some("m"), "NZ", 50, Some(7)),
    ];
    rows[0].tags = vec!["math".into(), "poetry".into()];
    rows[2].tags = vec!["navy".into(), "math".into()];
    Person::insert_many(db, &rows).await
}

async fn ids<E: Executor>(q: Query<Person>, db: E) -> Result<Vec<i64>> {
    Ok(q.order_by(Person::ID.asc()).all(db).await?.into_iter().map(|p| p.id).collect())
}

store_test!(insert_find_update_delete_round_trip, |db| async move {
    db.create_all(&[Person::SCHEMA]).await?;
    let before = Utc::now();
    let ada = person("ada@x.io", "Ada", None, "UK", 36, None).insert(&db).await?;
    assert_eq!(ada.id, 1, "generated keys start at 1");
    assert!(ada.created_at >= before - chrono::Duration::milliseconds(1), "created_at is stamped");
    assert_eq!(Person::find(&db, ada.id).await?, ada, "the returned row is the stored one");
    assert_eq!(Person::get(&db, 99).await?, None);
    assert_err!(Person::find(&db, 99).await, Error::NotFound { model: "Person" });

    let more = Person::insert_many(
        &db,
        &[person("b@x.io", "B", None, "UK", 1, None), person("c@x.io", "C", Some("c"), "US", 2, Some(3))],
    )
    .await?;
    assert_eq!(more.iter().map(|p| p.id).collect::<Vec<_>>(), [2, 3], "keys increase in order");

    let mut changed = ada.clone();
    changed.name = "Ada King".into();
    changed.nick = Some("countess".into());
    changed.created_at = Utc::now();
    let stored = changed.update(&db).await?;
    assert_eq!(stored.name, "Ada King");
    assert_eq!(stored.created_at, ada.created_at, "update never rewrites created_at");
    assert_eq!(Person::find(&db, ada.id).await?, stored);
    let mut ghost = ada.clone();
    ghost.id = 42;
    assert_err!(ghost.update(&db).await, Error::NotFound { .. });

    stored.delete(&db).await?;
    assert_err!(stored.delete(&db).await, Error::NotFound { .. });
    assert!(Person::delete_by_key(&db, 2).await?);
    assert!(!Person::delete_by_key(&db, 2).await?);
    assert_eq!(Person::query().count(&db).await?, 1);
    Ok::<_, Error>(())
});

store_test!(unique_violations_name_the_fields_and_upserts_resolve_them, |db| async move {
    db.create_all(&[Person::SCHEMA]).await?;
    let ada = person("ada@x.io", "Ada", None, "UK", 36, None).insert(&db).await?;
    let dup = person("ada@x.io", "Other", None, "UK", 1, None).insert(&db).await;
    assert_err!(dup, Error::UniqueViolation { model: "Person", ref fields, .. } if fields == &["email"]);

    let mut again = ada.clone();
    again.score = 99;
    let up = again.upsert(&db).await?;
    assert_eq!((up.id, up.score, up.created_at), (ada.id, 99, ada.created_at), "upsert on the key updates");
    let fresh = person("new@x.io", "New", None, "NZ", 5, None);
    let mut fresh_with_key = fresh.clone();
    fresh_with_key.id = 10;
    assert_eq!(fresh_with_key.upsert(&db).await?.id, 10, "upsert on the key inserts with the given key");

    let by_email = person("ada@x.io", "Ada L.", None, "UK", 7, None).upsert_on(&db, &[Person::EMAIL.into()]).await?;
    assert_eq!((by_email.id, by_email.name.as_str(), by_email.score), (ada.id, "Ada L.", 7));
    let inserted = person("z@x.io", "Z", None, "UK", 1, None).upsert_on(&db, &[Person::EMAIL.into()]).await?;
    assert!(inserted.id != ada.id && inserted.id != 10);
    assert_eq!(Person::query().count(&db).await?, 3);
    Ok::<_, Error>(())
});

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "c_memberships", primary_key(team, user_id))]
struct Membership {
    team: String,
    user_id: i64,
    role: String,
}

store_test!(composite_keys_find_update_and_delete, |db| async move {
    db.create_all(&[Membership::SCHEMA]).await?;
    let m = |team: &str, user_id, role: &str| Membership { team: team.into(), user_id, role: role.into() };
    Membership::insert_many(&db, &[m("red", 1, "owner"), m("red", 2, "member"), m("blue", 1, "member")]).await?;
    assert_eq!(Membership::find(&db, ("red".into(), 2)).await?.role, "member");
    let stored = m("red", 2, "admin").update(&db).await?;
    assert_eq!(stored, m("red", 2, "admin"));
    assert_err!(m("red", 1, "x").insert(&db).await, Error::UniqueViolation { .. });
    assert!(Membership::delete_by_key(&db, ("blue".into(), 1)).await?);
    let teams: Vec<String> = Membership::query()
        .filter(Membership::TEAM.eq("red").and(Membership::USER_ID.ge(2)))
        .all(&db)
        .await?
        .into_iter()
        .map(|m| m.role)
        .collect();
    assert_eq!(teams, ["admin"]);
    assert_eq!(m("red", 7, "new").upsert(&db).await?, m("red", 7, "new"));
    Ok::<_, Error>(())
});

store_test!(comparison_range_and_membership_filters, |db| async move {
    db.create_all(&[Person::SCHEMA]).await?;
    seed(&db).await?;
    let q = Person::query;
    assert_eq!(ids(q().filter(Person::SCORE.eq(36)), &db).await?, [1, 3]);
    assert_eq!(ids(q().filter(Person::SCORE.ne(36)), &db).await?, [2, 4, 5, 6]);
    assert_eq!(ids(q().filter(Person::SCORE.lt(36)), &db).await?, [4, 5]);
    assert_eq!(ids(q().filter(Person::SCORE.le(36)), &db).await?, [1, 3, 4, 5]);
    assert_eq!(ids(q().filter(Person::SCORE.gt(36)), &db).await?, [2, 6]);
    assert_eq!(ids(q().filter(Person::SCORE.ge(41)), &db).await?, [2, 6]);
    assert_eq!(ids(q().filter(Person::SCORE.between(20, 36)), &db).await?, [1, 3, 4]);
    assert_eq!(ids(q().filter(Person::SCORE.not_between(20, 40)), &db).await?, [2, 5, 6]);
    assert_eq!(ids(q().filter(Person::COUNTRY.is_in(["UK", "NZ"])), &db).await?, [1, 2, 6]);
    assert_eq!(ids(q().filter(Person::COUNTRY.not_in(["UK", "NZ"])), &db).await?, [3, 4, 5]);
    assert_eq!(ids(q().filter(Person::COUNTRY.is_in(Vec::<String>::new())), &db).await?, Vec::<i64>::new());
    assert_eq!(ids(q().filter(Person::COUNTRY.not_in(Vec::<String>::new())), &db).await?, [1, 2, 3, 4, 5, 6]);
    let either = Person::COUNTRY.eq("US").or(Person::SCORE.gt(45));
    assert_eq!(ids(q().filter(either.clone()), &db).await?, [3, 5, 6]);
    assert_eq!(ids(q().filter(either.not()), &db).await?, [1, 2, 4]);
    assert_eq!(ids(q().filter(Expr::any([])), &db).await?, Vec::<i64>::new());
    assert_eq!(ids(q().filter(Expr::all([])), &db).await?, [1, 2, 3, 4, 5, 6]);
    assert_eq!(ids(q().filter(Person::TAGS.contains("math")), &db).await?, [1, 3]);
    assert_eq!(ids(q().filter(Person::TAGS.contains("math").not()), &db).await?, [2, 4, 5, 6]);
    Ok::<_, Error>(())
});

store_test!(null_and_missing_values_follow_sql_semantics, |db| async move {
    db.create_all(&[Person::SCHEMA]).await?;
    seed(&db).await?;
    let q = Person::query;
    assert_eq!(ids(q().filter(Person::BONUS.is_null()), &db).await?, [2, 5]);
    assert_eq!(ids(q().filter(Person::BONUS.eq(None::<i32>)), &db).await?, [2, 5], "= None means IS NULL");
    assert_eq!(ids(q().filter(Person::BONUS.is_not_null()), &db).await?, [1, 3, 4, 6]);
    assert_eq!(ids(q().filter(Person::BONUS.ne(5)), &db).await?, [3, 4, 6], "<> never selects NULL");
    assert_eq!(ids(q().filter(Person::BONUS.lt(5).not()), &db).await?, [1, 6], "NOT of unknown is unknown");
    assert_eq!(ids(q().filter(Person::BONUS.not_in([0, 5])), &db).await?, [3, 6]);
    assert_eq!(ids(q().filter(Person::BONUS.is_in([Some(5), None])), &db).await?, [1], "IN never matches NULL");
    assert_eq!(ids(q().filter(Person::BONUS.not_in([Some(5), None])), &db).await?, Vec::<i64>::new());
    let mixed = Person::BONUS.gt(0).and(Person::SCORE.gt(30));
    // NOT (unknown AND true) stays unknown (2); NOT (unknown AND false) is true (5).
    assert_eq!(ids(q().filter(mixed.not()), &db).await?, [3, 4, 5]);
    assert_eq!(ids(q().filter(Person::NICK.starts_with("a").not()), &db).await?, [1, 5, 6]);
    Ok::<_, Error>(())
});

store_test!(text_matching_takes_the_users_text_literally, |db| async move {
    db.create_all(&[Person::SCHEMA]).await?;
    seed(&db).await?;
    let q = Person::query;
    assert_eq!(ids(q().filter(Person::NAME.starts_with("A")), &db).await?, [1], "case-sensitive");
    assert_eq!(ids(q().filter(Person::NAME.starts_with_ci("a")), &db).await?, [1, 2]);
    assert_eq!(ids(q().filter(Person::NAME.contains(".")), &db).await?, [2], "`.` is not a wildcard");
    assert_eq!(ids(q().filter(Person::NAME.ends_with("%")), &db).await?, [3], "`%` is not a wildcard");
    assert_eq!(ids(q().filter(Person::NAME.contains_ci("AN")), &db).await?, [2]);
    assert_eq!(ids(q().filter(Person::NAME.ends_with_ci("US")), &db).await?, [4]);
    assert_eq!(ids(q().filter(Person::NAME.like("_r%")), &db).await?, [3]);
    assert_eq!(ids(q().filter(Person::NAME.like("Grace\\%")), &db).await?, [3]);
    assert_eq!(ids(q().filter(Person::NAME.ilike("m%")), &db).await?, [6]);
    assert_eq!(ids(q().filter(Person::NAME.contains("$ne")), &db).await?, [5]);
    Ok::<_, Error>(())
});

store_test!(operator_looking_values_stay_values, |db| async move {
    db.create_all(&[Person::SCHEMA]).await?;
    seed(&db).await?;
    let q = Person::query;
    assert_eq!(ids(q().filter(Person::NAME.eq("{\"$ne\": null}")), &db).await?, [5]);
    assert_eq!(ids(q().filter(Person::NICK.eq("$where")), &db).await?, [5]);
    assert_eq!(ids(q().filter(Person::NICK.eq("$nick")), &db).await?, Vec::<i64>::new(), "not a field path");
    assert_eq!(ids(q().filter(Person::NAME.is_in(["$ne", "{\"$gt\": \"\"}"])), &db).await?, Vec::<i64>::new());
    let changed = Person::query().filter(Person::ID.eq(4)).update_many(&db, [Person::NICK.set("$name")]).await?;
    assert_eq!(changed, 1);
    assert_eq!(Person::find(&db, 4).await?.nick.as_deref(), Some("$name"), "an assigned value is not a path");
    Ok::<_, Error>(())
});

store_test!(ordering_with_explicit_null_placement_agrees, |db| async move {
    db.create_all(&[Person::SCHEMA]).await?;
    seed(&db).await?;
    let by = |o: Order<Person>| Person::query().order_by(o).order_by(Person::ID.asc());
    let ids_of = |rows: Vec<Person>| rows.into_iter().map(|p| p.id).collect::<Vec<_>>();
    assert_eq!(ids_of(by(Person::BONUS.asc().nulls_first()).all(&db).await?), [2, 5, 3, 4, 1, 6]);
    assert_eq!(ids_of(by(Person::BONUS.asc().nulls_last()).all(&db).await?), [3, 4, 1, 6, 2, 5]);
    assert_eq!(ids_of(by(Person::BONUS.desc().nulls_first()).all(&db).await?), [2, 5, 6, 1, 4, 3]);
    assert_eq!(ids_of(by(Person::BONUS.desc().nulls_last()).all(&db).await?), [6, 1, 4, 3, 2, 5]);
    let q = Person::query().order_by(Person::SCORE.desc()).order_by(Person::NAME.asc());
    assert_eq!(ids_of(q.clone().all(&db).await?), [6, 2, 1, 3, 4, 5]);
    assert_eq!(ids_of(q.clone().offset(1).limit(2).all(&db).await?), [2, 1]);
    assert_eq!(ids_of(q.clone().limit(0).all(&db).await?), Vec::<i64>::new());
    assert_eq!(q.clone().first(&db).await?.map(|p| p.id), Some(6));
    assert_err!(q.clone().one(&db).await, Error::NotExactlyOne { found: 2, .. });
    assert_eq!(Person::query().filter(Person::ID.eq(3)).one(&db).await?.id, 3);
    Ok::<_, Error>(())
});

store_test!(default_null_placement_is_the_stores_own, |db| async move {
    db.create_all(&[Person::SCHEMA]).await?;
    seed(&db).await?;
    let rows = Person::query().order_by(Person::BONUS.asc()).order_by(Person::ID.asc()).all(&db).await?;
    let got: Vec<i64> = rows.into_iter().map(|p| p.id).collect();
    match db.kind() {
        // PostgreSQL sorts NULL as larger than every value ...
        StoreKind::Postgres => assert_eq!(got, [3, 4, 1, 6, 2, 5]),
        // ... SQLite and MongoDB (null and missing alike) as smaller.
        StoreKind::Sqlite | StoreKind::Mongo => assert_eq!(got, [2, 5, 3, 4, 1, 6]),
    }
    Ok::<_, Error>(())
});

store_test!(keyset_pagination_walks_forward_and_back_over_nulls, |db| async move {
    db.create_all(&[Person::SCHEMA]).await?;
    seed(&db).await?;
    let q = || Person::query().order_by(Person::BONUS.desc().nulls_last());
    let ids_of = |rows: &[Person]| rows.iter().map(|p| p.id).collect::<Vec<_>>();
    let p1 = q().paginate(&db, PageRequest::first(4)).await?;
    assert_eq!(ids_of(&p1.items), [6, 1, 4, 3]);
    assert!(p1.prev.is_none());
    let p2 = q().paginate(&db, PageRequest::after(p1.next.clone().expect("a next page"), 4)).await?;
    assert_eq!(ids_of(&p2.items), [2, 5]);
    assert!(p2.next.is_none());
    let back = q().paginate(&db, PageRequest::before(p2.prev.clone().expect("a previous page"), 4)).await?;
    assert_eq!(ids_of(&back.items), [6, 1, 4, 3]);
    let other =
        Person::query().order_by(Person::NAME.asc()).paginate(&db, PageRequest::after(p1.next.unwrap(), 2)).await;
    assert_err!(other, Error::InvalidCursor(_));
    Ok::<_, Error>(())
});

store_test!(counts_exists_and_bulk_writes, |db| async move {
    db.create_all(&[Person::SCHEMA]).await?;
    seed(&db).await?;
    assert_eq!(Person::query().count(&db).await?, 6);
    assert_eq!(Person::query().filter(Person::COUNTRY.eq("UK")).count(&db).await?, 2);
    assert!(Person::query().filter(Person::SCORE.gt(45)).exists(&db).await?);
    assert!(!Person::query().filter(Person::SCORE.gt(450)).exists(&db).await?);

    let n = Person::query()
        .filter(Person::COUNTRY.eq("UK").or(Person::COUNTRY.eq("US")))
        .update_many(&db, [Person::BONUS.increment(10), Person::SCORE.decrement(1)])
        .await?;
    assert_eq!(n, 4);
    let rows = Person::query().order_by(Person::ID.asc()).all(&db).await?;
    let got: Vec<(i32, Option<i32>)> = rows.iter().map(|p| (p.score, p.bonus)).collect();
    assert_eq!(got[..5], [(35, Some(15)), (40, None), (35, Some(8)), (20, Some(0)), (9, None)], "NULL + 10 stays NULL");
    let n = Person::query().filter(Person::ID.eq(1)).update_many(&db, [Person::BONUS.set_null()]).await?;
    assert_eq!(n, 1);
    assert_eq!(Person::find(&db, 1).await?.bonus, None);
    assert_eq!(Person::query().filter(Person::BONUS.is_null()).delete_many(&db).await?, 3);
    assert_eq!(Person::query().count(&db).await?, 3);
    assert_eq!(Person::query().delete_many(&db).await?, 3);
    Ok::<_, Error>(())
});

store_test!(streams_yield_what_all_returns, |db| async move {
    use futures_util::TryStreamExt as _;
    db.create_all(&[Person::SCHEMA]).await?;
    seed(&db).await?;
    let q = Person::query().filter(Person::SCORE.ge(20)).order_by(Person::BONUS.asc().nulls_last());
    let streamed: Vec<Person> = q.clone().stream(&db).try_collect().await?;
    assert_eq!(streamed, q.all(&db).await?);
    assert_eq!(streamed.iter().map(|p| p.id).collect::<Vec<_>>(), [3, 4, 1, 6, 2]);
    let mut one_by_one = Person::query().order_by(Person::ID.desc()).stream(&db);
    assert_eq!(one_by_one.try_next().await?.map(|p| p.id), Some(6), "streams are Unpin: try_next works");
    drop(one_by_one);
    Ok::<_, Error>(())
});

#[derive(Enum, Debug, Clone, Copy, PartialEq)]
enum Tier {
    Free,
    Pro,
}

#[derive(Embedded, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Address {
    city: String,
    zip: Option<String>,
    lines: Vec<String>,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "c_samples")]
struct Sample {
    #[model(primary_key)]
    id: uuid::Uuid,
    price: Decimal,
    day: NaiveDate,
    at: DateTime<Utc>,
    tier: Tier,
    ratio: f32,
    home: Address,
    history: Vec<Address>,
    numbers: Vec<i64>,
    extra: Option<serde_json::Value>,
    small: i16,
}

store_test!(every_value_type_round_trips, |db| async move {
    db.create_all(&[Sample::SCHEMA]).await?;
    let address = |city: &str| Address { city: city.into(), zip: None, lines: vec!["1 Main St".into()] };
    let at = Utc.timestamp_opt(1_700_000_000, 123_000_000).unwrap();
    let s = Sample {
        id: uuid::Uuid::new_v4(),
        price: "1234.5600".parse().unwrap(),
        day: NaiveDate::from_ymd_opt(2024, 2, 29).unwrap(),
        at,
        tier: Tier::Pro,
        ratio: 0.25,
        home: address("Wellington"),
        history: vec![address("Auckland"), address("Paris")],
        numbers: vec![1, -2, 1 << 40],
        extra: Some(serde_json::json!({"a": [1, 2.5, "x", null], "$b": {"c": true}})),
        small: -7,
    };
    assert_eq!(s.insert(&db).await?, s);
    assert_eq!(Sample::find(&db, s.id).await?, s);
    let q = Sample::query;
    assert_eq!(q().filter(Sample::PRICE.gt("1000".parse::<Decimal>().unwrap())).count(&db).await?, 1);
    assert_eq!(q().filter(Sample::PRICE.eq("1234.56".parse::<Decimal>().unwrap())).count(&db).await?, 1);
    assert_eq!(q().filter(Sample::DAY.lt(NaiveDate::from_ymd_opt(2024, 3, 1).unwrap())).count(&db).await?, 1);
    assert_eq!(q().filter(Sample::AT.eq(at)).count(&db).await?, 1);
    assert_eq!(q().filter(Sample::TIER.eq(Tier::Free)).count(&db).await?, 0);
    assert_eq!(q().filter(Sample::NUMBERS.contains(1_i64 << 40)).count(&db).await?, 1);
    Ok::<_, Error>(())
});

store_test!(timestamps_keep_microseconds_on_sql_and_milliseconds_on_mongodb, |db| async move {
    db.create_all(&[Sample::SCHEMA]).await?;
    let at = Utc.timestamp_opt(1_700_000_000, 123_456_789).unwrap();
    let s = Sample {
        id: uuid::Uuid::new_v4(),
        price: Decimal::ONE,
        day: NaiveDate::from_ymd_opt(2024, 1, 1).unwrap(),
        at,
        tier: Tier::Free,
        ratio: 1.0,
        home: Address { city: "x".into(), zip: None, lines: vec![] },
        history: vec![],
        numbers: vec![],
        extra: None,
        small: 0,
    };
    let stored = s.insert(&db).await?;
    let expected = match db.kind() {
        // BSON datetimes count milliseconds.
        StoreKind::Mongo => Utc.timestamp_opt(1_700_000_000, 123_000_000).unwrap(),
        // PostgreSQL and SQLite (its text form) keep microseconds.
        StoreKind::Postgres | StoreKind::Sqlite => Utc.timestamp_opt(1_700_000_000, 123_456_000).unwrap(),
    };
    assert_eq!(stored.at, expected, "the returned row is as stored");
    assert_eq!(Sample::find(&db, s.id).await?.at, expected);
    Ok::<_, Error>(())
});

/// country, people, SUM(bonus), AVG(score), MAX(bonus), COUNT(bonus).
type CountryRow = (String, i64, Option<i64>, Option<f64>, Option<i32>, i64);

store_test!(aggregates_group_and_filter_groups, |db| async move {
    db.create_all(&[Person::SCHEMA]).await?;
    seed(&db).await?;
    let per_country: Vec<CountryRow> = Person::query()
        .group_by(Person::COUNTRY)
        .order_by(Person::COUNTRY.asc())
        .select((
            Person::COUNTRY,
            count_all::<Person>(),
            Person::BONUS.sum(),
            Person::SCORE.avg(),
            Person::BONUS.max(),
            Person::BONUS.count(),
        ))
        .all(&db)
        .await?;
    assert_eq!(
        per_country,
        [
            ("FI".into(), 1, Some(0), Some(20.0), Some(0), 1),
            ("NZ".into(), 1, Some(7), Some(50.0), Some(7), 1),
            ("UK".into(), 2, Some(5), Some(38.5), Some(5), 1),
            ("US".into(), 2, Some(-2), Some(23.0), Some(-2), 1),
        ]
    );
    let crowded: Vec<(String, i64)> = Person::query()
        .group_by(Person::COUNTRY)
        .having(count_all::<Person>().gt(1))
        .order_by(Person::COUNTRY.desc())
        .select((Person::COUNTRY, count_all::<Person>()))
        .all(&db)
        .await?;
    assert_eq!(crowded, [("US".into(), 2), ("UK".into(), 2)]);
    let (n, distinct, none): (i64, i64, Option<i64>) = Person::query()
        .filter(Person::SCORE.gt(30))
        .select((count_all::<Person>(), Person::SCORE.count_distinct(), Person::BONUS.sum()))
        .one(&db)
        .await?;
    assert_eq!((n, distinct, none.is_some()), (4, 3, true));
    let empty: Option<i64> = Person::query().filter(Person::SCORE.gt(999)).select(Person::BONUS.sum()).one(&db).await?;
    assert_eq!(empty, None, "SUM over no values is NULL");
    let pairs: Vec<(i64, String)> = Person::query()
        .filter(Person::COUNTRY.eq("UK"))
        .order_by(Person::ID.desc())
        .select((Person::ID, Person::EMAIL))
        .all(&db)
        .await?;
    assert_eq!(pairs, [(2, "alan@x.io".to_owned()), (1, "ada@x.io".to_owned())]);
    Ok::<_, Error>(())
});

/// What only MongoDB has, or only MongoDB needs: indexes and validators from the model,
/// transactions on sessions, counters, the aggregation pipeline builder, the execution point.
mod mongodb_only {
    use futures_util::TryStreamExt as _;
    use polystore::mongo::driver::bson::{self as bson, Document, doc};
    use polystore::mongo::{Accumulator, MongoStore, Pipeline, json_schema};
    use polystore_tests::run_on_mongo;

    use super::*;

    #[derive(Model, Debug, Clone, PartialEq)]
    #[model(table = "c_events", index(kind, note), index(at, ttl = "1h"))]
    struct Event {
        #[model(primary_key, generated)]
        id: i32,
        #[model(unique)]
        slug: String,
        kind: Tier,
        at: DateTime<Utc>,
        note: Option<String>,
    }

    fn event(slug: &str, kind: Tier) -> Event {
        Event { id: 0, slug: slug.into(), kind, at: Utc.timestamp_opt(1_700_000_000, 0).unwrap(), note: None }
    }

    async fn indexes(store: &MongoStore) -> Vec<Document> {
        let cursor = store.database().collection::<Document>("c_events").list_indexes().await.expect("indexes");
        cursor
            .try_collect::<Vec<_>>()
            .await
            .expect("indexes")
            .into_iter()
            .map(|ix| bson::to_document(&ix).expect("index document"))
            .collect()
    }

    #[tokio::test]
    async fn create_all_makes_indexes_and_a_json_schema_validator() {
        run_on_mongo(|store| async move {
            store.create_all(&[Event::SCHEMA]).await?;
            store.create_all(&[Event::SCHEMA]).await?; // idempotent
            let ix = indexes(&store).await;
            let find = |name: &str| ix.iter().find(|d| d.get_str("name") == Ok(name)).cloned();
            let unique = find("c_events_slug_key").expect("the unique index");
            assert_eq!(unique.get_document("key").unwrap(), &doc! { "slug": 1 });
            assert_eq!(unique.get_bool("unique"), Ok(true));
            let compound = ix.iter().find(|d| d.get_document("key").ok() == Some(&doc! { "kind": 1, "note": 1 }));
            assert!(compound.is_some(), "the compound index: {ix:?}");
            let ttl = ix.iter().find(|d| d.get("expireAfterSeconds").is_some()).expect("the TTL index");
            assert_eq!(ttl.get_document("key").unwrap(), &doc! { "at": 1 });
            assert_eq!(
                ttl.get("expireAfterSeconds").and_then(|v| v.as_i64().or(v.as_i32().map(i64::from))),
                Some(3600)
            );

            let reply = store.run_command(doc! { "listCollections": 1, "filter": { "name": "c_events" } }).await?;
            let info = reply.get_document("cursor").unwrap().get_array("firstBatch").unwrap()[0]
                .as_document()
                .unwrap()
                .clone();
            assert_eq!(
                info.get_document("options").unwrap().get_document("validator").unwrap(),
                &json_schema(Event::SCHEMA)
            );

            // The validator rejects what the model could not have written.
            let raw = store.database().collection::<Document>("c_events");
            let bad = raw.insert_one(doc! { "_id": 1, "slug": "x", "kind": "Gold", "at": bson::DateTime::now() }).await;
            assert!(bad.is_err(), "an enum value outside the model is rejected");
            let missing = raw.insert_one(doc! { "_id": 2, "slug": "y", "kind": "Free" }).await;
            assert!(missing.is_err(), "a required field is enforced");
            raw.insert_one(doc! { "_id": 3, "slug": "z", "kind": "Free", "at": bson::DateTime::now(), "note": null })
                .await
                .expect("null is allowed for an Option field");
            store.update_validator(Event::SCHEMA).await?;
            Ok::<_, Error>(())
        })
        .await
    }

    #[tokio::test]
    async fn duplicate_keys_and_undecodable_documents_name_the_fields() {
        run_on_mongo(|store| async move {
            store.create_all(&[Event::SCHEMA]).await?;
            let a = event("a", Tier::Free).insert(&store).await?;
            assert_eq!(a.id, 1);
            let dup = event("a", Tier::Pro).insert(&store).await;
            assert_err!(dup, Error::UniqueViolation { ref constraint, ref fields, .. }
                if constraint.as_deref() == Some("c_events_slug_key") && fields == &["slug"]);
            let mut same_key = event("b", Tier::Pro);
            same_key.id = 1;
            let dup_key = same_key.upsert(&store).await.map(|e| e.slug);
            assert_eq!(dup_key?, "b", "upsert on the key replaces the fields");
            // A document written behind the model's back (validation bypassed) that does not
            // decode: the error names the model and the field.
            let foreign = doc! { "_id": 9, "slug": "n", "kind": "Pro", "at": bson::DateTime::now(), "note": 5 };
            store
                .run_command(doc! { "insert": "c_events", "documents": [foreign], "bypassDocumentValidation": true })
                .await?;
            assert_err!(Event::find(&store, 9).await, Error::Decode { model: "Event", field: "note", .. });
            Ok::<_, Error>(())
        })
        .await
    }

    #[tokio::test]
    async fn transactions_commit_or_roll_back_on_a_session() {
        run_on_mongo(|store| async move {
            store.create_all(&[Event::SCHEMA]).await?;
            let mut tx = store.begin().await?;
            let a = event("a", Tier::Free).insert(&mut tx).await?;
            assert_eq!(Event::find(&mut tx, a.id).await?.slug, "a", "the transaction sees its own write");
            assert_eq!(Event::query().count(&mut tx).await?, 1);
            tx.rollback().await?;
            assert_eq!(Event::query().count(&store).await?, 0, "rolled back");

            let mut tx = store.begin().await?;
            Event::insert_many(&mut tx, &[event("b", Tier::Free), event("c", Tier::Pro)]).await?;
            Event::query().filter(Event::SLUG.eq("b")).update_many(&mut tx, [Event::NOTE.set("x")]).await?;
            tx.commit().await?;
            assert_eq!(Event::query().count(&store).await?, 2);
            assert_eq!(Event::query().filter(Event::NOTE.eq("x")).count(&store).await?, 1);

            let tx = store.begin().await?;
            drop(tx); // dropping aborts
            Ok::<_, Error>(())
        })
        .await
    }

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct PerCountry {
        #[serde(rename = "_id")]
        country: Option<String>,
        people: i32,
        total: i64,
        best: i32,
        emails: Vec<String>,
    }

    #[tokio::test]
    async fn the_pipeline_builder_groups_unwinds_and_facets() {
        run_on_mongo(|store| async move {
            store.create_all(&[Person::SCHEMA]).await?;
            seed(&store).await?;
            let rows: Vec<PerCountry> = Pipeline::<Person>::new()
                .filter(Person::SCORE.ge(20))
                .sort([Person::EMAIL.asc()])
                .group(
                    Person::COUNTRY,
                    [
                        ("people", Accumulator::count()),
                        ("total", Accumulator::sum(Person::SCORE)),
                        ("best", Accumulator::max(Person::SCORE)),
                        ("emails", Accumulator::push(Person::EMAIL)),
                    ],
                )
                .stage(doc! { "$addFields": { "total": { "$toLong": "$total" } } })
                .stage(doc! { "$sort": { "_id": 1 } })
                .all(&store)
                .await?;
            assert_eq!(rows.len(), 4);
            assert_eq!(
                rows[2],
                PerCountry {
                    country: Some("UK".into()),
                    people: 2,
                    total: 77,
                    best: 41,
                    emails: vec!["ada@x.io".into(), "alan@x.io".into()]
                }
            );
            let tags = Pipeline::<Person>::new().unwind(Person::TAGS).count("n").documents(&store).await?;
            assert_eq!(tags[0].get("n").and_then(|n| n.as_i32().or(n.as_i64().map(|v| v as i32))), Some(4));
            let facets = Pipeline::<Person>::new()
                .facet([
                    ("top", Pipeline::new().sort([Person::SCORE.desc()]).limit(1).project([Person::EMAIL])),
                    ("uk", Pipeline::new().filter(Person::COUNTRY.eq("UK")).count("n")),
                ])
                .documents(&store)
                .await?;
            let top = facets[0].get_array("top").unwrap()[0].as_document().unwrap();
            assert_eq!(top.get_str("email"), Ok("mia@x.io"));
            let first_two = Pipeline::<Person>::new().sort([Person::ID.asc()]).limit(2).models(&store).await?;
            assert_eq!(first_two.iter().map(|p| p.id).collect::<Vec<_>>(), [1, 2]);
            let stats_before = store.stats().statements();
            Person::query().count(&store).await?;
            assert_eq!(store.stats().statements(), stats_before + 1, "one command, counted once");
            Ok::<_, Error>(())
        })
        .await
    }

    #[tokio::test]
    async fn sql_only_operations_say_so_on_mongodb() {
        run_on_mongo(|store| async move {
            store.create_all(&[Person::SCHEMA]).await?;
            let raw = polystore::raw::<Person>("SELECT * FROM c_people").all(&store).await;
            assert_err!(raw, Error::Unsupported { store: "mongodb", .. });
            let db = polystore_tests::sqlite().await;
            let pipeline = Pipeline::<Person>::new().count("n").documents(&db).await;
            assert_err!(pipeline, Error::Unsupported { .. });
            Ok::<_, Error>(())
        })
        .await
    }

    #[tokio::test]
    async fn generated_keys_come_from_one_counter_per_collection() {
        run_on_mongo(|store| async move {
            store.create_all(&[Event::SCHEMA, Person::SCHEMA]).await?;
            let batch = Event::insert_many(&store, &[event("a", Tier::Free), event("b", Tier::Free)]).await?;
            assert_eq!(batch.iter().map(|e| e.id).collect::<Vec<_>>(), [1, 2]);
            assert_eq!(person("p@x.io", "P", None, "UK", 1, None).insert(&store).await?.id, 1, "another counter");
            assert_eq!(event("c", Tier::Pro).insert(&store).await?.id, 3);
            store.drop_all(&[Event::SCHEMA, Person::SCHEMA]).await?;
            store.create_all(&[Event::SCHEMA]).await?;
            assert_eq!(event("d", Tier::Pro).insert(&store).await?.id, 1, "drop_all resets the counter");
            Ok::<_, Error>(())
        })
        .await
    }
}
