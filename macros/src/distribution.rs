//! Distribution over shards: `#[model(distributed_by = tenant_id)]` (Citus hash distribution,
//! a hashed MongoDB shard key), `#[model(distributed_by(range(created_at)))]` (a ranged MongoDB
//! shard key), `#[model(reference)]` (a table copied to every node) and
//! `#[model(colocate_with = "orders")]`.
//!
//! Parsed here, checked against the model's key, unique indexes and `belongs_to` relations, and
//! expanded into the schema's `distribution` / `reference` entries. The rules the engines
//! enforce at run time become compile errors:
//! - the primary key and every unique index of a distributed model include the distribution
//!   column (a shard can only check uniqueness of what lives on it);
//! - a `belongs_to` of a distributed model targets a reference model, or a distributed model
//!   whose key is its distribution column through this model's distribution column (the two
//!   tables are then colocated: referencing and referenced rows sit on the same shard);
//! - a `belongs_to` of a reference model targets a reference model.
//!
//! The last two need the target's schema, which the derive of this struct cannot see: they are
//! `const` assertions on `<Target as Model>::SCHEMA`, evaluated by the compiler and pinned to
//! the relation field.

use darling::ast::NestedMeta;
use darling::util::SpannedValue;
use darling::{Error, FromMeta};
use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use crate::attr::{FieldInput, ModelInput};
use crate::check::On as _;
use crate::ir::Model;
use crate::relation::Kind;

const HELP: &str = "help: the correct format looks like #[model(distributed_by = tenant_id)] \
                    (hash distribution) or #[model(distributed_by(range(created_at)))] (a ranged MongoDB shard key)";

/// `distributed_by = col` / `distributed_by(hash(col))` / `distributed_by(range(col))`, as written.
pub struct DistributedBy {
    /// The distribution column's field.
    pub field: syn::Ident,
    /// Ranged (`range(col)`) rather than hashed.
    pub range: bool,
}

impl FromMeta for DistributedBy {
    fn from_expr(expr: &syn::Expr) -> darling::Result<Self> {
        match expr {
            syn::Expr::Path(p) if p.path.get_ident().is_some() => {
                Ok(DistributedBy { field: p.path.get_ident().cloned().expect("checked"), range: false })
            }
            syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. }) => match s.parse::<syn::Ident>() {
                Ok(field) => Ok(DistributedBy { field, range: false }),
                Err(_) => Err(Error::custom(format!("expected a field name\n  {HELP}")).with_span(s)),
            },
            other => Err(Error::custom(format!("expected a field name\n  {HELP}")).with_span(other)),
        }
    }

    fn from_list(items: &[NestedMeta]) -> darling::Result<Self> {
        let bad = |span: Span| Error::custom(format!("expected hash(field) or range(field)\n  {HELP}")).on(span);
        let [NestedMeta::Meta(syn::Meta::List(list))] = items else {
            return Err(match items.first() {
                Some(first) => bad(first.span()),
                None => Error::custom(format!("name the distribution column\n  {HELP}")),
            });
        };
        let range = if list.path.is_ident("range") {
            true
        } else if list.path.is_ident("hash") {
            false
        } else {
            return Err(bad(list.path.span()));
        };
        let field: syn::Ident = syn::parse2(list.tokens.clone())
            .map_err(|_| Error::custom(format!("expected one field name\n  {HELP}")).with_span(&list.tokens))?;
        Ok(DistributedBy { field, range })
    }
}

/// The resolved distribution of a model.
pub struct Distribution {
    /// Position of the distribution column in the model's fields.
    pub column: usize,
    /// Ranged rather than hashed.
    pub range: bool,
    /// `colocate_with = "table"`.
    pub colocate_with: Option<String>,
}

