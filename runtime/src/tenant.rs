//! Tenant scoping for distributed models (`#[model(distributed_by = tenant_id)]`).
//!
//! A distributed database (Citus) routes a statement to one shard when it filters on the
//! distribution column with one value; any other statement on a distributed table visits
//! every shard. Two tools keep single-tenant work on one shard:
//!
//! - [`Db::tenant`] gives a [`TenantDb`]: an executor (`&tenant` goes wherever `&db` goes)
//!   whose queries must filter on the tenant ([`TenantDb::query`] starts one that does), whose
//!   by-key operations and inserts are checked to address the tenant's rows, whose relation
//!   loads get the tenant's filter, and that refuses another tenant's query or key with
//!   [`Error::ShardScope`];
//! - the *shard check* ([`Db::with_shard_check`]): every query-shaped operation (`all`,
//!   `first`, `count`, `select`, `update_many`, `delete_many`, pages, relation loads) on a
//!   distributed model without an equality filter on its distribution column is a multi-shard
//!   statement: a `tracing` warning ([`ShardCheck::Warn`], the default), an
//!   [`Error::ShardScope`] ([`ShardCheck::Strict`]) or nothing ([`ShardCheck::Off`]).
//!
//! Both run in the hidden `Executor::guard`, called by the driver seam (`dispatch!`) with the
//! [`Operation`] about to run. Operations by primary key (`find`, `update`, `delete`,
//! `upsert`, inserts) always carry the distribution column (the derive requires every
//! distributed model's key to include it), so they are single-shard; on a tenant handle the
//! operation also carries the key values ([`Operation::keys`]) and the guard compares their
//! distribution component with the tenant.

use std::sync::Arc;

use crate::cache::CacheScope;
use crate::db::{Db, Executor, Stats, Target};
use crate::driver::{OpKeys, OpKind, Operation};
use crate::error::{Error, Result};
use crate::model::Model;
use crate::query::{CmpOp, Expr, Node, Query};
use crate::schema::{ModelSchema, Scalar};
use crate::value::{FieldType, Value};

/// What happens to a multi-shard operation on a distributed model (one without an equality
/// filter on the distribution column). Set on a handle with [`Db::with_shard_check`] or
/// [`TenantDb::strict`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ShardCheck {
    /// Nothing.
    Off,
    /// A `tracing` warning (target `polystore::shard`) naming the model and the operation.
    #[default]
    Warn,
    /// [`Error::ShardScope`]; nothing runs.
    Strict,
}

impl ShardCheck {
    pub(crate) fn to_u8(self) -> u8 {
        match self {
            ShardCheck::Warn => 0,
            ShardCheck::Off => 1,
            ShardCheck::Strict => 2,
        }
    }

    pub(crate) fn from_u8(n: u8) -> ShardCheck {
        match n {
            1 => ShardCheck::Off,
            2 => ShardCheck::Strict,
            _ => ShardCheck::Warn,
        }
    }
}

/// Operations that run a query (a filter over any rows), as named in [`Operation::name`]; the
/// others address rows by primary key.
const QUERY_OPS: &[&str] =
    &["select", "count", "exists", "update_many", "delete_many", "claim", "paginate", "find_by_unique"];

/// A handle scoped to one tenant: the value of the distribution column of every distributed
/// model it touches. Made by [`Db::tenant`]; `&tenant` is an executor.
///
/// On a distributed model, a query run on it must filter on the tenant (start it with
/// [`TenantDb::query`] or add the filter with [`TenantDb::scope`]); a query filtering on
/// none is [`Error::ShardScope`] in [`TenantDb::strict`] mode and a warning otherwise. A
/// query filtering on another tenant, and any operation by primary key or insert whose key
/// holds another tenant (`M::find(&t, ..)`, `row.update(&t)`, cached reads, …), is
/// [`Error::ShardScope`] in every mode, before anything runs. Relation loads of distributed
/// models get the tenant's filter, and hooked writes keep the scope in their transaction
/// (`HookCx::db`). Reference and local models are not scoped.
#[derive(Debug, Clone)]
pub struct TenantDb {
    db: Db,
    value: std::result::Result<Value, Arc<str>>,
    check: ShardCheck,
}

