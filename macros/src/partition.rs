//! `#[model(partition(...))]`: parsing, the compile-time rules of partitioned models, and the
//! `PartitionSchema` tokens.
//!
//! Rules (each a compile error on the offending span, naming the fix):
//! - the partition column is a field of the model;
//! - the primary key and every unique index include the partition column (PostgreSQL enforces
//!   uniqueness only within one partition, so it refuses keys that leave it out);
//! - `range` takes `every`: a time interval (`"1 month"`) on a time column, an integer on an
//!   integer column (the column's type is checked by a const assertion on its `COLUMN`);
//! - `retain` / `archive` / `ahead` only with `range`, `retain` only with a time interval;
//! - `hash` takes `modulus = n` with `n >= 2`; `values(...)` only with `list`.

use darling::ast::NestedMeta;
use darling::util::SpannedValue;
use darling::{Error, FromMeta};
use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use crate::attr::{FieldInput, ModelInput};
use crate::check::On as _;
use crate::ir::Model;

const HELP: &str = "help: the correct format looks like #[model(partition(range(created_at), every = \"1 month\"))], \
                    #[model(partition(list(country), values(\"DE\", \"FR\")))] or #[model(partition(hash(id, modulus = 8)))]";

/// Which strategy `partition(...)` names.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Strategy {
    Range,
    List,
    Hash,
}

/// `partition(...)` as written.
pub struct PartitionAttr {
    strategy: Strategy,
    /// The partition column, as written inside `range(..)` / `list(..)` / `hash(..)`.
    column: syn::Ident,
    /// The span of `range(..)` / `list(..)` / `hash(..)`.
    strategy_span: Span,
    /// `modulus = n` inside `hash(..)`.
    modulus: Option<syn::LitInt>,
    every: Option<syn::Lit>,
    ahead: Option<syn::LitInt>,
    retain: Option<SpannedValue<String>>,
    archive: Option<SpannedValue<String>>,
    values: Option<(Vec<syn::Lit>, Span)>,
    span: Span,
}

