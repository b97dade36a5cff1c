//! Relations between models: 1:1, 1:N, N:M and self-relations, declared on model fields
//! (`#[model(belongs_to)] pub author: Rel<User>`), loaded in batches — one query per relation
//! level, nested to any depth — and usable in filters (`EXISTS`).
//!
//! - [`Rel<T>`] is the field that holds a relation's value. It is either *not loaded* or
//!   *loaded*: an empty `Vec` is never mistaken for "not loaded".
//! - [`Relation<M, T, K>`] is the typed handle the derive emits (`Post::AUTHOR`), used with
//!   [`Query::with`](crate::Query::with) and in filters ([`Relation::any`], [`Relation::matches`]).
//! - [`RelationSchema`](crate::schema::RelationSchema) is the static description DDL (foreign
//!   keys) and filter lowering read.

mod aggregate;
mod boxed;
mod group;
mod load;
mod path;
mod rel;
#[cfg(all(test, feature = "postgres", feature = "sqlite"))]
mod tests;
#[cfg(all(test, feature = "postgres", feature = "sqlite"))]
mod tests_join;
mod tree;

pub use aggregate::{RelAgg, RelatedField};
pub use boxed::{RelBox, RelTarget};
pub use load::Loader;
pub use path::{JoinField, JoinOrder, JoinPath, LinkValue, Optional, PathStep, ThenLink, ToMany, ToOne};
pub use rel::Rel;
pub use tree::{DEFAULT_MAX_DEPTH, Direction, Traversal};
pub(crate) use tree::{TreeLinks, columns as tree_columns};

pub(crate) use load::load_all;
#[doc(hidden)]
pub use load::load_links;

use std::marker::PhantomData;
use std::sync::Arc;

use crate::driver::{Driver as _, Operation, dispatch};
use crate::model::Model;
use crate::query::{Expr, Node};
use crate::value::Value;

/// How many related rows a relation holds; decides the type inside [`Rel`].
pub trait Cardinality: Send + Sync + 'static {
    /// What the relation field holds for target `T`.
    type Out<T: Send + Sync + 'static>: Send + Sync + 'static;
    /// Builds the field's value from the related rows found for one parent; `Err` names what
    /// is wrong (a required row missing).
    fn assemble<T: Send + Sync + 'static>(rows: Vec<T>) -> Result<Self::Out<T>, &'static str>;
}

/// Exactly one related row (`belongs_to` over a non-null foreign key): `Rel<T>`.
#[derive(Debug, Clone, Copy)]
pub struct One;
/// At most one related row (`has_one`, or `belongs_to` over a nullable key): `Rel<Option<T>>`.
#[derive(Debug, Clone, Copy)]
pub struct MaybeOne;
/// Any number of related rows (`has_many`, `many_to_many`): `Rel<Vec<T>>`.
#[derive(Debug, Clone, Copy)]
pub struct Many;

impl Cardinality for One {
    type Out<T: Send + Sync + 'static> = T;
    fn assemble<T: Send + Sync + 'static>(mut rows: Vec<T>) -> Result<T, &'static str> {
        rows.pop().ok_or("the related row does not exist")
    }
}

impl Cardinality for MaybeOne {
    type Out<T: Send + Sync + 'static> = Option<T>;
    fn assemble<T: Send + Sync + 'static>(mut rows: Vec<T>) -> Result<Option<T>, &'static str> {
        Ok(rows.pop())
    }
}

impl Cardinality for Many {
    type Out<T: Send + Sync + 'static> = Vec<T>;
    fn assemble<T: Send + Sync + 'static>(rows: Vec<T>) -> Result<Vec<T>, &'static str> {
        Ok(rows)
    }
}

/// Reads the key value that links a row to related rows (generated per relation).
pub type KeyOf<M> = fn(&M) -> Value;

/// Finds the `(left, right)` key pairs of an N:M relation's join rows whose left key is one of
/// `keys` (generated per relation; see [`load_links`]).
pub type LinksOf = for<'a> fn(
    &'a mut dyn crate::db::Executor,
    Vec<Value>,
) -> crate::model::BoxFuture<'a, crate::Result<Vec<(Value, Value)>>>;

/// A typed relation of model `M` to model `T` with cardinality `K`, e.g. `Post::AUTHOR:
/// Relation<Post, User, One>`. Pass it to [`Query::with`](crate::Query::with) to load it,
/// [`Relation::with`] to load relations of the related rows too.
pub struct Relation<M, T: Send + Sync + 'static, K: Cardinality> {
    /// Position in `M::SCHEMA.relations`.
    index: usize,
    /// The relation field of a row.
    slot: fn(&mut M) -> &mut Rel<<K as Cardinality>::Out<T>>,
    /// The value of a parent row that related rows are matched on.
    parent_key: KeyOf<M>,
    /// The value of a related row that parents are matched on.
    child_key: KeyOf<T>,
    /// For N:M: the join rows' key pairs.
    links: Option<LinksOf>,
    /// Relations of `T` to load on the related rows.
    nested: Vec<Arc<dyn Loader<T>>>,
    _kind: PhantomData<fn() -> K>,
}

impl<M, T, K: Cardinality> Relation<M, T, K>
where
    T: Send + Sync + 'static,
{
    /// The handle of relation number `index`. Called by generated code.
    #[doc(hidden)]
    pub const fn new(
        index: usize,
        slot: fn(&mut M) -> &mut Rel<<K as Cardinality>::Out<T>>,
        parent_key: KeyOf<M>,
        child_key: KeyOf<T>,
        links: Option<LinksOf>,
    ) -> Self {
        Relation { index, slot, parent_key, child_key, links, nested: Vec::new(), _kind: PhantomData }
    }
}

