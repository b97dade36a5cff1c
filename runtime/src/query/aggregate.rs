//! Projections and aggregates: what [`Query::select`](crate::Query::select) can return.
//! A [`Selection`] is a field handle, an [`Agg`] or a tuple of them; its `Output` is the Rust
//! type of one result row, fixed by the handles' types (`SUM` of an `i32` field is an
//! `Option<i64>`, `AVG` an `Option<f64>`, `COUNT` an `i64`).

use std::marker::PhantomData;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::error::{Error, ValueError};
use crate::model::Field;
use crate::query::expr::{CmpOp, Node};
use crate::schema::{ColumnType, Scalar};
use crate::value::{FieldType, ToParam, Value};

/// An aggregate function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggFunc {
    /// `COUNT(*)` or `COUNT(field)` (non-NULL values).
    Count,
    /// `COUNT(DISTINCT field)`.
    CountDistinct,
    /// `SUM(field)`.
    Sum,
    /// `AVG(field)`.
    Avg,
    /// `MIN(field)`.
    Min,
    /// `MAX(field)`.
    Max,
}

/// One untyped item of a SELECT list.
#[derive(Debug, Clone, PartialEq)]
pub enum SelectItem {
    /// A field's column.
    Field(usize),
    /// An aggregate over a field (or over all rows for `COUNT(*)`).
    Agg {
        /// The function.
        func: AggFunc,
        /// The argument; `None` for `*`.
        field: Option<usize>,
    },
    /// An expression (which may hold aggregates).
    Calc(crate::query::CalcNode),
    /// A column reached through `belongs_to` / `has_one` relations (`LEFT JOIN`, `$lookup`).
    Joined(crate::query::JoinColumn),
    /// An aggregate over the rows of a `has_many` / `many_to_many` relation, per row.
    Related(crate::query::RelatedAgg),
}

/// Reads the columns of one result row in order, for [`Selection::decode`].
pub struct Columns<'r> {
    row: &'r dyn ValueRow,
    pos: usize,
    model: &'static str,
}

/// A result row that can hand out column values by position. Implemented for the drivers'
/// rows by the execution point.
#[cfg_attr(not(any(feature = "postgres", feature = "sqlite")), allow(dead_code))]
pub(crate) trait ValueRow {
    /// Column `idx` read as a value of type `ty`.
    fn value(&self, idx: usize, ty: ColumnType) -> Result<Value, ValueError>;
    /// The position of the column named `name`.
    fn column_index(&self, name: &str) -> Option<usize>;
    /// The name and SQL type (as the driver spells it) of each column, for raw SQL rows.
    fn column_types(&self) -> Vec<(String, String)> {
        Vec::new()
    }
}

impl<'r> Columns<'r> {
    pub(crate) fn new(row: &'r dyn ValueRow, model: &'static str) -> Self {
        Columns { row, pos: 0, model }
    }

    /// A decode error on the aggregate just read.
    fn error(&self, source: ValueError) -> Error {
        Error::Decode { model: self.model, field: "<aggregate>", source }
    }

    /// Reads the next column as a `T`, stored as `ty`; `what` names it in errors.
    pub fn next<T: FieldType>(&mut self, ty: ColumnType, what: &'static str) -> Result<T, Error> {
        let idx = self.pos;
        self.pos += 1;
        self.row.value(idx, ty).and_then(T::from_value).map_err(|source| Error::Decode {
            model: self.model,
            field: what,
            source,
        })
    }
}

