//! Every CRUD operation, on PostgreSQL and on SQLite: insert, insert_many, find / get, update,
//! delete, upsert, composite keys, and how failures surface (not found, unique violations,
//! values that cannot be decoded).

use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use polystore::ConstraintKind;
use polystore::prelude::*;
use polystore::sql::build::rows_per_insert;
// Every test here also runs through PgBouncer in transaction pooling mode (`pgbouncer`).
use polystore_tests::pooled_sql_test as sql_test;
use polystore_tests::{assert_err, execute_sql, query_i64, query_text};

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "accounts")]
struct Account {
    #[model(primary_key, generated)]
    id: i64,
    #[model(unique)]
    email: String,
    name: String,
    #[model(default = 7)]
    score: i32,
    bio: Option<String>,
    #[model(created_at)]
    created_at: DateTime<Utc>,
    #[model(updated_at)]
    updated_at: DateTime<Utc>,
}

/// A new, unsaved account: key and timestamps are placeholders the store replaces.
fn account(email: &str, name: &str) -> Account {
    Account {
        id: 0,
        email: email.to_owned(),
        name: name.to_owned(),
        score: 1,
        bio: None,
        created_at: DateTime::UNIX_EPOCH,
        updated_at: DateTime::UNIX_EPOCH,
    }
}

/// A model with a composite primary key, in key order (team, user_id).
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "memberships")]
#[model(primary_key(team, user_id))]
struct Membership {
    team: String,
    user_id: i64,
    role: String,
}

#[derive(Enum, Debug, Clone, Copy, PartialEq)]
enum Color {
    Red,
    Green,
}

/// `gadgets` as the application reads it.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "gadgets")]
struct Gadget {
    #[model(primary_key)]
    id: i64,
    color: Color,
    weight: i16,
}

/// The same table with a looser type, as another (older, buggier) program might have written
/// it: any text as the color.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "gadgets")]
struct LooseGadget {
    #[model(primary_key)]
    id: i64,
    color: String,
    weight: i16,
}

/// The same table with a wider column: any 64-bit integer as the weight.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "gadgets")]
struct HeavyGadget {
    #[model(primary_key)]
    id: i64,
    color: Color,
    weight: i64,
}

/// Default table name (`notes`), a renamed column, an `i32` generated key and automatic
/// timestamps of the other allowed types.
#[derive(Model, Debug, Clone, PartialEq)]
struct Note {
    #[model(primary_key, generated)]
    id: i32,
    #[model(column = "note_body")]
    body: String,
    #[model(created_at)]
    created_at: NaiveDateTime,
    #[model(updated_at)]
    updated_at: Option<DateTime<Utc>>,
}

/// Composite unique indexes: one with the default name, one named explicitly.
// clippy's `duplicated_attributes` takes the second `venue` and `unique` for a repeated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(Model, Debug, Clone, PartialEq)]
#[model(index(venue, row, number, unique))]
#[model(index(venue, code, unique, name = "seat_code"))]
struct Seat {
    #[model(primary_key, generated)]
    id: i64,
    venue: String,
    row: String,
    number: i32,
    code: String,
}

fn seat(venue: &str, row: &str, number: i32, code: &str) -> Seat {
    Seat { id: 0, venue: venue.into(), row: row.into(), number, code: code.into() }
}

/// A table referenced by [`Ticket`]'s foreign key.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "venues")]
struct Venue {
    #[model(primary_key, generated)]
    id: i64,
    name: String,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "tickets")]
struct Ticket {
    #[model(primary_key, generated)]
    id: i64,
    venue_id: i64,
    #[model(belongs_to(key = venue_id))]
    venue: polystore::Rel<Venue>,
}

async fn accounts_table(db: &Db) -> Result<()> {
    db.create_all(&[Account::SCHEMA]).await
}

fn assert_recent(t: DateTime<Utc>) {
    let age = Utc::now() - t;
    assert!(
        age >= chrono::Duration::seconds(-5) && age <= chrono::Duration::seconds(60),
        "timestamp {t} is not close to now ({})",
        Utc::now()
    );
}

