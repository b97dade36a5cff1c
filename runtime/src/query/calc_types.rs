//! The type rules of arithmetic expressions ([`Calc`](crate::query::Calc)): which Rust types
//! combine, and what type the result has. Everything is decided at compile time; a pair that
//! does not combine fails with polystore's own message naming both types.
//!
//! | left ⊕ right | result |
//! |---|---|
//! | integer ⊕ integer | the wider integer (`i16 < i32 < i64`) |
//! | integer ⊕ float, float ⊕ float | `f64` (an `f32` is widened) |
//! | integer ⊕ `Decimal`, `Decimal` ⊕ `Decimal` | `Decimal` (exact on every store) |
//! | float ⊕ `Decimal` | compile error: convert one side in Rust first |
//!
//! An `Option` on either side makes the result an `Option` (NULL in, NULL out). Division
//! always yields an `Option`: dividing by zero gives NULL on every store.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::value::FieldType;

/// Type-level "may be NULL": [`NotNull`] or [`Nullable`].
pub trait Nullity {
    /// `T`, or `Option<T>` when nullable.
    type Wrap<T: FieldType>: FieldType;
    /// The nullity of a result with an operand of nullity `R`.
    type Or<R: Nullity>: Nullity;
}

/// Never NULL.
pub enum NotNull {}
/// May be NULL.
pub enum Nullable {}

impl Nullity for NotNull {
    type Wrap<T: FieldType> = T;
    type Or<R: Nullity> = R;
}

impl Nullity for Nullable {
    type Wrap<T: FieldType> = Option<T>;
    type Or<R: Nullity> = Nullable;
}

/// A numeric field or value type: the integers, floats and `Decimal`, and their `Option`s.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a number: arithmetic needs an integer, float or `Decimal`",
    label = "`+ - * /` apply to numeric fields and values only",
    note = "text, dates and other values can be compared (`.eq(..)`) but not computed with"
)]
pub trait Numeric {
    /// The type without its `Option`.
    type Base: FieldType;
    /// Whether it may be NULL.
    type Null: Nullity;
}

/// The result base type of `Self ⊕ R` for two non-optional numeric types.
#[diagnostic::on_unimplemented(
    message = "`{Self}` and `{R}` cannot be combined in arithmetic",
    label = "no exact common type for `{Self}` and `{R}`",
    note = "a float and a `Decimal` do not mix (the result would be inexact): convert the value in Rust \
            (`Decimal::try_from(x)`), or store the column as `Decimal`"
)]
pub trait Widen<R> {
    /// The result type.
    type Out: FieldType;
}

/// `Self ⊕ R` for `+ - *`: the widened base, nullable when either side is.
pub type ArithOut<L, R> = <<<L as Numeric>::Null as Nullity>::Or<<R as Numeric>::Null> as Nullity>::Wrap<
    <<L as Numeric>::Base as Widen<<R as Numeric>::Base>>::Out,
>;

/// `Self / R`: the widened base, always nullable (division by zero is NULL).
pub type QuotOut<L, R> = Option<<<L as Numeric>::Base as Widen<<R as Numeric>::Base>>::Out>;

macro_rules! numeric {
    ($($t:ty),*) => {$(
        impl Numeric for $t { type Base = $t; type Null = NotNull; }
        impl Numeric for Option<$t> { type Base = $t; type Null = Nullable; }
    )*};
}
numeric!(i16, i32, i64, f32, f64, Decimal);

macro_rules! widen {
    ($($l:ty, $r:ty => $out:ty);* $(;)?) => {$(
        impl Widen<$r> for $l { type Out = $out; }
    )*};
}
widen! {
    i16, i16 => i16; i16, i32 => i32; i16, i64 => i64;
    i32, i16 => i32; i32, i32 => i32; i32, i64 => i64;
    i64, i16 => i64; i64, i32 => i64; i64, i64 => i64;
    i16, f32 => f64; i32, f32 => f64; i64, f32 => f64; i16, f64 => f64; i32, f64 => f64; i64, f64 => f64;
    f32, i16 => f64; f32, i32 => f64; f32, i64 => f64; f64, i16 => f64; f64, i32 => f64; f64, i64 => f64;
    f32, f32 => f64; f32, f64 => f64; f64, f32 => f64; f64, f64 => f64;
    i16, Decimal => Decimal; i32, Decimal => Decimal; i64, Decimal => Decimal;
    Decimal, i16 => Decimal; Decimal, i32 => Decimal; Decimal, i64 => Decimal;
    Decimal, Decimal => Decimal;
}

/// Two types whose values can be compared in an expression filter: numbers that combine
/// (see the table above), or the same non-numeric type (either side may be an `Option`).
#[diagnostic::on_unimplemented(
    message = "an expression of type `{Self}` cannot be compared with `{R}`",
    label = "compare numbers with numbers, and other values with the same type",
    note = "a float and a `Decimal` do not compare exactly: convert one side in Rust first"
)]
pub trait Comparable<R> {}

impl<L: Numeric, R: Numeric> Comparable<R> for L where L::Base: Widen<R::Base> {}

macro_rules! same_comparable {
    ($($t:ty),*) => {$(
        impl Comparable<$t> for $t {}
        impl Comparable<Option<$t>> for $t {}
        impl Comparable<$t> for Option<$t> {}
        impl Comparable<Option<$t>> for Option<$t> {}
    )*};
}
same_comparable!(String, bool, NaiveDate, NaiveDateTime, DateTime<Utc>, Uuid);
same_comparable!(crate::ObjectId);

/// A value of type `Self` can be stored in a field of type `F` by an update
/// (`Field::set_to(expr)`): the same type, or a non-optional value into an `Option` field.
#[diagnostic::on_unimplemented(
    message = "an expression of type `{Self}` cannot be assigned to a field of type `{F}`",
    label = "the expression's type must be the field's type",
    note = "an `Option` expression (any division, or an `Option` operand) needs an `Option` field; integer \
            results are as wide as the wider operand (`i32 * i64` is an `i64`)"
)]
pub trait AssignableTo<F> {}

impl<T: FieldType> AssignableTo<T> for T {}
impl<T: FieldType> AssignableTo<Option<T>> for T where T: NotOption {}

/// Every [`FieldType`] except `Option<_>` (so that [`AssignableTo`] impls do not overlap).
pub trait NotOption {}

macro_rules! not_option {
    ($($t:ty),*) => {$( impl NotOption for $t {} )*};
}
not_option!(i16, i32, i64, f32, f64, Decimal, String, bool, NaiveDate, NaiveDateTime, DateTime<Utc>, Uuid);
not_option!(crate::ObjectId);
impl<T: crate::value::TextEnum> NotOption for T {}
