//! Lifecycle hooks: code a model runs around its writes and after its rows are read.
//!
//! A model opts in with `#[model(hooks)]` and an `impl Hooks for Model` overriding the hooks
//! it needs (every hook defaults to doing nothing). A model without `#[model(hooks)]` takes no
//! hook path at all: [`Model::HAS_HOOKS`] is a constant `false`, so the branches below are
//! compiled out of its writes and its decoder is unchanged.
//!
//! The write hooks of one write run in the same transaction as the write itself: on a plain
//! handle (`&db`, `&mongo`), polystore opens one (SQL: `BEGIN`…`COMMIT`; MongoDB: a session
//! transaction); inside a SQL transaction it nests one (a savepoint); inside a `MongoTx` the
//! hooks run in that transaction. A hook's error rolls back the write and whatever the hooks
//! wrote through [`HookCx::db`] (see `docs/modeling.md`, "Lifecycle hooks", for the exact
//! guarantee on each executor).

use std::future::Future;
use std::sync::Arc;

use crate::cache::CacheScope;
use crate::crud::{Keys, check_all};
use crate::db::{Executor, Stats, Target};
use crate::driver::{Driver as _, Kind, Operation, dispatch};
use crate::error::{Error, Result};
use crate::model::Model;
use crate::value::Value;

/// A write hook, as named in [`Error::Hook`] and [`HookCx::hook`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Hook {
    /// [`Hooks::before_insert`].
    BeforeInsert,
    /// [`Hooks::after_insert`].
    AfterInsert,
    /// [`Hooks::before_update`].
    BeforeUpdate,
    /// [`Hooks::after_update`].
    AfterUpdate,
    /// [`Hooks::before_delete`].
    BeforeDelete,
    /// [`Hooks::after_delete`].
    AfterDelete,
}

impl Hook {
    /// The hook's method name: `before_insert`, `after_update`, …
    pub fn name(self) -> &'static str {
        match self {
            Hook::BeforeInsert => "before_insert",
            Hook::AfterInsert => "after_insert",
            Hook::BeforeUpdate => "before_update",
            Hook::AfterUpdate => "after_update",
            Hook::BeforeDelete => "before_delete",
            Hook::AfterDelete => "after_delete",
        }
    }
}

/// What a write hook gets besides the row: the executor the write runs on (inside its
/// transaction) and which write it is.
pub struct HookCx<'a> {
    db: &'a mut dyn Executor,
    model: &'static str,
    hook: Hook,
    operation: &'static str,
}

impl std::fmt::Debug for HookCx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookCx")
            .field("model", &self.model)
            .field("hook", &self.hook)
            .field("operation", &self.operation)
            .finish_non_exhaustive()
    }
}

impl<'a> HookCx<'a> {
    /// The executor the write runs on: operations on it (reads, writes of other models) run in
    /// the write's transaction, and are rolled back with it when a hook refuses the write.
    /// For a write through a [`TenantDb`](crate::TenantDb) it is scoped like that handle: the
    /// same tenant checks and mode, and relation loads filtered on the tenant.
    pub fn db(&mut self) -> &mut dyn Executor {
        &mut *self.db
    }

    /// The hook running.
    pub fn hook(&self) -> Hook {
        self.hook
    }

    /// The write: `insert`, `insert_many`, `update`, `patch` (a DTO's partial update),
    /// `delete` or `delete_by_key`.
    pub fn operation(&self) -> &'static str {
        self.operation
    }

    /// [`Error::Hook`] naming this model and hook, with the hook's own error `source`: what a
    /// hook returns to refuse the write (`return Err(cx.refuse(MyError::Frozen))`).
    pub fn refuse(&self, source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Error {
        Error::hook(self.model, self.hook.name(), source)
    }
}

