//! Functions in typed expressions ([`Calc`]): `case_when(..).when(..).otherwise(..)`, the
//! string functions `lower`, `upper`, `length` and `concat`, and the date/time functions
//! `trunc` and `extract`. Each takes fields, expressions or plain values, checks their types
//! at compile time, and gives the same result on PostgreSQL, SQLite and MongoDB:
//!
//! - NULL in, NULL out: a NULL string or date gives NULL (`concat` with a NULL part is NULL);
//! - `lower` / `upper` change the ASCII letters `A`–`Z` / `a`–`z` only, on every store, and
//!   keep every other character: `"ÉCOLE"` lowers to `"École"`;
//! - `length` counts characters (Unicode code points), not bytes;
//! - dates and times are read in UTC; `extract(DatePart::DayOfWeek)` numbers the days as ISO
//!   8601 does: Monday is 1, Sunday is 7.

use std::marker::PhantomData;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

use crate::model::Field;
use crate::query::calc::{Calc, CalcNode, Operand};
use crate::query::calc_types::{NotNull, NotOption, Nullable, Nullity};
use crate::query::expr::{Expr, Node};
use crate::value::FieldType;

/// A function of one string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextFunc {
    /// ASCII letters to lower case.
    Lower,
    /// ASCII letters to upper case.
    Upper,
    /// The number of characters (code points), an `i64`.
    Length,
}

/// The unit a date or time is truncated to by `trunc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeUnit {
    /// January 1st, 00:00.
    Year,
    /// The 1st of the month, 00:00.
    Month,
    /// The day, 00:00.
    Day,
    /// The hour, minutes and seconds zero.
    Hour,
    /// The minute, seconds zero.
    Minute,
}

impl TimeUnit {
    /// The unit's name in PostgreSQL's `date_trunc` and MongoDB's `$dateTrunc`.
    pub fn name(self) -> &'static str {
        match self {
            TimeUnit::Year => "year",
            TimeUnit::Month => "month",
            TimeUnit::Day => "day",
            TimeUnit::Hour => "hour",
            TimeUnit::Minute => "minute",
        }
    }
}

/// The part of a date or time `extract` gives, as an `i32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatePart {
    /// The year (`2024`).
    Year,
    /// The month, 1 (January) to 12.
    Month,
    /// The day of the month, 1 to 31.
    Day,
    /// The hour, 0 to 23 (always 0 for a `NaiveDate`).
    Hour,
    /// The minute, 0 to 59 (always 0 for a `NaiveDate`).
    Minute,
    /// The ISO 8601 day of the week: 1 (Monday) to 7 (Sunday).
    DayOfWeek,
}

/// A string field or value type: `String` or `Option<String>`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not text: `lower`, `upper`, `length` and `concat` apply to `String` fields and expressions",
    label = "expected a `String` or `Option<String>` expression",
    note = "to use a number or a date as text, select it and format it in Rust"
)]
pub trait Textual {
    /// Whether it may be NULL.
    type Null: Nullity;
}

impl Textual for String {
    type Null = NotNull;
}
impl Textual for Option<String> {
    type Null = Nullable;
}

/// A date or time field or value type: `DateTime<Utc>`, `NaiveDateTime`, `NaiveDate`, or
/// their `Option`s.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a date or time: `trunc` and `extract` apply to `DateTime<Utc>`, `NaiveDateTime` and `NaiveDate`",
    label = "expected a date or time expression",
    note = "store the value as a `chrono` type to compute with it as a date"
)]
pub trait Temporal {
    /// Whether it may be NULL.
    type Null: Nullity;
}

macro_rules! temporal {
    ($($t:ty),*) => {$(
        impl Temporal for $t { type Null = NotNull; }
        impl Temporal for Option<$t> { type Null = Nullable; }
    )*};
}
temporal!(DateTime<Utc>, NaiveDateTime, NaiveDate);

/// `T`, or `Option<T>` when `N` is nullable.
type Wrap<N, T> = <N as Nullity>::Wrap<T>;

/// The type of `a.concat(b)`: a `String`, an `Option<String>` when either side may be NULL.
pub type ConcatOut<A, B> = Wrap<<<A as Textual>::Null as Nullity>::Or<<B as Textual>::Null>, String>;

