//! The store-neutral query representation: typed expressions over field handles, and
//! [`Query<M>`], which the SQL writer (and later the MongoDB lowering) turn into statements.
//!
//! Everything here is plain data under a typed shell: `Expr<M>` and `Query<M>` make mistakes
//! fail to compile, and the untyped [`Node`] tree underneath is what the writers walk.
//!
//! - `expr`, `text`: filters (`eq`, `between`, `is_in`, `starts_with`, `contains`, …) and
//!   orderings (`asc().nulls_last()`);
//! - `update`: typed assignments for `update_many`;
//! - `aggregate`, `select`: projections and aggregates (`select((User::ID, User::EMAIL))`);
//! - `page`, `cursor`, `keyset`: keyset pagination with opaque cursors, or from known key
//!   values with a typed sort key (`order_by_key((User::NAME, Desc(User::ID))).after(..)`);
//! - `run`: the terminals that execute a query on a SQL store (lowered by
//!   [`crate::sql::lower`]);
//! - `raw`, `raw_rows`: hand-written SQL decoded into models, or into tuples, JSON maps and
//!   `#[derive(Row)]` structs;
//! - `subquery`: `is_in(subquery)`, correlated `exists`, scalar subqueries.

mod aggregate;
mod calc;
mod calc_fns;
pub mod calc_types;
mod cursor;
mod expr;
mod join;
mod keyset;
pub(crate) mod page;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
mod raw;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
mod raw_rows;
mod run;
mod select;
mod subquery;
#[cfg(all(test, feature = "postgres", feature = "sqlite"))]
mod tests;
#[cfg(all(test, feature = "postgres", feature = "sqlite"))]
mod tests_calc;
#[cfg(all(test, feature = "postgres", feature = "sqlite"))]
mod tests_calc_fns;
#[cfg(all(test, feature = "postgres", feature = "sqlite"))]
mod tests_decimal;
#[cfg(all(test, feature = "postgres", feature = "sqlite"))]
mod tests_subquery;
mod text;
mod update;

pub(crate) use aggregate::ValueRow;
pub use aggregate::{
    Agg, AggFunc, AggOrder, AggSort, Columns, FieldAggregates, Having, IntoOrder, Ordered, SelectItem, Selection,
    Summable, count_all,
};
pub use calc::{Arith, ArithOp, Calc, CalcAggregates, CalcNode, CalcOrder, CalcSort, Coalesce, Operand, coalesce, lit};
pub(crate) use calc::{SortKey as OrderKey, sort_keys};
pub use calc_fns::{
    CaseType, CaseWhen, ConcatOut, DatePart, OrNull, Temporal, TextFunc, Textual, TimeUnit, case_when, concat,
};
pub use cursor::Cursor;
pub use expr::{CmpOp, Expr, Node, Nulls, Order, OrderTerm, TextOp};
#[cfg(feature = "mongodb")]
pub(crate) use join::is_grouped as is_grouped_select;
pub(crate) use join::{FullKey, check_grouping, full_keys};
pub use join::{JoinColumn, JoinSort, JoinTerm, RelatedAgg};
pub use keyset::{Asc, Desc, Key, KeyTerm, KeyValues, Keyset, SortKey};
pub use page::{Page, PageRequest};
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub use raw::{Raw, RawParam, raw};
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub use raw_rows::{FromRawRow, RawRow, RawRows, raw_rows};
pub use select::{As, Projection, Select, SelectGroupKey, SelectOrder};
pub use subquery::{Cte, Exists, InValues, SameValue, SubColumn, Subquery, exists, not_exists};
pub use text::{Containment, TextField};
pub use update::{Assign, Assignment, NullableField, NumericField};

use std::marker::PhantomData;

use crate::model::Model;

/// What [`Query::group_by`] takes: a field or an expression of the queried model. A related
/// model's column is a group key of a projection: [`Select::group_by`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot group a query over `{M}`",
    label = "group by a field or an expression of the queried model",
    note = "a related model's column groups a projection, after `select`: `.select(..).group_by(Track::ALBUM.then(Album::TITLE))`"
)]
pub trait GroupKey<M> {
    /// Adds the key to the query's grouping.
    fn add_to(self, query: &mut Query<M>);
}

impl<M, T> GroupKey<M> for crate::model::Field<M, T> {
    fn add_to(self, query: &mut Query<M>) {
        query.group_by.push(self.index());
    }
}

impl<M, T> GroupKey<M> for Calc<M, T> {
    fn add_to(self, query: &mut Query<M>) {
        query.group_calc.push(self.into_node());
    }
}

