//! Concurrency control on the real stores: optimistic locking (`#[model(version)]`) through
//! every write path and the cache, with writers racing on one row; row locks
//! (`for_update`, `for_share`, `skip_locked`, `nowait`) on PostgreSQL and SQLite; and the
//! `claim` work-queue helper with many workers on PostgreSQL, SQLite and MongoDB.

use std::collections::BTreeMap;
use std::time::Duration;

use polystore::prelude::*;
use polystore::{Cache, ErrorClass, PoolConfig};
use polystore_tests::{StoreKind, TestStore as _, assert_err, store_test};

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "lc_docs", cache(ttl = "5m"), dto(DocPatch, update), dto(NewDoc, create))]
struct Doc {
    #[model(primary_key, generated)]
    id: i64,
    title: String,
    #[model(version)]
    version: i64,
}

fn doc(title: &str) -> Doc {
    Doc { id: 0, title: title.to_owned(), version: 0 }
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "lc_jobs", index(status))]
struct Job {
    #[model(primary_key)]
    id: i64,
    status: String,
    claimed_by: Option<String>,
}

fn jobs(n: i64) -> Vec<Job> {
    (1..=n).map(|id| Job { id, status: "queued".into(), claimed_by: None }).collect()
}

/// Whether `e` is the lost race of a versioned write at `expected`.
fn is_stale(e: &Error, expected: i64) -> bool {
    matches!(e, Error::StaleVersion { model: "Doc", expected: x, .. } if *x == expected)
}

store_test!(versioned_writes_check_and_bump_the_version, |db| async move {
    db.create_all(&[Doc::SCHEMA]).await?;
    let first = doc("a").insert(&db).await?;
    assert_eq!(first.version, 1, "an insert of version 0 stores version 1");
    let from_dto = NewDoc { title: "dto".into() }.insert(&db).await?;
    assert_eq!(from_dto.version, 1, "a create DTO has no version field: the insert sets it");

    // update: checked and bumped; a copy read before is stale and writes nothing.
    let mut fresh = first.clone();
    fresh.title = "b".into();
    let second = fresh.update(&db).await?;
    assert_eq!((second.title.as_str(), second.version), ("b", 2));
    let mut stale = first.clone();
    stale.title = "lost".into();
    let e = stale.update(&db).await.unwrap_err();
    assert!(is_stale(&e, 1), "{e:?}");
    assert_eq!(e.class(), ErrorClass::Conflict);
    assert!(matches!(&e, Error::StaleVersion { key: polystore::Value::I64(k), .. } if *k == first.id));
    assert_eq!(Doc::find(&db, first.id).await?, second, "the stale update wrote nothing");

    // patch DTOs carry the version they expect (a required field).
    let e = DocPatch { title: Some("lost".into()), version: 1 }.update(&db, first.id).await.unwrap_err();
    assert!(is_stale(&e, 1), "{e:?}");
    let third = DocPatch { title: Some("c".into()), version: 2 }.update(&db, first.id).await?;
    assert_eq!((third.title.as_str(), third.version), ("c", 3));
    let touched = DocPatch { title: None, version: 3 }.update(&db, first.id).await?;
    assert_eq!((touched.title.as_str(), touched.version), ("c", 4), "an empty patch still checks and bumps");

    // delete of a stale copy: refused, the row stays.
    let e = second.delete(&db).await.unwrap_err();
    assert!(is_stale(&e, 2), "{e:?}");
    assert!(Doc::get(&db, first.id).await?.is_some());

    // bulk updates bump the version, so copies read before them go stale.
    Doc::query().filter(Doc::ID.eq(first.id)).update_many(&db, [Doc::TITLE.set("bulk")]).await?;
    let bulk = Doc::find(&db, first.id).await?;
    assert_eq!((bulk.title.as_str(), bulk.version), ("bulk", 5));
    assert!(is_stale(&touched.update(&db).await.unwrap_err(), 4));

    // upsert: a conflicting row is updated only at the version the row holds.
    let mut up = bulk.clone();
    up.title = "upserted".into();
    let upserted = up.upsert(&db).await?;
    assert_eq!((upserted.title.as_str(), upserted.version), ("upserted", 6));
    let e = up.upsert(&db).await.unwrap_err();
    assert!(is_stale(&e, 5), "{e:?}");
    assert_eq!(Doc::find(&db, first.id).await?, upserted);

    // delete at the current version; afterwards a write is NotFound, not stale.
    upserted.delete(&db).await?;
    assert_err!(upserted.update(&db).await, Error::NotFound { model: "Doc" });
    assert_err!(upserted.delete(&db).await, Error::NotFound { model: "Doc" });
    assert_err!(DocPatch { title: None, version: 6 }.update(&db, first.id).await, Error::NotFound { model: "Doc" });
    Ok::<(), Error>(())
});

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "lc_notes")]
struct Note {
    #[model(primary_key)]
    id: i64,
    #[model(unique)]
    slug: String,
    body: String,
    #[model(version)]
    version: i32,
}

