//! Transactions on PostgreSQL and SQLite: commit, rollback (explicit and by dropping the
//! transaction), savepoints, atomic batch inserts, and every operation through `&mut tx`.

use polystore::prelude::*;
use polystore::sql::build::rows_per_insert;
use polystore_tests::{assert_err, pg, sql_test};

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "entries")]
struct Entry {
    #[model(primary_key, generated)]
    id: i64,
    #[model(unique)]
    code: String,
    amount: i64,
}

fn entry(code: &str, amount: i64) -> Entry {
    Entry { id: 0, code: code.to_owned(), amount }
}

async fn codes(db: &Db) -> Result<Vec<String>> {
    let rows = Entry::query().order_by(Entry::CODE.asc()).all(db).await?;
    Ok(rows.into_iter().map(|e| e.code).collect())
}

sql_test!(committed_writes_persist, |db| async move {
    db.create_all(&[Entry::SCHEMA]).await?;
    let mut tx = db.begin().await?;
    let a = entry("a", 1).insert(&mut tx).await?;
    let more = Entry::insert_many(&mut tx, &[entry("b", 2), entry("c", 3)]).await?;
    assert_eq!(more.len(), 2);
    assert_eq!(Entry::find(&mut tx, a.id).await?, a, "the transaction sees its own writes");
    assert_eq!(Entry::query().count(&mut tx).await?, 3);
    tx.commit().await?;

    assert_eq!(codes(&db).await?, ["a", "b", "c"]);
    assert_eq!(Entry::find(&db, a.id).await?, a);
    Ok::<_, Error>(())
});

sql_test!(explicit_rollback_leaves_nothing, |db| async move {
    db.create_all(&[Entry::SCHEMA]).await?;
    entry("kept", 0).insert(&db).await?;

    let mut tx = db.begin().await?;
    entry("a", 1).insert(&mut tx).await?;
    Entry::insert_many(&mut tx, &[entry("b", 2), entry("c", 3)]).await?;
    let mut kept = Entry::query().filter(Entry::CODE.eq("kept")).first(&mut tx).await?.expect("kept");
    kept.amount = 100;
    kept.update(&mut tx).await?;
    assert_eq!(Entry::query().count(&mut tx).await?, 4);
    tx.rollback().await?;

    assert_eq!(codes(&db).await?, ["kept"]);
    let kept = Entry::query().filter(Entry::CODE.eq("kept")).first(&db).await?.expect("kept");
    assert_eq!(kept.amount, 0, "the update was rolled back too");
    Ok::<_, Error>(())
});

sql_test!(dropping_a_transaction_rolls_it_back, |db| async move {
    db.create_all(&[Entry::SCHEMA]).await?;
    {
        let mut tx = db.begin().await?;
        entry("a", 1).insert(&mut tx).await?;
        entry("b", 2).insert(&mut tx).await?;
        // dropped here without commit
    }
    assert_eq!(Entry::query().count(&db).await?, 0);
    // The connection went back to the pool in a usable state.
    entry("c", 3).insert(&db).await?;
    assert_eq!(codes(&db).await?, ["c"]);
    Ok::<_, Error>(())
});

sql_test!(rolled_back_savepoint_inside_a_committed_transaction, |db| async move {
    db.create_all(&[Entry::SCHEMA]).await?;
    let mut outer = db.begin().await?;
    entry("outer-before", 1).insert(&mut outer).await?;
    {
        let mut inner = outer.begin().await?;
        entry("inner", 2).insert(&mut inner).await?;
        assert_eq!(Entry::query().count(&mut inner).await?, 2);
        inner.rollback().await?;
    }
    entry("outer-after", 3).insert(&mut outer).await?;
    {
        let mut dropped = outer.begin().await?;
        entry("inner-dropped", 4).insert(&mut dropped).await?;
    }
    {
        let mut kept = outer.begin().await?;
        entry("inner-kept", 5).insert(&mut kept).await?;
        kept.commit().await?;
    }
    outer.commit().await?;
    assert_eq!(codes(&db).await?, ["inner-kept", "outer-after", "outer-before"]);
    Ok::<_, Error>(())
});