/// A query over model `M`: a filter, an ordering, a window and (for aggregates) a grouping.
/// Build it with `M::query()` (from [`crate::ModelExt`]); run it with `all`, `first`, `one`,
/// `count`, `exists`, `stream`, `paginate`, `update_many` or `delete_many`, or project it with
/// [`Query::select`].
pub struct Query<M> {
    pub(crate) filter: Option<Node>,
    pub(crate) order: Vec<OrderTerm>,
    pub(crate) limit: Option<u64>,
    pub(crate) offset: Option<u64>,
    pub(crate) group_by: Vec<usize>,
    /// Expressions to group by (`group_by(Line::PRICE * 2)`), after the fields.
    pub(crate) group_calc: Vec<crate::query::CalcNode>,
    pub(crate) having: Option<Node>,
    /// Orderings on aggregates (`select` only), each placed before field term `pos` of
    /// `order`: the full ordering interleaves them in the order they were added.
    pub(crate) agg_order: Vec<AggSort>,
    /// Orderings on expressions, placed among the field and aggregate terms.
    pub(crate) calc_order: Vec<CalcSort>,
    /// Columns reached through relations to group by (`Select::group_by` only), after the
    /// fields and expressions.
    pub(crate) group_join: Vec<JoinColumn>,
    /// Orderings on joined columns and relation aggregates (`Select::order_by` only).
    pub(crate) join_order: Vec<JoinSort>,
    /// Relations to load into the rows (`with`).
    pub(crate) with: Vec<std::sync::Arc<dyn crate::relation::Loader<M>>>,
    /// Which rows of a soft-delete model it reads (live ones unless asked).
    pub(crate) rows: crate::soft_delete::Rows,
    _model: PhantomData<fn() -> M>,
}

impl<M> Clone for Query<M> {
    fn clone(&self) -> Self {
        Query {
            filter: self.filter.clone(),
            order: self.order.clone(),
            limit: self.limit,
            offset: self.offset,
            group_by: self.group_by.clone(),
            group_calc: self.group_calc.clone(),
            having: self.having.clone(),
            agg_order: self.agg_order.clone(),
            calc_order: self.calc_order.clone(),
            group_join: self.group_join.clone(),
            join_order: self.join_order.clone(),
            with: self.with.clone(),
            rows: self.rows,
            _model: PhantomData,
        }
    }
}

/// The clauses of a [`Query`] without its model type: what lowering a query to a statement
/// reads, so that code is compiled once rather than once per model.
pub(crate) struct Clauses<'a> {
    pub(crate) filter: &'a Option<Node>,
    pub(crate) order: &'a [OrderTerm],
    pub(crate) limit: Option<u64>,
    pub(crate) offset: Option<u64>,
    pub(crate) group_by: &'a [usize],
    pub(crate) group_calc: &'a [CalcNode],
    pub(crate) having: &'a Option<Node>,
    pub(crate) agg_order: &'a [AggSort],
    pub(crate) calc_order: &'a [CalcSort],
    pub(crate) group_join: &'a [JoinColumn],
    pub(crate) join_order: &'a [JoinSort],
    /// Which rows of a soft-delete model the query reads (see [`crate::soft_delete`]).
    pub(crate) rows: crate::soft_delete::Rows,
}

impl Clauses<'_> {
    /// The filter a read runs: the query's own filter AND the soft-delete condition of its
    /// row mode, as [`Query::where_node`].
    pub(crate) fn where_node(&self, schema: &crate::schema::ModelSchema) -> Option<std::borrow::Cow<'_, Node>> {
        crate::soft_delete::finish(schema, self.rows, self.filter.as_ref())
    }
}

impl<M> Query<M> {
    /// The query's clauses, without the model type.
    pub(crate) fn clauses(&self) -> Clauses<'_> {
        Clauses {
            filter: &self.filter,
            order: &self.order,
            limit: self.limit,
            offset: self.offset,
            group_by: &self.group_by,
            group_calc: &self.group_calc,
            having: &self.having,
            agg_order: &self.agg_order,
            calc_order: &self.calc_order,
            group_join: &self.group_join,
            join_order: &self.join_order,
            rows: self.rows,
        }
    }
}

impl<M> std::fmt::Debug for Query<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Query")
            .field("filter", &self.filter)
            .field("order", &self.order)
            .field("limit", &self.limit)
            .field("offset", &self.offset)
            .field("group_by", &self.group_by)
            .field("having", &self.having)
            .field("with", &self.with.len())
            .field("rows", &self.rows)
            .finish()
    }
}

impl Query<()> {
    /// A query of no model holding only `filter`: what a subquery runs on a store that
    /// resolves subqueries before the outer operation (MongoDB). The filter is taken as final
    /// (a subquery's already holds its soft-delete condition): no other is added.
    #[cfg_attr(not(feature = "mongodb"), allow(dead_code))]
    pub(crate) fn untyped(filter: Option<Node>) -> Self {
        Query { filter, rows: crate::soft_delete::Rows::WithDeleted, ..Query::blank() }
    }
}