/// What a projection can select: a field handle, an aggregate, or a tuple of up to eight of
/// them. `Output` is the Rust type of one result row.
///
/// ```
/// use polystore::prelude::*;
/// #[derive(Model)]
/// struct User { #[model(primary_key)] id: i64, email: String, country: String, score: i32 }
/// # async fn run(db: &Db) -> polystore::Result<()> {
/// let pairs: Vec<(i64, String)> = User::query().select((User::ID, User::EMAIL)).all(db).await?;
/// let per_country: Vec<(String, i64, Option<i64>, Option<f64>)> = User::query()
///     .group_by(User::COUNTRY)
///     .having(count_all::<User>().gt(1))
///     .select((User::COUNTRY, count_all::<User>(), User::SCORE.sum(), User::SCORE.avg()))
///     .all(db)
///     .await?;
/// # Ok(()) }
/// ```
///
/// A field of another model cannot be selected:
///
/// ```compile_fail
/// use polystore::prelude::*;
/// #[derive(Model)]
/// struct User { #[model(primary_key)] id: i64 }
/// #[derive(Model)]
/// struct Post { #[model(primary_key)] id: i64 }
/// let _ = User::query().select((User::ID, Post::ID));
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be selected from `{M}`",
    label = "select a field handle of this model, an aggregate, or a tuple of them",
    note = "e.g. `.select((User::ID, User::EMAIL))` or `.select((User::COUNTRY, count_all::<User>()))`"
)]
pub trait Selection<M> {
    /// One result row.
    type Output: Send + 'static;
    /// Appends the SELECT items.
    fn items(&self, out: &mut Vec<SelectItem>);
    /// Reads one row's columns.
    fn decode(&self, cols: &mut Columns<'_>) -> Result<Self::Output, Error>;
}

impl<M: crate::Model, T: FieldType> Selection<M> for Field<M, T> {
    type Output = T;
    fn items(&self, out: &mut Vec<SelectItem>) {
        out.push(SelectItem::Field(self.index()));
    }
    fn decode(&self, cols: &mut Columns<'_>) -> Result<T, Error> {
        cols.next(T::COLUMN, self.name())
    }
}

/// A typed aggregate over model `M` whose value is a `T`: `User::AGE.sum()`,
/// [`count_all`]. Select it, or compare it in [`Query::having`](crate::Query::having).
pub struct Agg<M, T> {
    func: AggFunc,
    field: Option<usize>,
    ty: ColumnType,
    _marker: PhantomData<fn() -> (M, T)>,
}

impl<M, T> Clone for Agg<M, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<M, T> Copy for Agg<M, T> {}

impl<M, T> std::fmt::Debug for Agg<M, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}({:?})", self.func, self.field)
    }
}

impl<M, T> Agg<M, T> {
    /// The untyped parts: function, argument and result type (for scalar subqueries).
    pub(crate) fn parts(&self) -> (AggFunc, Option<usize>, ColumnType) {
        (self.func, self.field, self.ty)
    }

    fn new(func: AggFunc, field: Option<usize>, ty: ColumnType) -> Self {
        Agg { func, field, ty, _marker: PhantomData }
    }

    fn compare<V: ToParam<T>>(self, op: CmpOp, value: V) -> Having<M> {
        Having::from_node(match value.to_param() {
            Ok(value) => Node::Aggregate { func: self.func, field: self.field, op, value, ty: self.ty },
            Err(e) => Node::Invalid(e),
        })
    }

    /// `aggregate = value`.
    pub fn eq<V: ToParam<T>>(self, value: V) -> Having<M> {
        self.compare(CmpOp::Eq, value)
    }

    /// `aggregate <> value`.
    pub fn ne<V: ToParam<T>>(self, value: V) -> Having<M> {
        self.compare(CmpOp::Ne, value)
    }

    /// `aggregate < value`.
    pub fn lt<V: ToParam<T>>(self, value: V) -> Having<M> {
        self.compare(CmpOp::Lt, value)
    }

    /// `aggregate <= value`.
    pub fn le<V: ToParam<T>>(self, value: V) -> Having<M> {
        self.compare(CmpOp::Le, value)
    }

    /// `aggregate > value`.
    pub fn gt<V: ToParam<T>>(self, value: V) -> Having<M> {
        self.compare(CmpOp::Gt, value)
    }

    /// `aggregate >= value`.
    pub fn ge<V: ToParam<T>>(self, value: V) -> Having<M> {
        self.compare(CmpOp::Ge, value)
    }
}

