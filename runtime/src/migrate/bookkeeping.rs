//! The bookkeeping tables and their statements: `_polystore_migrations` (one row per applied
//! migration: name, checksum, applied_at) and `_polystore_data_progress` (one row per data
//! step: cursor, rows processed, done). Both are described by static schemas, so their DDL is
//! written by the same code as the models' tables, per dialect.

use chrono::{DateTime, Utc};

use crate::db::{Backend, Executor, Tx};
use crate::exec;
use crate::schema::{ColumnType, FieldSchema, ModelSchema, Scalar};
use crate::sql::{Dialect, Param, Statement};
use crate::value::Value;

use super::MigrateError;
use super::data;

const TEXT: ColumnType = ColumnType::scalar(Scalar::Text);
const TIME: ColumnType = ColumnType::scalar(Scalar::TimestampTz);

/// The bookkeeping table: one row per applied migration.
pub(crate) static MIGRATIONS: ModelSchema = ModelSchema {
    name: "PolystoreMigration",
    table: "_polystore_migrations",
    fields: &[
        FieldSchema::plain("name", TEXT),
        FieldSchema::plain("checksum", TEXT),
        FieldSchema::plain("applied_at", TIME),
    ],
    primary_key: &[0],
    indexes: &[],
    ..ModelSchema::EMPTY
};

/// Data-step progress: one row per (migration, step).
pub(crate) static PROGRESS: ModelSchema = ModelSchema {
    name: "PolystoreDataProgress",
    table: "_polystore_data_progress",
    fields: &[
        FieldSchema::plain("migration", TEXT),
        FieldSchema::plain("step", TEXT),
        FieldSchema::plain("cursor", TEXT.nullable()),
        FieldSchema::plain("processed", ColumnType::scalar(Scalar::I64)),
        FieldSchema::plain("done", ColumnType::scalar(Scalar::Bool)),
        FieldSchema::plain("updated_at", TIME),
    ],
    primary_key: &[0, 1],
    indexes: &[],
    ..ModelSchema::EMPTY
};

/// A bookkeeping row.
#[derive(Debug, Clone)]
pub(crate) struct Applied {
    pub(crate) name: String,
    pub(crate) checksum: String,
    pub(crate) at: DateTime<Utc>,
}

/// Takes the migration lock for the rest of a data step's batch transaction: the advisory
/// lock on PostgreSQL; on SQLite a write to the step's progress row as the first statement,
/// which takes the database's write lock at once.
pub(crate) async fn lock(
    tx: &mut Tx<'static>,
    backend: Backend,
    d: &dyn crate::sql::Dialect,
    migration: &str,
    step: &str,
) -> Result<(), MigrateError> {
    let stmt = match backend {
        Backend::Postgres => Statement {
            sql: "SELECT pg_advisory_xact_lock(hashtext(current_schema() || '._polystore_migrations'))".to_owned(),
            params: Vec::new(),
        },
        Backend::Sqlite => Statement {
            sql: format!(
                "UPDATE \"_polystore_data_progress\" SET updated_at = updated_at WHERE migration = {} AND step = {}",
                ph(d, 1),
                ph(d, 2)
            ),
            params: vec![text(migration), text(step)],
        },
    };
    exec::execute(&mut &mut *tx, "migrate_lock", Some(&PROGRESS), stmt).await?;
    Ok(())
}

pub(crate) fn ph(d: &dyn crate::sql::Dialect, n: usize) -> String {
    let mut s = String::new();
    d.placeholder(&mut s, n);
    s
}

fn placeholders(d: &dyn crate::sql::Dialect, n: usize) -> String {
    (1..=n).map(|i| ph(d, i)).collect::<Vec<_>>().join(", ")
}

pub(crate) fn text(s: &str) -> Param {
    Param { value: Value::Text(s.to_owned()), ty: TEXT }
}

fn now() -> Param {
    Param { value: Value::TimestampTz(Utc::now()), ty: TIME }
}

/// The applied migrations, in order.
pub(crate) async fn applied<E: Executor>(db: &mut E) -> Result<Vec<Applied>, MigrateError> {
    let sql = "SELECT name, checksum, applied_at FROM \"_polystore_migrations\" ORDER BY name";
    let stmt = Statement { sql: sql.to_owned(), params: Vec::new() };
    let rows = exec::fetch_with(db, "migrate_applied", Some(&MIGRATIONS), stmt, |row| {
        let get = |i: usize, ty| row.value(i, ty).map_err(|e| crate::model::decode_error(&MIGRATIONS, i, e));
        match (get(0, TEXT)?, get(1, TEXT)?, get(2, TIME)?) {
            (Value::Text(name), Value::Text(checksum), Value::TimestampTz(at)) => Ok(Applied { name, checksum, at }),
            _ => Err(crate::Error::Database { code: None, message: "unexpected bookkeeping row".into() }),
        }
    })
    .await?;
    Ok(rows)
}

