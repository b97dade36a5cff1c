//! Keys the caller chooses for a `generated` key: plain inserts refuse them (never renumber),
//! `insert_with_key` / `insert_many_with_keys` / `upsert` keep them and move the store's key
//! generator past them, so later plain inserts never collide — also while racing them.

use super::*;

/// A copy of `p` holding key `id`.
fn with_id(p: Person, id: i64) -> Person {
    Person { id, ..p }
}

fn numbered(i: i64) -> Person {
    person(&format!("p{i}@x.io"), &format!("P{i}"), None, "UK", 1, None)
}

store_test!(insert_refuses_a_given_generated_key_instead_of_renumbering, |db| async move {
    db.create_all(&[Person::SCHEMA]).await?;
    let given = with_id(numbered(1), 9999);
    assert_err!(given.insert(&db).await, Error::GeneratedKeyGiven { model: "Person", field: "id", value: 9999 });
    let batch = [numbered(2), with_id(numbered(3), 7)];
    assert_err!(Person::insert_many(&db, &batch).await, Error::GeneratedKeyGiven { value: 7, .. });
    assert_eq!(Person::query().count(&db).await?, 0, "nothing was stored, under any key");
    let message = given.insert(&db).await.unwrap_err().to_string();
    assert!(message.contains("insert_with_key"), "the error says what to do instead: {message}");
    Ok::<_, Error>(())
});

store_test!(insert_with_key_keeps_the_key_and_later_inserts_continue_after_it, |db| async move {
    db.create_all(&[Person::SCHEMA]).await?;
    let first = numbered(1).insert(&db).await?;
    assert_eq!(first.id, 1);
    let kept = with_id(numbered(2), 9999).insert_with_key(&db).await?;
    assert_eq!(kept.id, 9999);
    assert_eq!(Person::find(&db, 9999).await?, kept);
    let next = numbered(3).insert(&db).await?;
    assert_eq!(next.id, 10_000, "the generator moved past the chosen key");
    // A key below the generator's position is written as given and moves nothing.
    let low = with_id(numbered(4), 5).insert_with_key(&db).await?;
    assert_eq!(low.id, 5);
    assert_eq!(numbered(5).insert(&db).await?.id, 10_001);
    assert_err!(with_id(numbered(6), 9999).insert_with_key(&db).await, Error::UniqueViolation { .. });
    Ok::<_, Error>(())
});

store_test!(insert_many_with_keys_keeps_gaps_and_later_inserts_continue_after_them, |db| async move {
    db.create_all(&[Person::SCHEMA]).await?;
    let rows: Vec<Person> = [3, 276, 41, 9000].into_iter().map(|id| with_id(numbered(id), id)).collect();
    let stored = Person::insert_many_with_keys(&db, &rows).await?;
    assert_eq!(stored.iter().map(|p| p.id).collect::<Vec<_>>(), [3, 276, 41, 9000], "every key kept, in order");
    let fresh = Person::insert_many(&db, &[numbered(1), numbered(2)]).await?;
    assert_eq!(fresh.iter().map(|p| p.id).collect::<Vec<_>>(), [9001, 9002]);
    assert_eq!(ids(Person::query(), &db).await?, [3, 41, 276, 9000, 9001, 9002]);
    Ok::<_, Error>(())
});

store_test!(upsert_with_a_new_generated_key_does_not_collide_with_later_inserts, |db| async move {
    db.create_all(&[Person::SCHEMA]).await?;
    // Keys 1 and 2 written by upsert on an empty table: the generator must not hand them out.
    with_id(numbered(1), 1).upsert(&db).await?;
    with_id(numbered(2), 2).upsert(&db).await?;
    let next = numbered(3).insert(&db).await?;
    assert_eq!(next.id, 3, "a plain insert after upserts continues after their keys");
    // Upserting an existing row changes nothing about the generator.
    let mut renamed = next.clone();
    renamed.name = "renamed".into();
    assert_eq!(renamed.upsert(&db).await?.name, "renamed");
    assert_eq!(numbered(4).insert(&db).await?.id, 4);
    Ok::<_, Error>(())
});

store_test!(chosen_keys_racing_plain_inserts_never_make_them_collide, |db| async move {
    db.create_all(&[Person::SCHEMA]).await?;
    // Plain inserts on several connections while others write keys just ahead of the
    // generator: whatever the interleaving, no plain insert may draw a key already taken.
    let plain = (0..40).map(|i| {
        let db = db.clone();
        async move { numbered(i).insert(&db).await.map(|p| p.id) }
    });
    let chosen = (0..8).map(|i| {
        let db = db.clone();
        let id = 1000 * (i + 1);
        async move { with_id(numbered(100 + i), id).insert_with_key(&db).await.map(|p| p.id) }
    });
    let (plain, chosen) =
        futures_util::future::join(futures_util::future::join_all(plain), futures_util::future::join_all(chosen)).await;
    let plain: Vec<i64> = plain.into_iter().collect::<Result<_>>()?;
    let chosen: Vec<i64> = chosen.into_iter().collect::<Result<_>>()?;
    assert_eq!(chosen, (1..=8).map(|i| 1000 * i).collect::<Vec<_>>());
    assert_eq!(Person::query().count(&db).await?, 48);
    let after = numbered(999).insert(&db).await?.id;
    assert!(after > *plain.iter().chain(&chosen).max().unwrap_or(&0), "{after} continues after every key");
    Ok::<_, Error>(())
});

store_test!(first_uses_of_a_key_generator_racing_each_other_all_get_distinct_keys, |db| async move {
    // On MongoDB the first insert creates the counter document; inserts racing that first use
    // must each still get a key (a losing upsert of the counter is asked again, not reported
    // as "no value"). Each round starts from a dropped collection, so from no counter.
    for round in 0..20 {
        db.drop_all(&[Person::SCHEMA]).await?;
        db.create_all(&[Person::SCHEMA]).await?;
        let inserts = (0..12).map(|i| {
            let db = db.clone();
            async move { numbered(100 * round + i).insert(&db).await.map(|p| p.id) }
        });
        let mut keys: Vec<i64> = futures_util::future::join_all(inserts).await.into_iter().collect::<Result<_>>()?;
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), 12, "round {round}: every racing insert got its own key: {keys:?}");
    }
    Ok::<_, Error>(())
});
