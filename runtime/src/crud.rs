//! CRUD for every model ([`ModelExt`], implemented for all [`Model`]s), on every store through
//! the driver seam (`crate::driver`). The terminals that run a [`Query`] live in `query/run.rs`.

use std::future::Future;
use std::marker::PhantomData;

use crate::db::Executor;
use crate::driver::{Driver as _, Operation, dispatch};
use crate::error::{Error, Result};
use crate::model::{Field, Model};
use crate::query::Query;
use crate::schema::ModelSchema;
use crate::value::Value;

/// A field of model `M` with its type erased, for lists of fields (conflict targets, …).
#[derive(Debug)]
pub struct AnyField<M> {
    index: usize,
    _model: PhantomData<fn() -> M>,
}

impl<M> Clone for AnyField<M> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<M> Copy for AnyField<M> {}

impl<M> AnyField<M> {
    /// The field's position in the model's schema.
    pub fn index(&self) -> usize {
        self.index
    }
}

impl<M, T> From<Field<M, T>> for AnyField<M> {
    fn from(f: Field<M, T>) -> Self {
        AnyField { index: f.index(), _model: PhantomData }
    }
}

/// Operations every model gets: `User::find(&db, 1)`, `user.insert(&db)`, `User::query()`…
///
/// Each takes an [`Executor`]: `&db` for a pooled connection, or `&mut tx` inside a
/// transaction.
pub trait ModelExt: Model {
    /// A query over this model that matches every row.
    fn query() -> Query<Self> {
        Query::new()
    }

    /// The row with primary key `key`, or [`Error::NotFound`].
    fn find<E: Executor>(mut db: E, key: Self::Key) -> impl Future<Output = Result<Self>> + Send {
        async move {
            let key = Self::key_values(&key)?;
            let db = &mut db;
            let op = Operation::read("find", Self::SCHEMA, None).with_key(&key);
            dispatch!(db, op, D => D::get::<Self, _>(db, key).await)?
                .ok_or(Error::NotFound { model: Self::SCHEMA.name })
        }
    }

    /// The row with primary key `key`, if there is one.
    fn get<E: Executor>(mut db: E, key: Self::Key) -> impl Future<Output = Result<Option<Self>>> + Send {
        async move {
            let key = Self::key_values(&key)?;
            let db = &mut db;
            dispatch!(db, Operation::read("find", Self::SCHEMA, None).with_key(&key), D => D::get::<Self, _>(db, key).await)
        }
    }

    /// Inserts this row and returns it as stored: with its generated key, automatic timestamps
    /// and database defaults.
    ///
    /// A `#[model(generated)]` key must be 0 (the store assigns one); any other value is
    /// [`Error::GeneratedKeyGiven`] rather than a silently renumbered row. To store a row under
    /// a key you chose, use [`ModelExt::insert_with_key`].
    fn insert<E: Executor>(&self, db: E) -> impl Future<Output = Result<Self>> + Send {
        async move { one_row(insert_rows(db, std::slice::from_ref(self), Keys::Assign, "insert").await?) }
    }

    /// Inserts this row under the key it holds, even a `#[model(generated)]` one, and returns
    /// it as stored (a row with that key already there is [`Error::UniqueViolation`]).
    ///
    /// The store's key generator is moved past the key, so later plain inserts never collide
    /// with it: on PostgreSQL, a key beyond the identity sequence is written in a transaction
    /// that locks the table against other inserts (`SHARE ROW EXCLUSIVE`) until it ends and
    /// then advances the sequence (`setval`); SQLite's `AUTOINCREMENT` follows by itself; on
    /// MongoDB the counter is raised (`$max`) before the write.
    fn insert_with_key<E: Executor>(&self, db: E) -> impl Future<Output = Result<Self>> + Send {
        async move { one_row(insert_rows(db, std::slice::from_ref(self), Keys::Keep, "insert").await?) }
    }

    /// Inserts all `rows` with one multi-row INSERT (several when the rows exceed the
    /// database's parameter limit, then inside one transaction), returning them as stored, in
    /// order. Either every row is inserted or none is. Generated keys must be 0, as for
    /// [`ModelExt::insert`].
    fn insert_many<E: Executor>(db: E, rows: &[Self]) -> impl Future<Output = Result<Vec<Self>>> + Send {
        insert_rows(db, rows, Keys::Assign, "insert_many")
    }

