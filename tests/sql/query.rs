//! The typed query builder on PostgreSQL and on SQLite, with known data: text, range, array
//! and NULL filters; NULL ordering; the terminals (`all`, `first`, `one`, `count`, `exists`,
//! `stream`); bulk updates and deletes; keyset pagination (ties, NULLs, both directions,
//! foreign and altered cursors); projections and aggregates; raw SQL.

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt as _;
use polystore::prelude::*;
use polystore::query::count_all;
use polystore::{Order, PoolConfig, raw};
// Every test here also runs through PgBouncer in transaction pooling mode (`pgbouncer`).
use polystore_tests::assert_err;
use polystore_tests::pooled_sql_test as sql_test;

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "q_items")]
struct Item {
    #[model(primary_key, generated)]
    id: i64,
    name: String,
    nick: Option<String>,
    score: i32,
    tags: Vec<String>,
    #[model(updated_at)]
    updated_at: DateTime<Utc>,
}

fn item(name: &str, nick: Option<&str>, score: i32, tags: &[&str]) -> Item {
    Item {
        id: 0,
        name: name.to_owned(),
        nick: nick.map(str::to_owned),
        score,
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        updated_at: DateTime::UNIX_EPOCH,
    }
}

/// Five rows with ids 1..=5: mixed case, LIKE wildcards in the data, NULL nicks, tied scores.
async fn seed(db: &Db) -> Result<Vec<Item>> {
    db.create_all(&[Item::SCHEMA]).await?;
    Item::insert_many(
        db,
        &[
            item("Alice", Some("ally"), 10, &["rust", "db"]),
            item("alice_b", None, 20, &["go"]),
            item("Bob%", Some("bobby"), 10, &[]),
            item("carol", None, 30, &["rust"]),
            item("Dave", Some("cat"), 20, &["db"]),
        ],
    )
    .await
}

async fn ids(q: Query<Item>, db: &Db) -> Result<Vec<i64>> {
    Ok(q.order_by(Item::ID.asc()).all(db).await?.into_iter().map(|i| i.id).collect())
}

sql_test!(text_matching_is_case_sensitive_unless_asked_and_takes_wildcards_literally, |db| async move {
    seed(&db).await?;
    let q = Item::query;
    assert_eq!(ids(q().filter(Item::NAME.starts_with("A")), &db).await?, [1], "case-sensitive on both stores");
    assert_eq!(ids(q().filter(Item::NAME.starts_with_ci("a")), &db).await?, [1, 2]);
    assert_eq!(ids(q().filter(Item::NAME.contains("_")), &db).await?, [2], "`_` is not a wildcard");
    assert_eq!(ids(q().filter(Item::NAME.ends_with("%")), &db).await?, [3], "`%` is not a wildcard");
    assert_eq!(ids(q().filter(Item::NAME.contains("li")), &db).await?, [1, 2]);
    assert_eq!(ids(q().filter(Item::NAME.contains_ci("LI")), &db).await?, [1, 2]);
    assert_eq!(ids(q().filter(Item::NAME.ends_with_ci("VE")), &db).await?, [5]);
    assert_eq!(ids(q().filter(Item::NAME.like("_o%")), &db).await?, [3]);
    assert_eq!(ids(q().filter(Item::NAME.like("Bob\\%")), &db).await?, [3]);
    assert_eq!(ids(q().filter(Item::NAME.like("a%")), &db).await?, [2], "like is case-sensitive");
    assert_eq!(ids(q().filter(Item::NAME.ilike("a%")), &db).await?, [1, 2]);
    assert_eq!(ids(q().filter(Item::NICK.contains_ci("ALL")), &db).await?, [1], "NULL nicks never match");
    assert_eq!(ids(q().filter(Item::NICK.starts_with("b").not()), &db).await?, [1, 5], "NOT of NULL is still unknown");
    Ok::<(), Error>(())
});

