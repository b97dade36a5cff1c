//! Stage 1: darling receivers for `#[model(...)]` — exactly what the user wrote, with spans.
//! Nothing here is used to generate code directly; [`crate::ir`] validates it first.

use darling::ast::{Data, NestedMeta};
use darling::util::SpannedValue;
use darling::{Error, FromDeriveInput, FromField, FromMeta};
use proc_macro2::Span;
use syn::spanned::Spanned;

/// The struct and its container attributes.
#[derive(FromDeriveInput)]
#[darling(attributes(model), supports(struct_named), forward_attrs(validate))]
pub struct ModelInput {
    /// The struct's `#[validate(...)]` attributes (owned by the `validator` derive).
    pub attrs: Vec<syn::Attribute>,
    /// The struct's name.
    pub ident: syn::Ident,
    /// Generic parameters (models may not have any).
    pub generics: syn::Generics,
    /// The named fields.
    pub data: Data<(), FieldInput>,
    /// `table = "users"`.
    #[darling(default)]
    pub table: Option<SpannedValue<String>>,
    /// `schema = "billing"`: the schema (namespace) the table lives in.
    #[darling(default)]
    pub schema: Option<SpannedValue<String>>,
    /// `primary_key(a, b)`: a composite key in key order.
    #[darling(default)]
    pub primary_key: Option<SpannedValue<KeyList>>,
    /// `index(a, b, unique, name = "…")`, repeatable.
    #[darling(multiple, rename = "index")]
    pub indexes: Vec<IndexAttr>,
    /// `crate = "path"`: where the polystore crate is (default `::polystore`).
    #[darling(default, rename = "crate")]
    pub krate: Option<syn::Path>,
    /// `cache(ttl = "5m", …)`.
    #[darling(default)]
    pub cache: Option<SpannedValue<CacheAttr>>,
    /// `renamed_from = "old_table"`.
    #[darling(default)]
    pub renamed_from: Option<String>,
    /// `partition(range(created_at), every = "1 month")` and the other strategies.
    #[darling(default)]
    pub partition: Option<crate::partition::PartitionAttr>,
    /// `rule = path::to::function`, repeatable: business rules run before writes.
    #[darling(multiple, rename = "rule")]
    pub rules: Vec<syn::Path>,
    /// `async_rule = path::to::function`, repeatable: async business rules with access to the
    /// store (`async fn(&Model, &mut dyn Executor) -> RuleResult`).
    #[darling(multiple, rename = "async_rule")]
    pub async_rules: Vec<syn::Path>,
    /// `hooks`: the model implements `polystore::Hooks` (lifecycle hooks run around writes and
    /// after loads).
    pub hooks: Flag,
    /// `dto(Name, …)`, repeatable: generated data-transfer structs.
    #[darling(multiple, rename = "dto")]
    pub dtos: Vec<crate::dto::DtoAttr>,
    /// `distributed_by = tenant_id` / `distributed_by(range(col))` (see [`crate::distribution`]).
    #[darling(default)]
    pub distributed_by: Option<SpannedValue<crate::distribution::DistributedBy>>,
    /// `reference`: a table copied to every node of a distributed database.
    pub reference: Flag,
    /// `colocate_with = "orders"`: the distributed table whose shards this one's sit with.
    #[darling(default)]
    pub colocate_with: Option<crate::distribution::Colocate>,
}

/// `cache(ttl = "5m", jitter = "30s", negative_ttl = "10s", max_entry_bytes = 65536)`.
#[derive(FromMeta)]
pub struct CacheAttr {
    /// How long entries live.
    pub ttl: SpannedValue<String>,
    /// Random extra TTL, up to this much.
    #[darling(default)]
    pub jitter: Option<SpannedValue<String>>,
    /// How long a miss is remembered.
    #[darling(default)]
    pub negative_ttl: Option<SpannedValue<String>>,
    /// Largest entry worth caching, in bytes.
    #[darling(default)]
    pub max_entry_bytes: Option<usize>,
}