sql_test!(insert_returns_the_stored_row_with_generated_id_and_timestamps, |db| async move {
    accounts_table(&db).await?;
    let before = db.stats().statements();
    let stored = account("ada@example.com", "Ada").insert(&db).await?;
    assert_eq!(db.stats().statements() - before, 1, "insert is one statement (INSERT ... RETURNING)");

    assert!(stored.id > 0, "the database assigns the key, got {}", stored.id);
    assert_eq!(stored.email, "ada@example.com");
    assert_eq!(stored.name, "Ada");
    assert_eq!(stored.score, 1);
    assert_eq!(stored.bio, None);
    assert_recent(stored.created_at);
    assert_eq!(stored.created_at, stored.updated_at, "both stamps are set from one clock reading");

    let second = account("grace@example.com", "Grace").insert(&db).await?;
    assert!(second.id > stored.id, "keys increase: {} then {}", stored.id, second.id);

    assert_eq!(Account::find(&db, stored.id).await?, stored, "find returns exactly what insert returned");
    Ok::<_, Error>(())
});

sql_test!(insert_refuses_a_key_given_for_a_generated_key, |db| async move {
    accounts_table(&db).await?;
    let mut row = account("ada@example.com", "Ada");
    row.id = 424_242;
    assert_err!(row.insert(&db).await, Error::GeneratedKeyGiven { model: "Account", field: "id", value: 424_242 });
    assert_eq!(Account::query().count(&db).await?, 0, "not stored under another key either");
    assert_eq!(row.insert_with_key(&db).await?.id, 424_242);
    Ok::<_, Error>(())
});

sql_test!(chosen_keys_beyond_the_sequence_lock_and_advance_it_once, |db| async move {
    accounts_table(&db).await?;
    let mut row = account("ada@example.com", "Ada");
    row.id = 50;
    let before = db.stats().statements();
    row.insert_with_key(&db).await?;
    let postgres = db.backend() == polystore::Backend::Postgres;
    // PostgreSQL: read the sequence, then LOCK, INSERT and setval in one transaction; SQLite's
    // AUTOINCREMENT follows by itself.
    assert_eq!(db.stats().statements() - before, if postgres { 4 } else { 1 });
    if postgres {
        let last = query_i64(&db, "SELECT last_value FROM accounts_id_seq").await;
        assert_eq!(last, 50, "the identity sequence stands at the chosen key");
    }
    // Below the sequence: one read and the INSERT, no lock.
    let mut low = account("grace@example.com", "Grace");
    low.id = 7;
    let before = db.stats().statements();
    low.insert_with_key(&db).await?;
    assert_eq!(db.stats().statements() - before, if postgres { 2 } else { 1 });
    assert_eq!(account("x@example.com", "X").insert(&db).await?.id, 51);
    Ok::<_, Error>(())
});

sql_test!(insert_many_uses_one_statement_and_preserves_order, |db| async move {
    accounts_table(&db).await?;
    let rows =
        vec![account("c@example.com", "Carol"), account("a@example.com", "Alice"), account("b@example.com", "Bob")];
    let before = db.stats().statements();
    let stored = Account::insert_many(&db, &rows).await?;
    assert_eq!(db.stats().statements() - before, 1, "insert_many of 3 rows must be a single INSERT");

    let emails: Vec<&str> = stored.iter().map(|a| a.email.as_str()).collect();
    assert_eq!(emails, ["c@example.com", "a@example.com", "b@example.com"]);
    assert!(stored.windows(2).all(|w| w[0].id < w[1].id), "keys follow input order: {stored:?}");
    for row in &stored {
        assert_recent(row.created_at);
        assert_eq!(Account::find(&db, row.id).await?, *row);
    }
    assert_eq!(Account::query().count(&db).await?, 3);
    Ok::<_, Error>(())
});

sql_test!(insert_many_of_nothing_runs_no_statement, |db| async move {
    accounts_table(&db).await?;
    let before = db.stats().statements();
    let stored = Account::insert_many(&db, &[]).await?;
    assert!(stored.is_empty());
    assert_eq!(db.stats().statements(), before);
    Ok::<_, Error>(())
});

