//! Keyset pagination from known key values (`order_by_key(..).after(..)` / `before(..)`):
//! ascending, descending and mixed keys, nullable keys with either NULL placement, a key
//! without the primary key, and the continuation by the cursors the pages hand out — the same
//! rows on every store.

use super::*;
use polystore::query::{Asc, Desc};

fn page_ids(page: &Page<Person>) -> Vec<i64> {
    page.items.iter().map(|p| p.id).collect()
}

// Scores: 1 → 36, 2 → 41, 3 → 36, 4 → 20, 5 → 10, 6 → 50.
store_test!(keyset_after_and_before_known_values_with_mixed_directions, |db| async move {
    db.create_all(&[Person::SCHEMA]).await?;
    seed(&db).await?;
    // Order: 6 (50), 2 (41), 1 (36), 3 (36), 4 (20), 5 (10).
    let by_score = || Person::query().order_by_key((Desc(Person::SCORE), Person::ID));
    let after = by_score().after((36, 1)).paginate(&db, PageRequest::first(2)).await?;
    assert_eq!(page_ids(&after), [3, 4]);
    assert!(after.prev.is_some(), "a page after known values has rows before it");
    let rest = by_score().paginate(&db, PageRequest::after(after.next.clone().expect("more rows"), 2)).await?;
    assert_eq!(page_ids(&rest), [5], "the page's cursor continues the keyset");
    assert_eq!(rest.next, None);
    let before = by_score().before((36, 3)).paginate(&db, PageRequest::first(2)).await?;
    assert_eq!(page_ids(&before), [2, 1]);
    let back = by_score().paginate(&db, PageRequest::before(before.prev.clone().expect("rows before"), 5)).await?;
    assert_eq!(page_ids(&back), [6]);
    // A key without the primary key: after *every* row with score 36.
    let past = Person::query().order_by_key(Desc(Person::SCORE)).after(36).paginate(&db, PageRequest::first(9)).await?;
    assert_eq!(page_ids(&past), [4, 5]);
    // Text keys take `&str`; countries FI 4, NZ 6, UK 2 1, US 5 3 (ids descending).
    let by_country = Person::query().order_by_key((Asc(Person::COUNTRY), Desc(Person::ID)));
    let page = by_country.after(("UK", 2)).paginate(&db, PageRequest::first(9)).await?;
    assert_eq!(page_ids(&page), [1, 5, 3]);
    Ok::<_, Error>(())
});

// Bonuses: 1 → 5, 2 → NULL, 3 → -2, 4 → 0, 5 → NULL, 6 → 7.
store_test!(keyset_from_values_places_nulls_as_the_key_says, |db| async move {
    db.create_all(&[Person::SCHEMA]).await?;
    seed(&db).await?;
    // 3 (-2), 4 (0), 1 (5), 6 (7), 2 (NULL), 5 (NULL).
    let last = || Person::query().order_by_key((Asc(Person::BONUS).nulls_last(), Person::ID));
    assert_eq!(page_ids(&last().after((5, 1)).paginate(&db, PageRequest::first(9)).await?), [6, 2, 5]);
    assert_eq!(page_ids(&last().after((None::<i32>, 2)).paginate(&db, PageRequest::first(9)).await?), [5]);
    assert_eq!(page_ids(&last().before((None::<i32>, 2)).paginate(&db, PageRequest::first(2)).await?), [1, 6]);
    // 2 (NULL), 5 (NULL), 6 (7), 1 (5), 4 (0), 3 (-2).
    let first = || Person::query().order_by_key((Desc(Person::BONUS).nulls_first(), Person::ID));
    assert_eq!(page_ids(&first().after((None::<i32>, 5)).paginate(&db, PageRequest::first(2)).await?), [6, 1]);
    assert_eq!(page_ids(&first().after((None::<i32>, 2)).paginate(&db, PageRequest::first(1)).await?), [5]);
    assert_eq!(page_ids(&first().before((5, 1)).paginate(&db, PageRequest::first(9)).await?), [2, 5, 6]);
    Ok::<_, Error>(())
});

store_test!(keyset_from_values_refuses_a_second_ordering_or_a_cursor_too, |db| async move {
    db.create_all(&[Person::SCHEMA]).await?;
    seed(&db).await?;
    let ordered = Person::query().order_by(Person::NAME.asc()).order_by_key(Person::ID).after(3_i64);
    assert_err!(ordered.paginate(&db, PageRequest::first(2)).await, Error::Config(_));
    let keyed = || Person::query().order_by_key(Person::ID);
    let first = keyed().paginate(&db, PageRequest::first(2)).await?;
    assert_eq!(page_ids(&first), [1, 2]);
    let both = keyed().after(3_i64).paginate(&db, PageRequest::after(first.next.unwrap(), 2));
    assert_err!(both.await, Error::InvalidCursor(_));
    Ok::<_, Error>(())
});
