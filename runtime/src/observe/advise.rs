//! The index advisor: reads a workload (statement texts with how often they ran), finds the
//! filters and sorts that PostgreSQL answers by reading a whole table, weighs a candidate
//! index for each with HypoPG's hypothetical indexes, and says what to add — as the model
//! attribute and as the migration statement it generates.
//!
//! The workload comes from a [`statement_scope`](super::statement_scope) report
//! ([`Workload::from_scope`]), from `pg_stat_statements` ([`Workload::from_pg_stat_statements`])
//! or is built by hand ([`Workload::add`]). Statements are planned, never executed: each is
//! prepared and explained for any values (a generic plan with NULL parameters, in a
//! transaction that is rolled back), as the slow-statement log does.
//!
//! MongoDB: [`explain_find`](super::explain_find) flags a `COLLSCAN` and suggests the index.

use std::fmt;

use super::ScopeReport;
use crate::schema::ModelSchema;

/// A candidate must lower the workload's estimated cost by at least this fraction to be
/// advised (planner estimates are rough; a few percent is noise).
pub const MIN_COST_DROP: f64 = 0.10;

/// The most columns a suggested index has.
const MAX_COLUMNS: usize = 4;

/// Statements and how often each ran: what the advisor weighs indexes against.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Workload {
    statements: Vec<WorkloadStatement>,
}

/// One statement of a [`Workload`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WorkloadStatement {
    /// The statement text, with `$n` placeholders where values go.
    pub sql: String,
    /// How many times it ran.
    pub calls: u64,
    /// The time it took in all, in milliseconds, when the source knows it
    /// (`pg_stat_statements`).
    pub total_ms: Option<f64>,
}

impl Workload {
    /// An empty workload.
    pub fn new() -> Self {
        Workload::default()
    }

    /// Adds `calls` runs of `sql` (added to the count of the same text if it is already in).
    pub fn add(&mut self, sql: impl Into<String>, calls: u64) -> &mut Self {
        self.push(sql.into(), calls, None);
        self
    }

    fn push(&mut self, sql: String, calls: u64, total_ms: Option<f64>) {
        let sql = sql.trim().to_owned();
        if sql.is_empty() {
            return;
        }
        match self.statements.iter_mut().find(|s| s.sql == sql) {
            Some(s) => {
                s.calls += calls;
                s.total_ms = match (s.total_ms, total_ms) {
                    (Some(a), Some(b)) => Some(a + b),
                    (a, b) => a.or(b),
                };
            }
            None => self.statements.push(WorkloadStatement { sql, calls, total_ms }),
        }
    }

    /// The statements, in the order they were added.
    pub fn statements(&self) -> &[WorkloadStatement] {
        &self.statements
    }

    /// The PostgreSQL statements a [`statement_scope`](super::statement_scope) counted, with
    /// their counts.
    pub fn from_scope(report: &ScopeReport) -> Self {
        let mut w = Workload::new();
        for shape in report.shapes.iter().filter(|s| s.system == "postgresql") {
            w.push(shape.statement.clone(), shape.count, None);
        }
        w
    }

    /// Reads a workload written to a file: either a serialised [`ScopeReport`] (JSON, its
    /// `shapes` with `system`, `statement` and `count`), or SQL, one statement per line
    /// (empty lines and `--` comments skipped; a line may end in `;`).
    pub fn from_text(text: &str) -> Result<Self, String> {
        let mut w = Workload::new();
        if text.trim_start().starts_with('{') {
            let v: serde_json::Value =
                serde_json::from_str(text).map_err(|e| format!("not a JSON scope report: {e}"))?;
            let shapes = v
                .get("shapes")
                .and_then(|s| s.as_array())
                .ok_or("a JSON workload needs a `shapes` array (a serialised ScopeReport)")?;
            for shape in shapes {
                if shape.get("system").and_then(|s| s.as_str()).is_some_and(|s| s != "postgresql") {
                    continue;
                }
                let sql = shape.get("statement").and_then(|s| s.as_str()).ok_or("a shape without `statement`")?;
                let calls = shape.get("count").and_then(|c| c.as_u64()).unwrap_or(1);
                w.push(sql.to_owned(), calls, None);
            }
        } else {
            for line in text.lines().map(str::trim) {
                if line.is_empty() || line.starts_with("--") {
                    continue;
                }
                w.push(line.trim_end_matches(';').to_owned(), 1, None);
            }
        }
        Ok(w)
    }

