//! Validation at every layer from one set of rules, and generated DTOs, on PostgreSQL and
//! SQLite: rules checked before writes (nothing reaches the store), the same rules enforced by
//! the database for writes that bypass polystore, business rules, the JSON shape of errors,
//! and create / read / patch DTOs (a patch touches only the fields it sets).

use chrono::{DateTime, Utc};
use polystore::prelude::*;
use polystore::{ConstraintKind, RuleResult, Violation};
use polystore_tests::{assert_err, execute_sql, query_text, sql_test};
use serde::{Deserialize, Serialize};
use validator::Validate;

#[derive(Model, Validate, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[model(table = "members", rule = ends_after_start)]
#[model(dto(MemberPublic, exclude(secret)), dto(MemberCard, only(id, name)))]
// The same word (`secret`, `id`, `name`, `age`) in several `dto(..)` lists: clippy 1.95 reports
// this attribute as duplicated (a false positive of `duplicated_attributes` on the struct's own
// attributes, which a derive cannot silence; see docs/dtos.md), hence the `allow` below. The
// DTOs must still be generated each with its own fields.
#[model(dto(MemberSummary, exclude(secret, homepage)), dto(MemberTeaser, only(id, name, age)))]
#[model(dto(NewMember, create), dto(MemberPatch, update))]
#[model(dto(LenientMemberView, only(age, homepage), allow_unknown_fields))]
#[allow(clippy::duplicated_attributes)]
pub struct Member {
    #[model(primary_key, generated)]
    pub id: i64,
    #[model(unique)]
    #[validate(email)]
    pub email: String,
    #[validate(length(min = 1, max = 20))]
    pub name: String,
    #[validate(range(min = 0, max = 150))]
    pub age: i32,
    #[validate(url)]
    pub homepage: Option<String>,
    #[validate(contains(pattern = "#"))]
    pub tag: String,
    pub secret: String,
    pub starts: i32,
    pub ends: i32,
    #[model(created_at)]
    pub created_at: DateTime<Utc>,
    #[model(updated_at)]
    pub updated_at: DateTime<Utc>,
}

/// A business rule: a membership cannot end before it starts.
fn ends_after_start(m: &Member) -> RuleResult {
    if m.ends < m.starts {
        return Err(vec![Violation::new("ends", "ends_after_start").with_message("ends before it starts")]);
    }
    Ok(())
}

fn member(email: &str) -> Member {
    Member {
        id: 0,
        email: email.into(),
        name: "Ada".into(),
        age: 36,
        homepage: Some("https://ada.example".into()),
        tag: "#math".into(),
        secret: "s3cret".into(),
        starts: 1,
        ends: 2,
        created_at: Utc::now(),
        updated_at: Utc::now(),
    }
}

async fn count(db: &Db) -> i64 {
    Member::query().count(db).await.expect("count")
}

sql_test!(invalid_rows_are_rejected_before_any_statement_with_every_failing_field, |db| async move {
    db.create_all(&[Member::SCHEMA]).await?;
    let bad = Member { email: "not-an-address".into(), name: String::new(), age: 200, ..member("x") };
    let before = db.stats().statements();
    let err = bad.insert(&db).await.unwrap_err();
    assert_eq!(db.stats().statements(), before, "an invalid value never reaches the store");
    let report = err.validation().expect("a validation error");
    let failed: Vec<(&str, &str)> = report.violations.iter().map(|v| (v.field.as_str(), v.code.as_str())).collect();
    assert_eq!(failed, [("age", "range"), ("email", "email"), ("name", "length")]);
    assert_eq!(report.field("age").next().unwrap().params["max"], serde_json::json!(150));

    assert_err!(Member::insert_many(&db, &[member("a@x.io"), bad.clone()]).await, Error::Validation(_));
    let mut stored = member("b@x.io").insert(&db).await?;
    stored.name = "x".repeat(21);
    assert_err!(stored.update(&db).await, Error::Validation(_));
    assert_err!(stored.upsert(&db).await, Error::Validation(_));
    assert_eq!(count(&db).await, 1, "only the valid insert went through");
    Ok::<_, Error>(())
});