impl FromMeta for PartitionAttr {
    fn from_meta(item: &syn::Meta) -> darling::Result<Self> {
        let span = item.span();
        let syn::Meta::List(list) = item else {
            return Err(Error::custom(format!("`partition` says how the table is split\n  {HELP}")).with_span(item));
        };
        let items = NestedMeta::parse_meta_list(list.tokens.clone())?;
        let mut errors = Error::accumulator();
        let mut strategy: Option<(Strategy, syn::Ident, Span, Option<syn::LitInt>)> = None;
        let mut out_every = None;
        let mut ahead = None;
        let mut retain = None;
        let mut archive = None;
        let mut values = None;
        for item in &items {
            let NestedMeta::Meta(meta) = item else {
                errors.push(Error::custom(format!("unexpected literal in `partition(...)`\n  {HELP}")).with_span(item));
                continue;
            };
            let path = meta.path();
            let which = [("range", Strategy::Range), ("list", Strategy::List), ("hash", Strategy::Hash)]
                .into_iter()
                .find(|(name, _)| path.is_ident(name))
                .map(|(_, s)| s);
            if let Some(which) = which {
                if strategy.is_some() {
                    errors.push(
                        Error::custom(
                            "a table is partitioned one way: give one of `range(..)`, `list(..)`, `hash(..)`",
                        )
                        .with_span(meta),
                    );
                    continue;
                }
                if let Some((column, modulus)) = errors.handle(strategy_args(meta, which)) {
                    strategy = Some((which, column, meta.span(), modulus));
                }
                continue;
            }
            match meta {
                syn::Meta::NameValue(nv) if nv.path.is_ident("every") => match &nv.value {
                    syn::Expr::Lit(l) if matches!(l.lit, syn::Lit::Str(_) | syn::Lit::Int(_)) => {
                        out_every = Some(l.lit.clone());
                    }
                    other => errors.push(
                        Error::custom(
                            "`every` is a time interval such as \"1 month\" or \"7 days\", or an integer block size such as 1000000",
                        )
                        .with_span(other),
                    ),
                },
                syn::Meta::NameValue(nv) if nv.path.is_ident("ahead") => match &nv.value {
                    syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Int(i), .. }) => ahead = Some(i.clone()),
                    other => errors.push(
                        Error::custom("`ahead` is how many partitions to keep created after the current one, e.g. `ahead = 3`")
                            .with_span(other),
                    ),
                },
                syn::Meta::NameValue(nv) if nv.path.is_ident("retain") => {
                    if let Some(s) = errors.handle(String::from_meta(meta)) {
                        retain = Some(SpannedValue::new(s, nv.value.span()));
                    }
                }
                syn::Meta::NameValue(nv) if nv.path.is_ident("archive") => {
                    if let Some(s) = errors.handle(String::from_meta(meta)) {
                        archive = Some(SpannedValue::new(s, nv.value.span()));
                    }
                }
                syn::Meta::List(l) if l.path.is_ident("values") => {
                    match l.parse_args_with(syn::punctuated::Punctuated::<syn::Lit, syn::Token![,]>::parse_terminated) {
                        Ok(lits) => values = Some((lits.into_iter().collect(), l.span())),
                        Err(e) => errors.push(
                            Error::from(e).with_span(l), // keep syn's position
                        ),
                    }
                }
                other => errors.push(
                    Error::custom(format!(
                        "unknown partition option\n  help: `partition` takes one of range(col) / list(col) / hash(col, modulus = n), \
                         and `every`, `ahead`, `retain`, `archive` (range) or `values(..)` (list)\n  {HELP}"
                    ))
                    .with_span(other),
                ),
            }
        }
        let Some((strategy, column, strategy_span, modulus)) = strategy else {
            errors.push(
                Error::custom(format!(
                    "`partition` needs a strategy: range(col), list(col) or hash(col, modulus = n)\n  {HELP}"
                ))
                .with_span(item),
            );
            return Err(errors.finish().expect_err("an error was pushed"));
        };
        errors.finish_with(PartitionAttr {
            strategy,
            column,
            strategy_span,
            modulus,
            every: out_every,
            ahead,
            retain,
            archive,
            values,
            span,
        })
    }
}

/// The column (and hash modulus) inside `range(col)` / `list(col)` / `hash(col, modulus = n)`.
fn strategy_args(meta: &syn::Meta, which: Strategy) -> darling::Result<(syn::Ident, Option<syn::LitInt>)> {
    let syn::Meta::List(list) = meta else {
        return Err(
            Error::custom(format!("name the partition column: `{}(column)`\n  {HELP}", keyword(which))).with_span(meta)
        );
    };
    let items = NestedMeta::parse_meta_list(list.tokens.clone())?;
    let mut column = None;
    let mut modulus = None;
    let mut errors = Error::accumulator();
    for item in &items {
        match item {
            NestedMeta::Meta(syn::Meta::Path(p)) if p.get_ident().is_some() => {
                if column.is_some() {
                    errors.push(
                        Error::custom(
                            "polystore partitions by one column\n  help: name a single column, e.g. range(created_at)",
                        )
                        .with_span(p),
                    );
                } else {
                    column = p.get_ident().cloned();
                }
            }
            NestedMeta::Meta(syn::Meta::NameValue(nv)) if nv.path.is_ident("modulus") && which == Strategy::Hash => {
                match &nv.value {
                    syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Int(i), .. }) => modulus = Some(i.clone()),
                    other => errors.push(
                        Error::custom("`modulus` is the number of hash partitions, e.g. `modulus = 8`")
                            .with_span(other),
                    ),
                }
            }
            other => errors.push(Error::custom(format!("expected the partition column\n  {HELP}")).with_span(other)),
        }
    }
    let Some(column) = column else {
        errors.push(
            Error::custom(format!("name the partition column: `{}(column)`\n  {HELP}", keyword(which))).with_span(meta),
        );
        return Err(errors.finish().expect_err("an error was pushed"));
    };
    errors.finish_with((column, modulus))
}