    /// The `top` statements of this database by total execution time, from the
    /// `pg_stat_statements` view. Fails with [`Error::Unsupported`](crate::Error::Unsupported),
    /// saying how to enable it, when the extension is not installed in the database.
    #[cfg(feature = "postgres")]
    pub async fn from_pg_stat_statements(db: &crate::Db, top: usize) -> crate::Result<Self> {
        use sqlx::Row as _;
        let pool = db
            .pg_pool()
            .ok_or_else(|| crate::Error::Unsupported { store: "sqlite", what: "pg_stat_statements".into() })?;
        let installed: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT FROM pg_extension WHERE extname = 'pg_stat_statements')")
                .fetch_one(pool)
                .await
                .map_err(pg_error)?;
        if !installed {
            return Err(crate::Error::Unsupported {
                store: "postgresql",
                what: "reading the workload from pg_stat_statements: the extension is not installed in this \
                       database (add pg_stat_statements to shared_preload_libraries, restart, then \
                       CREATE EXTENSION pg_stat_statements) — or pass the statements yourself"
                    .into(),
            });
        }
        let rows = sqlx::query(
            "SELECT query, calls, total_exec_time FROM pg_stat_statements \
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
             ORDER BY total_exec_time DESC LIMIT $1",
        )
        .bind(i64::try_from(top).unwrap_or(i64::MAX))
        .fetch_all(pool)
        .await
        .map_err(pg_error)?;
        let mut w = Workload::new();
        for row in rows {
            let sql: String = row.try_get(0).map_err(pg_error)?;
            let calls: i64 = row.try_get(1).map_err(pg_error)?;
            let ms: f64 = row.try_get(2).map_err(pg_error)?;
            w.push(sql, u64::try_from(calls).unwrap_or(0), Some(ms));
        }
        Ok(w)
    }
}

/// A PostgreSQL error of the advisor's own statements, classified like any other.
#[cfg(feature = "postgres")]
fn pg_error(e: sqlx::Error) -> crate::Error {
    crate::exec::map_error(e, "postgresql", None)
}

/// One index the advisor suggests.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct IndexAdvice {
    /// The table, as the model names it (`billing.invoices`), or as the plan did.
    pub table: String,
    /// The model stored in that table, when one of the given schemas is.
    pub model: Option<&'static str>,
    /// The index's columns, in order: equality filters first, then the sort or range column.
    pub columns: Vec<String>,
    /// The attribute to add to the model (`#[model(index(country, created_at))]`), when the
    /// table belongs to a model.
    pub attribute: Option<String>,
    /// The statement the next generated migration will hold for that attribute.
    pub migration: String,
    /// The workload's statements the index serves.
    pub statements: Vec<String>,
    /// How often those ran.
    pub calls: u64,
    /// Their estimated cost now: the sum over the statements of calls × the plan's total cost
    /// (PostgreSQL's planner units).
    pub cost_before: f64,
    /// The same with the index in place, as HypoPG estimates it; `None` when HypoPG was not
    /// available and the candidate could not be weighed.
    pub cost_after: Option<f64>,
}

impl IndexAdvice {
    /// The fraction of the estimated cost the index saves (`0.97` = 97 % cheaper), when
    /// HypoPG weighed it.
    pub fn cost_drop(&self) -> Option<f64> {
        let after = self.cost_after?;
        (self.cost_before > 0.0).then(|| 1.0 - after / self.cost_before)
    }
}

/// A statement or candidate the advisor left out, and why.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Skipped {
    /// The statement (or the candidate index, `table (a, b)`).
    pub what: String,
    /// Why nothing is suggested for it.
    pub reason: String,
}

/// What [`advise_indexes`] found.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct IndexReport {
    /// Whether HypoPG weighed the candidates. Without it, `advice` lists unweighed candidates.
    pub hypopg: bool,
    /// The suggested indexes, largest estimated saving first.
    pub advice: Vec<IndexAdvice>,
    /// Statements with nothing to suggest (already served by an index, not explainable, …)
    /// and candidates HypoPG did not confirm.
    pub skipped: Vec<Skipped>,
}

