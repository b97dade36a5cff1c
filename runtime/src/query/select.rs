//! [`Select`]: a query projected onto some fields or aggregates, whose rows decode into the
//! selection's tuple type instead of the model.

use crate::db::Executor;
use crate::driver::{Driver as _, Operation, dispatch};
use crate::error::{Error, Result};
use crate::model::Model;
use crate::query::Query;
use crate::query::aggregate::{Columns, SelectItem, Selection};

/// A [`Query`] projected onto a [`Selection`]; made by [`Query::select`].
pub struct Select<M, S> {
    query: Query<M>,
    selection: S,
}

impl<M, S: Clone> Clone for Select<M, S> {
    fn clone(&self) -> Self {
        Select { query: self.query.clone(), selection: self.selection.clone() }
    }
}

impl<M, S> std::fmt::Debug for Select<M, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Select").field("query", &self.query).finish_non_exhaustive()
    }
}

impl<M, S> Select<M, S> {
    pub(crate) fn new(query: Query<M>, selection: S) -> Self {
        Select { query, selection }
    }

    /// Adds an ordering term after the query's: a field, aggregate or expression ordering as
    /// in [`Query::order_by`], or one only a projection can sort on — a related model's column
    /// (`Track::ALBUM.then(Album::TITLE).asc()`) or a relation aggregate
    /// (`Playlist::TRACKS.count().desc()`, the top-N).
    pub fn order_by(mut self, order: impl SelectOrder<M>) -> Self {
        order.add_to_select(&mut self.query);
        self
    }

    /// Adds a group key: a field or an expression as in [`Query::group_by`], or a related
    /// model's column (`Track::ALBUM.then(Album::TITLE)`), which only a projection can read.
    pub fn group_by(mut self, key: impl SelectGroupKey<M>) -> Self {
        key.add_to_select(&mut self.query);
        self
    }

    /// Returns at most `n` rows (as [`Query::limit`]), e.g. after a top-N ordering.
    pub fn limit(mut self, n: u64) -> Self {
        self.query.limit = Some(n);
        self
    }

    /// Skips the first `n` rows (as [`Query::offset`]).
    pub fn offset(mut self, n: u64) -> Self {
        self.query.offset = Some(n);
        self
    }
}

/// What [`Select::order_by`] takes: everything [`Query::order_by`] takes, and orderings on
/// related models' columns and on relation aggregates.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an ordering of a projection of `{M}`",
    label = "order by a field, an aggregate, an expression, a related column or a relation aggregate of `{M}`",
    note = "e.g. `.order_by(Playlist::TRACKS.count().desc())` or `.order_by(Track::ALBUM.then(Album::TITLE).asc())`"
)]
pub trait SelectOrder<M> {
    /// Appends this ordering to the query's.
    fn add_to_select(self, query: &mut Query<M>);
}

impl<M> SelectOrder<M> for crate::relation::JoinOrder<M> {
    fn add_to_select(self, query: &mut Query<M>) {
        self.add_to(query);
    }
}

/// What [`Select::group_by`] takes: everything [`Query::group_by`] takes, and related models'
/// columns.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot group a projection of `{M}`",
    label = "group by a field, an expression or a related column of `{M}`",
    note = "e.g. `.group_by(Track::ALBUM.then(Album::TITLE))`"
)]
pub trait SelectGroupKey<M> {
    /// Adds the key to the query's grouping.
    fn add_to_select(self, query: &mut Query<M>);
}

impl<M, V> SelectGroupKey<M> for crate::relation::JoinField<M, V> {
    fn add_to_select(self, query: &mut Query<M>) {
        self.add_group_key(query);
    }
}

impl<M, T> SelectGroupKey<M> for crate::model::Field<M, T> {
    fn add_to_select(self, query: &mut Query<M>) {
        crate::query::GroupKey::add_to(self, query);
    }
}

impl<M, T> SelectGroupKey<M> for crate::query::Calc<M, T> {
    fn add_to_select(self, query: &mut Query<M>) {
        crate::query::GroupKey::add_to(self, query);
    }
}