    /// Inserts all `rows` under the keys they hold, as [`ModelExt::insert_with_key`] does for
    /// one row (copying a table with gaps in its ids keeps every id): one multi-row INSERT per
    /// parameter-limit's worth of rows, all in one transaction when there are several or when
    /// the key sequence has to be advanced.
    fn insert_many_with_keys<E: Executor>(db: E, rows: &[Self]) -> impl Future<Output = Result<Vec<Self>>> + Send {
        insert_rows(db, rows, Keys::Keep, "insert_many")
    }

    /// Writes every field but the key (and `created_at`) to the row with this row's key, and
    /// returns it as stored; [`Error::NotFound`] when no row has the key.
    ///
    /// For a model with a `#[model(version)]` field, the write happens only while the stored
    /// row is at the version this row holds, and stores the next version (returned in the
    /// row); a row another write changed since is [`Error::StaleVersion`], and nothing is
    /// written.
    fn update<E: Executor>(&self, mut db: E) -> impl Future<Output = Result<Self>> + Send {
        async move {
            let db: &mut dyn Executor = &mut db;
            crate::hooks::with_hooks_if!(Self, crate::hooks::update(db, self), update_unhooked(self, db))
        }
    }

    /// Inserts this row, or, when its primary key exists, updates that row; returns it as stored.
    ///
    /// The key is written as given, a `#[model(generated)]` one too; as with
    /// [`ModelExt::insert_with_key`], the store's key generator is moved past it, so a later
    /// plain insert does not collide with the upserted row.
    fn upsert<E: Executor>(&self, db: E) -> impl Future<Output = Result<Self>> + Send {
        async move { upsert_by(self, db, Self::SCHEMA.primary_key).await }
    }

    /// Inserts this row, or, when a row with the same values in `conflict` (a unique index's
    /// fields) exists, updates that row; returns it as stored.
    fn upsert_on<E: Executor>(&self, db: E, conflict: &[AnyField<Self>]) -> impl Future<Output = Result<Self>> + Send {
        let fields: Vec<usize> = conflict.iter().map(AnyField::index).collect();
        async move {
            if fields.is_empty() {
                return Err(Error::Config(format!(
                    "{}: upsert_on needs at least one conflict field",
                    Self::SCHEMA.name
                )));
            }
            upsert_by(self, db, &fields).await
        }
    }

    /// Deletes this row (by its key); [`Error::NotFound`] when it does not exist.
    ///
    /// For a model with a `#[model(version)]` field, only while the stored row is at the version
    /// this row holds: otherwise [`Error::StaleVersion`], and nothing is deleted.
    ///
    /// For a `#[model(soft_delete)]` model this *soft-deletes*: the live row's stamp is set to
    /// now (with its `updated_at` and version, if any) and every read leaves it out from then
    /// on; a row already soft-deleted is [`Error::NotFound`]. Nothing cascades to related rows.
    /// [`ModelExt::force_delete`] removes the row for good, [`ModelExt::restore`] brings it back.
    fn delete<E: Executor>(&self, db: E) -> impl Future<Output = Result<()>> + Send {
        delete_row(self, db, false)
    }

    /// Deletes the row with primary key `key`; returns whether there was one.
    ///
    /// A key carries no version: on a `#[model(version)]` model this deletes whatever version
    /// is stored. Use [`ModelExt::delete`] on the row as read to have the version checked.
    ///
    /// On a `#[model(soft_delete)]` model this soft-deletes the live row with the key (see
    /// [`ModelExt::delete`]); `false` when there is none.
    fn delete_by_key<E: Executor>(db: E, key: Self::Key) -> impl Future<Output = Result<bool>> + Send {
        async move { delete_by::<Self, E>(db, Self::key_values(&key)?, false).await }
    }

    /// Deletes this row for good, soft-deleted or not (on a model without a
    /// `#[model(soft_delete)]` field, the same as [`ModelExt::delete`]); [`Error::NotFound`]
    /// when no row has its key. A `#[model(version)]` model's version is checked as by `delete`.
    fn force_delete<E: Executor>(&self, db: E) -> impl Future<Output = Result<()>> + Send {
        delete_row(self, db, true)
    }

    /// Deletes the row with primary key `key` for good, soft-deleted or not; returns whether
    /// there was one.
    fn force_delete_by_key<E: Executor>(db: E, key: Self::Key) -> impl Future<Output = Result<bool>> + Send {
        async move { delete_by::<Self, E>(db, Self::key_values(&key)?, true).await }
    }