sql_test!(range_array_and_null_filters, |db| async move {
    seed(&db).await?;
    let q = Item::query;
    assert_eq!(ids(q().filter(Item::SCORE.between(10, 20)), &db).await?, [1, 2, 3, 5]);
    assert_eq!(ids(q().filter(Item::SCORE.not_between(11, 30)), &db).await?, [1, 3]);
    assert_eq!(ids(q().filter(Item::TAGS.contains("rust")), &db).await?, [1, 4]);
    assert_eq!(ids(q().filter(Item::TAGS.contains("db")), &db).await?, [1, 5]);
    assert_eq!(ids(q().filter(Item::TAGS.contains("cobol")), &db).await?, Vec::<i64>::new());
    assert_eq!(ids(q().filter(Item::NICK.eq(None::<String>)), &db).await?, [2, 4]);
    assert_eq!(ids(q().filter(Item::NICK.ne("ally")), &db).await?, [3, 5], "<> never matches NULL");
    assert_eq!(ids(q().filter(Item::NICK.is_not_null()), &db).await?, [1, 3, 5]);
    assert_eq!(ids(q().filter(Item::NICK.is_in(["cat", "ally"])), &db).await?, [1, 5]);
    assert_eq!(ids(q().filter(Item::NICK.not_in(["cat"])), &db).await?, [1, 3], "NOT IN skips NULLs");
    assert_eq!(ids(q().filter(Item::ID.is_in(Vec::<i64>::new())), &db).await?, Vec::<i64>::new());
    Ok::<(), Error>(())
});

sql_test!(an_in_list_of_5000_values_is_one_parameter, |db| async move {
    seed(&db).await?;
    let wanted: Vec<i64> = (3..5003).collect();
    let before = db.stats().statements();
    assert_eq!(Item::query().filter(Item::ID.is_in(wanted.clone())).count(&db).await?, 3);
    assert_eq!(db.stats().statements() - before, 1, "one statement");
    assert_eq!(ids(Item::query().filter(Item::ID.not_in(wanted)), &db).await?, [1, 2]);
    let names: Vec<String> = (0..5000).map(|i| format!("name{i}")).chain(["Dave".to_owned()]).collect();
    assert_eq!(ids(Item::query().filter(Item::NAME.is_in(names)), &db).await?, [5]);
    Ok::<(), Error>(())
});

sql_test!(nulls_go_first_or_last_as_asked, |db| async move {
    seed(&db).await?;
    let db = &db;
    let order = |o: Order<Item>| async move {
        let rows = Item::query().order_by(o).order_by(Item::ID.asc()).all(db).await?;
        Ok::<_, Error>(rows.into_iter().map(|i| i.id).collect::<Vec<_>>())
    };
    assert_eq!(order(Item::NICK.asc().nulls_first()).await?, [2, 4, 1, 3, 5]);
    assert_eq!(order(Item::NICK.asc().nulls_last()).await?, [1, 3, 5, 2, 4]);
    assert_eq!(order(Item::NICK.desc().nulls_last()).await?, [5, 3, 1, 2, 4]);
    assert_eq!(order(Item::NICK.desc().nulls_first()).await?, [2, 4, 5, 3, 1]);
    Ok::<(), Error>(())
});

sql_test!(terminals_all_first_one_count_exists, |db| async move {
    seed(&db).await?;
    let none = || Item::query().filter(Item::SCORE.gt(100));
    assert_eq!(none().all(&db).await?, Vec::new());
    assert_eq!(none().first(&db).await?, None);
    assert_eq!(none().count(&db).await?, 0);
    assert!(!none().exists(&db).await?);
    assert_err!(none().one(&db).await, Error::NotExactlyOne { found: 0, .. });
    assert_err!(Item::query().filter(Item::SCORE.eq(10)).one(&db).await, Error::NotExactlyOne { found: 2, .. });
    assert_eq!(Item::query().filter(Item::SCORE.eq(30)).one(&db).await?.name, "carol");
    assert!(Item::query().filter(Item::SCORE.eq(10)).exists(&db).await?);
    assert_eq!(Item::query().filter(Item::SCORE.le(20)).count(&db).await?, 4);
    let top = Item::query().order_by(Item::SCORE.desc()).order_by(Item::ID.desc()).first(&db).await?;
    assert_eq!(top.map(|i| i.id), Some(4));
    Ok::<(), Error>(())
});

