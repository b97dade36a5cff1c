//! N+1 detection: a scope (one request, one test) that counts the statements run inside it by
//! shape and reports a shape run more often than a limit — the signature of a loop issuing one
//! query per parent row where one batched query (`.with(..)`, `get_many`) would do.
//!
//! The scope is a tokio task-local: statements run by the future given to [`statement_scope`]
//! (on its task) are counted; work spawned onto other tasks is not.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use super::Shape;
use crate::error::{Error, Result};

/// What a scope allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatementLimit {
    /// The most times one statement shape may run in the scope; the next run is reported.
    pub per_shape: u32,
    /// `false`: a `WARN` event (target `polystore::n_plus_one`) the first time a shape goes
    /// past the limit, and the statement runs. `true` (for tests): the statement is refused
    /// with [`Error::TooManyStatements`] instead of running.
    pub strict: bool,
}

impl StatementLimit {
    /// Warn when a shape runs more than `per_shape` times.
    pub const fn warn_after(per_shape: u32) -> Self {
        StatementLimit { per_shape, strict: false }
    }

    /// Refuse a shape's statement past `per_shape` runs ([`Error::TooManyStatements`]).
    pub const fn strict(per_shape: u32) -> Self {
        StatementLimit { per_shape, strict: true }
    }
}

/// One statement shape and how often it ran in a scope.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ShapeCount {
    /// `postgresql`, `sqlite` or `mongodb`.
    pub system: &'static str,
    /// polystore's operation (`find`, `query`, `insert`, …).
    pub operation: &'static str,
    /// The model, or `""` for statements without one.
    pub model: &'static str,
    /// The statement text (SQL with placeholders; for MongoDB the operation and collection).
    pub statement: String,
    /// How many times it ran.
    pub count: u64,
    /// Where the application ran it (`src/routes/orders.rs:42:18`), when the shape went past
    /// the limit: the first frame of the backtrace outside polystore, the standard library,
    /// tokio and the other async plumbing. Needs line tables (`debug = "line-tables-only"` or
    /// more) in the binary; `None` without them and for shapes within the limit.
    pub call_site: Option<String>,
}

/// What a scope saw: every shape with its count, most frequent first.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ScopeReport {
    /// Statements run in the scope.
    pub statements: u64,
    /// Each shape, most frequent first (then by statement text).
    pub shapes: Vec<ShapeCount>,
    /// The shapes that went past the limit.
    pub over_limit: Vec<ShapeCount>,
}

