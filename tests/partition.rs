//! Declarative partitioning (`#[model(partition(..))]`) on the real PostgreSQL, SQLite and
//! MongoDB-wire server of `scripts/dev-services`, and MongoDB sharding detection.
//!
//! PostgreSQL: the DDL (`PARTITION BY`, default / list / hash partitions), range partitions
//! created ahead (also concurrently, also over rows already in the default partition),
//! retention (drop and archive), pruning shown by `EXPLAIN` for polystore's own statement, the
//! drift check and migrations on a partitioned table, and the refusal to partition an existing
//! plain table. SQLite: a plain table that works. MongoDB: the retention TTL index, and no
//! shard commands on a server that is not a sharded cluster.

use chrono::{DateTime, Datelike as _, TimeZone as _, Utc};
use polystore::prelude::*;
use polystore::sql::lower;
use polystore::sql::postgres::Postgres;
use polystore_tests::{execute_sql, pg, query_i64, query_text, run_on_mongo, sqlite};
use sqlx::AssertSqlSafe;

/// Monthly range partitions, two created ahead, kept three months.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(
    table = "pt_events",
    primary_key(id, created_at),
    index(kind, created_at, unique),
    partition(range(created_at), every = "1 month", ahead = 2, retain = "3 months")
)]
struct Event {
    id: i64,
    created_at: DateTime<Utc>,
    kind: String,
}

/// The same table, not partitioned (what an application had before adding partitioning).
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "pt_events", primary_key(id, created_at), index(kind, created_at, unique))]
struct PlainEvent {
    id: i64,
    created_at: DateTime<Utc>,
    kind: String,
}

/// `pt_events` renamed (what a later version of the application calls it).
#[derive(Model, Debug, Clone, PartialEq)]
#[model(
    table = "pt_occurrences",
    renamed_from = "pt_events",
    primary_key(id, created_at),
    index(kind, created_at, unique),
    partition(range(created_at), every = "1 month", ahead = 2, retain = "3 months")
)]
struct Occurrence {
    id: i64,
    created_at: DateTime<Utc>,
    kind: String,
}

/// Daily partitions whose expired partitions are archived, not dropped.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(
    table = "pt_logs",
    primary_key(id, day),
    partition(range(day), every = "1 day", ahead = 0, retain = "2 days", archive = "pt_archive")
)]
struct LogLine {
    id: i64,
    day: chrono::NaiveDate,
    line: String,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "pt_customers", primary_key(id, country), partition(list(country), values("DE", "FR")))]
struct Customer {
    id: i64,
    country: String,
    name: String,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "pt_sessions", partition(hash(id, modulus = 4)))]
struct Session {
    #[model(primary_key)]
    id: i64,
    user_name: String,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "pt_readings", partition(range(seq), every = 1000, ahead = 1))]
struct Reading {
    #[model(primary_key)]
    seq: i64,
    value: f64,
}

fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).single().expect("a valid date")
}

fn event(id: i64, created_at: DateTime<Utc>) -> Event {
    Event { id, created_at, kind: format!("kind {id}") }
}

