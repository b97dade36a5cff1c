//! Schema documentation generated from the models' static descriptions: one Markdown page with
//! a Mermaid `erDiagram` of the relations and, per model, its fields (Rust type and stored type
//! on PostgreSQL, SQLite and MongoDB), keys, defaults, constraints, indexes, validation rules,
//! relations and cache policy. `migrate docs` writes it for every registered model.
//!
//! The page depends only on the [`ModelSchema`]s (sorted by model name), never on the enabled
//! store features, so a checked-in copy can be compared with a fresh one in a test.

use std::fmt::Write as _;
use std::time::Duration;

use super::{
    AutoTimestamp, CachePolicy, Check, ColumnType, DefaultValue, FieldSchema, ModelSchema, RedisIndex, RefAction,
    RelationKind, RelationSchema, Scalar,
};

/// The Markdown page documenting `schemas` (in model-name order, whatever the slice's order).
///
/// ```
/// use polystore::prelude::*;
///
/// #[derive(Model, Debug, Clone)]
/// pub struct Tag {
///     #[model(primary_key, generated)]
///     pub id: i64,
///     #[model(unique)]
///     pub label: String,
/// }
///
/// let page = polystore::schema::docs::markdown(&[Tag::SCHEMA]);
/// assert!(page.contains("| `label` | `String` | `TEXT` | `TEXT` | `string` |"));
/// ```
pub fn markdown(schemas: &[&ModelSchema]) -> String {
    let mut models: Vec<&ModelSchema> = schemas.to_vec();
    models.sort_by(|a, b| a.name.cmp(b.name).then(a.table.cmp(b.table)));
    let mut out = String::from("# Schema\n\n");
    out.push_str(
        "Generated from the models' schema descriptions by `polystore::schema::docs` \
         (`migrate docs`); do not edit by hand.\n\n",
    );
    for m in &models {
        let _ = writeln!(out, "- [{}](#{}): `{}`", m.name, m.name.to_lowercase(), m.table);
    }
    out.push_str("\n## Relations\n\n```mermaid\n");
    out.push_str(&er_diagram(&models));
    out.push_str("```\n");
    for m in &models {
        out.push('\n');
        model_section(&mut out, m);
    }
    out
}

/// The Markdown page for every model registered in this program ([`super::registered`]).
pub fn registered_markdown() -> String {
    let schemas: Vec<&'static ModelSchema> = super::registered().collect();
    markdown(&schemas)
}

/// The body of a Mermaid `erDiagram` (without the code fence): one entity per model with its
/// fields, and one line per relation. A `has_one` / `has_many` and the `belongs_to` it mirrors
/// are drawn once, as are the two sides of a `many_to_many` through the same join model.
pub fn er_diagram(models: &[&ModelSchema]) -> String {
    let mut out = String::from("erDiagram\n");
    for m in models {
        let _ = writeln!(out, "    {} {{", m.name);
        for (i, f) in m.fields.iter().enumerate() {
            let mut marks = Vec::new();
            if m.is_key(i) {
                marks.push("PK");
            }
            if m.relations.iter().any(|r| r.kind == RelationKind::BelongsTo && r.local_field == i) {
                marks.push("FK");
            }
            if m.indexes.iter().any(|ix| ix.unique && ix.fields == [i]) {
                marks.push("UK");
            }
            let marks = if marks.is_empty() { String::new() } else { format!(" {}", marks.join(", ")) };
            let ty = format!("{}{}", scalar_name(f.ty.scalar), if f.ty.array { "_array" } else { "" });
            let _ = writeln!(out, "        {ty} {}{marks}", f.name);
        }
        out.push_str("    }\n");
    }
    let mut drawn_through: Vec<&str> = Vec::new();
    for m in models {
        for r in m.relations {
            let target = (r.target)();
            let line = match r.kind {
                RelationKind::BelongsTo if mirrored_by_target(models, m, r, target) => continue,
                RelationKind::BelongsTo if m.fields[r.local_field].ty.nullable => "}o--o|",
                RelationKind::BelongsTo => "}o--||",
                RelationKind::HasOne => "||--o|",
                RelationKind::HasMany => "||--o{",
                RelationKind::ManyToMany => {
                    let join = r.through.as_ref().map(|t| (t.schema)().name).unwrap_or_default();
                    if drawn_through.contains(&join) {
                        continue;
                    }
                    drawn_through.push(join);
                    "}o--o{"
                }
            };
            let _ = writeln!(out, "    {} {line} {} : \"{}\"", m.name, target.name, r.name);
        }
    }
    out
}