sql_test!(stream_yields_every_row_in_order_on_a_pool_and_in_a_transaction, |db| async move {
    db.create_all(&[Item::SCHEMA]).await?;
    let rows: Vec<Item> = (0..1500).map(|i| item(&format!("n{i:04}"), None, i % 7, &["x"])).collect();
    Item::insert_many(&db, &rows).await?;
    let before = db.stats().statements();
    let streamed: Vec<Item> = Item::query().order_by(Item::ID.asc()).stream(&db).try_collect().await?;
    assert_eq!(db.stats().statements() - before, 1, "a stream is one statement");
    assert_eq!(streamed, Item::query().order_by(Item::ID.asc()).all(&db).await?);
    assert_eq!(streamed.len(), 1500);

    let mut tx = db.begin().await?;
    let mut seen = 0;
    {
        let mut s = Item::query().filter(Item::SCORE.eq(3)).stream(&mut tx);
        while let Some(row) = s.try_next().await? {
            assert_eq!(row.score, 3);
            seen += 1;
        }
    }
    assert_eq!(seen, Item::query().filter(Item::SCORE.eq(3)).count(&mut tx).await?);
    tx.commit().await?;

    let empty: Vec<Item> = Item::query().filter(Item::SCORE.lt(0)).stream(&db).try_collect().await?;
    assert!(empty.is_empty());
    Ok::<(), Error>(())
});

sql_test!(a_stream_dropped_half_way_leaves_the_connection_usable, |db| async move {
    db.create_all(&[Item::SCHEMA]).await?;
    let rows: Vec<Item> = (0..300).map(|i| item(&format!("n{i:03}"), None, i, &[])).collect();
    Item::insert_many(&db, &rows).await?;
    let mut tx = db.begin().await?;
    {
        let mut s = Item::query().order_by(Item::ID.asc()).stream(&mut tx);
        let first = s.try_next().await?.expect("a row");
        assert_eq!(first.name, "n000");
    }
    assert_eq!(Item::query().count(&mut tx).await?, 300, "the transaction's connection still works");
    tx.commit().await?;
    {
        let mut s = Item::query().stream(&db);
        s.try_next().await?;
    }
    assert_eq!(Item::query().filter(Item::SCORE.lt(10)).count(&db).await?, 10);
    Ok::<(), Error>(())
});

sql_test!(update_many_and_delete_many_use_the_filter_and_stamp_updated_at, |db| async move {
    let seeded = seed(&db).await?;
    let before = seeded[0].updated_at;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let n = Item::query()
        .filter(Item::TAGS.contains("rust"))
        .update_many(&db, [Item::SCORE.increment(5), Item::NICK.set_null()])
        .await?;
    assert_eq!(n, 2);
    let alice = Item::find(&db, 1).await?;
    assert_eq!((alice.score, alice.nick.clone()), (15, None));
    assert!(alice.updated_at > before, "updated_at is stamped: {} vs {before}", alice.updated_at);
    assert_eq!(Item::find(&db, 4).await?.score, 35);
    assert_eq!(Item::find(&db, 2).await?, seeded[1], "rows outside the filter are untouched");

    let n = Item::query()
        .filter(Item::NAME.eq("Dave"))
        .update_many(&db, [Item::SCORE.decrement(1), Item::NAME.set("David")])
        .await?;
    assert_eq!(n, 1);
    assert_eq!(Item::find(&db, 5).await?.name, "David");
    assert_eq!(Item::query().filter(Item::SCORE.gt(1000)).update_many(&db, [Item::SCORE.set(0)]).await?, 0);

    assert_eq!(Item::query().filter(Item::SCORE.ge(19)).delete_many(&db).await?, 3);
    assert_eq!(ids(Item::query(), &db).await?, [1, 3]);
    assert_eq!(Item::query().delete_many(&db).await?, 2);
    assert_eq!(Item::query().count(&db).await?, 0);
    Ok::<(), Error>(())
});

