//! What a PostgreSQL database's catalog says about the indexes of the tables polystore reads,
//! for the one lowering decision that depends on them: how a key list (`is_in`, a batched
//! relation load) is written.
//!
//! A list on a column that leads an index is best written `col = ANY($1)`, which any plan,
//! generic or custom, turns into an index condition. On a column without one, that same text
//! becomes, once PostgreSQL switches the prepared statement to a generic plan, a scan that
//! compares every row with every key (the plan cliff of `docs/performance.md`), so polystore
//! writes it as a set instead. The model's schema tells which columns its own DDL indexes;
//! indexes added outside polystore are only known from the catalog. A PostgreSQL [`Db`] looks
//! them up ([`IndexHints`]) the first time a statement filters a table by a key list on a column
//! the schema does not know to be indexed, and again once that answer is older than
//! [`FRESH`]; `create_all`, `drop_all` and migrations run through the handle forget what it
//! knew ([`Db::forget_index_hints`]). The lookup is one catalog query, on the transaction's
//! connection inside a transaction and otherwise on a warm connection from the handle's shelf (or
//! the pool), which it puts back for the statement that follows; it is not counted as a
//! statement of the handle.
//!
//! Lowering itself stays synchronous and free of I/O: the driver looks the tables up first,
//! then lowers inside [`lowering`], which makes the answer visible to [`indexed`] on this
//! thread for the duration of the call.
//!
//! [`Db`]: crate::Db
//! [`Db::forget_index_hints`]: crate::Db::forget_index_hints

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

/// Per table (as the schema names it), the columns that lead a usable index.
pub(crate) type Known = HashMap<&'static str, Box<[String]>>;

thread_local! {
    static IN_SCOPE: RefCell<Option<Arc<Known>>> = const { RefCell::new(None) };
}

/// Runs `lower` with `known` visible to [`indexed`] (on this thread, for this call only).
#[cfg_attr(not(any(feature = "postgres", feature = "sqlite")), allow(dead_code))]
pub(crate) fn lowering<R>(known: Option<Arc<Known>>, lower: impl FnOnce() -> R) -> R {
    /// Puts back what was in scope before, also when `lower` panics.
    struct Restore(Option<Arc<Known>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let before = self.0.take();
            IN_SCOPE.with(|scope| *scope.borrow_mut() = before);
        }
    }
    let before = IN_SCOPE.with(|scope| scope.replace(known));
    let _restore = Restore(before);
    lower()
}

/// Whether the catalog, as looked up for the lowering in progress, has an index on `table`
/// whose first column is `column`. Outside [`lowering`] (SQLite, a direct call of the
/// lowering functions) nothing is known.
pub(crate) fn indexed(table: &str, column: &str) -> bool {
    IN_SCOPE.with(|scope| {
        scope
            .borrow()
            .as_ref()
            .is_some_and(|known| known.get(table).is_some_and(|cols| cols.iter().any(|c| c == column)))
    })
}

/// How long an answer from the catalog is used before it is looked up again, unless the
/// handle says otherwise ([`Db::with_index_hint_freshness`](crate::Db::with_index_hint_freshness)):
/// an index dropped outside polystore is noticed within this time.
#[cfg(feature = "postgres")]
pub(crate) const FRESH: std::time::Duration = std::time::Duration::from_secs(60);

/// The catalog's answers for one PostgreSQL handle (shared by its clones and transactions).
#[cfg(feature = "postgres")]
pub(crate) struct IndexHints {
    known: std::sync::RwLock<Arc<Known>>,
    /// When each table was last looked up, or a lookup of it started or failed.
    fetched: std::sync::Mutex<HashMap<&'static str, std::time::Instant>>,
    /// How long an answer is used, in nanoseconds ([`FRESH`] unless set).
    fresh_nanos: std::sync::atomic::AtomicU64,
    /// Whether the catalog is asked at all ([`Db::without_index_hints`](crate::Db::without_index_hints)).
    off: std::sync::atomic::AtomicBool,
    /// Bumped by [`IndexHints::forget`]: a lookup that started before is not recorded (it may
    /// have read the catalog before the DDL that made the handle forget).
    generation: std::sync::atomic::AtomicU64,
}

