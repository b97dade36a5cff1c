//! Read replicas and PgBouncer on real servers: the PostgreSQL 15 primary (port 5450) with two
//! streaming replicas (5451, 5452) and PgBouncer in transaction pooling mode (6432) that
//! `scripts/dev-services` starts. The tests pause WAL replay on the replicas, stop one, and
//! count statements per server ([`Db::stats`]) to show where every operation went.
//!
//! The tests share the replica set, so they take turns ([`SERIAL`]). The Redis Cluster tests
//! use the cluster with replicas on 7201-7206 (`REDIS_CLUSTER_HA_URLS`).

use std::process::Command;
use std::time::{Duration, Instant};

use futures_util::TryStreamExt as _;
use polystore::PoolConfig;
use polystore::prelude::*;
use polystore::replica::{Balance, Lsn, ReplicaOptions, ReplicatedDb, SessionToken};
use polystore_tests::{execute_sql, query_text, service_unavailable};

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "repl_items")]
struct Item {
    #[model(primary_key, generated)]
    id: i64,
    name: String,
    qty: i64,
}

fn item(name: &str, qty: i64) -> Item {
    Item { id: 0, name: name.into(), qty }
}

/// One test at a time on the shared replica set.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long a test waits for replication to catch up before failing.
const CATCH_UP: Duration = Duration::from_secs(20);

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty()).unwrap_or_else(|| default.to_owned())
}

fn primary_url() -> String {
    env_or("POLYSTORE_PG_PRIMARY_URL", "postgres://postgres@127.0.0.1:5450/polystore_test")
}

fn replica_urls() -> String {
    env_or(
        "POLYSTORE_PG_REPLICA_URLS",
        "postgres://postgres@127.0.0.1:5451/polystore_test,postgres://postgres@127.0.0.1:5452/polystore_test",
    )
}

fn bouncer_url() -> String {
    env_or("POLYSTORE_PGBOUNCER_URL", "postgres://postgres@127.0.0.1:6432/polystore_test")
}

/// The replica set with `configure` applied to the builder; fails (naming dev-services) when
/// a server is missing. Resumes replay (a failed earlier run may have left it paused), makes
/// a fresh `repl_items` table and waits until both replicas have it.
async fn replica_set(
    configure: impl FnOnce(polystore::replica::Builder) -> polystore::replica::Builder,
) -> ReplicatedDb {
    let primary = primary_url();
    let urls = replica_urls();
    let builder = ReplicatedDb::builder()
        .primary_pool(PoolConfig {
            max_connections: 5,
            acquire_timeout: Duration::from_secs(5),
            ..PoolConfig::default()
        })
        .primary(primary.clone())
        .replica_urls(&urls)
        .check_interval(Duration::from_secs(3600));
    let db = match configure(builder).connect().await {
        Ok(db) => db,
        Err(e) => service_unavailable("PostgreSQL replica set (primary)", &primary, e),
    };
    assert_eq!(db.replicas().len(), 2, "two replica URLs expected in POLYSTORE_PG_REPLICA_URLS: {urls}");
    for r in db.replicas() {
        if let Err(e) = sqlx::raw_sql("SELECT pg_wal_replay_resume()").execute(r.db().pg_pool().unwrap()).await {
            service_unavailable("PostgreSQL replica", r.label(), e);
        }
    }
    db.primary().drop_all(&[Item::SCHEMA]).await.unwrap();
    db.primary().create_all(&[Item::SCHEMA]).await.unwrap();
    caught_up(&db).await;
    db
}