impl fmt::Display for IndexReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.advice.is_empty() {
            writeln!(f, "no index to suggest: every statement of the workload is served, or none would gain")?;
        }
        for (n, a) in self.advice.iter().enumerate() {
            let cols = a.columns.join(", ");
            writeln!(f, "{}. index on {} ({cols}), for {} statement run(s)", n + 1, a.table, a.calls)?;
            match (a.cost_after, a.cost_drop()) {
                (Some(after), Some(drop)) => writeln!(
                    f,
                    "   estimated cost {:.0} -> {:.0} ({:.0}% less, HypoPG)",
                    a.cost_before,
                    after,
                    drop * 100.0
                )?,
                _ => writeln!(f, "   estimated cost now {:.0}; not weighed (HypoPG is not available)", a.cost_before)?,
            }
            match (&a.attribute, a.model) {
                (Some(attr), Some(model)) => writeln!(f, "   add to {model}: {attr}")?,
                _ => writeln!(f, "   (no registered model stores {})", a.table)?,
            }
            writeln!(f, "   migration: {};", a.migration)?;
            for s in &a.statements {
                writeln!(f, "   serves: {s}")?;
            }
        }
        for s in &self.skipped {
            writeln!(f, "skipped: {} — {}", s.what, s.reason)?;
        }
        Ok(())
    }
}

/// What a plan node tells about one table read in full.
#[derive(Debug, Clone, PartialEq)]
struct FullScan {
    table: String,
    filter: Option<String>,
    sort: Vec<String>,
}