/// Unfinished data steps: (migration, step, processed).
pub(crate) async fn data_pending<E: Executor>(db: &mut E) -> Result<Vec<(String, String, u64)>, MigrateError> {
    let sql =
        "SELECT migration, step, processed FROM \"_polystore_data_progress\" WHERE NOT done ORDER BY migration, step";
    let stmt = Statement { sql: sql.to_owned(), params: Vec::new() };
    let rows = exec::fetch_with(db, "migrate_progress", Some(&PROGRESS), stmt, |row| {
        let get = |i: usize, ty| row.value(i, ty).map_err(|e| crate::model::decode_error(&PROGRESS, i, e));
        match (get(0, TEXT)?, get(1, TEXT)?, get(2, ColumnType::scalar(Scalar::I64))?) {
            (Value::Text(m), Value::Text(s), Value::I64(n)) => Ok((m, s, n.max(0) as u64)),
            _ => Err(crate::Error::Database { code: None, message: "unexpected progress row".into() }),
        }
    })
    .await?;
    Ok(rows)
}

/// A step's (cursor, processed, done), if the step has a progress row.
pub(crate) async fn read_progress(
    tx: &mut Tx<'static>,
    d: &dyn crate::sql::Dialect,
    migration: &str,
    step: &str,
) -> Result<Option<(Option<String>, u64, bool)>, MigrateError> {
    let sql = format!(
        "SELECT cursor, processed, done FROM \"_polystore_data_progress\" WHERE migration = {} AND step = {}",
        ph(d, 1),
        ph(d, 2)
    );
    let stmt = Statement { sql, params: vec![text(migration), text(step)] };
    let rows = exec::fetch_with(&mut &mut *tx, "migrate_progress", Some(&PROGRESS), stmt, |row| {
        let get = |i: usize, ty| row.value(i, ty).map_err(|e| crate::model::decode_error(&PROGRESS, i, e));
        let cursor = match get(0, TEXT.nullable())? {
            Value::Text(c) => Some(c),
            _ => None,
        };
        let processed = match get(1, ColumnType::scalar(Scalar::I64))? {
            Value::I64(n) => n.max(0) as u64,
            _ => 0,
        };
        Ok((cursor, processed, get(2, ColumnType::scalar(Scalar::Bool))? == Value::Bool(true)))
    })
    .await?;
    Ok(rows.into_iter().next())
}

/// Records a committed batch.
pub(crate) async fn write_progress(
    tx: &mut Tx<'static>,
    d: &dyn crate::sql::Dialect,
    migration: &str,
    step: &str,
    batch: &data::Batch,
    before: u64,
) -> Result<(), MigrateError> {
    let sql = format!(
        "UPDATE \"_polystore_data_progress\" SET cursor = {}, processed = {}, done = {}, updated_at = {} \
         WHERE migration = {} AND step = {}",
        ph(d, 1),
        ph(d, 2),
        ph(d, 3),
        ph(d, 4),
        ph(d, 5),
        ph(d, 6)
    );
    let processed = i64::try_from(before + batch.processed).unwrap_or(i64::MAX);
    let params = vec![
        Param { value: batch.next.clone().map_or(Value::Null, Value::Text), ty: TEXT.nullable() },
        Param { value: Value::I64(processed), ty: ColumnType::scalar(Scalar::I64) },
        Param { value: Value::Bool(batch.next.is_none()), ty: ColumnType::scalar(Scalar::Bool) },
        now(),
        text(migration),
        text(step),
    ];
    exec::execute(&mut &mut *tx, "migrate_progress", Some(&PROGRESS), Statement { sql, params }).await?;
    Ok(())
}

/// Records `migration` as applied, with a progress row (not done) for each of its data steps.
pub(crate) async fn record_applied<E: Executor>(
    e: &mut E,
    d: &dyn Dialect,
    migration: &str,
    checksum: &str,
    steps: &[String],
) -> Result<(), MigrateError> {
    let insert =
        format!("INSERT INTO \"_polystore_migrations\" (name, checksum, applied_at) VALUES ({})", placeholders(d, 3));
    let params = vec![text(migration), text(checksum), now()];
    exec::execute(e, "migrate_record", Some(&MIGRATIONS), Statement { sql: insert, params }).await?;
    for step in steps {
        let insert = format!(
            "INSERT INTO \"_polystore_data_progress\" (migration, step, cursor, processed, done, updated_at) \
             VALUES ({}, {}, NULL, 0, {}, {})",
            ph(d, 1),
            ph(d, 2),
            d.bool_literal(false),
            ph(d, 3)
        );
        let params = vec![text(migration), text(step), now()];
        exec::execute(e, "migrate_record", Some(&PROGRESS), Statement { sql: insert, params }).await?;
    }
    Ok(())
}

/// Forgets `migration` and its data steps' progress.
pub(crate) async fn record_reverted<E: Executor>(
    e: &mut E,
    d: &dyn Dialect,
    migration: &str,
) -> Result<(), MigrateError> {
    for (schema, column) in [(&PROGRESS, "migration"), (&MIGRATIONS, "name")] {
        let delete = format!("DELETE FROM \"{}\" WHERE {column} = {}", schema.table, ph(d, 1));
        let stmt = Statement { sql: delete, params: vec![text(migration)] };
        exec::execute(e, "migrate_record", Some(schema), stmt).await?;
    }
    Ok(())
}
