//! Cross-field rules, run while building the IR. Each rule is one function with a one-line
//! statement of the rule and an example; every violation is pushed to the accumulator on the
//! narrowest span (the attribute keyword or the misspelled name), so a model with several
//! mistakes shows all of them in one build.

use darling::Error;
use darling::error::Accumulator;

use crate::attr::{FieldInput, ModelInput};
use crate::ir::{self, Field, Index, Model};
use crate::naming;

/// Puts a darling error on an arbitrary span (darling's own `with_span` needs a syntax node).
pub trait On {
    /// This error, located at `span`.
    fn on(self, span: proc_macro2::Span) -> Self;
}

impl On for Error {
    fn on(self, span: proc_macro2::Span) -> Self {
        Error::from(syn::Error::new(span, self.to_string()))
    }
}

/// Rule: a table name is not empty and holds no dot — a dot would read as a schema on
/// PostgreSQL; the schema is its own attribute.
///
/// `#[model(table = "billing.invoice")]` is an error on the string suggesting
/// `#[model(schema = "billing", table = "invoice")]`.
pub fn table_name(table: &darling::util::SpannedValue<String>, errors: &mut Accumulator) {
    if table.is_empty() {
        errors.push(Error::custom("the table name cannot be empty").on(table.span()));
    } else if let Some((schema, name)) = table.split_once('.') {
        errors.push(
            Error::custom(format!(
                "a table name cannot contain a dot: `{}` would be one identifier, not a schema and a table\n  \
                 help: declare the schema on its own: #[model(schema = \"{schema}\", table = \"{name}\")]",
                table.as_str()
            ))
            .on(table.span()),
        );
    }
}

/// Rule: a schema name is not empty and holds no dot.
///
/// `#[model(schema = "")]` is an error on the string.
pub fn schema_name(schema: &darling::util::SpannedValue<String>, errors: &mut Accumulator) {
    if schema.is_empty() || schema.contains('.') {
        errors.push(Error::custom("a schema name must be a non-empty name without dots").on(schema.span()));
    }
}

/// Rule: a model has exactly one primary key — one field marked `#[model(primary_key)]`, or a
/// composite key declared on the struct with `#[model(primary_key(a, b))]`, not both.
///
/// `struct User { #[model(primary_key)] id: i64, #[model(primary_key)] tenant: i64 }` is an
/// error pointing at the second `primary_key`.
pub fn primary_key(input: &ModelInput, fields: &[&FieldInput], ir: &[Field], errors: &mut Accumulator) -> Vec<usize> {
    let marked: Vec<usize> = (0..fields.len()).filter(|&i| fields[i].primary_key.is_present()).collect();
    const COMPOSITE_HELP: &str =
        "help: for a composite key, declare it on the struct: #[model(primary_key(tenant_id, id))]";
    if let Some(list) = &input.primary_key {
        if let Some(&first) = marked.first() {
            errors.push(
                Error::custom(format!(
                    "the primary key is already declared on the struct with #[model(primary_key(...))]\n  \
                     help: remove `primary_key` here, or list `{}` in the struct's primary_key(...)",
                    ir[first].ident
                ))
                .on(fields[first].primary_key.span()),
            );
        }
        let mut key = Vec::new();
        for ident in &list.0 {
            match ir.iter().position(|f| f.ident == *ident) {
                Some(i) if key.contains(&i) => {
                    errors.push(Error::custom(format!("`{ident}` appears twice in the primary key")).with_span(ident));
                }
                Some(i) => key.push(i),
                None => errors.push(unknown_field(ident, ir, "primary_key")),
            }
        }
        return key;
    }
    match marked.as_slice() {
        [] => {
            errors.push(
                Error::custom(format!(
                    "model `{}` has no primary key\n  help: mark a field with #[model(primary_key)] \
                     (add `generated` for a database-assigned id), or declare a composite key on the \
                     struct with #[model(primary_key(a, b))]",
                    input.ident
                ))
                .with_span(&input.ident),
            );
            Vec::new()
        }
        [one] => vec![*one],
        [first, rest @ ..] => {
            for &i in rest {
                errors.push(
                    Error::custom(format!(
                        "a model has one primary key, and `{}` is already marked `primary_key`\n  {COMPOSITE_HELP}",
                        ir[*first].ident
                    ))
                    .on(fields[i].primary_key.span()),
                );
            }
            vec![*first]
        }
    }
}

