//! Reading: ordering and NULL placement, keyset pagination, counts, bulk writes, streams
//! and aggregates.

use super::*;

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