sql_test!(insert_many_beyond_the_parameter_limit_splits_into_several_statements, |db| async move {
    accounts_table(&db).await?;
    let per_statement = rows_per_insert(db.dialect(), Account::SCHEMA);
    let rows: Vec<Account> =
        (0..=per_statement).map(|i| account(&format!("user{i}@example.com"), &format!("User {i}"))).collect();
    let before = db.stats().statements();
    let stored = Account::insert_many(&db, &rows).await?;
    assert_eq!(db.stats().statements() - before, 2, "{} rows need two INSERTs", rows.len());
    assert_eq!(stored.len(), rows.len());
    assert!(stored.iter().zip(&rows).all(|(s, r)| s.email == r.email), "order preserved across statements");
    assert_eq!(Account::query().count(&db).await?, i64::try_from(rows.len()).unwrap());
    Ok::<_, Error>(())
});

sql_test!(find_get_and_not_found, |db| async move {
    accounts_table(&db).await?;
    let ada = account("ada@example.com", "Ada").insert(&db).await?;

    assert_eq!(Account::find(&db, ada.id).await?, ada);
    assert_eq!(Account::get(&db, ada.id).await?, Some(ada.clone()));
    assert_eq!(Account::get(&db, ada.id + 1000).await?, None);
    assert_err!(Account::find(&db, ada.id + 1000).await, Error::NotFound { model: "Account" });

    let err = Account::find(&db, -1).await.unwrap_err();
    assert!(err.is_not_found());
    assert!(err.to_string().contains("Account"), "message names the model: {err}");
    Ok::<_, Error>(())
});

sql_test!(update_writes_fields_moves_updated_at_and_keeps_created_at, |db| async move {
    accounts_table(&db).await?;
    let original = account("ada@example.com", "Ada").insert(&db).await?;
    tokio::time::sleep(Duration::from_millis(20)).await;

    let mut changed = original.clone();
    changed.name = "Ada Lovelace".into();
    changed.bio = Some("Analyst".into());
    changed.score = 99;
    changed.created_at = DateTime::UNIX_EPOCH; // must not be written
    let before = db.stats().statements();
    let updated = changed.update(&db).await?;
    assert_eq!(db.stats().statements() - before, 1, "update is one statement (UPDATE ... RETURNING)");

    assert_eq!(updated.id, original.id);
    assert_eq!(updated.name, "Ada Lovelace");
    assert_eq!(updated.bio.as_deref(), Some("Analyst"));
    assert_eq!(updated.score, 99);
    assert_eq!(updated.created_at, original.created_at, "created_at is never rewritten");
    assert!(
        updated.updated_at > original.updated_at,
        "updated_at moves forward: {} -> {}",
        original.updated_at,
        updated.updated_at
    );
    assert_eq!(Account::find(&db, original.id).await?, updated);

    // Setting a nullable field back to None writes NULL.
    let mut cleared = updated.clone();
    cleared.bio = None;
    assert_eq!(cleared.update(&db).await?.bio, None);
    assert_eq!(query_i64(&db, "SELECT COUNT(*) FROM accounts WHERE bio IS NULL").await, 1);
    Ok::<_, Error>(())
});

sql_test!(update_of_a_missing_row_is_not_found, |db| async move {
    accounts_table(&db).await?;
    let mut ghost = account("ghost@example.com", "Ghost");
    ghost.id = 12_345;
    assert_err!(ghost.update(&db).await, Error::NotFound { model: "Account" });
    assert_eq!(Account::query().count(&db).await?, 0, "a failed update inserts nothing");
    Ok::<_, Error>(())
});

sql_test!(delete_and_delete_by_key, |db| async move {
    accounts_table(&db).await?;
    let ada = account("ada@example.com", "Ada").insert(&db).await?;
    let bob = account("bob@example.com", "Bob").insert(&db).await?;

    ada.delete(&db).await?;
    assert_eq!(Account::get(&db, ada.id).await?, None);
    assert_err!(ada.delete(&db).await, Error::NotFound { model: "Account" });

    assert!(Account::delete_by_key(&db, bob.id).await?, "there was a row to delete");
    assert!(!Account::delete_by_key(&db, bob.id).await?, "the second delete finds nothing");
    assert_eq!(Account::query().count(&db).await?, 0);
    Ok::<_, Error>(())
});

sql_test!(delete_removes_only_the_given_row, |db| async move {
    accounts_table(&db).await?;
    let rows = Account::insert_many(&db, &[account("a@example.com", "A"), account("b@example.com", "B")]).await?;
    rows[0].delete(&db).await?;
    let left = Account::query().all(&db).await?;
    assert_eq!(left, vec![rows[1].clone()]);
    Ok::<_, Error>(())
});

