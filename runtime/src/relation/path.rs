//! Columns of related models in projections: `Track::ALBUM.then(Album::ARTIST).then(Artist::NAME)`
//! is a [`JoinField<Track, String>`], selected, grouped and ordered on like a field of `Track`
//! and read in the same statement (`LEFT JOIN` on SQL, `$lookup` + `$unwind` on MongoDB).
//!
//! Only relations that hold at most one row can be followed (`belongs_to`, `has_one`): a
//! `has_many` / `many_to_many` relation has many values per row, so it is aggregated instead
//! (see [`RelAgg`](crate::relation::RelAgg)). When any link on the way is optional (a nullable
//! foreign key, a `has_one`) the column's type becomes an `Option`.

use std::marker::PhantomData;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::error::Error;
use crate::model::{Field, Model};
use crate::query::{Columns, JoinColumn, JoinSort, JoinTerm, Query, SelectItem, Selection};
use crate::relation::{Cardinality, Many, MaybeOne, One, Relation};
use crate::value::FieldType;

/// A relation kind that holds at most one row, so its columns can be read one per row.
#[diagnostic::on_unimplemented(
    message = "a `has_many` / `many_to_many` relation cannot be followed to one value per row",
    label = "`then` follows `belongs_to` and `has_one` relations only",
    note = "aggregate the related rows instead: `Playlist::TRACKS.count()`, `Customer::INVOICES.sum(Invoice::TOTAL)` (also `avg`, `min`, `max`)"
)]
pub trait ToOne: Cardinality {}
impl ToOne for One {}
impl ToOne for MaybeOne {}

/// Following relation kind `Self` and then `K`: optional as soon as one link is. (`Many`
/// has an impl only so that following a `has_many` reports the one error of [`ToOne`].)
pub trait ThenLink<K> {
    /// The kind of the whole path.
    type Out;
}
impl<K> ThenLink<K> for Many {
    type Out = Many;
}
impl ThenLink<One> for One {
    type Out = One;
}
impl ThenLink<MaybeOne> for One {
    type Out = MaybeOne;
}
impl<K: ToOne> ThenLink<K> for MaybeOne {
    type Out = MaybeOne;
}

/// The type a value of type `V` has when reached through a path of kind `Self`: `V` through
/// required links, `Option<V>` (never `Option<Option<V>>`) through an optional one.
#[diagnostic::on_unimplemented(
    message = "`{V}` cannot be read through an optional relation",
    label = "this path has an optional link (a nullable foreign key or a `has_one`), so its value must become an `Option`",
    note = "select the column from the related model's own query, or make the link required"
)]
pub trait LinkValue<V> {
    /// The value's type at the end of the path.
    type Out: FieldType;
}
impl<V: FieldType> LinkValue<V> for One {
    type Out = V;
}
/// Never used by a compiling program (`then` needs [`ToOne`]); it keeps following a
/// `has_many` to a field down to the one error that names the fix.
impl<V: FieldType> LinkValue<V> for Many {
    type Out = V;
}

/// A type that has an `Option` form for columns read through optional links.
pub trait Optional {
    /// `Option<Self>`, or `Self` when it is already an `Option`.
    type Opt: FieldType;
}
impl<V: Optional> LinkValue<V> for MaybeOne {
    type Out = V::Opt;
}
impl<T: FieldType> Optional for Option<T> {
    type Opt = Option<T>;
}
impl<T: FieldType> Optional for Vec<T> {
    type Opt = Option<Vec<T>>;
}
macro_rules! optional {
    ($($t:ty),*) => {$(
        impl Optional for $t { type Opt = Option<$t>; }
    )*};
}
optional!(
    i16,
    i32,
    i64,
    f32,
    f64,
    bool,
    String,
    Decimal,
    Uuid,
    NaiveDate,
    NaiveDateTime,
    DateTime<Utc>,
    crate::ObjectId,
    serde_json::Value
);

/// A path of `belongs_to` / `has_one` relations from model `M` to model `T`, of kind `K`
/// ([`One`] when every link is required, else [`MaybeOne`]): `Track::ALBUM.then(Album::ARTIST)`.
/// Continue it with [`JoinPath::then`].
pub struct JoinPath<M, T, K> {
    hops: Vec<usize>,
    _marker: Marker<M, T, K>,
}

/// The type parameters of a [`JoinPath`], held without owning values of them.
type Marker<M, T, K> = PhantomData<fn() -> (M, T, K)>;

impl<M, T, K> Clone for JoinPath<M, T, K> {
    fn clone(&self) -> Self {
        JoinPath { hops: self.hops.clone(), _marker: PhantomData }
    }
}

impl<M, T, K> std::fmt::Debug for JoinPath<M, T, K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinPath").field("hops", &self.hops).finish()
    }
}

/// What a path can be continued with: a field of the model reached (ending the path in a
/// [`JoinField`]) or one of its `belongs_to` / `has_one` relations (a longer [`JoinPath`]).
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not continue a path that reaches `{T}`",
    label = "continue with a field or a `belongs_to` / `has_one` relation of `{T}`",
    note = "e.g. `Track::ALBUM.then(Album::TITLE)` or `Track::ALBUM.then(Album::ARTIST).then(Artist::NAME)`"
)]
pub trait PathStep<M, T, K> {
    /// The longer path or the column.
    type Out;
    /// Appends this step to `hops`, a path from `M` to `T`.
    fn extend(self, hops: Vec<usize>) -> Self::Out;
}

