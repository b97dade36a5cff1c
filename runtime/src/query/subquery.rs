//! Subqueries: a query over one model used inside the filter (or an expression) of another.
//!
//! - **Membership**: `Customer::ID.is_in(Invoice::query().filter(..).select(Invoice::CUSTOMER_ID))`
//!   — a one-column projection of a field whose type is the filtered field's (an `Option` of
//!   it on either side is fine). NULLs the subquery yields are ignored, so `not_in` keeps every
//!   row whose value is not among the non-NULL values (and, as any comparison, never a row
//!   whose own value is NULL).
//! - **Correlated existence**: `exists(Invoice::query().filter(..)).on(Invoice::CUSTOMER_ID,
//!   Customer::ID)` — some row of the subquery has `inner = outer`; [`not_exists`] is its
//!   negation, true also for a row whose `outer` is NULL. For a declared relation,
//!   `Customer::INVOICES.any(..)` says the same; `exists` links any two fields.
//! - **Scalar subqueries**: a projection of one aggregate
//!   (`Track::query().select(Track::MILLISECONDS.avg())`) is an operand of expressions over
//!   any model: `Track::MILLISECONDS.calc().gt(Track::query().select(Track::MILLISECONDS.avg()))`.
//!
//! SQL stores render them inline (`IN (SELECT ..)`, `EXISTS (SELECT 1 ..)`, `(SELECT AVG(..) ..)`);
//! MongoDB runs each as a *key pre-query* before the outer operation (docs/queries.md).

use crate::model::{Field, Model};
use crate::query::aggregate::Agg;
use crate::query::calc::{CalcNode, Operand};
use crate::query::expr::{Expr, Node};
use crate::query::{AggFunc, Query, Select};
use crate::schema::{ColumnType, ModelSchema};
use crate::value::ToParam;

/// What a subquery yields, per row of its model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubColumn {
    /// A field's value.
    Field(usize),
    /// One aggregate over all the matching rows (a scalar subquery), of type `ty`.
    Agg {
        /// The function.
        func: AggFunc,
        /// Its argument (`None` for `*`).
        field: Option<usize>,
        /// The result type.
        ty: ColumnType,
    },
}

/// The untyped form of a subquery: the rows of `schema` matching `filter`, read as `column`.
#[derive(Debug, Clone)]
pub struct Subquery {
    /// The model queried.
    pub schema: &'static ModelSchema,
    /// The condition on its rows, if any.
    pub filter: Option<Node>,
    /// What it yields.
    pub column: SubColumn,
    /// The name of the common table expression it is written as (`WITH name AS (..)`), if any.
    pub name: Option<String>,
    /// Why the subquery cannot run as written (it carried an ordering, a window, …), reported
    /// when the outer query runs.
    pub refused: Option<String>,
}

impl PartialEq for Subquery {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.schema, other.schema)
            && self.filter == other.filter
            && self.column == other.column
            && self.name == other.name
    }
}

impl Subquery {
    /// The subquery of `query`'s filter, refusing what a subquery does not carry (an
    /// ordering, a window, a grouping or relations to load): those would be silently
    /// ignored otherwise.
    fn of<S: Model>(query: Query<S>, column: SubColumn) -> Subquery {
        let extra = !query.order.is_empty()
            || query.limit.is_some()
            || query.offset.is_some()
            || !query.group_by.is_empty()
            || !query.group_calc.is_empty()
            || !query.group_join.is_empty()
            || query.having.is_some()
            || !query.agg_order.is_empty()
            || !query.calc_order.is_empty()
            || !query.join_order.is_empty()
            || !query.with.is_empty();
        let refused = extra.then(|| {
            format!(
                "a subquery over {} takes a filter only (no order_by, limit, offset, group_by, having or with)",
                S::SCHEMA.name
            )
        });
        let filter = crate::soft_delete::finish_owned(S::SCHEMA, query.rows, query.filter);
        Subquery { schema: S::SCHEMA, filter, column, name: None, refused }
    }

    /// Fails when the subquery cannot run as written.
    pub(crate) fn check(&self) -> Result<(), crate::error::Error> {
        match &self.refused {
            Some(why) => Err(crate::error::Error::Config(why.clone())),
            None => Ok(()),
        }
    }

    /// The type of the values the subquery yields.
    pub fn ty(&self) -> ColumnType {
        match self.column {
            SubColumn::Field(f) => self.schema.fields[f].ty,
            SubColumn::Agg { ty, .. } => ty,
        }
    }
}

/// A subquery's value type `Self` matches a field of type `T`: the same type, with or without
/// `Option` on either side.
#[diagnostic::on_unimplemented(
    message = "a subquery's `{Self}` values cannot be matched against a field of type `{T}`",
    label = "the subquery's field must have the type of the field it is matched with, `{T}`",
    note = "use a field of the same type (`Option` on either side is fine): \
            `Customer::ID.is_in(Invoice::query().select(Invoice::CUSTOMER_ID))`, \
            `exists(Invoice::query()).on(Invoice::CUSTOMER_ID, Customer::ID)`"
)]
pub trait SameValue<T> {}

impl<T> SameValue<T> for T {}
impl<T> SameValue<T> for Option<T> {}
impl<T> SameValue<Option<T>> for T {}

