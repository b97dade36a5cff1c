//! Every supported field type survives a write and a read unchanged, on PostgreSQL and on
//! SQLite; filters bind values of those types correctly (an enum, a UUID, a date, ...).

use std::str::FromStr;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use polystore::Backend;
use polystore::prelude::*;
use polystore_tests::{query_i64, query_text, sql_test};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

#[derive(Enum, Debug, Clone, Copy, PartialEq)]
#[model(rename_all = "snake_case")]
enum Mood {
    Calm,
    RatherExcited,
    #[model(rename = "GRUMPY!")]
    Grumpy,
}

#[derive(Embedded, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Address {
    street: String,
    city: String,
    zip: Option<String>,
    lines: Vec<String>,
}

/// One field of every supported type.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "samples")]
struct Sample {
    #[model(primary_key)]
    id: Uuid,
    label: String,
    small: i16,
    medium: i32,
    big: i64,
    single: f32,
    double: f64,
    flag: bool,
    text: String,
    at: DateTime<Utc>,
    day: NaiveDate,
    wall: NaiveDateTime,
    other_id: Uuid,
    price: Decimal,
    doc: serde_json::Value,
    ints: Vec<i32>,
    words: Vec<String>,
    refs: Vec<Uuid>,
    mood: Mood,
    moods: Vec<Mood>,
    home: Address,
    work: Option<Address>,
    history: Vec<Address>,
    maybe_text: Option<String>,
    maybe_small: Option<i16>,
    maybe_big: Option<i64>,
    maybe_double: Option<f64>,
    maybe_flag: Option<bool>,
    maybe_at: Option<DateTime<Utc>>,
    maybe_day: Option<NaiveDate>,
    maybe_wall: Option<NaiveDateTime>,
    maybe_uuid: Option<Uuid>,
    maybe_price: Option<Decimal>,
    maybe_doc: Option<serde_json::Value>,
    maybe_mood: Option<Mood>,
    maybe_ints: Option<Vec<i32>>,
}

/// Arrays of the other scalar types.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "array_samples")]
struct Arrays {
    #[model(primary_key)]
    id: i64,
    smalls: Vec<i16>,
    bigs: Vec<i64>,
    doubles: Vec<f64>,
    flags: Vec<bool>,
    days: Vec<NaiveDate>,
    instants: Vec<DateTime<Utc>>,
    walls: Vec<NaiveDateTime>,
    prices: Vec<Decimal>,
    docs: Vec<serde_json::Value>,
}

fn uuid(n: u128) -> Uuid {
    Uuid::from_u128(0x6c3f_1d2e_0000_4000_8000_0000_0000_0000 | n)
}

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, micros: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s).single().expect("a valid instant")
        + chrono::Duration::microseconds(i64::from(micros))
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("a valid date")
}

fn wall(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, micros: u32) -> NaiveDateTime {
    date(y, mo, d).and_hms_micro_opt(h, mi, s, micros).expect("a valid time")
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).expect("a valid decimal")
}

fn home() -> Address {
    Address {
        street: "1 Infinite Loop".into(),
        city: "Zürich".into(),
        zip: Some("8001".into()),
        lines: vec!["c/o O'Brien".into(), "\"Top\" floor".into()],
    }
}