/// Resolves `distributed_by`, `reference` and `colocate_with` and checks them against the
/// model's own key and unique indexes. Returns the distribution and the reference flag.
pub fn resolve(
    input: &ModelInput,
    fields: &[&FieldInput],
    model: &Model,
    errors: &mut darling::error::Accumulator,
) -> (Option<Distribution>, bool) {
    let reference = input.reference.is_present();
    if let (Some(by), true) = (&input.distributed_by, reference) {
        errors.push(
            Error::custom(
                "a model is either distributed (`distributed_by`) or a reference table (`reference`), not both\n  \
                 help: keep `distributed_by` for rows spread over shards by that column, or `reference` for a small \
                 table copied to every node",
            )
            .on(by.span()),
        );
    }
    if let (Some(colocate), None) = (&input.colocate_with, &input.distributed_by) {
        errors.push(
            Error::custom(
                "`colocate_with` places a distributed table's shards with another's; this model is not distributed\n  \
                 help: add #[model(distributed_by = tenant_id)] naming the column both tables are distributed by",
            )
            .on(colocate.span()),
        );
    }
    if let Some(colocate) = input.colocate_with.as_ref().filter(|c| c.trim().is_empty()) {
        errors.push(Error::custom("`colocate_with` names a table and cannot be empty").on(colocate.span()));
    }
    let Some(by) = &input.distributed_by else { return (None, reference) };
    let Some(column) = model.position(&by.field) else {
        let names: Vec<String> = model.fields.iter().map(|f| f.ident.to_string()).collect();
        let wanted = by.field.to_string();
        let hint = match crate::naming::did_you_mean(&wanted, names.iter().map(String::as_str)) {
            Some(s) => format!("\n  help: did you mean `{s}`?"),
            None => format!("\n  help: the model's fields are: {}", names.join(", ")),
        };
        errors.push(
            Error::custom(format!("`distributed_by` names `{wanted}`, which is not a field of this model{hint}"))
                .with_span(&by.field),
        );
        return (None, reference);
    };
    let field = &model.fields[column];
    if crate::dto::is_option(&field.ty) {
        errors.push(
            Error::custom(format!(
                "the distribution column `{}` cannot be nullable: every row needs a shard\n  help: make it `{}`",
                field.ident,
                quote_inner(&field.ty)
            ))
            .with_span(&field.ty),
        );
    }
    let name = field.ident.to_string();
    // Rule: the primary key includes the distribution column.
    if !model.primary_key.is_empty() && !model.primary_key.contains(&column) {
        let key: Vec<String> = model.primary_key.iter().map(|&i| model.fields[i].ident.to_string()).collect();
        let span = key_span(input, fields, model).unwrap_or(by.field.span());
        errors.push(
            Error::custom(format!(
                "the primary key ({}) of a model distributed by `{name}` must include `{name}`: each shard \
                 can only enforce uniqueness of rows it holds\n  help: declare a composite key on the struct: \
                 #[model(primary_key({name}, {}))]",
                key.join(", "),
                key.join(", ")
            ))
            .on(span),
        );
    }
    // Rule: every unique index includes the distribution column.
    for (i, f) in fields.iter().enumerate() {
        if f.unique.is_present() && i != column {
            errors.push(
                Error::custom(format!(
                    "a unique index of a model distributed by `{name}` must include `{name}`\n  help: make it \
                     unique per `{name}` on the struct: #[model(index({name}, {}, unique))]",
                    model.fields[i].ident
                ))
                .on(f.unique.span()),
            );
        }
    }
    for attr in input.indexes.iter().filter(|a| a.unique) {
        if !attr.fields.iter().any(|f| *f == by.field) {
            let listed: Vec<String> = attr.fields.iter().map(|f| f.to_string()).collect();
            errors.push(
                Error::custom(format!(
                    "a unique index of a model distributed by `{name}` must include `{name}`\n  help: add it: \
                     #[model(index({name}, {}, unique))]",
                    listed.join(", ")
                ))
                .on(attr.span),
            );
        }
    }
    let colocate_with = input.colocate_with.as_ref().map(|c| c.trim().to_owned());
    (Some(Distribution { column, range: by.range, colocate_with }), reference)
}