#[cfg(feature = "postgres")]
impl Default for IndexHints {
    fn default() -> Self {
        IndexHints {
            known: Default::default(),
            fetched: Default::default(),
            fresh_nanos: std::sync::atomic::AtomicU64::new(FRESH.as_nanos() as u64),
            off: std::sync::atomic::AtomicBool::new(false),
            generation: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

#[cfg(feature = "postgres")]
impl std::fmt::Debug for IndexHints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexHints").field("known", &self.known.read().map(|k| k.len()).unwrap_or(0)).finish()
    }
}

/// The leading column of every valid, non-partial B-tree or hash index of the table `$1` (a
/// quoted name, resolved like the statements' own table names).
#[cfg(feature = "postgres")]
const LEADING_COLUMNS: &str = "SELECT a.attname::text FROM pg_index i \
     JOIN pg_class c ON c.oid = i.indexrelid \
     JOIN pg_am am ON am.oid = c.relam AND am.amname IN ('btree', 'hash') \
     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] \
     WHERE i.indrelid = to_regclass($1) AND i.indisvalid AND i.indpred IS NULL";

#[cfg(feature = "postgres")]
impl IndexHints {
    /// Sets how long an answer is used before it is looked up again.
    pub(crate) fn set_freshness(&self, fresh: std::time::Duration) {
        let nanos = u64::try_from(fresh.as_nanos()).unwrap_or(u64::MAX);
        self.fresh_nanos.store(nanos, std::sync::atomic::Ordering::Relaxed);
    }

    /// Stops (or resumes) asking the catalog, and forgets what it said.
    pub(crate) fn set_off(&self, off: bool) {
        self.off.store(off, std::sync::atomic::Ordering::Relaxed);
        self.forget();
    }

    /// What is known now, if `table` was looked up (or a lookup of it started) within the
    /// freshness; otherwise `None`, and the caller is to look it up. Only one caller is told
    /// so: the table is marked as being looked up, and the others, until the answer is in,
    /// use what was known before (for a table never seen, nothing: the forms that are safe
    /// without an index), rather than each asking the catalog on a connection of its own.
    fn fresh_or_claim(&self, table: &'static str) -> Option<Arc<Known>> {
        let fresh = std::time::Duration::from_nanos(self.fresh_nanos.load(std::sync::atomic::Ordering::Relaxed));
        let mut fetched = self.fetched.lock().unwrap_or_else(|e| e.into_inner());
        let now = std::time::Instant::now();
        match fetched.get(table) {
            Some(at) if now.saturating_duration_since(*at) <= fresh => {
                drop(fetched);
                Some(self.known.read().unwrap_or_else(|e| e.into_inner()).clone())
            }
            _ => {
                fetched.insert(table, now);
                None
            }
        }
    }

    /// Looks `table` up on `conn` and returns what is known after it, and whether the lookup
    /// ran (the connection is fit to reuse). The lookup reads the catalog only (`to_regclass`
    /// answers NULL for a missing table), so inside a transaction it cannot fail where the
    /// statement that follows would not; if it fails anyway, the statement keeps the forms that
    /// are safe without an index (see [`IndexHints::failed`]).
    async fn look_up(&self, conn: &mut sqlx::PgConnection, table: &'static str) -> (Arc<Known>, bool) {
        let started = self.generation();
        let mut quoted = String::new();
        crate::sql::Dialect::quote_table(&crate::sql::postgres::Postgres, &mut quoted, table);
        let rows: std::result::Result<Vec<String>, sqlx::Error> =
            sqlx::query_scalar(LEADING_COLUMNS).bind(quoted).persistent(false).fetch_all(conn).await;
        match rows {
            Ok(columns) => (self.record(started, table, columns), true),
            Err(e) => (self.failed(table, &e), false),
        }
    }

    /// The generation a lookup starts under (see [`IndexHints::record`]).
    fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Records `columns` as `table`'s answer, unless the handle forgot what it knew since the
    /// lookup began under generation `started` (the lookup may have read the catalog before the
    /// DDL that made the handle forget); returns what is known after it. Checked under the lock
    /// `forget` bumps the generation under. One lock at a time: `forget` takes them in the
    /// other order.
    fn record(&self, started: u64, table: &'static str, columns: Vec<String>) -> Arc<Known> {
        let (known, recorded) = {
            let mut known = self.known.write().unwrap_or_else(|e| e.into_inner());
            if self.generation() == started {
                let mut next = Known::clone(&known);
                next.insert(table, columns.into_boxed_slice());
                *known = Arc::new(next);
                (known.clone(), true)
            } else {
                (known.clone(), false)
            }
        };
        if recorded {
            self.fetched.lock().unwrap_or_else(|e| e.into_inner()).insert(table, std::time::Instant::now());
        }
        known
    }

