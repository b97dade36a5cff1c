//! Static schemas rebuilt from snapshots, so that a table described only by a snapshot (a
//! dropped table's down step, a SQLite table rebuild, the expected catalog of a drift check)
//! is rendered by the very DDL code `create_all` uses.
//!
//! Foreign keys are not rebuilt as relations (those point at other models through function
//! pointers); [`render`](super::render) writes them from the snapshot.
//!
//! A [`ModelSchema`] is `'static` data; a rebuilt one is interned: each distinct table
//! description is allocated once for the life of the process, however often it is rebuilt.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::schema::{
    AutoTimestamp, Check, ColumnType, DefaultValue, DistributionKind, DistributionSchema, FieldSchema, IndexSchema,
    ModelSchema, PartitionKind, PartitionSchema, PartitionStep, PartitionValue, RedisIndex, Scalar,
};

use super::MigrateError;
use super::snapshot::{AutoKind, CheckSnapshot, DefaultSnapshot, PartitionSnapshot, TableSnapshot, TypeSnapshot};

/// Interned schemas, keyed by the table snapshot's JSON.
fn schemas() -> &'static Mutex<HashMap<String, &'static ModelSchema>> {
    static SCHEMAS: OnceLock<Mutex<HashMap<String, &'static ModelSchema>>> = OnceLock::new();
    SCHEMAS.get_or_init(Default::default)
}

/// Interned strings.
fn intern(s: &str) -> &'static str {
    static STRINGS: OnceLock<Mutex<HashMap<String, &'static str>>> = OnceLock::new();
    let mut map = STRINGS.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
    if let Some(&s) = map.get(s) {
        return s;
    }
    let leaked: &'static str = Box::leak(s.to_owned().into_boxed_str());
    map.insert(s.to_owned(), leaked);
    leaked
}

/// Interned lists of strings (enum variants).
fn intern_list(items: &[String]) -> &'static [&'static str] {
    static LISTS: OnceLock<Mutex<HashMap<Vec<String>, &'static [&'static str]>>> = OnceLock::new();
    let mut map = LISTS.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
    if let Some(&list) = map.get(items) {
        return list;
    }
    let list: &'static [&'static str] =
        Box::leak(items.iter().map(|s| intern(s)).collect::<Vec<_>>().into_boxed_slice());
    map.insert(items.to_vec(), list);
    list
}

/// The static schema a table snapshot describes (interned).
pub fn schema_of(table: &TableSnapshot) -> Result<&'static ModelSchema, MigrateError> {
    let key = serde_json::to_string(table).expect("a table snapshot always serializes");
    if let Some(&s) = schemas().lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
        return Ok(s);
    }
    let built = build(table)?;
    let leaked: &'static ModelSchema = Box::leak(Box::new(built));
    Ok(*schemas().lock().unwrap_or_else(|p| p.into_inner()).entry(key).or_insert(leaked))
}

fn build(table: &TableSnapshot) -> Result<ModelSchema, MigrateError> {
    let position = |name: &str| {
        table.columns.iter().position(|c| c.name == name).ok_or_else(|| {
            MigrateError::Invalid(format!("table {:?}: key or index names unknown column {name:?}", table.table))
        })
    };
    let fields: Vec<FieldSchema> = table
        .columns
        .iter()
        .map(|c| {
            Ok(FieldSchema {
                name: intern(&c.field),
                column: intern(&c.name),
                ty: column_type(&c.ty)?,
                generated: c.generated,
                auto: match c.auto {
                    None => AutoTimestamp::None,
                    Some(AutoKind::CreatedAt) => AutoTimestamp::CreatedAt,
                    Some(AutoKind::UpdatedAt) => AutoTimestamp::UpdatedAt,
                },
                default: c.default.as_ref().map(default_value),
                redis: RedisIndex::None,
                renamed_from: c.renamed_from.as_deref().map(intern),
                checks: Box::leak(c.checks.iter().map(check).collect::<Vec<_>>().into_boxed_slice()),
            })
        })
        .collect::<Result<_, MigrateError>>()?;
    let primary_key: Vec<usize> = table.primary_key.iter().map(|c| position(c)).collect::<Result<_, _>>()?;
    let indexes: Vec<IndexSchema> = table
        .indexes
        .iter()
        .map(|ix| {
            let fields: Vec<usize> = ix.columns.iter().map(|c| position(c)).collect::<Result<_, _>>()?;
            Ok(IndexSchema {
                name: intern(&ix.name),
                fields: Box::leak(fields.into_boxed_slice()),
                unique: ix.unique,
                ttl: ix.ttl_secs.map(Duration::from_secs),
            })
        })
        .collect::<Result<_, MigrateError>>()?;
    Ok(ModelSchema {
        name: intern(&table.model),
        table: intern(&table.table),
        fields: Box::leak(fields.into_boxed_slice()),
        primary_key: Box::leak(primary_key.into_boxed_slice()),
        indexes: Box::leak(indexes.into_boxed_slice()),
        partition: table.partition.as_ref().map(|p| partition(table, p, position(&p.column)?)).transpose()?,
        cache: None,
        renamed_from: table.renamed_from.as_deref().map(intern),
        relations: &[],
        // The unique indexes of a soft-delete model name its stamp (the DDL makes them partial).
        soft_delete: table.indexes.iter().find_map(|ix| ix.where_null.as_ref()).map(|c| position(c)).transpose()?,
        distribution: match &table.distribution {
            Some(d) => Some(DistributionSchema {
                column: position(&d.column)?,
                kind: if d.kind == "range" { DistributionKind::Range } else { DistributionKind::Hash },
                colocate_with: d.colocate_with.as_deref().map(intern),
            }),
            None => None,
        },
        reference: table.reference,
    })
}

