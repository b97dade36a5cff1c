//! Stage 2: the validated intermediate model. Built from the darling receivers of
//! [`crate::attr`]; field names in key and index lists are resolved to positions here, and the
//! cross-field rules of [`crate::check`] run before anything is generated.

use darling::{Error, FromDeriveInput};
use proc_macro2::Span;
use syn::spanned::Spanned;

use crate::attr::{FieldInput, ModelInput};
use crate::check::{self, On as _};
use crate::naming;

/// A model ready to expand.
pub struct Model {
    /// The struct's name.
    pub ident: syn::Ident,
    /// The struct's visibility (its DTOs get the same).
    pub vis: syn::Visibility,
    /// Whether `#[validate]` rules sit on the struct or its fields (so it derives `Validate`).
    pub validates: bool,
    /// Business rules: functions `fn(&Self) -> RuleResult`.
    pub rules: Vec<syn::Path>,
    /// Async business rules: `async fn(&Self, &mut dyn Executor) -> RuleResult`.
    pub async_rules: Vec<syn::Path>,
    /// `hooks`, with the keyword's span: the model's `Hooks` impl runs around writes.
    pub hooks: Option<Span>,
    /// Generated DTOs.
    pub dtos: Vec<crate::dto::Dto>,
    /// Relation fields (not stored: filled by `Query::with`).
    pub relations: Vec<crate::relation::Relation>,
    /// The path of the polystore crate.
    pub krate: syn::Path,
    /// The table (SQL) / collection (MongoDB) name, without its schema.
    pub table: String,
    /// The schema (namespace) the table lives in (`schema = "billing"`), if declared.
    pub schema: Option<String>,
    /// Stored fields, in declaration order.
    pub fields: Vec<Field>,
    /// Positions in `fields` of the primary key, in key order.
    pub primary_key: Vec<usize>,
    /// Secondary indexes.
    pub indexes: Vec<Index>,
    /// The cache policy, if declared.
    pub cache: Option<Cache>,
    /// Declarative partitioning, if declared.
    pub partition: Option<crate::partition::Partition>,
    /// The table's previous name.
    pub renamed_from: Option<String>,
    /// Position in `fields` of the `#[model(version)]` field, if declared.
    pub version: Option<usize>,
    /// Position in `fields` of the `#[model(soft_delete)]` stamp, if declared (its type is
    /// asserted by the expansion).
    pub soft_delete: Option<usize>,
    /// `distributed_by`, resolved (see [`crate::distribution`]).
    pub distribution: Option<crate::distribution::Distribution>,
    /// `#[model(reference)]`.
    pub reference: bool,
}

/// `cache(...)` with durations in milliseconds.
pub struct Cache {
    /// Entry lifetime.
    pub ttl_ms: u64,
    /// Random extra lifetime, at most.
    pub jitter_ms: u64,
    /// Lifetime of a cached miss.
    pub negative_ttl_ms: Option<u64>,
    /// Largest entry cached.
    pub max_entry_bytes: Option<usize>,
}

/// The Redis structure a field is mirrored into.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Redis {
    /// None.
    None,
    /// A set of keys per value.
    Set,
    /// A sorted set scored by the field.
    SortedSet,
}

/// One stored field.
pub struct Field {
    /// The Rust field name.
    pub ident: syn::Ident,
    /// The field's visibility (its handle gets the same).
    pub vis: syn::Visibility,
    /// The Rust type.
    pub ty: syn::Type,
    /// The stored column / document key.
    pub column: String,
    /// The name of the typed handle constant (`EMAIL`).
    pub handle: syn::Ident,
    /// Whether the database assigns the value.
    pub generated: bool,
    /// Automatic timestamp role.
    pub auto: Auto,
    /// A database default.
    pub default: Option<DefaultLit>,
    /// Where the default's literal is written (errors about it point there).
    pub default_span: Span,
    /// The Redis structure mirrored from this field.
    pub redis: Redis,
    /// `#[validate]` rules found on the field.
    pub rules: crate::validate::FieldRules,
    /// The field's `#[validate]` / `#[serde]` attributes, copied onto DTO fields.
    pub forwarded: Vec<syn::Attribute>,
    /// The column's previous name.
    pub renamed_from: Option<String>,
}