/// Whether `target`, one of the documented `models`, declares the `has_one` / `has_many` that
/// `r` (a `belongs_to` on `m`) is the other side of: same two models, same foreign key.
fn mirrored_by_target(models: &[&ModelSchema], m: &ModelSchema, r: &RelationSchema, target: &ModelSchema) -> bool {
    let fk = m.fields[r.local_field].name;
    models.iter().any(|&d| std::ptr::eq(d, target))
        && target.relations.iter().any(|back| {
            matches!(back.kind, RelationKind::HasOne | RelationKind::HasMany)
                && std::ptr::eq((back.target)(), m)
                && back.remote_field == Some(fk)
        })
}

fn model_section(out: &mut String, m: &ModelSchema) {
    let _ = writeln!(out, "## {}\n", m.name);
    let _ = write!(out, "Table (SQL) / collection (MongoDB): `{}`", m.table);
    if let Some(old) = m.renamed_from {
        let _ = write!(out, ", renamed from `{old}`");
    }
    out.push_str(".\n\n");
    let key: Vec<String> = m.key_fields().map(|f| format!("`{}`", f.name)).collect();
    if key.is_empty() {
        out.push_str("Primary key: none.\n\n");
    } else {
        let _ = writeln!(out, "Primary key: {} (constraint `{}`).\n", key.join(", "), m.primary_key_name());
    }
    out.push_str("| Field | Rust type | PostgreSQL | SQLite | MongoDB (BSON) | Default | Constraints | Rules |\n");
    out.push_str("|---|---|---|---|---|---|---|---|\n");
    for (i, f) in m.fields.iter().enumerate() {
        let name = if f.column == f.name { format!("`{}`", f.name) } else { format!("`{}` (`{}`)", f.name, f.column) };
        let mongo_key = mongo_key(m, i);
        let mongo = if mongo_key == f.column {
            format!("`{}`", cell(&bson_type(f.ty)))
        } else {
            format!("`{}` as `{mongo_key}`", cell(&bson_type(f.ty)))
        };
        let rules: Vec<String> = f.checks.iter().map(|c| format!("`{}`", rule(c))).collect();
        let _ = writeln!(
            out,
            "| {name} | `{}` | `{}` | `{}` | {mongo} | {} | {} | {} |",
            cell(&rust_type(f.ty)),
            postgres_type(f.ty),
            sqlite_type(f.ty),
            cell(&default(f)),
            cell(&constraints(m, i, f).join(", ")),
            cell(&rules.join(", ")),
        );
    }
    indexes(out, m);
    relations(out, m);
    out.push_str("\nCache: ");
    out.push_str(&cache(m.cache.as_ref()));
    out.push('\n');
}

fn indexes(out: &mut String, m: &ModelSchema) {
    let fk_indexes = foreign_key_indexes(m);
    if m.indexes.is_empty() && fk_indexes.is_empty() {
        out.push_str("\nIndexes: none.\n");
        return;
    }
    out.push_str("\n| Index | Fields | Unique | Notes |\n|---|---|---|---|\n");
    for ix in m.indexes {
        let fields: Vec<String> = ix.fields.iter().map(|&i| format!("`{}`", m.fields[i].name)).collect();
        let notes =
            ix.ttl.map(|ttl| format!("MongoDB TTL: documents expire {} after it", duration(ttl))).unwrap_or_default();
        let unique = if ix.unique { "yes" } else { "no" };
        let _ = writeln!(out, "| `{}` | {} | {unique} | {notes} |", ix.name, fields.join(", "));
    }
    for (name, field) in fk_indexes {
        let _ = writeln!(out, "| `{name}` | `{field}` | no | for the foreign key; SQL stores only |");
    }
}

/// The index the SQL stores add on each `belongs_to` key column that neither the primary key
/// nor a declared index starts with (as `sql::ddl::foreign_key_indexes` creates it): name and
/// field.
fn foreign_key_indexes(m: &ModelSchema) -> Vec<(String, &'static str)> {
    let covered = |field: usize| {
        m.primary_key.first() == Some(&field) || m.indexes.iter().any(|ix| ix.fields.first() == Some(&field))
    };
    m.relations
        .iter()
        .filter(|r| r.kind == RelationKind::BelongsTo && !covered(r.local_field))
        .map(|r| {
            let f = &m.fields[r.local_field];
            (format!("{}_{}_idx", m.table_name(), f.column), f.name)
        })
        .collect()
}

