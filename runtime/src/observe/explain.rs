//! The plans of slow PostgreSQL statements: `EXPLAIN (FORMAT JSON)` of the statement's generic
//! plan, run on a task of its own after the slow statement returned (off the hot path), at most
//! one at a time and one per interval, flagging sequential scans.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::Shape;

/// What a handle needs to explain its slow statements: the pool to run `EXPLAIN` on and the
/// rate limit.
#[derive(Debug)]
pub(crate) struct Explainer {
    #[cfg(feature = "postgres")]
    pool: sqlx::PgPool,
    min_interval: Duration,
    running: AtomicBool,
    last: Mutex<Option<Instant>>,
}

impl Explainer {
    #[cfg(feature = "postgres")]
    pub(crate) fn new(pool: sqlx::PgPool, min_interval: Duration) -> Self {
        Explainer { pool, min_interval, running: AtomicBool::new(false), last: Mutex::new(None) }
    }

    /// Whether an explain may start now; marks it running if so.
    fn admit(&self) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|t| t.elapsed() < self.min_interval) {
            return false;
        }
        if self.running.swap(true, Ordering::AcqRel) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }
}

/// Explains `sql` in the background when the rate limit allows (and a tokio runtime runs).
pub(crate) fn explain_later(explainer: &std::sync::Arc<Explainer>, shape: Shape, sql: &str) {
    #[cfg(feature = "postgres")]
    if shape.system == "postgresql" && explainable(sql) && explainer.admit() {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            explainer.running.store(false, Ordering::Release);
            return;
        };
        let explainer = explainer.clone();
        let sql = sql.to_owned();
        runtime.spawn(async move {
            let result = generic_plan(&explainer.pool, &sql).await;
            explainer.running.store(false, Ordering::Release);
            report(shape, &sql, result);
        });
    }
    #[cfg(not(feature = "postgres"))]
    let _ = (explainer, shape, sql);
}

/// Statements `EXPLAIN` accepts (a single query or DML statement, not DDL or utility commands).
pub(crate) fn explainable(sql: &str) -> bool {
    let first = sql.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
    matches!(first.as_str(), "SELECT" | "WITH" | "INSERT" | "UPDATE" | "DELETE" | "VALUES" | "TABLE")
        && !sql.contains(';')
}

/// The highest `$n` placeholder in `sql`.
fn parameters(sql: &str) -> usize {
    let bytes = sql.as_bytes();
    let mut max = 0;
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'$' {
            let digits: String = sql[i + 1..].chars().take_while(char::is_ascii_digit).collect();
            if let Ok(n) = digits.parse::<usize>() {
                max = max.max(n);
            }
        }
    }
    max
}

/// The plan PostgreSQL would use for any values (a generic plan: the statement is prepared and
/// explained with NULL parameters under `plan_cache_mode = force_generic_plan`), inside a
/// transaction that is rolled back. Nothing is executed.
#[cfg(feature = "postgres")]
async fn generic_plan(pool: &sqlx::PgPool, sql: &str) -> Result<serde_json::Value, String> {
    let mut conn = pool.acquire().await.map_err(|e| e.to_string())?;
    generic_plan_on(&mut conn, sql).await
}

/// [`generic_plan`] on a given connection (the index advisor's, which holds HypoPG's
/// hypothetical indexes: they live in one server session).
#[cfg(feature = "postgres")]
pub(crate) async fn generic_plan_on(conn: &mut sqlx::PgConnection, sql: &str) -> Result<serde_json::Value, String> {
    use sqlx::{AssertSqlSafe, Row as _};
    let args = vec!["NULL"; parameters(sql)].join(", ");
    let execute = if args.is_empty() {
        "EXECUTE polystore_explain".to_owned()
    } else {
        format!("EXECUTE polystore_explain({args})")
    };
    let setup = format!("BEGIN; SET LOCAL plan_cache_mode = force_generic_plan; PREPARE polystore_explain AS {sql}");
    let result = async {
        sqlx::raw_sql(AssertSqlSafe(setup)).execute(&mut *conn).await?;
        let row =
            sqlx::raw_sql(AssertSqlSafe(format!("EXPLAIN (FORMAT JSON) {execute}"))).fetch_one(&mut *conn).await?;
        let plan: serde_json::Value = row.try_get(0)?;
        Ok::<_, sqlx::Error>(plan)
    }
    .await;
    // Leaves the connection as it was, whatever happened above.
    let _ = sqlx::raw_sql("DEALLOCATE polystore_explain").execute(&mut *conn).await;
    let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
    result.map_err(|e| crate::error::sqlx_message(&e))
}

/// The tables a plan reads with a sequential scan, in plan order.
pub(crate) fn seq_scans(plan: &serde_json::Value) -> Vec<String> {
    fn walk(node: &serde_json::Value, out: &mut Vec<String>) {
        match node {
            serde_json::Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            serde_json::Value::Object(map) => {
                if map.get("Node Type").and_then(|t| t.as_str()) == Some("Seq Scan")
                    && let Some(table) = map.get("Relation Name").and_then(|r| r.as_str())
                {
                    out.push(table.to_owned());
                }
                map.values().for_each(|v| walk(v, out));
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(plan, &mut out);
    out
}

fn report(shape: Shape, sql: &str, plan: Result<serde_json::Value, String>) {
    match plan {
        Ok(plan) => {
            let scans = seq_scans(&plan);
            let plan_text = plan.to_string();
            tracing::event!(
                target: "polystore::slow_query::plan",
                tracing::Level::WARN,
                db.system = shape.system,
                polystore.model = shape.model(),
                db.query.text = sql,
                seq_scans = scans.join(", "),
                plan = plan_text,
                "{}",
                if scans.is_empty() {
                    "plan of a slow statement".to_owned()
                } else {
                    format!("slow statement reads whole tables (Seq Scan on {}): is an index missing?", scans.join(", "))
                }
            );
        }
        Err(why) => {
            tracing::debug!(target: "polystore::slow_query::plan", error = why, "could not explain a slow statement")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_and_statement_kinds() {
        assert_eq!(parameters("SELECT * FROM t WHERE a = $1 AND b = ANY($12)"), 12);
        assert_eq!(parameters("SELECT 1"), 0);
        assert!(explainable("  select * from t"));
        assert!(explainable("UPDATE t SET a = $1"));
        assert!(!explainable("CREATE TABLE t (a int)"));
        assert!(!explainable("SELECT 1; DROP TABLE t"));
    }

    #[test]
    fn sequential_scans_are_found_at_any_depth() {
        let plan = serde_json::json!([{ "Plan": {
            "Node Type": "Nested Loop",
            "Plans": [
                { "Node Type": "Seq Scan", "Relation Name": "books" },
                { "Node Type": "Index Scan", "Relation Name": "writers" }
            ]
        }}]);
        assert_eq!(seq_scans(&plan), ["books"]);
    }
}