/// Rule: `generated` (a database-assigned value) only goes on a single-field primary key.
///
/// `#[model(generated)] name: String` is an error; so is `generated` on one part of a
/// composite key, and `generated` together with `default`.
pub fn generated(fields: &[&FieldInput], key: &[usize], errors: &mut Accumulator) {
    for (i, f) in fields.iter().enumerate() {
        if !f.generated.is_present() {
            continue;
        }
        let span = f.generated.span();
        if !key.contains(&i) {
            errors.push(
                Error::custom(
                    "`generated` is for a database-assigned primary key\n  \
                     help: the correct format looks like #[model(primary_key, generated)] id: i64; \
                     for a value with a database default use #[model(default = ...)]",
                )
                .on(span),
            );
        } else if key.len() > 1 {
            errors.push(
                Error::custom("a composite primary key cannot have a generated part; assign every key field yourself")
                    .on(span),
            );
        }
        if f.default.is_some() {
            errors.push(Error::custom("a generated field cannot also have a `default`").on(span));
        }
    }
}

/// Rule: a field is at most one of `created_at` and `updated_at`.
pub fn timestamps(fields: &[&FieldInput], errors: &mut Accumulator) {
    for f in fields {
        if f.created_at.is_present() && f.updated_at.is_present() {
            errors.push(
                Error::custom("a field cannot be both `created_at` and `updated_at`; use two fields")
                    .on(f.updated_at.span()),
            );
        }
    }
}

/// Why a field that polystore writes itself (the `version`, the `soft_delete` stamp) cannot
/// also be `in_key` / `generated` / an automatic timestamp / given a `default`, if it is one.
fn written_by_polystore_clash(f: &FieldInput, in_key: bool) -> Option<&'static str> {
    if in_key {
        Some("part of the primary key")
    } else if f.generated.is_present() {
        Some("`generated`")
    } else if f.created_at.is_present() || f.updated_at.is_present() {
        Some("an automatic timestamp")
    } else if f.default.is_some() {
        Some(DEFAULT_CLASH)
    } else {
        None
    }
}

const DEFAULT_CLASH: &str = "given a `default`";

/// Rule: at most one field is the optimistic-locking `version`, and it is a plain stored
/// field: not part of the primary key, not `generated`, not an automatic timestamp and without
/// a `default` (writes set it). Its type (an integer) is checked by the type checker.
///
/// `#[model(primary_key, version)] id: i64` is an error on `version`; so is a second
/// `#[model(version)]` field. Returns the version field's position.
pub fn version(fields: &[&FieldInput], key: &[usize], errors: &mut Accumulator) -> Option<usize> {
    let mut found = None;
    for (i, f) in fields.iter().enumerate() {
        if !f.version.is_present() {
            continue;
        }
        let span = f.version.span();
        let clash = written_by_polystore_clash(f, key.contains(&i));
        if let Some(what) = clash {
            errors.push(
                Error::custom(format!(
                    "the `version` field cannot be {what}: polystore sets it on every write\n  \
                     help: the correct format looks like #[model(version)] version: i64"
                ))
                .on(span),
            );
        } else if found.is_some() {
            errors.push(Error::custom("a model has at most one `version` field").on(span));
        } else {
            found = Some(i);
        }
    }
    found
}

/// Rule: at most one field is the `soft_delete` stamp, a plain stored field (not part of the
/// primary key, not `generated`, not an automatic timestamp, without a `default`); its type
/// (`Option<DateTime<Utc>>`) is checked by the type checker (`assert_soft_delete`). Returns
/// the field's position when it is well formed.
pub fn soft_delete(fields: &[&FieldInput], key: &[usize], errors: &mut Accumulator) -> Option<usize> {
    let mut found = None;
    for (i, f) in fields.iter().enumerate() {
        if !f.soft_delete.is_present() {
            continue;
        }
        let span = f.soft_delete.span();
        // The `version` clash ranks after the key, `generated` and timestamps, before `default`.
        let clash = match written_by_polystore_clash(f, key.contains(&i)) {
            Some(DEFAULT_CLASH) | None if f.version.is_present() => Some("the `version` field"),
            other => other,
        };
        if let Some(what) = clash {
            errors.push(
                Error::custom(format!(
                    "the `soft_delete` field cannot be {what}: polystore stamps it when a row is deleted\n  \
                     help: the correct format looks like #[model(soft_delete)] deleted_at: Option<DateTime<Utc>>"
                ))
                .on(span),
            );
        } else if !stamp_shaped(&f.ty) {
            errors.push(
                Error::custom(
                    "a `soft_delete` field is an `Option<DateTime<Utc>>`: NULL while the row is live, the \
                     deletion time once it is deleted\n  \
                     help: the correct format looks like #[model(soft_delete)] deleted_at: Option<DateTime<Utc>>",
                )
                .on(syn::spanned::Spanned::span(&f.ty)),
            );
        } else if found.is_some() {
            errors.push(Error::custom("a model has at most one `soft_delete` field").on(span));
        } else {
            found = Some(i);
        }
    }
    found
}