/// The [`PartitionSchema`] a partition snapshot describes.
fn partition(table: &TableSnapshot, p: &PartitionSnapshot, column: usize) -> Result<PartitionSchema, MigrateError> {
    let bad = |what: String| MigrateError::Invalid(format!("table {:?}: {what}", table.table));
    let step = |text: &str| -> Result<PartitionStep, MigrateError> {
        match text.parse::<i64>() {
            Ok(n) => Ok(PartitionStep::Int(n)),
            Err(_) => PartitionStep::parse(text).map_err(bad),
        }
    };
    let kind = match p.strategy.as_str() {
        "range" => PartitionKind::Range {
            every: step(p.every.as_deref().ok_or_else(|| bad("a range partitioning without `every`".into()))?)?,
            ahead: p.ahead.unwrap_or(3),
            retain: p.retain.as_deref().map(step).transpose()?,
            archive: p.archive.as_deref().map(intern),
        },
        "list" => {
            let values = p
                .values
                .iter()
                .map(|v| match v {
                    serde_json::Value::String(s) => Ok(PartitionValue::Str(intern(s))),
                    serde_json::Value::Number(n) if n.is_i64() => {
                        Ok(PartitionValue::Int(n.as_i64().unwrap_or_default()))
                    }
                    other => Err(bad(format!("list partition value {other} is neither a string nor an integer"))),
                })
                .collect::<Result<Vec<_>, _>>()?;
            PartitionKind::List { values: Box::leak(values.into_boxed_slice()) }
        }
        "hash" => PartitionKind::Hash {
            modulus: p.modulus.ok_or_else(|| bad("a hash partitioning without `modulus`".into()))?,
        },
        other => return Err(bad(format!("unknown partition strategy {other:?}"))),
    };
    Ok(PartitionSchema { column, kind })
}

/// The [`ColumnType`] a type snapshot describes.
pub fn column_type(t: &TypeSnapshot) -> Result<ColumnType, MigrateError> {
    let scalar = match t.scalar.as_str() {
        "bool" => Scalar::Bool,
        "i16" => Scalar::I16,
        "i32" => Scalar::I32,
        "i64" => Scalar::I64,
        "f32" => Scalar::F32,
        "f64" => Scalar::F64,
        "text" => Scalar::Text,
        "enum" => Scalar::Enum(intern_list(&t.variants)),
        "timestamptz" => Scalar::TimestampTz,
        "timestamp" => Scalar::Timestamp,
        "date" => Scalar::Date,
        "uuid" => Scalar::Uuid,
        "objectid" => Scalar::ObjectId,
        "decimal" => Scalar::Decimal,
        "json" => Scalar::Json,
        other => return Err(MigrateError::Invalid(format!("unknown column type {other:?} in a snapshot"))),
    };
    Ok(ColumnType { scalar, array: t.array, nullable: t.nullable })
}

fn default_value(d: &DefaultSnapshot) -> DefaultValue {
    match d {
        DefaultSnapshot::Int(n) => DefaultValue::Int(*n),
        DefaultSnapshot::Float(x) => DefaultValue::Float(*x),
        DefaultSnapshot::Bool(b) => DefaultValue::Bool(*b),
        DefaultSnapshot::Str(s) => DefaultValue::Str(intern(s)),
    }
}

/// The [`Check`] a check snapshot describes.
pub fn check(c: &CheckSnapshot) -> Check {
    match c {
        CheckSnapshot::Length { min, max } => Check::Length { min: *min, max: *max },
        CheckSnapshot::Range { min, max, exclusive_min, exclusive_max } => {
            Check::Range { min: *min, max: *max, exclusive_min: *exclusive_min, exclusive_max: *exclusive_max }
        }
        CheckSnapshot::Email => Check::Email,
        CheckSnapshot::Url => Check::Url,
        CheckSnapshot::Contains { pattern } => Check::Contains(intern(pattern)),
        CheckSnapshot::DoesNotContain { pattern } => Check::DoesNotContain(intern(pattern)),
        CheckSnapshot::Required => Check::Required,
    }
}