macro_rules! select_order {
    ($($t:ident),*) => {$(
        impl<M> SelectOrder<M> for crate::query::$t<M> {
            fn add_to_select(self, query: &mut Query<M>) {
                crate::query::IntoOrder::add_to(self, query);
            }
        }
    )*};
}
select_order!(Order, AggOrder, CalcOrder);

impl<M: Model, S: Selection<M> + Send + Sync> Select<M, S> {
    fn items(&self) -> Vec<SelectItem> {
        let mut items = Vec::new();
        self.selection.items(&mut items);
        items
    }

    /// The SQL statement the projection runs as on dialect `d` (for exact-SQL tests).
    #[cfg(all(test, feature = "postgres", feature = "sqlite"))]
    pub(crate) fn statement(&self, d: &dyn crate::sql::Dialect) -> Result<crate::sql::Statement> {
        crate::sql::lower::select_items(d, M::SCHEMA, &self.query, &self.items())
    }

    async fn fetch<E: Executor>(&self, db: &mut E, query: &Query<M>) -> Result<Vec<S::Output>> {
        let items = self.items();
        let selection = &self.selection;
        let op = Operation::read("select", M::SCHEMA, query.filter.as_ref());
        dispatch!(db, op, D => D::select(db, query, &items, |cols| selection.decode(cols)).await)
    }

    /// Every result row.
    pub async fn all<E: Executor>(self, mut db: E) -> Result<Vec<S::Output>> {
        self.fetch(&mut db, &self.query).await
    }

    /// The first result row, if any.
    pub async fn first<E: Executor>(self, mut db: E) -> Result<Option<S::Output>> {
        let query = self.query.clone().limit(1);
        Ok(self.fetch(&mut db, &query).await?.pop())
    }

    /// The only result row: [`Error::NotExactlyOne`] when there are none or several.
    pub async fn one<E: Executor>(self, mut db: E) -> Result<S::Output> {
        let limit = self.query.limit.map_or(2, |n| n.min(2));
        let query = self.query.clone().limit(limit);
        let mut rows = self.fetch(&mut db, &query).await?;
        match rows.len() {
            1 => Ok(rows.remove(0)),
            n => Err(Error::NotExactlyOne { model: M::SCHEMA.name, found: n as u64 }),
        }
    }
}

/// A struct that can be read straight from a query over `M`: generated for read DTOs
/// (`#[model(dto(UserCard, only(id, name)))]`), used through [`Query::project`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a projection of `{M}`",
    label = "project onto a read DTO declared on this model",
    note = "declare it with #[model(dto({Self}, only(..)))] or #[model(dto({Self}, exclude(..)))] on `{M}`"
)]
pub trait Projection<M>: Sized + Send + 'static {
    /// The model fields it reads, in its own field order.
    const FIELDS: &'static [usize];
    /// Reads one row whose columns are [`Projection::FIELDS`], in that order.
    fn decode(cols: &mut Columns<'_>) -> Result<Self>;
}

/// The [`Selection`] of a [`Projection`]: what [`Query::project`] selects.
pub struct As<P>(std::marker::PhantomData<fn() -> P>);

impl<P> Clone for As<P> {
    fn clone(&self) -> Self {
        As(std::marker::PhantomData)
    }
}

impl<M: Model, P: Projection<M>> Selection<M> for As<P> {
    type Output = P;
    fn items(&self, out: &mut Vec<SelectItem>) {
        out.extend(P::FIELDS.iter().map(|&i| SelectItem::Field(i)));
    }
    fn decode(&self, cols: &mut Columns<'_>) -> Result<P> {
        P::decode(cols)
    }
}

impl<M: Model> Query<M> {
    /// Projects the query onto a read DTO of `M`, selecting only its columns:
    /// `User::query().project::<UserCard>().all(&db)` yields `Vec<UserCard>`.
    pub fn project<P: Projection<M>>(self) -> Select<M, As<P>> {
        Select::new(self, As(std::marker::PhantomData))
    }
}

impl<M, S> Select<M, S> {
    /// The query and the selection, for subqueries.
    pub(crate) fn into_parts(self) -> (Query<M>, S) {
        (self.query, self.selection)
    }
}