fn relations(out: &mut String, m: &ModelSchema) {
    if m.relations.is_empty() {
        out.push_str("\nRelations: none.\n");
        return;
    }
    out.push_str("\n| Relation | Kind | Model | Linked by |\n|---|---|---|---|\n");
    for r in m.relations {
        let target = (r.target)();
        let local = m.fields[r.local_field].name;
        let (kind, link) = match r.kind {
            RelationKind::BelongsTo => (
                "belongs to",
                format!(
                    "`{local}` → `{}.{}`, on delete {}, on update {}",
                    target.name,
                    target.key_fields().map(|f| f.name).collect::<Vec<_>>().join(", "),
                    action(r.on_delete),
                    action(r.on_update),
                ),
            ),
            RelationKind::HasOne | RelationKind::HasMany => (
                if r.kind == RelationKind::HasOne { "has one" } else { "has many" },
                format!("`{}.{}` → `{}.{local}`", target.name, r.remote_field.unwrap_or_default(), m.name),
            ),
            RelationKind::ManyToMany => {
                let link = match &r.through {
                    Some(t) => format!("through `{}` (`{}`, `{}`)", (t.schema)().name, t.left, t.right),
                    None => String::new(),
                };
                ("many to many", link)
            }
        };
        let _ =
            writeln!(out, "| `{}` | {kind} | [{}](#{}) | {} |", r.name, target.name, target.name.to_lowercase(), link);
    }
}

/// Where a field lives in a MongoDB document: `_id` for a single-field key, `_id.<column>` in a
/// composite key, its column otherwise.
fn mongo_key(m: &ModelSchema, i: usize) -> String {
    let column = m.fields[i].column;
    match (m.is_key(i), m.primary_key.len()) {
        (true, 1) => "_id".to_owned(),
        (true, _) => format!("_id.{column}"),
        (false, _) => column.to_owned(),
    }
}

/// The Rust type a field of this stored type has (enums and embedded types by their kind: the
/// schema description keeps stored types, not Rust type names).
pub fn rust_type(ty: ColumnType) -> String {
    let base = match ty.scalar {
        Scalar::Bool => "bool".to_owned(),
        Scalar::I16 => "i16".to_owned(),
        Scalar::I32 => "i32".to_owned(),
        Scalar::I64 => "i64".to_owned(),
        Scalar::F32 => "f32".to_owned(),
        Scalar::F64 => "f64".to_owned(),
        Scalar::Text => "String".to_owned(),
        Scalar::Enum(variants) => format!("enum {{{}}}", variants.join(", ")),
        Scalar::TimestampTz => "DateTime<Utc>".to_owned(),
        Scalar::Timestamp => "NaiveDateTime".to_owned(),
        Scalar::Date => "NaiveDate".to_owned(),
        Scalar::Uuid => "Uuid".to_owned(),
        Scalar::ObjectId => "ObjectId".to_owned(),
        Scalar::Decimal => "Decimal".to_owned(),
        Scalar::Json => "JSON value or embedded type".to_owned(),
    };
    let base = if ty.array { format!("Vec<{base}>") } else { base };
    if ty.nullable { format!("Option<{base}>") } else { base }
}

/// The PostgreSQL column type (as `CREATE TABLE` writes it).
pub fn postgres_type(ty: ColumnType) -> String {
    let base = match ty.scalar {
        Scalar::Bool => "BOOLEAN",
        Scalar::I16 => "SMALLINT",
        Scalar::I32 => "INTEGER",
        Scalar::I64 => "BIGINT",
        Scalar::F32 => "REAL",
        Scalar::F64 => "DOUBLE PRECISION",
        Scalar::Text | Scalar::Enum(_) | Scalar::ObjectId => "TEXT",
        Scalar::TimestampTz => "TIMESTAMPTZ",
        Scalar::Timestamp => "TIMESTAMP",
        Scalar::Date => "DATE",
        Scalar::Uuid => "UUID",
        Scalar::Decimal => "NUMERIC",
        Scalar::Json => "JSONB",
    };
    if ty.array { format!("{base}[]") } else { base.to_owned() }
}

/// The SQLite column type (tables are `STRICT`; lists are JSON text).
pub fn sqlite_type(ty: ColumnType) -> &'static str {
    match ty.scalar {
        _ if ty.array => "TEXT",
        Scalar::Bool | Scalar::I16 | Scalar::I32 | Scalar::I64 => "INTEGER",
        Scalar::F32 | Scalar::F64 => "REAL",
        _ => "TEXT",
    }
}

/// The BSON type the `$jsonSchema` validator requires (`any` for JSON and embedded values).
pub fn bson_type(ty: ColumnType) -> String {
    let base = match ty.scalar {
        Scalar::Bool => "bool",
        Scalar::I16 | Scalar::I32 => "int",
        Scalar::I64 => "long",
        Scalar::F32 | Scalar::F64 => "double",
        Scalar::Text | Scalar::Enum(_) => "string",
        Scalar::TimestampTz | Scalar::Timestamp | Scalar::Date => "date",
        Scalar::Uuid => "binData",
        Scalar::ObjectId => "objectId",
        Scalar::Decimal => "decimal",
        Scalar::Json => "any",
    };
    let base = if ty.array { format!("array<{base}>") } else { base.to_owned() };
    if ty.nullable { format!("{base} | null") } else { base }
}

