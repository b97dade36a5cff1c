//! One conformance suite, written once and run on PostgreSQL, SQLite and MongoDB
//! (`store_test!`): CRUD, every filter including NULL / missing-field semantics, ordering,
//! pagination, counts, bulk writes, value types and aggregates. The stores must agree; where
//! they cannot, the difference is asserted per store and documented in `docs/mongodb.md`.
//!
//! Here: CRUD, composite keys and every filter; `reads`: ordering, pagination, counts, bulk
//! writes, streams, aggregates; `types`: value types and DTOs; `keys`: keys chosen for
//! generated keys; `mongodb_only`: indexes,
//! validators, transactions, counters, pipelines and tracing on MongoDB.

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

store_test!(text_matches_anchor_at_the_true_end_of_values_with_newlines, |db| async move {
    db.create_all(&[Person::SCHEMA]).await?;
    let names = ["tail", "tail\n", "a\ntail", "tail\nx", "TAIL\n"];
    let rows: Vec<Person> =
        names.iter().enumerate().map(|(i, n)| person(&format!("{i}@x.io"), n, None, "NZ", 1, None)).collect();
    Person::insert_many(&db, &rows).await?;
    let q = Person::query;
    assert_eq!(ids(q().filter(Person::NAME.ends_with("tail")), &db).await?, [1, 3], "not before a final newline");
    assert_eq!(ids(q().filter(Person::NAME.ends_with_ci("tail")), &db).await?, [1, 3]);
    assert_eq!(ids(q().filter(Person::NAME.like("%tail")), &db).await?, [1, 3]);
    assert_eq!(ids(q().filter(Person::NAME.ilike("%TAIL")), &db).await?, [1, 3]);
    assert_eq!(ids(q().filter(Person::NAME.eq("tail")), &db).await?, [1]);
    assert_eq!(ids(q().filter(Person::NAME.starts_with("tail")), &db).await?, [1, 2, 4], "not after a newline");
    assert_eq!(ids(q().filter(Person::NAME.like("tail%")), &db).await?, [1, 2, 4]);
    assert_eq!(ids(q().filter(Person::NAME.like("tail_")), &db).await?, [2], "`_` matches a newline");
    assert_eq!(ids(q().filter(Person::NAME.contains("l\nx")), &db).await?, [4]);
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

#[path = "conformance/decimals.rs"]
mod decimals;
#[path = "conformance/expressions.rs"]
mod expressions;
#[path = "conformance/functions.rs"]
mod functions;
#[path = "conformance/joins.rs"]
mod joins;
#[path = "conformance/keys.rs"]
mod keys;
#[path = "conformance/keyset_values.rs"]
mod keyset_values;
#[path = "conformance/mongodb_only.rs"]
mod mongodb_only;
#[path = "conformance/raw_rows.rs"]
mod raw_rows;
#[path = "conformance/reads.rs"]
mod reads;
#[path = "conformance/relation_filters.rs"]
mod relation_filters;
#[path = "conformance/subqueries.rs"]
mod subqueries;
#[path = "conformance/types.rs"]
mod types;

/// A model with list fields, for `push`.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "c_playlists")]
pub struct Playlist {
    #[model(primary_key)]
    pub id: i64,
    pub tracks: Vec<String>,
    pub plays: Option<Vec<i32>>,
    pub notes: Vec<Note>,
}

/// An embedded element of a list stored as JSON.
#[derive(Embedded, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Note {
    pub text: String,
}

store_test!(push_appends_to_lists_and_starts_null_ones, |db| async move {
    db.create_all(&[Playlist::SCHEMA]).await?;
    let empty = Playlist { id: 1, tracks: vec![], plays: None, notes: vec![] };
    let full =
        Playlist { id: 2, tracks: vec!["a".into()], plays: Some(vec![1]), notes: vec![Note { text: "x".into() }] };
    Playlist::insert_many(&db, &[empty, full]).await?;
    let changed = Playlist::query()
        .update_many(
            &db,
            [
                Playlist::TRACKS.push("it's \"quoted\""),
                Playlist::PLAYS.push(7),
                Playlist::NOTES.push(Note { text: "new".into() }),
            ],
        )
        .await?;
    assert_eq!(changed, 2);
    let rows = Playlist::query().order_by(Playlist::ID.asc()).all(&db).await?;
    assert_eq!(rows[0].tracks, ["it's \"quoted\""]);
    assert_eq!(rows[0].plays, Some(vec![7]), "a NULL list becomes a one-element list");
    assert_eq!(rows[0].notes, [Note { text: "new".into() }]);
    assert_eq!(rows[1].tracks, ["a", "it's \"quoted\""]);
    assert_eq!(rows[1].plays, Some(vec![1, 7]));
    assert_eq!(rows[1].notes, [Note { text: "x".into() }, Note { text: "new".into() }]);
    Ok::<_, Error>(())
});

/// A model keyed by a client-made ObjectId.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "c_events")]
pub struct Event {
    #[model(primary_key)]
    pub id: polystore::ObjectId,
    pub name: String,
    pub parent: Option<polystore::ObjectId>,
}

store_test!(object_id_keys_round_trip_and_filter, |db| async move {
    db.create_all(&[Event::SCHEMA]).await?;
    let first = Event { id: polystore::ObjectId::new(), name: "launch".into(), parent: None };
    let second = Event { id: polystore::ObjectId::new(), name: "retry".into(), parent: Some(first.id) };
    Event::insert_many(&db, &[first.clone(), second.clone()]).await?;
    assert_eq!(Event::find(&db, first.id).await?, first);
    let children = Event::query().filter(Event::PARENT.eq(first.id)).all(&db).await?;
    assert_eq!(children.len(), 1);
    assert_eq!(children[0], second);
    let listed =
        Event::query().filter(Event::ID.is_in([first.id, second.id])).order_by(Event::ID.asc()).all(&db).await?;
    assert_eq!(listed.iter().map(|e| e.id).collect::<Vec<_>>(), [first.id, second.id], "ids made later sort later");
    Event { name: "relaunch".into(), ..first.clone() }.update(&db).await?;
    assert_eq!(Event::find(&db, first.id).await?.name, "relaunch");
    assert!(Event::delete_by_key(&db, second.id).await?);
    assert_eq!(Event::query().count(&db).await?, 1);
    Ok::<_, Error>(())
});

#[tokio::test]
async fn object_ids_are_stored_as_bson_object_ids_on_mongodb() {
    polystore_tests::run_on_mongo(|store| async move {
        store.create_all(&[Event::SCHEMA]).await?;
        let id = polystore::ObjectId::new();
        Event { id, name: "x".into(), parent: Some(id) }.insert(&store).await?;
        let raw = store
            .database()
            .collection::<polystore::mongo::driver::bson::Document>("c_events")
            .find_one(polystore::mongo::driver::bson::doc! {})
            .await
            .map_err(|e| Error::Database { code: None, message: e.to_string() })?
            .expect("one document");
        assert_eq!(raw.get_object_id("_id").map(|o| o.bytes()), Ok(id.bytes()));
        assert_eq!(raw.get_object_id("parent").map(|o| o.to_hex()), Ok(id.to_hex()));
        Ok::<_, Error>(())
    })
    .await
}
