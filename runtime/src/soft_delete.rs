//! Soft delete (`#[model(soft_delete)]`): the store-neutral part every read and write path
//! shares. A soft-delete model has one `Option<DateTime<Utc>>` stamp
//! ([`ModelSchema::soft_delete`]); a row is *live* while it is NULL and *deleted* once set.
//!
//! Reads add the stamp's condition to whatever filter they run ([`finish`]): live rows unless
//! the query asks for [`Rows::WithDeleted`] or [`Rows::OnlyDeleted`]. `delete`, `delete_by_key`
//! and `delete_many` become updates that set the stamp (see `crud.rs`); `force_delete` keeps the
//! real delete and `restore` clears the stamp. Models without a stamp never get past the check
//! of [`ModelSchema::soft_delete`].

use std::borrow::Cow;

use crate::query::Node;
use crate::schema::ModelSchema;

/// Which rows of a soft-delete model a query reads (models without a stamp read every row,
/// whatever the mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Rows {
    /// Live rows only (the stamp is NULL): the default.
    #[default]
    Live,
    /// Live and soft-deleted rows alike.
    WithDeleted,
    /// Soft-deleted rows only (the stamp is set).
    OnlyDeleted,
}

/// The condition `rows` puts on `schema`'s rows, if any.
pub(crate) fn condition(schema: &ModelSchema, rows: Rows) -> Option<Node> {
    let field = schema.soft_delete?;
    match rows {
        Rows::Live => Some(Node::IsNull { field, negated: false }),
        Rows::OnlyDeleted => Some(Node::IsNull { field, negated: true }),
        Rows::WithDeleted => None,
    }
}

/// `filter` AND the condition of `rows` on `schema`: what a read of `schema` runs.
pub(crate) fn finish<'a>(schema: &ModelSchema, rows: Rows, filter: Option<&'a Node>) -> Option<Cow<'a, Node>> {
    match (condition(schema, rows), filter) {
        (None, f) => f.map(Cow::Borrowed),
        (Some(c), None) => Some(Cow::Owned(c)),
        (Some(c), Some(f)) => Some(Cow::Owned(Node::And(vec![f.clone(), c]))),
    }
}

/// [`finish`] with an owned filter.
pub(crate) fn finish_owned(schema: &ModelSchema, rows: Rows, filter: Option<Node>) -> Option<Node> {
    match (condition(schema, rows), filter) {
        (None, f) => f,
        (Some(c), None) => Some(c),
        (Some(c), Some(f)) => Some(Node::And(vec![f, c])),
    }
}
