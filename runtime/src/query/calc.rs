//! Typed scalar expressions: arithmetic over fields and values, `Line::PRICE * Line::QUANTITY`.
//! A [`Calc<M, T>`] is an expression over the fields of model `M` whose value is a `T`; the
//! type rules live in [`calc_types`](crate::query::calc_types). Select it, filter on it
//! (`.gt(..)`), order by it (`.desc()`), or assign it (`Field::set_to`).

use std::marker::PhantomData;
use std::ops::{Add, Div, Mul, Neg, Sub};

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::error::{Error, ValueError};
use crate::model::Field;
use crate::query::aggregate::{Columns, SelectItem, Selection};
use crate::query::calc_fns::{DatePart, TextFunc, TimeUnit};
use crate::query::calc_types::{ArithOut, AssignableTo, Comparable, Numeric, QuotOut};
use crate::query::expr::{CmpOp, Expr, Node};
use crate::query::update::{Assign, Assignment};
use crate::query::{AggFunc, IntoOrder, Ordered, Query, Summable};
use crate::schema::{ColumnType, ModelSchema};
use crate::value::{FieldType, Value};

/// An arithmetic operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArithOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`: integer division truncates toward zero; dividing by zero gives NULL.
    Div,
}

/// The untyped tree under [`Calc`]: every node knows the type of its value.
#[derive(Debug, Clone, PartialEq)]
pub enum CalcNode {
    /// A field's value.
    Field(usize),
    /// A bound value of type `ty`.
    Literal {
        /// The value.
        value: Value,
        /// Its type.
        ty: ColumnType,
    },
    /// `lhs op rhs`, of type `ty`.
    Binary {
        /// The operator.
        op: ArithOp,
        /// The left operand.
        lhs: Box<CalcNode>,
        /// The right operand.
        rhs: Box<CalcNode>,
        /// The result type.
        ty: ColumnType,
    },
    /// `-inner`.
    Neg(Box<CalcNode>),
    /// An aggregate over an expression (`sum(price * quantity)`), of type `ty`.
    Aggregate {
        /// The function.
        func: AggFunc,
        /// Its argument.
        arg: Box<CalcNode>,
        /// The result type.
        ty: ColumnType,
    },
    /// The first non-NULL of `items`, of type `ty`.
    Coalesce {
        /// The candidates, in order.
        items: Vec<CalcNode>,
        /// The result type.
        ty: ColumnType,
    },
    /// `CASE WHEN cond THEN value … ELSE otherwise END`, of type `ty`: the value of the first
    /// branch whose condition holds (a condition that is unknown because of a NULL does not),
    /// else `otherwise`, else NULL.
    Case {
        /// The `(condition, value)` branches, in order.
        branches: Vec<(Node, CalcNode)>,
        /// The value when no condition holds (`None`: NULL).
        otherwise: Option<Box<CalcNode>>,
        /// The result type.
        ty: ColumnType,
    },
    /// A function of one string (`lower`, `upper`, `length`), of type `ty`.
    Text {
        /// The function.
        func: TextFunc,
        /// Its argument.
        arg: Box<CalcNode>,
        /// The result type.
        ty: ColumnType,
    },
    /// The strings of `items` one after the other (NULL when any is NULL), of type `ty`.
    Concat {
        /// The parts, in order.
        items: Vec<CalcNode>,
        /// The result type.
        ty: ColumnType,
    },
    /// A date or time truncated to the start of its `unit` (same type as `arg`).
    Trunc {
        /// The unit.
        unit: TimeUnit,
        /// The date or time.
        arg: Box<CalcNode>,
    },
    /// One part of a date or time as a number, of type `ty`.
    Extract {
        /// The part.
        part: DatePart,
        /// The date or time.
        arg: Box<CalcNode>,
        /// The result type.
        ty: ColumnType,
    },
    /// A column reached through `belongs_to` / `has_one` relations (`Track::ALBUM.then(Album::TITLE)`),
    /// NULL when a link is missing; of type `ty`.
    Joined {
        /// The column.
        column: crate::query::JoinColumn,
        /// Its type (nullable through an optional link).
        ty: ColumnType,
    },
    /// A scalar subquery: one aggregate over the matching rows of another (or the same)
    /// model, `(SELECT AVG(..) FROM ..)`.
    Subquery(Box<crate::query::Subquery>),
    /// A value could not be encoded; running the query reports the error.
    Invalid(ValueError),
}

