//! Typed keyset pagination from known values: `query.order_by_key((User::NAME, Desc(User::ID)))`
//! fixes the ordering *and* the type of its key tuple, so `.after(("Ada", 7))` is checked by the
//! compiler against `(String, i64)`. The page is planned exactly like one from an opaque cursor
//! ([`crate::query::page`]), and the cursors it hands out continue it.

use std::marker::PhantomData;

use crate::db::Executor;
use crate::error::{Error, Result, ValueError};
use crate::model::{Field, Model};
use crate::query::page::KnownKey;
use crate::query::{Nulls, OrderTerm, Page, PageRequest, Query};
use crate::value::{ToParam, Value};

/// An ascending key term: `Asc(User::NAME)` (a bare field handle means the same).
#[derive(Debug, Clone, Copy)]
pub struct Asc<F>(pub F);

/// A descending key term: `Desc(User::SCORE)`.
#[derive(Debug, Clone, Copy)]
pub struct Desc<F>(pub F);

/// A key term with its NULL placement: `Desc(User::BONUS).nulls_last()`.
pub struct Key<M, T> {
    term: OrderTerm,
    _types: PhantomData<fn() -> (M, T)>,
}

impl<M, T> Clone for Key<M, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<M, T> Copy for Key<M, T> {}

impl<M, T> std::fmt::Debug for Key<M, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Key").field(&self.term).finish()
    }
}

impl<M, T> Key<M, T> {
    fn new(field: Field<M, T>, descending: bool) -> Self {
        Key { term: OrderTerm { field: field.index(), descending, nulls: None }, _types: PhantomData }
    }

    /// Puts NULLs before every value.
    pub fn nulls_first(mut self) -> Self {
        self.term.nulls = Some(Nulls::First);
        self
    }

    /// Puts NULLs after every value.
    pub fn nulls_last(mut self) -> Self {
        self.term.nulls = Some(Nulls::Last);
        self
    }
}

impl<M, T> Asc<Field<M, T>> {
    /// Ascending, NULLs before every value.
    pub fn nulls_first(self) -> Key<M, T> {
        Key::new(self.0, false).nulls_first()
    }

    /// Ascending, NULLs after every value.
    pub fn nulls_last(self) -> Key<M, T> {
        Key::new(self.0, false).nulls_last()
    }
}

impl<M, T> Desc<Field<M, T>> {
    /// Descending, NULLs before every value.
    pub fn nulls_first(self) -> Key<M, T> {
        Key::new(self.0, true).nulls_first()
    }

    /// Descending, NULLs after every value.
    pub fn nulls_last(self) -> Key<M, T> {
        Key::new(self.0, true).nulls_last()
    }
}

/// One term of a typed sort key over model `M`, whose values have type `Self::Type`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a key term of `{M}`",
    label = "expected a field handle of `{M}`, `Asc(field)`, `Desc(field)` or one with `.nulls_first()` / `.nulls_last()`"
)]
pub trait KeyTerm<M> {
    /// The field's type.
    type Type;
    /// The untyped ordering term.
    fn term(self) -> OrderTerm;
}

impl<M, T> KeyTerm<M> for Field<M, T> {
    type Type = T;
    fn term(self) -> OrderTerm {
        Key::new(self, false).term
    }
}

impl<M, T> KeyTerm<M> for Asc<Field<M, T>> {
    type Type = T;
    fn term(self) -> OrderTerm {
        Key::new(self.0, false).term
    }
}

impl<M, T> KeyTerm<M> for Desc<Field<M, T>> {
    type Type = T;
    fn term(self) -> OrderTerm {
        Key::new(self.0, true).term
    }
}

impl<M, T> KeyTerm<M> for Key<M, T> {
    type Type = T;
    fn term(self) -> OrderTerm {
        self.term
    }
}

/// A typed sort key of model `M`: one [`KeyTerm`] or a tuple of up to four; `Types` is the
/// tuple of their field types (a single term's type for one term).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a sort key of `{M}`",
    label = "expected a key term of `{M}` or a tuple of up to four"
)]
pub trait SortKey<M> {
    /// The field types of the key's terms.
    type Types;
    /// The untyped ordering terms.
    fn terms(self) -> Vec<OrderTerm>;
}

/// Key values matching a sort key with field types `T`: one value per term, in order, each
/// anything the field can be compared with (`&str` for a `String` field, `None` for a
/// nullable one).
#[diagnostic::on_unimplemented(
    message = "the key values `{Self}` do not match the sort key's field types `{T}`",
    label = "expected one value per key term, of types `{T}`",
    note = "the values must follow the terms of `order_by_key(..)`, in the same order"
)]
pub trait KeyValues<T> {
    /// The values to start from.
    fn values(self) -> std::result::Result<Vec<Value>, ValueError>;
}

macro_rules! single_key {
    ($($ty:ty => $t:ident),*) => {$(
        impl<M, $t> SortKey<M> for $ty {
            type Types = $t;
            fn terms(self) -> Vec<OrderTerm> {
                vec![KeyTerm::<M>::term(self)]
            }
        }
    )*};
}