impl Db {
    /// A handle scoped to the tenant whose distribution-column value is `value` (see
    /// [`TenantDb`]). It shares this handle's pool, cache and counters.
    pub fn tenant<T: FieldType>(&self, value: T) -> TenantDb {
        TenantDb {
            db: self.clone(),
            value: value.to_value().map_err(|e| Arc::from(e.to_string())),
            check: ShardCheck::Warn,
        }
    }

    /// What a query-shaped operation on a distributed model that would visit every shard does
    /// (see [`ShardCheck`]; default [`ShardCheck::Warn`]). Applies to this handle, its clones
    /// and their transactions.
    pub fn with_shard_check(self, check: ShardCheck) -> Db {
        self.stats().set_shard_check(check);
        self
    }
}

impl TenantDb {
    /// The tenant's distribution-column value.
    pub fn value(&self) -> Result<&Value> {
        self.value.as_ref().map_err(|e| Error::Config(format!("the tenant value cannot be stored: {e}")))
    }

    /// The handle this one is scoped from.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Starts a transaction scoped like this handle: every statement run on `&mut tx` passes
    /// the same checks as on `&tenant` (keys and filters of another tenant refused, multi-shard
    /// queries warned about or refused in [`TenantDb::strict`] mode), relation loads get the
    /// tenant filter, and savepoints (`tx.begin()`) keep the scope. Dropping the [`Tx`] without
    /// committing rolls it back.
    pub async fn begin(&self) -> Result<crate::db::Tx<'static>> {
        let mut tx = self.db.begin().await?;
        tx.scope_to(self.clone());
        Ok(tx)
    }

    /// Refuses multi-shard and other-tenant queries with [`Error::ShardScope`] instead of
    /// warning.
    pub fn strict(mut self) -> TenantDb {
        self.check = ShardCheck::Strict;
        self
    }

    /// A query on `M` keeping this tenant's rows (every row, for a model that is not
    /// distributed).
    pub fn query<M: Model>(&self) -> Query<M> {
        self.scope(Query::new())
    }

    /// `q` restricted to this tenant's rows (unchanged for a model that is not distributed).
    pub fn scope<M: Model>(&self, q: Query<M>) -> Query<M> {
        let Some(d) = M::SCHEMA.distribution else { return q };
        let node = match self.value() {
            Ok(v) => Node::Compare { field: d.column, op: CmpOp::Eq, value: coerce(v, M::SCHEMA, d.column) },
            Err(e) => Node::Invalid(crate::error::ValueError::Serde(e.to_string())),
        };
        q.filter(Expr::from_node(node))
    }

    /// Inserts `row` after checking that its distribution column holds this tenant (a row of
    /// another tenant is [`Error::ShardScope`] and nothing is written).
    pub async fn insert<M: Model>(&self, row: &M) -> Result<M> {
        crate::crud::ModelExt::insert(row, self).await
    }

    /// Inserts `rows` (all or none) after checking each as [`TenantDb::insert`] does.
    pub async fn insert_many<M: Model>(&self, rows: &[M]) -> Result<Vec<M>> {
        <M as crate::crud::ModelExt>::insert_many(self, rows).await
    }

    /// The row of `M` with primary key `key`, which must belong to this tenant (a key of
    /// another tenant is [`Error::ShardScope`], and nothing is read).
    pub async fn find<M: Model>(&self, key: M::Key) -> Result<M> {
        <M as crate::crud::ModelExt>::find(self, key).await
    }

    /// Whether primary-key values `key` of a row of `schema` belong to this tenant (always,
    /// for a model that is not distributed).
    pub(crate) fn owns_key(&self, schema: &ModelSchema, key: &[Value]) -> bool {
        let Some(pos) = schema.distribution_key_position() else { return true };
        self.value().is_ok_and(|tenant| key.get(pos).is_some_and(|v| same(v, tenant)))
    }

    /// The check every operation run through this handle passes (see [`check`]).
    pub(crate) fn guard_op(&self, op: &Operation<'_>) -> Result<()> {
        let tenant = match &self.value {
            Ok(v) => v,
            Err(e) => return Err(Error::Config(format!("the tenant value cannot be stored: {e}"))),
        };
        check(self.check, Some(tenant), op)
    }
}

impl Executor for &TenantDb {
    fn target(&mut self) -> (Target<'_>, &Arc<Stats>) {
        self.db.target_of()
    }