/// Whether `ty` is spelled `Option<…DateTime<…>>` (the time zone is then checked by the type
/// assertion of the expansion).
fn stamp_shaped(ty: &syn::Type) -> bool {
    let last = |ty: &syn::Type| match ty {
        syn::Type::Path(p) => p.path.segments.last().cloned(),
        _ => None,
    };
    let Some(option) = last(ty).filter(|s| s.ident == "Option") else { return false };
    let syn::PathArguments::AngleBracketed(args) = &option.arguments else { return false };
    match args.args.first() {
        Some(syn::GenericArgument::Type(inner)) => last(inner).is_some_and(|s| s.ident == "DateTime"),
        _ => false,
    }
}

/// Rule: two fields never share a column name (`#[model(column = "email")] mail: String` next
/// to `email: String` is an error on the second).
pub fn duplicate_columns(fields: &[&FieldInput], ir: &[Field], errors: &mut Accumulator) {
    for (i, f) in ir.iter().enumerate() {
        if let Some(prev) = ir[..i].iter().find(|p| p.column == f.column) {
            let span = fields[i].column.as_ref().map(|c| c.span()).unwrap_or_else(|| ir::field_span(fields[i]));
            errors.push(
                Error::custom(format!(
                    "column `{}` is already used by field `{}`\n  help: give one of them another name with #[model(column = \"...\")]",
                    f.column, prev.ident
                ))
                .on(span),
            );
        }
    }
}

/// The stored types the macro recognises by name (through `Option<..>`), for checks it can make
/// itself; any other type is checked by the compiler (see [`default_types`]).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum KnownType {
    /// `i16`, `i32`, `i64`.
    Int,
    /// `f32`, `f64`.
    Float,
    /// `bool`.
    Bool,
    /// `String`.
    Text,
}

/// The [`KnownType`] of `ty`, looking through `Option<..>`.
pub fn known_type(ty: &syn::Type) -> Option<KnownType> {
    let syn::Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    if last.ident == "Option" {
        let syn::PathArguments::AngleBracketed(args) = &last.arguments else { return None };
        return match args.args.first()? {
            syn::GenericArgument::Type(inner) => known_type(inner),
            _ => None,
        };
    }
    if p.path.segments.len() > 1 && last.ident != "String" {
        return None;
    }
    Some(match last.ident.to_string().as_str() {
        "i16" | "i32" | "i64" => KnownType::Int,
        "f32" | "f64" => KnownType::Float,
        "bool" => KnownType::Bool,
        "String" => KnownType::Text,
        _ => return None,
    })
}

/// Rule: a `default = …` literal has the field's type: `#[model(default = "zero")] hits: i32`
/// is an error on `"zero"`. For types the macro does not recognise by name (enums, decimals,
/// UUIDs, …) the expansion asserts it against the type's stored column at compile time.
pub fn default_types(fields: &[Field], errors: &mut Accumulator) {
    use crate::ir::DefaultLit;
    for f in fields {
        let (Some(lit), Some(known)) = (&f.default, known_type(&f.ty)) else { continue };
        let fits = matches!(
            (lit, known),
            (DefaultLit::Int(_), KnownType::Int | KnownType::Float)
                | (DefaultLit::Float(_), KnownType::Float)
                | (DefaultLit::Bool(_), KnownType::Bool)
                | (DefaultLit::Str(_), KnownType::Text)
        );
        if fits {
            continue;
        }
        let (what, example) = match known {
            KnownType::Int => ("an integer", "0"),
            KnownType::Float => ("a number", "0.0"),
            KnownType::Bool => ("a boolean", "false"),
            KnownType::Text => ("a string", "\"draft\""),
        };
        errors.push(
            Error::custom(format!(
                "the default of `{}` must be {what}, like its type\n  help: the correct format looks like #[model(default = {example})]",
                f.ident
            ))
            .on(f.default_span),
        );
    }
}