/// Automatic timestamp roles.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Auto {
    /// A plain field.
    None,
    /// Set on insert.
    CreatedAt,
    /// Set on insert and update.
    UpdatedAt,
}

/// A literal default value.
pub enum DefaultLit {
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A string.
    Str(String),
}

/// A secondary index.
pub struct Index {
    /// The database name of the index.
    pub name: String,
    /// Positions of the indexed fields.
    pub fields: Vec<usize>,
    /// Whether it is unique.
    pub unique: bool,
    /// TTL (milliseconds) of a MongoDB TTL index.
    pub ttl_ms: Option<u64>,
}

impl Model {
    /// Parses and validates a derive input; every problem found is in the returned error.
    pub fn from_derive_input(input: &syn::DeriveInput) -> darling::Result<Model> {
        shape(input)?;
        let parsed = ModelInput::from_derive_input(input)?;
        let mut errors = Error::accumulator();
        if let Some(param) = parsed.generics.params.first() {
            errors
                .push(Error::custom("polystore models cannot be generic: a model maps to one table").with_span(param));
        }
        let table = match &parsed.table {
            Some(t) => {
                check::table_name(t, &mut errors);
                t.to_string()
            }
            None => naming::table_name(&parsed.ident.to_string()),
        };
        let schema = parsed.schema.as_ref().map(|s| {
            check::schema_name(s, &mut errors);
            s.to_string()
        });
        let all_inputs = parsed.data.as_ref().take_struct().map(|s| s.fields).unwrap_or_default();
        let (relation_inputs, inputs): (Vec<&FieldInput>, Vec<&FieldInput>) =
            all_inputs.into_iter().partition(|f| f.relation().is_some());
        let fields: Vec<Field> = inputs.iter().filter_map(|f| field(f, &mut errors)).collect();
        let model_fields = Model {
            ident: parsed.ident.clone(),
            vis: input.vis.clone(),
            validates: false,
            rules: parsed.rules.clone(),
            async_rules: parsed.async_rules.clone(),
            hooks: parsed.hooks.is_present().then(|| parsed.hooks.span()),
            dtos: Vec::new(),
            relations: Vec::new(),
            krate: parsed.krate.clone().unwrap_or_else(|| syn::parse_quote!(::polystore)),
            table,
            schema,
            fields,
            primary_key: Vec::new(),
            indexes: Vec::new(),
            cache: None,
            partition: None,
            renamed_from: parsed.renamed_from.clone(),
            version: None,
            soft_delete: None,
            distribution: None,
            reference: false,
        };
        let mut model = model_fields;
        model.primary_key = check::primary_key(&parsed, &inputs, &model.fields, &mut errors);
        check::generated(&inputs, &model.primary_key, &mut errors);
        check::timestamps(&inputs, &mut errors);
        model.version = check::version(&inputs, &model.primary_key, &mut errors);
        model.soft_delete = check::soft_delete(&inputs, &model.primary_key, &mut errors);
        check::duplicate_columns(&inputs, &model.fields, &mut errors);
        check::default_types(&model.fields, &mut errors);
        model.indexes = check::indexes(&parsed, &inputs, &model, &mut errors);
        model.partition =
            parsed.partition.as_ref().and_then(|p| crate::partition::resolve(p, &parsed, &inputs, &model, &mut errors));
        (model.distribution, model.reference) = crate::distribution::resolve(&parsed, &inputs, &model, &mut errors);
        model.cache = parsed.cache.as_ref().and_then(|c| errors.handle(cache(c)));
        check::redis(&inputs, &mut errors);
        model.validates = crate::validate::on_container(&parsed.attrs) || model.fields.iter().any(|f| f.rules.any);
        let dtos: Vec<crate::dto::Dto> =
            parsed.dtos.iter().map(|d| crate::dto::resolve(d, &model, &mut errors)).collect();
        check::dto_names(&dtos, &mut errors);
        model.dtos = dtos;
        let syn_fields: Vec<&syn::Field> = match &input.data {
            syn::Data::Struct(s) => s.fields.iter().collect(),
            _ => Vec::new(),
        };
        for f in relation_inputs {
            let (kind, attr, span) = f.relation().expect("partitioned on relation()");
            let Some(field) = syn_fields.iter().find(|sf| sf.ident == f.ident) else { continue };
            let rel = crate::relation::resolve(field, kind, attr, span, &model, &parsed.ident, &mut errors);
            model.relations.extend(rel);
        }
        errors.finish_with(model)
    }