fn keyword(s: Strategy) -> &'static str {
    match s {
        Strategy::Range => "range",
        Strategy::List => "list",
        Strategy::Hash => "hash",
    }
}

/// A range partition's width, as validated.
pub enum Every {
    /// Calendar months.
    Months(u32),
    /// Days.
    Days(u32),
    /// An integer block.
    Int(i64),
}

/// A list partition value.
pub enum Value {
    /// Text.
    Str(String),
    /// Integer.
    Int(i64),
}

/// The validated partitioning of a model.
pub struct Partition {
    /// Position of the partition column in the model's fields.
    pub column: usize,
    /// The span of the column's name in `range(..)` etc. (type errors point there).
    pub column_span: Span,
    /// The strategy and its parameters.
    pub kind: Kind,
}

/// A validated strategy.
pub enum Kind {
    /// `range(..)`.
    Range {
        /// Partition width.
        every: Every,
        /// The span of `every`'s value.
        every_span: Span,
        /// Partitions created ahead.
        ahead: u32,
        /// Retention bound.
        retain: Option<Every>,
        /// Archive schema.
        archive: Option<String>,
    },
    /// `list(..)`.
    List {
        /// The values, each with its own partition.
        values: Vec<Value>,
    },
    /// `hash(..)`.
    Hash {
        /// The number of partitions.
        modulus: u32,
    },
}

