//! The index advisor against the real servers: a workload recorded by a statement scope on
//! PostgreSQL, a missing index found and its benefit confirmed by HypoPG (and then by creating
//! the index for real); two advisors at once on the same table; statements it cannot use; the
//! `advise` CLI subcommand; MongoDB `explain` flagging a collection scan.

use polystore::mongo::driver::bson::doc;
use polystore::observe::{StatementLimit, Workload, advise_indexes, explain_find, statement_scope};
use polystore::prelude::*;
use polystore_tests::{execute_sql, pg, query_text, run_on_mongo};

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "obs_shoppers")]
struct Shopper {
    #[model(primary_key)]
    id: i64,
    country: String,
    created_at: i64,
    name: String,
}

const ATTRIBUTE: &str = "#[model(index(country, created_at))]";
const MIGRATION: &str =
    r#"CREATE INDEX "obs_shoppers_country_created_at_idx" ON "obs_shoppers" ("country", "created_at")"#;

/// 20 000 shoppers in 50 countries, analysed: big enough that PostgreSQL's estimates make a
/// sequential scan clearly dearer than an index scan.
async fn shoppers(db: &Db) {
    db.create_all(&[Shopper::SCHEMA]).await.unwrap();
    execute_sql(
        db,
        "INSERT INTO obs_shoppers (id, country, created_at, name) \
         SELECT g, 'c' || (g % 50), g * 7 % 100003, 'n' || g FROM generate_series(1, 20000) g",
    )
    .await;
    execute_sql(db, "ANALYZE obs_shoppers").await;
}

/// The page the application renders: the newest shoppers of a country, and a shopper by key.
async fn render(db: &Db, country: &str) -> polystore::Result<usize> {
    let newest = Shopper::query()
        .filter(Shopper::COUNTRY.eq(country))
        .order_by(Shopper::CREATED_AT.desc())
        .limit(20)
        .all(db)
        .await?;
    let one = Shopper::find(db, 7).await?;
    Ok(newest.len() + usize::from(one.id == 7))
}

#[tokio::test]
async fn a_recorded_workload_gets_the_missing_index_and_hypopg_confirms_it() {
    let test_db = pg().await;
    let db = test_db.db().clone();
    shoppers(&db).await;
    let (rendered, scope) = statement_scope(StatementLimit::warn_after(u32::MAX), async {
        for c in ["c1", "c2", "c3", "c1", "c2"] {
            render(&db, c).await?;
        }
        Ok::<_, polystore::Error>(())
    })
    .await;
    rendered.unwrap();
    let workload = Workload::from_scope(&scope);
    assert_eq!(workload.statements().len(), 2, "{workload:?}");

    let report = advise_indexes(&db, &workload, &[Shopper::SCHEMA]).await.unwrap();
    assert!(report.hypopg, "HypoPG is not available: run scripts/dev-services (it installs postgresql-15-hypopg)");
    assert_eq!(report.advice.len(), 1, "{report}");
    let advice = &report.advice[0];
    assert_eq!(advice.columns, ["country", "created_at"], "{report}");
    assert_eq!(advice.model, Some("Shopper"));
    assert_eq!(advice.attribute.as_deref(), Some(ATTRIBUTE));
    assert_eq!(advice.migration, MIGRATION);
    assert_eq!(advice.calls, 5);
    assert_eq!(advice.statements.len(), 1);
    assert!(advice.statements[0].contains("ORDER BY"), "{report}");
    let drop = advice.cost_drop().expect("weighed by HypoPG");
    assert!(drop > 0.5, "HypoPG should estimate a large gain: {report}");
    // The lookup by primary key is served already: it is not among the advice nor skipped
    // for a bad reason.
    let text = report.to_string();
    assert!(text.contains(ATTRIBUTE) && text.contains(MIGRATION) && text.contains("% less, HypoPG"), "{text}");

    // Nothing was created for real, and no hypothetical index outlives the advisor.
    let indexes = query_text(&db, "SELECT string_agg(indexname, ',') FROM pg_indexes WHERE tablename = 'obs_shoppers'")
        .await
        .unwrap_or_default();
    assert!(!indexes.contains("country"), "{indexes}");

    // The suggestion, applied, is what the planner then uses; the advisor has nothing more
    // to say about that statement.
    execute_sql(&db, MIGRATION).await;
    let again = advise_indexes(&db, &workload, &[Shopper::SCHEMA]).await.unwrap();
    assert!(again.advice.is_empty(), "{again}");
    test_db.cleanup().await;
}