    /// Brings this soft-deleted row back: clears its stamp (bumping `updated_at` and the
    /// version, if any) and returns it as stored. [`Error::NotFound`] when no soft-deleted row
    /// has its key; [`Error::UniqueViolation`] when a live row took one of its unique values
    /// in the meantime (nothing is written then); [`Error::Config`] on a model without a
    /// `#[model(soft_delete)]` field.
    fn restore<E: Executor>(&self, db: E) -> impl Future<Output = Result<Self>> + Send {
        async move { restore_key::<Self, E>(db, Self::SCHEMA.key_of(&self.to_values()?)).await }
    }

    /// [`ModelExt::restore`] by primary key.
    fn restore_by_key<E: Executor>(db: E, key: Self::Key) -> impl Future<Output = Result<Self>> + Send {
        async move { restore_key::<Self, E>(db, Self::key_values(&key)?).await }
    }
}

impl<M: Model> ModelExt for M {}

/// Runs a row's validation rules, then its async business rules (which may query `db`).
pub(crate) async fn check_all<M: Model, E: Executor>(row: &M, db: &mut E) -> Result<()> {
    row.check_rules()?;
    if M::HAS_ASYNC_RULES {
        row.check_rules_async(db).await?;
    }
    Ok(())
}

/// The primary-key values of `row` when `db` is scoped to a tenant and `M` is distributed
/// (what a tenant handle's guard compares with its tenant, see [`Operation::with_key`]);
/// `None`, with nothing computed, otherwise.
pub(crate) fn scoped_key<M: Model, E: Executor + ?Sized>(db: &E, row: &M) -> Result<Option<Vec<Value>>> {
    if !crate::db::tenant_scoped(db, M::SCHEMA) {
        return Ok(None);
    }
    Ok(Some(M::SCHEMA.key_of(&row.to_values()?)))
}

/// [`scoped_key`] of each of `rows`.
pub(crate) fn scoped_keys<M: Model, E: Executor + ?Sized>(db: &E, rows: &[M]) -> Result<Option<Vec<Vec<Value>>>> {
    if !crate::db::tenant_scoped(db, M::SCHEMA) {
        return Ok(None);
    }
    let mut keys = Vec::with_capacity(rows.len());
    for row in rows {
        keys.push(M::SCHEMA.key_of(&row.to_values()?));
    }
    Ok(Some(keys))
}

/// Whether an insert writes the generated keys its rows hold or has the store assign them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Keys {
    /// The store assigns generated keys; rows must hold 0 there.
    Assign,
    /// Every key is written as the row holds it.
    Keep,
}

/// The position and value of the generated key in a row's `values`, when the model has one
/// and the row holds something other than 0 there.
pub(crate) fn given_key(schema: &ModelSchema, values: &[Value]) -> Option<(usize, i64)> {
    given_key_at(schema, |i| values.get(i))
}

/// [`given_key`] of a row whose value at a position `value_at` reads (`None`: not an integer).
pub(crate) fn given_key_at<'v>(
    schema: &ModelSchema,
    value_at: impl FnOnce(usize) -> Option<&'v Value>,
) -> Option<(usize, i64)> {
    let i = schema.fields.iter().position(|f| f.generated)?;
    let key = match value_at(i)? {
        Value::I16(k) => i64::from(*k),
        Value::I32(k) => i64::from(*k),
        Value::I64(k) => *k,
        _ => return None,
    };
    (key != 0).then_some((i, key))
}

/// Checks one row about to be inserted against `keys`; returns the key it holds when the
/// caller chose it.
pub(crate) fn check_key(schema: &'static ModelSchema, values: &[Value], keys: Keys) -> Result<Option<i64>> {
    check_given_key(schema, given_key(schema, values), keys)
}

/// [`check_key`] of a row whose generated key (position, value) is `given` (see
/// [`given_key_at`]).
pub(crate) fn check_given_key(
    schema: &'static ModelSchema,
    given: Option<(usize, i64)>,
    keys: Keys,
) -> Result<Option<i64>> {
    match (keys, given) {
        (Keys::Assign, Some((i, value))) => {
            Err(Error::GeneratedKeyGiven { model: schema.name, field: schema.fields[i].name, value })
        }
        (Keys::Keep, Some((_, value))) => Ok(Some(value)),
        _ => Ok(None),
    }
}