sql_test!(upsert_on_the_primary_key_inserts_then_updates, |db| async move {
    accounts_table(&db).await?;
    let ada = account("ada@example.com", "Ada").insert(&db).await?;
    tokio::time::sleep(Duration::from_millis(20)).await;

    // An existing key: the row is updated in place, created_at kept.
    let mut renamed = ada.clone();
    renamed.name = "Countess Lovelace".into();
    renamed.created_at = DateTime::UNIX_EPOCH;
    let before = db.stats().statements();
    let stored = renamed.upsert(&db).await?;
    // On PostgreSQL the check that the identity sequence is past the key is part of the write.
    assert_eq!(db.stats().statements() - before, 1, "upsert of an existing key is one statement");
    assert_eq!(stored.id, ada.id);
    assert_eq!(stored.name, "Countess Lovelace");
    assert_eq!(stored.created_at, ada.created_at, "an upsert that updates keeps created_at");
    assert!(stored.updated_at > ada.updated_at);
    assert_eq!(Account::query().count(&db).await?, 1);

    // A new key: the row is inserted with that key.
    let mut fresh = account("grace@example.com", "Grace");
    fresh.id = 1_000_000;
    let inserted = fresh.upsert(&db).await?;
    assert_eq!(inserted.id, 1_000_000);
    assert_recent(inserted.created_at);
    assert_eq!(Account::find(&db, 1_000_000).await?, inserted);
    assert_eq!(Account::query().count(&db).await?, 2);
    Ok::<_, Error>(())
});

sql_test!(upsert_on_a_unique_field_updates_the_row_holding_that_value, |db| async move {
    accounts_table(&db).await?;
    let ada = account("ada@example.com", "Ada").insert(&db).await?;

    // Same e-mail, no key known: updates Ada's row, keeps her key.
    let mut again = account("ada@example.com", "Ada King");
    again.score = 50;
    let stored = again.upsert_on(&db, &[Account::EMAIL.into()]).await?;
    assert_eq!(stored.id, ada.id);
    assert_eq!(stored.name, "Ada King");
    assert_eq!(stored.score, 50);
    assert_eq!(stored.created_at, ada.created_at);
    assert_eq!(Account::query().count(&db).await?, 1);

    // A new e-mail: inserted with a generated key.
    let grace = account("grace@example.com", "Grace").upsert_on(&db, &[Account::EMAIL.into()]).await?;
    assert!(grace.id > 0 && grace.id != ada.id);
    assert_eq!(Account::query().count(&db).await?, 2);

    assert_err!(account("x@example.com", "X").upsert_on(&db, &[]).await, Error::Config(_));
    Ok::<_, Error>(())
});

sql_test!(composite_primary_key_find_update_delete, |db| async move {
    db.create_all(&[Membership::SCHEMA]).await?;
    let rows = vec![
        Membership { team: "core".into(), user_id: 1, role: "owner".into() },
        Membership { team: "core".into(), user_id: 2, role: "member".into() },
        Membership { team: "docs".into(), user_id: 1, role: "member".into() },
    ];
    let stored = Membership::insert_many(&db, &rows).await?;
    assert_eq!(stored, rows);

    assert_eq!(Membership::find(&db, ("core".to_string(), 2)).await?, rows[1]);
    assert_eq!(Membership::find(&db, ("docs".to_string(), 1)).await?, rows[2]);
    assert_eq!(Membership::get(&db, ("docs".to_string(), 2)).await?, None);
    assert_err!(Membership::find(&db, ("nope".to_string(), 1)).await, Error::NotFound { model: "Membership" });

    let mut promoted = rows[1].clone();
    promoted.role = "owner".into();
    assert_eq!(promoted.update(&db).await?, promoted);
    assert_eq!(Membership::find(&db, ("core".to_string(), 2)).await?.role, "owner");
    assert_eq!(Membership::find(&db, ("core".to_string(), 1)).await?.role, "owner");
    assert_eq!(Membership::find(&db, ("docs".to_string(), 1)).await?.role, "member");

    let mut demoted = rows[2].clone();
    demoted.role = "reader".into();
    assert_eq!(demoted.upsert(&db).await?.role, "reader");
    assert_eq!(Membership::query().count(&db).await?, 3);

    assert!(Membership::delete_by_key(&db, ("core".to_string(), 1)).await?);
    assert_eq!(Membership::get(&db, ("core".to_string(), 1)).await?, None);
    assert_eq!(Membership::query().count(&db).await?, 2);

    // The same key twice is a unique violation of the primary key.
    let dup = Membership { team: "core".into(), user_id: 2, role: "x".into() };
    match dup.insert(&db).await {
        Err(Error::UniqueViolation { model, constraint, fields }) => {
            assert_eq!(model, "Membership");
            assert_eq!(constraint.as_deref(), Some("memberships_pkey"));
            assert_eq!(fields, vec!["team", "user_id"]);
        }
        other => panic!("expected a unique violation of the primary key, got {other:?}"),
    }
    Ok::<_, Error>(())
});