sql_test!(committed_savepoint_inside_a_rolled_back_transaction_is_undone, |db| async move {
    db.create_all(&[Entry::SCHEMA]).await?;
    let mut outer = db.begin().await?;
    entry("outer", 1).insert(&mut outer).await?;
    let mut inner = outer.begin().await?;
    entry("inner", 2).insert(&mut inner).await?;
    inner.commit().await?;
    outer.rollback().await?;
    assert_eq!(Entry::query().count(&db).await?, 0);
    Ok::<_, Error>(())
});

sql_test!(savepoint_recovers_from_a_failed_statement, |db| async move {
    db.create_all(&[Entry::SCHEMA]).await?;
    let mut outer = db.begin().await?;
    entry("a", 1).insert(&mut outer).await?;
    {
        let mut inner = outer.begin().await?;
        assert_err!(entry("a", 2).insert(&mut inner).await, Error::UniqueViolation { .. });
        inner.rollback().await?;
    }
    // After rolling back to the savepoint the outer transaction still works (on PostgreSQL a
    // failed statement would otherwise abort the whole transaction).
    entry("b", 3).insert(&mut outer).await?;
    outer.commit().await?;
    assert_eq!(codes(&db).await?, ["a", "b"]);
    Ok::<_, Error>(())
});

sql_test!(failing_insert_many_leaves_no_partial_rows, |db| async move {
    db.create_all(&[Entry::SCHEMA]).await?;
    entry("existing", 0).insert(&db).await?;

    // A duplicate inside the batch.
    let batch = [entry("a", 1), entry("b", 2), entry("a", 3), entry("c", 4)];
    assert_err!(Entry::insert_many(&db, &batch).await, Error::UniqueViolation { model: "Entry", .. });
    assert_eq!(codes(&db).await?, ["existing"]);

    // A clash with a row already stored, at the end of the batch.
    let batch = [entry("x", 1), entry("y", 2), entry("existing", 3)];
    assert_err!(Entry::insert_many(&db, &batch).await, Error::UniqueViolation { model: "Entry", .. });
    assert_eq!(codes(&db).await?, ["existing"]);
    Ok::<_, Error>(())
});

sql_test!(failing_insert_many_split_over_several_statements_leaves_no_partial_rows, |db| async move {
    db.create_all(&[Entry::SCHEMA]).await?;
    let per_statement = rows_per_insert(db.dialect(), Entry::SCHEMA);
    // The first statement's rows are fine; the duplicate sits in the second statement.
    let mut batch: Vec<Entry> = (0..per_statement).map(|i| entry(&format!("e{i}"), i as i64)).collect();
    batch.push(entry("e0", -1));
    let before = db.stats().statements();
    assert_err!(Entry::insert_many(&db, &batch).await, Error::UniqueViolation { model: "Entry", .. });
    assert_eq!(db.stats().statements() - before, 2, "the first INSERT ran, the second failed");
    assert_eq!(Entry::query().count(&db).await?, 0, "the first statement's rows were rolled back");

    // The same inside a transaction: only the batch is undone (through a savepoint).
    let mut tx = db.begin().await?;
    entry("before", 1).insert(&mut tx).await?;
    assert_err!(Entry::insert_many(&mut tx, &batch).await, Error::UniqueViolation { .. });
    entry("after", 2).insert(&mut tx).await?;
    tx.commit().await?;
    assert_eq!(codes(&db).await?, ["after", "before"]);
    Ok::<_, Error>(())
});