impl CalcNode {
    /// The type of the node's value.
    pub fn ty(&self, schema: &ModelSchema) -> ColumnType {
        match self {
            CalcNode::Field(i) => schema.fields[*i].ty,
            CalcNode::Literal { ty, .. }
            | CalcNode::Binary { ty, .. }
            | CalcNode::Aggregate { ty, .. }
            | CalcNode::Coalesce { ty, .. }
            | CalcNode::Case { ty, .. }
            | CalcNode::Text { ty, .. }
            | CalcNode::Concat { ty, .. }
            | CalcNode::Extract { ty, .. }
            | CalcNode::Joined { ty, .. } => *ty,
            CalcNode::Neg(inner) | CalcNode::Trunc { arg: inner, .. } => inner.ty(schema),
            CalcNode::Subquery(query) => query.ty(),
            CalcNode::Invalid(_) => ColumnType::scalar(crate::schema::Scalar::Text),
        }
    }

    /// Whether the tree holds an aggregate (then it belongs to a grouped `select`).
    pub fn has_aggregate(&self) -> bool {
        match self {
            CalcNode::Aggregate { .. } => true,
            CalcNode::Binary { lhs, rhs, .. } => lhs.has_aggregate() || rhs.has_aggregate(),
            CalcNode::Neg(inner)
            | CalcNode::Text { arg: inner, .. }
            | CalcNode::Trunc { arg: inner, .. }
            | CalcNode::Extract { arg: inner, .. } => inner.has_aggregate(),
            CalcNode::Coalesce { items, .. } | CalcNode::Concat { items, .. } => {
                items.iter().any(CalcNode::has_aggregate)
            }
            CalcNode::Case { branches, otherwise, .. } => {
                branches.iter().any(|(_, v)| v.has_aggregate()) || otherwise.as_ref().is_some_and(|o| o.has_aggregate())
            }
            _ => false,
        }
    }

    /// The first encoding error in the tree, if any.
    pub fn invalid(&self) -> Option<&ValueError> {
        match self {
            CalcNode::Invalid(e) => Some(e),
            CalcNode::Binary { lhs, rhs, .. } => lhs.invalid().or_else(|| rhs.invalid()),
            CalcNode::Neg(inner)
            | CalcNode::Aggregate { arg: inner, .. }
            | CalcNode::Text { arg: inner, .. }
            | CalcNode::Trunc { arg: inner, .. }
            | CalcNode::Extract { arg: inner, .. } => inner.invalid(),
            CalcNode::Coalesce { items, .. } | CalcNode::Concat { items, .. } => {
                items.iter().find_map(CalcNode::invalid)
            }
            CalcNode::Case { branches, otherwise, .. } => branches
                .iter()
                .find_map(|(cond, v)| match cond {
                    Node::Invalid(e) => Some(e),
                    _ => v.invalid(),
                })
                .or_else(|| otherwise.as_ref().and_then(|o| o.invalid())),
            _ => None,
        }
    }
}

/// A typed expression over model `M` whose value is a `T`: `Line::PRICE * Line::QUANTITY` is a
/// `Calc<Line, Decimal>`. See [`calc_types`](crate::query::calc_types) for the result types.
pub struct Calc<M, T> {
    node: CalcNode,
    _marker: PhantomData<fn() -> (M, T)>,
}

impl<M, T> Clone for Calc<M, T> {
    fn clone(&self) -> Self {
        Calc::from_node(self.node.clone())
    }
}

impl<M, T> std::fmt::Debug for Calc<M, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.node.fmt(f)
    }
}

impl<M, T> Calc<M, T> {
    pub(crate) fn from_node(node: CalcNode) -> Self {
        Calc { node, _marker: PhantomData }
    }

    /// The untyped tree.
    pub fn into_node(self) -> CalcNode {
        self.node
    }
}

/// A field, an expression or a plain value, as an operand of an expression over `M`;
/// `Value` is its Rust type.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an operand of an expression over `{M}`",
    label = "expected a field or expression of `{M}`, or a plain value",
    note = "every field in one expression must belong to the queried model"
)]
pub trait Operand<M> {
    /// The Rust type of the operand's value.
    type Value;
    /// The untyped operand.
    fn into_calc(self) -> CalcNode;
}