sql_test!(duplicate_unique_value_is_a_unique_violation_naming_field_and_constraint, |db| async move {
    accounts_table(&db).await?;
    account("ada@example.com", "Ada").insert(&db).await?;

    let err = account("ada@example.com", "Impostor").insert(&db).await.unwrap_err();
    assert!(err.is_unique_violation(), "got {err:?}");
    match &err {
        Error::UniqueViolation { model, constraint, fields } => {
            assert_eq!(*model, "Account");
            assert_eq!(fields, &vec!["email"]);
            assert_eq!(constraint.as_deref(), Some("accounts_email_key"));
        }
        other => panic!("expected UniqueViolation, got {other:?}"),
    }
    let message = err.to_string();
    assert!(message.contains("accounts_email_key") && message.contains("email"), "{message}");

    // The same through update: moving Bob onto Ada's address.
    let mut bob = account("bob@example.com", "Bob").insert(&db).await?;
    bob.email = "ada@example.com".into();
    assert_err!(
        bob.update(&db).await,
        Error::UniqueViolation { model: "Account", ref fields, .. } if fields == &vec!["email"]
    );
    assert_eq!(Account::query().count(&db).await?, 2);
    Ok::<_, Error>(())
});

sql_test!(database_default_applies_to_rows_written_without_the_column, |db| async move {
    accounts_table(&db).await?;
    // Written behind the ORM's back, without `score` (DEFAULT 7) and the timestamps (DEFAULT now).
    let inserted = execute_sql(&db, "INSERT INTO accounts (email, name) VALUES ('raw@example.com', 'Raw')").await;
    assert_eq!(inserted, 1);

    let raw = Account::query().filter(Account::EMAIL.eq("raw@example.com")).first(&db).await?.expect("the raw row");
    assert_eq!(raw.score, 7, "DEFAULT 7 from #[model(default = 7)]");
    assert_eq!(raw.bio, None);
    assert_recent(raw.created_at);
    assert_recent(raw.updated_at);

    // Automatic timestamps of a NaiveDateTime field default to the current UTC wall-clock time.
    db.create_all(&[Note::SCHEMA]).await?;
    execute_sql(&db, "INSERT INTO notes (note_body) VALUES ('raw')").await;
    let note = Note::query().first(&db).await?.expect("the raw note");
    assert_recent(note.created_at.and_utc());
    assert_recent(note.updated_at.expect("updated_at has a default too"));

    // A value given explicitly wins over the default.
    assert_eq!(account("ada@example.com", "Ada").insert(&db).await?.score, 1);
    Ok::<_, Error>(())
});

sql_test!(stored_text_that_is_not_an_enum_variant_is_a_decode_error, |db| async move {
    db.create_all(&[LooseGadget::SCHEMA]).await?;
    LooseGadget { id: 1, color: "Green".into(), weight: 3 }.insert(&db).await?;
    LooseGadget { id: 2, color: "Purple".into(), weight: 3 }.insert(&db).await?;

    assert_eq!(Gadget::find(&db, 1).await?, Gadget { id: 1, color: Color::Green, weight: 3 });
    let err = Gadget::find(&db, 2).await.unwrap_err();
    match &err {
        Error::Decode { model, field, .. } => {
            assert_eq!(*model, "Gadget");
            assert_eq!(*field, "color");
        }
        other => panic!("expected a decode error of Gadget.color, got {other:?}"),
    }
    let message = err.to_string();
    assert!(message.contains("Gadget.color") && message.contains("Purple"), "{message}");

    // A query that reaches the bad row fails the same way instead of skipping it.
    assert_err!(Gadget::query().all(&db).await, Error::Decode { model: "Gadget", field: "color", .. });
    Ok::<_, Error>(())
});