/// One field and its `#[model(...)]` attributes.
#[derive(FromField)]
#[darling(attributes(model), forward_attrs(validate, serde))]
pub struct FieldInput {
    /// The field's `#[validate(...)]` and `#[serde(...)]` attributes (copied onto DTO fields).
    pub attrs: Vec<syn::Attribute>,
    /// The field's name (always present: only named structs are accepted).
    pub ident: Option<syn::Ident>,
    /// The field's visibility (given to its handle).
    pub vis: syn::Visibility,
    /// The field's type.
    pub ty: syn::Type,
    /// `primary_key`.
    pub primary_key: Flag,
    /// `generated`: the database assigns the value.
    pub generated: Flag,
    /// `column = "name"`.
    #[darling(default)]
    pub column: Option<SpannedValue<String>>,
    /// `default = <literal>`.
    #[darling(default)]
    pub default: Option<DefaultExpr>,
    /// `created_at`.
    pub created_at: Flag,
    /// `updated_at`.
    pub updated_at: Flag,
    /// `version`: an integer optimistic-locking counter (checked and bumped by every write).
    pub version: Flag,
    /// `soft_delete`: an `Option<DateTime<Utc>>` deletion stamp (see `check::soft_delete`).
    pub soft_delete: Flag,
    /// `unique`: a single-field unique index.
    pub unique: Flag,
    /// `index`: a single-field index.
    pub index: Flag,
    /// `renamed_from = "old_column"`.
    #[darling(default)]
    pub renamed_from: Option<String>,
    /// `belongs_to` / `belongs_to(key = .., on_delete = ..)`: this field is a relation.
    #[darling(default)]
    pub belongs_to: Option<SpannedValue<crate::relation::RelAttr>>,
    /// `has_one` / `has_one(foreign_key = ..)`.
    #[darling(default)]
    pub has_one: Option<SpannedValue<crate::relation::RelAttr>>,
    /// `has_many` / `has_many(foreign_key = ..)`.
    #[darling(default)]
    pub has_many: Option<SpannedValue<crate::relation::RelAttr>>,
    /// `many_to_many(through = Join, left = .., right = ..)`.
    #[darling(default)]
    pub many_to_many: Option<SpannedValue<crate::relation::RelAttr>>,
    /// `set_index`: a Redis set of keys per value.
    pub set_index: Flag,
    /// `sorted_set`: a Redis sorted set scored by this field.
    pub sorted_set: Flag,
}

/// A list of field names: `primary_key(tenant, id)`.
pub struct KeyList(pub Vec<syn::Ident>);

impl FromMeta for KeyList {
    fn from_word() -> darling::Result<Self> {
        Err(Error::custom(
            "on the struct, `primary_key` lists the key's fields\n  \
             help: the correct format looks like #[model(primary_key(tenant_id, id))]; \
             for a single-field key write #[model(primary_key)] on that field",
        ))
    }

    fn from_list(items: &[NestedMeta]) -> darling::Result<Self> {
        let mut errors = Error::accumulator();
        let mut idents = Vec::new();
        for item in items {
            match item {
                NestedMeta::Meta(syn::Meta::Path(p)) if p.get_ident().is_some() => {
                    idents.extend(p.get_ident().cloned());
                }
                other => errors.push(
                    Error::custom("expected a field name\n  help: the correct format looks like #[model(primary_key(tenant_id, id))]")
                        .with_span(other),
                ),
            }
        }
        if idents.is_empty() && items.is_empty() {
            errors.push(Error::custom(
                "a primary key needs at least one field\n  help: the correct format looks like #[model(primary_key(tenant_id, id))]",
            ));
        }
        errors.finish_with(KeyList(idents))
    }
}

/// `index(a, b, unique, name = "…")`.
pub struct IndexAttr {
    /// The fields, in index order.
    pub fields: Vec<syn::Ident>,
    /// Whether `unique` was given.
    pub unique: bool,
    /// An explicit index name.
    pub name: Option<SpannedValue<String>>,
    /// `ttl = "30d"`: a MongoDB TTL index.
    pub ttl: Option<SpannedValue<String>>,
    /// The span of the whole `index(...)`.
    pub span: Span,
}

const INDEX_HELP: &str = "help: the correct format looks like #[model(index(email, unique))] or #[model(index(country, created_at, name = \"users_by_country\"))]";