impl<M> Query<M> {
    /// The filter a read of this query over `schema` runs: the query's own filter AND the
    /// soft-delete condition of its row mode (see [`crate::soft_delete`]).
    #[cfg_attr(not(feature = "mongodb"), allow(dead_code))]
    pub(crate) fn where_node(&self, schema: &crate::schema::ModelSchema) -> Option<std::borrow::Cow<'_, Node>> {
        crate::soft_delete::finish(schema, self.rows, self.filter.as_ref())
    }

    /// No filter, order, limit, grouping or loads: every row (shared by the typed and the
    /// untyped constructors).
    fn blank() -> Self {
        Query {
            filter: None,
            order: Vec::new(),
            limit: None,
            offset: None,
            group_by: Vec::new(),
            group_calc: Vec::new(),
            having: None,
            agg_order: Vec::new(),
            calc_order: Vec::new(),
            group_join: Vec::new(),
            join_order: Vec::new(),
            with: Vec::new(),
            rows: crate::soft_delete::Rows::Live,
            _model: PhantomData,
        }
    }
}

/// Adds `node` to a query's filter with AND (not generic: [`Query::filter`] is called for
/// every model).
fn and_filter(filter: &mut Option<Node>, node: Node) {
    *filter = Some(match filter.take() {
        None => node,
        Some(prev) => Node::And(vec![prev, node]),
    });
}

impl<M: Model> Default for Query<M> {
    fn default() -> Self {
        Self::new()
    }
}

impl<M: Model> Query<M> {
    /// A query that matches every row.
    pub fn new() -> Self {
        Query::blank()
    }

    /// Loads a relation into the rows the query returns: `.with(Post::AUTHOR)`, nested with
    /// `.with(User::POSTS.with(Post::COMMENTS))`. Each relation level is one more query,
    /// whatever the number of rows (`all`, `first`, `one`).
    pub fn with(mut self, relation: impl crate::relation::Loader<M> + 'static) -> Self {
        self.with.push(std::sync::Arc::new(relation));
        self
    }

    /// Keeps the rows matching `expr`; several calls are combined with AND.
    pub fn filter(mut self, expr: Expr<M>) -> Self {
        and_filter(&mut self.filter, expr.into_node());
        self
    }

    /// Adds an ordering term; earlier terms take precedence.
    pub fn order_by(mut self, order: impl IntoOrder<M>) -> Self {
        order.add_to(&mut self);
        self
    }

    /// Returns at most `n` rows.
    pub fn limit(mut self, n: u64) -> Self {
        self.limit = Some(n);
        self
    }

    /// Skips the first `n` rows.
    pub fn offset(mut self, n: u64) -> Self {
        self.offset = Some(n);
        self
    }

    /// Groups the rows by `key`, a field or an expression (for aggregates in
    /// [`Query::select`]); several calls add keys. Select an expression key by selecting the
    /// same expression.
    pub fn group_by(mut self, key: impl GroupKey<M>) -> Self {
        key.add_to(&mut self);
        self
    }

    /// Keeps the groups matching `having` (a condition on aggregates, or on expressions over
    /// them); several calls are combined with AND.
    pub fn having(mut self, having: impl Into<Having<M>>) -> Self {
        let node = having.into().into_node();
        self.having = Some(match self.having.take() {
            None => node,
            Some(prev) => Node::And(vec![prev, node]),
        });
        self
    }

    /// Projects the query onto `selection`: a field handle, an aggregate, or a tuple of them,
    /// e.g. `.select((User::ID, User::EMAIL))` yields `(i64, String)` rows.
    pub fn select<S: Selection<M>>(self, selection: S) -> Select<M, S> {
        Select::new(self, selection)
    }

    /// The filter tree, if any (without the soft-delete condition, see [`Query::with_deleted`]).
    pub fn filter_node(&self) -> Option<&Node> {
        self.filter.as_ref()
    }

    /// Reads soft-deleted rows too. A query over a `#[model(soft_delete)]` model reads only
    /// live rows (its stamp is NULL) unless told otherwise; on other models this changes
    /// nothing. It applies to every terminal: `all`, `count`, `select`, `paginate`,
    /// `update_many`, `force_delete_many`, … (`delete_many` only ever stamps live rows).
    pub fn with_deleted(mut self) -> Self {
        self.rows = crate::soft_delete::Rows::WithDeleted;
        self
    }

    /// Reads soft-deleted rows only (the stamp is set), e.g. to list a trash bin, purge it
    /// with [`Query::force_delete_many`] or bring rows back with [`Query::restore_many`]. On
    /// a model without a `#[model(soft_delete)]` field this matches every row, as if absent.
    pub fn only_deleted(mut self) -> Self {
        self.rows = crate::soft_delete::Rows::OnlyDeleted;
        self
    }

    /// The ordering terms.
    pub fn order_terms(&self) -> &[OrderTerm] {
        &self.order
    }
}