type Key = (&'static str, &'static str, &'static str, Arc<str>);

#[derive(Debug)]
struct Counts {
    limit: StatementLimit,
    counts: HashMap<Key, u64>,
    statements: u64,
    /// Where each shape first went past the limit.
    call_sites: HashMap<Key, String>,
}

tokio::task_local! {
    static SCOPE: Arc<Mutex<Counts>>;
}

/// Runs `fut` in a scope that counts its statements by shape (store, operation, model,
/// statement text) and applies `limit`; returns `fut`'s output and what the scope saw.
///
/// ```no_run
/// # use polystore::prelude::*;
/// # use polystore::observe::{statement_scope, StatementLimit};
/// # #[derive(Model)] struct Post { #[model(primary_key)] id: i64 }
/// # async fn handler(db: &Db) -> polystore::Result<()> {
/// let (posts, report) = statement_scope(StatementLimit::warn_after(5), Post::query().all(db)).await;
/// for shape in &report.over_limit {
///     eprintln!("{} ran {} times", shape.statement, shape.count);
/// }
/// # posts.map(drop) }
/// ```
pub async fn statement_scope<F: Future>(limit: StatementLimit, fut: F) -> (F::Output, ScopeReport) {
    let counts =
        Arc::new(Mutex::new(Counts { limit, counts: HashMap::new(), statements: 0, call_sites: HashMap::new() }));
    let out = SCOPE.scope(counts.clone(), fut).await;
    let counts = counts.lock().unwrap_or_else(|p| p.into_inner());
    (out, report(&counts))
}

/// Runs `fut` and panics — listing every statement shape with its count — when it ran more
/// than `max` statements. For tests: `assert_max_statements(3, load_page(&db)).await`.
#[track_caller]
pub fn assert_max_statements<F: Future>(max: u64, fut: F) -> impl Future<Output = F::Output> {
    let caller = std::panic::Location::caller();
    async move {
        let (out, report) = statement_scope(StatementLimit::warn_after(u32::MAX), fut).await;
        if report.statements > max {
            let shapes: Vec<String> = report
                .shapes
                .iter()
                .map(|s| format!("  {} x {} {} on {}: {}", s.count, s.system, s.operation, model(s.model), s.statement))
                .collect();
            panic!("{caller}: expected at most {max} statements, {} ran:\n{}", report.statements, shapes.join("\n"));
        }
        out
    }
}

fn model(name: &str) -> &str {
    if name.is_empty() { "-" } else { name }
}

fn report(c: &Counts) -> ScopeReport {
    let mut shapes: Vec<ShapeCount> = c
        .counts
        .iter()
        .map(|(key, &count)| ShapeCount {
            system: key.0,
            operation: key.1,
            model: key.2,
            statement: key.3.to_string(),
            count,
            call_site: c.call_sites.get(key).cloned(),
        })
        .collect();
    shapes.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.statement.cmp(&b.statement)));
    let over_limit = shapes.iter().filter(|s| s.count > u64::from(c.limit.per_shape)).cloned().collect();
    ScopeReport { statements: c.statements, shapes, over_limit }
}

/// Counts a statement about to run in the current scope, if any; in a strict scope, refuses
/// it past the limit. `text` is the statement text, or `None` for a MongoDB command (the shape
/// is then the operation and the collection).
pub(crate) fn admit(shape: Shape, text: Option<&Arc<String>>) -> Result<()> {
    SCOPE.try_with(|scope| count(scope, shape, text)).unwrap_or(Ok(()))
}

#[cold]
fn count(scope: &Arc<Mutex<Counts>>, shape: Shape, text: Option<&Arc<String>>) -> Result<()> {
    let statement: Arc<str> = match text {
        Some(sql) => Arc::from(sql.as_str()),
        None => Arc::from(format!("{} {}", shape.op, shape.collection())),
    };
    let mut c = scope.lock().unwrap_or_else(|p| p.into_inner());
    let limit = c.limit;
    let key = (shape.system, shape.op, shape.model(), statement);
    let n = c.counts.entry(key.clone()).or_insert(0);
    *n += 1;
    let n = *n;
    c.statements += 1;
    if n <= u64::from(limit.per_shape) {
        return Ok(());
    }
    if !c.call_sites.contains_key(&key) {
        // Past the limit for the first time: where in the application is this loop?
        if let Some(site) = call_site() {
            c.call_sites.insert(key.clone(), site);
        }
    }
    let site = c.call_sites.get(&key).cloned().unwrap_or_default();
    let (system, operation, model, statement) = key;
    if limit.strict {
        c.statements -= 1;
        if let Some(n) = c.counts.get_mut(&(system, operation, model, statement.clone())) {
            *n -= 1;
        }
        return Err(Error::TooManyStatements {
            model: if model.is_empty() { "?" } else { model },
            operation,
            statement: statement.to_string(),
            limit: limit.per_shape,
        });
    }
    if n == u64::from(limit.per_shape) + 1 {
        tracing::event!(
            target: "polystore::n_plus_one",
            tracing::Level::WARN,
            db.system = system,
            db.operation.name = operation,
            polystore.model = model,
            db.query.text = &*statement,
            code.location = site.as_str(),
            limit = limit.per_shape,
            "the same statement ran more than {} times in one scope: load {} for all parents at once \
             (`.with(..)` on the parent query, or `get_many` by keys) instead of once per row",
            limit.per_shape,
            self::model(model),
        );
    }
    Ok(())
}