/// 23 rows: scores with many ties and NULL nicks, so pages split inside runs of equal keys.
async fn seed_many(db: &Db) -> Result<Vec<Item>> {
    db.create_all(&[Item::SCHEMA]).await?;
    let rows: Vec<Item> = (0..23)
        .map(|i| {
            let nick = if i % 3 == 0 { None } else { Some(format!("k{}", i % 4)) };
            item(&format!("r{i:02}"), nick.as_deref(), i % 4, &[])
        })
        .collect();
    Item::insert_many(db, &rows).await
}

/// Walks every page forward, then back from the end, checking they tile `expected`.
async fn walk(db: &Db, query: impl Fn() -> Query<Item>, expected: &[i64], size: u64) -> Result<()> {
    let mut pages: Vec<Vec<i64>> = Vec::new();
    let mut request = PageRequest::first(size);
    let mut last_prev;
    loop {
        let page = query().paginate(db, request).await?;
        assert_eq!(page.prev.is_some(), !pages.is_empty(), "prev only after the first page");
        pages.push(page.items.iter().map(|i| i.id).collect());
        last_prev = page.prev.clone();
        match page.next {
            Some(next) => request = PageRequest::after(next, size),
            None => break,
        }
    }
    let forward: Vec<i64> = pages.concat();
    assert_eq!(forward, expected, "pages of {size} tile the ordered rows exactly once");
    assert!(pages.iter().all(|p| p.len() as u64 <= size));
    // Back from the last page's prev: the same pages in reverse.
    let mut back = vec![pages.last().cloned().unwrap_or_default()];
    let mut cursor = last_prev;
    while let Some(c) = cursor {
        let page = query().paginate(db, PageRequest::before(c, size)).await?;
        assert!(page.next.is_some(), "a page reached backwards has a next page");
        back.push(page.items.iter().map(|i| i.id).collect());
        cursor = page.prev;
    }
    back.reverse();
    assert_eq!(back, pages, "paging backwards returns the same pages");
    Ok(())
}

sql_test!(keyset_pagination_with_ties_and_nulls_in_both_directions, |db| async move {
    let rows = seed_many(&db).await?;
    let mut by_score: Vec<&Item> = rows.iter().collect();
    by_score.sort_by(|a, b| b.score.cmp(&a.score).then(a.id.cmp(&b.id)));
    let expected: Vec<i64> = by_score.iter().map(|i| i.id).collect();
    for size in [1, 4, 7, 23, 50] {
        walk(&db, || Item::query().order_by(Item::SCORE.desc()), &expected, size).await?;
    }
    // Nullable key, NULLs last and first, plus a filter.
    let mut by_nick: Vec<&Item> = rows.iter().filter(|i| i.score != 2).collect();
    by_nick.sort_by(|a, b| match (&a.nick, &b.nick) {
        (None, None) => a.id.cmp(&b.id),
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (Some(_), None) => std::cmp::Ordering::Less,
        (Some(x), Some(y)) => x.cmp(y).then(a.id.cmp(&b.id)),
    });
    let expected: Vec<i64> = by_nick.iter().map(|i| i.id).collect();
    let q = || Item::query().filter(Item::SCORE.ne(2)).order_by(Item::NICK.asc().nulls_last());
    walk(&db, q, &expected, 4).await?;
    let nulls_first: Vec<i64> = {
        let (mut nulls, mut rest): (Vec<i64>, Vec<i64>) = (Vec::new(), Vec::new());
        for i in &by_nick {
            if i.nick.is_none() { nulls.push(i.id) } else { rest.push(i.id) }
        }
        nulls.extend(rest);
        nulls
    };
    walk(&db, || Item::query().filter(Item::SCORE.ne(2)).order_by(Item::NICK.asc().nulls_first()), &nulls_first, 3)
        .await?;
    // The default NULL placement of each store works too.
    let default_order: Vec<i64> = Item::query()
        .order_by(Item::NICK.desc())
        .order_by(Item::ID.asc())
        .all(&db)
        .await?
        .iter()
        .map(|i| i.id)
        .collect();
    walk(&db, || Item::query().order_by(Item::NICK.desc()), &default_order, 5).await?;
    Ok::<(), Error>(())
});