/// Where the primary key is declared: the struct's `primary_key(...)` list or the field's flag.
fn key_span(input: &ModelInput, fields: &[&FieldInput], model: &Model) -> Option<Span> {
    if let Some(list) = &input.primary_key {
        return Some(list.span());
    }
    let first = *model.primary_key.first()?;
    fields.get(first).map(|f| f.primary_key.span())
}

fn quote_inner(ty: &syn::Type) -> String {
    let text = quote!(#ty).to_string().replace(' ', "");
    text.strip_prefix("Option<").and_then(|t| t.strip_suffix('>')).map(str::to_owned).unwrap_or(text)
}

/// The schema's `distribution` and `reference` entries.
pub fn schema_tokens(model: &Model) -> TokenStream {
    let distribution = match &model.distribution {
        Some(d) => {
            let column = d.column;
            let kind = if d.range { quote!(Range) } else { quote!(Hash) };
            let colocate = match &d.colocate_with {
                Some(t) => quote!(::core::option::Option::Some(#t)),
                None => quote!(::core::option::Option::None),
            };
            quote!(::core::option::Option::Some(__ps::DistributionSchema {
                column: #column,
                kind: __ps::DistributionKind::#kind,
                colocate_with: #colocate,
            }))
        }
        None => quote!(::core::option::Option::None),
    };
    let reference = model.reference;
    quote!(distribution: #distribution, reference: #reference,)
}

/// Compile-time checks of `belongs_to` relations that need the target's schema (see the module
/// documentation), as `const` assertions pinned to the relation field.
pub fn relation_checks(model: &Model) -> TokenStream {
    let mut out = TokenStream::new();
    let ident = model.ident.to_string();
    for rel in model.relations.iter().filter(|r| r.kind == Kind::BelongsTo) {
        let target = &rel.target;
        let target_text = quote!(#target).to_string().replace(' ', "");
        let fk = model.fields[rel.local].ident.to_string();
        let span = rel.ident.span();
        let check = match &model.distribution {
            Some(d) if d.column == rel.local => {
                let column = &model.fields[d.column].ident;
                let message = format!(
                    "`{ident}` is distributed by `{column}` and `{}` belongs to `{target_text}` through it, so \
                     `{target_text}` must be a reference model (#[model(reference)]) or distributed by its key \
                     (#[model(distributed_by = <its key field>)]): Citus only allows foreign keys between \
                     colocated distributed tables that include the distribution column",
                    rel.ident
                );
                quote_spanned! {span=>
                    const _: () = {
                        let __t = <#target as __ps::Model>::SCHEMA;
                        let __ok = __t.reference
                            || match __t.distribution {
                                ::core::option::Option::Some(__d) => {
                                    __t.primary_key.len() == 1 && __t.primary_key[0] == __d.column
                                }
                                ::core::option::Option::None => false,
                            };
                        ::core::assert!(__ok, #message);
                    };
                }
            }
            Some(d) => {
                let column = &model.fields[d.column].ident;
                let message = format!(
                    "`{ident}` is distributed by `{column}`, and its foreign key `{fk}` (relation `{}`) does not \
                     include `{column}`, so `{target_text}` must be a reference model: mark it \
                     #[model(reference)], or make `{target_text}` distributed by its key and link through \
                     `{column}` (belongs_to(key = {column}))",
                    rel.ident
                );
                quote_spanned! {span=>
                    const _: () = {
                        ::core::assert!(<#target as __ps::Model>::SCHEMA.reference, #message);
                    };
                }
            }
            None if model.reference => {
                let message = format!(
                    "`{ident}` is a reference model (copied to every node), so `{target_text}`, which relation \
                     `{}` refers to, must be a reference model too: mark it #[model(reference)]",
                    rel.ident
                );
                quote_spanned! {span=>
                    const _: () = {
                        ::core::assert!(<#target as __ps::Model>::SCHEMA.reference, #message);
                    };
                }
            }
            None => continue,
        };
        out.extend(check);
    }
    out
}

/// `colocate_with = "orders"` as written, with its span.
pub type Colocate = SpannedValue<String>;
