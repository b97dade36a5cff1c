//! Keyset (cursor) pagination: `query.order_by(..).paginate(&db, PageRequest::first(20))`.
//! The primary key is appended to the ordering as a tiebreaker, so every row has exactly one
//! place; a page continues strictly after (or before) the row its cursor was taken from, so
//! inserts and deletes elsewhere never shift rows between pages the way OFFSET does.

use crate::db::Executor;
use crate::driver::{Driver as _, Operation, dispatch};
use crate::error::{Error, Result};
use crate::model::Model;
use crate::query::cursor::Cursor;
use crate::query::{CmpOp, Node, Nulls, OrderTerm, Query};
use crate::schema::{ColumnType, ModelSchema};
use crate::value::Value;

/// Which page to fetch: the first, or the one after / before a cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// Rows per page (at least 1).
    pub size: u64,
    /// Continue after this cursor (a [`Page::next`]).
    pub after: Option<Cursor>,
    /// Go back to the rows before this cursor (a [`Page::prev`]).
    pub before: Option<Cursor>,
}

impl PageRequest {
    /// The first page of `size` rows.
    pub fn first(size: u64) -> Self {
        PageRequest { size, after: None, before: None }
    }

    /// The `size` rows after `cursor`.
    pub fn after(cursor: impl Into<Cursor>, size: u64) -> Self {
        PageRequest { size, after: Some(cursor.into()), before: None }
    }

    /// The `size` rows before `cursor`.
    pub fn before(cursor: impl Into<Cursor>, size: u64) -> Self {
        PageRequest { size, after: None, before: Some(cursor.into()) }
    }
}

/// One page of rows, with the cursors of its neighbours.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<M> {
    /// The rows, in the query's order.
    pub items: Vec<M>,
    /// The cursor of the following page, when there are more rows after this one.
    pub next: Option<Cursor>,
    /// The cursor of the preceding page, when there are rows before this one.
    pub prev: Option<Cursor>,
}

/// The ordering pagination uses: the query's terms, the primary-key fields not already in
/// them appended (ascending), and the NULL placement of nullable fields made explicit
/// (the store's default when not given), so it can be reversed exactly. `nulls_largest`:
/// the store sorts NULLs as larger than every value (PostgreSQL) rather than smaller (SQLite,
/// MongoDB).
fn keyset_order(nulls_largest: bool, schema: &ModelSchema, order: &[OrderTerm]) -> Vec<OrderTerm> {
    let mut terms: Vec<OrderTerm> = order.to_vec();
    for &k in schema.primary_key {
        if !terms.iter().any(|t| t.field == k) {
            terms.push(OrderTerm { field: k, descending: false, nulls: None });
        }
    }
    for t in &mut terms {
        t.nulls = if schema.fields[t.field].ty.nullable {
            Some(t.nulls.unwrap_or(if nulls_largest != t.descending { Nulls::Last } else { Nulls::First }))
        } else {
            None
        };
    }
    terms
}

/// A text naming the table and the ordering; cursors carry a digest over it.
fn signature(schema: &ModelSchema, order: &[OrderTerm]) -> String {
    let mut s = String::from(schema.table);
    for t in order {
        let nulls = match t.nulls {
            Some(Nulls::First) => "f",
            Some(Nulls::Last) => "l",
            None => "-",
        };
        s.push_str(&format!("|{}:{}:{nulls}", schema.fields[t.field].column, if t.descending { "d" } else { "a" }));
    }
    s
}

/// The condition "strictly after the row with sort keys `values`" under `order`:
/// `(k1 > v1) OR (k1 = v1 AND k2 > v2) OR ...`, with NULLs placed as the ordering says.
pub(crate) fn after_condition(schema: &ModelSchema, order: &[OrderTerm], values: &[Value]) -> Node {
    let mut branches = Vec::with_capacity(order.len());
    for (i, (term, value)) in order.iter().zip(values).enumerate() {
        if let Some(after) = after_term(schema, term, value) {
            let mut parts: Vec<Node> = order[..i]
                .iter()
                .zip(values)
                .map(|(t, v)| Node::Compare { field: t.field, op: CmpOp::Eq, value: v.clone() })
                .collect();
            parts.push(after);
            branches.push(if parts.len() == 1 { parts.remove(0) } else { Node::And(parts) });
        }
    }
    Node::Or(branches)
}