/// Validates `partition(...)` against the model; problems go to `errors`.
pub fn resolve(
    attr: &PartitionAttr,
    input: &ModelInput,
    fields: &[&FieldInput],
    model: &Model,
    errors: &mut darling::error::Accumulator,
) -> Option<Partition> {
    let Some(column) = model.position(&attr.column) else {
        let names: Vec<String> = model.fields.iter().map(|f| f.ident.to_string()).collect();
        let wanted = attr.column.to_string();
        let hint = match crate::naming::did_you_mean(&wanted, names.iter().map(String::as_str)) {
            Some(s) => format!("help: did you mean `{s}`?"),
            None => format!("help: the model's fields are: {}", names.join(", ")),
        };
        errors.push(
            Error::custom(format!("`partition` names `{wanted}`, which is not a field of this model\n  {hint}"))
                .with_span(&attr.column),
        );
        return None;
    };
    let col_name = attr.column.to_string();
    key_rules(attr, input, fields, model, column, &col_name, errors);
    let range_only = |what: &str, span: Span, errors: &mut darling::error::Accumulator| {
        errors.push(
            Error::custom(format!(
                "`{what}` applies to range partitioning only\n  help: remove it, or partition with range({col_name})"
            ))
            .on(span),
        );
    };
    if attr.strategy != Strategy::Range {
        if let Some(e) = &attr.every {
            range_only("every", e.span(), errors);
        }
        if let Some(a) = &attr.ahead {
            range_only("ahead", a.span(), errors);
        }
        if let Some(r) = &attr.retain {
            range_only("retain", r.span(), errors);
        }
        if let Some(a) = &attr.archive {
            range_only("archive", a.span(), errors);
        }
    }
    if attr.strategy != Strategy::List
        && let Some((_, span)) = &attr.values
    {
        errors.push(
            Error::custom(format!(
                "`values(..)` lists the values of list partitions\n  help: remove it, or partition with list({col_name})"
            ))
            .on(*span),
        );
    }
    let kind = match attr.strategy {
        Strategy::Range => {
            let Some(every) = &attr.every else {
                errors.push(
                    Error::custom(format!(
                        "range partitioning needs the width of one partition\n  help: add `every`: \
                         #[model(partition(range({col_name}), every = \"1 month\"))] (or `every = 1000000` on an integer column)"
                    ))
                    .on(attr.strategy_span),
                );
                return None;
            };
            let every_value = match every {
                syn::Lit::Str(s) => match parse_interval(&s.value()) {
                    Ok(e) => e,
                    Err(why) => {
                        errors.push(
                            Error::custom(format!(
                                "{why}\n  help: write `every = \"1 month\"`, \"7 days\", \"1 week\" or \"1 year\""
                            ))
                            .with_span(s),
                        );
                        return None;
                    }
                },
                syn::Lit::Int(i) => match i.base10_parse::<i64>() {
                    Ok(n) if n >= 1 => Every::Int(n),
                    _ => {
                        errors.push(
                            Error::custom(
                                "an integer partition width must be a positive number, e.g. `every = 1000000`",
                            )
                            .with_span(i),
                        );
                        return None;
                    }
                },
                _ => unreachable!("only string and integer literals are kept"),
            };
            let retain = attr.retain.as_ref().and_then(|r| match parse_interval(r) {
                Ok(e) if matches!(every_value, Every::Int(_)) => {
                    let _ = e;
                    errors.push(
                        Error::custom("`retain` is a time bound, and this table is partitioned by integer blocks\n  help: remove `retain`")
                            .on(r.span()),
                    );
                    None
                }
                Ok(e) => Some(e),
                Err(why) => {
                    errors.push(Error::custom(format!("{why}\n  help: write `retain = \"12 months\"` or \"90 days\"")).on(r.span()));
                    None
                }
            });
            if let Some(a) = &attr.archive {
                if retain.is_none() && attr.retain.is_none() {
                    errors.push(
                        Error::custom("`archive` names where expired partitions go, and there is no `retain` bound\n  help: add `retain = \"12 months\"`")
                            .on(a.span()),
                    );
                }
                crate::check::schema_name(a, errors);
            }
            let ahead = match &attr.ahead {
                None => 3,
                Some(a) => match a.base10_parse::<u32>() {
                    Ok(n) if n <= 1000 => n,
                    _ => {
                        errors.push(Error::custom("`ahead` is a count of partitions from 0 to 1000").with_span(a));
                        3
                    }
                },
            };
            Kind::Range {
                every: every_value,
                every_span: every.span(),
                ahead,
                retain,
                archive: attr.archive.as_ref().map(|a| a.to_string()),
            }
        }
        Strategy::List => {
            let mut values = Vec::new();
            let mut names = Vec::new();
            for lit in attr.values.iter().flat_map(|(v, _)| v) {
                let (value, name) = match lit {
                    syn::Lit::Str(s) => {
                        let v = s.value();
                        let name: String = v
                            .chars()
                            .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' })
                            .collect();
                        (Value::Str(v), name)
                    }
                    syn::Lit::Int(i) => match i.base10_parse::<i64>() {
                        Ok(n) => (Value::Int(n), if n < 0 { format!("m{}", n.unsigned_abs()) } else { n.to_string() }),
                        Err(e) => {
                            errors.push(Error::custom(e.to_string()).with_span(i));
                            continue;
                        }
                    },
                    other => {
                        errors.push(
                            Error::custom("a list partition value is a string or an integer literal").with_span(other),
                        );
                        continue;
                    }
                };
                if names.contains(&name) {
                    errors.push(
                        Error::custom(format!(
                            "this value's partition would be named `{}_v_{name}` like an earlier value's \
                             (partition names keep letters and digits, lower-cased)\n  help: list each value once: \
                             values differing only in case or punctuation would share a partition",
                            model.table
                        ))
                        .with_span(lit),
                    );
                    continue;
                }
                names.push(name);
                values.push(value);
            }
            Kind::List { values }
        }
        Strategy::Hash => {
            let modulus = match &attr.modulus {
                None => {
                    errors.push(
                        Error::custom(format!(
                            "hash partitioning needs the number of partitions\n  help: write hash({col_name}, modulus = 8)"
                        ))
                        .on(attr.strategy_span),
                    );
                    return None;
                }
                Some(m) => match m.base10_parse::<u32>() {
                    Ok(n) if (2..=1024).contains(&n) => n,
                    _ => {
                        errors.push(
                            Error::custom(
                                "a hash modulus is a number of partitions from 2 to 1024\n  help: with one partition the table \
                                 needs no partitioning; write e.g. `modulus = 8`",
                            )
                            .with_span(m),
                        );
                        return None;
                    }
                },
            };
            Kind::Hash { modulus }
        }
    };
    let _ = attr.span;
    Some(Partition { column, column_span: attr.column.span(), kind })
}

