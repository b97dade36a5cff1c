//! # polystore
//!
//! One annotated struct, kept in PostgreSQL, SQLite (the embedded default), MongoDB and Redis.
//! `#[derive(Model)]` turns a struct into a static schema description, typed field handles and
//! a row decoder; this crate interprets that description: SQL per dialect, DDL, CRUD,
//! transactions and typed queries.
//!
//! ```no_run
//! use polystore::prelude::*;
//!
//! #[derive(Model, Debug, Clone)]
//! #[model(index(email, unique))]
//! pub struct User {
//!     #[model(primary_key, generated)]
//!     pub id: i64,
//!     pub email: String,
//!     pub age: i32,
//! }
//!
//! # async fn run() -> polystore::Result<()> {
//! let db = Db::connect("sqlite::memory:").await?;
//! db.create_all(&[User::SCHEMA]).await?;
//! let ada = User { id: 0, email: "ada@example.com".into(), age: 36 }.insert(&db).await?;
//! let adults = User::query().filter(User::AGE.ge(18)).order_by(User::EMAIL.asc()).all(&db).await?;
//! assert_eq!(adults[0].id, ada.id);
//! # Ok(()) }
//! ```
//!
//! The modules follow the pipeline: [`schema`] (what the derive emits), [`value`] (Rust ↔
//! stored values), [`query`] (the store-neutral query), [`sql`] (dialects, statements, DDL),
//! [`db`] (handles, transactions) and the execution point that every statement passes through.

#![warn(missing_docs)]
// A build without any store feature (models, schemas, validation, DTOs and migration files for a
// crate shared between services) compiles the operation layer against a driver that refuses
// everything: what only the stores use is dead there, by design.
#![cfg_attr(
    not(any(feature = "postgres", feature = "sqlite", feature = "mongodb")),
    allow(dead_code, unused_imports, unused_variables, unreachable_code)
)]

/// `#[compiled_here]` on an `async fn`: the function's body is compiled in polystore itself
/// rather than in the crates using it. An `async fn` whose future is only awaited from generic
/// code is never compiled in its own crate (nothing there polls it): every crate instantiating
/// that generic code compiles a private copy of its body, and compiles it again on each of its
/// own rebuilds.
///
/// With debug assertions (the unoptimized `dev` profile, where rebuild time matters) the
/// function returns the body's future boxed, so that the body is compiled once, here.
/// Optimized builds return the body's future itself, inlined: boxing would copy the whole
/// future to the heap on every call (+70 % instructions on a one-row read).
///
/// The parameters are plain `name: Type`; at most one lifetime parameter, the future's
/// lifetime (`'static` without one). See `polystore-macros/src/compiled.rs`.
pub(crate) use polystore_macros::compiled_here;

// Lets the derives' `::polystore::…` paths resolve inside this crate's own tests.
extern crate self as polystore;

mod addr;
pub mod cache;
mod crud;
pub mod db;
pub mod driver;
pub mod error;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
mod exec;
pub mod hooks;
pub mod lock;
pub mod migrate;
pub mod model;
pub mod object_id;
pub mod observe;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub mod partition;
mod patch;
pub mod query;
pub mod relation;
#[cfg(feature = "postgres")]
pub mod replica;
pub mod schema;
mod soft_delete;
pub mod sql;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub mod tenant;
pub mod validate;
pub mod value;
mod version;

#[cfg(feature = "mongodb")]
pub mod mongo;
#[cfg(feature = "redis")]
pub mod redis;

pub use cache::{Cache, CachedExt, IndexedExt};
pub use crud::{AnyField, ModelExt};
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub use db::{Backend, Db, PoolConfig, Tx};
pub use db::{Executor, Stats};
pub use driver::{Routed, Router};
pub use error::{ConstraintKind, Error, ErrorClass, Result, ValueError};
pub use hooks::{Hook, HookCx, Hooks};
/// The migration command line, also reachable as `polystore::migrate::cli`.
#[cfg(feature = "cli")]
pub use migrate::cli;
pub use model::{Field, Model, RowReader};
pub use object_id::ObjectId;
pub use polystore_macros::{Embedded, Enum, Model, Row};
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub use query::raw;
pub use query::{Cursor, Expr, Order, Page, PageRequest, Query};
pub use relation::{Rel, Relation};
#[cfg(feature = "postgres")]
pub use replica::{ReplicatedDb, SessionToken};
pub use schema::{
    ColumnType, DistributionKind, DistributionSchema, ModelSchema, PartitionKind, PartitionSchema, PartitionStep,
    PartitionValue, Scalar,
};
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub use tenant::{ShardCheck, TenantDb};
pub use validate::{RuleResult, ValidationReport, Violation};
pub use value::{FieldType, TextEnum, ToParam, Value, ValueRef};