/// The scalar's short name (`i64`, `text`, `timestamptz`), as [`ColumnType::describe`] spells it.
fn scalar_name(scalar: Scalar) -> String {
    let d = ColumnType::scalar(scalar).describe();
    d.trim_end_matches('?').to_owned()
}

fn default(f: &FieldSchema) -> String {
    if f.generated {
        return "generated by the store".to_owned();
    }
    match (f.default, f.auto) {
        (Some(DefaultValue::Int(n)), _) => n.to_string(),
        (Some(DefaultValue::Float(x)), _) => format!("{x:?}"),
        (Some(DefaultValue::Bool(b)), _) => b.to_string(),
        (Some(DefaultValue::Str(s)), _) => format!("\"{s}\""),
        (None, AutoTimestamp::CreatedAt) => "now, on insert".to_owned(),
        (None, AutoTimestamp::UpdatedAt) => "now, on insert and update".to_owned(),
        (None, AutoTimestamp::None) => String::new(),
    }
}

fn constraints(m: &ModelSchema, i: usize, f: &FieldSchema) -> Vec<String> {
    let mut out = Vec::new();
    if m.is_key(i) {
        out.push("primary key".to_owned());
    }
    out.push(if f.ty.nullable { "nullable".to_owned() } else { "not null".to_owned() });
    for ix in m.indexes.iter().filter(|ix| ix.unique && ix.fields == [i]) {
        out.push(format!("unique (`{}`)", ix.name));
    }
    for r in m.relations.iter().filter(|r| r.kind == RelationKind::BelongsTo && r.local_field == i) {
        out.push(format!("foreign key → {}", (r.target)().name));
    }
    match f.redis {
        RedisIndex::None => {}
        RedisIndex::Set => out.push("Redis set index".to_owned()),
        RedisIndex::SortedSet => out.push("Redis sorted set".to_owned()),
    }
    if let Some(old) = f.renamed_from {
        out.push(format!("renamed from `{old}`"));
    }
    out
}

/// A validation rule in `#[validate(...)]` syntax.
fn rule(check: &Check) -> String {
    let num = |x: f64| if x.fract() == 0.0 && x.abs() < 1e15 { format!("{}", x as i64) } else { format!("{x:?}") };
    match check {
        Check::Length { min, max } => {
            let mut args = Vec::new();
            if let Some(n) = min {
                args.push(format!("min = {n}"));
            }
            if let Some(n) = max {
                args.push(format!("max = {n}"));
            }
            format!("length({})", args.join(", "))
        }
        Check::Range { min, max, exclusive_min, exclusive_max } => {
            let mut args = Vec::new();
            if let Some(x) = min {
                args.push(format!("{} = {}", if *exclusive_min { "exclusive_min" } else { "min" }, num(*x)));
            }
            if let Some(x) = max {
                args.push(format!("{} = {}", if *exclusive_max { "exclusive_max" } else { "max" }, num(*x)));
            }
            format!("range({})", args.join(", "))
        }
        Check::Email => "email".to_owned(),
        Check::Url => "url".to_owned(),
        Check::Contains(p) => format!("contains(pattern = {p:?})"),
        Check::DoesNotContain(p) => format!("does_not_contain(pattern = {p:?})"),
        Check::Required => "required".to_owned(),
    }
}

fn action(a: RefAction) -> String {
    a.sql().to_lowercase()
}

fn cache(policy: Option<&CachePolicy>) -> String {
    let Some(p) = policy else { return "not cached.".to_owned() };
    let mut parts = vec![format!("ttl {}", duration(p.ttl))];
    if !p.jitter.is_zero() {
        parts.push(format!("jitter {}", duration(p.jitter)));
    }
    if let Some(n) = p.negative_ttl {
        parts.push(format!("misses cached for {}", duration(n)));
    }
    if let Some(n) = p.max_entry_bytes {
        parts.push(format!("entries over {n} bytes not cached"));
    }
    format!("{}.", parts.join(", "))
}

/// `30d`, `5h`, `5m`, `30s` or `250ms`: the largest unit that divides the duration.
fn duration(d: Duration) -> String {
    let ms = d.as_millis();
    for (unit, size) in [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)] {
        if ms >= size && ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

/// Text for a Markdown table cell: `|` would end the cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

// The test models carry `#[validate]` rules, which need the `validate` feature's derive.
#[cfg(all(test, feature = "validate"))]
#[path = "docs_tests.rs"]
mod tests;