impl<M, T> Agg<M, T> {
    /// A decimal average, selected as its exact sum and count and divided in Rust so that
    /// every store gives the same digits.
    fn is_decimal_avg(&self) -> bool {
        self.func == AggFunc::Avg && self.ty.scalar == Scalar::Decimal
    }
}

impl<M, T: FieldType> Selection<M> for Agg<M, T> {
    type Output = T;
    fn items(&self, out: &mut Vec<SelectItem>) {
        if self.is_decimal_avg() {
            out.push(SelectItem::Agg { func: AggFunc::Sum, field: self.field });
            out.push(SelectItem::Agg { func: AggFunc::Count, field: self.field });
        } else {
            out.push(SelectItem::Agg { func: self.func, field: self.field });
        }
    }
    fn decode(&self, cols: &mut Columns<'_>) -> Result<T, Error> {
        if !self.is_decimal_avg() {
            return cols.next(self.ty, "<aggregate>");
        }
        let sum: Option<Decimal> = cols.next(self.ty, "<aggregate>")?;
        let count: i64 = cols.next(ColumnType::scalar(Scalar::I64), "<aggregate>")?;
        let avg = match sum {
            Some(sum) if count > 0 => match sum.checked_div(Decimal::from(count)) {
                Some(avg) => Value::Decimal(avg.normalize()),
                None => {
                    return Err(
                        cols.error(ValueError::OutOfRange { value: sum.to_string(), target: "decimal average" })
                    );
                }
            },
            _ => Value::Null,
        };
        T::from_value(avg).map_err(|e| cols.error(e))
    }
}

/// An ordering on an aggregate, untyped: `func(field)` in `direction`, placed before field
/// term `pos` of the query's ordering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AggSort {
    /// The aggregate function.
    pub func: AggFunc,
    /// Its argument (`None` for `*`).
    pub field: Option<usize>,
    /// The aggregate's result type.
    pub ty: ColumnType,
    /// Descending when true.
    pub descending: bool,
    /// How many field terms of the ordering come before it.
    pub pos: usize,
}

/// An ordering on an aggregate of model `M`: `count_all::<Track>().desc()`. NULL aggregates
/// (a `sum` over no values) sort as the smallest value on every store: first ascending, last
/// descending. Only [`Query::select`](crate::Query::select) queries can order on aggregates.
#[derive(Debug, Clone, Copy)]
pub struct AggOrder<M> {
    sort: AggSort,
    _model: PhantomData<fn() -> M>,
}

/// What [`Query::order_by`](crate::Query::order_by) takes: a field's [`Order`](crate::Order)
/// or an aggregate's [`AggOrder`], of the same model.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an ordering of `{M}`",
    label = "order by a field or an aggregate of the queried model",
    note = "e.g. `.order_by(User::NAME.asc())` or `.order_by(count_all::<User>().desc())`; an ordering on a related model's column or on a relation aggregate goes after `select`: `.select(..).order_by(Playlist::TRACKS.count().desc())`"
)]
pub trait IntoOrder<M> {
    /// Appends this ordering to the query's.
    fn add_to(self, query: &mut crate::Query<M>);
}

impl<M> IntoOrder<M> for crate::Order<M> {
    fn add_to(self, query: &mut crate::Query<M>) {
        query.order.push(self.into_term());
    }
}

impl<M> IntoOrder<M> for AggOrder<M> {
    fn add_to(self, query: &mut crate::Query<M>) {
        query.agg_order.push(AggSort { pos: query.order.len(), ..self.sort });
    }
}

impl<M, T> Agg<M, T> {
    fn sort(self, descending: bool) -> AggOrder<M> {
        let sort = AggSort { func: self.func, field: self.field, ty: self.ty, descending, pos: 0 };
        AggOrder { sort, _model: PhantomData }
    }

    /// Ascending order on this aggregate (NULL first).
    pub fn asc(self) -> AggOrder<M> {
        self.sort(false)
    }