sql_test!(stored_number_out_of_the_field_range_is_a_decode_error, |db| async move {
    db.create_all(&[HeavyGadget::SCHEMA]).await?;
    // 100000 does not fit Gadget.weight (i16).
    execute_sql(&db, "INSERT INTO gadgets (id, color, weight) VALUES (1, 'Red', 100000)").await;
    assert_eq!(query_text(&db, "SELECT color FROM gadgets WHERE id = 1").await.as_deref(), Some("Red"));

    assert_eq!(HeavyGadget::find(&db, 1).await?.weight, 100_000);
    assert_err!(Gadget::find(&db, 1).await, Error::Decode { model: "Gadget", field: "weight", .. });
    Ok::<_, Error>(())
});

sql_test!(tables_can_be_created_twice_and_dropped, |db| async move {
    accounts_table(&db).await?;
    accounts_table(&db).await?; // IF NOT EXISTS
    account("ada@example.com", "Ada").insert(&db).await?;
    db.drop_all(&[Account::SCHEMA]).await?;
    db.drop_all(&[Account::SCHEMA]).await?; // IF EXISTS
    assert!(Account::query().count(&db).await.is_err(), "the table is gone");
    accounts_table(&db).await?;
    assert_eq!(Account::query().count(&db).await?, 0);
    Ok::<_, Error>(())
});

sql_test!(create_all_refuses_an_existing_table_of_another_shape, |db| async move {
    // Left over from an older program: the same table name, other columns.
    execute_sql(&db, "CREATE TABLE accounts (id BIGINT PRIMARY KEY, email TEXT, legacy TEXT)").await;
    execute_sql(&db, "INSERT INTO accounts (id, email) VALUES (1, 'old@example.com')").await;
    let err = accounts_table(&db).await.unwrap_err();
    match &err {
        Error::TableMismatch { model, table, differences } => {
            assert_eq!((*model, table.as_str()), ("Account", "accounts"));
            let all = differences.join("\n");
            assert!(all.contains("\"name\" is missing"), "{all}");
            assert!(all.contains("\"legacy\" is not in the schema"), "{all}");
        }
        other => panic!("expected TableMismatch, got {other:?}"),
    }
    assert!(err.to_string().contains("accounts"), "{err}");
    assert_eq!(query_i64(&db, "SELECT COUNT(*) FROM accounts").await, 1, "the old table is left alone");

    // A narrower column type is a difference too; the same shape is accepted again.
    db.create_all(&[Gadget::SCHEMA]).await?;
    db.create_all(&[Gadget::SCHEMA]).await?;
    assert_err!(
        db.create_all(&[HeavyGadget::SCHEMA]).await,
        Error::TableMismatch { ref differences, .. } if differences.iter().any(|d| d.contains("weight"))
    );
    Ok::<_, Error>(())
});

sql_test!(not_null_violations_name_the_table_and_column, |db| async move {
    // A table with a required column the model does not know about.
    execute_sql(
        &db,
        "CREATE TABLE memberships (team TEXT NOT NULL, user_id BIGINT NOT NULL, role TEXT NOT NULL, \
         since TEXT NOT NULL, PRIMARY KEY (team, user_id))",
    )
    .await;
    let row = Membership { team: "core".into(), user_id: 1, role: "owner".into() };
    let err = row.insert(&db).await.unwrap_err();
    match &err {
        Error::ConstraintViolation { model, kind: ConstraintKind::NotNull, constraint, .. } => {
            assert_eq!((*model, constraint.as_deref()), ("Membership", Some("memberships.since")));
        }
        other => panic!("expected a NOT NULL violation, got {other:?}"),
    }
    let shown = err.to_string();
    assert!(shown.starts_with("Membership: not null constraint memberships.since violated"), "{shown}");
    assert!(!shown.contains('?'), "{shown}");
    Ok::<_, Error>(())
});