/// Large values, every option set.
fn maximal() -> Sample {
    Sample {
        id: uuid(1),
        label: "max".into(),
        small: i16::MAX,
        medium: i32::MAX,
        big: i64::MAX,
        single: f32::MAX,
        double: f64::MAX,
        flag: true,
        text: "O'Brien said \"hi\" — ünïcödé ✓ 🦀; back\\slash; 'quotes'; tab\tnew\nline".into(),
        at: utc(2024, 2, 29, 23, 59, 58, 123_456),
        day: date(2024, 2, 29),
        wall: wall(2024, 2, 29, 12, 34, 56, 654_321),
        other_id: Uuid::max(),
        price: dec("12345.6789"),
        doc: json!({
            "name": "widget",
            "tags": ["a", "b", "ü"],
            "nested": { "depth": 2, "ok": true, "nothing": null },
            "ratio": 0.25,
            "count": 9_007_199_254_740_993_i64
        }),
        ints: vec![i32::MIN, -1, 0, 1, i32::MAX],
        words: vec!["alpha".into(), "with space".into(), "quote'd".into(), "comma,d".into(), "ünï".into(), "".into()],
        refs: vec![uuid(10), uuid(11), Uuid::nil()],
        mood: Mood::RatherExcited,
        moods: vec![Mood::Calm, Mood::Grumpy, Mood::RatherExcited],
        home: home(),
        work: Some(Address { street: "Bahnhofstrasse 1".into(), city: "Bern".into(), zip: None, lines: vec![] }),
        history: vec![home(), Address { street: "Old".into(), city: "Basel".into(), zip: None, lines: vec![] }],
        maybe_text: Some("present".into()),
        maybe_small: Some(i16::MAX),
        maybe_big: Some(i64::MAX),
        maybe_double: Some(2.5e-300),
        maybe_flag: Some(false),
        maybe_at: Some(utc(1999, 12, 31, 23, 59, 59, 999_999)),
        maybe_day: Some(date(9999, 12, 31)),
        maybe_wall: Some(wall(2000, 1, 1, 0, 0, 0, 1)),
        maybe_uuid: Some(uuid(99)),
        maybe_price: Some(dec("-0.000001")),
        maybe_doc: Some(json!([1, "two", { "three": 3 }])),
        maybe_mood: Some(Mood::Grumpy),
        maybe_ints: Some(vec![7]),
    }
}

/// Small values, every option `None`, empty collections.
fn minimal() -> Sample {
    Sample {
        id: uuid(2),
        label: "min".into(),
        small: i16::MIN,
        medium: i32::MIN,
        big: i64::MIN,
        single: f32::MIN_POSITIVE,
        double: -1.5e-300,
        flag: false,
        text: String::new(),
        at: utc(1970, 1, 1, 0, 0, 0, 1),
        day: date(1900, 1, 1),
        wall: wall(1970, 1, 1, 0, 0, 0, 0),
        other_id: Uuid::nil(),
        price: dec("-79228162514264337593543950335"),
        doc: json!({}),
        ints: vec![],
        words: vec![],
        refs: vec![],
        mood: Mood::Calm,
        moods: vec![],
        home: Address { street: String::new(), city: String::new(), zip: None, lines: vec![] },
        work: None,
        history: vec![],
        maybe_text: None,
        maybe_small: None,
        maybe_big: None,
        maybe_double: None,
        maybe_flag: None,
        maybe_at: None,
        maybe_day: None,
        maybe_wall: None,
        maybe_uuid: None,
        maybe_price: None,
        maybe_doc: None,
        maybe_mood: None,
        maybe_ints: None,
    }
}

/// Ordinary values.
fn typical() -> Sample {
    Sample {
        id: uuid(3),
        label: "typical".into(),
        small: 12,
        medium: -34_567,
        big: 1 << 40,
        single: 3.25,
        double: std::f64::consts::PI,
        flag: true,
        text: "plain".into(),
        at: utc(2023, 6, 15, 8, 30, 0, 500_000),
        day: date(2023, 6, 15),
        wall: wall(2023, 6, 15, 8, 30, 0, 0),
        other_id: uuid(33),
        price: dec("19.99"),
        doc: json!({ "a": 1 }),
        ints: vec![3, 1, 2],
        words: vec!["x".into()],
        refs: vec![uuid(12)],
        mood: Mood::Grumpy,
        moods: vec![Mood::Calm],
        home: home(),
        work: None,
        history: vec![home()],
        maybe_text: Some(String::new()),
        maybe_small: Some(-1),
        maybe_big: None,
        maybe_double: Some(0.0),
        maybe_flag: Some(true),
        maybe_at: None,
        maybe_day: Some(date(2023, 6, 16)),
        maybe_wall: None,
        maybe_uuid: None,
        maybe_price: Some(dec("0")),
        maybe_doc: None,
        maybe_mood: None,
        maybe_ints: Some(vec![]),
    }
}

