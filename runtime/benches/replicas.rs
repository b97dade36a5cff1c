//! Read replicas: read throughput with two replicas against the primary alone (same run,
//! interleaved rounds), and what read-your-writes costs: the routing decision per read, the
//! primary round trip behind a session token, and a read right after a write.
//!
//! ```sh
//! scripts/dev-services        # the primary (5450) and two replicas (5451, 5452)
//! cargo bench -p polystore --bench replicas
//! ```
//!
//! `POLYSTORE_PG_PRIMARY_URL` / `POLYSTORE_PG_REPLICA_URLS` override the servers. The bench
//! creates and drops `bench_repl_items`. Everything runs on one machine, so the replicas add
//! no CPU: the throughput rows show the routing, not the scaling of a real deployment.

use std::hint::black_box;
use std::time::{Duration, Instant};

use polystore::prelude::*;
use polystore::replica::{ReplicatedDb, SessionToken};

#[derive(Model, Debug, Clone)]
#[model(table = "bench_repl_items")]
struct Item {
    #[model(primary_key, generated)]
    id: i64,
    name: String,
    qty: i64,
}

const ROWS: i64 = 1_000;
/// Concurrent readers in the throughput rounds.
const TASKS: usize = 8;
/// Length of one throughput round.
const ROUND: Duration = Duration::from_millis(1_500);
/// Interleaved rounds per side.
const ROUNDS: usize = 3;
/// Sequential operations per latency measurement.
const OPS: usize = 2_000;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty()).unwrap_or_else(|| default.to_owned())
}

async fn connect(with_replicas: bool) -> ReplicatedDb {
    let primary = env_or("POLYSTORE_PG_PRIMARY_URL", "postgres://postgres@127.0.0.1:5450/polystore_test");
    let replicas = env_or(
        "POLYSTORE_PG_REPLICA_URLS",
        "postgres://postgres@127.0.0.1:5451/polystore_test,postgres://postgres@127.0.0.1:5452/polystore_test",
    );
    let builder = ReplicatedDb::builder().primary(primary);
    let builder = if with_replicas { builder.replica_urls(&replicas) } else { builder };
    builder
        .connect()
        .await
        .unwrap_or_else(|e| panic!("the replica set is not reachable ({e}): run scripts/dev-services"))
}