sql_test!(business_rules_run_before_writes, |db| async move {
    db.create_all(&[Member::SCHEMA]).await?;
    let err = Member { starts: 5, ends: 1, ..member("c@x.io") }.insert(&db).await.unwrap_err();
    let report = err.validation().expect("a validation error");
    assert_eq!(report.violations.len(), 1);
    assert_eq!(report.violations[0].code, "ends_after_start");
    assert_eq!(count(&db).await, 0);
    Ok::<_, Error>(())
});

sql_test!(validation_errors_serialize_to_json_for_apis, |db| async move {
    db.create_all(&[Member::SCHEMA]).await?;
    let err = Member { tag: "no hash".into(), ..member("d@x.io") }.insert(&db).await.unwrap_err();
    let json = err.validation().expect("a validation error").to_json();
    assert_eq!(json["model"], "Member");
    assert_eq!(json["violations"][0]["field"], "tag");
    assert_eq!(json["violations"][0]["code"], "contains");
    assert_eq!(json["violations"][0]["params"]["needle"], "#");
    Ok::<_, Error>(())
});

/// Writes a row with raw SQL (bypassing polystore); returns the error the database gave.
async fn raw_insert(db: &Db, email: &str, name: &str, age: i32, homepage: &str, tag: &str) -> Result<u64> {
    let sql = format!(
        "INSERT INTO members (email, name, age, homepage, tag, secret, starts, ends, created_at, updated_at) \
         VALUES ('{email}', '{name}', {age}, {homepage}, '{tag}', 's', 1, 2, {now}, {now})",
        now = if db.backend() == polystore::Backend::Postgres { "now()" } else { "'2024-01-01T00:00:00.000000Z'" },
    );
    polystore::raw::<Member>(sql).execute(db).await
}

sql_test!(the_database_enforces_the_same_rules_for_writes_that_bypass_polystore, |db| async move {
    db.create_all(&[Member::SCHEMA]).await?;
    assert_eq!(raw_insert(&db, "ok@x.io", "Ada", 36, "NULL", "#a").await?, 1, "a valid raw row is accepted");
    let cases = [
        ("e1@x.io", "x".repeat(21), 36, "NULL", "#a", "members_name_length_check"),
        ("e2@x.io", String::new(), 36, "NULL", "#a", "members_name_length_check"),
        ("e3@x.io", "Ada".into(), 151, "NULL", "#a", "members_age_range_check"),
        ("e4@x.io", "Ada".into(), -1, "NULL", "#a", "members_age_range_check"),
        ("no-at-sign", "Ada".into(), 36, "NULL", "#a", "members_email_email_check"),
        ("e6@x.io", "Ada".into(), 36, "'not a url'", "#a", "members_homepage_url_check"),
        ("e7@x.io", "Ada".into(), 36, "NULL", "nohash", "members_tag_contains_check"),
    ];
    for (email, name, age, homepage, tag, constraint) in cases {
        let result = raw_insert(&db, email, &name, age, homepage, tag).await;
        match result {
            Err(e @ Error::ConstraintViolation { kind: ConstraintKind::Check, .. }) => {
                // PostgreSQL names the constraint; SQLite only in its message, read from there.
                let Error::ConstraintViolation { constraint: c, .. } = &e else { unreachable!() };
                assert_eq!(c.as_deref(), Some(constraint), "{email}: {e}");
                let shown = e.to_string();
                assert!(shown.contains(constraint) && !shown.contains('?'), "{email}: {shown}");
            }
            other => panic!("{email}: expected a CHECK violation, got {other:?}"),
        }
    }
    assert_eq!(count(&db).await, 1);
    Ok::<_, Error>(())
});

sql_test!(create_dtos_insert_validated_rows_with_generated_fields_filled, |db| async move {
    db.create_all(&[Member::SCHEMA]).await?;
    let input: NewMember = serde_json::from_value(serde_json::json!({
        "email": "new@x.io", "name": "Grace", "age": 45, "homepage": null, "tag": "#navy",
        "secret": "k", "starts": 1, "ends": 9
    }))
    .expect("a create DTO deserializes from JSON without id or timestamps");
    let stored = input.clone().insert(&db).await?;
    assert!(stored.id > 0);
    assert_eq!((stored.name.as_str(), stored.homepage.as_deref()), ("Grace", None));
    assert!(stored.created_at > Utc::now() - chrono::Duration::minutes(1));
    assert_err!(NewMember { age: -3, ..input }.insert(&db).await, Error::Validation(_));
    assert_eq!(count(&db).await, 1);
    Ok::<_, Error>(())
});