/// The application's frame that ran the statement: the first frame of a backtrace, taken
/// now, that is not polystore's, the standard library's or the async runtime's. Slow (a
/// backtrace with symbols), so only taken when a shape first goes past a scope's limit.
#[cold]
fn call_site() -> Option<String> {
    let trace = std::backtrace::Backtrace::force_capture().to_string();
    frames(&trace).into_iter().find(|(symbol, at)| !plumbing(symbol, at)).map(|(_, at)| at)
}

/// `(symbol, location)` of each frame of a printed backtrace that has a location.
fn frames(trace: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut lines = trace.lines().peekable();
    while let Some(line) = lines.next() {
        let Some((n, symbol)) = line.trim_start().split_once(": ") else { continue };
        if n.is_empty() || !n.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        if let Some(at) = lines.peek().and_then(|l| l.trim_start().strip_prefix("at ")) {
            out.push((symbol.to_owned(), at.trim_start_matches("./").to_owned()));
        }
    }
    out
}

/// Frames of polystore itself and of what runs futures: by symbol, and — since inlined
/// frames carry bare names (`count`, `try_with<..>`) — by source file: the standard library's
/// (`/rustc/…`), dependencies' (`…/.cargo/registry/…`, `…/.cargo/git/…`) and polystore's own.
fn plumbing(symbol: &str, at: &str) -> bool {
    const CRATES: &[&str] = &[
        "polystore::",
        "std::",
        "core::",
        "alloc::",
        "tokio::",
        "futures_util::",
        "futures_core::",
        "futures::",
        "tracing::",
        "tracing_futures::",
        "sqlx",
        "mongodb::",
        "redis::",
        "backtrace::",
        "test::",
        "__rust",
        "rust_begin_unwind",
    ];
    let s = symbol.trim_start_matches('<');
    let own_source = concat!(env!("CARGO_MANIFEST_DIR"), "/src/");
    CRATES.iter().any(|c| s.starts_with(c))
        || at.starts_with("/rustc/")
        || at.contains("/.cargo/registry/")
        || at.contains("/.cargo/git/")
        || at.starts_with(own_source)
        || at.starts_with("runtime/src/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_call_site_is_the_first_frame_outside_the_plumbing() {
        let trace = "   0: std::backtrace::Backtrace::create
             at /rustc/x/library/std/src/backtrace.rs:331:13
   1: polystore::observe::scope::count
             at ./runtime/src/observe/scope.rs:160:9
   2: <core::pin::Pin<P> as core::future::future::Future>::poll
             at /rustc/x/library/core/src/future/future.rs:133:9
   3: <polystore::query::Query<M>>::all::{{closure}}
             at ./runtime/src/query/run.rs:20:5
   4: shop::routes::sales::list::{{closure}}
             at ./examples/shop/src/routes/sales.rs:42:18
   5: tokio::runtime::park::CachedParkThread::block_on
             at /x/tokio/src/runtime/park.rs:284:63";
        let f = frames(trace);
        assert_eq!(f.len(), 6);
        let site = f.into_iter().find(|(s, at)| !plumbing(s, at)).map(|(_, at)| at);
        assert_eq!(site.as_deref(), Some("examples/shop/src/routes/sales.rs:42:18"));
        assert!(
            !plumbing("polystore_tests::scope::x", "tests/x.rs:1:1"),
            "an application named polystore_* is not polystore"
        );
        let inlined = concat!(env!("CARGO_MANIFEST_DIR"), "/src/observe/scope.rs:172:29");
        assert!(plumbing("count", inlined), "an inlined frame of polystore, by its file");
        assert!(plumbing("try_with<T>", "/root/.cargo/registry/src/x/tokio-1.54.1/src/task/task_local.rs:257:33"));
    }
}