fn text<M, U: FieldType>(func: TextFunc, arg: CalcNode) -> Calc<M, U> {
    Calc::from_node(CalcNode::Text { func, arg: Box::new(arg), ty: U::COLUMN })
}

fn concat_nodes(a: CalcNode, b: CalcNode, ty: crate::schema::ColumnType) -> CalcNode {
    let mut items = Vec::new();
    for part in [a, b] {
        match part {
            CalcNode::Concat { items: inner, .. } => items.extend(inner),
            other => items.push(other),
        }
    }
    CalcNode::Concat { items, ty }
}

/// `a || b`: the string `a` followed by `b` (fields, expressions or values), e.g.
/// `concat("Dr. ", Person::NAME)`; NULL when either is NULL. See also the `concat` method.
pub fn concat<M, A: Operand<M>, B: Operand<M>>(a: A, b: B) -> Calc<M, ConcatOut<A::Value, B::Value>>
where
    A::Value: Textual,
    B::Value: Textual,
{
    let ty = <ConcatOut<A::Value, B::Value> as FieldType>::COLUMN;
    Calc::from_node(concat_nodes(a.into_calc(), b.into_calc(), ty))
}

/// The string and date/time functions, on a field or an expression of type `T`.
macro_rules! functions {
    ($($lhs:ident),*) => {$(
        impl<M, T> $lhs<M, T> {
            /// The string with its ASCII letters in lower case (other characters unchanged,
            /// on every store); NULL stays NULL.
            pub fn lower(self) -> Calc<M, T>
            where
                T: Textual + FieldType,
            {
                text(TextFunc::Lower, Operand::<M>::into_calc(self))
            }

            /// The string with its ASCII letters in upper case (other characters unchanged,
            /// on every store); NULL stays NULL.
            pub fn upper(self) -> Calc<M, T>
            where
                T: Textual + FieldType,
            {
                text(TextFunc::Upper, Operand::<M>::into_calc(self))
            }

            /// The number of characters (Unicode code points, not bytes) of the string: an
            /// `i64`, or an `Option<i64>` for an `Option<String>`.
            pub fn length(self) -> Calc<M, Wrap<T::Null, i64>>
            where
                T: Textual,
            {
                text(TextFunc::Length, Operand::<M>::into_calc(self))
            }

            /// This string followed by `other` (a field, expression or value):
            /// `Artist::NAME.concat(" — ").concat(Artist::COUNTRY)`. NULL when either is NULL
            /// (wrap an `Option` side in [`coalesce`](crate::query::coalesce) to skip it).
            pub fn concat<R: Operand<M>>(self, other: R) -> Calc<M, ConcatOut<T, R::Value>>
            where
                T: Textual,
                R::Value: Textual,
            {
                let ty = <ConcatOut<T, R::Value> as FieldType>::COLUMN;
                Calc::from_node(concat_nodes(Operand::<M>::into_calc(self), other.into_calc(), ty))
            }

            /// The date or time truncated to the start of its `unit`, in UTC, of the same type:
            /// `Invoice::ISSUED_AT.trunc(TimeUnit::Month)` is the first of the month at
            /// 00:00. Truncating a `NaiveDate` to a day, hour or minute keeps it.
            pub fn trunc(self, unit: TimeUnit) -> Calc<M, T>
            where
                T: Temporal,
            {
                Calc::from_node(CalcNode::Trunc { unit, arg: Box::new(Operand::<M>::into_calc(self)) })
            }

            /// One part of the date or time, in UTC, as an `i32` (an `Option<i32>` for an
            /// `Option` date): `Invoice::ISSUED_AT.extract(DatePart::Month)` is 1 to 12. See
            /// [`DatePart`] for the numbering (days of the week: Monday is 1, Sunday 7).
            pub fn extract(self, part: DatePart) -> Calc<M, Wrap<T::Null, i32>>
            where
                T: Temporal,
            {
                let ty = <Wrap<T::Null, i32> as FieldType>::COLUMN;
                Calc::from_node(CalcNode::Extract { part, arg: Box::new(Operand::<M>::into_calc(self)), ty })
            }
        }
    )*};
}
functions!(Field, Calc);