    fn cache_scope(&self) -> CacheScope<'_> {
        self.db.cache_scope_of()
    }

    fn guard(&mut self, op: &Operation<'_>) -> Result<()> {
        self.guard_op(op)
    }

    fn tenant(&self) -> Option<&TenantDb> {
        Some(self)
    }
}

/// The shard check of one operation: `mode` for a multi-shard query on a distributed model;
/// with `tenant`, a query naming another tenant, or a key ([`Operation::keys`]) whose
/// distribution component is another tenant, is an error whatever the mode.
pub(crate) fn check(mode: ShardCheck, tenant: Option<&Value>, op: &Operation<'_>) -> Result<()> {
    let Some(schema) = op.model else { return Ok(()) };
    let Some(d) = schema.distribution else { return Ok(()) };
    if let (Some(t), Some(keys)) = (tenant, op.keys) {
        check_keys(schema, t, op.name, keys)?;
    }
    if op.kind == OpKind::Other || !QUERY_OPS.contains(&op.name) {
        return Ok(());
    }
    let column = schema.fields[d.column].name;
    match op.filter.and_then(|f| equality(f, d.column)) {
        Some(value) => match tenant {
            Some(t) if !same(value, t) => Err(Error::ShardScope {
                model: schema.name,
                message: format!(
                    "{} filters on `{column}` = {value:?}, but the handle is scoped to tenant {t:?}",
                    op.name
                ),
            }),
            _ => Ok(()),
        },
        None => {
            let message = format!(
                "{} on distributed model {} has no equality filter on its distribution column `{column}`: it runs \
                 on every shard",
                op.name, schema.name
            );
            match mode {
                ShardCheck::Off => Ok(()),
                ShardCheck::Warn => {
                    tracing::warn!(target: "polystore::shard", model = schema.name, op = op.name, "{message}");
                    Ok(())
                }
                ShardCheck::Strict => Err(Error::ShardScope { model: schema.name, message }),
            }
        }
    }
}

/// [`Error::ShardScope`] when one of `keys` has a distribution component other than
/// `tenant`. Example: key `(1, 7)` of `Order` (`primary_key(tenant_id, id)`) on a handle scoped
/// to tenant 2.
fn check_keys(schema: &ModelSchema, tenant: &Value, op: &str, keys: OpKeys<'_>) -> Result<()> {
    let (Some(pos), Some(d)) = (schema.distribution_key_position(), schema.distribution) else { return Ok(()) };
    for key in keys.each() {
        match key.get(pos) {
            Some(value) if same(value, tenant) => {}
            found => {
                let name = schema.fields[d.column].name;
                let found = found.map_or_else(|| "missing".to_owned(), |v| format!("{v:?}"));
                return Err(Error::ShardScope {
                    model: schema.name,
                    message: format!(
                        "{op} of the row with key {key:?}: its `{name}` is {found}, but the handle is scoped to \
                         tenant {tenant:?}"
                    ),
                });
            }
        }
    }
    Ok(())
}

/// The value `node` requires field `field` to equal, when every matching row must have it:
/// `field = v`, `field IN (v)`, or one of those inside an AND.
fn equality(node: &Node, field: usize) -> Option<&Value> {
    match node {
        Node::Compare { field: f, op: CmpOp::Eq, value } if *f == field && *value != Value::Null => Some(value),
        Node::In { field: f, values, negated: false } if *f == field && values.len() == 1 => values.first(),
        Node::And(items) => items.iter().find_map(|n| equality(n, field)),
        _ => None,
    }
}

/// Whether two distribution values are the same tenant (integers compare across widths).
fn same(a: &Value, b: &Value) -> bool {
    match (int(a), int(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::I16(n) => Some(i64::from(*n)),
        Value::I32(n) => Some(i64::from(*n)),
        Value::I64(n) => Some(*n),
        _ => None,
    }
}

/// `value` as the distribution column's integer width, so `db.tenant(7)` filters a `BIGINT`
/// column with a `BIGINT` parameter.
fn coerce(value: &Value, schema: &ModelSchema, field: usize) -> Value {
    let Some(n) = int(value) else { return value.clone() };
    match schema.fields[field].ty.scalar {
        Scalar::I64 => Value::I64(n),
        Scalar::I32 => i32::try_from(n).map(Value::I32).unwrap_or_else(|_| value.clone()),
        Scalar::I16 => i16::try_from(n).map(Value::I16).unwrap_or_else(|_| value.clone()),
        _ => value.clone(),
    }
}