store_test!(versioned_upsert_on_a_unique_field_checks_the_version, |db| async move {
    db.create_all(&[Note::SCHEMA]).await?;
    let note = |body: &str, version: i32| Note { id: 1, slug: "intro".into(), body: body.into(), version };
    let first = note("one", 0).upsert_on(&db, &[Note::SLUG.into()]).await?;
    assert_eq!(first.version, 1, "a new row is stored at the next version");
    let second = note("two", 1).upsert_on(&db, &[Note::SLUG.into()]).await?;
    assert_eq!((second.body.as_str(), second.version), ("two", 2));
    let e = note("stale", 1).upsert_on(&db, &[Note::SLUG.into()]).await.unwrap_err();
    assert!(matches!(e, Error::StaleVersion { model: "Note", expected: 1, .. }), "{e:?}");
    assert_eq!(Note::query().all(&db).await?, vec![second], "the stale upsert wrote nothing");
    Ok::<(), Error>(())
});

/// Two writers start from the same copy of a row, `ROUNDS` times: exactly one wins each
/// round, the loser writes nothing, and a cached read always shows the winner's row.
const ROUNDS: i64 = 25;

store_test!(racing_writers_on_one_versioned_row_exactly_one_wins, |db| async move {
    db.create_all(&[Doc::SCHEMA]).await?;
    let db = db.with_cache(Cache::memory());
    let mut current = doc("start").insert(&db).await?;
    for round in 0..ROUNDS {
        // Warm the cache with the row both writers read.
        assert_eq!(Doc::get_cached(&db, current.id).await?, Some(current.clone()));
        let (mut left, mut right) = (current.clone(), current.clone());
        left.title = format!("left {round}");
        right.title = format!("right {round}");
        if round % 3 == 2 {
            // A delete races the update: exactly one of them happens.
            let (l, r) = tokio::join!(left.update(&db), right.delete(&db));
            match (l, r) {
                (Ok(w), Err(e)) if is_stale(&e, current.version) => {
                    assert_eq!(Doc::get_cached(&db, current.id).await?, Some(w.clone()), "round {round}");
                    current = w;
                }
                (Err(Error::NotFound { model: "Doc" }), Ok(())) => {
                    assert_eq!(Doc::get_cached(&db, current.id).await?, None, "round {round}: deleted");
                    current = doc("again").insert(&db).await?;
                }
                other => panic!("round {round}: expected exactly one winner, got {other:?}"),
            }
            continue;
        }
        let (l, r) = tokio::join!(left.update(&db), right.update(&db));
        let winner = match (l, r) {
            (Ok(w), Err(e)) | (Err(e), Ok(w)) => {
                assert!(is_stale(&e, current.version), "round {round}: {e:?}");
                w
            }
            (l, r) => panic!("round {round}: expected exactly one winner, got {l:?} and {r:?}"),
        };
        assert_eq!(winner.version, current.version + 1);
        assert_eq!(Doc::find(&db, current.id).await?, winner, "round {round}: the store holds the winner");
        assert_eq!(Doc::get_cached(&db, current.id).await?, Some(winner.clone()), "round {round}: cache");
        current = winner;
    }
    Ok::<(), Error>(())
});