sql_test!(every_operation_runs_through_a_transaction, |db| async move {
    db.create_all(&[Entry::SCHEMA]).await?;
    let mut tx = db.begin().await?;

    let a = entry("a", 10).insert(&mut tx).await?;
    let many = Entry::insert_many(&mut tx, &[entry("b", 20), entry("c", 30)]).await?;
    assert_eq!(Entry::find(&mut tx, a.id).await?, a);
    assert_eq!(Entry::get(&mut tx, many[0].id).await?, Some(many[0].clone()));

    let mut b = many[0].clone();
    b.amount = 21;
    assert_eq!(b.update(&mut tx).await?.amount, 21);

    let mut c = many[1].clone();
    c.amount = 31;
    assert_eq!(c.upsert(&mut tx).await?.amount, 31);
    let d = entry("a", 11).upsert_on(&mut tx, &[Entry::CODE.into()]).await?;
    assert_eq!((d.id, d.amount), (a.id, 11));

    let big = Entry::query().filter(Entry::AMOUNT.gt(20)).order_by(Entry::AMOUNT.desc()).all(&mut tx).await?;
    assert_eq!(big.iter().map(|e| e.amount).collect::<Vec<_>>(), [31, 21]);
    assert_eq!(Entry::query().count(&mut tx).await?, 3);
    let first = Entry::query().order_by(Entry::CODE.desc()).first(&mut tx).await?;
    assert_eq!(first.map(|e| e.code).as_deref(), Some("c"));

    c.delete(&mut tx).await?;
    assert!(Entry::delete_by_key(&mut tx, b.id).await?);
    assert_err!(Entry::find(&mut tx, b.id).await, Error::NotFound { .. });

    tx.commit().await?;
    let left = Entry::query().all(&db).await?;
    assert_eq!(left.len(), 1);
    assert_eq!((left[0].code.as_str(), left[0].amount), ("a", 11));
    Ok::<_, Error>(())
});

sql_test!(statements_inside_a_transaction_are_counted_on_the_database_handle, |db| async move {
    db.create_all(&[Entry::SCHEMA]).await?;
    let before = db.stats().statements();
    let mut tx = db.begin().await?;
    entry("a", 1).insert(&mut tx).await?;
    Entry::query().count(&mut tx).await?;
    tx.commit().await?;
    assert_eq!(db.stats().statements() - before, 2);
    Ok::<_, Error>(())
});

/// PostgreSQL only: SQLite test databases have a single connection, so nothing can look at
/// the table from outside while a transaction is open.
#[tokio::test]
async fn uncommitted_writes_are_invisible_outside_the_transaction_on_postgres() {
    let db = pg().await;
    db.create_all(&[Entry::SCHEMA]).await.unwrap();
    let mut tx = db.begin().await.unwrap();
    entry("pending", 1).insert(&mut tx).await.unwrap();
    assert_eq!(Entry::query().count(&mut tx).await.unwrap(), 1);
    assert_eq!(Entry::query().count(db.db()).await.unwrap(), 0, "not visible before commit");
    tx.commit().await.unwrap();
    assert_eq!(Entry::query().count(db.db()).await.unwrap(), 1, "visible after commit");
    db.cleanup().await;
}

#[tokio::test]
async fn commit_after_a_failed_statement_reports_the_aborted_transaction_on_postgres() {
    let db = pg().await;
    db.create_all(&[Entry::SCHEMA]).await.unwrap();
    entry("taken", 0).insert(db.db()).await.unwrap();
    let mut tx = db.begin().await.unwrap();
    entry("written-before", 1).insert(&mut tx).await.unwrap();
    assert_err!(entry("taken", 2).insert(&mut tx).await, Error::UniqueViolation { .. });
    // PostgreSQL aborted the transaction: committing must not pretend it succeeded.
    assert_err!(tx.commit().await, Error::TransactionAborted);
    assert_eq!(codes(db.db()).await.unwrap(), ["taken"], "nothing of the aborted transaction is kept");
    db.cleanup().await;
}

sql_test!(a_failed_statement_in_a_savepoint_does_not_abort_the_outer_commit, |db| async move {
    db.create_all(&[Entry::SCHEMA]).await?;
    entry("taken", 0).insert(&db).await?;
    let mut outer = db.begin().await?;
    {
        let mut inner = outer.begin().await?;
        assert_err!(entry("taken", 1).insert(&mut inner).await, Error::UniqueViolation { .. });
        let committed = inner.commit().await;
        if db.backend() == polystore::Backend::Postgres {
            // PostgreSQL aborted the savepoint's work: it is rolled back, not released.
            assert_err!(committed, Error::TransactionAborted);
        } else {
            // SQLite keeps a transaction usable after a failed statement.
            committed?;
        }
    }
    entry("after", 2).insert(&mut outer).await?;
    outer.commit().await?;
    assert_eq!(codes(&db).await?, ["after", "taken"]);
    Ok::<_, Error>(())
});