    /// Descending order on this aggregate (NULL last).
    pub fn desc(self) -> AggOrder<M> {
        self.sort(true)
    }
}

/// `COUNT(*)` over the rows (of each group).
pub fn count_all<M>() -> Agg<M, i64> {
    Agg::new(AggFunc::Count, None, ColumnType::scalar(Scalar::I64))
}

/// A condition on aggregates, for [`Query::having`](crate::Query::having).
#[derive(Debug, Clone, PartialEq)]
pub struct Having<M> {
    node: Node,
    _model: PhantomData<fn() -> M>,
}

impl<M> Having<M> {
    fn from_node(node: Node) -> Self {
        Having { node, _model: PhantomData }
    }

    /// The untyped tree.
    pub fn into_node(self) -> Node {
        self.node
    }

    /// Both conditions hold.
    pub fn and(self, other: Having<M>) -> Having<M> {
        Having::from_node(Node::And(vec![self.node, other.node]))
    }

    /// Either condition holds.
    pub fn or(self, other: Having<M>) -> Having<M> {
        Having::from_node(Node::Or(vec![self.node, other.node]))
    }
}

impl<M> From<crate::Expr<M>> for Having<M> {
    /// A condition on expressions over aggregates, e.g.
    /// `(Line::PRICE * Line::QUANTITY).sum().gt(100)`.
    fn from(expr: crate::Expr<M>) -> Self {
        Having::from_node(expr.into_node())
    }
}

/// A field type that `SUM` and `AVG` apply to: the integer, float and decimal types and their
/// `Option`s. `Sum` is the type of its sum and `Avg` of its average:
///
/// | field | `sum()` | `avg()` |
/// |---|---|---|
/// | `i16`, `i32`, `i64` | `Option<i64>` | `Option<f64>` |
/// | `f32`, `f64` | `Option<f64>` | `Option<f64>` |
/// | `Decimal` | `Option<Decimal>` (exact, scale kept) | `Option<Decimal>` (exact sum ÷ count) |
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be summed or averaged",
    label = "`sum` / `avg` need an integer, float or `Decimal` field",
    note = "count it with `.count()` / `.count_distinct()`, or take `.min()` / `.max()`"
)]
pub trait Summable {
    /// The type of the sum.
    type Sum: FieldType;
    /// The type of the average.
    type Avg: FieldType;
}

/// A field type that `MIN` / `MAX` apply to; `Inner` is the type without its `Option`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no MIN / MAX",
    label = "`min` / `max` need a scalar field (number, text, bool, date/time, UUID, decimal)",
    note = "for a list field, filter on its elements with `.contains(..)` instead"
)]
pub trait Ordered {
    /// The non-optional type.
    type Inner: FieldType;
}

macro_rules! summable {
    ($($t:ty => $sum:ty, $avg:ty);*) => {$(
        impl Summable for $t { type Sum = $sum; type Avg = $avg; }
        impl Summable for Option<$t> { type Sum = $sum; type Avg = $avg; }
    )*};
}
summable!(i16 => i64, f64; i32 => i64, f64; i64 => i64, f64; f32 => f64, f64; f64 => f64, f64; Decimal => Decimal, Decimal);

macro_rules! ordered {
    ($($t:ty),*) => {$(
        impl Ordered for $t { type Inner = $t; }
        impl Ordered for Option<$t> { type Inner = $t; }
    )*};
}
ordered!(i16, i32, i64, f32, f64, bool, String, DateTime<Utc>, NaiveDateTime, NaiveDate, Uuid, Decimal);

impl<M, T> Field<M, T> {
    /// `COUNT(field)`: the number of non-NULL values.
    pub fn count(self) -> Agg<M, i64> {
        Agg::new(AggFunc::Count, Some(self.index()), ColumnType::scalar(Scalar::I64))
    }

    /// `COUNT(DISTINCT field)`.
    pub fn count_distinct(self) -> Agg<M, i64> {
        Agg::new(AggFunc::CountDistinct, Some(self.index()), ColumnType::scalar(Scalar::I64))
    }
}