/// Reads per second of `TASKS` sessions reading random rows for one round.
async fn throughput(db: &ReplicatedDb) -> f64 {
    let deadline = Instant::now() + ROUND;
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let db = db.clone();
            tokio::spawn(async move {
                let mut s = db.session();
                let mut n = 0u64;
                let mut key = t as i64;
                while Instant::now() < deadline {
                    key = (key * 7919 + 13) % ROWS;
                    black_box(Item::find(&mut s, key + 1).await.unwrap());
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    total as f64 / ROUND.as_secs_f64()
}

/// The key of the `i`th operation.
fn key(i: usize) -> i64 {
    (i as i64 % ROWS) + 1
}

/// Mean microseconds per operation of `OPS` operations started at `started`.
fn micros(started: Instant) -> f64 {
    started.elapsed().as_secs_f64() * 1e6 / OPS as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let replicated = connect(true).await;
        let alone = connect(false).await;
        let primary = replicated.primary().clone();
        primary.drop_all(&[Item::SCHEMA]).await.unwrap();
        primary.create_all(&[Item::SCHEMA]).await.unwrap();
        let rows: Vec<Item> = (0..ROWS).map(|i| Item { id: 0, name: format!("item {i}"), qty: i }).collect();
        Item::insert_many(&primary, &rows).await.unwrap();
        // Wait until both replicas have the rows (polling their replay position).
        let mut s = replicated.session();
        item_written(&mut s).await;
        let token = s.token().await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            replicated.check_health().await;
            if replicated.replicas().iter().all(|r| r.is_healthy() && r.replay_lsn() >= token.lsn()) {
                break;
            }
            assert!(Instant::now() < deadline, "the replicas did not catch up: {:?}", replicated.replicas());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        // Throughput, interleaved: primary alone, then primary + 2 replicas, ROUNDS times.
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            a.push(throughput(&alone).await);
            b.push(throughput(&replicated).await);
        }
        let (a, b) = (median(a), median(b));
        println!("| reads/s, {TASKS} sessions | primary alone | primary + 2 replicas | ratio |");
        println!("|---|---|---|---|");
        println!("| `Item::find` by key | {a:.0} | {b:.0} | {:.2} |", b / a);

        // Latency of one read: through a session (routing: floor check, balancing) and on the
        // replica's handle directly.
        let replica = replicated.replicas()[0].db().clone();
        let one =
            ReplicatedDb::builder().primary_db(primary.clone()).replica_db(replica.clone(), 1).connect().await.unwrap();
        let mut reader = replicated.session();
        let mut single = one.session();
        let (mut direct, mut routed, mut routed_one) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            let started = Instant::now();
            for i in 0..OPS {
                black_box(Item::find(&mut single, key(i)).await.unwrap());
            }
            routed_one.push(micros(started));
            let started = Instant::now();
            for i in 0..OPS {
                black_box(Item::find(&replica, key(i)).await.unwrap());
            }
            direct.push(micros(started));
            let started = Instant::now();
            for i in 0..OPS {
                black_box(Item::find(&mut reader, key(i)).await.unwrap());
            }
            routed.push(micros(started));
        }
        println!();
        println!("| µs per operation (sequential) | value |");
        println!("|---|---|");
        println!("| `find` on a replica's `Db` | {:.1} |", median(direct));
        println!("| `find` through a session, one replica (the same) | {:.1} |", median(routed_one));
        println!("| `find` through a session, two replicas in turn | {:.1} |", median(routed));

        // A write, then a read at once: the read goes to the primary while the position is
        // fetched in the background; compared with the same pair on the primary's `Db`.
        let mut writer = replicated.session();
        let (mut plain, mut pairs) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            let started = Instant::now();
            for i in 0..OPS {
                Item::query()
                    .filter(Item::ID.eq(key(i)))
                    .update_many(&primary, [Item::QTY.set(i as i64)])
                    .await
                    .unwrap();
                black_box(Item::find(&primary, key(i)).await.unwrap());
            }
            plain.push(micros(started));
            let started = Instant::now();
            for i in 0..OPS {
                Item::query()
                    .filter(Item::ID.eq(key(i)))
                    .update_many(&mut writer, [Item::QTY.set(i as i64)])
                    .await
                    .unwrap();
                black_box(Item::find(&mut writer, key(i)).await.unwrap());
            }
            pairs.push(micros(started));
        }
        println!("| update + `find` on the primary's `Db` | {:.1} |", median(plain));
        println!("| update + `find` through a session (read-your-writes) | {:.1} |", median(pairs));

        // The token: the primary round trip that fixes the session's position.
        let mut tokens = Vec::new();
        for _ in 0..ROUNDS {
            let mut s = replicated.session();
            let mut total = Duration::ZERO;
            for i in 0..OPS / 10 {
                Item::query().filter(Item::ID.eq(key(i))).update_many(&mut s, [Item::QTY.set(i as i64)]).await.unwrap();
                let started = Instant::now();
                let t: SessionToken = black_box(s.token().await.unwrap());
                total += started.elapsed();
                black_box(t);
            }
            tokens.push(total.as_secs_f64() * 1e6 / (OPS / 10) as f64);
        }
        println!("| `session.token()` after a write (one primary round trip) | {:.1} |", median(tokens));
        primary.drop_all(&[Item::SCHEMA]).await.unwrap();
    });
}

async fn item_written(s: &mut polystore::replica::Session<'_>) {
    Item::query().filter(Item::ID.eq(1)).update_many(s, [Item::QTY.set(0)]).await.unwrap();
}