/// `workers` workers claim `batch` jobs at a time until none is left; returns who got which.
async fn drain<E>(db: &E, workers: usize, batch: u64) -> BTreeMap<i64, Vec<String>>
where
    for<'a> &'a E: Executor,
    E: Sync,
{
    let runs = (0..workers).map(|w| async move {
        let name = format!("w{w}");
        let mut got = Vec::new();
        loop {
            let claimed = Job::query()
                .filter(Job::STATUS.eq("queued"))
                .order_by(Job::ID.asc())
                .claim(db, batch, [Job::STATUS.set("running"), Job::CLAIMED_BY.set(name.as_str())])
                .await
                .expect("claim");
            if claimed.is_empty() {
                return (name, got);
            }
            for job in claimed {
                assert_eq!((job.status.as_str(), job.claimed_by.as_deref()), ("running", Some(name.as_str())));
                got.push(job.id);
            }
            tokio::task::yield_now().await;
        }
    });
    let mut by_job: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for (name, ids) in futures_util::future::join_all(runs).await {
        for id in ids {
            by_job.entry(id).or_default().push(name.clone());
        }
    }
    by_job
}

/// Every job claimed exactly once, by the worker the store says claimed it.
async fn assert_each_claimed_once<E>(db: &E, by_job: &BTreeMap<i64, Vec<String>>, n: i64)
where
    for<'a> &'a E: Executor,
{
    assert_eq!(by_job.len() as i64, n, "every job was claimed");
    for (id, who) in by_job {
        assert_eq!(who.len(), 1, "job {id} was claimed by {who:?}");
    }
    let stored = Job::query().order_by(Job::ID.asc()).all(db).await.unwrap();
    for job in stored {
        assert_eq!(job.status, "running");
        assert_eq!(job.claimed_by.as_ref(), by_job[&job.id].first(), "job {}", job.id);
    }
}

const JOBS: i64 = 60;

store_test!(concurrent_workers_claim_every_job_exactly_once, |db| async move {
    db.create_all(&[Job::SCHEMA]).await?;
    Job::insert_many(&db, &jobs(JOBS)).await?;
    let by_job = drain(&db, 6, 4).await;
    assert_each_claimed_once(&db, &by_job, JOBS).await;
    // A claim with nothing left returns nothing; one without assignments is refused.
    assert!(Job::query().filter(Job::STATUS.eq("queued")).claim(&db, 5, [Job::STATUS.set("x")]).await?.is_empty());
    assert_err!(Job::query().claim(&db, 1, Vec::<polystore::query::Assignment<Job>>::new()).await, Error::Config(_));
    if db.kind() != StoreKind::Mongo {
        // The claim's order is the query's: the lowest queued ids first.
        Job::query().update_many(&db, [Job::STATUS.set("queued")]).await?;
        let first = Job::query().order_by(Job::ID.desc()).claim(&db, 3, [Job::STATUS.set("running")]).await?;
        assert_eq!(first.iter().map(|j| j.id).collect::<Vec<_>>(), vec![JOBS, JOBS - 1, JOBS - 2]);
    }
    Ok::<(), Error>(())
});

/// A SQLite database in a file, with several connections (the shared in-memory test
/// database has one, so nothing there ever waits for a lock).
async fn sqlite_file() -> (Db, std::path::PathBuf) {
    let path = std::env::temp_dir().join(format!("{}.db", polystore_tests::unique_name("lifecycle")));
    let cfg = PoolConfig { max_connections: 4, acquire_timeout: Duration::from_secs(10), ..PoolConfig::default() };
    let db = Db::connect_with(&format!("sqlite://{}", path.display()), cfg).await.expect("open a SQLite file");
    (db, path)
}