/// A model's lifecycle hooks, run when the model says `#[model(hooks)]`. Every method
/// defaults to doing nothing; override the ones you need. A hook returning an error refuses
/// the write: it is rolled back (see the module documentation) and the error is returned.
///
/// - `before_insert` / `before_update` get the row about to be written and may change it
///   (normalise a field); validation rules run after them, on the changed row.
/// - `after_insert` / `after_update` get the row as stored (generated key, timestamps, new
///   version), in the write's transaction, and may change the copy returned to the caller.
/// - `before_delete` / `after_delete` get the row deleted (`delete_by_key` reads it first).
/// - `after_load` runs on every row decoded from a store: queries, `find`/`get`, streams,
///   relation loads, cache hits and the rows writes return. It is synchronous and has no
///   executor; relations are attached after it.
///
/// Write hooks are `async` (a hook that does not need to wait is an `async fn` without
/// `.await`). Which writes run which hooks: `insert`, `insert_with_key`, `insert_many`,
/// `insert_many_with_keys` and create DTOs run the insert hooks for every row, all in one
/// transaction; `update` and patch DTOs (`dto(.., update)`) the update hooks; `delete` and
/// `delete_by_key` the delete hooks. `upsert`, `update_many`, `delete_many` and `claim` cannot
/// run them (they do not read the rows they change): on a model with hooks they are
/// [`Error::Config`], and `update_many_without_hooks` / `delete_many_without_hooks` bypass the
/// hooks explicitly.
#[diagnostic::on_unimplemented(
    message = "`{Self}` declares #[model(hooks)] but does not implement `polystore::Hooks`",
    label = "#[model(hooks)] needs `impl polystore::Hooks for {Self}`",
    note = "add `impl polystore::Hooks for {Self} {{}}` overriding the hooks you need, or remove `hooks`"
)]
pub trait Hooks: Model + Clone {
    /// Runs before the row is inserted; may change it.
    fn before_insert(&mut self, cx: &mut HookCx<'_>) -> impl Future<Output = Result<()>> + Send {
        let _ = cx;
        std::future::ready(Ok(()))
    }

    /// Runs after the row was inserted, on the row as stored.
    fn after_insert(&mut self, cx: &mut HookCx<'_>) -> impl Future<Output = Result<()>> + Send {
        let _ = cx;
        std::future::ready(Ok(()))
    }

    /// Runs before the row is updated (`update`, patch DTOs); may change it. For a patch, the
    /// row is the stored row with the patch applied, and fields the hook changes are written
    /// along with the patch's.
    fn before_update(&mut self, cx: &mut HookCx<'_>) -> impl Future<Output = Result<()>> + Send {
        let _ = cx;
        std::future::ready(Ok(()))
    }

    /// Runs after the row was updated, on the row as stored.
    fn after_update(&mut self, cx: &mut HookCx<'_>) -> impl Future<Output = Result<()>> + Send {
        let _ = cx;
        std::future::ready(Ok(()))
    }

    /// Runs before the row is deleted.
    fn before_delete(&self, cx: &mut HookCx<'_>) -> impl Future<Output = Result<()>> + Send {
        let _ = cx;
        std::future::ready(Ok(()))
    }

    /// Runs after the row was deleted (only when there was one).
    fn after_delete(&self, cx: &mut HookCx<'_>) -> impl Future<Output = Result<()>> + Send {
        let _ = cx;
        std::future::ready(Ok(()))
    }

    /// Runs on every row decoded from a store; an error fails the read.
    fn after_load(&mut self) -> Result<()> {
        Ok(())
    }
}

/// The transaction a hooked write runs in, scoped like the executor the write was called on:
/// on a [`TenantDb`](crate::TenantDb), every statement of the write and of its hooks
/// (through [`HookCx::db`]) passes that handle's guard and its relation loads get its tenant
/// filter (a SQL transaction begun on a tenant executor keeps its scope, see
/// [`Tx`](crate::db::Tx)).
pub(crate) struct WriteTx<'a> {
    conn: WriteConn<'a>,
}