#[tokio::test]
async fn two_advisors_at_once_do_not_see_each_others_hypothetical_indexes() {
    let test_db = pg().await;
    let db = test_db.db().clone();
    shoppers(&db).await;
    let mut by_country = Workload::new();
    by_country.add("SELECT * FROM obs_shoppers WHERE country = $1 ORDER BY created_at DESC LIMIT 10", 10);
    let mut by_name = Workload::new();
    by_name.add("SELECT * FROM obs_shoppers WHERE name = $1", 10);
    let schemas = [Shopper::SCHEMA];
    let mut runs = Vec::new();
    for _ in 0..3 {
        runs.push(advise_indexes(&db, &by_country, &schemas));
        runs.push(advise_indexes(&db, &by_name, &schemas));
    }
    let reports = futures_util::future::join_all(runs).await;
    for (n, report) in reports.into_iter().enumerate() {
        let report = report.unwrap();
        let want: &[&str] = if n % 2 == 0 { &["country", "created_at"] } else { &["name"] };
        assert_eq!(report.advice.len(), 1, "{report}");
        assert_eq!(report.advice[0].columns, want, "{report}");
        assert!(report.advice[0].cost_drop().unwrap() > 0.5, "{report}");
    }
    test_db.cleanup().await;
}

#[tokio::test]
async fn statements_it_cannot_use_are_skipped_with_a_reason_not_run() {
    let test_db = pg().await;
    let db = test_db.db().clone();
    shoppers(&db).await;
    let mut w = Workload::new();
    w.add("SELECT * FROM obs_shoppers WHERE id = $1", 100)
        .add("DELETE FROM obs_shoppers WHERE country = $1; DROP TABLE obs_shoppers", 1)
        .add("SELECT * FROM no_such_table WHERE a = $1", 1)
        .add("CREATE INDEX ON obs_shoppers (name)", 1)
        .add("SELECT count(*) FROM obs_shoppers", 1)
        .add("DELETE FROM obs_shoppers WHERE name = $1", 3);
    let report = advise_indexes(&db, &w, &[Shopper::SCHEMA]).await.unwrap();
    let reason = |prefix: &str| {
        report.skipped.iter().find(|s| s.what.starts_with(prefix)).map(|s| s.reason.clone()).unwrap_or_default()
    };
    assert!(reason("SELECT * FROM obs_shoppers WHERE id").contains("no table is read in full"), "{report}");
    assert!(reason("DELETE FROM obs_shoppers WHERE country").contains("not a single"), "{report}");
    assert!(reason("SELECT * FROM no_such_table").contains("cannot be planned"), "{report}");
    assert!(reason("CREATE INDEX").contains("not a single"), "{report}");
    assert!(reason("SELECT count(*)").contains("without a filter or sort"), "{report}");
    // The DELETE was planned, not run: every row is still there, the table too.
    assert_eq!(report.advice.len(), 1, "{report}");
    assert_eq!(report.advice[0].columns, ["name"]);
    assert_eq!(polystore_tests::query_i64(&db, "SELECT count(*) FROM obs_shoppers").await, 20000);
    test_db.cleanup().await;
}

