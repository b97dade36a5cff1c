//! Derive macros for polystore: `#[derive(Model)]`, `#[derive(Enum)]`, `#[derive(Embedded)]` and
//! `#[derive(Row)]`.
//!
//! Each derive runs the same pipeline, one module per stage:
//! [`attr`] (darling receivers: what the user wrote) → [`ir`] (the validated model: fields,
//! keys and indexes resolved to positions, spans kept; cross-field rules live in [`check`]) →
//! [`expand`] (a `static` schema description plus a few thin impls). Errors are collected, never
//! returned at the first one, and each sits on the narrowest span available. The generated code
//! refers to the runtime only through `polystore::__private`.
//!
//! Users depend on `polystore`, which re-exports these derives; see its documentation.

mod attr;
mod check;
mod compiled;
mod distribution;
mod dto;
mod embedded;
mod enums;
mod expand;
mod ir;
mod naming;
mod partition;
mod relation;
mod row;
#[cfg(test)]
mod tests;
mod validate;

use proc_macro::TokenStream;

/// Derives `polystore::Model`: a static schema description, typed field handles and row
/// decoding. See the `polystore` crate for the attribute reference.
#[proc_macro_derive(Model, attributes(model))]
pub fn derive_model(input: TokenStream) -> TokenStream {
    expand::derive_model(input.into()).into()
}

/// Derives `polystore::FieldType` for a field-less enum stored as the text of its variants.
#[proc_macro_derive(Enum, attributes(model))]
pub fn derive_enum(input: TokenStream) -> TokenStream {
    enums::derive_enum(input.into()).into()
}

/// Derives `polystore::FieldType` for a serde type stored as JSON (PostgreSQL `JSONB`, SQLite
/// JSON text, a MongoDB embedded document).
#[proc_macro_derive(Embedded, attributes(model))]
pub fn derive_embedded(input: TokenStream) -> TokenStream {
    embedded::derive_embedded(input.into()).into()
}

/// Derives `polystore::query::FromRawRow` for a struct raw SQL rows decode into by column name
/// (`polystore::query::raw_rows::<MyRow>(sql)`); `#[row(column = "name")]` renames a column.
#[proc_macro_derive(Row, attributes(row))]
pub fn derive_row(input: TokenStream) -> TokenStream {
    row::derive_row(input.into()).into()
}

/// polystore's own: boxes an `async fn`'s future in dev builds so that its body is compiled in
/// polystore rather than in every crate whose generic code awaits it, and inlines it in release
/// builds. Not for applications (the expansion names `crate::model::BoxFuture`).
#[doc(hidden)]
#[proc_macro_attribute]
pub fn compiled_here(attr: TokenStream, item: TokenStream) -> TokenStream {
    compiled::expand(attr.into(), item.into()).unwrap_or_else(syn::Error::into_compile_error).into()
}