    /// A lookup of `table` that could not run (no connection, an error): recorded like an
    /// answer, so that statements do not each wait for a lookup while the server is away; the
    /// table's previous answer, if any, stays until the next lookup, once the freshness has
    /// passed again.
    fn failed(&self, table: &'static str, e: &sqlx::Error) -> Arc<Known> {
        tracing::debug!(error = %e, table, "polystore: looking up indexes failed; key lists keep the forms safe without an index");
        self.fetched.lock().unwrap_or_else(|e| e.into_inner()).insert(table, std::time::Instant::now());
        self.known.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Forgets every answer: the next statement that needs one looks it up again, and a lookup
    /// already under way is not recorded.
    pub(crate) fn forget(&self) {
        {
            let mut known = self.known.write().unwrap_or_else(|e| e.into_inner());
            self.generation.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
            *known = Arc::default();
        }
        self.fetched.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// Whether `node` (a filter over `schema`) holds a key list the catalog's answer could change:
/// one on a column the schema does not know to be indexed. False (the usual case) means the
/// lowering needs nothing from the catalog. Lists inside subqueries over other tables are not
/// looked at.
#[cfg_attr(not(any(feature = "postgres", feature = "sqlite")), allow(dead_code))]
pub(crate) fn needs_catalog(schema: &crate::schema::ModelSchema, node: Option<&crate::query::Node>) -> bool {
    use crate::query::Node;
    fn walk(schema: &crate::schema::ModelSchema, node: &Node) -> bool {
        match node {
            Node::In { field, values, .. } => {
                let ty = schema.fields[*field].ty;
                !values.is_empty()
                    && !ty.array
                    && ty.scalar != crate::schema::Scalar::Json
                    && !crate::sql::lower::known_indexed(schema, *field)
            }
            Node::And(items) | Node::Or(items) => items.iter().any(|n| walk(schema, n)),
            Node::Not(inner) => walk(schema, inner),
            _ => false,
        }
    }
    node.is_some_and(|n| walk(schema, n))
}

/// What the handle behind `target` knows about indexes (nothing on SQLite), with `table`
/// looked up first if due: on the transaction's (or pinned) connection itself, or on a
/// connection from the pool, which the statement then waits for like any other.
#[cfg(feature = "postgres")]
pub(crate) async fn answers(
    target: crate::db::Target<'_>,
    stats: &crate::db::Stats,
    table: &'static str,
) -> Option<Arc<Known>> {
    let hints = stats.index_hints()?;
    if hints.off.load(std::sync::atomic::Ordering::Relaxed) {
        return None;
    }
    if let Some(known) = hints.fresh_or_claim(table) {
        return Some(known);
    }
    match target {
        crate::db::Target::PgConn(conn) => Some(hints.look_up(conn, table).await.0),
        // A warm connection from the handle's shelf, like the statement's own; back on the
        // shelf if the lookup ran, so the statement that follows can take it at once.
        crate::db::Target::PgPool(shelf) => match shelf.take().await {
            Ok(mut leased) => {
                let (known, ran) = hints.look_up(leased.conn(), table).await;
                if ran {
                    shelf.put(leased);
                }
                Some(known)
            }
            Err(e) => Some(hints.failed(table, &e)),
        },
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prelude::*;

    #[derive(crate::Model, Debug, Clone)]
    #[model(table = "hinted", index(rank))]
    struct Hinted {
        #[model(primary_key)]
        id: i64,
        rank: i32,
        owner: i64,
        tags: Vec<String>,
    }

    fn known(table: &'static str, columns: &[&str]) -> Option<Arc<Known>> {
        let columns: Box<[String]> = columns.iter().map(|c| (*c).to_owned()).collect();
        Some(Arc::new(Known::from([(table, columns)])))
    }

    #[test]
    fn answers_are_in_scope_for_one_lowering_only_and_nest() {
        assert!(!indexed("hinted", "owner"));
        lowering(known("hinted", &["owner"]), || {
            assert!(indexed("hinted", "owner"));
            assert!(!indexed("hinted", "rank"), "only what the catalog said");
            assert!(!indexed("other", "owner"));
            lowering(None, || assert!(!indexed("hinted", "owner")));
            assert!(indexed("hinted", "owner"), "an inner scope puts the outer one back");
        });
        assert!(!indexed("hinted", "owner"));
        let unwound = std::panic::catch_unwind(|| lowering(known("hinted", &["owner"]), || panic!("lowering failed")));
        assert!(unwound.is_err());
        assert!(!indexed("hinted", "owner"), "a panic puts the outer scope back too");
    }

    /// A lookup that was under way when the handle forgot (DDL ran through it) is not recorded:
    /// it may have read the catalog before the DDL. The table stays due, so the next statement
    /// looks it up again; a lookup started after the forgetting is recorded.
    #[test]
    #[cfg(feature = "postgres")]
    fn a_lookup_under_way_when_the_handle_forgets_is_not_recorded() {
        let hints = IndexHints::default();
        assert!(hints.fresh_or_claim("hinted").is_none(), "never looked up: the caller is to look it up");
        let started = hints.generation();
        hints.forget();
        let known = hints.record(started, "hinted", vec!["owner".to_owned()]);
        assert!(known.get("hinted").is_none(), "the old lookup's answer was recorded: {known:?}");
        assert!(hints.fresh_or_claim("hinted").is_none(), "the table must still be due");

        let started = hints.generation();
        let known = hints.record(started, "hinted", vec!["owner".to_owned()]);
        assert_eq!(known.get("hinted").map(|c| c.to_vec()), Some(vec!["owner".to_owned()]));
        let fresh = hints.fresh_or_claim("hinted").expect("answered within the freshness");
        assert!(fresh.get("hinted").is_some_and(|c| c.iter().any(|c| c == "owner")));

        // Forgetting between two lookups of different tables drops the first one's answer too.
        let started = hints.generation();
        hints.forget();
        let known = hints.record(started, "other", vec!["id".to_owned()]);
        assert!(known.is_empty(), "{known:?}");
        assert!(hints.fresh_or_claim("hinted").is_none(), "forgotten: due again");
    }

    #[test]
    fn only_lists_on_columns_the_schema_does_not_index_ask_the_catalog() {
        let asks = |e: Expr<Hinted>| needs_catalog(Hinted::SCHEMA, Some(&e.into_node()));
        assert!(asks(Hinted::OWNER.is_in([1_i64, 2])));
        assert!(asks(Hinted::OWNER.not_in([1_i64]).not()));
        assert!(asks(Hinted::ID.eq(1).and(Hinted::OWNER.is_in([1_i64]).or(Hinted::RANK.eq(2)))));
        assert!(!asks(Hinted::ID.is_in([1_i64, 2])), "the primary key");
        assert!(!asks(Hinted::RANK.is_in([1, 2])), "a declared index");
        assert!(!asks(Hinted::OWNER.is_in(Vec::<i64>::new())), "an empty list is no list");
        assert!(!asks(Hinted::OWNER.eq(1)));
        assert!(!needs_catalog(Hinted::SCHEMA, None));
    }

    #[test]
    #[cfg(all(feature = "postgres", feature = "sqlite"))]
    fn a_list_on_a_column_the_catalog_indexes_is_an_index_condition() {
        let q = Hinted::query().filter(Hinted::OWNER.is_in([1_i64, 2, 3]));
        let pg = &crate::sql::postgres::Postgres;
        let plain = crate::sql::lower::select(pg, Hinted::SCHEMA, &q).unwrap().sql;
        assert!(plain.contains("\"owner\" IN (SELECT unnest($1))"), "{plain}");
        let hinted =
            lowering(known("hinted", &["owner"]), || crate::sql::lower::select(pg, Hinted::SCHEMA, &q)).unwrap().sql;
        assert!(hinted.contains("\"owner\" = ANY($1)"), "{hinted}");
        let sqlite = &crate::sql::sqlite::Sqlite;
        let lite = lowering(known("hinted", &["owner"]), || crate::sql::lower::select(sqlite, Hinted::SCHEMA, &q))
            .unwrap()
            .sql;
        assert!(lite.contains("json_each"), "SQLite has no generic plans: {lite}");
    }
}