/// `sum`, `avg`, `min` and `max` on a field handle (in the prelude). A trait rather than
/// inherent methods so that a field of the wrong type fails with polystore's own message
/// (`` `String` cannot be summed or averaged ``) instead of "method exists but its trait
/// bounds were not satisfied".
pub trait FieldAggregates: Sized {
    /// The model the field belongs to.
    type Model;
    /// The field's Rust type.
    type Value;

    /// `SUM(field)`: `None` when there are no non-NULL values. Exact for `Decimal` fields on
    /// every store (PostgreSQL `numeric`, SQLite through polystore's decimal functions,
    /// MongoDB `Decimal128`); see [`Summable`] for the result types.
    fn sum(self) -> Agg<Self::Model, Option<<Self::Value as Summable>::Sum>>
    where
        Self::Value: Summable;

    /// `AVG(field)`: `None` when there are no non-NULL values. A float for integer and float
    /// fields; for `Decimal` fields the exact sum divided by the count in Rust
    /// (`rust_decimal`, 28 significant digits, trailing zeros removed: `7.875 / 2` is
    /// `3.9375`), so every store gives the same digits.
    fn avg(self) -> Agg<Self::Model, Option<<Self::Value as Summable>::Avg>>
    where
        Self::Value: Summable;

    /// `MIN(field)`: `None` when there are no non-NULL values.
    fn min(self) -> Agg<Self::Model, Option<<Self::Value as Ordered>::Inner>>
    where
        Self::Value: Ordered;

    /// `MAX(field)`: `None` when there are no non-NULL values.
    fn max(self) -> Agg<Self::Model, Option<<Self::Value as Ordered>::Inner>>
    where
        Self::Value: Ordered;
}

impl<M, T> FieldAggregates for Field<M, T> {
    type Model = M;
    type Value = T;

    fn sum(self) -> Agg<M, Option<T::Sum>>
    where
        T: Summable,
    {
        Agg::new(AggFunc::Sum, Some(self.index()), <T::Sum as FieldType>::COLUMN.nullable())
    }

    fn avg(self) -> Agg<M, Option<T::Avg>>
    where
        T: Summable,
    {
        Agg::new(AggFunc::Avg, Some(self.index()), <T::Avg as FieldType>::COLUMN.nullable())
    }

    fn min(self) -> Agg<M, Option<T::Inner>>
    where
        T: Ordered,
    {
        Agg::new(AggFunc::Min, Some(self.index()), <T::Inner as FieldType>::COLUMN.nullable())
    }

    fn max(self) -> Agg<M, Option<T::Inner>>
    where
        T: Ordered,
    {
        Agg::new(AggFunc::Max, Some(self.index()), <T::Inner as FieldType>::COLUMN.nullable())
    }
}

macro_rules! tuple_selection {
    ($($name:ident : $idx:tt),+) => {
        impl<M, $($name: Selection<M>),+> Selection<M> for ($($name,)+) {
            type Output = ($($name::Output,)+);
            fn items(&self, out: &mut Vec<SelectItem>) {
                $(self.$idx.items(out);)+
            }
            fn decode(&self, cols: &mut Columns<'_>) -> Result<Self::Output, Error> {
                Ok(($(self.$idx.decode(cols)?,)+))
            }
        }
    };
}

tuple_selection!(A: 0);
tuple_selection!(A: 0, B: 1);
tuple_selection!(A: 0, B: 1, C: 2);
tuple_selection!(A: 0, B: 1, C: 2, D: 3);
tuple_selection!(A: 0, B: 1, C: 2, D: 3, E: 4);
tuple_selection!(A: 0, B: 1, C: 2, D: 3, E: 4, F: 5);
tuple_selection!(A: 0, B: 1, C: 2, D: 3, E: 4, F: 5, G: 6);
tuple_selection!(A: 0, B: 1, C: 2, D: 3, E: 4, F: 5, G: 6, H: 7);
