//! Value types (decimals, UUIDs, dates, timestamps, enums, embedded documents, arrays,
//! JSON) and DTO writes, on every store.

use super::*;

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "c_notes", dto(NewNote, create), dto(NotePatch, update))]
struct Note {
    #[model(primary_key, generated)]
    id: i64,
    title: String,
    body: Option<String>,
    #[model(updated_at)]
    updated_at: DateTime<Utc>,
}

store_test!(dto_inserts_and_partial_updates, |db| async move {
    db.create_all(&[Note::SCHEMA]).await?;
    let note = NewNote { title: "t".into(), body: Some("b".into()) }.insert(&db).await?;
    assert_eq!((note.id, note.title.as_str(), note.body.as_deref()), (1, "t", Some("b")));
    let patch = NotePatch { title: None, body: Some(None) };
    let patched = patch.update(&db, note.id).await?;
    assert_eq!((patched.title.as_str(), patched.body.as_deref()), ("t", None), "only the set fields change");
    assert!(patched.updated_at >= note.updated_at);
    let same = NotePatch { title: None, body: None }.update(&db, note.id).await?;
    assert_eq!(same, patched, "an empty patch reads the row");
    assert_err!(NotePatch { title: Some("x".into()), body: None }.update(&db, 99).await, Error::NotFound { .. });
    Ok::<_, Error>(())
});

#[derive(Enum, Debug, Clone, Copy, PartialEq)]
pub(super) enum Tier {
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