    /// The table name as the runtime's `ModelSchema::table` holds it: prefixed by the schema
    /// when one is declared (`billing.invoice`).
    pub fn stored_table(&self) -> String {
        qualified(self.schema.as_deref(), &self.table)
    }

    /// The table's previous name, in the model's schema (`renamed_from = "old"` with
    /// `schema = "billing"` is `billing.old`).
    pub fn stored_renamed_from(&self) -> Option<String> {
        self.renamed_from.as_deref().map(|old| qualified(self.schema.as_deref(), old))
    }

    /// Position of the field called `ident`.
    pub fn position(&self, ident: &syn::Ident) -> Option<usize> {
        self.fields.iter().position(|f| f.ident == *ident)
    }
}

/// Rule: a model is a struct with named fields. An enum is pointed at `#[derive(Enum)]` (a
/// field type stored as text) or `#[derive(Embedded)]`; a tuple or unit struct is told to name
/// its fields (they become columns).
fn shape(input: &syn::DeriveInput) -> darling::Result<()> {
    let ident = &input.ident;
    let message = match &input.data {
        syn::Data::Struct(s) if matches!(s.fields, syn::Fields::Named(_)) => return Ok(()),
        syn::Data::Struct(_) => format!(
            "a model needs named fields: each becomes a column\n  help: write `struct {ident} {{ #[model(primary_key)] id: i64, .. }}`"
        ),
        syn::Data::Enum(_) => format!(
            "`{ident}` is an enum: a model is a struct with named fields\n  \
             help: to store `{ident}` in a field as the text of its variant, use #[derive(polystore::Enum)]; \
             for a value stored as JSON, #[derive(polystore::Embedded)]"
        ),
        syn::Data::Union(_) => "a model is a struct with named fields, not a union".to_owned(),
    };
    Err(Error::custom(message).with_span(ident))
}

/// Builds one IR field from its receiver; problems go to `errors` (only a field without a name
/// yields no IR field).
fn field(f: &FieldInput, errors: &mut darling::error::Accumulator) -> Option<Field> {
    let Some(ident) = f.ident.clone() else {
        errors.push(Error::custom("polystore models need named fields").with_span(&f.ty));
        return None;
    };
    if crate::relation::is_rel(&f.ty) {
        errors.push(
            Error::custom(format!(
                "`{ident}` is a relation field but declares no relation\n  help: say which side it is: \
                 #[model(belongs_to)], #[model(has_one)], #[model(has_many)] or \
                 #[model(many_to_many(through = JoinModel))]"
            ))
            .with_span(&f.ty),
        );
        return None;
    }
    let name = ident.to_string();
    let name = name.trim_start_matches("r#");
    let column = match &f.column {
        Some(c) if c.is_empty() => {
            errors.push(Error::custom("the column name cannot be empty").on(c.span()));
            name.to_owned()
        }
        Some(c) => c.to_string(),
        None => name.to_owned(),
    };
    let auto = if f.created_at.is_present() {
        Auto::CreatedAt
    } else if f.updated_at.is_present() {
        Auto::UpdatedAt
    } else {
        Auto::None
    };
    let default = f.default.as_ref().and_then(|d| errors.handle(default_lit(&d.0)));
    let redis = if f.sorted_set.is_present() {
        Redis::SortedSet
    } else if f.set_index.is_present() {
        Redis::Set
    } else {
        Redis::None
    };
    Some(Field {
        handle: syn::Ident::new(&naming::handle_name(name), ident.span()),
        ident,
        vis: f.vis.clone(),
        ty: f.ty.clone(),
        column,
        generated: f.generated.is_present(),
        auto,
        default_span: f.default.as_ref().map(|d| d.0.span()).unwrap_or_else(|| f.ty.span()),
        default,
        redis,
        rules: crate::validate::field_rules(&f.attrs, &f.ty),
        forwarded: f.attrs.clone(),
        renamed_from: f.renamed_from.clone(),
    })
}