/// "This term's value comes strictly after `value`", or `None` when nothing can.
fn after_term(schema: &ModelSchema, term: &OrderTerm, value: &Value) -> Option<Node> {
    let field = term.field;
    let op = if term.descending { CmpOp::Lt } else { CmpOp::Gt };
    let nullable = schema.fields[field].ty.nullable;
    let greater = Node::Compare { field, op, value: value.clone() };
    match (nullable, value, term.nulls) {
        (false, _, _) => Some(greater),
        (true, Value::Null, Some(Nulls::First)) => Some(Node::IsNull { field, negated: true }),
        (true, Value::Null, _) => None,
        (true, _, Some(Nulls::Last)) => Some(Node::Or(vec![greater, Node::IsNull { field, negated: false }])),
        (true, _, _) => Some(greater),
    }
}

/// How to fetch one page, shared by every store: the full ordering, the ordering to run
/// (reversed when paging backwards), and the keyset condition from the request's cursor.
pub(crate) struct PagePlan {
    /// The pagination ordering (query terms + primary key, NULL placement explicit).
    order: Vec<OrderTerm>,
    /// The cursor signature of that ordering.
    sig: String,
    /// The ordering to run the query in.
    pub(crate) run_order: Vec<OrderTerm>,
    /// "After the cursor's row" under `run_order`, when there is a cursor.
    pub(crate) keyset: Option<Node>,
    /// Paging backwards (`before`).
    backward: bool,
    /// The page size.
    size: u64,
}

/// A page's starting point given as sort-key values (typed keyset pagination,
/// [`Keyset`](crate::query::Keyset)) instead of a cursor.
#[derive(Debug, Clone)]
pub(crate) struct KnownKey {
    /// The values of the first key terms, in order (possibly fewer than the terms).
    pub(crate) values: Vec<Value>,
    /// The page ends before these values rather than starting after them.
    pub(crate) backward: bool,
}

/// Plans the page `request` (or the page at `known`) of a query ordered by `order` on a store
/// placing NULLs as `nulls_largest` says.
pub(crate) fn plan(
    schema: &ModelSchema,
    order: &[OrderTerm],
    nulls_largest: bool,
    request: &PageRequest,
    known: Option<&KnownKey>,
) -> Result<PagePlan> {
    if request.size == 0 {
        return Err(Error::Config(format!("{}: a page needs at least one row", schema.name)));
    }
    let order = keyset_order(nulls_largest, schema, order);
    let sig = signature(schema, &order);
    let types: Vec<ColumnType> = order.iter().map(|t| schema.fields[t.field].ty).collect();
    let (cursor, backward) = match (&request.after, &request.before) {
        (Some(_), Some(_)) => {
            return Err(Error::InvalidCursor("a page request has both `after` and `before`".into()));
        }
        (Some(_), None) | (None, Some(_)) if known.is_some() => {
            return Err(Error::InvalidCursor("a page request has both a cursor and key values".into()));
        }
        (None, None) if known.is_some() => (None, known.is_some_and(|k| k.backward)),
        (Some(c), None) => (Some(c), false),
        (None, Some(c)) => (Some(c), true),
        (None, None) => (None, false),
    };
    let run_order: Vec<OrderTerm> = if backward { order.iter().map(|t| t.reversed()).collect() } else { order.clone() };
    let keyset = match (cursor, known) {
        (Some(c), _) => Some(after_condition(schema, &run_order, &c.decode(&sig, &types)?)),
        (None, Some(k)) => Some(after_condition(schema, &run_order, &k.values)),
        (None, None) => None,
    };
    Ok(PagePlan { order, sig, run_order, keyset, backward, size: request.size })
}

impl PagePlan {
    /// How many rows to fetch: one more than the page, to learn whether there are more.
    pub(crate) fn fetch_limit(&self) -> u64 {
        self.size.saturating_add(1)
    }