impl<M, T, K: LinkValue<V>, V> PathStep<M, T, K> for Field<T, V> {
    type Out = JoinField<M, <K as LinkValue<V>>::Out>;
    fn extend(self, hops: Vec<usize>) -> Self::Out {
        JoinField { column: JoinColumn { hops, field: self.index() }, _marker: PhantomData }
    }
}

impl<M, T, U, K, K2> PathStep<M, T, K> for Relation<T, U, K2>
where
    U: Send + Sync + 'static,
    K: ThenLink<K2>,
    K2: ToOne,
{
    type Out = JoinPath<M, U, <K as ThenLink<K2>>::Out>;
    fn extend(self, mut hops: Vec<usize>) -> Self::Out {
        hops.push(self.index);
        JoinPath { hops, _marker: PhantomData }
    }
}

impl<M, T: Send + Sync + 'static, K: Cardinality> Relation<M, T, K> {
    /// Follows this `belongs_to` / `has_one` relation to a column of the related model, or to
    /// one of its relations: `Track::ALBUM.then(Album::TITLE)` is a [`JoinField<Track, String>`]
    /// to select, group by or order on (after `select`). Through an optional link (a nullable
    /// foreign key, a `has_one`) the column's type becomes an `Option`: NULL when there is no
    /// related row.
    pub fn then<S>(self, next: S) -> S::Out
    where
        K: ToOne,
        S: PathStep<M, T, K>,
    {
        next.extend(vec![self.index])
    }
}

impl<M, T, K: ToOne> JoinPath<M, T, K> {
    /// Continues the path with a field or a relation of `T` (see [`Relation::then`]).
    pub fn then<S: PathStep<M, T, K>>(self, next: S) -> S::Out {
        next.extend(self.hops)
    }
}

/// A column of a related model, reached from model `M` through `belongs_to` / `has_one`
/// relations, whose value is a `V`: `Track::ALBUM.then(Album::TITLE)`. Select it, and after
/// `select` group by it ([`Select::group_by`](crate::query::Select::group_by)) or order on it
/// with `.asc()` / `.desc()` ([`Select::order_by`](crate::query::Select::order_by)).
pub struct JoinField<M, V> {
    column: JoinColumn,
    _marker: PhantomData<fn() -> (M, V)>,
}

impl<M, V> Clone for JoinField<M, V> {
    fn clone(&self) -> Self {
        JoinField { column: self.column.clone(), _marker: PhantomData }
    }
}

impl<M, V> std::fmt::Debug for JoinField<M, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.column.fmt(f)
    }
}

impl<M, V> JoinField<M, V> {
    /// The untyped column.
    pub fn column(&self) -> &JoinColumn {
        &self.column
    }

    /// Ascending order on the column; NULL (no related row) sorts first on every store.
    pub fn asc(self) -> JoinOrder<M> {
        JoinOrder::new(JoinTerm::Column(self.column), false)
    }

    /// Descending order on the column; NULL (no related row) sorts last on every store.
    pub fn desc(self) -> JoinOrder<M> {
        JoinOrder::new(JoinTerm::Column(self.column), true)
    }
}

impl<M: Model, V: FieldType> Selection<M> for JoinField<M, V> {
    type Output = V;
    fn items(&self, out: &mut Vec<SelectItem>) {
        out.push(SelectItem::Joined(self.column.clone()));
    }
    fn decode(&self, cols: &mut Columns<'_>) -> Result<V, Error> {
        cols.next(V::COLUMN, "<joined column>")
    }
}

impl<M, V> JoinField<M, V> {
    /// Adds the column to `query`'s group keys (see [`Select::group_by`](crate::query::Select::group_by)).
    pub(crate) fn add_group_key(self, query: &mut Query<M>) {
        query.group_join.push(self.column);
    }
}

/// An ordering on a related model's column or on a relation aggregate, for
/// [`Select::order_by`](crate::query::Select::order_by).
pub struct JoinOrder<M> {
    term: JoinTerm,
    descending: bool,
    _model: PhantomData<fn() -> M>,
}

impl<M> std::fmt::Debug for JoinOrder<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinOrder").field("term", &self.term).field("descending", &self.descending).finish()
    }
}

impl<M> JoinOrder<M> {
    pub(crate) fn new(term: JoinTerm, descending: bool) -> Self {
        JoinOrder { term, descending, _model: PhantomData }
    }

    /// Appends the ordering to `query`'s, after its other terms.
    pub(crate) fn add_to(self, query: &mut Query<M>) {
        let sort = JoinSort::after(query, self.term, self.descending);
        query.join_order.push(sort);
    }
}

/// A relation kind that holds any number of rows (`has_many`, `many_to_many`), which can be
/// aggregated per row.
#[diagnostic::on_unimplemented(
    message = "only a `has_many` / `many_to_many` relation can be aggregated per row",
    label = "this relation holds at most one row",
    note = "select the related row's column instead: `Track::ALBUM.then(Album::TITLE)`"
)]
pub trait ToMany: Cardinality {}
impl ToMany for Many {}