const DEFAULT_HELP: &str = "help: the correct format looks like #[model(default = 0)], #[model(default = 1.5)], #[model(default = true)] or #[model(default = \"draft\")]";

/// Reads a `default = …` literal (numbers may be negative).
fn default_lit(expr: &syn::Expr) -> darling::Result<DefaultLit> {
    let bad = || Error::custom(format!("a default must be a literal\n  {DEFAULT_HELP}")).with_span(expr);
    let (negative, lit) = match expr {
        syn::Expr::Lit(l) => (false, &l.lit),
        syn::Expr::Unary(u) if matches!(u.op, syn::UnOp::Neg(_)) => match &*u.expr {
            syn::Expr::Lit(l) => (true, &l.lit),
            _ => return Err(bad()),
        },
        _ => return Err(bad()),
    };
    let sign = if negative { -1 } else { 1 };
    match lit {
        syn::Lit::Int(i) => {
            let n: i64 = i.base10_parse().map_err(|e| Error::custom(e.to_string()).with_span(i))?;
            Ok(DefaultLit::Int(sign * n))
        }
        syn::Lit::Float(f) => {
            let x: f64 = f.base10_parse().map_err(|e| Error::custom(e.to_string()).with_span(f))?;
            Ok(DefaultLit::Float(sign as f64 * x))
        }
        syn::Lit::Bool(b) if !negative => Ok(DefaultLit::Bool(b.value)),
        syn::Lit::Str(s) if !negative => Ok(DefaultLit::Str(s.value())),
        _ => Err(bad()),
    }
}

/// The span of a whole field (its name through its type), for errors about the field.
pub fn field_span(f: &FieldInput) -> Span {
    f.ident.as_ref().map(|i| i.span()).unwrap_or_else(|| f.ty.span())
}

/// Reads `cache(...)`; every duration error is reported.
fn cache(c: &crate::attr::CacheAttr) -> darling::Result<Cache> {
    let mut errors = Error::accumulator();
    let ttl_ms = errors.handle(duration(&c.ttl)).unwrap_or(0);
    let jitter_ms = c.jitter.as_ref().and_then(|j| errors.handle(duration(j))).unwrap_or(0);
    let negative_ttl_ms = c.negative_ttl.as_ref().and_then(|n| errors.handle(duration(n)));
    if ttl_ms == 0 && c.ttl.parse::<u64>().is_ok() {
        errors.push(Error::custom("a cache TTL must be longer than zero").on(c.ttl.span()));
    }
    errors.finish_with(Cache { ttl_ms, jitter_ms, negative_ttl_ms, max_entry_bytes: c.max_entry_bytes })
}

/// A duration literal such as `"500ms"`, `"30s"`, `"5m"`, `"2h"`, `"7d"` or `"1h30m"`, in
/// milliseconds.
pub fn duration(text: &darling::util::SpannedValue<String>) -> darling::Result<u64> {
    parse_duration(text).map_err(|why| {
        Error::custom(format!(
            "{why}\n  help: write a duration like \"500ms\", \"30s\", \"5m\", \"2h\", \"7d\" or \"1h30m\""
        ))
        .on(text.span())
    })
}

fn parse_duration(text: &str) -> Result<u64, String> {
    let mut total: u64 = 0;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err("a duration cannot be empty".into());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("cannot read {text:?} as a duration"));
        }
        let n: u64 = rest[..digits].parse().map_err(|_| format!("{text:?} is too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" => return Err(format!("{text:?} needs a unit")),
            other => return Err(format!("unknown duration unit {other:?} in {text:?}")),
        };
        rest = &rest[unit_len..];
        total =
            n.checked_mul(factor).and_then(|v| total.checked_add(v)).ok_or_else(|| format!("{text:?} is too large"))?;
    }
    Ok(total)
}

/// `schema.table`, or `table` without a schema.
fn qualified(schema: Option<&str>, table: &str) -> String {
    match schema {
        Some(schema) => format!("{schema}.{table}"),
        None => table.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_duration;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("500ms"), Ok(500));
        assert_eq!(parse_duration("5m"), Ok(300_000));
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration("7d"), Ok(604_800_000));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5 minutes").is_err());
        assert!(parse_duration("").is_err());
    }
}