impl<M, T> Operand<M> for Field<M, T> {
    type Value = T;
    fn into_calc(self) -> CalcNode {
        CalcNode::Field(self.index())
    }
}

impl<M, T> Operand<M> for Calc<M, T> {
    type Value = T;
    fn into_calc(self) -> CalcNode {
        self.node
    }
}

fn literal<T: FieldType>(v: &T) -> CalcNode {
    match v.to_value() {
        Ok(value) => CalcNode::Literal { value, ty: T::COLUMN },
        Err(e) => CalcNode::Invalid(e),
    }
}

macro_rules! literal_operand {
    ($($t:ty),*) => {$(
        impl<M> Operand<M> for $t {
            type Value = $t;
            fn into_calc(self) -> CalcNode {
                literal(&self)
            }
        }
    )*};
}
literal_operand!(i16, i32, i64, f32, f64, Decimal, String, bool, NaiveDate, NaiveDateTime, DateTime<Utc>, Uuid);
literal_operand!(crate::ObjectId);

/// A value of any storable type as an expression over any model — for a value that is not an
/// operand by itself, such as a variant of a `#[derive(Enum)]` enum in a `case_when` branch:
/// `case_when(Member::POINTS.ge(500), lit(Tier::Gold)).otherwise(Member::TIER)`.
pub fn lit<M, T: FieldType>(value: T) -> Calc<M, T> {
    Calc::from_node(literal(&value))
}

impl<M> Operand<M> for &str {
    type Value = String;
    fn into_calc(self) -> CalcNode {
        CalcNode::Literal { value: Value::Text(self.to_owned()), ty: String::COLUMN }
    }
}

/// `COALESCE(value, fallback)`: `value` unless it is NULL, else `fallback`, e.g.
/// `coalesce(Line::DISCOUNT, Decimal::ZERO)`. `value` must be an `Option` and `fallback` of
/// the same type (the result's type) or its `Option`.
pub fn coalesce<M, A: Operand<M>, B: Operand<M>>(value: A, fallback: B) -> Calc<M, B::Value>
where
    A::Value: Coalesce<B::Value>,
    B::Value: FieldType,
{
    let items = vec![value.into_calc(), fallback.into_calc()];
    Calc::from_node(CalcNode::Coalesce { items, ty: <B::Value as FieldType>::COLUMN })
}

/// `Self` (an `Option`) can fall back to a `F` in [`coalesce`].
#[diagnostic::on_unimplemented(
    message = "`coalesce` cannot fall back from `{Self}` to `{F}`",
    label = "the first argument must be an `Option<T>` and the fallback a `T` or an `Option<T>`"
)]
pub trait Coalesce<F> {}

impl<T: FieldType> Coalesce<T> for Option<T> {}
impl<T: FieldType> Coalesce<Option<T>> for Option<T> {}

/// Builds `lhs op rhs` of type `T`.
fn binary<M, T: FieldType>(op: ArithOp, lhs: CalcNode, rhs: CalcNode) -> Calc<M, T> {
    Calc::from_node(CalcNode::Binary { op, lhs: Box::new(lhs), rhs: Box::new(rhs), ty: T::COLUMN })
}

/// `+ - *` and `/` with an operand on the right, for a left side of type `Field` or `Calc`.
macro_rules! arith_ops {
    ($($lhs:ident),*) => {$(
        impl<M, T: Arith<R::Value>, R: Operand<M>> Add<R> for $lhs<M, T> {
            type Output = Calc<M, T::Out>;
            fn add(self, rhs: R) -> Self::Output {
                binary(ArithOp::Add, self.into_calc(), rhs.into_calc())
            }
        }
        impl<M, T: Arith<R::Value>, R: Operand<M>> Sub<R> for $lhs<M, T> {
            type Output = Calc<M, T::Out>;
            fn sub(self, rhs: R) -> Self::Output {
                binary(ArithOp::Sub, self.into_calc(), rhs.into_calc())
            }
        }
        impl<M, T: Arith<R::Value>, R: Operand<M>> Mul<R> for $lhs<M, T> {
            type Output = Calc<M, T::Out>;
            fn mul(self, rhs: R) -> Self::Output {
                binary(ArithOp::Mul, self.into_calc(), rhs.into_calc())
            }
        }
        impl<M, T: Arith<R::Value>, R: Operand<M>> Div<R> for $lhs<M, T> {
            type Output = Calc<M, T::Quot>;
            fn div(self, rhs: R) -> Self::Output {
                binary(ArithOp::Div, self.into_calc(), rhs.into_calc())
            }
        }
        impl<M, T: Numeric + FieldType> Neg for $lhs<M, T> {
            type Output = Calc<M, T>;
            fn neg(self) -> Self::Output {
                Calc::from_node(CalcNode::Neg(Box::new(self.into_calc())))
            }
        }
    )*};
}
arith_ops!(Field, Calc);