async fn samples_table(db: &Db) -> Result<Vec<Sample>> {
    db.create_all(&[Sample::SCHEMA]).await?;
    Sample::insert_many(db, &[maximal(), minimal(), typical()]).await
}

sql_test!(every_field_type_round_trips_through_insert_and_find, |db| async move {
    db.create_all(&[Sample::SCHEMA]).await?;
    for sample in [maximal(), minimal(), typical()] {
        let stored = sample.insert(&db).await?;
        assert_eq!(stored, sample, "insert ... RETURNING gives back what was written ({})", sample.label);
        let found = Sample::find(&db, sample.id).await?;
        assert_eq!(found, sample, "find gives back what was written ({})", sample.label);
    }
    Ok::<_, Error>(())
});

sql_test!(every_field_type_round_trips_through_insert_many_update_and_query, |db| async move {
    let stored = samples_table(&db).await?;
    assert_eq!(stored, vec![maximal(), minimal(), typical()]);

    // Swap the values of two rows (keeping keys): every column is rewritten by UPDATE.
    let mut swapped = minimal();
    swapped.id = maximal().id;
    swapped.label = "max".into();
    assert_eq!(swapped.update(&db).await?, swapped);
    let mut swapped_back = maximal();
    swapped_back.id = minimal().id;
    swapped_back.label = "min".into();
    assert_eq!(swapped_back.update(&db).await?, swapped_back);

    let all = Sample::query().order_by(Sample::LABEL.asc()).all(&db).await?;
    assert_eq!(all, vec![swapped, swapped_back, typical()]);
    Ok::<_, Error>(())
});

sql_test!(options_set_to_none_are_stored_as_null, |db| async move {
    samples_table(&db).await?;
    for column in [
        "maybe_text",
        "maybe_small",
        "maybe_big",
        "maybe_double",
        "maybe_flag",
        "maybe_at",
        "maybe_day",
        "maybe_wall",
        "maybe_uuid",
        "maybe_price",
        "maybe_doc",
        "maybe_mood",
        "maybe_ints",
        "work",
    ] {
        let nulls =
            query_i64(&db, &format!("SELECT COUNT(*) FROM samples WHERE label = 'min' AND {column} IS NULL")).await;
        assert_eq!(nulls, 1, "{column} of the minimal sample is NULL");
    }
    let nulls = query_i64(&db, "SELECT COUNT(*) FROM samples WHERE label = 'max' AND maybe_text IS NULL").await;
    assert_eq!(nulls, 0);

    assert_eq!(Sample::query().filter(Sample::MAYBE_TEXT.is_null()).count(&db).await?, 1);
    assert_eq!(Sample::query().filter(Sample::MAYBE_TEXT.eq(None)).count(&db).await?, 1);
    assert_eq!(Sample::query().filter(Sample::WORK.is_not_null()).count(&db).await?, 1);
    assert_eq!(Sample::query().filter(Sample::MAYBE_INTS.is_null()).count(&db).await?, 1);
    Ok::<_, Error>(())
});

sql_test!(enums_are_stored_as_their_renamed_text, |db| async move {
    samples_table(&db).await?;
    let stored = |label: &'static str| {
        let db = db.clone();
        async move { query_text(&db, &format!("SELECT mood FROM samples WHERE label = '{label}'")).await }
    };
    assert_eq!(stored("max").await.as_deref(), Some("rather_excited"));
    assert_eq!(stored("min").await.as_deref(), Some("calm"));
    assert_eq!(stored("typical").await.as_deref(), Some("GRUMPY!"));
    Ok::<_, Error>(())
});

sql_test!(json_and_embedded_values_are_stored_as_json, |db| async move {
    samples_table(&db).await?;
    let (home_sql, doc_sql) = match db.backend() {
        Backend::Postgres => (
            "SELECT home->>'city' FROM samples WHERE label = 'max'",
            "SELECT doc->'nested'->>'depth' FROM samples WHERE label = 'max'",
        ),
        Backend::Sqlite => (
            "SELECT json_extract(home, '$.city') FROM samples WHERE label = 'max'",
            "SELECT CAST(json_extract(doc, '$.nested.depth') AS TEXT) FROM samples WHERE label = 'max'",
        ),
    };
    assert_eq!(query_text(&db, home_sql).await.as_deref(), Some("Zürich"));
    assert_eq!(query_text(&db, doc_sql).await.as_deref(), Some("2"));
    Ok::<_, Error>(())
});