/// Rule: an index names existing fields, each once, and index names are unique.
///
/// `#[model(index(emial))]` is an error on `emial`, with "did you mean `email`?".
pub fn indexes(input: &ModelInput, fields: &[&FieldInput], model: &Model, errors: &mut Accumulator) -> Vec<Index> {
    let mut out: Vec<Index> = Vec::new();
    let mut spans = Vec::new();
    for (i, f) in fields.iter().enumerate() {
        for (flag, unique) in [(&f.unique, true), (&f.index, false)] {
            if flag.is_present() {
                out.push(Index {
                    name: index_name(&model.table, &[&model.fields[i].column], unique),
                    fields: vec![i],
                    unique,
                    ttl_ms: None,
                });
                spans.push(flag.span());
            }
        }
    }
    for attr in &input.indexes {
        let mut positions = Vec::new();
        for ident in &attr.fields {
            match model.position(ident) {
                Some(p) if positions.contains(&p) => {
                    errors.push(Error::custom(format!("`{ident}` appears twice in this index")).with_span(ident));
                }
                Some(p) => positions.push(p),
                None => errors.push(unknown_field(ident, &model.fields, "index")),
            }
        }
        let columns: Vec<&str> = positions.iter().map(|&p| model.fields[p].column.as_str()).collect();
        let name = attr
            .name
            .as_ref()
            .map(|n| n.to_string())
            .unwrap_or_else(|| index_name(&model.table, &columns, attr.unique));
        let ttl_ms = attr.ttl.as_ref().and_then(|t| errors.handle(ir::duration(t)));
        if let Some(ttl) = attr.ttl.as_ref().filter(|_| attr.fields.len() > 1) {
            errors.push(
                Error::custom("a TTL index covers exactly one (timestamp) field\n  help: #[model(index(created_at, ttl = \"30d\"))]")
                    .on(ttl.span()),
            );
        }
        out.push(Index { name, fields: positions, unique: attr.unique, ttl_ms });
        spans.push(attr.name.as_ref().map(|n| n.span()).unwrap_or(attr.span));
    }
    for (i, ix) in out.iter().enumerate() {
        if out[..i].iter().any(|o| o.name == ix.name) {
            errors.push(
                Error::custom(format!(
                    "two indexes are named `{}`\n  help: name one explicitly: #[model(index(a, b, name = \"...\"))]",
                    ix.name
                ))
                .on(spans[i]),
            );
        }
        if ix.name.len() > 63 {
            errors.push(
                Error::custom(format!(
                    "index name `{}` is longer than PostgreSQL's 63-byte limit\n  help: name it explicitly: #[model(index(a, b, name = \"...\"))]",
                    ix.name
                ))
                .on(spans[i]),
            );
        }
    }
    out
}

/// The default index name: `{table}_{columns}_key` for unique indexes (PostgreSQL's own
/// convention for unique constraints), `{table}_{columns}_idx` otherwise.
fn index_name(table: &str, columns: &[&str], unique: bool) -> String {
    format!("{table}_{}_{}", columns.join("_"), if unique { "key" } else { "idx" })
}

/// "no field `emial` in this model; did you mean `email`?" on the misspelled name.
fn unknown_field(ident: &syn::Ident, fields: &[Field], place: &str) -> Error {
    let names: Vec<String> = fields.iter().map(|f| f.ident.to_string()).collect();
    let wanted = ident.to_string();
    let hint = match naming::did_you_mean(&wanted, names.iter().map(String::as_str)) {
        Some(s) => format!("\n  help: did you mean `{s}`?"),
        None => format!("\n  help: the model's fields are: {}", names.join(", ")),
    };
    Error::custom(format!("`{place}` names `{wanted}`, which is not a field of this model{hint}")).with_span(ident)
}

/// Rule: a field is mirrored into at most one Redis structure (`set_index` or `sorted_set`).
pub fn redis(fields: &[&FieldInput], errors: &mut Accumulator) {
    for f in fields {
        if f.set_index.is_present() && f.sorted_set.is_present() {
            errors.push(
                Error::custom("a field is either a `set_index` or a `sorted_set`, not both").on(f.sorted_set.span()),
            );
        }
    }
}

/// Rule: two DTOs of a model never share a name (`dto(UserView, ..)` twice is an error).
pub fn dto_names(dtos: &[crate::dto::Dto], errors: &mut Accumulator) {
    for (i, d) in dtos.iter().enumerate() {
        if dtos[..i].iter().any(|o| o.name == d.name) {
            errors.push(Error::custom(format!("two DTOs are named `{}`", d.name)).with_span(&d.name));
        }
    }
}