sql_test!(pagination_rejects_foreign_and_altered_cursors_and_handles_empty_results, |db| async move {
    seed_many(&db).await?;
    let page = Item::query().order_by(Item::SCORE.desc()).paginate(&db, PageRequest::first(5)).await?;
    let next = page.next.expect("more pages");
    let other = Item::query().order_by(Item::SCORE.asc()).paginate(&db, PageRequest::after(next.clone(), 5)).await;
    assert_err!(other, Error::InvalidCursor(_));
    let mut text = next.as_str().to_owned();
    let flipped = if text.starts_with('W') { "X" } else { "W" };
    text.replace_range(0..1, flipped);
    let altered = Item::query().order_by(Item::SCORE.desc()).paginate(&db, PageRequest::after(text, 5)).await;
    assert_err!(altered, Error::InvalidCursor(_));
    let garbage = Item::query().paginate(&db, PageRequest::after("not-a-cursor", 5)).await;
    assert_err!(garbage, Error::InvalidCursor(_));

    let empty = Item::query().filter(Item::SCORE.gt(99)).paginate(&db, PageRequest::first(5)).await?;
    assert!(empty.items.is_empty() && empty.next.is_none() && empty.prev.is_none());
    let exact = Item::query().paginate(&db, PageRequest::first(23)).await?;
    assert_eq!((exact.items.len(), exact.next.is_none()), (23, true), "no next page when the rows run out exactly");
    Ok::<(), Error>(())
});

sql_test!(projections_decode_into_typed_tuples, |db| async move {
    seed(&db).await?;
    let pairs: Vec<(i64, String)> = Item::query()
        .filter(Item::SCORE.eq(10))
        .order_by(Item::ID.asc())
        .select((Item::ID, Item::NAME))
        .all(&db)
        .await?;
    assert_eq!(pairs, [(1, "Alice".to_owned()), (3, "Bob%".to_owned())]);
    let nicks: Vec<Option<String>> = Item::query().order_by(Item::ID.asc()).select(Item::NICK).all(&db).await?;
    assert_eq!(nicks, [Some("ally".to_owned()), None, Some("bobby".to_owned()), None, Some("cat".to_owned())]);
    let tags: Option<Vec<String>> = Item::query().filter(Item::ID.eq(1)).select(Item::TAGS).first(&db).await?;
    assert_eq!(tags, Some(vec!["rust".to_owned(), "db".to_owned()]));
    assert_err!(Item::query().select(Item::ID).one(&db).await, Error::NotExactlyOne { found: 2, .. });
    Ok::<(), Error>(())
});

sql_test!(aggregates_with_group_by_and_having_have_typed_results, |db| async move {
    seed(&db).await?;
    let (n, sum, avg, min, max): (i64, Option<i64>, Option<f64>, Option<i32>, Option<String>) = Item::query()
        .select((count_all::<Item>(), Item::SCORE.sum(), Item::SCORE.avg(), Item::SCORE.min(), Item::NICK.max()))
        .one(&db)
        .await?;
    assert_eq!((n, sum, min, max), (5, Some(90), Some(10), Some("cat".to_owned())));
    assert!((avg.unwrap() - 18.0).abs() < 1e-9);
    let groups: Vec<(i32, i64, i64, Option<i64>)> = Item::query()
        .group_by(Item::SCORE)
        .having(count_all::<Item>().gt(1))
        .order_by(Item::SCORE.asc())
        .select((Item::SCORE, count_all::<Item>(), Item::NICK.count(), Item::ID.sum()))
        .all(&db)
        .await?;
    assert_eq!(groups, [(10, 2, 2, Some(4)), (20, 2, 1, Some(7))]);
    let empty = Item::query()
        .filter(Item::SCORE.gt(99))
        .select((count_all::<Item>(), Item::SCORE.sum(), Item::SCORE.avg()))
        .one(&db)
        .await?;
    assert_eq!(empty, (0, None, None), "SUM and AVG of no rows are NULL");
    Ok::<(), Error>(())
});