/// The connection of a [`WriteTx`]: a transaction polystore opened, or the caller's executor
/// when polystore cannot open one on it (an open `MongoTx`).
enum WriteConn<'a> {
    #[cfg(any(feature = "postgres", feature = "sqlite"))]
    Sql(crate::db::Tx<'a>),
    #[cfg(feature = "mongodb")]
    Mongo(Box<crate::mongo::MongoTx>),
    /// Built for a `MongoTx` (and in builds without a store); a SQL-only build never joins.
    #[cfg_attr(all(any(feature = "postgres", feature = "sqlite"), not(feature = "mongodb")), allow(dead_code))]
    Joined(&'a mut dyn Executor),
}

/// Opens the write's transaction on `db` (already routed), keeping `db`'s tenant scope. Compiled
/// here (see `compiled_here`): the hooked writes that await it are generic.
#[crate::compiled_here]
async fn open_write_tx<'a>(db: &'a mut dyn Executor) -> Result<WriteTx<'a>> {
    let conn = match Kind::of(db) {
        #[cfg(any(feature = "postgres", feature = "sqlite"))]
        Kind::Sql => WriteConn::Sql(crate::db::begin_on(db).await?),
        #[cfg(feature = "mongodb")]
        Kind::Mongo => match db.mongo_store().cloned() {
            Some(store) => WriteConn::Mongo(Box::new(store.begin().await?)),
            None => WriteConn::Joined(db),
        },
        #[cfg(not(any(feature = "postgres", feature = "sqlite", feature = "mongodb")))]
        Kind::NoStore => WriteConn::Joined(db),
    };
    Ok(WriteTx { conn })
}

/// Commits the write's transaction; compiled here.
#[crate::compiled_here]
async fn commit_write_tx<'a>(tx: WriteTx<'a>) -> Result<()> {
    match tx.conn {
        #[cfg(any(feature = "postgres", feature = "sqlite"))]
        WriteConn::Sql(tx) => crate::db::commit_tx(tx).await,
        #[cfg(feature = "mongodb")]
        WriteConn::Mongo(tx) => tx.commit().await,
        WriteConn::Joined(_) => Ok(()),
    }
}

/// Rolls the write's transaction back; compiled here. A failure to roll back is not reported
/// over the error that caused it (the store discards the transaction when its connection or
/// session goes away).
#[crate::compiled_here]
async fn rollback_write_tx<'a>(tx: WriteTx<'a>) {
    match tx.conn {
        #[cfg(any(feature = "postgres", feature = "sqlite"))]
        WriteConn::Sql(tx) => drop(tx.rollback().await),
        #[cfg(feature = "mongodb")]
        WriteConn::Mongo(tx) => drop(tx.rollback().await),
        WriteConn::Joined(_) => {}
    }
}

impl Executor for &mut WriteTx<'_> {
    fn target(&mut self) -> (Target<'_>, &Arc<Stats>) {
        match &mut self.conn {
            #[cfg(any(feature = "postgres", feature = "sqlite"))]
            WriteConn::Sql(tx) => tx.tx_target(),
            #[cfg(feature = "mongodb")]
            WriteConn::Mongo(tx) => tx.tx_target(),
            WriteConn::Joined(db) => (**db).target(),
        }
    }

    fn cache_scope(&self) -> CacheScope<'_> {
        match &self.conn {
            #[cfg(any(feature = "postgres", feature = "sqlite"))]
            WriteConn::Sql(tx) => tx.tx_cache_scope(),
            #[cfg(feature = "mongodb")]
            WriteConn::Mongo(tx) => tx.tx_cache_scope(),
            WriteConn::Joined(db) => (**db).cache_scope(),
        }
    }

    fn guard(&mut self, op: &Operation<'_>) -> Result<()> {
        match &mut self.conn {
            #[cfg(any(feature = "postgres", feature = "sqlite"))]
            WriteConn::Sql(tx) => {
                let mut tx: &mut crate::db::Tx<'_> = tx;
                tx.guard(op)
            }
            WriteConn::Joined(db) => (**db).guard(op),
            #[allow(unreachable_patterns)]
            _ => crate::db::guard_unscoped(self, op),
        }
    }

    fn tenant(&self) -> Option<&crate::db::TenantScope> {
        match &self.conn {
            #[cfg(any(feature = "postgres", feature = "sqlite"))]
            WriteConn::Sql(tx) => tx.tenant_scope(),
            WriteConn::Joined(db) => (**db).tenant(),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }
}

/// The executor `op` runs on: `db`, or the one a routing executor picks.
fn resolve<'e, E: Executor>(db: &'e mut E, op: &Operation<'_>) -> Result<&'e mut dyn Executor> {
    if db.is_routed() {
        db.routed(op).ok_or_else(|| Error::Config(format!("the routing executor chose no store for {}", op.name)))
    } else {
        Ok(db)
    }
}