impl<M: Model, T: Send + Sync + 'static, K: Cardinality> Relation<M, T, K> {
    /// The relation's description.
    pub fn schema(&self) -> &'static crate::schema::RelationSchema {
        &M::SCHEMA.relations[self.index]
    }
}

impl<M, T: Send + Sync + 'static, K: Cardinality> Clone for Relation<M, T, K> {
    fn clone(&self) -> Self {
        Relation {
            index: self.index,
            slot: self.slot,
            parent_key: self.parent_key,
            child_key: self.child_key,
            links: self.links,
            nested: self.nested.clone(),
            _kind: PhantomData,
        }
    }
}

impl<M: Model, T: Model, K: Cardinality> std::fmt::Debug for Relation<M, T, K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}::{} -> {}", M::SCHEMA.name, M::SCHEMA.relations[self.index].name, T::SCHEMA.name)
    }
}

impl<M: Model, T: Model + Clone, K: Cardinality> Relation<M, T, K> {
    /// Also loads `nested` on the related rows: `User::POSTS.with(Post::COMMENTS)`. Each level
    /// is one more query.
    pub fn with(mut self, nested: impl Loader<T> + 'static) -> Self {
        self.nested.push(Arc::new(nested));
        self
    }

    /// Rows of `M` with at least one related row matching `expr`:
    /// `User::query().filter(User::POSTS.any(Post::PUBLISHED.eq(true)))`.
    pub fn any(&self, expr: Expr<T>) -> Expr<M> {
        Expr::from_node(Node::Related { relation: self.index, node: Some(Box::new(expr.into_node())) })
    }

    /// Rows of `M` with at least one related row: `User::query().filter(User::POSTS.exists())`.
    pub fn exists(&self) -> Expr<M> {
        Expr::from_node(Node::Related { relation: self.index, node: None })
    }

    /// Rows of `M` whose related row matches `expr` (a synonym of [`Relation::any`] that reads
    /// better for `belongs_to`): `Post::query().filter(Post::AUTHOR.matches(User::NAME.eq("Ada")))`.
    pub fn matches(&self, expr: Expr<T>) -> Expr<M> {
        self.any(expr)
    }

    /// Rows of `M` with no related row matching `expr` (the negation of [`Relation::any`]):
    /// `User::query().filter(User::POSTS.none(Post::TITLE.starts_with("draft")))`.
    pub fn none(&self, expr: Expr<T>) -> Expr<M> {
        self.any(expr).not()
    }

    /// Rows of `M` with no related row at all (a NULL `belongs_to` key included).
    pub fn is_empty(&self) -> Expr<M> {
        self.exists().not()
    }

    /// Rows of `M` none of whose related rows fails `expr`: `NOT EXISTS (… WHERE NOT expr)`.
    /// True when there are no related rows. As in SQL, a related row for which `expr` is
    /// unknown (it compares a NULL) does not fail it; add `.and(T::FIELD.is_not_null())` to
    /// `expr` to require a value.
    pub fn all(&self, expr: Expr<T>) -> Expr<M> {
        self.any(expr.not()).not()
    }
}

impl<M: Model, T: Model> Relation<M, T, Many> {
    /// The join model and the positions of its two key fields, for an N:M relation.
    fn join(&self) -> crate::Result<(&'static crate::schema::ModelSchema, usize, usize)> {
        let through = self.schema().through.as_ref().ok_or_else(|| crate::Error::Unsupported {
            store: "polystore",
            what: format!("link/unlink on {self:?}, which is not a many_to_many relation"),
        })?;
        let join = (through.schema)();
        Ok((join, join.field_position(through.left)?, join.field_position(through.right)?))
    }

    /// Links `parent` to `target` by inserting the join row (its other fields take their
    /// database defaults). A duplicate link is a unique violation when the join model has a
    /// key or unique index over both fields.
    pub async fn link<E: crate::db::Executor>(&self, mut db: E, parent: &M, target: &T) -> crate::Result<()> {
        let (join, left, right) = self.join()?;
        require_join_writes(&mut db, "link")?;
        let pair = [(left, (self.parent_key)(parent)), (right, (self.child_key)(target))];
        let db = &mut db;
        dispatch!(db, Operation::write("link", join, None), D => D::link(db, join, pair).await)
    }

    /// Removes the link between `parent` and `target`; returns whether there was one.
    pub async fn unlink<E: crate::db::Executor>(&self, mut db: E, parent: &M, target: &T) -> crate::Result<bool> {
        let (join, left, right) = self.join()?;
        require_join_writes(&mut db, "unlink")?;
        let pair = [(left, (self.parent_key)(parent)), (right, (self.child_key)(target))];
        let db = &mut db;
        dispatch!(db, Operation::write("unlink", join, None), D => D::unlink(db, join, pair).await)
    }
}

/// Link and unlink write the join table with SQL: refused (naming the alternative) on a
/// store without join-table writes.
fn require_join_writes<E: crate::db::Executor>(db: &mut E, what: &str) -> crate::Result<()> {
    crate::driver::require(db, |c| c.join_table_writes, &format!("`{what}`"), crate::driver::JOIN_WRITES)
}