sql_test!(create_all_and_drop_all_take_tables_in_any_order, |db| async move {
    // Children before parents: sorted on foreign keys both ways.
    let tables = [Ticket::SCHEMA, Venue::SCHEMA];
    db.create_all(&tables).await?;
    let venue = Venue { id: 0, name: "hall".into() }.insert(&db).await?;
    Ticket { id: 0, venue_id: venue.id, venue: polystore::Rel::NotLoaded }.insert(&db).await?;
    db.drop_all(&[Venue::SCHEMA, Ticket::SCHEMA]).await?;
    db.create_all(&[Venue::SCHEMA, Ticket::SCHEMA]).await?;
    db.drop_all(&tables).await?;
    assert!(Venue::query().count(&db).await.is_err(), "both tables are gone");
    Ok::<_, Error>(())
});

sql_test!(default_table_name_renamed_column_and_other_timestamp_types, |db| async move {
    db.create_all(&[Note::SCHEMA]).await?;
    assert_eq!(Note::SCHEMA.table, "notes");
    let note = Note { id: 0, body: "remember the milk".into(), created_at: NaiveDateTime::default(), updated_at: None };
    let stored = note.insert(&db).await?;
    assert!(stored.id > 0);
    assert_recent(stored.created_at.and_utc());
    let first_update = stored.updated_at.expect("updated_at is set on insert");
    assert_recent(first_update);
    assert_eq!(
        query_text(&db, "SELECT note_body FROM notes").await.as_deref(),
        Some("remember the milk"),
        "the field is stored in the column named by #[model(column)]"
    );
    let found = Note::query().filter(Note::BODY.eq("remember the milk")).first(&db).await?;
    assert_eq!(found.as_ref(), Some(&stored));

    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut changed = stored.clone();
    changed.body = "bought the milk".into();
    changed.updated_at = None;
    let updated = changed.update(&db).await?;
    assert_eq!(updated.created_at, stored.created_at);
    assert!(updated.updated_at.expect("updated_at is set on update") > first_update);
    Ok::<_, Error>(())
});

sql_test!(composite_unique_index_violation_names_its_fields_and_index, |db| async move {
    db.create_all(&[Seat::SCHEMA]).await?;
    seat("opera", "A", 1, "A1").insert(&db).await?;
    seat("opera", "A", 2, "A2").insert(&db).await?;
    seat("arena", "A", 1, "A1").insert(&db).await?; // other venue: no clash

    match seat("opera", "A", 1, "X").insert(&db).await {
        Err(Error::UniqueViolation { model, constraint, fields }) => {
            assert_eq!(model, "Seat");
            assert_eq!(constraint.as_deref(), Some("seats_venue_row_number_key"));
            assert_eq!(fields, vec!["venue", "row", "number"]);
        }
        other => panic!("expected a violation of the (venue, row, number) index, got {other:?}"),
    }
    match seat("opera", "B", 9, "A2").insert(&db).await {
        Err(Error::UniqueViolation { model, constraint, fields }) => {
            assert_eq!(model, "Seat");
            assert_eq!(constraint.as_deref(), Some("seat_code"));
            assert_eq!(fields, vec!["venue", "code"]);
        }
        other => panic!("expected a violation of the seat_code index, got {other:?}"),
    }
    assert_eq!(Seat::query().count(&db).await?, 3);
    Ok::<_, Error>(())
});

/// PostgreSQL connection failures read as one clean sentence: no server source line (sqlx's
/// `Display` of a server error appends `at line 948`), and a refused connection says so
/// instead of only "pool timed out".
#[tokio::test]
async fn postgres_connection_errors_are_clean_sentences() {
    let url = std::env::var("DATABASE_URL").expect("DATABASE_URL: run `. .dev/env` (scripts/dev-services)");
    let base = url.rsplit_once('/').map_or(url.as_str(), |(b, _)| b);
    let err = Db::connect(&format!("{base}/polystore_no_such_database")).await.unwrap_err();
    let shown = err.to_string();
    assert!(matches!(err, Error::Connection { store: "postgresql", .. }), "{err:?}");
    assert!(shown.contains("\"polystore_no_such_database\" does not exist"), "{shown}");
    assert!(!shown.contains(" at line "), "no server source line: {shown}");

    let quick = polystore::PoolConfig { acquire_timeout: Duration::from_millis(300), ..Default::default() };
    let refused = Db::connect_with("postgres://postgres:postgres@127.0.0.1:7199/x", quick).await.unwrap_err();
    let shown = refused.to_string();
    assert!(shown.to_lowercase().contains("refused"), "the cause is named: {shown}");
}