/// Rule: the primary key and each unique index include the partition column.
fn key_rules(
    attr: &PartitionAttr,
    input: &ModelInput,
    fields: &[&FieldInput],
    model: &Model,
    column: usize,
    col_name: &str,
    errors: &mut darling::error::Accumulator,
) {
    if !model.primary_key.is_empty() && !model.primary_key.contains(&column) {
        let key: Vec<String> = model.primary_key.iter().map(|&i| model.fields[i].ident.to_string()).collect();
        let span = match &input.primary_key {
            Some(list) => list.span(),
            None => {
                fields.iter().find(|f| f.primary_key.is_present()).map(|f| f.primary_key.span()).unwrap_or(attr.span)
            }
        };
        errors.push(
            Error::custom(format!(
                "the primary key of a partitioned model must include the partition column `{col_name}`: \
                 PostgreSQL checks uniqueness within each partition only\n  \
                 help: declare the key on the struct: #[model(primary_key({}, {col_name}))]",
                key.join(", ")
            ))
            .on(span),
        );
    }
    // Unique indexes, with the span where each is declared (field flags, then struct attributes,
    // as `check::indexes` numbers them).
    let mut spans: Vec<(Span, Vec<usize>, bool)> = Vec::new();
    for (i, f) in fields.iter().enumerate() {
        if f.unique.is_present() {
            spans.push((f.unique.span(), vec![i], true));
        }
        if f.index.is_present() {
            spans.push((f.index.span(), vec![i], false));
        }
    }
    for ix in &input.indexes {
        let positions = ix.fields.iter().filter_map(|id| model.position(id)).collect();
        spans.push((ix.span, positions, ix.unique));
    }
    for (span, positions, unique) in spans {
        if unique && !positions.contains(&column) {
            let names: Vec<String> = positions.iter().map(|&i| model.fields[i].ident.to_string()).collect();
            errors.push(
                Error::custom(format!(
                    "a unique index of a partitioned model must include the partition column `{col_name}`: \
                     PostgreSQL checks uniqueness within each partition only\n  \
                     help: declare it on the struct with the partition column: #[model(index({}, {col_name}, unique))]",
                    names.join(", ")
                ))
                .on(span),
            );
        }
    }
}

/// `"1 month"` and friends (the same grammar as `PartitionStep::parse` in the runtime).
fn parse_interval(text: &str) -> Result<Every, String> {
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    if digits == 0 {
        return Err(format!("cannot read {text:?} as a partition interval: it must start with a number"));
    }
    let n: u32 = t[..digits].parse().map_err(|_| format!("{text:?} is too large"))?;
    if n == 0 {
        return Err(format!("a partition interval must be longer than zero, not {text:?}"));
    }
    let scaled = |factor: u32| n.checked_mul(factor).ok_or_else(|| format!("{text:?} is too large"));
    match t[digits..].trim() {
        "day" | "days" | "d" => Ok(Every::Days(n)),
        "week" | "weeks" | "w" => Ok(Every::Days(scaled(7)?)),
        "month" | "months" | "mon" => Ok(Every::Months(n)),
        "year" | "years" | "y" => Ok(Every::Months(scaled(12)?)),
        "" => Err(format!("{text:?} needs a unit (days, weeks, months or years)")),
        other => {
            Err(format!("unknown partition interval unit {other:?} in {text:?}: use days, weeks, months or years"))
        }
    }
}