async fn drop_sqlite_file(db: Db, path: std::path::PathBuf) {
    db.close().await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_file_workers_claim_every_job_exactly_once() {
    let (db, path) = sqlite_file().await;
    db.create_all(&[Job::SCHEMA]).await.unwrap();
    Job::insert_many(&db, &jobs(JOBS)).await.unwrap();
    let by_job = drain(&db, 4, 3).await;
    assert_each_claimed_once(&db, &by_job, JOBS).await;
    drop_sqlite_file(db, path).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_file_racing_writers_exactly_one_wins() {
    let (db, path) = sqlite_file().await;
    db.create_all(&[Doc::SCHEMA]).await.unwrap();
    let mut current = doc("start").insert(&db).await.unwrap();
    for round in 0..ROUNDS {
        let (mut left, mut right) = (current.clone(), current.clone());
        left.title = format!("left {round}");
        right.title = format!("right {round}");
        let (l, r) = tokio::join!(
            tokio::spawn({
                let db = db.clone();
                async move { left.update(&db).await }
            }),
            tokio::spawn({
                let db = db.clone();
                async move { right.update(&db).await }
            })
        );
        current = match (l.unwrap(), r.unwrap()) {
            (Ok(w), Err(e)) | (Err(e), Ok(w)) if is_stale(&e, current.version) => w,
            other => panic!("round {round}: expected exactly one winner, got {other:?}"),
        };
    }
    assert_eq!(Doc::find(&db, current.id).await.unwrap().version, 1 + ROUNDS);
    drop_sqlite_file(db, path).await;
}

/// Whether `fut` is still pending after a moment (it waits for a lock).
async fn still_waiting<T>(handle: &tokio::task::JoinHandle<T>) -> bool {
    tokio::time::sleep(Duration::from_millis(300)).await;
    !handle.is_finished()
}

/// Row locks on a SQL store: a locked row blocks other writers and lockers until the
/// transaction ends; `nowait` fails at once; `skip_locked` passes locked rows over (PostgreSQL)
/// or waits for the database's write lock (SQLite, which has no row locks).
async fn row_locks(db: Db) {
    db.create_all(&[Job::SCHEMA]).await.unwrap();
    Job::insert_many(&db, &jobs(3)).await.unwrap();
    let postgres = db.kind() == StoreKind::Postgres;

    let mut holder = db.begin().await.unwrap();
    let held = Job::query().filter(Job::ID.eq(1)).for_update().one(&mut holder).await.unwrap();
    assert_eq!(held.id, 1);

    // nowait: fails at once, as a transient error.
    let mut other = db.begin().await.unwrap();
    let started = std::time::Instant::now();
    let e = Job::query().filter(Job::ID.eq(1)).for_update().nowait().all(&mut other).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Transient, "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "nowait did not wait");
    drop(other);

    if postgres {
        // skip_locked: the other rows, not the held one.
        let mut other = db.begin().await.unwrap();
        let free = Job::query().order_by(Job::ID.asc()).for_update().skip_locked().all(&mut other).await.unwrap();
        assert_eq!(free.iter().map(|j| j.id).collect::<Vec<_>>(), vec![2, 3]);
        // for_share on a row nobody holds works next to another share lock.
        let mut sharer = db.begin().await.unwrap();
        assert!(Job::query().filter(Job::ID.eq(2)).for_share().nowait().first(&mut sharer).await.is_err());
        drop(sharer);
        other.rollback().await.unwrap();
        let mut a = db.begin().await.unwrap();
        let mut b = db.begin().await.unwrap();
        Job::query().filter(Job::ID.eq(2)).for_share().one(&mut a).await.unwrap();
        Job::query().filter(Job::ID.eq(2)).for_share().nowait().one(&mut b).await.unwrap();
        let e = {
            let mut c = db.begin().await.unwrap();
            Job::query().filter(Job::ID.eq(2)).for_update().nowait().one(&mut c).await.unwrap_err()
        };
        assert_eq!(e.class(), ErrorClass::Transient, "a share lock blocks for_update: {e:?}");
        drop((a, b));
    }

    // A plain write and another locker both wait for the holder.
    let writer = tokio::spawn({
        let db = db.clone();
        async move { Job::query().filter(Job::ID.eq(1)).update_many(&db, [Job::STATUS.set("done")]).await }
    });
    let locker = tokio::spawn({
        let db = db.clone();
        async move {
            let mut tx = db.begin().await?;
            let rows = Job::query().filter(Job::ID.eq(1)).for_update().skip_locked().all(&mut tx).await?;
            tx.commit().await?;
            Ok::<_, Error>(rows)
        }
    });
    assert!(still_waiting(&writer).await, "the update waits for the row lock");
    if !postgres {
        assert!(!locker.is_finished(), "on SQLite a locking read waits for the write lock");
    }
    let mut changed = held.clone();
    changed.status = "held".into();
    changed.update(&mut holder).await.unwrap();
    holder.commit().await.unwrap();
    assert_eq!(writer.await.unwrap().unwrap(), 1);
    let seen = locker.await.unwrap().unwrap();
    if !postgres {
        assert_eq!(seen.len(), 1, "after the holder commits the row is there to lock");
    }
    assert_eq!(Job::find(&db, 1).await.unwrap().status, "done", "the waiting update ran after the holder");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_row_locks() {
    let test_db = polystore_tests::pg().await;
    row_locks(test_db.db().clone()).await;
    test_db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_row_locks() {
    let (db, path) = sqlite_file().await;
    row_locks(db.clone()).await;
    drop_sqlite_file(db, path).await;
}
