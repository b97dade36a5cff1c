//! The execution point's row-decoding entries for queries: rows decoded by a caller-given
//! function (projections, aggregates, raw SQL), and row streams with bounded memory. Every
//! statement still passes through [`run`](super::run)'s span and counters.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures_util::{Stream, TryStreamExt as _};
use sqlx::{AssertSqlSafe, Column as _, Row as _, TypeInfo as _};
use tracing::Instrument as _;

#[cfg(feature = "sqlite")]
use super::sqlite_args;
use super::{Params, map_error, run, span};
#[cfg(feature = "postgres")]
use super::{
    forget_statements, is_query, lost_connection, pg_args, pg_connection, pin_server, stale_plan, unpin_server,
};
use crate::db::{Executor, Target};
use crate::error::{Result, ValueError};
use crate::model::{Model, RowReader, decode_error};
use crate::query::ValueRow;
use crate::schema::{ColumnType, ModelSchema};
use crate::sql::Statement;
use crate::value::FieldType;

#[cfg(feature = "postgres")]
impl ValueRow for sqlx::postgres::PgRow {
    fn value(&self, idx: usize, ty: ColumnType) -> Result<crate::value::Value, ValueError> {
        crate::sql::postgres::read(self, idx, ty)
    }
    fn column_index(&self, name: &str) -> Option<usize> {
        self.columns().iter().find(|c| c.name() == name).map(|c| c.ordinal())
    }
    fn column_types(&self) -> Vec<(String, String)> {
        self.columns().iter().map(|c| (c.name().to_owned(), c.type_info().name().to_owned())).collect()
    }
}

#[cfg(feature = "sqlite")]
impl ValueRow for sqlx::sqlite::SqliteRow {
    fn value(&self, idx: usize, ty: ColumnType) -> Result<crate::value::Value, ValueError> {
        crate::sql::sqlite::read(self, idx, ty)
    }
    fn column_index(&self, name: &str) -> Option<usize> {
        self.columns().iter().find(|c| c.name() == name).map(|c| c.ordinal())
    }
    fn column_types(&self) -> Vec<(String, String)> {
        self.columns().iter().map(|c| (c.name().to_owned(), c.type_info().name().to_owned())).collect()
    }
}

/// Reads a model from any driver's row; `columns` maps field positions to column positions
/// when the SELECT list is not ours (raw SQL).
pub(crate) struct ValueReader<'r> {
    /// The row.
    pub row: &'r dyn ValueRow,
    /// The model's schema, for error messages.
    pub schema: &'static ModelSchema,
    /// Column position of each field, if not the identity.
    pub columns: Option<&'r [usize]>,
}

impl RowReader for ValueReader<'_> {
    fn read<T: FieldType>(&mut self, field: usize) -> Result<T> {
        let idx = self.columns.map_or(field, |c| c[field]);
        self.row.value(idx, T::COLUMN).and_then(T::from_value).map_err(|e| decode_error(self.schema, field, e))
    }
}

/// Runs a row-returning statement and decodes each row with `decode`, as the rows stream in.
/// With `limit`, stops reading after that many rows.
pub(crate) async fn fetch_with<T, E, F>(
    e: &mut E,
    op: &'static str,
    schema: Option<&'static ModelSchema>,
    stmt: Statement,
    mut decode: F,
) -> Result<Vec<T>>
where
    E: Executor,
    T: Send,
    F: FnMut(&dyn ValueRow) -> Result<T> + Send,
{
    let (target, stats) = e.target();
    let Statement { sql, params } = stmt;
    dispatch!(target, stats, true, schema, sql, params, |exec, args, sql, reader, system| {
        let sp = span(system, op, schema, &sql);
        let decode = &mut decode;
        run(stats, sp, async move {
            let mut rows =
                sqlx::query_with(AssertSqlSafe(sql), args).persistent(!stats.transaction_pooling()).fetch(exec);
            let mut out = Vec::new();
            while let Some(row) = rows.try_next().await.map_err(|e| map_error(e, system, schema))? {
                out.push(decode(&row)?);
            }
            Ok(out)
        })
        .await
    })
}

/// Streams the rows of `M` a statement returns, decoding each as it arrives: memory stays
/// bounded by one row plus the driver's buffer. The stream owns `db` (a `&Db` or a `&mut Tx`)
/// for as long as it lives.
pub(crate) fn stream_models<M, E>(
    db: E,
    op: &'static str,
    stmt: Result<Statement>,
) -> impl Stream<Item = Result<M>> + Send
where
    M: Model,
    E: Executor,
{
    let slot: Arc<Mutex<Option<Result<M>>>> = Arc::new(Mutex::new(None));
    let out = slot.clone();
    let producer = async move {
        let result: Result<()> = async {
            let mut db = db;
            let stmt = stmt?;
            let schema = M::SCHEMA;
            let (target, stats) = db.target();
            let Statement { sql, params } = stmt;
            dispatch!(target, stats, false, Some(schema), sql, params, |exec, args, sql, reader, system| {
                let sp = span(system, op, Some(schema), &sql);
                crate::observe::admit(sp.shape, Some(&sp.sql))?;
                stats.record_statement();
                // Timed until the last row was handed over (or the stream failed), like a
                // MongoDB cursor; a stream dropped before its end is not timed.
                let started = std::time::Instant::now();
                let mut returned = 0u64;
                let result = async {
                    let mut rows =
                        sqlx::query_with(AssertSqlSafe(sql), args).persistent(!stats.transaction_pooling()).fetch(exec);
                    while let Some(row) = rows.try_next().await.map_err(|e| {
                        stats.record_failure();
                        map_error(e, system, Some(schema))
                    })? {
                        let item = M::from_reader(&mut ValueReader { row: &row, schema, columns: None });
                        returned += 1;
                        Yield::new(&out, item).await;
                    }
                    Ok(())
                }
                .instrument(sp.span)
                .await;
                let outcome = result.as_ref().map(|()| crate::observe::RowCount::Returned(returned));
                crate::observe::finished(stats, sp.shape, &sp.sql, started.elapsed(), outcome);
                result
            })
        }
        .await;
        if let Err(e) = result {
            Yield::new(&out, Err(e)).await;
        }
    };
    Generator { producer: Some(Box::pin(producer)), slot }
}

/// A stream driven by a future that hands items over through a one-item slot: the future
/// parks each item and suspends until the consumer takes it.
struct Generator<T, F> {
    producer: Option<Pin<Box<F>>>,
    slot: Arc<Mutex<Option<T>>>,
}

impl<T, F: Future<Output = ()>> Stream for Generator<T, F> {
    type Item = T;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let this = self.get_mut();
        let Some(producer) = this.producer.as_mut() else { return Poll::Ready(None) };
        let done = producer.as_mut().poll(cx).is_ready();
        if done {
            this.producer = None;
        }
        match this.slot.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(item) => Poll::Ready(Some(item)),
            None if done => Poll::Ready(None),
            None => Poll::Pending,
        }
    }
}

impl<T, F> Unpin for Generator<T, F> {}

/// Parks one item in the slot and suspends once, so the generator returns it.
struct Yield<'a, T> {
    slot: &'a Mutex<Option<T>>,
    item: Option<T>,
}

impl<'a, T> Yield<'a, T> {
    fn new(slot: &'a Arc<Mutex<Option<T>>>, item: T) -> Self {
        Yield { slot, item: Some(item) }
    }
}

impl<T> Future for Yield<'_, T> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        match this.item.take() {
            Some(item) => {
                *this.slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(item);
                Poll::Pending
            }
            None => Poll::Ready(()),
        }
    }
}

impl<T> Unpin for Yield<'_, T> {}