fn step_tokens(e: &Every) -> TokenStream {
    match e {
        Every::Months(n) => quote!(__ps::PartitionStep::Months(#n)),
        Every::Days(n) => quote!(__ps::PartitionStep::Days(#n)),
        Every::Int(n) => quote!(__ps::PartitionStep::Int(#n)),
    }
}

/// The `ModelSchema::partition` expression.
pub fn schema_tokens(p: Option<&Partition>) -> TokenStream {
    let Some(p) = p else { return quote!(::core::option::Option::None) };
    let column = p.column;
    let kind = match &p.kind {
        Kind::Range { every, ahead, retain, archive, .. } => {
            let every = step_tokens(every);
            let retain = match retain {
                Some(r) => {
                    let r = step_tokens(r);
                    quote!(::core::option::Option::Some(#r))
                }
                None => quote!(::core::option::Option::None),
            };
            let archive = match archive {
                Some(a) => quote!(::core::option::Option::Some(#a)),
                None => quote!(::core::option::Option::None),
            };
            quote!(__ps::PartitionKind::Range { every: #every, ahead: #ahead, retain: #retain, archive: #archive })
        }
        Kind::List { values } => {
            let values = values.iter().map(|v| match v {
                Value::Str(s) => quote!(__ps::PartitionValue::Str(#s)),
                Value::Int(n) => quote!(__ps::PartitionValue::Int(#n)),
            });
            quote!(__ps::PartitionKind::List { values: &[#(#values),*] })
        }
        Kind::Hash { modulus } => quote!(__ps::PartitionKind::Hash { modulus: #modulus }),
    };
    quote!(::core::option::Option::Some(__ps::PartitionSchema { column: #column, kind: #kind }))
}

/// Compile-time checks on the partition column's type (the macro sees only its syntax): a
/// range by time interval needs a time column, a range by integer blocks an integer column,
/// and a list's values must fit the column.
pub fn assertions(p: Option<&Partition>, model: &Model) -> TokenStream {
    let Some(p) = p else { return TokenStream::new() };
    let field = &model.fields[p.column];
    let ty = &field.ty;
    let name = field.ident.to_string();
    let ty_text = quote!(#ty).to_string().replace(' ', "");
    match &p.kind {
        Kind::Range { every: Every::Int(_), every_span, .. } => {
            let message = format!(
                "`every` is an integer block size, so the range partition column `{name}` must be an integer \
                 (i16, i32 or i64), not `{ty_text}`; for a time column write `every = \"1 month\"`"
            );
            quote_spanned!(*every_span=> const _: () = if !__ps::partition_int_column(<#ty as __ps::FieldType>::COLUMN) {
                ::core::panic!(#message)
            };)
        }
        Kind::Range { .. } => {
            let message = format!(
                "range partitioning by a time interval needs a time column (DateTime<Utc>, NaiveDateTime or NaiveDate), \
                 and `{name}` is `{ty_text}`; for an integer column write `every = 1000000`"
            );
            let span = p.column_span;
            quote_spanned!(span=> const _: () = if !__ps::partition_time_column(<#ty as __ps::FieldType>::COLUMN) {
                ::core::panic!(#message)
            };)
        }
        Kind::List { values } => {
            let span = p.column_span;
            let checks = values.iter().map(|v| {
                let (value, what) = match v {
                    Value::Str(s) => (quote!(__ps::DefaultValue::Str(#s)), "a string"),
                    Value::Int(n) => (quote!(__ps::DefaultValue::Int(#n)), "an integer"),
                };
                let message = format!("a list partition value is {what}, which the partition column `{name}` of type `{ty_text}` cannot hold");
                quote_spanned!(span=> const _: () = if !#value.fits(<#ty as __ps::FieldType>::COLUMN) {
                    ::core::panic!(#message)
                };)
            });
            quote!(#(#checks)*)
        }
        Kind::Hash { .. } => TokenStream::new(),
    }
}