/// A misspelled key or a field the DTO leaves out (the generated `id`) is an error naming it,
/// not an empty patch that "succeeds" or a value dropped without a word.
#[test]
fn dtos_reject_unknown_json_keys() {
    let typo = serde_json::from_str::<MemberPatch>(r#"{"nmae": "x"}"#).expect_err("a misspelled key is refused");
    assert!(typo.to_string().contains("unknown field `nmae`"), "{typo}");
    let with_id = serde_json::from_str::<NewMember>(
        r##"{"id": 7, "email": "a@x.io", "name": "A", "age": 1, "homepage": null, "tag": "#",
            "secret": "s", "starts": 1, "ends": 2}"##,
    )
    .expect_err("a create body cannot choose the generated id");
    assert!(with_id.to_string().contains("unknown field `id`"), "{with_id}");
    let card = serde_json::from_str::<MemberCard>(r#"{"id": 1, "name": "A", "email": "a@x.io"}"#);
    assert!(card.is_err(), "read DTOs refuse keys they do not carry too");
    let lenient: LenientMemberView = serde_json::from_str(r#"{"nmae": "x", "age": 3, "homepage": null}"#)
        .expect("allow_unknown_fields ignores unknown keys");
    assert_eq!((lenient.age, lenient.homepage), (3, None));
}

sql_test!(read_dtos_convert_from_the_model_and_leave_fields_out, |db| async move {
    db.create_all(&[Member::SCHEMA]).await?;
    let stored = member("read@x.io").insert(&db).await?;
    let public = MemberPublic::from(stored.clone());
    let json = serde_json::to_value(&public).expect("serializes");
    assert!(json.get("secret").is_none(), "excluded fields are not in the DTO");
    assert_eq!(json["email"], "read@x.io");
    let card = MemberCard::from(stored.clone());
    assert_eq!((card.id, card.name.as_str()), (stored.id, "Ada"));
    assert_eq!(serde_json::to_value(&card).expect("serializes").as_object().map(|o| o.len()), Some(2));
    // DTOs whose lists repeat another DTO's words still get their own fields.
    let summary = serde_json::to_value(MemberSummary::from(stored.clone())).expect("serializes");
    assert!(summary.get("secret").is_none() && summary.get("homepage").is_none() && summary.get("tag").is_some());
    let teaser = serde_json::to_value(MemberTeaser::from(stored.clone())).expect("serializes");
    assert_eq!(teaser, serde_json::json!({"id": stored.id, "name": "Ada", "age": stored.age}));
    Ok::<_, Error>(())
});

sql_test!(patch_dtos_write_only_the_fields_they_set, |db| async move {
    db.create_all(&[Member::SCHEMA]).await?;
    let stored = member("patch@x.io").insert(&db).await?;
    // Another writer changes `secret` after we loaded the row; our patch must not undo it.
    execute_sql(&db, &format!("UPDATE members SET secret = 'rotated' WHERE id = {}", stored.id)).await;

    let patch: MemberPatch = serde_json::from_value(serde_json::json!({"name": "Ada L.", "homepage": null}))
        .expect("a patch deserializes from JSON");
    assert_eq!(patch.name.as_deref(), Some("Ada L."));
    assert_eq!(patch.homepage, Some(None), "an explicit null sets NULL");
    assert!(patch.age.is_none(), "a missing field stays unchanged");
    let updated = patch.update(&db, stored.id).await?;
    assert_eq!(updated.name, "Ada L.");
    assert_eq!(updated.homepage, None);
    assert_eq!(updated.secret, "rotated", "fields the patch does not set are untouched");
    assert_eq!(updated.age, 36);
    assert!(updated.updated_at >= stored.updated_at);
    assert_eq!(updated.created_at, stored.created_at);

    let mut local = stored.clone();
    patch.apply(&mut local);
    assert_eq!((local.name.as_str(), local.homepage.as_deref()), ("Ada L.", None));
    assert!(MemberPatch::default().is_empty());

    let bad = MemberPatch { age: Some(500), ..MemberPatch::default() };
    assert_err!(bad.update(&db, stored.id).await, Error::Validation(_));
    assert_eq!(
        query_text(&db, &format!("SELECT name FROM members WHERE id = {}", stored.id)).await.as_deref(),
        Some("Ada L.")
    );
    assert_err!(
        MemberPatch { age: Some(1), ..MemberPatch::default() }.update(&db, 999_999).await,
        Error::NotFound { .. }
    );
    Ok::<_, Error>(())
});

/// Names nobody may take; the async rule below looks them up in the database.
#[derive(Model, Debug, Clone)]
#[model(table = "reserved_names")]
pub struct ReservedName {
    #[model(primary_key)]
    pub name: String,
}

#[derive(Model, Debug, Clone)]
#[model(table = "handles", async_rule = not_reserved)]
pub struct Handle {
    #[model(primary_key, generated)]
    pub id: i64,
    pub name: String,
}

/// An async business rule with access to the store the write runs on.
async fn not_reserved(handle: &Handle, db: &mut dyn Executor) -> RuleResult {
    let reserved = ReservedName::query().filter(ReservedName::NAME.eq(&handle.name)).exists(db).await;
    match reserved {
        Ok(false) => Ok(()),
        Ok(true) => Err(vec![Violation::new("name", "reserved").with_param("value", &handle.name)]),
        Err(e) => Err(vec![Violation::new("name", "lookup_failed").with_message(e.to_string())]),
    }
}

sql_test!(async_business_rules_query_the_store_before_writes, |db| async move {
    db.create_all(&[ReservedName::SCHEMA, Handle::SCHEMA]).await?;
    ReservedName { name: "admin".into() }.insert(&db).await?;
    let err = Handle { id: 0, name: "admin".into() }.insert(&db).await.unwrap_err();
    assert_eq!(err.validation().expect("a validation error").violations[0].code, "reserved");
    let ok = Handle { id: 0, name: "ada".into() }.insert(&db).await?;
    assert!(ok.id > 0);

    // Inside a transaction the rule sees the transaction's own writes.
    let mut tx = db.begin().await?;
    ReservedName { name: "root".into() }.insert(&mut tx).await?;
    assert_err!(Handle { id: 0, name: "root".into() }.insert(&mut tx).await, Error::Validation(_));
    tx.rollback().await?;
    Handle { id: 0, name: "root".into() }.insert(&db).await?;
    assert_eq!(Handle::query().count(&db).await?, 2);
    Ok::<_, Error>(())
});

sql_test!(read_dtos_project_queries_onto_their_columns, |db| async move {
    db.create_all(&[Member::SCHEMA]).await?;
    member("p1@x.io").insert(&db).await?;
    Member { name: "Bea".into(), ..member("p2@x.io") }.insert(&db).await?;
    let cards: Vec<MemberCard> = Member::query().order_by(Member::EMAIL.asc()).project::<MemberCard>().all(&db).await?;
    let names: Vec<&str> = cards.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["Ada", "Bea"]);
    let public = Member::query().filter(Member::NAME.eq("Bea")).project::<MemberPublic>().one(&db).await?;
    assert_eq!(public.email, "p2@x.io");
    Ok::<_, Error>(())
});

#[tokio::test]
async fn mongodb_enforces_the_rules_in_the_app_and_in_its_json_schema_validator() {
    polystore_tests::run_on_mongo(|store| async move {
        store.create_all(&[Member::SCHEMA]).await?;
        // App level: nothing reaches the server.
        let bad = Member { email: "nope".into(), age: 200, ..member("x") };
        assert_err!(bad.insert(&store).await, Error::Validation(_));
        let stored = member("mongo@x.io").insert(&store).await?;
        assert!(stored.id > 0);

        // Database level: documents written past polystore still meet the validator.
        let good = polystore::mongo::to_document(&member("raw@x.io"))?;
        let members = store.database().collection::<polystore::mongo::driver::bson::Document>("members");
        let with = |key: &str, value: polystore::mongo::driver::bson::Bson| {
            let mut d = good.clone();
            d.insert("_id", 1_000_i64);
            d.insert(key, value);
            d
        };
        let cases: [(&str, polystore::mongo::driver::bson::Bson); 6] = [
            ("name", "x".repeat(21).into()),
            ("name", "".into()),
            ("age", 151_i32.into()),
            ("email", "no-at-sign".into()),
            ("homepage", "not a url".into()),
            ("tag", "nohash".into()),
        ];
        for (key, value) in cases {
            let result = members.insert_one(with(key, value.clone())).await;
            assert!(result.is_err(), "{key} = {value:?} must be rejected by the $jsonSchema validator");
        }
        members.insert_one(with("name", "Ada".into())).await.expect("a valid raw document is accepted");
        Ok::<_, Error>(())
    })
    .await
}

/// The rules `Member` does not use: `does_not_contain`, `required` on an `Option`, and `length`
/// on a list.
#[derive(Model, Validate, Debug, Clone)]
#[model(table = "notes")]
pub struct Note {
    #[model(primary_key, generated)]
    pub id: i64,
    #[validate(does_not_contain(pattern = "<script"))]
    pub body: String,
    #[validate(required)]
    pub owner: Option<String>,
    #[validate(length(min = 1, max = 3))]
    pub labels: Vec<String>,
}

fn note(body: &str, owner: Option<&str>, labels: &[&str]) -> Note {
    Note {
        id: 0,
        body: body.into(),
        owner: owner.map(str::to_owned),
        labels: labels.iter().map(|l| (*l).to_owned()).collect(),
    }
}

sql_test!(list_lengths_required_options_and_forbidden_text_hold_in_app_and_database, |db| async move {
    db.create_all(&[Note::SCHEMA]).await?;
    note("fine", Some("ada"), &["a"]).insert(&db).await?;
    for (bad, code) in [
        (note("<script>x", Some("ada"), &["a"]), "does_not_contain"),
        (note("fine", None, &["a"]), "required"),
        (note("fine", Some("ada"), &[]), "length"),
        (note("fine", Some("ada"), &["a", "b", "c", "d"]), "length"),
    ] {
        let err = bad.insert(&db).await.unwrap_err();
        assert_eq!(err.validation().expect("a validation error").violations[0].code, code);
    }
    // The same rules in the database, for writes that bypass polystore.
    let labels = |json: &str, pg: &str| {
        if db.backend() == polystore::Backend::Postgres { pg.to_owned() } else { json.to_owned() }
    };
    for (body, owner, list) in [
        ("'<script>'", "'ada'", labels("'[\"a\"]'", "ARRAY['a']")),
        ("'fine'", "NULL", labels("'[\"a\"]'", "ARRAY['a']")),
        ("'fine'", "'ada'", labels("'[]'", "ARRAY[]::TEXT[]")),
    ] {
        let sql = format!("INSERT INTO notes (body, owner, labels) VALUES ({body}, {owner}, {list})");
        assert_err!(polystore::raw::<Note>(sql).execute(&db).await, Error::ConstraintViolation { .. });
    }
    assert_eq!(Note::query().count(&db).await?, 1);
    Ok::<_, Error>(())
});

#[tokio::test]
async fn patch_dtos_write_only_their_fields_on_mongodb() {
    polystore_tests::run_on_mongo(|store| async move {
        store.create_all(&[Member::SCHEMA]).await?;
        let stored = member("patch@x.io").insert(&store).await?;
        let patch = MemberPatch { name: Some("Ada L.".into()), homepage: Some(None), ..MemberPatch::default() };
        let updated = patch.update(&store, stored.id).await?;
        assert_eq!((updated.name.as_str(), updated.homepage.as_deref()), ("Ada L.", None));
        assert_eq!((updated.age, updated.secret.as_str()), (36, "s3cret"), "fields the patch does not set stay");
        assert_err!(
            MemberPatch { age: Some(500), ..MemberPatch::default() }.update(&store, stored.id).await,
            Error::Validation(_)
        );
        Ok::<_, Error>(())
    })
    .await
}