/// What most code needs: `use polystore::prelude::*;`.
pub mod prelude {
    pub use crate::query::{
        CalcAggregates as _, DatePart, FieldAggregates as _, TimeUnit, case_when, coalesce, concat, count_all, exists,
        lit, not_exists,
    };
    pub use crate::{
        AnyField, Cursor, Embedded, Enum, Error, Executor, Expr, Field, FieldType, HookCx, Hooks, Model, ModelExt,
        Page, PageRequest, Query, Rel, Relation, Result,
    };
    pub use crate::{Cache, CachedExt, IndexedExt};
    #[cfg(any(feature = "postgres", feature = "sqlite"))]
    pub use crate::{Db, Tx};
}

/// Items the derive macros refer to. Not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::db::Executor;
    pub use crate::error::{Error, ValueError};
    pub use crate::hooks::{Hook, HookCx, Hooks};
    pub use crate::model::BoxFuture;
    pub use crate::model::{Ch, Field, HasField, Model, RowReader};
    pub use crate::patch::{double_option, update_fields};
    pub use crate::relation::{Many, MaybeOne, One, Rel, load_links};
    pub use crate::schema::{RefAction, RelationKind, RelationSchema, ThroughSchema};

    /// A key field's value (for relation matching; keys are scalars, which always encode).
    #[inline]
    pub fn key_value<T: FieldType>(value: &T) -> Value {
        value.to_value().unwrap_or(Value::Null)
    }

    /// Asserts that a relation's target is a model.
    pub const fn assert_model<T: Model>() {}

    /// Checks that a foreign-key field `F` can hold the target's key `K` (`K` or `Option<K>`).
    pub fn assert_foreign_key<K, F: ForeignKey<K>>(_: &F) {}

    /// A field type that can reference a key of type `K`.
    #[diagnostic::on_unimplemented(
        message = "foreign key of type `{Self}` cannot reference a primary key of type `{K}`",
        label = "the foreign key's type must be the target's key type `{K}` (or `Option<{K}>`)",
        note = "change the foreign-key field's type to match the related model's primary key"
    )]
    pub trait ForeignKey<K> {}
    impl<K> ForeignKey<K> for K {}
    impl<K> ForeignKey<K> for Option<K> {}
    pub use crate::query::{Columns, Projection};
    pub use crate::schema::Registration;
    pub use crate::schema::{
        AutoTimestamp, CachePolicy, Check, ColumnType, DefaultValue, DistributionKind, DistributionSchema, FieldSchema,
        IndexSchema, ModelSchema, RedisIndex, Scalar,
    };
    pub use crate::schema::{
        PartitionKind, PartitionSchema, PartitionStep, PartitionValue, partition_int_column, partition_time_column,
    };
    #[cfg(feature = "validate")]
    pub use crate::validate::run_validator;
    pub use crate::validate::{ValidationReport, run_rule};
    pub use crate::value::ToParam;
    pub use crate::value::{
        FieldType, TextEnum, Value, ValueRef, embedded_from_value, embedded_to_value, enum_from_value, enum_to_value,
    };
    pub use inventory;
    pub use serde;
    pub use std::result::Result;
    pub use std::time::Duration;
    pub use std::vec::Vec;

    /// Field number `index` of a model as a value, naming the model and field on failure.
    #[inline]
    pub fn field_value<T: FieldType>(value: &T, schema: &'static ModelSchema, index: usize) -> Result<Value, Error> {
        encoded(value.to_value(), schema, index)
    }

    /// Names the model and field `index` in an encoding failure (of a [`Value`] or a
    /// [`ValueRef`]).
    #[inline]
    pub fn encoded<V>(value: Result<V, ValueError>, schema: &'static ModelSchema, index: usize) -> Result<V, Error> {
        value.map_err(|source| Error::Encode { model: schema.name, field: schema.fields[index].name, source })
    }

    /// Asserts that a generated key has an integer type.
    pub const fn assert_generated_key<T: GeneratedKey>() {}

    /// Asserts that an automatic timestamp field has a timestamp type.
    pub const fn assert_timestamp<T: AutoTimestampType>() {}

    /// Asserts that an optimistic-locking `version` field has an integer type.
    pub const fn assert_version<T: VersionField>() {}

    /// Asserts that a `soft_delete` stamp is an `Option<DateTime<Utc>>`.
    pub const fn assert_soft_delete<T: SoftDeleteField>() {}

    /// The type a `soft_delete` stamp can have.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot be a soft-delete stamp",
        label = "#[model(soft_delete)] needs `Option<DateTime<Utc>>`",
        note = "the stamp is NULL while the row is live and holds the deletion time once it is deleted"
    )]
    pub trait SoftDeleteField {}
    impl SoftDeleteField for Option<chrono::DateTime<chrono::Utc>> {}

    /// Integer types an optimistic-locking counter can have.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot be an optimistic-locking version",
        label = "#[model(version)] needs an integer type",
        note = "use i16, i32 or i64: every write checks the stored version and adds one to it"
    )]
    pub trait VersionField {}
    impl VersionField for i16 {}
    impl VersionField for i32 {}
    impl VersionField for i64 {}

    /// Integer types a database can generate keys for.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot be a database-generated key",
        label = "#[model(generated)] needs an integer type",
        note = "use i16, i32 or i64, or drop `generated` and assign keys yourself"
    )]
    pub trait GeneratedKey {}
    impl GeneratedKey for i16 {}
    impl GeneratedKey for i32 {}
    impl GeneratedKey for i64 {}

    /// Types an automatic timestamp can have.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot hold an automatic timestamp",
        label = "#[model(created_at)] / #[model(updated_at)] need a timestamp type",
        note = "use chrono::DateTime<Utc> or chrono::NaiveDateTime (optionally in an Option)"
    )]
    pub trait AutoTimestampType {}
    impl AutoTimestampType for chrono::DateTime<chrono::Utc> {}
    impl AutoTimestampType for chrono::NaiveDateTime {}
    impl<T: AutoTimestampType> AutoTimestampType for Option<T> {}

    /// Asserts that a `length` rule sits on text or a list.
    pub const fn assert_has_length<T: HasLength>() {}

    /// Types a `length` rule applies to.
    #[diagnostic::on_unimplemented(
        message = "`length` does not apply to `{Self}`",
        label = "#[validate(length(..))] needs text or a list",
        note = "use it on String or Vec<T> (optionally in an Option); for numbers use range(min = .., max = ..)"
    )]
    pub trait HasLength {}
    impl HasLength for String {}
    impl<T> HasLength for Vec<T> {}
    impl<T: HasLength> HasLength for Option<T> {}

    /// Asserts that a `range` rule sits on a number.
    pub const fn assert_numeric<T: Numeric>() {}

    /// Types a `range` rule applies to.
    #[diagnostic::on_unimplemented(
        message = "`range` does not apply to `{Self}`",
        label = "#[validate(range(..))] needs a number",
        note = "use it on an integer, float or Decimal field (optionally in an Option); for text use length(..)"
    )]
    pub trait Numeric {}
    impl Numeric for i16 {}
    impl Numeric for i32 {}
    impl Numeric for i64 {}
    impl Numeric for f32 {}
    impl Numeric for f64 {}
    impl Numeric for rust_decimal::Decimal {}
    impl<T: Numeric> Numeric for Option<T> {}

    /// Asserts that a text rule (`email`, `url`, `contains`) sits on text.
    pub const fn assert_text<T: Text>() {}

    /// Types a text rule applies to.
    #[diagnostic::on_unimplemented(
        message = "this rule needs text, not `{Self}`",
        label = "#[validate(email)], url and contains apply to String fields",
        note = "use it on a String or Option<String> field"
    )]
    pub trait Text {}
    impl Text for String {}
    impl<T: Text> Text for Option<T> {}

    /// Asserts that a `sorted_set` field has a numeric type.
    pub const fn assert_score<T: Score>() {}

    /// Types a Redis sorted set can use as the score.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot be a sorted-set score",
        label = "#[model(sorted_set)] needs a numeric field",
        note = "use i16, i32, i64, f32 or f64 (optionally in an Option)"
    )]
    pub trait Score {}
    impl Score for i16 {}
    impl Score for i32 {}
    impl Score for i64 {}
    impl Score for f32 {}
    impl Score for f64 {}
    impl<T: Score> Score for Option<T> {}
}