/// The partitions of `table`, sorted.
async fn partitions(db: &Db, table: &str) -> Vec<String> {
    let list = query_text(
        db,
        &format!(
            "SELECT coalesce(string_agg(c.relname::text, ',' ORDER BY c.relname), '') FROM pg_inherits i \
             JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = '{table}'::regclass"
        ),
    )
    .await
    .unwrap_or_default();
    list.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

/// The partition a row of `table` is stored in.
async fn home(db: &Db, table: &str, filter: &str) -> String {
    query_text(db, &format!("SELECT tableoid::regclass::text FROM {table} WHERE {filter}")).await.expect("a row")
}

#[tokio::test]
async fn range_partitions_are_created_ahead_and_rows_land_in_them() {
    let test_db = pg().await;
    let db = test_db.db().clone();
    db.create_all(&[Event::SCHEMA]).await.expect("create_all");
    let kind = query_text(&db, "SELECT relkind::text FROM pg_class WHERE oid = 'pt_events'::regclass").await;
    assert_eq!(kind.as_deref(), Some("p"), "a partitioned table");
    let now = Utc::now();
    let month = |k: u32| {
        let first = now.date_naive().with_day(1).expect("first of month");
        first.checked_add_months(chrono::Months::new(k)).expect("month").format("pt_events_p%Y_%m").to_string()
    };
    let made = partitions(&db, "pt_events").await;
    for name in [month(0), month(1), month(2), "pt_events_default".to_owned()] {
        assert!(made.contains(&name), "create_all made {name}: {made:?}");
    }
    assert_eq!(made.len(), 4, "the current month, two ahead and the default: {made:?}");

    // Maintenance at a later date adds that month and two after it; running again adds nothing.
    let created = db.ensure_partitions_at(&[Event::SCHEMA], at(2031, 5, 10)).await.expect("ensure");
    assert_eq!(created, ["pt_events_p2031_05", "pt_events_p2031_06", "pt_events_p2031_07"]);
    assert!(db.ensure_partitions_at(&[Event::SCHEMA], at(2031, 5, 31)).await.expect("ensure again").is_empty());

    event(1, at(2031, 6, 15)).insert(&db).await.expect("insert");
    event(2, at(2031, 5, 1)).insert(&db).await.expect("insert");
    event(3, at(1999, 1, 1)).insert(&db).await.expect("insert outside every partition");
    assert_eq!(home(&db, "pt_events", "id = 1").await, "pt_events_p2031_06");
    assert_eq!(home(&db, "pt_events", "id = 2").await, "pt_events_p2031_05");
    assert_eq!(home(&db, "pt_events", "id = 3").await, "pt_events_default");
    // The model reads across partitions as one table.
    let all = Event::query().order_by(Event::ID.asc()).all(&db).await.expect("query");
    assert_eq!(all.iter().map(|e| e.id).collect::<Vec<_>>(), [1, 2, 3]);
    // The unique index includes the partition column and holds across partitions.
    let dup = Event { id: 9, created_at: at(2031, 6, 15), kind: "kind 1".into() }.insert(&db).await;
    assert!(matches!(dup, Err(Error::UniqueViolation { .. })), "{dup:?}");
    test_db.cleanup().await;
}

#[tokio::test]
async fn a_partition_created_over_rows_in_the_default_partition_takes_them() {
    let test_db = pg().await;
    let db = test_db.db().clone();
    db.create_all(&[Event::SCHEMA]).await.expect("create_all");
    for (id, day) in [(1, 3), (2, 20), (3, 28)] {
        event(id, at(2040, 2, day)).insert(&db).await.expect("insert");
    }
    event(4, at(2040, 5, 1)).insert(&db).await.expect("insert");
    assert_eq!(query_i64(&db, "SELECT count(*) FROM pt_events_default").await, 4);
    let created = db.ensure_partitions_at(&[Event::SCHEMA], at(2040, 2, 1)).await.expect("ensure");
    assert_eq!(created, ["pt_events_p2040_02", "pt_events_p2040_03", "pt_events_p2040_04"]);
    assert_eq!(query_i64(&db, "SELECT count(*) FROM pt_events_p2040_02").await, 3, "rows moved");
    assert_eq!(query_i64(&db, "SELECT count(*) FROM pt_events_default").await, 1, "May stays in the default");
    assert_eq!(Event::query().count(&db).await.expect("count"), 4, "no row lost or doubled");
    test_db.cleanup().await;
}

#[tokio::test]
async fn concurrent_maintenance_creates_each_partition_once() {
    let test_db = pg().await;
    let db = test_db.db().clone();
    db.create_all(&[Event::SCHEMA]).await.expect("create_all");
    for round in 0..5 {
        let when = at(2050 + round, 1, 1);
        let runs = (0..6).map(|_| {
            let db = db.clone();
            tokio::spawn(async move { db.ensure_partitions_at(&[Event::SCHEMA], when).await })
        });
        let mut created: Vec<String> = Vec::new();
        for run in futures_util::future::join_all(runs).await {
            created.extend(run.expect("task").expect("no run fails on another"));
        }
        created.sort();
        let year = 2050 + round;
        assert_eq!(
            created,
            [format!("pt_events_p{year}_01"), format!("pt_events_p{year}_02"), format!("pt_events_p{year}_03")],
            "each partition reported created by exactly one run"
        );
    }
    test_db.cleanup().await;
}

#[tokio::test]
async fn retention_drops_or_archives_expired_partitions() {
    let test_db = pg().await;
    let db = test_db.db().clone();
    execute_sql(&db, "DROP SCHEMA IF EXISTS pt_archive CASCADE").await;
    db.create_all(&[Event::SCHEMA, LogLine::SCHEMA]).await.expect("create_all");
    // create_all made this month's partitions: long expired at the test's dates in 2030.
    let mut current: Vec<String> =
        partitions(&db, "pt_events").await.into_iter().filter(|p| p != "pt_events_default").collect();
    let current_logs: Vec<String> =
        partitions(&db, "pt_logs").await.into_iter().filter(|p| p != "pt_logs_default").collect();
    for month in 1..=6 {
        db.ensure_partitions_at(&[Event::SCHEMA], at(2030, month, 1)).await.expect("ensure");
        event(i64::from(month), at(2030, month, 10)).insert(&db).await.expect("insert");
    }
    event(100, at(1990, 1, 1)).insert(&db).await.expect("a row in the default partition");
    // Three months before 2030-07-15 is 2030-04-15: January to March ended before it.
    let expired = db.expire_partitions_at(&[Event::SCHEMA], at(2030, 7, 15)).await.expect("expire");
    let names: Vec<String> = expired.iter().map(|e| e.partition.clone()).collect();
    current.extend(["pt_events_p2030_01", "pt_events_p2030_02", "pt_events_p2030_03"].map(String::from));
    assert_eq!(names, current);
    assert!(expired.iter().all(|e| e.archived_as.is_none() && e.table == "pt_events"));
    let left = partitions(&db, "pt_events").await;
    let kept: Vec<String> = [
        "pt_events_default",
        "pt_events_p2030_04",
        "pt_events_p2030_05",
        "pt_events_p2030_06",
        "pt_events_p2030_07",
        "pt_events_p2030_08",
    ]
    .map(String::from)
    .to_vec();
    assert_eq!(left, kept);
    assert_eq!(
        query_i64(&db, "SELECT count(*) FROM pg_class WHERE relname = 'pt_events_p2030_01' AND relnamespace = current_schema()::regnamespace").await,
        0,
        "dropped"
    );
    let ids: Vec<i64> =
        Event::query().order_by(Event::ID.asc()).all(&db).await.expect("query").into_iter().map(|e| e.id).collect();
    assert_eq!(ids, [4, 5, 6, 100], "expired rows are gone, the default partition is never expired");
    assert!(db.expire_partitions_at(&[Event::SCHEMA], at(2030, 7, 15)).await.expect("again").is_empty());

    // Archived: detached and moved to the archive schema with its rows.
    for day in 1..=5 {
        let date = chrono::NaiveDate::from_ymd_opt(2030, 1, day).expect("date");
        db.ensure_partitions_at(&[LogLine::SCHEMA], at(2030, 1, day)).await.expect("ensure");
        LogLine { id: i64::from(day), day: date, line: format!("day {day}") }.insert(&db).await.expect("insert");
    }
    let archived = db.expire_partitions_at(&[LogLine::SCHEMA], at(2030, 1, 5)).await.expect("expire");
    let moved: Vec<Option<String>> = archived.iter().map(|e| e.archived_as.clone()).collect();
    let mut want: Vec<Option<String>> = current_logs.iter().map(|p| Some(format!("pt_archive.{p}"))).collect();
    want.extend([Some("pt_archive.pt_logs_p2030_01_01".to_owned()), Some("pt_archive.pt_logs_p2030_01_02".to_owned())]);
    assert_eq!(moved, want, "partitions that ended by 2030-01-03");
    assert_eq!(query_i64(&db, "SELECT count(*) FROM pt_archive.pt_logs_p2030_01_01").await, 1, "rows kept");
    assert_eq!(LogLine::query().count(&db).await.expect("count"), 3, "the model no longer sees them");
    execute_sql(&db, "DROP SCHEMA pt_archive CASCADE").await;
    test_db.cleanup().await;
}

#[tokio::test]
async fn explain_shows_only_the_matching_partition_scanned() {
    use sqlx::Connection as _;
    let test_db = pg().await;
    let db = test_db.db().clone();
    db.create_all(&[Event::SCHEMA]).await.expect("create_all");
    for month in 1..=4 {
        db.ensure_partitions_at(&[Event::SCHEMA], at(2032, month, 1)).await.expect("ensure");
        for n in 0..20 {
            event(i64::from(month * 100 + n), at(2032, month, 1 + n)).insert(&db).await.expect("insert");
        }
    }
    execute_sql(&db, "ANALYZE pt_events").await;
    // polystore's own statement for a filter on the partition key, planned with the values.
    let query =
        Event::query().filter(Event::CREATED_AT.ge(at(2032, 3, 5))).filter(Event::CREATED_AT.lt(at(2032, 3, 20)));
    let stmt = lower::select(&Postgres, Event::SCHEMA, &query).expect("render");
    let pool = db.pg_pool().expect("a PostgreSQL pool");
    let mut conn = pool.acquire().await.expect("a connection");
    let mut tx = conn.begin().await.expect("begin");
    sqlx::query(AssertSqlSafe(format!("SET LOCAL search_path = {}", test_db.schema())))
        .execute(&mut *tx)
        .await
        .expect("search_path");
    sqlx::query(AssertSqlSafe(format!("PREPARE probe(timestamptz, timestamptz) AS {}", stmt.sql)))
        .execute(&mut *tx)
        .await
        .expect("prepare");
    let plan: Vec<String> = sqlx::query_scalar(AssertSqlSafe(
        "EXPLAIN (COSTS OFF) EXECUTE probe('2032-03-05 12:00:00+00', '2032-03-20 12:00:00+00')",
    ))
    .fetch_all(&mut *tx)
    .await
    .expect("explain");
    let plan = plan.join("\n");
    assert!(plan.contains("pt_events_p2032_03"), "the March partition is scanned:\n{plan}");
    for other in ["pt_events_p2032_01", "pt_events_p2032_02", "pt_events_p2032_04", "pt_events_default"] {
        assert!(!plan.contains(other), "{other} is pruned:\n{plan}");
    }
    drop(tx);
    drop(conn);
    let rows = query.all(&db).await.expect("query");
    assert_eq!(rows.len(), 15, "days 5 to 19 of March");
    test_db.cleanup().await;
}

#[tokio::test]
async fn list_hash_and_integer_range_partitions() {
    let test_db = pg().await;
    let db = test_db.db().clone();
    db.create_all(&[Customer::SCHEMA, Session::SCHEMA, Reading::SCHEMA]).await.expect("create_all");
    assert_eq!(
        partitions(&db, "pt_customers").await,
        ["pt_customers_default", "pt_customers_v_de", "pt_customers_v_fr"]
    );
    for (id, country) in [(1, "DE"), (2, "FR"), (3, "US")] {
        Customer { id, country: country.into(), name: format!("c{id}") }.insert(&db).await.expect("insert");
    }
    assert_eq!(home(&db, "pt_customers", "id = 1").await, "pt_customers_v_de");
    assert_eq!(home(&db, "pt_customers", "id = 2").await, "pt_customers_v_fr");
    assert_eq!(home(&db, "pt_customers", "id = 3").await, "pt_customers_default");

    assert_eq!(
        partitions(&db, "pt_sessions").await,
        ["pt_sessions_h0", "pt_sessions_h1", "pt_sessions_h2", "pt_sessions_h3"]
    );
    for id in 0..200 {
        Session { id, user_name: format!("u{id}") }.insert(&db).await.expect("insert");
    }
    let mut total = 0;
    for h in 0..4 {
        let n = query_i64(&db, &format!("SELECT count(*) FROM pt_sessions_h{h}")).await;
        assert!(n > 0, "hash partition {h} holds rows");
        total += n;
    }
    assert_eq!(total, 200);
    assert_eq!(Session::find(&db, 137).await.expect("find").user_name, "u137");

    // Integer blocks: from the block of the largest value, one ahead.
    assert_eq!(partitions(&db, "pt_readings").await, ["pt_readings_default", "pt_readings_p0", "pt_readings_p1000"]);
    Reading { seq: 1500, value: 1.5 }.insert(&db).await.expect("insert");
    let created = db.ensure_partitions(&[Reading::SCHEMA]).await.expect("ensure");
    assert_eq!(created, ["pt_readings_p2000"]);
    assert_eq!(home(&db, "pt_readings", "seq = 1500").await, "pt_readings_p1000");
    test_db.cleanup().await;
}

#[tokio::test]
async fn partitioned_tables_show_no_drift_in_create_all_and_migrations() {
    let test_db = pg().await;
    let db = test_db.db().clone();
    let all = [Event::SCHEMA, LogLine::SCHEMA, Customer::SCHEMA, Session::SCHEMA, Reading::SCHEMA];
    db.create_all(&all).await.expect("create_all");
    db.create_all(&all).await.expect("create_all again finds the partitioned tables as described");
    db.drop_all(&all).await.expect("drop_all drops partitioned tables with their partitions");
    assert_eq!(query_i64(&db, "SELECT count(*) FROM pg_class WHERE relname LIKE 'pt\\_%' AND relnamespace = current_schema()::regnamespace").await, 0);

    // Migrations: generate, apply, check (the drift check compares partitioning too).
    let dir = std::env::temp_dir().join(polystore_tests::unique_name("pt_migrations"));
    let migrations = polystore::migrate::MigrationDir::new(&dir);
    migrations.generate("partitioned", &all).expect("generate").expect("a migration");
    let migrator = polystore::migrate::Migrator::new(&db, &dir);
    migrator.up(None).await.expect("up");
    assert!(migrator.check().await.expect("check").is_empty(), "no drift after up");
    assert_eq!(partitions(&db, "pt_sessions").await.len(), 4, "hash partitions made by the migration");
    db.ensure_partitions(&all).await.expect("ensure after migrating");
    assert!(migrator.check().await.expect("check").is_empty(), "partitions are not drift");
    // The live table loses its partitioning: the drift check says so.
    execute_sql(&db, "DROP TABLE pt_readings").await;
    execute_sql(&db, "CREATE TABLE pt_readings (seq BIGINT NOT NULL, value DOUBLE PRECISION NOT NULL, CONSTRAINT pt_readings_pkey PRIMARY KEY (seq))").await;
    let drift = migrator.check().await.expect("check");
    assert!(
        drift.iter().any(|d| d.table == "pt_readings"
            && d.message == "partitioning is not partitioned but should be PARTITION BY RANGE (seq)"),
        "{drift:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
    test_db.cleanup().await;
}

#[tokio::test]
async fn renaming_a_partitioned_table_renames_its_partitions_and_down_renames_them_back() {
    let test_db = pg().await;
    let db = test_db.db().clone();
    let dir = std::env::temp_dir().join(polystore_tests::unique_name("pt_rename"));
    let migrations = polystore::migrate::MigrationDir::new(&dir);
    migrations.generate("events", &[Event::SCHEMA]).expect("generate").expect("a migration");
    let migrator = polystore::migrate::Migrator::new(&db, &dir);
    migrator.up(None).await.expect("up");
    db.ensure_partitions_at(&[Event::SCHEMA], at(2031, 5, 10)).await.expect("ensure");
    for (id, month) in [(1, 5), (2, 6), (3, 7)] {
        event(id, at(2031, month, 3)).insert(&db).await.expect("insert");
    }
    let before = partitions(&db, "pt_events").await;
    assert!(before.contains(&"pt_events_p2031_06".to_owned()), "{before:?}");

    migrations.generate("renamed", &[Occurrence::SCHEMA]).expect("generate").expect("a migration");
    let migrator = polystore::migrate::Migrator::new(&db, &dir);
    migrator.up(None).await.expect("up: the rename");
    let after = partitions(&db, "pt_occurrences").await;
    let renamed: Vec<String> = before.iter().map(|p| p.replacen("pt_events_", "pt_occurrences_", 1)).collect();
    let mut wanted = renamed.clone();
    wanted.sort();
    assert_eq!(after, wanted, "every partition follows the table's name");
    assert_eq!(home(&db, "pt_occurrences", "id = 2").await, "pt_occurrences_p2031_06");
    // Maintenance finds the renamed partitions: nothing to create for those months, no overlap.
    assert!(db.ensure_partitions_at(&[Occurrence::SCHEMA], at(2031, 5, 10)).await.expect("ensure").is_empty());
    let ids: Vec<i64> =
        Occurrence::query().order_by(Occurrence::ID.asc()).all(&db).await.expect("read").iter().map(|o| o.id).collect();
    assert_eq!(ids, [1, 2, 3], "no row lost");
    assert!(migrator.check().await.expect("check").is_empty(), "no drift after the rename");

    migrator.down(1).await.expect("down: the rename back");
    assert_eq!(partitions(&db, "pt_events").await, before, "down gives the partitions their names back");
    let _ = std::fs::remove_dir_all(&dir);
    test_db.cleanup().await;
}

#[tokio::test]
async fn partitioning_an_existing_plain_table_is_refused_with_the_reason() {
    let test_db = pg().await;
    let db = test_db.db().clone();
    db.create_all(&[PlainEvent::SCHEMA]).await.expect("the plain table");
    let err = db.create_all(&[Event::SCHEMA]).await.expect_err("create_all cannot partition a plain table");
    match &err {
        Error::TableMismatch { table, differences, .. } => {
            assert_eq!(table, "pt_events");
            assert_eq!(
                differences,
                &["partitioning is not partitioned but should be PARTITION BY RANGE (created_at)".to_owned()]
            );
        }
        other => panic!("expected TableMismatch, got {other:?}"),
    }
    // A migration from the plain model to the partitioned one is refused, naming the rebuild.
    let from = polystore::migrate::Snapshot::from_schemas(&[PlainEvent::SCHEMA]).expect("snapshot");
    let to = polystore::migrate::Snapshot::from_schemas(&[Event::SCHEMA]).expect("snapshot");
    let err = polystore::migrate::diff(&from, &to).expect_err("no silent partitioning");
    let text = err.to_string();
    assert!(
        text.contains("partitioning changes from not partitioned to PARTITION BY RANGE (created_at)")
            && text.contains("Rebuild"),
        "{text}"
    );
    // The other way round too.
    assert!(polystore::migrate::diff(&to, &from).is_err());
    test_db.cleanup().await;
}

#[tokio::test]
async fn the_partitions_command_creates_and_expires() {
    let test_db = pg().await;
    let db = test_db.db().clone();
    db.create_all(&[Event::SCHEMA]).await.expect("create_all");
    // A partition long expired, made by hand, for --expire to find.
    execute_sql(
        &db,
        "CREATE TABLE pt_events_p2001_01 PARTITION OF pt_events FOR VALUES FROM ('2001-01-01 00:00:00+00') TO ('2001-02-01 00:00:00+00')",
    )
    .await;
    execute_sql(&db, "DROP TABLE pt_events_default").await;
    let url = format!("{}?options=-c%20search_path%3D{}", polystore_tests::database_url(), test_db.schema());
    let mut out = Vec::new();
    let cli = <polystore::migrate::cli::Cli as clap::Parser>::parse_from([
        "migrate",
        "--database-url",
        &url,
        "partitions",
        "--expire",
    ]);
    let ok = polystore::migrate::cli::execute(cli, &[Event::SCHEMA], &mut out).await.expect("the command runs");
    let out = String::from_utf8(out).expect("utf-8");
    assert!(ok, "{out}");
    assert!(out.contains("created partition: pt_events_default"), "{out}");
    assert!(out.contains("dropped partition: pt_events_p2001_01"), "{out}");
    assert!(!partitions(&db, "pt_events").await.contains(&"pt_events_p2001_01".to_owned()));
    test_db.cleanup().await;
}

#[tokio::test]
async fn sqlite_keeps_a_partitioned_model_in_a_plain_table() {
    let db = sqlite().await;
    db.create_all(&[Event::SCHEMA, Customer::SCHEMA, Session::SCHEMA]).await.expect("create_all");
    db.create_all(&[Event::SCHEMA, Customer::SCHEMA, Session::SCHEMA]).await.expect("no drift");
    let ddl = query_text(&db, "SELECT sql FROM sqlite_master WHERE name = 'pt_events'").await.expect("ddl");
    assert!(!ddl.to_uppercase().contains("PARTITION"), "{ddl}");
    assert_eq!(
        query_i64(&db, "SELECT count(*) FROM sqlite_master WHERE name LIKE 'pt_events_%' AND type = 'table'").await,
        0
    );
    for (id, month) in [(1, 1), (2, 6)] {
        event(id, at(2031, month, 2)).insert(&db).await.expect("insert");
    }
    let june = Event::query().filter(Event::CREATED_AT.ge(at(2031, 6, 1))).all(&db).await.expect("query");
    assert_eq!(june, [event(2, at(2031, 6, 2))]);
    assert!(db.ensure_partitions(&[Event::SCHEMA]).await.expect("ensure").is_empty());
    assert!(db.expire_partitions(&[Event::SCHEMA]).await.expect("expire").is_empty());
    Session { id: 7, user_name: "u".into() }.insert(&db).await.expect("insert");
    assert_eq!(Session::find(&db, 7).await.expect("find").user_name, "u");
}

#[tokio::test]
async fn mongodb_turns_range_retention_into_a_ttl_index() {
    run_on_mongo(|store| async move {
        store.create_all(&[Event::SCHEMA, Customer::SCHEMA]).await.expect("create_all");
        let reply = store
            .run_command(polystore::mongo::driver::bson::doc! { "listIndexes": "pt_events" })
            .await
            .expect("listIndexes");
        let indexes = reply.get_document("cursor").and_then(|c| c.get_array("firstBatch")).expect("a cursor").clone();
        let ttl = indexes
            .iter()
            .filter_map(|i| i.as_document())
            .find(|i| i.get_str("name").ok() == Some("pt_events_created_at_retention"))
            .unwrap_or_else(|| panic!("the retention index: {indexes:?}"));
        let seconds = ttl.get("expireAfterSeconds").and_then(|v| v.as_i64().or(v.as_i32().map(i64::from)));
        assert_eq!(seconds, Some(3 * 31 * 86_400), "three months, a month counted as 31 days: {ttl:?}");
        assert_eq!(
            ttl.get_document("key").expect("key"),
            &polystore::mongo::driver::bson::doc! { "_id.created_at": 1 },
            "the partition column is part of the key, stored in `_id`"
        );
        // Creating again is idempotent (same specs).
        store.create_all(&[Event::SCHEMA]).await.expect("create_all again");
        // List partitioning has no retention: no TTL index.
        let reply = store
            .run_command(polystore::mongo::driver::bson::doc! { "listIndexes": "pt_customers" })
            .await
            .expect("listIndexes");
        let batch = reply.get_document("cursor").and_then(|c| c.get_array("firstBatch")).expect("a cursor");
        assert!(batch.iter().filter_map(|i| i.as_document()).all(|i| !i.contains_key("expireAfterSeconds")));
    })
    .await;
}

mod sharding {
    use polystore::schema::{
        AutoTimestamp, ColumnType, DistributionKind, DistributionSchema, FieldSchema, IndexSchema, ModelSchema,
        RedisIndex, Scalar,
    };
    use polystore_tests::run_on_mongo;

    const fn field(name: &'static str, ty: ColumnType) -> FieldSchema {
        FieldSchema {
            name,
            column: name,
            ty,
            generated: false,
            auto: AutoTimestamp::None,
            default: None,
            redis: RedisIndex::None,
            renamed_from: None,
            checks: &[],
        }
    }

    /// A distributed model as `#[model(distributed_by = tenant_id)]` describes it.
    static ORDERS: ModelSchema = ModelSchema {
        name: "Order",
        table: "pt_orders",
        fields: &[
            field("id", ColumnType::scalar(Scalar::I64)),
            field("tenant_id", ColumnType::scalar(Scalar::I64)),
            field("number", ColumnType::scalar(Scalar::Text)),
        ],
        primary_key: &[0],
        indexes: &[IndexSchema { name: "pt_orders_number_tenant_id_key", fields: &[2, 1], unique: true, ttl: None }],
        distribution: Some(DistributionSchema { column: 1, kind: DistributionKind::Hash, colocate_with: None }),
        ..ModelSchema::EMPTY
    };

    #[tokio::test]
    async fn a_server_that_is_not_sharded_gets_no_shard_commands() {
        run_on_mongo(|store| async move {
            assert!(!store.is_sharded().await.expect("hello"), "the local server is not a sharded cluster");
            let before = store.stats().statements();
            store.create_all(&[&ORDERS]).await.expect("create_all");
            // hello, listCollections, create, createIndexes: no enableSharding / shardCollection.
            assert_eq!(store.stats().statements() - before, 4);
            let reply = store
                .run_command(polystore::mongo::driver::bson::doc! { "listIndexes": "pt_orders" })
                .await
                .expect("listIndexes");
            let batch = reply.get_document("cursor").and_then(|c| c.get_array("firstBatch")).expect("a cursor");
            let unique = batch
                .iter()
                .filter_map(|i| i.as_document())
                .find(|i| i.get_str("name").ok() == Some("pt_orders_number_tenant_id_key"))
                .expect("the unique index");
            let keys: Vec<&str> = unique.get_document("key").expect("key").keys().map(String::as_str).collect();
            assert_eq!(keys, ["number", "tenant_id"], "created as declared when not sharded");
        })
        .await;
    }
}
