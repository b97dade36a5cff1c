//! Stores that wrap stores: a [`Router`] sees each [`Operation`] before it runs and picks the
//! executor it runs on (a primary or a replica, a shard, a recording test double).

use std::sync::Arc;

use crate::cache::CacheScope;
use crate::db::{Executor, Stats, Target};
use crate::query::Node;
use crate::schema::ModelSchema;
use crate::value::Value;

/// What an operation does, as far as routing cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpKind {
    /// Reads rows (finds, queries, counts, projections, pages, relation loads).
    Read,
    /// Changes rows (inserts, updates, upserts, deletes, bulk writes, links).
    Write,
    /// Anything else run on the executor directly: transactions, raw statements, schema
    /// changes. Route it where writes go.
    Other,
}

/// One operation about to run, as a [`Router`] sees it: no bound values beyond the filter,
/// nothing to execute.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Operation<'a> {
    /// The operation's name, as in the statement spans (`find`, `select`, `insert`, …).
    pub name: &'static str,
    /// Read, write or other.
    pub kind: OpKind,
    /// The model it reads or writes, when there is one.
    pub model: Option<&'static ModelSchema>,
    /// The query's filter, for reads and bulk writes that have one (a shard router reads
    /// its distribution column here).
    pub filter: Option<&'a Node>,
    /// The primary-key values of the rows a by-key operation reads or writes (`find`,
    /// `get_many`, `delete`, a patch, …), when the call site has them at hand; a write given a
    /// whole row (`update`, `upsert`, inserts) fills it only on a tenant handle (see
    /// [`crate::tenant`]), which compares the key's distribution value with its tenant.
    pub keys: Option<OpKeys<'a>>,
}

/// The primary-key values an [`Operation`] addresses, each in the model's key order.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum OpKeys<'a> {
    /// One row's key.
    Row(&'a [Value]),
    /// Several rows' keys (`get_many`, inserts of several rows).
    Rows(&'a [Vec<Value>]),
}

impl<'a> OpKeys<'a> {
    /// Each key, in order.
    pub fn each(self) -> impl Iterator<Item = &'a [Value]> {
        let (one, many): (Option<&'a [Value]>, &'a [Vec<Value>]) = match self {
            OpKeys::Row(key) => (Some(key), &[]),
            OpKeys::Rows(keys) => (None, keys),
        };
        one.into_iter().chain(many.iter().map(Vec::as_slice))
    }
}

impl<'a> Operation<'a> {
    /// A read of `model`.
    pub fn read(name: &'static str, model: &'static ModelSchema, filter: Option<&'a Node>) -> Self {
        Operation { name, kind: OpKind::Read, model: Some(model), filter, keys: None }
    }

    /// A write to `model`.
    pub fn write(name: &'static str, model: &'static ModelSchema, filter: Option<&'a Node>) -> Self {
        Operation { name, kind: OpKind::Write, model: Some(model), filter, keys: None }
    }

    /// What runs on the executor without naming an operation: transactions, raw statements,
    /// schema changes.
    pub fn other(name: &'static str) -> Self {
        Operation { name, kind: OpKind::Other, model: None, filter: None, keys: None }
    }

    /// This operation addressing the row with primary-key values `key` (borrowed: no copy).
    pub fn with_key(mut self, key: &'a [Value]) -> Self {
        self.keys = Some(OpKeys::Row(key));
        self
    }

    /// This operation addressing the rows with primary-key values `keys`.
    pub fn with_keys(mut self, keys: &'a [Vec<Value>]) -> Self {
        self.keys = Some(OpKeys::Rows(keys));
        self
    }

    /// [`Operation::with_key`] when there is a key (the keys of a whole-row write, computed
    /// only on a tenant handle).
    pub(crate) fn with_key_if(self, key: Option<&'a [Value]>) -> Self {
        match key {
            Some(key) => self.with_key(key),
            None => self,
        }
    }

    /// [`Operation::with_keys`] when there are keys.
    pub(crate) fn with_keys_if(self, keys: Option<&'a [Vec<Value>]>) -> Self {
        match keys {
            Some(keys) => self.with_keys(keys),
            None => self,
        }
    }
}

/// Chooses, per operation, the executor it runs on. Wrap it in [`Routed`] to use it wherever
/// an executor is taken: `User::find(&mut Routed(router), 1)`.
///
/// The chosen executor may itself be a `&mut Routed<..>`: routers nest. Whatever the chosen
/// executor runs for the operation (a write's follow-up read of a key sequence, a relation
/// load's statements) stays on it.
pub trait Router: Send {
    /// The executor `op` runs on.
    fn route(&mut self, op: &Operation<'_>) -> &mut dyn Executor;
}

/// A [`Router`] used as an executor: `&mut Routed(router)` goes wherever `&db` goes.
///
/// Operations that are not routed one by one — transactions begun on it, raw statements —
/// run where the router sends [`Operation::other`].
#[derive(Debug)]
pub struct Routed<R>(pub R);

impl<R: Router> Executor for &mut Routed<R> {
    fn target(&mut self) -> (Target<'_>, &Arc<Stats>) {
        self.0.route(&Operation::other("execute")).target()
    }

    fn cache_scope(&self) -> CacheScope<'_> {
        // The scope of a shared borrow cannot come from `route` (which takes `&mut`): routed
        // operations use the cache of the executor they are routed to (see `dispatch!`).
        CacheScope::None
    }

    fn routed(&mut self, op: &Operation<'_>) -> Option<&mut dyn Executor> {
        let inner = self.0.route(op);
        if inner.is_routed() { inner.routed(op) } else { Some(inner) }
    }

    fn is_routed(&self) -> bool {
        true
    }
}