/// `value ⊕ expression` with a plain value on the left: `2 * Line::QUANTITY`.
macro_rules! literal_lhs_ops {
    ($($t:ty),*) => {$(
        impl<M, T> Add<Field<M, T>> for $t where $t: Arith<T> {
            type Output = Calc<M, <$t as Arith<T>>::Out>;
            fn add(self, rhs: Field<M, T>) -> Self::Output {
                binary(ArithOp::Add, Operand::<M>::into_calc(self), rhs.into_calc())
            }
        }
        impl<M, T> Sub<Field<M, T>> for $t where $t: Arith<T> {
            type Output = Calc<M, <$t as Arith<T>>::Out>;
            fn sub(self, rhs: Field<M, T>) -> Self::Output {
                binary(ArithOp::Sub, Operand::<M>::into_calc(self), rhs.into_calc())
            }
        }
        impl<M, T> Mul<Field<M, T>> for $t where $t: Arith<T> {
            type Output = Calc<M, <$t as Arith<T>>::Out>;
            fn mul(self, rhs: Field<M, T>) -> Self::Output {
                binary(ArithOp::Mul, Operand::<M>::into_calc(self), rhs.into_calc())
            }
        }
        impl<M, T> Add<Calc<M, T>> for $t where $t: Arith<T> {
            type Output = Calc<M, <$t as Arith<T>>::Out>;
            fn add(self, rhs: Calc<M, T>) -> Self::Output {
                binary(ArithOp::Add, Operand::<M>::into_calc(self), rhs.node)
            }
        }
        impl<M, T> Sub<Calc<M, T>> for $t where $t: Arith<T> {
            type Output = Calc<M, <$t as Arith<T>>::Out>;
            fn sub(self, rhs: Calc<M, T>) -> Self::Output {
                binary(ArithOp::Sub, Operand::<M>::into_calc(self), rhs.node)
            }
        }
        impl<M, T> Mul<Calc<M, T>> for $t where $t: Arith<T> {
            type Output = Calc<M, <$t as Arith<T>>::Out>;
            fn mul(self, rhs: Calc<M, T>) -> Self::Output {
                binary(ArithOp::Mul, Operand::<M>::into_calc(self), rhs.node)
            }
        }
    )*};
}
literal_lhs_ops!(i16, i32, i64, f64, Decimal);

impl<M, T> Field<M, T> {
    /// This field as an expression, to compare it with another expression:
    /// `Line::TOTAL.calc().lt(Line::PRICE * Line::QUANTITY)`.
    pub fn calc(self) -> Calc<M, T> {
        Calc::from_node(CalcNode::Field(self.index()))
    }

    /// `field = expression`: assigns the value of an expression over the same row, e.g.
    /// `Line::TOTAL.set_to(Line::PRICE * Line::QUANTITY)`. The expression's type must be the
    /// field's (see [`AssignableTo`]).
    pub fn set_to<R: Operand<M>>(self, value: R) -> Assignment<M>
    where
        R::Value: AssignableTo<T>,
    {
        let value = value.into_calc();
        Assignment::new(match value.invalid() {
            Some(e) => Err(e.clone()),
            None => Ok(Assign::Calc { field: self.index(), value }),
        })
    }
}

impl<M, T> Calc<M, T> {
    fn compare<R: Operand<M>>(self, op: CmpOp, rhs: R) -> Expr<M>
    where
        T: Comparable<R::Value>,
    {
        let (lhs, rhs) = (self.node, rhs.into_calc());
        Expr::from_node(match lhs.invalid().or_else(|| rhs.invalid()) {
            Some(e) => Node::Invalid(e.clone()),
            None => Node::Calc { lhs, op, rhs },
        })
    }