#[tokio::test]
async fn pg_stat_statements_is_read_or_its_absence_explained() {
    let test_db = pg().await;
    let db = test_db.db().clone();
    let installed =
        polystore_tests::query_i64(&db, "SELECT count(*) FROM pg_extension WHERE extname = 'pg_stat_statements'").await;
    match Workload::from_pg_stat_statements(&db, 10).await {
        Ok(w) => assert_eq!(installed, 1, "read a workload without the extension: {w:?}"),
        Err(polystore::Error::Unsupported { store: "postgresql", what }) => {
            assert_eq!(installed, 0);
            assert!(what.contains("shared_preload_libraries") && what.contains("CREATE EXTENSION"), "{what}");
        }
        Err(e) => panic!("unexpected error: {e}"),
    }
    test_db.cleanup().await;
}

#[tokio::test]
async fn the_advise_subcommand_prints_the_attribute_and_the_migration() {
    use clap::Parser as _;
    use polystore::migrate::cli::{Cli, execute};

    let test_db = pg().await;
    let db = test_db.db().clone();
    shoppers(&db).await;
    let file = std::env::temp_dir().join(format!("{}.sql", polystore_tests::unique_name("advise")));
    std::fs::write(
        &file,
        "-- the newest shoppers of a country\n\
         SELECT * FROM obs_shoppers WHERE country = $1 ORDER BY created_at DESC LIMIT 20;\n",
    )
    .unwrap();
    // The CLI connects with the URL alone: point its search_path at the test's schema.
    let url = format!(
        "{}{}options=-csearch_path%3D{}",
        polystore_tests::database_url(),
        if polystore_tests::database_url().contains('?') { "&" } else { "?" },
        test_db.schema()
    );
    let run = |json: bool| {
        let mut args = vec!["migrate", "--database-url", url.as_str(), "advise", "--statements"];
        args.push(file.to_str().unwrap());
        if json {
            args.push("--json");
        }
        let cli = Cli::parse_from(args);
        async move {
            let mut out = Vec::new();
            let ok = execute(cli, &[Shopper::SCHEMA], &mut out).await.unwrap();
            (ok, String::from_utf8(out).unwrap())
        }
    };
    let (ok, out) = run(false).await;
    assert!(ok, "{out}");
    assert!(out.contains("add to Shopper: #[model(index(country, created_at))]"), "{out}");
    assert!(out.contains(&format!("migration: {MIGRATION};")), "{out}");
    let (_, json) = run(true).await;
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["hypopg"], true);
    assert_eq!(v["advice"][0]["attribute"], ATTRIBUTE);
    std::fs::remove_file(&file).unwrap();
    test_db.cleanup().await;
}

#[tokio::test]
async fn mongodb_explain_flags_a_collection_scan_until_the_index_exists() {
    run_on_mongo(|store| async move {
        store.create_all(&[Shopper::SCHEMA]).await?;
        for i in 0..50 {
            Shopper { id: i, country: format!("c{}", i % 5), created_at: i * 3, name: format!("n{i}") }
                .insert(&store)
                .await?;
        }
        let filter = doc! { "country": "c1", "created_at": { "$gt": 10 } };
        let plan = explain_find(&store, Shopper::SCHEMA, filter.clone(), Some(doc! { "created_at": -1 })).await?;
        assert!(plan.collscan, "{plan:?}");
        assert_eq!(plan.suggested_keys, ["country", "created_at"]);
        assert_eq!(plan.attribute.as_deref(), Some(ATTRIBUTE));
        assert_eq!(plan.index, None);

        store
            .run_command(doc! { "createIndexes": "obs_shoppers",
            "indexes": [{ "key": { "country": 1, "created_at": 1 }, "name": "by_country" }] })
            .await?;
        let plan = explain_find(&store, Shopper::SCHEMA, filter, None).await?;
        assert!(!plan.collscan, "{plan:?}");
        assert_eq!(plan.index.as_deref(), Some("by_country"), "{plan:?}");
        assert!(plan.stages.iter().any(|s| s == "IXSCAN"), "{plan:?}");
        assert!(plan.attribute.is_none());
        Ok::<_, polystore::Error>(())
    })
    .await
}