impl FromMeta for IndexAttr {
    fn from_meta(item: &syn::Meta) -> darling::Result<Self> {
        let span = item.span();
        let list = match item {
            syn::Meta::List(list) => list,
            other => {
                return Err(Error::custom(format!("`index` lists the indexed fields\n  {INDEX_HELP}")).with_span(other));
            }
        };
        let items = NestedMeta::parse_meta_list(list.tokens.clone())?;
        let mut errors = Error::accumulator();
        let mut out = IndexAttr { fields: Vec::new(), unique: false, name: None, ttl: None, span };
        for item in &items {
            match item {
                NestedMeta::Meta(syn::Meta::Path(p)) if p.is_ident("unique") => out.unique = true,
                NestedMeta::Meta(syn::Meta::Path(p)) if p.get_ident().is_some() => {
                    out.fields.extend(p.get_ident().cloned());
                }
                NestedMeta::Meta(meta @ syn::Meta::NameValue(nv)) if nv.path.is_ident("name") => {
                    if let Some(name) = errors.handle(String::from_meta(meta)) {
                        out.name = Some(SpannedValue::new(name, nv.value.span()));
                    }
                }
                NestedMeta::Meta(meta @ syn::Meta::NameValue(nv)) if nv.path.is_ident("ttl") => {
                    if let Some(ttl) = errors.handle(String::from_meta(meta)) {
                        out.ttl = Some(SpannedValue::new(ttl, nv.value.span()));
                    }
                }
                other => errors.push(
                    Error::custom(format!(
                        "expected a field name, `unique`, `name = \"...\"` or `ttl = \"30d\"`\n  {INDEX_HELP}"
                    ))
                    .with_span(other),
                ),
            }
        }
        if out.fields.is_empty() {
            errors.push(Error::custom(format!("an index needs at least one field\n  {INDEX_HELP}")).with_span(item));
        }
        errors.finish_with(out)
    }
}

/// The right-hand side of `default = …`, kept as written (darling would parse the contents of
/// a string literal as an expression).
pub struct DefaultExpr(pub syn::Expr);

impl FromMeta for DefaultExpr {
    fn from_expr(expr: &syn::Expr) -> darling::Result<Self> {
        Ok(DefaultExpr(expr.clone()))
    }
}

impl FieldInput {
    /// The relation this field declares, if any: its kind, options and the keyword's span.
    pub fn relation(&self) -> Option<(crate::relation::Kind, &crate::relation::RelAttr, Span)> {
        use crate::relation::Kind;
        [
            (Kind::BelongsTo, &self.belongs_to),
            (Kind::HasOne, &self.has_one),
            (Kind::HasMany, &self.has_many),
            (Kind::ManyToMany, &self.many_to_many),
        ]
        .into_iter()
        .find_map(|(kind, attr)| attr.as_ref().map(|a| (kind, &**a, a.span())))
    }
}

/// A keyword option that takes no value (`#[model(primary_key)]`, `#[model(hooks)]`): present
/// or not, with the keyword's span. Unlike darling's own flag, a value given to it
/// (`hooks = normalise`, `unique(true)`) is reported as what it is — a keyword written with a
/// value — on the value's span, with the form to write instead.
#[derive(Debug, Default, Clone, Copy)]
pub struct Flag(Option<Span>);

impl Flag {
    /// Whether the keyword was written.
    pub fn is_present(&self) -> bool {
        self.0.is_some()
    }

    /// The keyword's span (the call site when absent).
    pub fn span(&self) -> Span {
        self.0.unwrap_or_else(Span::call_site)
    }
}

impl FromMeta for Flag {
    fn from_none() -> Option<Self> {
        Some(Flag(None))
    }

    fn from_meta(item: &syn::Meta) -> darling::Result<Self> {
        let name = item.path().segments.last().map(|s| s.ident.to_string()).unwrap_or_default();
        let extra = if name == "hooks" { " and implement `polystore::Hooks` for the model" } else { "" };
        let message = format!("`{name}` takes no value: write `{name}` alone{extra}");
        match item {
            syn::Meta::Path(path) => Ok(Flag(Some(path.span()))),
            syn::Meta::NameValue(nv) => Err(Error::custom(message).with_span(&nv.value)),
            syn::Meta::List(list) => Err(Error::custom(message).with_span(&list.tokens)),
        }
    }
}