/// `CASE WHEN cond THEN value … END`: starts a conditional expression with its first branch,
/// e.g. `case_when(Track::MS.gt(300_000), "long").when(Track::MS.gt(60_000), "song").otherwise("short")`.
/// A condition is any filter over the model; every branch must give the same type (a value
/// and an `Option` of it mix, giving an `Option`). Finish with [`CaseWhen::otherwise`], or
/// with [`CaseWhen::end`] for NULL when no condition holds.
///
/// A condition that is unknown because of a NULL (`Track::RATING.gt(3)` on a NULL rating)
/// does not hold, on every store. On MongoDB the conditions may be comparisons (`eq`, `lt`,
/// …, between expressions too), `is_null`, `is_in`, `between`, and `and` / `or` / `not` of
/// those; text matches, array and relation conditions are `Error::Unsupported` there.
pub fn case_when<M, V: Operand<M>>(condition: Expr<M>, value: V) -> CaseWhen<M, V::Value> {
    CaseWhen { branches: vec![(condition.into_node(), value.into_calc())], _marker: PhantomData }
}

/// A `CASE` expression being built: its branches so far, giving a `T`. See [`case_when`].
pub struct CaseWhen<M, T> {
    branches: Vec<(Node, CalcNode)>,
    _marker: PhantomData<fn() -> (M, T)>,
}

impl<M, T> std::fmt::Debug for CaseWhen<M, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaseWhen").field("branches", &self.branches).finish()
    }
}

impl<M, T> CaseWhen<M, T> {
    /// Adds a branch, tried after the earlier ones: its value must have the earlier branches'
    /// type (or an `Option` of it).
    pub fn when<V: Operand<M>>(mut self, condition: Expr<M>, value: V) -> CaseWhen<M, <V::Value as CaseType<T>>::Out>
    where
        V::Value: CaseType<T>,
    {
        self.branches.push((condition.into_node(), value.into_calc()));
        CaseWhen { branches: self.branches, _marker: PhantomData }
    }

    /// The value when no condition holds; the expression is complete.
    pub fn otherwise<V: Operand<M>>(self, value: V) -> Calc<M, <V::Value as CaseType<T>>::Out>
    where
        V::Value: CaseType<T>,
    {
        let ty = <<V::Value as CaseType<T>>::Out as FieldType>::COLUMN;
        Calc::from_node(CalcNode::Case { branches: self.branches, otherwise: Some(Box::new(value.into_calc())), ty })
    }

    /// No `otherwise`: NULL when no condition holds, so the expression is an `Option`.
    pub fn end(self) -> Calc<M, <T as OrNull>::Out>
    where
        T: OrNull,
    {
        let ty = <<T as OrNull>::Out as FieldType>::COLUMN;
        Calc::from_node(CalcNode::Case { branches: self.branches, otherwise: None, ty })
    }
}

/// A branch of type `Self` can follow branches of type `T` in a [`case_when`]: the same type,
/// or one of them an `Option` of the other (`Out`, the result, is then the `Option`).
#[diagnostic::on_unimplemented(
    message = "a `case_when` branch of type `{Self}` does not match the earlier branches of type `{T}`",
    label = "every branch must give a `{T}` (or an `Option` of it)",
    note = "convert the value so that all branches have one type, e.g. `1_i64` for an `i64` case, \
            `\"text\"` for a `String` case"
)]
pub trait CaseType<T> {
    /// The type of the whole expression.
    type Out: FieldType;
}

impl<T: FieldType + NotOption> CaseType<T> for T {
    type Out = T;
}
impl<T: FieldType + NotOption> CaseType<Option<T>> for T {
    type Out = Option<T>;
}
impl<T: FieldType + NotOption> CaseType<T> for Option<T> {
    type Out = Option<T>;
}
impl<T: FieldType + NotOption> CaseType<Option<T>> for Option<T> {
    type Out = Option<T>;
}

/// `Option<Self>`, or `Self` when it is already an `Option`: the type of a `case_when` without
/// `otherwise`.
pub trait OrNull {
    /// The nullable type.
    type Out: FieldType;
}

impl<T: FieldType + NotOption> OrNull for T {
    type Out = Option<T>;
}
impl<T: FieldType + NotOption> OrNull for Option<T> {
    type Out = Option<T>;
}