/// Waits (polling) until every replica has replayed the primary's current position and is
/// healthy.
async fn caught_up(db: &ReplicatedDb) {
    let target = query_text(db.primary(), "SELECT pg_current_wal_insert_lsn()::text").await.unwrap();
    let target: Lsn = target.parse().unwrap();
    let deadline = Instant::now() + CATCH_UP;
    loop {
        db.check_health().await;
        if db.replicas().iter().all(|r| r.is_healthy() && r.replay_lsn() >= target) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the replicas did not reach {target} within {CATCH_UP:?}: {:?} (run scripts/dev-services)",
            db.replicas()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn set_replay(r: &polystore::replica::Replica, paused: bool) {
    let sql = if paused { "SELECT pg_wal_replay_pause()" } else { "SELECT pg_wal_replay_resume()" };
    sqlx::raw_sql(sql).execute(r.db().pg_pool().unwrap()).await.unwrap();
}

/// Statements run so far: primary, replica 1, replica 2.
fn counts(db: &ReplicatedDb) -> [u64; 3] {
    [
        db.primary().stats().statements(),
        db.replicas()[0].db().stats().statements(),
        db.replicas()[1].db().stats().statements(),
    ]
}

/// Statements run since `before`, per server.
fn since(db: &ReplicatedDb, before: [u64; 3]) -> [u64; 3] {
    let now = counts(db);
    [now[0] - before[0], now[1] - before[1], now[2] - before[2]]
}

fn on_primary(db: &ReplicatedDb, s: &polystore::replica::Session<'_>) -> bool {
    std::ptr::eq(s.last_target(), db.primary())
}

#[tokio::test]
async fn a_write_is_read_back_while_replay_is_paused_and_reads_return_to_the_replicas() {
    let _turn = SERIAL.lock().await;
    let db = replica_set(|b| b).await;
    for r in db.replicas() {
        set_replay(r, true).await;
    }

    let mut s = db.session();
    let before = counts(&db);
    let written = item("fresh", 1).insert(&mut s).await.unwrap();
    assert_eq!(since(&db, before), [1, 0, 0], "the insert ran on the primary");

    // Read back at once, several shapes: all on the primary, all see the row.
    let before = counts(&db);
    assert_eq!(Item::find(&mut s, written.id).await.unwrap().name, "fresh");
    assert_eq!(Item::query().count(&mut s).await.unwrap(), 1);
    let names: Vec<String> = Item::query().select(Item::NAME).all(&mut s).await.unwrap();
    assert_eq!(names, ["fresh"]);
    assert!(Item::query().filter(Item::QTY.eq(1)).exists(&mut s).await.unwrap());
    assert_eq!(since(&db, before), [4, 0, 0], "reads after the write went to the primary");
    // The replicas really are behind: a read there does not see the row.
    assert_eq!(Item::query().count(db.replicas()[0].db()).await.unwrap(), 0);
    assert_eq!(Item::query().count(db.replicas()[1].db()).await.unwrap(), 0);

    // The token carries the floor to another request.
    let token = s.token().await.unwrap();
    assert!(token.lsn() > Lsn(0));
    let carried: SessionToken = token.to_string().parse().unwrap();
    assert_eq!(carried, token);
    let mut next_request = db.session_after(carried);
    let before = counts(&db);
    assert_eq!(Item::find(&mut next_request, written.id).await.unwrap().qty, 1);
    assert_eq!(since(&db, before), [1, 0, 0], "a session continued from the token reads on the primary");
    // Without the token a session reads from a replica, and misses the row.
    let mut stranger = db.session();
    let before = counts(&db);
    assert_eq!(Item::query().count(&mut stranger).await.unwrap(), 0);
    assert_eq!(since(&db, before)[0], 0, "a session without writes reads from a replica");

    // Per-session overrides.
    let before = counts(&db);
    stranger.on_primary();
    assert_eq!(Item::query().count(&mut stranger).await.unwrap(), 1);
    s.on_replica();
    assert_eq!(Item::query().count(&mut s).await.unwrap(), 0, "on_replica accepts stale reads");
    s.read_your_writes();
    assert_eq!(since(&db, before)[0], 1);

    // Replay resumes: reads go back to the replicas once they have caught up, and see the row.
    for r in db.replicas() {
        set_replay(r, false).await;
    }
    let deadline = Instant::now() + CATCH_UP;
    loop {
        let found = Item::find(&mut s, written.id).await.unwrap();
        assert_eq!(found.name, "fresh");
        if !on_primary(&db, &s) {
            break;
        }
        assert!(Instant::now() < deadline, "reads did not return to the replicas: {:?}", db.replicas());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let before = counts(&db);
    for _ in 0..4 {
        assert_eq!(Item::find(&mut s, written.id).await.unwrap().name, "fresh");
    }
    assert_eq!(since(&db, before)[0], 0, "caught-up replicas serve the session's reads");
    db.primary().drop_all(&[Item::SCHEMA]).await.unwrap();
}

/// Read-your-writes under live replication and concurrency: many sessions write and read
/// their own rows back at once, while the replicas replay at their own pace; every read must
/// see the session's last write, also in a session continued from a token. Reads that the
/// replicas could serve did go there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sessions_always_read_their_own_writes() {
    let _turn = SERIAL.lock().await;
    let db = replica_set(|b| b.balance(Balance::LeastOutstanding)).await;
    let before = counts(&db);
    let tasks: Vec<_> = (0..12)
        .map(|t| {
            let db = db.clone();
            tokio::spawn(async move {
                let mut s = db.session();
                for i in 0..15i64 {
                    let mut row = item(&format!("s{t}-{i}"), i).insert(&mut s).await.unwrap();
                    assert_eq!(Item::find(&mut s, row.id).await.unwrap().qty, i, "own insert");
                    row.qty = i + 1000;
                    row.update(&mut s).await.unwrap();
                    // Read it back a few times: once the session knows its position and a
                    // replica has replayed it, the reads move there, and still see the update.
                    for _ in 0..6 {
                        assert_eq!(Item::find(&mut s, row.id).await.unwrap().qty, i + 1000, "own update");
                        tokio::task::yield_now().await;
                    }
                    let mine = Item::query().filter(Item::NAME.eq(format!("s{t}-{i}"))).count(&mut s).await.unwrap();
                    assert_eq!(mine, 1);
                    if i % 5 == 4 {
                        let token = s.token().await.unwrap().to_string();
                        let mut next = db.session_after(token.parse().unwrap());
                        let seen =
                            Item::query().filter(Item::NAME.eq(format!("s{t}-{i}"))).all(&mut next).await.unwrap();
                        assert_eq!(seen.len(), 1, "a continued session sees the write");
                        assert_eq!(seen[0].qty, i + 1000);
                        Item::query().filter(Item::ID.eq(row.id)).delete_many(&mut next).await.unwrap();
                        assert!(
                            !Item::query().filter(Item::ID.eq(row.id)).exists(&mut next).await.unwrap(),
                            "own delete"
                        );
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let [p, r1, r2] = since(&db, before);
    assert_eq!(Item::query().count(db.primary()).await.unwrap(), 12 * 12);
    eprintln!("statements: primary {p}, replicas {r1} + {r2}");
    assert!(r1 + r2 > 0, "some reads after writes were served by replicas that had replayed them");
    db.primary().drop_all(&[Item::SCHEMA]).await.unwrap();
}

#[tokio::test]
async fn writes_transactions_and_reads_are_counted_where_they_ran() {
    let _turn = SERIAL.lock().await;
    let db = replica_set(|b| b).await;
    let mut s = db.session();

    let before = counts(&db);
    let mut a = item("a", 1).insert(&mut s).await.unwrap();
    a.qty = 2;
    a.update(&mut s).await.unwrap();
    Item::query().filter(Item::ID.eq(a.id)).update_many(&mut s, [Item::QTY.set(3)]).await.unwrap();
    let mut keyed = item("keyed", 9);
    keyed.id = 100;
    keyed.insert_with_key(&mut s).await.unwrap(); // lock, insert, advance the sequence: one transaction
    Item::query().filter(Item::ID.eq(keyed.id)).delete_many(&mut s).await.unwrap();
    let [p, r1, r2] = since(&db, before);
    assert!(p >= 5, "every write ran on the primary ({p} statements)");
    assert_eq!((r1, r2), (0, 0), "no write reached a replica");

    // A transaction is the primary's.
    let mut tx = db.primary().begin().await.unwrap();
    item("in tx", 4).insert(&mut tx).await.unwrap();
    assert_eq!(Item::query().count(&mut tx).await.unwrap(), 2);
    tx.commit().await.unwrap();

    // Once the replicas have the writes, a new session's reads are theirs: weighted turns.
    caught_up(&db).await;
    let weighted = ReplicatedDb::builder()
        .primary_db(db.primary().clone())
        .replica_db(db.replicas()[0].db().clone(), 1)
        .replica_db(db.replicas()[1].db().clone(), 3)
        .check_interval(Duration::from_secs(3600))
        .connect()
        .await
        .unwrap();
    let mut reader = weighted.session();
    let before = counts(&db);
    for _ in 0..40 {
        assert_eq!(Item::query().filter(Item::NAME.eq("a")).count(&mut reader).await.unwrap(), 1);
    }
    assert_eq!(since(&db, before), [0, 10, 30], "round-robin by weight 1:3");

    // Each replica has a pool of its own size.
    let urls: Vec<String> = replica_urls().split(',').map(str::to_owned).collect();
    let sized = ReplicatedDb::builder()
        .primary_db(db.primary().clone())
        .replica_with(
            &urls[0],
            ReplicaOptions { weight: 1, pool: PoolConfig { max_connections: 2, ..PoolConfig::default() } },
        )
        .replica_with(
            &urls[1],
            ReplicaOptions { weight: 1, pool: PoolConfig { max_connections: 7, ..PoolConfig::default() } },
        )
        .check_interval(Duration::from_secs(3600))
        .connect()
        .await
        .unwrap();
    let sizes: Vec<u32> =
        sized.replicas().iter().map(|r| r.db().pg_pool().unwrap().options().get_max_connections()).collect();
    assert_eq!(sizes, [2, 7]);
    assert!(sized.replicas().iter().all(|r| r.is_healthy()));

    // Streams read page by page, each page a routed read on a replica.
    let before = counts(&db);
    let all: Vec<Item> = Item::query().order_by(Item::ID.asc()).stream(&mut reader).try_collect().await.unwrap();
    assert_eq!(all.len(), 2);
    let [p, r1, r2] = since(&db, before);
    assert_eq!(p, 0);
    assert!(r1 + r2 >= 1);
    db.primary().drop_all(&[Item::SCHEMA]).await.unwrap();
}

#[tokio::test]
async fn least_outstanding_avoids_a_busy_replica_and_alternates_between_idle_ones() {
    let _turn = SERIAL.lock().await;
    let db = replica_set(|b| b.balance(Balance::LeastOutstanding)).await;
    let mut s = db.session();

    // The set-up's health checks ran on replica 2's pool, and their connections go back to it
    // in the background. Only statements and transactions under way count, not connections
    // on their way back, so no waiting is needed here or after the rollback below.
    // A transaction holds a connection of replica 1: it is busy.
    let mut held = db.replicas()[0].db().begin().await.unwrap();
    assert_eq!(Item::query().count(&mut held).await.unwrap(), 0);
    let before = counts(&db);
    for _ in 0..10 {
        Item::query().count(&mut s).await.unwrap();
    }
    assert_eq!(since(&db, before), [0, 0, 10], "every read avoided the busy replica");
    // Ended: replica 1 is idle at once, while its connection still travels back to the pool.
    held.rollback().await.unwrap();

    let before = counts(&db);
    for _ in 0..10 {
        Item::query().count(&mut s).await.unwrap();
    }
    assert_eq!(since(&db, before), [0, 5, 5], "idle replicas take turns");

    // A statement cancelled while it runs (its future dropped mid-query) gives its count back
    // at once: replica 1 is not avoided afterwards.
    let replica1 = db.replicas()[0].db().clone();
    let sleep = polystore::query::raw::<Item>("SELECT pg_sleep(1)").execute(&replica1);
    assert!(tokio::time::timeout(Duration::from_millis(200), sleep).await.is_err(), "the sleep was cut short");
    let before = counts(&db);
    for _ in 0..10 {
        Item::query().count(&mut s).await.unwrap();
    }
    assert_eq!(since(&db, before), [0, 5, 5], "a cancelled statement left its replica counted as busy");

    // Concurrent sessions: everything succeeds and the work is spread over both replicas.
    let before = counts(&db);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move {
                let mut s = db.session();
                for _ in 0..10 {
                    Item::query().count(&mut s).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let [p, r1, r2] = since(&db, before);
    assert_eq!((p, r1 + r2), (0, 80));
    assert!(r1 > 0 && r2 > 0, "both replicas served reads: {r1} and {r2}");
    db.primary().drop_all(&[Item::SCHEMA]).await.unwrap();
}

#[tokio::test]
async fn a_lagging_replica_leaves_the_rotation_and_returns() {
    let _turn = SERIAL.lock().await;
    let db = replica_set(|b| b.max_lag_bytes(256 * 1024)).await;
    let lagging = &db.replicas()[0];
    set_replay(lagging, true).await;
    // About 2 MB of WAL the paused replica does not replay.
    execute_sql(
        db.primary(),
        "INSERT INTO repl_items (name, qty) SELECT md5(g::text), g FROM generate_series(1, 20000) g",
    )
    .await;
    let deadline = Instant::now() + CATCH_UP;
    loop {
        db.check_health().await;
        if !lagging.is_healthy() && db.replicas()[1].is_healthy() {
            break;
        }
        assert!(Instant::now() < deadline, "expected replica 1 lagging, replica 2 healthy: {:?}", db.replicas());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(lagging.lag_bytes() > 256 * 1024);
    let why = lagging.last_error().unwrap();
    assert!(why.contains("bytes of WAL behind"), "{why}");

    let mut s = db.session();
    let before = counts(&db);
    for _ in 0..6 {
        assert_eq!(Item::query().count(&mut s).await.unwrap(), 20000);
    }
    assert_eq!(since(&db, before), [0, 0, 6], "the lagging replica was skipped");

    set_replay(lagging, false).await;
    caught_up(&db).await;
    let before = counts(&db);
    for _ in 0..6 {
        Item::query().count(&mut s).await.unwrap();
    }
    assert_eq!(since(&db, before), [0, 3, 3], "back in the rotation");
    db.primary().drop_all(&[Item::SCHEMA]).await.unwrap();
}

/// Runs `pg_ctl` as the postgres OS user on the data directory `dir`.
fn pg_ctl(dir: &str, args: &[&str]) {
    let bin = std::env::var("POLYSTORE_PG_REPLICA_BIN").unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".into());
    let root = Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false);
    let mut cmd = if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]);
        c
    } else {
        let mut c = Command::new("sudo");
        c.args(["-n", "-u", "postgres", "--"]);
        c
    };
    let status = cmd
        .arg(format!("{bin}/pg_ctl"))
        .args(["-D", dir, "-w", "-t", "30"])
        .args(args)
        .current_dir("/")
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run pg_ctl");
    assert!(status.success(), "pg_ctl {args:?} on {dir} failed");
}

/// Starts the stopped replica again when the test ends, however it ends.
struct Restart(String);

impl Drop for Restart {
    fn drop(&mut self) {
        pg_ctl(&self.0, &["-l", &format!("{}/../pg-logs/restart.log", self.0), "start"]);
    }
}

#[tokio::test]
async fn a_stopped_replica_leaves_reads_working_and_no_replica_means_the_primary() {
    let _turn = SERIAL.lock().await;
    let db = replica_set(|b| b).await;
    item("kept", 1).insert(db.primary()).await.unwrap();
    caught_up(&db).await;

    let stopped = &db.replicas()[1];
    let dir = query_text(stopped.db(), "SHOW data_directory").await.unwrap();
    let restart = Restart(dir.clone());
    pg_ctl(&dir, &["-m", "fast", "stop"]);
    // Before a health check notices: the read sent to the stopped replica loses its server,
    // runs once more on the other replica (which has replayed as far: counted there) and takes
    // the stopped one out of the rotation.
    let mut early = db.session();
    let before = counts(&db);
    for _ in 0..2 {
        assert_eq!(Item::query().count(&mut early).await.unwrap(), 1);
    }
    let [p, r1, r2] = since(&db, before);
    assert_eq!((p, r1), (0, 2), "one read on the live replica, one retried there");
    assert!(r2 <= 1, "at most the failed attempt counts on the stopped replica: {r2}");
    assert!(!stopped.is_healthy(), "the failed read took the replica out");
    let why = stopped.last_error().unwrap();
    assert!(why.contains("lost the server"), "{why}");
    // A write sent straight to the stopped replica's handle is not retried anywhere.
    let err = item("nowhere", 0).insert(stopped.db()).await.unwrap_err();
    assert!(matches!(err.class(), polystore::ErrorClass::Transient | polystore::ErrorClass::Unavailable), "{err:?}");
    assert_eq!(Item::query().filter(Item::NAME.eq("nowhere")).count(db.primary()).await.unwrap(), 0);
    db.check_health().await;
    assert!(!stopped.is_healthy(), "a stopped replica is out of the rotation");
    assert!(db.replicas()[0].is_healthy());

    let mut s = db.session();
    let before = counts(&db);
    for _ in 0..6 {
        assert_eq!(Item::query().count(&mut s).await.unwrap(), 1);
    }
    assert_eq!(since(&db, before), [0, 6, 0], "reads went to the replica still up");

    drop(restart);
    caught_up(&db).await;
    let before = counts(&db);
    for _ in 0..6 {
        Item::query().count(&mut s).await.unwrap();
    }
    assert_eq!(since(&db, before), [0, 3, 3], "the restarted replica is back");

    // The other replica is behind the session's floor (its replay paused before a write the
    // stopped one had replayed): the retry goes to the primary, and sees the write.
    let live = &db.replicas()[0];
    set_replay(live, true).await;
    item("late", 2).insert(db.primary()).await.unwrap();
    let target: Lsn =
        query_text(db.primary(), "SELECT pg_current_wal_insert_lsn()::text").await.unwrap().parse().unwrap();
    let deadline = Instant::now() + CATCH_UP;
    while stopped.replay_lsn() < target {
        assert!(Instant::now() < deadline, "replica 2 did not replay the write: {stopped:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
        db.check_health().await;
    }
    assert!(live.replay_lsn() < target, "replica 1 is paused behind the write: {live:?}");
    let restart = Restart(dir.clone());
    pg_ctl(&dir, &["-m", "fast", "stop"]);
    let mut after = db.session_after(SessionToken::new(target));
    let before = counts(&db);
    assert_eq!(Item::query().count(&mut after).await.unwrap(), 2, "the retry saw the session's write");
    let [p, r1, _] = since(&db, before);
    assert_eq!((p, r1), (1, 0), "retried on the primary, not on the replica behind the floor");
    assert!(!stopped.is_healthy());
    set_replay(live, false).await;
    drop(restart);
    caught_up(&db).await;

    // No replica up at all (nothing listens on these ports): everything goes to the primary.
    let lonely = ReplicatedDb::builder()
        .primary_db(db.primary().clone())
        .replica_urls("postgres://postgres@127.0.0.1:1/none,postgres://postgres@127.0.0.1:2/none")
        .check_timeout(Duration::from_secs(1))
        .check_interval(Duration::from_secs(3600))
        .connect()
        .await
        .unwrap();
    assert!(lonely.replicas().iter().all(|r| !r.is_healthy() && r.last_error().is_some()));
    let mut s = lonely.session();
    let before = db.primary().stats().statements();
    assert_eq!(Item::query().count(&mut s).await.unwrap(), 2);
    assert_eq!(db.primary().stats().statements() - before, 1);
    assert!(std::ptr::eq(lonely.any_replica(), lonely.primary()));
    db.primary().drop_all(&[Item::SCHEMA]).await.unwrap();
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "bouncer_items")]
struct Bounced {
    #[model(primary_key, generated)]
    id: i64,
    name: String,
    qty: i64,
}

async fn bouncer(pooling: bool) -> Db {
    let url = bouncer_url();
    let cfg = PoolConfig { max_connections: 4, acquire_timeout: Duration::from_secs(5), ..PoolConfig::default() };
    match Db::connect_with(&url, cfg).await {
        Ok(db) if pooling => db.with_transaction_pooling(),
        Ok(db) => db,
        Err(e) => service_unavailable("PgBouncer", &url, e),
    }
}

#[tokio::test]
async fn pgbouncer_transaction_mode_runs_crud_queries_and_transactions_concurrently() {
    let _turn = SERIAL.lock().await;
    let db = bouncer(true).await;
    db.drop_all(&[Bounced::SCHEMA]).await.unwrap();
    db.create_all(&[Bounced::SCHEMA]).await.unwrap();

    // Many clients at once, more than PgBouncer's server connections per client pool: every
    // statement may meet another server connection than the previous one.
    let tasks: Vec<_> = (0..8i64)
        .map(|t| {
            let db = db.clone();
            tokio::spawn(async move {
                for i in 0..15i64 {
                    let name = format!("t{t}-{i}");
                    let mut row = Bounced { id: 0, name: name.clone(), qty: i }.insert(&db).await.unwrap();
                    assert_eq!(Bounced::find(&db, row.id).await.unwrap().name, name);
                    row.qty += 100;
                    row.update(&db).await.unwrap();
                    let found = Bounced::query()
                        .filter(Bounced::NAME.eq(name.as_str()).and(Bounced::QTY.gt(99)))
                        .order_by(Bounced::ID.desc())
                        .limit(5)
                        .all(&db)
                        .await
                        .unwrap();
                    assert_eq!(found, [row.clone()]);
                    if i % 3 == 0 {
                        assert_eq!(Bounced::query().filter(Bounced::ID.eq(row.id)).delete_many(&db).await.unwrap(), 1);
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(Bounced::query().count(&db).await.unwrap(), 8 * 10);

    // A transaction keeps one server connection: its writes are seen inside and undone.
    let mut tx = db.begin().await.unwrap();
    Bounced { id: 0, name: "tx".into(), qty: 1 }.insert(&mut tx).await.unwrap();
    assert_eq!(Bounced::query().count(&mut tx).await.unwrap(), 81);
    tx.rollback().await.unwrap();
    assert_eq!(Bounced::query().count(&db).await.unwrap(), 80);

    // A failing statement rolls its own transaction back and leaves the handle usable.
    let dup = Bounced::query().order_by(Bounced::ID.asc()).first(&db).await.unwrap().unwrap();
    let err = dup.insert_with_key(&db).await.unwrap_err();
    assert!(matches!(err, Error::UniqueViolation { .. }), "{err:?}");
    let streamed: Vec<Bounced> = Bounced::query().stream(&db).try_collect().await.unwrap();
    assert_eq!(streamed.len(), 80);
    db.drop_all(&[Bounced::SCHEMA]).await.unwrap();
}

/// The control: without the setting, two clients of PgBouncer meet each other's named
/// statements (this shows the pool really is in transaction mode).
#[tokio::test]
async fn pgbouncer_without_the_setting_breaks_on_named_statements() {
    let _turn = SERIAL.lock().await;
    let (a, b) = (bouncer(false).await, bouncer(false).await);
    let mut failure = None;
    for _ in 0..10 {
        for db in [&a, &b] {
            if let Err(e) = sqlx::query_scalar::<_, i64>("SELECT 1::int8").fetch_one(db.pg_pool().unwrap()).await {
                failure = Some(e.to_string());
            }
        }
    }
    let failure = failure.expect("two plain sqlx clients through PgBouncer should collide on named statements");
    assert!(failure.contains("prepared statement"), "{failure}");
    a.close().await;
    b.close().await;
}

/// `Db::with_local_search_path` behind PgBouncer: handles confined to different schemas share
/// PgBouncer's server connections (more clients than server connections, statements and
/// transactions interleaved), each sees only its own schema's table of the same name, and the
/// setting never outlives a transaction: an unconfined client of the same pool always finds
/// the default `search_path`. One schema name is hostile (quotes, a semicolon); it is quoted as
/// an identifier and stays a name.
#[tokio::test]
async fn pgbouncer_local_search_path_confines_each_handle_and_never_leaks() {
    let _turn = SERIAL.lock().await;
    let mut confined = Vec::new();
    for _ in 0..3 {
        confined.push(polystore_tests::pg_pooled().await);
    }
    let hostile = format!("{}\"; DROP SCHEMA public CASCADE; --", polystore_tests::unique_name("Hostile"));
    let plain = bouncer(true).await;
    execute_sql(&plain, &format!("CREATE SCHEMA \"{}\"", hostile.replace('"', "\"\""))).await;
    let odd = bouncer(true).await.with_local_search_path([hostile.as_str()]);
    let dbs: Vec<Db> = confined.iter().map(|t| t.db().clone()).chain([odd.clone()]).collect();
    for db in &dbs {
        db.create_all(&[Bounced::SCHEMA]).await.unwrap();
    }

    let workers: Vec<_> = dbs
        .iter()
        .enumerate()
        .map(|(n, db)| {
            let db = db.clone();
            tokio::spawn(async move {
                let n = n as i64;
                for i in 0..20i64 {
                    let row = Bounced { id: 0, name: format!("h{n}"), qty: i }.insert(&db).await.unwrap();
                    let mine = Bounced::query().filter(Bounced::NAME.ne(format!("h{n}"))).count(&db).await.unwrap();
                    assert_eq!(mine, 0, "handle {n} saw another schema's rows");
                    if i % 4 == 0 {
                        let mut tx = db.begin().await.unwrap();
                        assert_eq!(Bounced::find(&mut tx, row.id).await.unwrap(), row);
                        assert_eq!(Bounced::query().count(&mut tx).await.unwrap(), i + 1);
                        tx.commit().await.unwrap();
                    }
                }
            })
        })
        .collect();
    // Meanwhile a client without the setting, on the same PgBouncer pool, never meets it.
    let watcher = {
        let plain = plain.clone();
        tokio::spawn(async move {
            for _ in 0..60 {
                let path = polystore::query::raw_rows::<(String,)>("SELECT current_setting('search_path')")
                    .one(&plain)
                    .await
                    .unwrap()
                    .0;
                assert_eq!(path, "\"$user\", public", "a search_path leaked onto a pooled server connection");
            }
        })
    };
    for w in workers {
        w.await.unwrap();
    }
    watcher.await.unwrap();

    for (n, db) in dbs.iter().enumerate() {
        assert_eq!(Bounced::query().count(db).await.unwrap(), 20, "handle {n}");
    }
    let schema_of = |name: &str| {
        format!(
            "SELECT count(*) FROM pg_tables WHERE schemaname = '{}' AND tablename = 'bouncer_items'",
            name.replace('\'', "''")
        )
    };
    assert_eq!(polystore_tests::query_i64(&plain, &schema_of(&hostile)).await, 1);
    assert_eq!(polystore_tests::query_i64(&plain, &schema_of("public")).await, 0, "nothing landed in public");
    execute_sql(&plain, &format!("DROP SCHEMA \"{}\" CASCADE", hostile.replace('"', "\"\""))).await;
    odd.close().await;
    plain.close().await;
    for t in confined {
        t.cleanup().await;
    }
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "repl_notes")]
struct Note {
    #[model(primary_key, generated)]
    id: i64,
    text: String,
}

/// MongoDB: a handle's read preference, read concern and write concern reach the commands
/// polystore sends (seen through the driver's command monitoring), on every path (driver
/// `find` and `insertMany`, and commands polystore builds), and only on that handle.
#[tokio::test]
async fn mongodb_read_preference_and_concerns_reach_every_command() {
    use std::sync::{Arc, Mutex};

    use polystore::mongo::MongoStore;
    use polystore::mongo::driver::bson::Document;
    use polystore::mongo::driver::event::EventHandler;
    use polystore::mongo::driver::event::command::CommandEvent;
    use polystore::mongo::driver::options::{
        ClientOptions, ReadConcern, ReadPreference, ReadPreferenceOptions, WriteConcern,
    };

    let url = polystore_tests::mongodb_url();
    let mut options = match ClientOptions::parse(&url).await {
        Ok(o) => o,
        Err(e) => service_unavailable("MongoDB", &url, e),
    };
    let seen: Arc<Mutex<Vec<(String, Document)>>> = Arc::default();
    let log = seen.clone();
    options.command_event_handler = Some(EventHandler::callback(move |event: CommandEvent| {
        if let CommandEvent::Started(started) = event {
            log.lock().unwrap().push((started.command_name.clone(), started.command.clone()));
        }
    }));
    let client = polystore::mongo::driver::Client::with_options(options).unwrap();
    let base = MongoStore::from_client(client, &polystore_tests::unique_name("repl"));
    if let Err(e) = base.ping().await {
        service_unavailable("MongoDB", &url, e);
    }
    base.create_all(&[Note::SCHEMA]).await.unwrap();

    let staleness = ReadPreferenceOptions::builder().max_staleness(Duration::from_secs(120)).build();
    let store = base
        .with_read_concern(ReadConcern::majority())
        .with_write_concern(WriteConcern::majority())
        .with_read_preference(ReadPreference::SecondaryPreferred { options: Some(staleness) });
    seen.lock().unwrap().clear();
    let mut note = Note { id: 0, text: "first".into() }.insert(&store).await.unwrap();
    assert_eq!(Note::find(&store, note.id).await.unwrap().text, "first");
    note.text = "changed".into();
    note.update(&store).await.unwrap();
    assert_eq!(Note::query().count(&store).await.unwrap(), 1);
    let texts: Vec<String> = Note::query().select(Note::TEXT).all(&store).await.unwrap();
    assert_eq!(texts, ["changed"]);
    assert_eq!(Note::query().filter(Note::ID.eq(note.id)).delete_many(&store).await.unwrap(), 1);

    let commands = std::mem::take(&mut *seen.lock().unwrap());
    let level = |c: &Document, key: &str, field: &str| {
        c.get_document(key).ok().and_then(|d| d.get(field)).map(|v| v.to_string())
    };
    let (mut reads, mut writes) = (0, 0);
    for (name, command) in &commands {
        match name.as_str() {
            "find" | "aggregate" | "count" | "distinct" => {
                reads += 1;
                assert_eq!(level(command, "readConcern", "level").as_deref(), Some("\"majority\""), "{command}");
            }
            "insert" | "update" | "delete" | "findAndModify" => {
                writes += 1;
                assert_eq!(level(command, "writeConcern", "w").as_deref(), Some("\"majority\""), "{command}");
            }
            _ => {}
        }
    }
    assert!(reads >= 3 && writes >= 3, "reads and writes were sent: {commands:?}");

    // The handle it was made from sends neither.
    Note { id: 0, text: "plain".into() }.insert(&base).await.unwrap();
    assert_eq!(Note::query().count(&base).await.unwrap(), 1);
    let commands = std::mem::take(&mut *seen.lock().unwrap());
    assert!(commands.iter().any(|(n, _)| n == "insert"));
    for (_, command) in &commands {
        assert!(!command.contains_key("readConcern") && !command.contains_key("writeConcern"), "{command}");
    }
    base.database().drop().await.unwrap();
}

/// `MongoStore::with_causal_consistency`: every read after a write carries the write's
/// `operationTime` as `readConcern.afterClusterTime` (merged with the handle's read concern)
/// on every read path — a key lookup, a count, the driver-`find` path, which is then sent as a
/// `find` command — the clock follows `insertMany` and a transaction's commit, only rises
/// under concurrent writers, and travels as a token; a plain handle sends none. (SecantusDB
/// does not wait for `afterClusterTime`, see the previous test: this shows what is sent.)
#[tokio::test]
async fn mongodb_causal_consistency_sends_after_cluster_time_on_every_read() {
    use std::sync::{Arc, Mutex};

    use polystore::mongo::MongoStore;
    use polystore::mongo::driver::bson::{Document, Timestamp};
    use polystore::mongo::driver::event::EventHandler;
    use polystore::mongo::driver::event::command::CommandEvent;
    use polystore::mongo::driver::options::{ClientOptions, ReadConcern};

    let url = polystore_tests::mongodb_url();
    let mut options = match ClientOptions::parse(&url).await {
        Ok(o) => o,
        Err(e) => service_unavailable("MongoDB", &url, e),
    };
    // (command name, command) of every command started; the operationTime of every reply.
    let started: Arc<Mutex<Vec<(String, Document)>>> = Arc::default();
    let replies: Arc<Mutex<Vec<(String, Timestamp)>>> = Arc::default();
    let (log, times) = (started.clone(), replies.clone());
    options.command_event_handler = Some(EventHandler::callback(move |event: CommandEvent| match event {
        CommandEvent::Started(e) => log.lock().unwrap().push((e.command_name.clone(), e.command.clone())),
        CommandEvent::Succeeded(e) => {
            if let Ok(t) = e.reply.get_timestamp("operationTime") {
                times.lock().unwrap().push((e.command_name.clone(), t));
            }
        }
        _ => {}
    }));
    let client = polystore::mongo::driver::Client::with_options(options).unwrap();
    let base = MongoStore::from_client(client, &polystore_tests::unique_name("causal"));
    if let Err(e) = base.ping().await {
        service_unavailable("MongoDB", &url, e);
    }
    base.create_all(&[Note::SCHEMA]).await.unwrap();
    let after =
        |c: &Document| c.get_document("readConcern").ok().and_then(|r| r.get_timestamp("afterClusterTime").ok());
    let later = |a: Timestamp, b: Timestamp| (a.time, a.increment) >= (b.time, b.increment);
    let last_write = |replies: &[(String, Timestamp)]| {
        replies.iter().filter(|(n, _)| n == "insert" || n == "commitTransaction").map(|(_, t)| *t).next_back().unwrap()
    };

    let causal = base.with_read_concern(ReadConcern::majority()).with_causal_consistency();
    started.lock().unwrap().clear();
    assert_eq!(Note::query().count(&causal).await.unwrap(), 0);
    assert_eq!(causal.causal_token(), None, "no write yet");
    let first = started.lock().unwrap().clone();
    assert!(first.iter().all(|(_, c)| after(c).is_none()), "nothing to follow before a write: {first:?}");

    let note = Note { id: 0, text: "first".into() }.insert(&causal).await.unwrap();
    let written = last_write(&replies.lock().unwrap());
    assert!(later(causal.causal_token().unwrap(), written), "the clock took the write's operationTime");
    started.lock().unwrap().clear();
    assert_eq!(Note::find(&causal, note.id).await.unwrap().text, "first");
    assert_eq!(Note::query().count(&causal).await.unwrap(), 1);
    let texts: Vec<String> = Note::query().select(Note::TEXT).all(&causal).await.unwrap();
    assert_eq!(texts, ["first"]);
    let all: Vec<Note> = Note::query().order_by(Note::ID.asc()).all(&causal).await.unwrap();
    assert_eq!(all.len(), 1);
    let reads: Vec<(String, Document)> = std::mem::take(&mut *started.lock().unwrap())
        .into_iter()
        .filter(|(n, _)| ["find", "aggregate", "count", "distinct"].contains(&n.as_str()))
        .collect();
    assert!(reads.len() >= 4, "{reads:?}");
    for (_, c) in &reads {
        let t = after(c).unwrap_or_else(|| panic!("a read without afterClusterTime: {c}"));
        assert!(later(t, written), "{c}");
        assert_eq!(c.get_document("readConcern").unwrap().get_str("level"), Ok("majority"), "{c}");
    }

    // insertMany (the driver's) and a transaction's commit move the clock too.
    Note::insert_many(&causal, &[Note { id: 0, text: "a".into() }, Note { id: 0, text: "b".into() }]).await.unwrap();
    let many = last_write(&replies.lock().unwrap());
    assert!(later(causal.causal_token().unwrap(), many) && later(many, written), "insertMany moved the clock");
    let mut rows = 3;
    if let Ok(mut tx) = causal.begin().await {
        rows += 1;
        Note { id: 0, text: "in tx".into() }.insert(&mut tx).await.unwrap();
        tx.commit().await.unwrap();
        let committed = last_write(&replies.lock().unwrap());
        assert!(later(causal.causal_token().unwrap(), committed), "the commit moved the clock");
    }

    // Concurrent writers on clones of the handle: the clock ends at the latest write.
    let writers: Vec<_> = (0..8)
        .map(|i| {
            let causal = causal.clone();
            tokio::spawn(async move {
                for j in 0..5 {
                    Note { id: 0, text: format!("w{i}-{j}") }.insert(&causal).await.unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let newest =
        replies.lock().unwrap().iter().filter(|(n, _)| n == "insert").map(|(_, t)| (t.time, t.increment)).max();
    let token = causal.causal_token().unwrap();
    assert_eq!(Some((token.time, token.increment)), newest, "the clock holds the newest write, never an older one");

    // The token carries the clock to another handle (another request); a plain handle sends
    // no afterClusterTime.
    started.lock().unwrap().clear();
    let next = base.with_causal_token(token);
    assert_eq!(Note::query().count(&next).await.unwrap(), rows + 40);
    assert_eq!(Note::query().count(&base).await.unwrap(), rows + 40);
    let sent = std::mem::take(&mut *started.lock().unwrap());
    let counts: Vec<_> = sent.iter().filter(|(n, _)| n == "count" || n == "aggregate").collect();
    assert_eq!(counts.len(), 2, "{sent:?}");
    assert_eq!(after(&counts[0].1), Some(token), "{:?}", counts[0]);
    assert!(!counts[1].1.contains_key("readConcern"), "{:?}", counts[1]);
    base.database().drop().await.unwrap();
}

// ---------------------------------------------------------------- Redis Cluster replica reads

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "repl_cached", cache(ttl = "5m"))]
struct Cached {
    #[model(primary_key, generated)]
    id: i64,
    name: String,
}

/// The masters of the Redis Cluster with replicas that `scripts/dev-services` starts.
fn ha_cluster_urls() -> Vec<String> {
    env_or("REDIS_CLUSTER_HA_URLS", "redis://127.0.0.1:7201/,redis://127.0.0.1:7202/,redis://127.0.0.1:7203/")
        .split(',')
        .map(str::to_owned)
        .collect()
}

/// Every node of the cluster: (address, is master, a connection).
async fn ha_nodes() -> Vec<(String, bool, redis::aio::MultiplexedConnection)> {
    let urls = ha_cluster_urls();
    let connect = |addr: String| async move {
        let url = format!("redis://{addr}/");
        let client = redis::Client::open(url.as_str()).unwrap();
        match tokio::time::timeout(Duration::from_secs(5), client.get_multiplexed_async_connection()).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => service_unavailable("Redis Cluster with replicas", &url, e),
            Err(_) => service_unavailable("Redis Cluster with replicas", &url, "timed out"),
        }
    };
    let first = urls[0].trim_start_matches("redis://").trim_end_matches('/').to_owned();
    let mut conn = connect(first).await;
    let nodes: String = redis::cmd("CLUSTER").arg("NODES").query_async(&mut conn).await.unwrap();
    let mut out = Vec::new();
    for line in nodes.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let addr = fields[1].split('@').next().unwrap().to_owned();
        let master = fields[2].contains("master");
        out.push((addr.clone(), master, connect(addr).await));
    }
    assert_eq!(
        out.iter().filter(|n| !n.1).count(),
        3,
        "the cluster needs a replica per master: run scripts/dev-services"
    );
    out
}

/// `calls` of a command in a node's `INFO commandstats`.
async fn calls(conn: &mut redis::aio::MultiplexedConnection, command: &str) -> u64 {
    let info: String = redis::cmd("INFO").arg("commandstats").query_async(conn).await.unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("cmdstat_{command}:calls=")))
        .map_or(0, |rest| rest.split(',').next().unwrap().parse().unwrap())
}

/// Per node, the calls of `command` so far.
async fn calls_per_node(nodes: &mut [(String, bool, redis::aio::MultiplexedConnection)], command: &str) -> Vec<u64> {
    let mut out = Vec::new();
    for (_, _, conn) in nodes.iter_mut() {
        out.push(calls(conn, command).await);
    }
    out
}

/// Sum of `after - before` over the masters (`true`) or the replicas (`false`).
fn delta(
    nodes: &[(String, bool, redis::aio::MultiplexedConnection)],
    before: &[u64],
    after: &[u64],
    masters: bool,
) -> u64 {
    nodes.iter().zip(before.iter().zip(after)).filter(|(n, _)| n.1 == masters).map(|(_, (b, a))| a - b).sum()
}

/// Waits until every replica has replayed its master's whole replication stream.
async fn replicas_caught_up(nodes: &mut [(String, bool, redis::aio::MultiplexedConnection)]) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut behind = false;
        for (_, master, conn) in nodes.iter_mut() {
            if *master {
                continue;
            }
            let info: String = redis::cmd("INFO").arg("replication").query_async(conn).await.unwrap();
            let field = |name: &str| info.lines().find_map(|l| l.strip_prefix(name)).map(|v| v.trim().to_owned());
            let (Some(host), Some(port)) = (field("master_host:"), field("master_port:")) else { panic!("{info}") };
            let replica_offset: u64 = field("slave_repl_offset:").unwrap().parse().unwrap();
            let client = redis::Client::open(format!("redis://{host}:{port}/")).unwrap();
            let mut m = client.get_multiplexed_async_connection().await.unwrap();
            let minfo: String = redis::cmd("INFO").arg("replication").query_async(&mut m).await.unwrap();
            let master_offset: u64 =
                minfo.lines().find_map(|l| l.strip_prefix("master_repl_offset:")).unwrap().trim().parse().unwrap();
            behind |= replica_offset < master_offset;
        }
        if !behind {
            return;
        }
        assert!(Instant::now() < deadline, "the cluster's replicas did not catch up in 5 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn ha_backend(options: polystore::cache::ClusterOptions) -> polystore::cache::ClusterBackend {
    let urls = ha_cluster_urls();
    match polystore::cache::ClusterBackend::connect_with(&urls, options).await {
        Ok(b) => b,
        Err(e) => service_unavailable("Redis Cluster with replicas", &urls.join(","), e),
    }
}

/// With `read_from_replicas`, cached hits are served by the replicas (their `MGET` counters
/// move, the masters' do not, the database sees nothing), while misses, fills, writes and
/// invalidations go to the masters. Each write waits for its replica (`WAIT 1`), so a read
/// that starts after a write returned never sees the entry it invalidated — checked from a
/// second cache (another process, in effect) right after each of 100 updates, with the old
/// entry on the replicas before every update.
#[tokio::test]
async fn redis_cluster_replica_reads_serve_hits_and_invalidations_are_acknowledged() {
    use polystore::cache::{Cache, ClusterOptions};

    let mut nodes = ha_nodes().await;
    let options = ClusterOptions { read_from_replicas: true, ..ClusterOptions::default() };
    let (writer_backend, reader_backend) = (ha_backend(options.clone()).await, ha_backend(options).await);
    let namespace = polystore_tests::unique_name("psha");
    let test_db = polystore_tests::pg().await;
    let writer = test_db.db().with_cache(Cache::builder(writer_backend.clone()).namespace(namespace.clone()).build());
    let reader = test_db.db().with_cache(Cache::builder(reader_backend.clone()).namespace(namespace).build());
    writer.create_all(&[Cached::SCHEMA]).await.unwrap();
    let mut rows = Vec::new();
    for i in 0..30 {
        rows.push(Cached { id: 0, name: format!("r{i}") }.insert(&writer).await.unwrap());
    }
    // Misses: the leasing reads and fills run on the masters.
    let (mget0, eval0) = (calls_per_node(&mut nodes, "mget").await, calls_per_node(&mut nodes, "eval").await);
    for row in &rows {
        assert_eq!(Cached::get_cached(&reader, row.id).await.unwrap().as_ref(), Some(row));
    }
    let eval1 = calls_per_node(&mut nodes, "eval").await;
    assert!(delta(&nodes, &eval0, &eval1, true) >= 60, "a lease and a fill per miss on the masters");
    assert_eq!(delta(&nodes, &eval0, &eval1, false), 0, "no script ran on a replica");

    // Hits: three rounds, all from the replicas.
    replicas_caught_up(&mut nodes).await;
    let statements = test_db.db().stats().statements();
    let mget1 = calls_per_node(&mut nodes, "mget").await;
    for _ in 0..3 {
        for row in &rows {
            assert_eq!(Cached::get_cached(&reader, row.id).await.unwrap().as_ref(), Some(row));
        }
    }
    let mget2 = calls_per_node(&mut nodes, "mget").await;
    assert_eq!(test_db.db().stats().statements(), statements, "every read was a hit");
    assert!(delta(&nodes, &mget1, &mget2, false) >= 90, "the replicas served the hits");
    assert_eq!(delta(&nodes, &mget1, &mget2, true), 0, "no hit was read from a master");
    assert!(delta(&nodes, &mget0, &mget1, false) >= 30, "the misses' probes also went to replicas");

    // Read after invalidation, from the other cache, with the old entry on the replicas.
    let (del0, wait0) = (calls_per_node(&mut nodes, "del").await, calls_per_node(&mut nodes, "wait").await);
    let started = Instant::now();
    for i in 0..100 {
        let n = rows.len();
        let row = &mut rows[i % n];
        assert_eq!(Cached::get_cached(&reader, row.id).await.unwrap().as_ref(), Some(&*row));
        replicas_caught_up(&mut nodes).await;
        row.name = format!("v{i}");
        row.update(&writer).await.unwrap();
        let seen = Cached::get_cached(&reader, row.id).await.unwrap().unwrap();
        assert_eq!(seen.name, row.name, "update {i}: a replica served the entry the update invalidated");
    }
    let (del1, wait1) = (calls_per_node(&mut nodes, "del").await, calls_per_node(&mut nodes, "wait").await);
    eprintln!("100 update/read rounds with replica reads: {:?}", started.elapsed());
    assert!(delta(&nodes, &del0, &del1, true) >= 100, "invalidations ran on the masters");
    assert!(delta(&nodes, &wait0, &wait1, true) >= 100, "each invalidation waited for a replica");
    assert_eq!(delta(&nodes, &del0, &del1, false), delta(&nodes, &del0, &del1, true), "replicas only replayed them");
    assert_eq!(writer_backend.unacknowledged_writes(), 0, "every invalidation was acknowledged by a replica");

    // Asking for more acknowledgements than a master has replicas: the write still succeeds,
    // after the timeout, and is counted as unacknowledged.
    let greedy = ClusterOptions {
        read_from_replicas: true,
        replica_acks: 2,
        ack_timeout: Duration::from_millis(30),
        ..ClusterOptions::default()
    };
    let greedy_backend = ha_backend(greedy).await;
    let greedy_db = test_db
        .db()
        .with_cache(Cache::builder(greedy_backend.clone()).namespace(polystore_tests::unique_name("psha")).build());
    let row = &mut rows[0];
    row.name = "greedy".into();
    let started = Instant::now();
    row.update(&greedy_db).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(30), "the write waited for the acknowledgements");
    assert_eq!(greedy_backend.unacknowledged_writes(), 1);
    assert_eq!(Cached::find(&greedy_db, row.id).await.unwrap().name, "greedy");
    test_db.cleanup().await;
}

/// A backend whose hit probe answers like a replica that has not yet replayed a generation
/// bump: the generation it shows is one behind the masters' (an in-process backend plays the
/// masters).
#[derive(Debug)]
struct LaggingReplica(polystore::cache::MemoryBackend);

mod lagging {
    use polystore::Result;
    use polystore::cache::CacheBackend;
    use polystore::cache::backend::{BoxFuture, Fill, Leased, Op, ZRange};
    use std::time::Duration;

    impl CacheBackend for super::LaggingReplica {
        fn name(&self) -> &'static str {
            "lagging-replica"
        }
        fn get_many<'a>(&'a self, keys: &'a [String]) -> BoxFuture<'a, Result<Vec<Option<Vec<u8>>>>> {
            self.0.get_many(keys)
        }
        fn probe<'a>(&'a self, keys: &'a [String]) -> BoxFuture<'a, Result<Vec<Option<Vec<u8>>>>> {
            Box::pin(async move {
                let mut found = self.0.get_many(keys).await?;
                let generation: u64 =
                    found[0].as_deref().map_or(0, |g| std::str::from_utf8(g).unwrap().parse().unwrap());
                found[0] = Some((generation.saturating_sub(1)).to_string().into_bytes());
                Ok(found)
            })
        }
        fn probes_replicas(&self) -> bool {
            true
        }
        fn apply(&self, ops: Vec<Op>) -> BoxFuture<'_, Result<()>> {
            self.0.apply(ops)
        }
        fn read_leasing<'a>(
            &'a self,
            guard: &'a str,
            keys: &'a [String],
            lease: &'a [u8],
            ttl: Duration,
        ) -> BoxFuture<'a, Result<Leased>> {
            self.0.read_leasing(guard, keys, lease, ttl)
        }
        fn fill(&self, fills: Vec<Fill>) -> BoxFuture<'_, Result<u64>> {
            self.0.fill(fills)
        }
        fn advance<'a>(&'a self, key: &'a str, past: u64) -> BoxFuture<'a, Result<u64>> {
            self.0.advance(key, past)
        }
        fn members<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Vec<String>>> {
            self.0.members(key)
        }
        fn zrange<'a>(&'a self, key: &'a str, range: ZRange) -> BoxFuture<'a, Result<Vec<(String, f64)>>> {
            self.0.zrange(key, range)
        }
        fn zrank_desc<'a>(&'a self, key: &'a str, member: &'a str) -> BoxFuture<'a, Result<Option<u64>>> {
            self.0.zrank_desc(key, member)
        }
        fn incr_by<'a>(&'a self, key: &'a str, delta: i64) -> BoxFuture<'a, Result<i64>> {
            self.0.incr_by(key, delta)
        }
        fn ping(&self) -> BoxFuture<'_, Result<()>> {
            self.0.ping()
        }
    }
}

/// A replica behind a generation bump makes cached reads ask the masters: they return the
/// current row, and the cache does not mistake the older generation for lost data (no lost
/// invalidation, no fence, the cache stays in use).
#[tokio::test]
async fn a_replica_behind_a_generation_bump_sends_reads_to_the_masters_not_into_a_fence() {
    use polystore::cache::{Cache, MemoryBackend, Op};

    let memory = MemoryBackend::new(1 << 20);
    let cache = Cache::builder(LaggingReplica(memory)).build();
    let gkey = cache.keys().generation_key();
    cache.backend().apply(vec![Op::Set { key: gkey, value: b"5".to_vec(), ttl: None }]).await.unwrap();
    let db = polystore_tests::sqlite().await.with_cache(cache.clone());
    db.create_all(&[Cached::SCHEMA]).await.unwrap();
    let row = Cached { id: 0, name: "a".into() }.insert(&db).await.unwrap();
    for _ in 0..3 {
        assert_eq!(Cached::get_cached(&db, row.id).await.unwrap(), Some(row.clone()));
    }
    assert_eq!(cache.generation(), 5, "the masters' generation was adopted");
    assert_eq!(cache.stats().lost_invalidations(), 0);
    assert_eq!(cache.stats().fences(), 0);
    assert!(cache.is_available());
    let before = db.stats().statements();
    assert_eq!(Cached::get_cached(&db, row.id).await.unwrap(), Some(row));
    assert_eq!(db.stats().statements(), before, "served from the cache, through the masters");
}

/// What the local MongoDB-wire server (SecantusDB) does with the pieces of causal consistency,
/// pinned so that `docs/scaling.md` stays true: a write's reply carries `operationTime` and
/// `$clusterTime`; a read accepts `readConcern.afterClusterTime` and sees the write; and an
/// `afterClusterTime` far in the future is answered at once instead of waiting (a replica set
/// member would wait for it, up to `maxTimeMS`) — the server does not enforce it.
#[tokio::test]
async fn mongodb_server_reports_operation_times_and_accepts_but_does_not_wait_for_after_cluster_time() {
    use polystore::mongo::driver::bson::{Bson, Timestamp, doc};

    let store = polystore_tests::mongo().await;
    let reply = store.run_command(doc! { "insert": "causal", "documents": [{ "_id": 1, "x": 1 }] }).await.unwrap();
    let Some(Bson::Timestamp(written)) = reply.get("operationTime").cloned() else {
        panic!("a write's reply carries operationTime: {reply:?}")
    };
    assert!(reply.get_document("$clusterTime").is_ok(), "{reply:?}");

    let read = |after: Timestamp| {
        let store = store.clone();
        async move {
            let started = Instant::now();
            let reply = store
                .run_command(doc! {
                    "find": "causal",
                    "filter": {},
                    "readConcern": { "afterClusterTime": after },
                    "maxTimeMS": 2000,
                })
                .await
                .unwrap();
            let found = reply.get_document("cursor").unwrap().get_array("firstBatch").unwrap().len();
            (found, started.elapsed())
        }
    };
    let (found, _) = read(written).await;
    assert_eq!(found, 1, "a read after the write's operationTime sees it");
    let (found, took) = read(Timestamp { time: u32::MAX, increment: 1 }).await;
    assert_eq!(found, 1);
    assert!(took < Duration::from_millis(1500), "SecantusDB answered a future afterClusterTime at once: {took:?}");
    store.database().drop().await.unwrap();
}