    /// The page made of the fetched `items` (in run order), with its neighbours' cursors.
    pub(crate) fn finish<M: Model>(&self, mut items: Vec<M>) -> Result<Page<M>> {
        let more = items.len() as u64 > self.size;
        items.truncate(self.size as usize);
        if self.backward {
            items.reverse();
        }
        let cursor_of = |row: Option<&M>| -> Result<Option<Cursor>> {
            let Some(row) = row else { return Ok(None) };
            let values = row.to_values()?;
            Ok(Some(Cursor::encode(&self.sig, self.order.iter().map(|t| values[t.field].clone()).collect())))
        };
        let (has_next, has_prev) = if self.backward { (true, more) } else { (more, self.keyset.is_some()) };
        Ok(Page {
            next: if has_next { cursor_of(items.last())? } else { None },
            prev: if has_prev { cursor_of(items.first())? } else { None },
            items,
        })
    }
}

impl<M: Model> Query<M> {
    /// One page of the query's rows by keyset: ordered by the query's `order_by` terms plus
    /// the primary key. `next` / `prev` are cursors for the neighbouring pages; a cursor made
    /// by another query's ordering, or altered, fails with [`Error::InvalidCursor`]. The
    /// query's own limit and offset are ignored. The relations of [`Query::with`] are loaded
    /// into the page's rows, one batched query per relation level, as [`Query::all`] does.
    pub async fn paginate<E: Executor>(self, db: E, request: PageRequest) -> Result<Page<M>> {
        self.paginate_from(db, request, None).await
    }

    /// [`Query::paginate`], starting at `known` key values when given.
    pub(crate) async fn paginate_from<E: Executor>(
        mut self,
        mut db: E,
        request: PageRequest,
        known: Option<KnownKey>,
    ) -> Result<Page<M>> {
        let with = std::mem::take(&mut self.with);
        let mut page = self.fetch_page(&mut db, request, known.as_ref()).await?;
        crate::relation::load_all(&mut page.items, &with, &mut db).await?;
        Ok(page)
    }

    async fn fetch_page<E: Executor>(
        self,
        db: &mut E,
        request: PageRequest,
        known: Option<&KnownKey>,
    ) -> Result<Page<M>> {
        let op = Operation::read("paginate", M::SCHEMA, self.filter.as_ref());
        dispatch!(db, op, D => D::paginate(db, self, request, known).await)
    }
}

/// Rows per page when [`Query::stream`] loads relations.
pub(crate) const STREAM_PAGE_SIZE: u64 = 500;

/// What [`Query::stream`] runs for a query with relations ([`Query::with`]): the rows page by
/// page ([`Query::paginate`], [`STREAM_PAGE_SIZE`] rows each), each page's relations loaded in
/// one batch per relation level. No cursor stays open between pages, so the executor is free
/// for those loads (also a transaction's single connection). The query's limit and offset are
/// applied while streaming.
pub(crate) fn stream_pages<M: Model, E: Executor>(
    db: E,
    query: Query<M>,
) -> impl futures_util::Stream<Item = Result<M>> + Send {
    struct State<M, E> {
        db: E,
        query: Query<M>,
        after: Option<Cursor>,
        rows: std::vec::IntoIter<M>,
        skip: u64,
        left: Option<u64>,
        done: bool,
    }
    let state = State {
        skip: query.offset.unwrap_or(0),
        left: query.limit,
        db,
        query,
        after: None,
        rows: Vec::new().into_iter(),
        done: false,
    };
    futures_util::stream::unfold(state, |mut s| async move {
        loop {
            if s.left == Some(0) {
                return None;
            }
            if let Some(row) = s.rows.next() {
                if s.skip > 0 {
                    s.skip -= 1;
                    continue;
                }
                if let Some(left) = &mut s.left {
                    *left -= 1;
                }
                return Some((Ok(row), s));
            }
            if s.done {
                return None;
            }
            let request = PageRequest { size: STREAM_PAGE_SIZE, after: s.after.take(), before: None };
            match s.query.clone().paginate(&mut s.db as &mut dyn Executor, request).await {
                Ok(page) => {
                    s.done = page.next.is_none();
                    s.after = page.next;
                    s.rows = page.items.into_iter();
                }
                Err(e) => {
                    s.done = true;
                    return Some((Err(e), s));
                }
            }
        }
    })
}