    /// `expression = other` (a field, an expression or a value). A NULL on either side makes
    /// the comparison unknown: the row is not selected (also under `not`).
    pub fn eq<R: Operand<M>>(self, other: R) -> Expr<M>
    where
        T: Comparable<R::Value>,
    {
        self.compare(CmpOp::Eq, other)
    }

    /// `expression <> other`.
    pub fn ne<R: Operand<M>>(self, other: R) -> Expr<M>
    where
        T: Comparable<R::Value>,
    {
        self.compare(CmpOp::Ne, other)
    }

    /// `expression < other`.
    pub fn lt<R: Operand<M>>(self, other: R) -> Expr<M>
    where
        T: Comparable<R::Value>,
    {
        self.compare(CmpOp::Lt, other)
    }

    /// `expression <= other`.
    pub fn le<R: Operand<M>>(self, other: R) -> Expr<M>
    where
        T: Comparable<R::Value>,
    {
        self.compare(CmpOp::Le, other)
    }

    /// `expression > other`.
    pub fn gt<R: Operand<M>>(self, other: R) -> Expr<M>
    where
        T: Comparable<R::Value>,
    {
        self.compare(CmpOp::Gt, other)
    }

    /// `expression >= other`.
    pub fn ge<R: Operand<M>>(self, other: R) -> Expr<M>
    where
        T: Comparable<R::Value>,
    {
        self.compare(CmpOp::Ge, other)
    }

    fn sort(self, descending: bool) -> CalcOrder<M> {
        CalcOrder { node: self.node, descending, _model: PhantomData }
    }

    /// Ascending order on the expression's value; NULL sorts first (as the smallest value)
    /// on every store.
    pub fn asc(self) -> CalcOrder<M> {
        self.sort(false)
    }

    /// Descending order on the expression's value; NULL sorts last on every store.
    pub fn desc(self) -> CalcOrder<M> {
        self.sort(true)
    }
}

impl<M, T> Calc<M, T> {
    fn aggregate<U: FieldType>(self, func: AggFunc) -> Calc<M, U> {
        Calc::from_node(CalcNode::Aggregate { func, arg: Box::new(self.node), ty: U::COLUMN })
    }

    /// `COUNT(expression)`: the number of non-NULL values.
    pub fn count(self) -> Calc<M, i64> {
        self.aggregate(AggFunc::Count)
    }
}

/// `sum`, `avg`, `min` and `max` on an expression (in the prelude). A trait, like
/// [`FieldAggregates`](crate::query::FieldAggregates), so that an expression of the wrong type
/// fails with polystore's own message (`` `String` cannot be summed or averaged ``).
pub trait CalcAggregates: Sized {
    /// The model the expression is over.
    type Model;
    /// The expression's Rust type.
    type Value;

    /// `SUM(expression)` over the rows of each group: `(Line::PRICE * Line::QUANTITY).sum()`.
    /// `None` when there are no non-NULL values; exact for `Decimal` on every store. Select
    /// it, order by it, or compare it in [`Query::having`].
    fn sum(self) -> Calc<Self::Model, Option<<Self::Value as Summable>::Sum>>
    where
        Self::Value: Summable;

    /// `AVG(expression)`: a float for integer and float expressions; for `Decimal` the exact
    /// sum divided by the count, truncated at 16 places like every decimal quotient.
    fn avg(self) -> Calc<Self::Model, Option<<Self::Value as Summable>::Avg>>
    where
        Self::Value: Summable;

    /// `MIN(expression)`: `None` when there are no non-NULL values.
    fn min(self) -> Calc<Self::Model, Option<<Self::Value as Ordered>::Inner>>
    where
        Self::Value: Ordered;

    /// `MAX(expression)`: `None` when there are no non-NULL values.
    fn max(self) -> Calc<Self::Model, Option<<Self::Value as Ordered>::Inner>>
    where
        Self::Value: Ordered;
}

impl<M, T> CalcAggregates for Calc<M, T> {
    type Model = M;
    type Value = T;

    fn sum(self) -> Calc<M, Option<T::Sum>>
    where
        T: Summable,
    {
        self.aggregate(AggFunc::Sum)
    }

    fn avg(self) -> Calc<M, Option<T::Avg>>
    where
        T: Summable,
    {
        if <T::Avg as FieldType>::COLUMN.scalar != crate::schema::Scalar::Decimal {
            return self.aggregate(AggFunc::Avg);
        }
        let count = CalcNode::Aggregate { func: AggFunc::Count, arg: Box::new(self.node.clone()), ty: i64::COLUMN };
        let sum = self.aggregate::<Option<T::Avg>>(AggFunc::Sum).node;
        binary(ArithOp::Div, sum, count)
    }

