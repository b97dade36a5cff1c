//! CRUD on SQL stores for every model ([`ModelExt`], implemented for all [`Model`]s). The
//! terminals that run a [`Query`] live in `query/run.rs`.

use std::future::Future;
use std::marker::PhantomData;

use crate::db::Executor;
use crate::error::{Error, Result};
use crate::exec;
use crate::model::{Field, Model};
use crate::query::Query;
use crate::schema::ModelSchema;
use crate::sql::{KeySequenceSql, Statement, build};
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
            #[cfg(feature = "mongodb")]
            if let Some(conn) = crate::mongo::conn(&mut db) {
                return crate::mongo::crud::find::<Self>(conn, &key).await;
            }
            let stmt = find_statement::<Self>(dialect(&mut db), Self::key_values(&key)?);
            exec::fetch_optional_model(&mut db, "find", stmt).await?.ok_or(Error::NotFound { model: Self::SCHEMA.name })
        }
    }

    /// The row with primary key `key`, if there is one.
    fn get<E: Executor>(mut db: E, key: Self::Key) -> impl Future<Output = Result<Option<Self>>> + Send {
        async move {
            #[cfg(feature = "mongodb")]
            if let Some(conn) = crate::mongo::conn(&mut db) {
                return crate::mongo::crud::get::<Self>(conn, &key).await;
            }
            let stmt = find_statement::<Self>(dialect(&mut db), Self::key_values(&key)?);
            exec::fetch_optional_model(&mut db, "find", stmt).await
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
    fn update<E: Executor>(&self, mut db: E) -> impl Future<Output = Result<Self>> + Send {
        async move {
            check_all(self, &mut db).await?;
            #[cfg(feature = "mongodb")]
            if let Some(conn) = crate::mongo::conn(&mut db) {
                let row = crate::mongo::crud::update(conn, self).await?;
                crate::cache::rows_written(&db, std::slice::from_ref(&row)).await;
                return Ok(row);
            }
            let mut values = self.to_values()?;
            build::stamp(Self::SCHEMA, &mut values, chrono::Utc::now(), false);
            let stmt = build::update(dialect(&mut db), Self::SCHEMA, values);
            let row = exec::fetch_optional_model(&mut db, "update", stmt)
                .await?
                .ok_or(Error::NotFound { model: Self::SCHEMA.name })?;
            crate::cache::rows_written(&db, std::slice::from_ref(&row)).await;
            Ok(row)
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
    fn delete<E: Executor>(&self, db: E) -> impl Future<Output = Result<()>> + Send {
        async move {
            let values = self.to_values()?;
            let key: Vec<Value> = Self::SCHEMA.primary_key.iter().map(|&i| values[i].clone()).collect();
            match delete_key::<Self, E>(db, key).await? {
                0 => Err(Error::NotFound { model: Self::SCHEMA.name }),
                _ => Ok(()),
            }
        }
    }

    /// Deletes the row with primary key `key`; returns whether there was one.
    fn delete_by_key<E: Executor>(db: E, key: Self::Key) -> impl Future<Output = Result<bool>> + Send {
        async move { Ok(delete_key::<Self, E>(db, Self::key_values(&key)?).await? > 0) }
    }
}

impl<M: Model> ModelExt for M {}

fn dialect<E: Executor>(db: &mut E) -> &'static dyn crate::sql::Dialect {
    db.target().0.dialect()
}

/// `build::find_by_key` for `M`, with the text rendered once per model and dialect: the
/// statement of `find` / `get` only differs by its key values, and rendering it (quoting every
/// column) cost about a tenth of a find's client-side instructions.
fn find_statement<M: Model>(d: &'static dyn crate::sql::Dialect, key: Vec<Value>) -> Statement {
    type Texts = std::collections::HashMap<(usize, &'static str), String>;
    static TEXTS: std::sync::LazyLock<std::sync::RwLock<Texts>> = std::sync::LazyLock::new(Default::default);
    let id = (std::ptr::from_ref(M::SCHEMA) as usize, d.name());
    let known = TEXTS.read().unwrap_or_else(|p| p.into_inner()).get(&id).cloned();
    match known {
        Some(sql) => {
            let params =
                M::SCHEMA.key_fields().zip(key).map(|(f, value)| crate::sql::Param { value, ty: f.ty }).collect();
            Statement { sql, params }
        }
        None => {
            let stmt = build::find_by_key(d, M::SCHEMA, key);
            TEXTS.write().unwrap_or_else(|p| p.into_inner()).insert(id, stmt.sql.clone());
            stmt
        }
    }
}

/// Runs a row's validation rules, then its async business rules (which may query `db`).
async fn check_all<M: Model, E: Executor>(row: &M, db: &mut E) -> Result<()> {
    row.check_rules()?;
    if M::HAS_ASYNC_RULES {
        row.check_rules_async(db).await?;
    }
    Ok(())
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
    let i = schema.fields.iter().position(|f| f.generated)?;
    let key = match values[i] {
        Value::I16(k) => i64::from(k),
        Value::I32(k) => i64::from(k),
        Value::I64(k) => k,
        _ => return None,
    };
    (key != 0).then_some((i, key))
}

/// Checks one row about to be inserted against `keys`; returns the key it holds when the
/// caller chose it.
pub(crate) fn check_key(schema: &'static ModelSchema, values: &[Value], keys: Keys) -> Result<Option<i64>> {
    match (keys, given_key(schema, values)) {
        (Keys::Assign, Some((i, value))) => {
            Err(Error::GeneratedKeyGiven { model: schema.name, field: schema.fields[i].name, value })
        }
        (Keys::Keep, Some((_, value))) => Ok(Some(value)),
        _ => Ok(None),
    }
}

fn one_row<M: Model>(mut rows: Vec<M>) -> Result<M> {
    rows.pop().ok_or(Error::NotFound { model: M::SCHEMA.name })
}

/// What `insert`, `insert_many` and their `_with_key(s)` variants run.
async fn insert_rows<M: Model, E: Executor>(mut db: E, rows: &[M], keys: Keys, op: &'static str) -> Result<Vec<M>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    for row in rows {
        check_all(row, &mut db).await?;
    }
    #[cfg(feature = "mongodb")]
    if let Some(conn) = crate::mongo::conn(&mut db) {
        let rows = crate::mongo::crud::insert_many(conn, rows, op, keys).await?;
        crate::cache::rows_written(&db, &rows).await;
        return Ok(rows);
    }
    let d = dialect(&mut db);
    let now = chrono::Utc::now();
    let keep = keys == Keys::Keep;
    let per = build::rows_per_statement(d, M::SCHEMA, keep);
    let mut stmts = Vec::with_capacity(rows.len().div_ceil(per));
    let mut max_key = None;
    for chunk in rows.chunks(per) {
        let mut batch = Vec::with_capacity(chunk.len());
        for row in chunk {
            let mut values = row.to_values()?;
            max_key = max_key.max(check_key(M::SCHEMA, &values, keys)?);
            build::stamp(M::SCHEMA, &mut values, now, true);
            batch.push(values);
        }
        stmts.push(if keep {
            build::insert_with_keys(d, M::SCHEMA, batch)
        } else {
            build::insert(d, M::SCHEMA, batch)
        });
    }
    write_rows::<M, E>(db, op, stmts, max_key).await
}

async fn upsert_by<M: Model, E: Executor>(row: &M, mut db: E, conflict: &[usize]) -> Result<M> {
    check_all(row, &mut db).await?;
    #[cfg(feature = "mongodb")]
    if let Some(conn) = crate::mongo::conn(&mut db) {
        let row = crate::mongo::crud::upsert(conn, row, conflict).await?;
        crate::cache::rows_written(&db, std::slice::from_ref(&row)).await;
        return Ok(row);
    }
    let mut values = row.to_values()?;
    // Conflicting on the primary key writes the key, a generated one too (see `build::upsert`).
    let max_key = if conflict == M::SCHEMA.primary_key { check_key(M::SCHEMA, &values, Keys::Keep)? } else { None };
    build::stamp(M::SCHEMA, &mut values, chrono::Utc::now(), true);
    let d = dialect(&mut db);
    // A chosen generated key the sequence already handed out (the usual case: updating a row
    // it created) is written in one statement, guarded by that very test; only a key beyond
    // the sequence takes the locked path that advances it.
    if let Some(key) = max_key.filter(|&k| k >= 1)
        && let Some(seq) = key_sequence(d, M::SCHEMA, key)
        && let Some(guarded) = build::upsert_with_generated_key(d, M::SCHEMA, values.clone(), key)
    {
        let rows = exec::fetch_models::<M, _>(&mut db, "upsert", guarded).await?;
        if !rows.is_empty() {
            crate::cache::rows_written(&db, &rows).await;
            return one_row(rows);
        }
        let stmt = build::upsert(d, M::SCHEMA, values, conflict);
        return one_row(run_atomically::<M, E>(db, "upsert", vec![stmt], Some(seq)).await?);
    }
    let moves_key = conflict != M::SCHEMA.primary_key
        && !M::SCHEMA.key_fields().any(|f| f.generated)
        && crate::cache::caches(&db, M::SCHEMA);
    if moves_key {
        // The conflicting row may take the written key: its old key is invalidated too.
        let stmt = build::upsert(d, M::SCHEMA, values.clone(), conflict);
        return one_row(crate::cache::upsert_moving_key::<M, E>(&mut db, &values, conflict, stmt).await?);
    }
    let stmt = build::upsert(d, M::SCHEMA, values, conflict);
    one_row(write_rows::<M, E>(db, "upsert", vec![stmt], max_key).await?)
}

/// The dialect's statements for keeping the key sequence ahead of `max_key`, when the model
/// has a generated key and the dialect needs them.
fn key_sequence(d: &dyn crate::sql::Dialect, schema: &ModelSchema, max_key: i64) -> Option<KeySequenceSql> {
    let key = schema.fields.iter().find(|f| f.generated)?;
    d.key_sequence_sql(schema.table, key.column, max_key)
}

/// Runs row-returning write statements: a single one alone, several in one transaction.
/// When they write generated keys up to `max_key` chosen by the caller and the key sequence
/// has not reached that far, the transaction takes the dialect's sequence lock first and
/// advances the sequence after the writes.
async fn write_rows<M: Model, E: Executor>(
    mut db: E,
    op: &'static str,
    mut stmts: Vec<Statement>,
    max_key: Option<i64>,
) -> Result<Vec<M>> {
    let mut sequence = None;
    // Sequences hand out keys from 1: keys below cannot collide with generated ones.
    if let Some(seq) = max_key.filter(|&k| k >= 1).and_then(|k| key_sequence(dialect(&mut db), M::SCHEMA, k)) {
        let last = exec::fetch_i64(&mut db, "key_sequence", M::SCHEMA, seq.last.clone()).await?;
        if max_key.is_some_and(|k| k > last) {
            sequence = Some(seq);
        }
    }
    if sequence.is_none() && stmts.len() == 1 {
        let rows = exec::fetch_models(&mut db, op, stmts.remove(0)).await?;
        crate::cache::rows_written(&db, &rows).await;
        return Ok(rows);
    }
    run_atomically::<M, E>(db, op, stmts, sequence).await
}

async fn delete_key<M: Model, E: Executor>(mut db: E, key: Vec<Value>) -> Result<u64> {
    #[cfg(feature = "mongodb")]
    if let Some(conn) = crate::mongo::conn(&mut db) {
        let deleted = crate::mongo::crud::delete_key::<M>(conn, key.clone()).await?;
        crate::cache::rows_deleted(&db, M::SCHEMA, vec![key]).await;
        return Ok(deleted);
    }
    let stmt = build::delete_by_key(dialect(&mut db), M::SCHEMA, key.clone());
    let deleted = exec::execute(&mut db, "delete", Some(M::SCHEMA), stmt).await?;
    crate::cache::rows_deleted(&db, M::SCHEMA, vec![key]).await;
    Ok(deleted)
}

/// Runs several row-returning statements in one transaction (a savepoint when already inside
/// one), so that a failure leaves nothing behind; inside the key `sequence`'s lock, advancing
/// it afterwards, when given.
async fn run_atomically<M: Model, E: Executor>(
    mut db: E,
    op: &'static str,
    stmts: Vec<Statement>,
    sequence: Option<KeySequenceSql>,
) -> Result<Vec<M>> {
    let mut tx = crate::db::begin_on(&mut db).await?;
    if let Some(seq) = &sequence {
        exec::execute(&mut &mut tx, "key_sequence", Some(M::SCHEMA), seq.lock.clone()).await?;
    }
    let mut out = Vec::new();
    for stmt in stmts {
        out.extend(exec::fetch_models::<M, _>(&mut &mut tx, op, stmt).await?);
    }
    if let Some(seq) = sequence {
        exec::execute(&mut &mut tx, "key_sequence", Some(M::SCHEMA), seq.advance).await?;
    }
    crate::cache::rows_written(&&mut tx, &out).await;
    tx.commit().await?;
    Ok(out)
}