/// Every sequential scan in `plan` with its filter and the sort keys of a `Sort` right above
/// it.
fn full_scans(plan: &serde_json::Value) -> Vec<FullScan> {
    fn walk(node: &serde_json::Value, sort: &[String], out: &mut Vec<FullScan>) {
        match node {
            serde_json::Value::Array(items) => items.iter().for_each(|i| walk(i, sort, out)),
            serde_json::Value::Object(map) => {
                if let Some(plan) = map.get("Plan") {
                    return walk(plan, sort, out);
                }
                let kind = map.get("Node Type").and_then(|t| t.as_str()).unwrap_or("");
                if kind == "Seq Scan"
                    && let Some(table) = map.get("Relation Name").and_then(|r| r.as_str())
                {
                    out.push(FullScan {
                        table: table.to_owned(),
                        filter: map.get("Filter").and_then(|f| f.as_str()).map(str::to_owned),
                        sort: sort.to_vec(),
                    });
                }
                let keys: Vec<String> = if matches!(kind, "Sort" | "Incremental Sort") {
                    map.get("Sort Key")
                        .and_then(|k| k.as_array())
                        .map(|k| k.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect())
                        .unwrap_or_default()
                } else if kind == "Gather Merge" || kind == "Gather" || kind == "Limit" {
                    sort.to_vec()
                } else {
                    Vec::new()
                };
                if let Some(children) = map.get("Plans") {
                    walk(children, &keys, out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(plan, &[], &mut out);
    out
}

/// The estimated total cost of a plan (`EXPLAIN (FORMAT JSON)` output).
fn total_cost(plan: &serde_json::Value) -> Option<f64> {
    plan.get(0)?.get("Plan")?.get("Total Cost")?.as_f64()
}

/// How a filter uses a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Use {
    Equality,
    Range,
}

/// The columns (of `columns`) a plan's filter text compares, with how, in order of
/// appearance: `((country)::text = $1) AND (created_at > $2)` gives country (equality),
/// created_at (range). Other comparisons (`LIKE`, functions of a column) are left out.
fn filter_columns(filter: &str, columns: &[String]) -> Vec<(String, Use)> {
    let bytes = filter.as_bytes();
    let mut out: Vec<(String, Use)> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let (ident, end) = if c == b'"' {
            match filter[i + 1..].find('"') {
                Some(close) => (filter[i + 1..i + 1 + close].to_owned(), i + close + 2),
                None => break,
            }
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let len =
                filter[i..].find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_')).unwrap_or(filter.len() - i);
            (filter[i..i + len].to_owned(), i + len)
        } else if c == b'\'' {
            // a literal: skip to its closing quote
            let close = filter[i + 1..].find('\'').map_or(bytes.len(), |p| i + p + 2);
            i = close;
            continue;
        } else {
            i += 1;
            continue;
        };
        let after_cast = i >= 2 && &filter[i - 2..i] == "::";
        let called = filter[end..].starts_with('(');
        // `lower(name)`: an argument of a function, which a plain index does not serve.
        let argument = filter[..i]
            .trim_end()
            .strip_suffix('(')
            .is_some_and(|before| before.ends_with(|ch: char| ch.is_ascii_alphanumeric() || ch == '_'));
        i = end;
        if after_cast || called || argument || !columns.contains(&ident) {
            continue;
        }
        // Skips `)` and `::type` casts after the column (type names may hold spaces:
        // `character varying`), then reads the operator.
        let mut rest = &filter[end..];
        loop {
            rest = rest.trim_start();
            if let Some(r) = rest.strip_prefix(')') {
                rest = r;
            } else if let Some(r) = rest.strip_prefix("::") {
                let len = r.find([')', '=', '<', '>', '!', '~']).unwrap_or(r.len());
                rest = &r[len..];
            } else {
                break;
            }
        }
        let usage = if rest.starts_with("= ") || rest.starts_with("=$") || rest.starts_with("IS NULL") {
            Some(Use::Equality)
        } else if (rest.starts_with('<') || rest.starts_with('>')) && !rest.starts_with("<>") {
            Some(Use::Range)
        } else {
            None
        };
        if let Some(u) = usage
            && !out.iter().any(|(c, _)| *c == ident)
        {
            out.push((ident, u));
        }
    }
    out
}

/// The column of a plan's sort key (`created_at DESC`, `t.created_at`, `"Created" NULLS FIRST`),
/// if it is a plain column of `columns`.
fn sort_column(key: &str, columns: &[String]) -> Option<String> {
    let mut k = key.trim();
    for suffix in [" NULLS FIRST", " NULLS LAST", " DESC", " ASC"] {
        k = k.strip_suffix(suffix).unwrap_or(k).trim_end();
    }
    let k = k.rsplit('.').next().unwrap_or(k);
    let k = k.strip_prefix('"').and_then(|k| k.strip_suffix('"')).unwrap_or(k);
    columns.iter().find(|c| *c == k).cloned()
}

/// The index a full scan asks for: equality columns, then the sort columns or else the first
/// range column.
fn candidate(scan: &FullScan, columns: &[String]) -> Vec<String> {
    let used = scan.filter.as_deref().map(|f| filter_columns(f, columns)).unwrap_or_default();
    let mut out: Vec<String> = used.iter().filter(|(_, u)| *u == Use::Equality).map(|(c, _)| c.clone()).collect();
    let sorts: Vec<String> = scan.sort.iter().map_while(|k| sort_column(k, columns)).collect();
    if sorts.is_empty() {
        if let Some((c, _)) = used.iter().find(|(_, u)| *u == Use::Range) {
            out.push(c.clone());
        }
    } else {
        for s in sorts {
            if !out.contains(&s) {
                out.push(s);
            }
        }
    }
    out.truncate(MAX_COLUMNS);
    out
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// `"schema"."table"` or `"table"`.
fn quote_table(table: &str) -> String {
    match table.split_once('.') {
        Some((schema, name)) => format!("{}.{}", quote(schema), quote(name)),
        None => quote(table),
    }
}

/// The model attribute for an index on `columns` of `schema`'s table, when each column is a
/// field of it.
fn index_attribute(schema: &ModelSchema, columns: &[String]) -> Option<String> {
    let fields: Option<Vec<&str>> =
        columns.iter().map(|c| schema.fields.iter().find(|f| f.column == c).map(|f| f.name)).collect();
    Some(format!("#[model(index({}))]", fields?.join(", ")))
}

/// The name polystore gives an index on `columns` of `table` (`{table}_{columns}_idx`).
fn index_name(table: &str, columns: &[String]) -> String {
    let table = table.rsplit('.').next().unwrap_or(table);
    format!("{table}_{}_idx", columns.join("_"))
}

/// One candidate index and the statements asking for it.
#[derive(Debug, Default)]
struct Candidate {
    statements: Vec<(String, u64, f64)>,
}

/// Finds the filters and sorts of `workload` that PostgreSQL answers with a sequential scan,
/// weighs an index for each with HypoPG (`CREATE EXTENSION IF NOT EXISTS hypopg`, a
/// hypothetical index per candidate, the plans again, then `hypopg_reset()`) and returns those
/// that lower the workload's estimated cost by at least [`MIN_COST_DROP`]. `schemas` (usually
/// [`crate::schema::registered`]) map tables to models for the attribute to add.
///
/// Nothing is executed: statements are planned for any values, in transactions rolled back,
/// on a connection that is closed afterwards (hypothetical indexes live in that session only:
/// other connections never see them). Without HypoPG the candidates are listed unweighed
/// (`IndexReport::hypopg` is `false`).
#[cfg(feature = "postgres")]
pub async fn advise_indexes(
    db: &crate::Db,
    workload: &Workload,
    schemas: &[&'static ModelSchema],
) -> crate::Result<IndexReport> {
    let pool = db.pg_pool().ok_or_else(|| crate::Error::Unsupported {
        store: "sqlite",
        what: "the index advisor (it plans statements with PostgreSQL and HypoPG)".into(),
    })?;
    let conn = pool.acquire().await.map_err(pg_error)?;
    let mut conn = conn.detach();
    let result = advise_on(&mut conn, workload, schemas).await;
    let _ = sqlx::Connection::close(conn).await;
    result
}

#[cfg(feature = "postgres")]
async fn advise_on(
    conn: &mut sqlx::PgConnection,
    workload: &Workload,
    schemas: &[&'static ModelSchema],
) -> crate::Result<IndexReport> {
    use super::explain::{explainable, generic_plan_on};

    let mut report = IndexReport::default();
    let mut candidates: std::collections::BTreeMap<(String, Vec<String>), Candidate> =
        std::collections::BTreeMap::new();
    let mut columns_of: std::collections::BTreeMap<String, Vec<String>> = std::collections::BTreeMap::new();
    for st in &workload.statements {
        let skip = |reason: &str| Skipped { what: st.sql.clone(), reason: reason.to_owned() };
        if !explainable(&st.sql) {
            report.skipped.push(skip("not a single SELECT, WITH, INSERT, UPDATE or DELETE statement"));
            continue;
        }
        let plan = match generic_plan_on(conn, &st.sql).await {
            Ok(plan) => plan,
            Err(why) => {
                report.skipped.push(skip(&format!("cannot be planned: {why}")));
                continue;
            }
        };
        let cost = total_cost(&plan).unwrap_or(0.0);
        let scans = full_scans(&plan);
        if scans.is_empty() {
            report.skipped.push(skip("no table is read in full"));
            continue;
        }
        let mut asked = false;
        for scan in scans {
            let table = table_of(schemas, &scan.table);
            if !columns_of.contains_key(&table) {
                let cols = table_columns(conn, &table).await?;
                columns_of.insert(table.clone(), cols);
            }
            let cols = candidate(&scan, &columns_of[&table]);
            if cols.is_empty() {
                continue;
            }
            asked = true;
            let entry = candidates.entry((table, cols)).or_default();
            if !entry.statements.iter().any(|(s, _, _)| *s == st.sql) {
                entry.statements.push((st.sql.clone(), st.calls, cost));
            }
        }
        if !asked {
            report.skipped.push(skip("reads a table in full without a filter or sort an index could serve"));
        }
    }

    let hypo_schema = hypopg(conn).await;
    report.hypopg = hypo_schema.is_some();
    for ((table, columns), cand) in candidates {
        let what = format!("{table} ({})", columns.join(", "));
        if let Some(existing) = existing_index(conn, &table, &columns).await? {
            report.skipped.push(Skipped {
                what,
                reason: format!(
                    "index {existing} already covers these columns; the planner still prefers a sequential scan"
                ),
            });
            continue;
        }
        let calls: u64 = cand.statements.iter().map(|(_, c, _)| c).sum();
        let cost_before: f64 = cand.statements.iter().map(|(_, c, cost)| *c as f64 * cost).sum();
        let cost_after = match &hypo_schema {
            Some(schema) => Some(weigh(conn, schema, &table, &columns, &cand).await?),
            None => None,
        };
        let model = schemas.iter().find(|s| s.table == table);
        let advice = IndexAdvice {
            migration: format!(
                "CREATE INDEX {} ON {} ({})",
                quote(&index_name(&table, &columns)),
                quote_table(&table),
                columns.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ")
            ),
            attribute: model.and_then(|m| index_attribute(m, &columns)),
            model: model.map(|m| m.name),
            table,
            columns,
            statements: cand.statements.into_iter().map(|(s, _, _)| s).collect(),
            calls,
            cost_before,
            cost_after,
        };
        match advice.cost_drop() {
            Some(drop) if drop < MIN_COST_DROP => report.skipped.push(Skipped {
                what,
                reason: format!(
                    "HypoPG estimates too small a gain ({:.0} -> {:.0}, {:.0}%)",
                    advice.cost_before,
                    advice.cost_after.unwrap_or(0.0),
                    drop * 100.0
                ),
            }),
            _ => report.advice.push(advice),
        }
    }
    report.advice.sort_by(|a, b| {
        let saved = |x: &IndexAdvice| x.cost_before - x.cost_after.unwrap_or(x.cost_before);
        saved(b).total_cmp(&saved(a)).then_with(|| b.cost_before.total_cmp(&a.cost_before))
    });
    Ok(report)
}

/// The model's table name for a plan's relation name (which has no schema), or the name.
#[cfg(feature = "postgres")]
fn table_of(schemas: &[&'static ModelSchema], relation: &str) -> String {
    schemas.iter().find(|s| s.table_name() == relation).map_or_else(|| relation.to_owned(), |s| s.table.to_owned())
}

#[cfg(feature = "postgres")]
async fn table_columns(conn: &mut sqlx::PgConnection, table: &str) -> crate::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT attname::text FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 \
         AND NOT attisdropped ORDER BY attnum",
    )
    .bind(quote_table(table))
    .fetch_all(&mut *conn)
    .await
    .map_err(pg_error)
}

/// The name of a real index of `table` whose leading columns are `columns`, if any.
#[cfg(feature = "postgres")]
async fn existing_index(
    conn: &mut sqlx::PgConnection,
    table: &str,
    columns: &[String],
) -> crate::Result<Option<String>> {
    use sqlx::Row as _;
    let rows = sqlx::query(
        "SELECT i.indexrelid::regclass::text, array_agg(a.attname::text ORDER BY k.n) \
         FROM pg_index i \
         CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) \
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
         WHERE i.indrelid = $1::regclass AND i.indpred IS NULL GROUP BY i.indexrelid",
    )
    .bind(quote_table(table))
    .fetch_all(&mut *conn)
    .await
    .map_err(pg_error)?;
    for row in rows {
        let name: String = row.try_get(0).map_err(pg_error)?;
        let cols: Vec<String> = row.try_get(1).map_err(pg_error)?;
        if cols.len() >= columns.len() && cols[..columns.len()] == *columns {
            return Ok(Some(name));
        }
    }
    Ok(None)
}

/// The schema HypoPG's functions live in (quoted), creating the extension if it is available
/// but not created yet; `None` when it cannot be used.
#[cfg(feature = "postgres")]
async fn hypopg(conn: &mut sqlx::PgConnection) -> Option<String> {
    let find = "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'hypopg'";
    for _ in 0..2 {
        if let Ok(Some(schema)) = sqlx::query_scalar::<_, String>(find).fetch_optional(&mut *conn).await {
            return Some(schema);
        }
        // In `public`, not the connection's first search_path schema (which may be
        // short-lived); two sessions creating it at once: one fails, and looks again.
        let created = sqlx::raw_sql("CREATE EXTENSION IF NOT EXISTS hypopg SCHEMA public").execute(&mut *conn).await;
        if created.is_err() {
            let _ = sqlx::raw_sql("CREATE EXTENSION IF NOT EXISTS hypopg").execute(&mut *conn).await;
        }
    }
    None
}

/// The candidate's statements' cost with a hypothetical index on `columns` (calls × cost).
#[cfg(feature = "postgres")]
async fn weigh(
    conn: &mut sqlx::PgConnection,
    hypopg: &str,
    table: &str,
    columns: &[String],
    cand: &Candidate,
) -> crate::Result<f64> {
    let create = format!(
        "CREATE INDEX ON {} ({})",
        quote_table(table),
        columns.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ")
    );
    sqlx::query(sqlx::AssertSqlSafe(format!("SELECT indexrelid FROM {hypopg}.hypopg_create_index($1)")))
        .bind(create)
        .fetch_all(&mut *conn)
        .await
        .map_err(pg_error)?;
    let mut after = 0.0;
    for (sql, calls, before) in &cand.statements {
        // A plan that fails now is counted at its old cost: no gain claimed.
        let cost = match super::explain::generic_plan_on(conn, sql).await {
            Ok(plan) => total_cost(&plan).unwrap_or(*before).min(*before),
            Err(_) => *before,
        };
        after += *calls as f64 * cost;
    }
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("SELECT {hypopg}.hypopg_reset()")))
        .execute(&mut *conn)
        .await
        .map_err(pg_error)?;
    Ok(after)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn filters_give_equality_then_range_columns() {
        let c = cols(&["id", "country", "created_at", "name"]);
        assert_eq!(
            filter_columns("(((country)::text = $1) AND (created_at > $2))", &c),
            [("country".to_owned(), Use::Equality), ("created_at".to_owned(), Use::Range)]
        );
        assert_eq!(filter_columns("(lower(name) = 'x'::text)", &c), []);
        assert_eq!(filter_columns("((name)::text ~~ 'a%'::text)", &c), []);
        assert_eq!(
            filter_columns("((name)::character varying = 'id'::text)", &c),
            [("name".to_owned(), Use::Equality)]
        );
        assert_eq!(filter_columns("(\"country\" <> $1)", &c), []);
        assert_eq!(filter_columns("(created_at <= $1)", &c), [("created_at".to_owned(), Use::Range)]);
    }

    #[test]
    fn candidates_put_sort_columns_after_equality_columns() {
        let c = cols(&["id", "country", "created_at"]);
        let scan = FullScan {
            table: "users".into(),
            filter: Some("((country)::text = $1)".into()),
            sort: vec!["created_at DESC".into()],
        };
        assert_eq!(candidate(&scan, &c), ["country", "created_at"]);
        let range = FullScan { sort: vec![], filter: Some("(created_at > $1)".into()), ..scan.clone() };
        assert_eq!(candidate(&range, &c), ["created_at"]);
        let nothing = FullScan { sort: vec!["lower(country)".into()], filter: None, ..scan };
        assert!(candidate(&nothing, &c).is_empty());
    }

    #[test]
    fn sequential_scans_under_sorts_carry_the_sort_keys() {
        let plan = serde_json::json!([{ "Plan": {
            "Node Type": "Limit", "Total Cost": 10.5,
            "Plans": [{ "Node Type": "Sort", "Sort Key": ["created_at DESC"],
                "Plans": [{ "Node Type": "Seq Scan", "Relation Name": "users", "Filter": "(x = $1)" }] }]
        }}]);
        assert_eq!(total_cost(&plan), Some(10.5));
        assert_eq!(
            full_scans(&plan),
            [FullScan { table: "users".into(), filter: Some("(x = $1)".into()), sort: vec!["created_at DESC".into()] }]
        );
    }

    #[test]
    fn workloads_merge_the_same_text_and_read_files() {
        let mut w = Workload::new();
        w.add("SELECT 1", 2).add(" SELECT 1 ", 3).add("", 9);
        assert_eq!(w.statements().len(), 1);
        assert_eq!(w.statements()[0].calls, 5);
        let text = "-- comment\nSELECT * FROM t WHERE a = $1;\n\nSELECT * FROM t WHERE a = $1\n";
        let w = Workload::from_text(text).unwrap();
        assert_eq!(w.statements()[0].calls, 2);
        let json = r#"{"statements": 3, "shapes": [
            {"system": "postgresql", "statement": "SELECT * FROM t", "count": 2},
            {"system": "mongodb", "statement": "find t", "count": 1}]}"#;
        let w = Workload::from_text(json).unwrap();
        assert_eq!(w.statements().len(), 1);
        assert!(Workload::from_text("{\"x\": 1}").is_err());
    }

    #[test]
    fn names_and_quoting() {
        assert_eq!(index_name("billing.invoices", &cols(&["a", "b"])), "invoices_a_b_idx");
        assert_eq!(quote_table("billing.in\"v"), "\"billing\".\"in\"\"v\"");
    }
}
