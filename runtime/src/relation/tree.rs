//! Recursive traversal of a self-relation: every row under a row (`descendants`) or above it
//! (`ancestors`) along a `has_many` relation of a model to itself, at any depth or up to a
//! limit, in one statement — `WITH RECURSIVE` on SQL, `$graphLookup` on MongoDB.
//!
//! ```
//! use polystore::prelude::*;
//! #[derive(Model, Debug, Clone)]
//! struct Employee {
//!     #[model(primary_key)] id: i64,
//!     name: String,
//!     reports_to: Option<i64>,
//!     #[model(has_many(foreign_key = reports_to))] reports: Rel<Vec<Employee>>,
//! }
//! # async fn run(db: &Db) -> polystore::Result<()> {
//! let everyone_under_1: Vec<Employee> = Employee::REPORTS.descendants(1).all(db).await?;
//! let two_levels: Vec<Employee> = Employee::REPORTS.descendants(1).max_depth(2).all(db).await?;
//! let chain_of_command: Vec<Employee> = Employee::REPORTS.ancestors(7).all(db).await?;
//! # Ok(()) }
//! ```

use std::marker::PhantomData;

use crate::db::Executor;
use crate::error::{Error, Result};
use crate::model::Model;
use crate::relation::{Many, Relation};
use crate::schema::{ModelSchema, RelationKind};
use crate::value::Value;

/// How deep a traversal goes when no [`Traversal::max_depth`] is given: it also stops a
/// cycle in the data (a row that reports to itself through others).
pub const DEFAULT_MAX_DEPTH: u32 = 100;

/// The direction of a [`Traversal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Rows linked below the start: children, their children, …
    Down,
    /// Rows linked above the start: its parent, the parent's parent, …
    Up,
}

/// A recursive walk along a self-relation from one row's key, made by
/// [`Relation::descendants`] or [`Relation::ancestors`]; run it with [`Traversal::all`].
pub struct Traversal<M: Model> {
    relation: usize,
    start: M::Key,
    direction: Direction,
    max_depth: u32,
    _model: PhantomData<fn() -> M>,
}

impl<M: Model> std::fmt::Debug for Traversal<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Traversal")
            .field("relation", &M::SCHEMA.relations[self.relation].name)
            .field("direction", &self.direction)
            .field("max_depth", &self.max_depth)
            .finish_non_exhaustive()
    }
}

/// The untyped parts of a traversal, for the store lowerings: the parent key field `parent`
/// (the relation's local field) and the child's foreign key `child`, in the model's schema.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TreeLinks {
    /// The field rows are reached by (the key children point to).
    pub parent: usize,
    /// The field that points to the parent.
    pub child: usize,
}

impl<M: Model> Traversal<M> {
    /// Follows at most `depth` links (1: the direct children or the parent only). A depth of
    /// 0 reaches nothing.
    pub fn max_depth(mut self, depth: u32) -> Self {
        self.max_depth = depth;
        self
    }

    fn links(&self) -> Result<TreeLinks> {
        let schema = M::SCHEMA;
        let rel = &schema.relations[self.relation];
        match (rel.kind, rel.remote_field) {
            (RelationKind::HasMany, Some(child)) if std::ptr::eq((rel.target)(), schema) => {
                Ok(TreeLinks { parent: rel.local_field, child: schema.field_position(child)? })
            }
            _ => Err(Error::Config(format!(
                "{}.{}: recursive traversal follows a has_many relation of a model to itself",
                schema.name, rel.name
            ))),
        }
    }

    /// The rows reached, each once (at its smallest depth), ordered by depth and then by
    /// the linking key. The start row itself is not included (unless a cycle leads back to it).
    pub async fn all<E: Executor>(self, mut db: E) -> Result<Vec<M>> {
        let links = self.links()?;
        let start = M::key_values(&self.start)?.into_iter().next().unwrap_or(Value::Null);
        if self.max_depth == 0 {
            return Ok(Vec::new());
        }
        let (direction, max_depth) = (self.direction, self.max_depth);
        let db = &mut db;
        let op = crate::driver::Operation::read("traverse", M::SCHEMA, None);
        crate::driver::dispatch!(db, op, D => {
            <D as crate::driver::Driver>::traverse::<M, _>(db, links, direction, start, max_depth).await
        })
    }
}

impl<M: Model> Relation<M, M, Many> {
    fn traversal(&self, start: M::Key, direction: Direction) -> Traversal<M> {
        Traversal { relation: self.index, start, direction, max_depth: DEFAULT_MAX_DEPTH, _model: PhantomData }
    }

    /// Every row below the row with key `key` along this self-relation — its children, their
    /// children, and so on (up to [`DEFAULT_MAX_DEPTH`] unless [`Traversal::max_depth`] says
    /// otherwise): `Employee::REPORTS.descendants(1).all(&db)`.
    pub fn descendants(&self, key: M::Key) -> Traversal<M> {
        self.traversal(key, Direction::Down)
    }

    /// Every row above the row with key `key`: its parent, the parent's parent, and so on
    /// (nearest first): `Employee::REPORTS.ancestors(7).all(&db)`.
    pub fn ancestors(&self, key: M::Key) -> Traversal<M> {
        self.traversal(key, Direction::Up)
    }
}

/// The schema's parent and child columns, for lowerings.
#[cfg_attr(not(any(feature = "postgres", feature = "sqlite")), allow(dead_code))]
pub(crate) fn columns(schema: &ModelSchema, links: TreeLinks) -> (&'static str, &'static str) {
    (schema.fields[links.parent].column, schema.fields[links.child].column)
}