/// Runs `body` in the write's transaction on `db` and commits, or rolls back on its error.
macro_rules! in_write_tx {
    ($db:expr, $op:expr, |$x:ident| $body:expr) => {{
        let mut db = $db;
        let operation = $op;
        // Checked before the transaction opens (a tenant handle's key check: nothing runs).
        Executor::guard(&mut db, &operation)?;
        let db = resolve(&mut db, &operation)?;
        let mut tx = open_write_tx(db).await?;
        let result = {
            let mut held = &mut tx;
            #[allow(unused_mut)]
            let mut $x: &mut dyn Executor = &mut held;
            $body.await
        };
        match result {
            Ok(value) => {
                commit_write_tx(tx).await?;
                Ok(value)
            }
            Err(e) => {
                rollback_write_tx(tx).await;
                Err(e)
            }
        }
    }};
}

/// Runs hook `hook` of `row` with `db` as its executor.
async fn run<M: Model>(row: &mut M, hook: Hook, operation: &'static str, db: &mut dyn Executor) -> Result<()> {
    let mut cx = HookCx { db, model: M::SCHEMA.name, hook, operation };
    row.run_hook(hook, &mut cx).await
}

/// `insert` and its variants on a model with hooks.
pub(crate) async fn insert<M: Model, E: Executor>(db: E, rows: &[M], keys: Keys, op: &'static str) -> Result<Vec<M>> {
    let given = crate::crud::scoped_keys(&db, rows)?;
    in_write_tx!(db, Operation::write(op, M::SCHEMA, None).with_keys_if(given.as_deref()), |x| async move {
        let mut rows: Vec<M> = rows.iter().map(M::copy_for_hooks).collect::<Result<_>>()?;
        for row in &mut rows {
            run(row, Hook::BeforeInsert, op, &mut *x).await?;
        }
        for row in &rows {
            check_all(row, &mut x).await?;
        }
        // The hooks may have changed the rows (their keys too): checked again as written.
        let written = crate::crud::scoped_keys(&x, &rows)?;
        let db = &mut x;
        let operation = Operation::write(op, M::SCHEMA, None).with_keys_if(written.as_deref());
        let mut stored = dispatch!(db, operation, D => D::insert(db, &rows, keys, op).await)?;
        for row in &mut stored {
            run(row, Hook::AfterInsert, op, &mut *x).await?;
        }
        Ok(stored)
    })
}

/// `update` on a model with hooks.
pub(crate) async fn update<M: Model, E: Executor>(db: E, row: &M) -> Result<M> {
    let given = crate::crud::scoped_key(&db, row)?;
    in_write_tx!(db, Operation::write("update", M::SCHEMA, None).with_key_if(given.as_deref()), |x| async move {
        let mut row = row.copy_for_hooks()?;
        run(&mut row, Hook::BeforeUpdate, "update", &mut *x).await?;
        check_all(&row, &mut x).await?;
        let written = crate::crud::scoped_key(&x, &row)?;
        let db = &mut x;
        let op = Operation::write("update", M::SCHEMA, None).with_key_if(written.as_deref());
        let mut stored = dispatch!(db, op, D => D::update(db, &row).await)?;
        run(&mut stored, Hook::AfterUpdate, "update", &mut *x).await?;
        Ok(stored)
    })
}

/// A patch (`update_fields`) on a model with hooks: the stored row with the patch applied goes
/// through `before_update`; the fields it changes are written with the patch's.
pub(crate) async fn patch<M: Model, E: Executor>(db: E, key: Vec<Value>, sets: Vec<(usize, Value)>) -> Result<M> {
    in_write_tx!(db, Operation::write("update", M::SCHEMA, None).with_key(&key), |x| async move {
        let db = &mut x;
        let op = Operation::read("find", M::SCHEMA, None).with_key(&key);
        let current: Option<M> = dispatch!(db, op, D => D::get::<M, _>(db, key.clone()).await)?;
        let current = current.ok_or(Error::NotFound { model: M::SCHEMA.name })?;
        let mut patched = current.to_values()?;
        for (i, v) in &sets {
            patched[*i] = v.clone();
        }
        let mut row: M = crate::cache::codec::model_from_values(patched.clone())?;
        run(&mut row, Hook::BeforeUpdate, "patch", &mut *x).await?;
        let mut sets = sets;
        for (i, (now, before)) in row.to_values()?.into_iter().zip(patched).enumerate() {
            let fixed = M::SCHEMA.primary_key.contains(&i) || M::VERSION_FIELD == Some(i);
            if fixed || now == before {
                continue;
            }
            match sets.iter_mut().find(|(j, _)| *j == i) {
                Some(set) => set.1 = now,
                None => sets.push((i, now)),
            }
        }
        let db = &mut x;
        let op = Operation::write("update", M::SCHEMA, None).with_key(&key);
        let mut stored = dispatch!(db, op, D => D::update_fields::<M, _>(db, key, sets).await)?;
        run(&mut stored, Hook::AfterUpdate, "patch", &mut *x).await?;
        Ok(stored)
    })
}

