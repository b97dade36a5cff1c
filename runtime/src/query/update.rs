//! Typed assignments for [`Query::update_many`](crate::Query::update_many):
//! `User::AGE.set(3)`, `User::SCORE.increment(1)`, `User::BIO.set_null()`.

use std::marker::PhantomData;

use rust_decimal::Decimal;

use crate::model::Field;
use crate::value::{ToParam, Value};

/// The untyped assignment under [`Assignment`].
#[derive(Debug, Clone, PartialEq)]
pub enum Assign {
    /// `field = value`.
    Set {
        /// The field's position.
        field: usize,
        /// The value, bound as a parameter.
        value: Value,
    },
    /// `field = field + value`.
    Add {
        /// The field's position.
        field: usize,
        /// The amount, bound as a parameter.
        value: Value,
    },
    /// `field = field - value`.
    Sub {
        /// The field's position.
        field: usize,
        /// The amount, bound as a parameter.
        value: Value,
    },
    /// `field = NULL`.
    SetNull {
        /// The field's position.
        field: usize,
    },
    /// `field = expression` over the same row (`set_to`).
    Calc {
        /// The field's position.
        field: usize,
        /// The expression.
        value: crate::query::CalcNode,
    },
    /// Appends `value` to a list field (`array_append`, `json_insert`, `$concatArrays`); a
    /// NULL list becomes a one-element list.
    Push {
        /// The field's position.
        field: usize,
        /// The element, bound as a parameter.
        value: Value,
    },
}

impl Assign {
    /// The assigned field's position.
    pub fn field(&self) -> usize {
        match self {
            Assign::Set { field, .. }
            | Assign::Add { field, .. }
            | Assign::Sub { field, .. }
            | Assign::SetNull { field }
            | Assign::Push { field, .. }
            | Assign::Calc { field, .. } => *field,
        }
    }
}

/// An assignment to a field of model `M`, built from its handle.
///
/// ```
/// use polystore::prelude::*;
/// #[derive(Model)]
/// struct User { #[model(primary_key)] id: i64, name: String, score: i32, bio: Option<String> }
/// # async fn run(db: &Db) -> polystore::Result<()> {
/// let changed = User::query()
///     .filter(User::SCORE.lt(0))
///     .update_many(db, [User::SCORE.set(0), User::BIO.set_null(), User::NAME.set("reset")])
///     .await?;
/// # Ok(()) }
/// ```
///
/// `set_null` needs an `Option` field, and `increment` a numeric one:
///
/// ```compile_fail
/// use polystore::prelude::*;
/// #[derive(Model)]
/// struct User { #[model(primary_key)] id: i64, name: String }
/// let _ = User::NAME.set_null();
/// ```
///
/// ```compile_fail
/// use polystore::prelude::*;
/// #[derive(Model)]
/// struct User { #[model(primary_key)] id: i64, name: String }
/// let _ = User::NAME.increment(1);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment<M> {
    pub(crate) assign: Result<Assign, crate::error::ValueError>,
    _model: PhantomData<fn() -> M>,
}

impl<M> Assignment<M> {
    pub(crate) fn new(assign: Result<Assign, crate::error::ValueError>) -> Self {
        Assignment { assign, _model: PhantomData }
    }

    /// The untyped assignment, or the error encoding its value.
    pub fn into_assign(self) -> Result<Assign, crate::error::ValueError> {
        self.assign
    }
}

/// A field type that can be incremented: the integer, float and decimal types and their
/// `Option`s.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a numeric field: increment / decrement need a number",
    label = "increment applies to integer, float and decimal fields only",
    note = "use `set` to assign a new value"
)]
pub trait NumericField {}

macro_rules! numeric {
    ($($t:ty),*) => {$(
        impl NumericField for $t {}
        impl NumericField for Option<$t> {}
    )*};
}
numeric!(i16, i32, i64, f32, f64, Decimal);

impl<M, T> Field<M, T> {
    /// `field = value`.
    pub fn set<V: ToParam<T>>(self, value: V) -> Assignment<M> {
        Assignment::new(value.to_param().map(|value| Assign::Set { field: self.index(), value }))
    }
}

impl<M, T> Field<M, T> {
    /// `field = field + by` (a NULL stays NULL); only for numeric fields.
    pub fn increment<V: ToParam<T>>(self, by: V) -> Assignment<M>
    where
        T: NumericField,
    {
        Assignment::new(by.to_param().map(|value| Assign::Add { field: self.index(), value }))
    }

    /// `field = field - by` (a NULL stays NULL); only for numeric fields.
    pub fn decrement<V: ToParam<T>>(self, by: V) -> Assignment<M>
    where
        T: NumericField,
    {
        Assignment::new(by.to_param().map(|value| Assign::Sub { field: self.index(), value }))
    }

    /// `field = NULL`; only for `Option` fields.
    pub fn set_null(self) -> Assignment<M>
    where
        T: NullableField,
    {
        Assignment::new(Ok(Assign::SetNull { field: self.index() }))
    }
}

impl<M, T: crate::value::FieldType> Field<M, Vec<T>> {
    /// Appends `value` to the list: `User::TAGS.push("rust")`. A NULL list becomes `[value]`.
    pub fn push<V: ToParam<T>>(self, value: V) -> Assignment<M> {
        Assignment::new(value.to_param().map(|value| Assign::Push { field: self.index(), value }))
    }
}

impl<M, T: crate::value::FieldType> Field<M, Option<Vec<T>>> {
    /// Appends `value` to the list: `User::TAGS.push("rust")`. A NULL list becomes `[value]`.
    pub fn push<V: ToParam<T>>(self, value: V) -> Assignment<M> {
        Assignment::new(value.to_param().map(|value| Assign::Push { field: self.index(), value }))
    }
}

/// A field type that can hold NULL: `Option<T>`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not nullable: `set_null` needs an `Option<_>` field",
    label = "this field cannot hold NULL",
    note = "make the field an `Option<_>` to store NULLs, or assign a value with `set`"
)]
pub trait NullableField {}

impl<T> NullableField for Option<T> {}