single_key!(Field<M, T> => T, Asc<Field<M, T>> => T, Desc<Field<M, T>> => T, Key<M, T> => T);

impl<T, V: ToParam<T>> KeyValues<T> for V {
    fn values(self) -> std::result::Result<Vec<Value>, ValueError> {
        Ok(vec![self.to_param()?])
    }
}

macro_rules! tuple_key {
    ($(($k:ident, $v:ident, $idx:tt)),+) => {
        impl<M, $($k: KeyTerm<M>),+> SortKey<M> for ($($k,)+) {
            type Types = ($($k::Type,)+);
            fn terms(self) -> Vec<OrderTerm> {
                vec![$(self.$idx.term()),+]
            }
        }
    };
}

tuple_key!((A, VA, 0), (B, VB, 1));
tuple_key!((A, VA, 0), (B, VB, 1), (C, VC, 2));
tuple_key!((A, VA, 0), (B, VB, 1), (C, VC, 2), (D, VD, 3));

/// A tuple of values for a tuple key. (Written per arity rather than by the macro above, as
/// `KeyValues<(A,)>` would overlap with the single-value impl.)
macro_rules! tuple_values {
    ($(($t:ident, $v:ident, $idx:tt)),+) => {
        impl<$($t, $v: ToParam<$t>),+> KeyValues<($($t,)+)> for ($($v,)+) {
            fn values(self) -> std::result::Result<Vec<Value>, ValueError> {
                Ok(vec![$(self.$idx.to_param()?),+])
            }
        }
    };
}

tuple_values!((A, VA, 0), (B, VB, 1));
tuple_values!((A, VA, 0), (B, VB, 1), (C, VC, 2));
tuple_values!((A, VA, 0), (B, VB, 1), (C, VC, 2), (D, VD, 3));

/// A query ordered by a typed sort key, paginated from known key values or from cursors.
/// Build it with [`Query::order_by_key`].
pub struct Keyset<M, T> {
    query: Query<M>,
    /// The query was ordered before `order_by_key` (refused when paginated).
    ordered_before: bool,
    start: Option<std::result::Result<KnownKey, ValueError>>,
    _types: PhantomData<fn() -> T>,
}

impl<M, T> Clone for Keyset<M, T> {
    fn clone(&self) -> Self {
        Keyset {
            query: self.query.clone(),
            ordered_before: self.ordered_before,
            start: self.start.clone(),
            _types: PhantomData,
        }
    }
}

impl<M, T> std::fmt::Debug for Keyset<M, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyset").field("query", &self.query).field("start", &self.start).finish()
    }
}

impl<M: Model> Query<M> {
    /// Orders the query by a typed sort key — a field handle, `Asc(field)`, `Desc(field)`
    /// (with `.nulls_first()` / `.nulls_last()`), or a tuple of up to four — for keyset
    /// pagination from known values: `.order_by_key((User::NAME, User::ID)).after(("Ada", 7))`.
    /// The key is the whole ordering: a query already ordered with `order_by` is refused when
    /// paginated ([`Error::Config`]).
    pub fn order_by_key<K: SortKey<M>>(self, key: K) -> Keyset<M, K::Types> {
        let mut query = self;
        let terms = key.terms();
        let ordered_before = !query.order.is_empty() || !query.agg_order.is_empty();
        query.order.extend(terms);
        Keyset { query, ordered_before, start: None, _types: PhantomData }
    }
}

impl<M: Model, T> Keyset<M, T> {
    fn starting(mut self, values: impl KeyValues<T>, backward: bool) -> Self {
        self.start = Some(values.values().map(|values| KnownKey { values, backward }));
        self
    }

    /// Pages start strictly after the row with these key values (one per key term, in order).
    /// The primary key is appended to the ordering as a tiebreaker when the key does not
    /// hold it; the page then starts after *every* row with these values.
    pub fn after(self, values: impl KeyValues<T>) -> Self {
        self.starting(values, false)
    }

    /// Pages end strictly before the row with these key values.
    pub fn before(self, values: impl KeyValues<T>) -> Self {
        self.starting(values, true)
    }

    /// One page by keyset, from the key values of [`Keyset::after`] / [`Keyset::before`] (or
    /// from the start, or from the cursor in `request`): as [`Query::paginate`], whose cursors
    /// this page's `next` / `prev` are. Key values *and* a cursor in `request` are
    /// [`Error::InvalidCursor`].
    pub async fn paginate<E: Executor>(self, db: E, request: PageRequest) -> Result<Page<M>> {
        if self.ordered_before {
            return Err(Error::Config(format!(
                "{}: `order_by_key` sets the whole ordering; remove the `order_by` before it",
                M::SCHEMA.name
            )));
        }
        let known = match self.start {
            None => None,
            Some(Ok(k)) => Some(k),
            Some(Err(source)) => return Err(Error::Encode { model: M::SCHEMA.name, field: "?", source }),
        };
        self.query.paginate_from(db, request, known).await
    }

    /// The query, ordered by the key (without the start values).
    pub fn into_query(self) -> Query<M> {
        self.query
    }
}