sql_test!(filters_bind_enum_uuid_and_date_values, |db| async move {
    samples_table(&db).await?;
    let labels = |rows: Vec<Sample>| rows.into_iter().map(|s| s.label).collect::<Vec<_>>();

    // Enum
    let grumpy = Sample::query().filter(Sample::MOOD.eq(Mood::Grumpy)).all(&db).await?;
    assert_eq!(labels(grumpy), ["typical"]);
    let not_calm = Sample::query().filter(Sample::MOOD.ne(Mood::Calm)).order_by(Sample::LABEL.asc()).all(&db).await?;
    assert_eq!(labels(not_calm), ["max", "typical"]);
    let some_moods = Sample::query()
        .filter(Sample::MOOD.is_in([Mood::Calm, Mood::RatherExcited]))
        .order_by(Sample::LABEL.asc())
        .all(&db)
        .await?;
    assert_eq!(labels(some_moods), ["max", "min"]);
    assert_eq!(Sample::query().filter(Sample::MAYBE_MOOD.eq(Mood::Grumpy)).count(&db).await?, 1);

    // UUID: the key and an ordinary column.
    assert_eq!(labels(Sample::query().filter(Sample::ID.eq(uuid(3))).all(&db).await?), ["typical"]);
    assert_eq!(labels(Sample::query().filter(Sample::OTHER_ID.eq(Uuid::max())).all(&db).await?), ["max"]);
    assert_eq!(labels(Sample::query().filter(Sample::MAYBE_UUID.eq(uuid(99))).all(&db).await?), ["max"]);
    assert_eq!(Sample::query().filter(Sample::ID.eq(uuid(404))).count(&db).await?, 0);

    // Date: equality and order.
    assert_eq!(labels(Sample::query().filter(Sample::DAY.eq(date(2024, 2, 29))).all(&db).await?), ["max"]);
    let after_1950 =
        Sample::query().filter(Sample::DAY.gt(date(1950, 1, 1))).order_by(Sample::DAY.desc()).all(&db).await?;
    assert_eq!(labels(after_1950), ["max", "typical"]);
    assert_eq!(Sample::query().filter(Sample::MAYBE_DAY.le(date(2023, 6, 16))).count(&db).await?, 1);

    // Instants and wall-clock times, compared and ordered.
    let by_time = Sample::query().order_by(Sample::AT.asc()).all(&db).await?;
    assert_eq!(labels(by_time), ["min", "typical", "max"]);
    let exact_at = Sample::query().filter(Sample::AT.eq(utc(2024, 2, 29, 23, 59, 58, 123_456))).all(&db).await?;
    assert_eq!(labels(exact_at), ["max"]);
    let before_noon = Sample::query().filter(Sample::WALL.lt(wall(2024, 2, 29, 12, 0, 0, 0))).count(&db).await?;
    assert_eq!(before_noon, 2);

    // Integers at their limits, floats, booleans, decimals, text.
    assert_eq!(labels(Sample::query().filter(Sample::BIG.eq(i64::MIN)).all(&db).await?), ["min"]);
    assert_eq!(labels(Sample::query().filter(Sample::SMALL.eq(i16::MAX)).all(&db).await?), ["max"]);
    assert_eq!(Sample::query().filter(Sample::MEDIUM.lt(0)).count(&db).await?, 2);
    assert_eq!(labels(Sample::query().filter(Sample::DOUBLE.eq(std::f64::consts::PI)).all(&db).await?), ["typical"]);
    assert_eq!(Sample::query().filter(Sample::FLAG.eq(true)).count(&db).await?, 2);
    assert_eq!(labels(Sample::query().filter(Sample::PRICE.eq(dec("19.99"))).all(&db).await?), ["typical"]);
    assert_eq!(labels(Sample::query().filter(Sample::TEXT.eq(maximal().text)).all(&db).await?), ["max"]);
    Ok::<_, Error>(())
});