sql_test!(raw_sql_binds_values_and_decodes_models_by_column_name, |db| async move {
    seed(&db).await?;
    let rows = raw::<Item>("SELECT * FROM q_items WHERE score = $1 AND name <> $2 ORDER BY id")
        .bind(10)
        .bind("Bob%")
        .all(&db)
        .await?;
    assert_eq!(rows.iter().map(|i| i.id).collect::<Vec<_>>(), [1]);
    let reordered = raw::<Item>("SELECT updated_at, tags, score, nick, name, id FROM q_items WHERE id = $1")
        .bind(4i64)
        .one(&db)
        .await?;
    assert_eq!(reordered, Item::find(&db, 4).await?);
    let missing = raw::<Item>("SELECT id, name FROM q_items").all(&db).await;
    assert_err!(missing, Error::Decode { field: "nick", .. });
    assert_eq!(raw::<Item>("SELECT * FROM q_items WHERE nick = $1").bind(None::<String>).first(&db).await?, None);
    let n = raw::<Item>("UPDATE q_items SET score = score * $1 WHERE nick IS NULL").bind(2).execute(&db).await?;
    assert_eq!(n, 2);
    assert_eq!(Item::find(&db, 4).await?.score, 60);
    Ok::<(), Error>(())
});

/// Every connection of a SQLite pool polystore opens has the exact decimal functions and
/// collation, and they fail loudly (never a float) on overflow, division by zero or a REAL.
#[tokio::test]
async fn every_sqlite_connection_has_the_exact_decimal_functions() {
    let cfg = PoolConfig { max_connections: 3, ..PoolConfig::default() };
    let db = Db::connect_with("sqlite::memory:", cfg).await.expect("an in-memory SQLite database");
    let pool = db.sqlite_pool().expect("a SQLite pool");
    // Hold three connections at once, so three distinct connections are checked.
    let mut conns = Vec::new();
    for _ in 0..3 {
        conns.push(pool.acquire().await.expect("a connection"));
    }
    for conn in &mut conns {
        let row: (String, String, String, String, String) = sqlx::query_as(
            "SELECT polystore_dec_add('0.90', '0.10'), polystore_dec_mul('1.5', '2.25'), \
             polystore_dec_div('1', '8'), polystore_dec_neg('2.50'), polystore_dec_sub('12345678901234567.99', '0.1')",
        )
        .fetch_one(&mut **conn)
        .await
        .expect("the decimal functions");
        assert_eq!(row, ("1.00".into(), "3.375".into(), "0.125".into(), "-2.50".into(), "12345678901234567.89".into()));
        let sorted: Vec<String> = sqlx::query_scalar(
            "SELECT v FROM (SELECT '9.5' AS v UNION ALL SELECT '10' UNION ALL SELECT '-1.25') \
             ORDER BY v COLLATE polystore_decimal",
        )
        .fetch_all(&mut **conn)
        .await
        .expect("the decimal collation");
        assert_eq!(sorted, ["-1.25", "9.5", "10"]);
    }
    let conn = &mut *conns[0];
    for (sql, message) in [
        ("SELECT polystore_dec_div('1', '0')", "division by zero"),
        ("SELECT polystore_dec_mul('79228162514264337593543950335', '2')", "does not fit"),
        ("SELECT polystore_dec_add(0.5, '1')", "REAL"),
        (
            "SELECT polystore_dec_sum(v) FROM (SELECT '79228162514264337593543950335' AS v UNION ALL SELECT '1')",
            "does not fit",
        ),
    ] {
        let err = sqlx::query_scalar::<_, String>(sql).fetch_one(&mut *conn).await.expect_err(sql).to_string();
        assert!(err.contains(message), "{sql}: {err}");
    }
}