/// What [`Field::is_in`] and [`Field::not_in`] take for a field of type `T`: values (an
/// array, a `Vec`, a range, any iterator of values of the field's type), or a subquery — a
/// one-column projection of a field of the same type,
/// `Invoice::query().filter(..).select(Invoice::CUSTOMER_ID)`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is neither values of type `{T}` nor a subquery selecting a `{T}` column",
    label = "expected values of the field's type `{T}`, or a one-column `select` of a `{T}` field",
    note = "e.g. `.is_in([1, 2])`, or `.is_in(Invoice::query().select(Invoice::CUSTOMER_ID))`"
)]
pub trait InValues<T> {
    /// The membership condition on field number `field`.
    fn membership(self, field: usize, negated: bool) -> Node;
}

impl<T, I> InValues<T> for I
where
    I: IntoIterator,
    I::Item: ToParam<T>,
{
    fn membership(self, field: usize, negated: bool) -> Node {
        let values: Result<Vec<_>, _> = self.into_iter().map(ToParam::to_param).collect();
        match values {
            Ok(values) => Node::In { field, values, negated },
            Err(e) => Node::Invalid(e),
        }
    }
}

impl<T, S: Model, U> InValues<T> for Select<S, Field<S, U>>
where
    U: SameValue<T>,
{
    fn membership(self, field: usize, negated: bool) -> Node {
        let (query, selected) = self.into_parts();
        let query = Subquery::of(query, SubColumn::Field(selected.index()));
        Node::InQuery { field, query: Box::new(query), negated }
    }
}

/// A one-column subquery written once, as a common table expression named `name`
/// (`WITH name AS (SELECT ..)`), and referenced by name wherever it is used; made by
/// [`Select::named`]. [`Field::is_in`] and [`Field::not_in`] take it like the subquery itself.
#[derive(Debug, Clone)]
pub struct Cte<S, U> {
    query: Subquery,
    _marker: std::marker::PhantomData<fn() -> (S, U)>,
}

impl<S: Model, U> Select<S, Field<S, U>> {
    /// This one-column subquery as a common table expression named `name`: on SQL stores the
    /// statement starts with `WITH "name" AS (SELECT ..)`, written once however often the
    /// subquery is used in it, and each use reads `SELECT .. FROM "name"`. The name must not
    /// be the name of a table the statement reads (`Error::Config` when it is), and one name
    /// names one subquery. MongoDB runs it as any subquery, as a key pre-query.
    pub fn named(self, name: impl Into<String>) -> Cte<S, U> {
        let (query, selected) = self.into_parts();
        let mut query = Subquery::of(query, SubColumn::Field(selected.index()));
        query.name = Some(name.into());
        Cte { query, _marker: std::marker::PhantomData }
    }
}

impl<T, S: Model, U> InValues<T> for Cte<S, U>
where
    U: SameValue<T>,
{
    fn membership(self, field: usize, negated: bool) -> Node {
        Node::InQuery { field, query: Box::new(self.query), negated }
    }
}

/// A scalar subquery: the projection of one aggregate over a model `S` is an operand of
/// expressions over any model, `Track::MILLISECONDS.calc().gt(Track::query().select(Track::MILLISECONDS.avg()))`.
/// Over no rows it is NULL (0 for a count).
impl<M, S: Model, T> Operand<M> for Select<S, Agg<S, T>> {
    type Value = T;
    fn into_calc(self) -> CalcNode {
        let (query, agg) = self.into_parts();
        let (func, field, ty) = agg.parts();
        CalcNode::Subquery(Box::new(Subquery::of(query, SubColumn::Agg { func, field, ty })))
    }
}

/// Whether some row of a subquery is linked to the filtered row; made by [`exists`] or
/// [`not_exists`], turned into a condition by [`Exists::on`].
#[derive(Debug, Clone)]
pub struct Exists<S> {
    query: Query<S>,
    negated: bool,
}

/// Some row of `query` is linked to the filtered row (say how with [`Exists::on`]):
/// `Customer::query().filter(exists(Invoice::query().filter(Invoice::TOTAL.gt(10))).on(Invoice::CUSTOMER_ID, Customer::ID))`.
pub fn exists<S: Model>(query: Query<S>) -> Exists<S> {
    Exists { query, negated: false }
}

/// No row of `query` is linked to the filtered row: the negation of [`exists`] (true also when
/// the filtered row's link field is NULL).
pub fn not_exists<S: Model>(query: Query<S>) -> Exists<S> {
    Exists { query, negated: true }
}

impl<S: Model> Exists<S> {
    /// The link: a row of the subquery belongs to the filtered row (of model `M`) when its
    /// field `inner` equals the filtered row's `outer` (NULL never equals). The two fields
    /// have the same type, up to `Option`.
    pub fn on<T, M, U>(self, inner: Field<S, T>, outer: Field<M, U>) -> Expr<M>
    where
        T: SameValue<U>,
    {
        let query = Subquery::of(self.query, SubColumn::Field(inner.index()));
        let node = Node::Exists { outer: outer.index(), query: Box::new(query) };
        Expr::from_node(if self.negated { Node::Not(Box::new(node)) } else { node })
    }
}
