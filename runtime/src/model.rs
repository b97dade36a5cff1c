//! The [`Model`] trait that `#[derive(Model)]` implements, and typed field handles.

use std::fmt;
use std::marker::PhantomData;

use crate::db::Executor;
use crate::error::{Error, ValueError};

/// A boxed, sendable future (what async business rules return).
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;
use crate::schema::{FieldSchema, ModelSchema};
use crate::value::{FieldType, Value, ValueRef};

/// A struct stored by polystore. Implemented by `#[derive(Model)]`; the methods are the thin,
/// generated part, everything else (SQL, DDL, CRUD) lives in the runtime and reads
/// [`Model::SCHEMA`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a polystore model",
    label = "this type has no #[derive(Model)]",
    note = "add #[derive(polystore::Model)] to the struct"
)]
pub trait Model: Sized + Send + Sync + Unpin + 'static {
    /// The primary key: the key field's type, or a tuple of them for a composite key.
    type Key: Send + Sync;

    /// The static description of the model.
    const SCHEMA: &'static ModelSchema;

    /// Every field's value, in [`ModelSchema::fields`] order.
    fn to_values(&self) -> Result<Vec<Value>, Error>;

    /// Appends every field's value to `out`, in [`ModelSchema::fields`] order, with text and
    /// JSON borrowed from the row (see [`ValueRef`]): what inserts bind, without the copies
    /// [`Model::to_values`] makes. `#[derive(Model)]` generates it; the default goes through
    /// `to_values`.
    fn values_ref<'a>(&'a self, out: &mut Vec<ValueRef<'a>>) -> Result<(), Error> {
        out.extend(self.to_values()?.into_iter().map(ValueRef::Owned));
        Ok(())
    }

    /// The primary key's values, in key order.
    fn key_values(key: &Self::Key) -> Result<Vec<Value>, Error>;

    /// This row's primary-key value (an array of the parts for a composite key).
    fn primary_key_value(&self) -> Value;

    /// Builds the model from a row or document, reading fields in schema order.
    fn from_reader<R: RowReader>(reader: &mut R) -> Result<Self, Error>;

    /// Checks the model's validation rules (`#[validate(...)]` field rules and
    /// `#[model(rule = ...)]` business rules); every write through polystore calls it first.
    /// Returns [`Error::Validation`] listing every violation.
    fn check_rules(&self) -> Result<(), Error> {
        Ok(())
    }

    /// The position in [`ModelSchema::fields`] of the model's optimistic-locking counter
    /// (`#[model(version)]`), if it has one. Inserts store 1 where the row holds 0; `update`,
    /// patches, `upsert` and `delete` of a row write only while the stored version is the one
    /// the row holds, and add one to it; a lost race is [`Error::StaleVersion`].
    const VERSION_FIELD: Option<usize> = None;

    /// Whether the model declares async business rules (`#[model(async_rule = path)]`).
    const HAS_ASYNC_RULES: bool = false;

    /// Runs the async business rules, which may query the store through `db` (the handle or
    /// transaction the write runs on). Writes call it after [`Model::check_rules`].
    fn check_rules_async<'a>(&'a self, db: &'a mut dyn Executor) -> BoxFuture<'a, Result<(), Error>> {
        let _ = db;
        Box::pin(std::future::ready(Ok(())))
    }

    /// Whether the model has lifecycle hooks (`#[model(hooks)]`, see [`Hooks`](crate::Hooks)).
    /// Writes of a model without them take no hook path at all.
    const HAS_HOOKS: bool = false;

    /// A copy of this row for write hooks to change (`#[model(hooks)]` models are `Clone`).
    /// Not for direct use.
    #[doc(hidden)]
    fn copy_for_hooks(&self) -> Result<Self, Error> {
        crate::cache::codec::model_from_values(self.to_values()?)
    }

    /// Runs the write hook `hook` on this row (`#[model(hooks)]` forwards it to the model's
    /// [`Hooks`](crate::Hooks) impl). Called by polystore's write paths; not for direct use.
    #[doc(hidden)]
    fn run_hook<'a>(
        &'a mut self,
        hook: crate::hooks::Hook,
        cx: &'a mut crate::hooks::HookCx<'_>,
    ) -> BoxFuture<'a, Result<(), Error>> {
        let _ = (hook, cx);
        Box::pin(std::future::ready(Ok(())))
    }
}

/// One character of a field name at the type level: `(Ch<'i'>, Ch<'d'>)` names the field `id`.
/// `#[derive(Model)]` uses it with [`HasField`] to check, at compile time, that the model at the
/// other end of a relation has the field the relation links through.
#[doc(hidden)]
pub struct Ch<const C: char>;

/// `Self` has a stored field named `N` (a tuple of [`Ch`]) whose type is [`HasField::Ty`].
/// Implemented by `#[derive(Model)]` for every stored field; not for use by hand.
#[doc(hidden)]
pub trait HasField<N> {
    /// The field's Rust type.
    type Ty;
    /// The field's value.
    fn field(&self) -> &Self::Ty;
}

/// A source of field values for [`Model::from_reader`]: a SQL row, a MongoDB document.
pub trait RowReader {
    /// Reads field number `field` (its position in [`ModelSchema::fields`]) as a `T`.
    fn read<T: FieldType>(&mut self, field: usize) -> Result<T, Error>;
}

/// Builds the decode error for `field` of `schema`.
pub(crate) fn decode_error(schema: &ModelSchema, field: usize, source: ValueError) -> Error {
    Error::Decode { model: schema.name, field: schema.fields[field].name, source }
}

/// A typed handle to one field of model `M` holding a `T`, e.g. `User::EMAIL`.
///
/// Handles are what queries are built from; using a `Post` field in a `User` query, or comparing
/// an `i32` field with a string, does not compile.
pub struct Field<M, T> {
    index: usize,
    _marker: PhantomData<fn() -> (M, T)>,
}

impl<M, T> Field<M, T> {
    /// The handle of field number `index` (its position in the model's schema). Called by
    /// generated code.
    #[doc(hidden)]
    pub const fn new(index: usize) -> Self {
        Field { index, _marker: PhantomData }
    }

    /// The field's position in the model's schema.
    pub const fn index(&self) -> usize {
        self.index
    }
}

impl<M: Model, T> Field<M, T> {
    /// The field's description.
    pub fn schema(&self) -> &'static FieldSchema {
        &M::SCHEMA.fields[self.index]
    }

    /// The field's Rust name.
    pub fn name(&self) -> &'static str {
        self.schema().name
    }

    /// The column (or document key) it is stored under.
    pub fn column(&self) -> &'static str {
        self.schema().column
    }
}

impl<M, T> Clone for Field<M, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<M, T> Copy for Field<M, T> {}

impl<M: Model, T> fmt::Debug for Field<M, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}::{}", M::SCHEMA.name, self.name())
    }
}