    fn min(self) -> Calc<M, Option<T::Inner>>
    where
        T: Ordered,
    {
        self.aggregate(AggFunc::Min)
    }

    fn max(self) -> Calc<M, Option<T::Inner>>
    where
        T: Ordered,
    {
        self.aggregate(AggFunc::Max)
    }
}

/// An ordering on an expression of model `M`: `(Line::PRICE * Line::QUANTITY).desc()`.
#[derive(Debug, Clone)]
pub struct CalcOrder<M> {
    node: CalcNode,
    descending: bool,
    _model: PhantomData<fn() -> M>,
}

/// One untyped expression ordering of a query: placed after `pos` field terms and after
/// `aggs` aggregate terms of the query's ordering (the order the terms were added in).
#[derive(Debug, Clone, PartialEq)]
pub struct CalcSort {
    /// The expression.
    pub node: CalcNode,
    /// Descending when true.
    pub descending: bool,
    /// How many field terms come before it.
    pub pos: usize,
    /// How many aggregate terms come before it.
    pub aggs: usize,
}

impl<M> IntoOrder<M> for CalcOrder<M> {
    fn add_to(self, query: &mut Query<M>) {
        let (pos, aggs) = (query.order.len(), query.agg_order.len());
        query.calc_order.push(CalcSort { node: self.node, descending: self.descending, pos, aggs });
    }
}

impl<M, T: FieldType> Selection<M> for Calc<M, T> {
    type Output = T;
    fn items(&self, out: &mut Vec<SelectItem>) {
        out.push(SelectItem::Calc(self.node.clone()));
    }
    fn decode(&self, cols: &mut Columns<'_>) -> Result<T, Error> {
        cols.next(T::COLUMN, "<expression>")
    }
}

/// The arithmetic of two numeric types (see [`calc_types`](crate::query::calc_types)): `Out`
/// for `+ - *`, `Quot` for `/`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` and `{R}` cannot be combined in arithmetic",
    label = "both operands must be numbers with an exact common type",
    note = "integers combine with integers, floats and `Decimal`; a float and a `Decimal` do not mix"
)]
pub trait Arith<R> {
    /// The type of `Self + R`, `Self - R`, `Self * R`.
    type Out: FieldType;
    /// The type of `Self / R` (always an `Option`: dividing by zero gives NULL).
    type Quot: FieldType;
}

impl<L: Numeric, R: Numeric> Arith<R> for L
where
    L::Base: crate::query::calc_types::Widen<R::Base>,
{
    type Out = ArithOut<L, R>;
    type Quot = QuotOut<L, R>;
}

/// One term of a query's full ordering, in precedence order (see [`sort_keys`]).
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(feature = "mongodb"), allow(dead_code))]
pub(crate) enum SortKey<'a> {
    /// A field term.
    Field(&'a crate::query::OrderTerm),
    /// An aggregate term, with its index in `agg_order`.
    Agg(usize, &'a crate::query::AggSort),
    /// An expression term, with its index in `calc_order`.
    Calc(usize, &'a CalcSort),
}

/// The query's field, aggregate and expression orderings merged in the order they were added.
pub(crate) fn sort_keys<'a>(q: &crate::query::Clauses<'a>) -> Vec<SortKey<'a>> {
    let mut out = Vec::with_capacity(q.order.len() + q.agg_order.len() + q.calc_order.len());
    for i in 0..=q.order.len() {
        // Aggregate k was added before expression c when k < c.aggs.
        let mut extra: Vec<(usize, SortKey<'_>)> = Vec::new();
        for (k, a) in q.agg_order.iter().enumerate().filter(|(_, a)| a.pos == i) {
            extra.push((2 * k + 1, SortKey::Agg(k, a)));
        }
        for (k, c) in q.calc_order.iter().enumerate().filter(|(_, c)| c.pos == i) {
            extra.push((2 * c.aggs, SortKey::Calc(k, c)));
        }
        extra.sort_by_key(|(rank, _)| *rank);
        out.extend(extra.into_iter().map(|(_, key)| key));
        if let Some(term) = q.order.get(i) {
            out.push(SortKey::Field(term));
        }
    }
    out
}