/// The query guide, `docs/queries.md`, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../docs/queries.md")]
pub struct QueriesGuide;

/// The caching guide, `docs/caching.md`, compiled as doctests.
#[cfg(all(doctest, feature = "redis"))]
#[doc = include_str!("../../docs/caching.md")]
pub struct CachingGuide;

/// The modeling guide, `docs/modeling.md`, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../docs/modeling.md")]
pub struct ModelingGuide;

/// The validation guide, `docs/validation.md`, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../docs/validation.md")]
pub struct ValidationGuide;

/// The DTO guide, `docs/dtos.md`, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../docs/dtos.md")]
pub struct DtosGuide;

/// The migrations guide, `docs/migrations.md`, compiled as doctests.
#[cfg(all(doctest, feature = "cli"))]
#[doc = include_str!("../../docs/migrations.md")]
pub struct MigrationsGuide;

/// The README's tour, compiled as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct Readme;

/// The scaling guide, `docs/scaling.md`, compiled as doctests.
#[cfg(all(doctest, feature = "postgres", feature = "mongodb", feature = "redis"))]
#[doc = include_str!("../../docs/scaling.md")]
pub struct ScalingGuide;

/// The MongoDB guide, `docs/mongodb.md`, compiled as doctests.
#[cfg(all(doctest, feature = "mongodb"))]
#[doc = include_str!("../../docs/mongodb.md")]
pub struct MongodbGuide;

/// The monitoring guide, `docs/monitoring.md`, compiled as doctests.
#[cfg(all(doctest, feature = "postgres", feature = "mongodb"))]
#[doc = include_str!("../../docs/monitoring.md")]
pub struct MonitoringGuide;

/// The relations guide, `docs/relations.md`, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../docs/relations.md")]
pub struct RelationsGuide;