pub(crate) fn one_row<M: Model>(mut rows: Vec<M>) -> Result<M> {
    rows.pop().ok_or(Error::NotFound { model: M::SCHEMA.name })
}

/// What `insert`, `insert_many` and their `_with_key(s)` variants run. The write itself runs
/// on `&mut dyn Executor` (as the query terminals do, see `query/run.rs`), so that what it
/// instantiates (the hooks, the driver's insert, decoding, cache upkeep) is compiled once per
/// model rather than once per model and executor type.
async fn insert_rows<M: Model, E: Executor>(mut db: E, rows: &[M], keys: Keys, op: &'static str) -> Result<Vec<M>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let db: &mut dyn Executor = &mut db;
    crate::hooks::with_hooks_if!(M, crate::hooks::insert(db, rows, keys, op), insert_unhooked(db, rows, keys, op))
}

/// [`insert_rows`] of a model without hooks.
async fn insert_unhooked<M: Model>(
    mut db: &mut dyn Executor,
    rows: &[M],
    keys: Keys,
    op: &'static str,
) -> Result<Vec<M>> {
    for row in rows {
        check_all(row, &mut db).await?;
    }
    let row_keys = scoped_keys(&db, rows)?;
    let db = &mut db;
    let operation = Operation::write(op, M::SCHEMA, None).with_keys_if(row_keys.as_deref());
    dispatch!(db, operation, D => D::insert(db, rows, keys, op).await)
}

/// `update` of a model without hooks, on any executor (see [`insert_rows`]).
async fn update_unhooked<M: Model>(row: &M, mut db: &mut dyn Executor) -> Result<M> {
    check_all(row, &mut db).await?;
    let key = scoped_key(&db, row)?;
    let db = &mut db;
    let op = Operation::write("update", M::SCHEMA, None).with_key_if(key.as_deref());
    dispatch!(db, op, D => D::update(db, row).await)
}

async fn upsert_by<M: Model, E: Executor>(row: &M, mut db: E, conflict: &[usize]) -> Result<M> {
    upsert_on(row, &mut db, conflict).await
}

/// [`upsert_by`] on any executor (see [`insert_rows`]).
async fn upsert_on<M: Model>(row: &M, mut db: &mut dyn Executor, conflict: &[usize]) -> Result<M> {
    if M::HAS_HOOKS {
        return Err(crate::hooks::refused::<M>(
            "upsert",
            "it cannot tell beforehand whether it inserts or updates: read the row, then insert or update it",
        ));
    }
    check_all(row, &mut db).await?;
    let key = scoped_key(&db, row)?;
    let db = &mut db;
    let op = Operation::write("upsert", M::SCHEMA, None).with_key_if(key.as_deref());
    dispatch!(db, op, D => D::upsert(db, row, conflict).await)
}

/// `delete` (`force`: `force_delete`) of `row` as read: by its key, its version checked;
/// [`Error::NotFound`] when no row has the key.
async fn delete_row<M: Model, E: Executor>(row: &M, mut db: E, force: bool) -> Result<()> {
    let values = row.to_values()?;
    let key = M::SCHEMA.key_of(&values);
    let expected = M::VERSION_FIELD.map(|i| values[i].clone());
    let deleted = delete_on::<M>(&mut db, Some(row), key, expected, force).await?;
    match deleted {
        0 => Err(Error::NotFound { model: M::SCHEMA.name }),
        _ => Ok(()),
    }
}

/// `delete_by_key` (`force`: `force_delete_by_key`): whether a row had the key.
async fn delete_by<M: Model, E: Executor>(mut db: E, key: Vec<Value>, force: bool) -> Result<bool> {
    let deleted = delete_on::<M>(&mut db, None, key, None, force).await?;
    Ok(deleted > 0)
}

/// The deletes by key on any executor (see [`insert_rows`]), with `M`'s hooks when it has
/// them: how many rows were deleted.
async fn delete_on<M: Model>(
    db: &mut dyn Executor,
    row: Option<&M>,
    key: Vec<Value>,
    expected: Option<Value>,
    force: bool,
) -> Result<u64> {
    crate::hooks::with_hooks_if!(
        M,
        crate::hooks::delete(db, row, key, expected, force),
        delete_unhooked::<M>(db, key, expected, force)
    )
}

