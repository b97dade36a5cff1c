//! The driver of a build without any store feature (models, schemas, validation, DTOs and
//! migration files only). No executor reaches it — [`Target`](crate::db::Target) has no
//! variants then — so every operation refuses with [`Error::Unsupported`].

use super::{Capabilities, Driver};
use crate::crud::Keys;
use crate::db::Executor;
use crate::error::{Error, Result};
use crate::model::Model;
use crate::query::page::KnownKey;
use crate::query::{Assign, Columns, Page, PageRequest, Query, SelectItem};
use crate::schema::ModelSchema;
use crate::value::Value;

/// No store compiled in.
pub(crate) struct NoStore;

fn refused<T>() -> Result<T> {
    Err(Error::Unsupported {
        store: "none",
        what: "running operations: enable a store feature (postgres, sqlite or mongodb)".into(),
    })
}

impl Driver for NoStore {
    const CAPABILITIES: Capabilities = Capabilities {
        raw_sql: false,
        sql_transactions: false,
        savepoints: false,
        returning: false,
        join_table_writes: false,
    };

    async fn get<M: Model, E: Executor>(_: &mut E, _: Vec<Value>) -> Result<Option<M>> {
        refused()
    }

    async fn get_many<M: Model, E: Executor>(_: &mut E, _: &[Vec<Value>]) -> Result<Vec<M>> {
        refused()
    }

    async fn insert<M: Model, E: Executor>(_: &mut E, _: &[M], _: Keys, _: &'static str) -> Result<Vec<M>> {
        refused()
    }

    async fn update<M: Model, E: Executor>(_: &mut E, _: &M) -> Result<M> {
        refused()
    }

    async fn update_fields<M: Model, E: Executor>(_: &mut E, _: Vec<Value>, _: Vec<(usize, Value)>) -> Result<M> {
        refused()
    }

    async fn upsert<M: Model, E: Executor>(_: &mut E, _: &M, _: &[usize]) -> Result<M> {
        refused()
    }

    async fn delete_key<M: Model, E: Executor>(_: &mut E, _: Vec<Value>, _: Option<Value>) -> Result<u64> {
        refused()
    }

    async fn all<M: Model, E: Executor>(_: &mut E, _: &Query<M>) -> Result<Vec<M>> {
        refused()
    }

    async fn first<M: Model, E: Executor>(_: &mut E, _: Query<M>) -> Result<Option<M>> {
        refused()
    }

    async fn one<M: Model, E: Executor>(_: &mut E, _: Query<M>) -> Result<M> {
        refused()
    }

    async fn count<M: Model, E: Executor>(_: &mut E, _: &Query<M>) -> Result<i64> {
        refused()
    }

    async fn exists<M: Model, E: Executor>(_: &mut E, _: &Query<M>) -> Result<bool> {
        refused()
    }

    fn stream<M: Model, E: Executor>(_: E, _: Query<M>) -> impl futures_util::Stream<Item = Result<M>> + Send {
        futures_util::stream::once(async { refused() })
    }

    async fn update_many<M: Model, E: Executor>(_: &mut E, _: &Query<M>, _: Vec<Assign>) -> Result<u64> {
        refused()
    }

    async fn delete_many<M: Model, E: Executor>(_: &mut E, _: &Query<M>) -> Result<u64> {
        refused()
    }

    async fn claim<M: Model, E: Executor>(_: &mut E, _: &Query<M>, _: u64, _: Vec<Assign>) -> Result<Vec<M>> {
        refused()
    }

    async fn select<M: Model, E: Executor, T: Send>(
        _: &mut E,
        _: &Query<M>,
        _: &[SelectItem],
        _: impl FnMut(&mut Columns<'_>) -> Result<T> + Send,
    ) -> Result<Vec<T>> {
        refused()
    }

    async fn link<E: Executor>(_: &mut E, _: &'static ModelSchema, _: [(usize, Value); 2]) -> Result<()> {
        refused()
    }

    async fn unlink<E: Executor>(_: &mut E, _: &'static ModelSchema, _: [(usize, Value); 2]) -> Result<bool> {
        refused()
    }

    async fn traverse<M: Model, E: Executor>(
        _: &mut E,
        _: crate::relation::TreeLinks,
        _: crate::relation::Direction,
        _: Value,
        _: u32,
    ) -> Result<Vec<M>> {
        refused()
    }

    async fn paginate<M: Model, E: Executor>(
        _: &mut E,
        _: Query<M>,
        _: PageRequest,
        _: Option<&KnownKey>,
    ) -> Result<Page<M>> {
        refused()
    }
}