sql_test!(timestamps_keep_microseconds, |db| async move {
    db.create_all(&[Sample::SCHEMA]).await?;
    let mut sample = typical();
    sample.at = utc(2021, 3, 4, 5, 6, 7, 890_123);
    sample.wall = wall(2021, 3, 4, 5, 6, 7, 1);
    let found = {
        sample.insert(&db).await?;
        Sample::find(&db, sample.id).await?
    };
    assert_eq!(found.at.timestamp_subsec_micros(), 890_123);
    assert_eq!(found.wall.and_utc().timestamp_subsec_micros(), 1);
    assert_eq!(found.at, sample.at);
    Ok::<_, Error>(())
});

sql_test!(arrays_of_every_scalar_type_round_trip, |db| async move {
    db.create_all(&[Arrays::SCHEMA]).await?;
    let full = Arrays {
        id: 1,
        smalls: vec![i16::MIN, 0, i16::MAX],
        bigs: vec![i64::MIN, 0, i64::MAX],
        doubles: vec![-1.5, 0.0, 1e300],
        flags: vec![true, false, true],
        days: vec![date(2024, 2, 29), date(1900, 1, 1)],
        instants: vec![utc(2024, 2, 29, 23, 59, 58, 123_456), utc(1970, 1, 1, 0, 0, 0, 1)],
        walls: vec![wall(2000, 1, 1, 0, 0, 0, 1)],
        prices: vec![dec("12345.6789"), dec("-0.01")],
        docs: vec![json!({ "a": [1, 2] }), json!("text"), json!(null)],
    };
    let empty = Arrays {
        id: 2,
        smalls: vec![],
        bigs: vec![],
        doubles: vec![],
        flags: vec![],
        days: vec![],
        instants: vec![],
        walls: vec![],
        prices: vec![],
        docs: vec![],
    };
    assert_eq!(Arrays::insert_many(&db, &[full.clone(), empty.clone()]).await?, vec![full.clone(), empty.clone()]);
    assert_eq!(Arrays::find(&db, 1).await?, full);
    assert_eq!(Arrays::find(&db, 2).await?, empty);
    Ok::<_, Error>(())
});

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "prices")]
struct Price {
    #[model(primary_key)]
    id: i32,
    amount: Decimal,
}

sql_test!(decimals_compare_and_order_by_numeric_value, |db| async move {
    db.create_all(&[Price::SCHEMA]).await?;
    let amounts = ["19.99", "100", "12345.6789", "-5", "100.00"];
    let rows: Vec<Price> = amounts
        .iter()
        .enumerate()
        .map(|(i, a)| Price { id: i as i32, amount: Decimal::from_str(a).unwrap() })
        .collect();
    Price::insert_many(&db, &rows).await?;
    let ids = |rows: Vec<Price>| rows.into_iter().map(|p| p.id).collect::<Vec<_>>();

    // SQLite keeps decimals as exact text; comparisons must still be numeric, not textual.
    let above = Price::query().filter(Price::AMOUNT.gt(Decimal::from(100))).all(&db).await?;
    assert_eq!(ids(above), [2]);
    let equal = Price::query().filter(Price::AMOUNT.eq(Decimal::from(100))).order_by(Price::ID.asc()).all(&db).await?;
    assert_eq!(ids(equal), [1, 4], "100 and 100.00 are the same number");
    let listed = Price::query().filter(Price::AMOUNT.is_in([Decimal::from_str("19.990").unwrap()])).all(&db).await?;
    assert_eq!(ids(listed), [0]);
    let ranged = Price::query()
        .filter(Price::AMOUNT.between(Decimal::from(0), Decimal::from(1000)))
        .order_by(Price::ID.asc())
        .all(&db)
        .await?;
    assert_eq!(ids(ranged), [0, 1, 4]);
    let ordered = Price::query().order_by(Price::AMOUNT.asc()).order_by(Price::ID.asc()).all(&db).await?;
    assert_eq!(ids(ordered), [3, 0, 1, 4, 2]);
    Ok::<_, Error>(())
});