/// The deletes by key of a model without hooks.
async fn delete_unhooked<M: Model>(
    mut db: &mut dyn Executor,
    key: Vec<Value>,
    expected: Option<Value>,
    force: bool,
) -> Result<u64> {
    if force {
        remove_key::<M, _>(&mut db, key, expected).await
    } else {
        delete_key::<M, _>(&mut db, key, expected).await
    }
}

/// `delete` / `delete_by_key`: the real delete, or the stamp of a soft-delete model.
pub(crate) async fn delete_key<M: Model, E: Executor>(
    db: &mut E,
    key: Vec<Value>,
    expected: Option<Value>,
) -> Result<u64> {
    match M::SCHEMA.soft_delete {
        Some(stamp) => soft_delete_key::<M, E>(db, key, expected, stamp).await,
        None => remove_key::<M, E>(db, key, expected).await,
    }
}

/// The real delete by key.
pub(crate) async fn remove_key<M: Model, E: Executor>(
    db: &mut E,
    key: Vec<Value>,
    expected: Option<Value>,
) -> Result<u64> {
    let op = Operation::write("delete", M::SCHEMA, None).with_key(&key);
    dispatch!(db, op, D => D::delete_key::<M, _>(db, key, expected).await)
}

/// The query of the row with primary-key values `key` (and, given, version `expected`).
pub(crate) fn by_key<M: Model>(key: &[Value], expected: Option<Value>) -> Query<M> {
    let mut q = Query::<M>::new();
    let by_key = crate::cache::keys_filter(M::SCHEMA, std::slice::from_ref(&key.to_vec()));
    q.filter = Some(match M::VERSION_FIELD.zip(expected) {
        Some((field, value)) => crate::query::Node::And(vec![
            by_key,
            crate::query::Node::Compare { field, op: crate::query::CmpOp::Eq, value },
        ]),
        None => by_key,
    });
    q
}

/// Soft-deletes the live row with primary-key values `key`: an update that sets its stamp
/// (`stamp`), through `update_many`, so the cache drops the row as for any bulk update. With
/// `expected`, only while the row is at that version ([`Error::StaleVersion`] otherwise).
async fn soft_delete_key<M: Model, E: Executor>(
    db: &mut E,
    key: Vec<Value>,
    expected: Option<Value>,
    stamp: usize,
) -> Result<u64> {
    let q = by_key::<M>(&key, expected.clone());
    let list = vec![crate::query::Assign::Set { field: stamp, value: Value::TimestampTz(chrono::Utc::now()) }];
    let op = Operation::write("delete", M::SCHEMA, q.filter.as_ref()).with_key(&key);
    let changed = dispatch!(db, op, D => D::update_many(db, &q, list).await)?;
    if let (0, Some(expected)) = (changed, expected) {
        let live = by_key::<M>(&key, None);
        let op = Operation::read("find", M::SCHEMA, live.filter.as_ref()).with_key(&key);
        let exists = dispatch!(db, op, D => D::exists(db, &live).await)?;
        return Err(crate::version::lost(&*db, M::SCHEMA, key, &expected, exists).await);
    }
    Ok(changed)
}

/// Clears the stamp of the soft-deleted row with primary-key values `key`, then reads it back.
async fn restore_key<M: Model, E: Executor>(mut db: E, key: Vec<Value>) -> Result<M> {
    restore_on(&mut db, key).await
}

/// [`restore_key`] on any executor (see [`insert_rows`]).
async fn restore_on<M: Model>(mut db: &mut dyn Executor, key: Vec<Value>) -> Result<M> {
    let Some(stamp) = M::SCHEMA.soft_delete else {
        return Err(Error::Config(format!(
            "{}: restore needs a #[model(soft_delete)] field; the model has none",
            M::SCHEMA.name
        )));
    };
    let q = by_key::<M>(&key, None).only_deleted();
    let list = vec![crate::query::Assign::SetNull { field: stamp }];
    let db = &mut db;
    let op = Operation::write("restore", M::SCHEMA, q.filter.as_ref()).with_key(&key);
    let changed = dispatch!(db, op, D => D::update_many(db, &q, list).await)?;
    if changed == 0 {
        return Err(Error::NotFound { model: M::SCHEMA.name });
    }
    let op = Operation::write("restore", M::SCHEMA, None).with_key(&key);
    dispatch!(db, op, D => D::get::<M, _>(db, key).await)?.ok_or(Error::NotFound { model: M::SCHEMA.name })
}