/// `delete` (`row` given) and `delete_by_key` (`row` read first) on a model with hooks;
/// how many rows were deleted. A `#[model(soft_delete)]` model's row is stamped unless
/// `force` (`force_delete`, `force_delete_by_key`), which removes it, soft-deleted or not.
pub(crate) async fn delete<M: Model, E: Executor>(
    db: E,
    row: Option<&M>,
    key: Vec<Value>,
    expected: Option<Value>,
    force: bool,
) -> Result<u64> {
    in_write_tx!(db, Operation::write("delete", M::SCHEMA, None).with_key(&key), |x| async move {
        let op = match (row.is_some(), force) {
            (true, false) => "delete",
            (false, false) => "delete_by_key",
            (true, true) => "force_delete",
            (false, true) => "force_delete_by_key",
        };
        let mut row = match row {
            Some(row) => row.copy_for_hooks()?,
            None if force && M::SCHEMA.soft_delete.is_some() => {
                let q = crate::crud::by_key::<M>(&key, None).with_deleted();
                let db = &mut x;
                let op = Operation::read("find", M::SCHEMA, q.filter.as_ref()).with_key(&key);
                let found: Option<M> = dispatch!(db, op, D => D::first::<M, _>(db, q.clone()).await)?;
                match found {
                    Some(row) => row,
                    None => return Ok(0),
                }
            }
            None => {
                let db = &mut x;
                let op = Operation::read("find", M::SCHEMA, None).with_key(&key);
                let found: Option<M> = dispatch!(db, op, D => D::get::<M, _>(db, key.clone()).await)?;
                match found {
                    Some(row) => row,
                    None => return Ok(0),
                }
            }
        };
        run(&mut row, Hook::BeforeDelete, op, &mut *x).await?;
        let n = if force {
            crate::crud::remove_key::<M, _>(&mut x, key, expected).await?
        } else {
            crate::crud::delete_key::<M, _>(&mut x, key, expected).await?
        };
        if n > 0 {
            run(&mut row, Hook::AfterDelete, op, &mut *x).await?;
        }
        Ok(n)
    })
}

/// Awaits the write on model `$M`: `$hooked` (the write with `$M`'s lifecycle hooks) when the
/// model has hooks, `$plain` otherwise. Used inside an `async` body.
///
/// With debug assertions the hooked future is boxed, and only in the branch taken on the
/// constant [`Model::HAS_HOOKS`], before any `.await`: so a model without hooks never refers to
/// the hooked write's code, which would otherwise be compiled (unoptimized, unreachable) into
/// every crate that writes the model — an `.await` of the hooked future itself keeps the states
/// after it reachable whatever the constant. Optimized builds await either future in place, as
/// before (boxing or moving a whole write's future costs a copy of it).
macro_rules! with_hooks_if {
    ($M:ty, $hooked:expr, $plain:expr) => {{
        #[cfg(debug_assertions)]
        let write = if <$M as $crate::model::Model>::HAS_HOOKS {
            let hooked: $crate::model::BoxFuture<'_, _> = Box::pin($hooked);
            ::futures_util::future::Either::Left(hooked)
        } else {
            ::futures_util::future::Either::Right($plain)
        }
        .await;
        #[cfg(not(debug_assertions))]
        let write = if <$M as $crate::model::Model>::HAS_HOOKS { $hooked.await } else { $plain.await };
        write
    }};
}

pub(crate) use with_hooks_if;

/// [`Error::Config`] for a write that cannot run `M`'s hooks.
pub(crate) fn refused<M: Model>(what: &str, instead: &str) -> Error {
    Error::Config(format!(
        "{}: {what} cannot run the model's lifecycle hooks (#[model(hooks)]); {instead}",
        M::SCHEMA.name
    ))
}
