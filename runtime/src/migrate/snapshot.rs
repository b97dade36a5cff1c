//! Snapshots: a serializable, stable description of every table the models define — what a
//! migration's `snapshot.json` holds, and what [`diff`](super::diff) compares.
//!
//! A snapshot is built from [`ModelSchema`]s (the registry, or an explicit list), is plain
//! owned data, and serializes to pretty JSON with a fixed order: tables by name, columns in
//! declaration order, indexes by name. The same models always give byte-identical JSON.

use serde::{Deserialize, Serialize};

use crate::schema::{
    AutoTimestamp, Check, ColumnType, DefaultValue, DistributionKind, ModelSchema, PartitionKind, PartitionSchema,
    PartitionStep, PartitionValue, RelationKind, Scalar,
};

use super::MigrateError;

/// The snapshot format version written into `snapshot.json`.
pub const FORMAT_VERSION: u32 = 1;

/// Every table of a schema, at one point in time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The format version ([`FORMAT_VERSION`]).
    pub version: u32,
    /// The tables, ordered by name.
    pub tables: Vec<TableSnapshot>,
}

/// One table (SQL) or collection (MongoDB).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableSnapshot {
    /// The model's Rust name (informational: tables are matched by table name).
    pub model: String,
    /// The table name, prefixed by its schema when the model declares one (`billing.invoice`,
    /// see [`ModelSchema::table`]).
    pub table: String,
    /// The table's previous name (`#[model(renamed_from = "..")]`): a diff against a snapshot
    /// holding that table renames it instead of dropping one table and creating another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renamed_from: Option<String>,
    /// The columns, in declaration order.
    pub columns: Vec<ColumnSnapshot>,
    /// The primary-key columns, in key order.
    pub primary_key: Vec<String>,
    /// Secondary indexes, ordered by name (including the index polystore adds on each
    /// foreign-key column no other index starts with).
    #[serde(default)]
    pub indexes: Vec<IndexSnapshot>,
    /// Foreign keys (`belongs_to` relations), ordered by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub foreign_keys: Vec<ForeignKeySnapshot>,
    /// Declarative partitioning (`#[model(partition(..))]`), if declared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<PartitionSnapshot>,
    /// How the table is distributed over shards (`#[model(distributed_by = col)]`), if it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution: Option<DistributionSnapshot>,
    /// A reference table, copied to every node (`#[model(reference)]`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reference: bool,
}

/// A table's partitioning. The strategy, column and hash modulus shape the table itself (a
/// change is refused by the diff: PostgreSQL cannot re-partition a table in place); the rest
/// drives partition maintenance only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionSnapshot {
    /// `range`, `list` or `hash`.
    pub strategy: String,
    /// The partition column.
    pub column: String,
    /// Range: the width of a partition (`"1 month"`, `"7 days"`, or an integer block as text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<String>,
    /// Range: partitions kept created ahead of the current one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ahead: Option<u32>,
    /// Range: the retention bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retain: Option<String>,
    /// Range: the schema expired partitions are moved to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive: Option<String>,
    /// List: the values with their own partition (JSON strings or integers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<serde_json::Value>,
    /// Hash: the number of partitions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modulus: Option<u32>,
}

impl PartitionSnapshot {
    /// The snapshot of a model's partitioning.
    pub fn from_schema(schema: &ModelSchema, p: &PartitionSchema) -> PartitionSnapshot {
        let mut out = PartitionSnapshot {
            strategy: p.strategy().to_ascii_lowercase(),
            column: schema.fields[p.column].column.to_owned(),
            every: None,
            ahead: None,
            retain: None,
            archive: None,
            values: Vec::new(),
            modulus: None,
        };
        match p.kind {
            PartitionKind::Range { every, ahead, retain, archive } => {
                out.every = Some(every.describe());
                out.ahead = Some(ahead);
                out.retain = retain.map(PartitionStep::describe);
                out.archive = archive.map(str::to_owned);
            }
            PartitionKind::List { values } => {
                out.values = values
                    .iter()
                    .map(|v| match v {
                        PartitionValue::Str(s) => serde_json::Value::from(*s),
                        PartitionValue::Int(n) => serde_json::Value::from(*n),
                    })
                    .collect();
            }
            PartitionKind::Hash { modulus } => out.modulus = Some(modulus),
        }
        out
    }

    /// What shapes the table: `RANGE (created_at)`, `HASH (id) MODULUS 8`.
    pub fn shape(&self) -> String {
        let mut s = format!("{} ({})", self.strategy.to_ascii_uppercase(), self.column);
        if let Some(m) = self.modulus {
            s.push_str(&format!(" MODULUS {m}"));
        }
        s
    }
}

/// A distributed table's distribution (see [`crate::schema::DistributionSchema`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DistributionSnapshot {
    /// The distribution column.
    pub column: String,
    /// `"hash"` or `"range"`.
    pub kind: String,
    /// The table it is colocated with, when named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub colocate_with: Option<String>,
}

/// A table's layout on a Citus cluster — local, reference, or distributed by a column — as
/// [`Step::ChangeLayout`](super::step::Step::ChangeLayout) carries it (see
/// [`TableSnapshot::layout`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutSnapshot {
    /// The distribution, for a distributed table.
    pub distribution: Option<DistributionSnapshot>,
    /// A reference table (copied to every node).
    pub reference: bool,
}

impl LayoutSnapshot {
    /// The layout in words: `local`, `reference`, `distributed by "tenant_id"` (with `colocated
    /// with "tenants"` when named).
    pub fn describe(&self) -> String {
        match (&self.distribution, self.reference) {
            (_, true) => "reference".to_owned(),
            (Some(d), false) => match &d.colocate_with {
                Some(with) => format!("distributed by {:?} colocated with {with:?}", d.column),
                None => format!("distributed by {:?}", d.column),
            },
            (None, false) => "local".to_owned(),
        }
    }
}

/// A foreign key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignKeySnapshot {
    /// The constraint name (`{table}_{column}_fkey`).
    pub name: String,
    /// The referring columns.
    pub columns: Vec<String>,
    /// The referenced table.
    pub references: String,
    /// The referenced columns (its primary key).
    pub referenced_columns: Vec<String>,
    /// `ON DELETE` action, SQL spelling (`CASCADE`, `NO ACTION`, …).
    pub on_delete: String,
    /// `ON UPDATE` action, SQL spelling.
    pub on_update: String,
}

/// One column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnSnapshot {
    /// The column name.
    pub name: String,
    /// The Rust field name (informational).
    pub field: String,
    /// The stored type.
    #[serde(rename = "type")]
    pub ty: TypeSnapshot,
    /// The database assigns the value (identity / auto-increment).
    #[serde(default, skip_serializing_if = "is_false")]
    pub generated: bool,
    /// `created_at` / `updated_at`: gets a "now" default in the database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto: Option<AutoKind>,
    /// A literal database default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<DefaultSnapshot>,
    /// The column's previous name (`#[model(renamed_from = "..")]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renamed_from: Option<String>,
    /// `#[validate]` rules enforced as named CHECK constraints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckSnapshot>,
}

/// A stored type: [`ColumnType`] with owned enum variants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeSnapshot {
    /// The scalar's short name: `bool`, `i16`, `i32`, `i64`, `f32`, `f64`, `text`, `enum`,
    /// `timestamptz`, `timestamp`, `date`, `uuid`, `decimal`, `json`.
    pub scalar: String,
    /// The allowed values of an enum.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variants: Vec<String>,
    /// An array of the scalar.
    #[serde(default, skip_serializing_if = "is_false")]
    pub array: bool,
    /// The column may be NULL.
    #[serde(default, skip_serializing_if = "is_false")]
    pub nullable: bool,
}

/// Which automatic timestamp a column is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AutoKind {
    /// Set on insert.
    CreatedAt,
    /// Set on insert and update.
    UpdatedAt,
}

/// A literal default value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DefaultSnapshot {
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A string (or enum variant).
    Str(String),
}

/// A `#[validate]` rule the database enforces; see [`Check`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum CheckSnapshot {
    /// `length(min, max)`.
    Length {
        /// Fewest allowed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min: Option<u64>,
        /// Most allowed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max: Option<u64>,
    },
    /// `range(..)`.
    Range {
        /// Lower bound.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min: Option<f64>,
        /// Upper bound.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max: Option<f64>,
        /// The lower bound is excluded.
        #[serde(default, skip_serializing_if = "is_false")]
        exclusive_min: bool,
        /// The upper bound is excluded.
        #[serde(default, skip_serializing_if = "is_false")]
        exclusive_max: bool,
    },
    /// `email`.
    Email,
    /// `url`.
    Url,
    /// `contains(pattern)`.
    Contains {
        /// The pattern.
        pattern: String,
    },
    /// `does_not_contain(pattern)`.
    DoesNotContain {
        /// The pattern.
        pattern: String,
    },
    /// `required`.
    Required,
}

/// A secondary index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexSnapshot {
    /// The index name.
    pub name: String,
    /// The indexed columns, in order.
    pub columns: Vec<String>,
    /// Whether it enforces uniqueness.
    #[serde(default, skip_serializing_if = "is_false")]
    pub unique: bool,
    /// A MongoDB TTL, in seconds (SQL stores create a plain index).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_secs: Option<u64>,
    /// A partial index over the rows where this column is NULL: the unique indexes of a
    /// `#[model(soft_delete)]` model, which cover live rows only (the stamp's column).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub where_null: Option<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Snapshot {
    /// A snapshot with no tables (what the first migration is diffed against).
    pub fn empty() -> Snapshot {
        Snapshot { version: FORMAT_VERSION, tables: Vec::new() }
    }

    /// The snapshot of `schemas`. Two models with the same table name are an error.
    pub fn from_schemas(schemas: &[&ModelSchema]) -> Result<Snapshot, MigrateError> {
        let mut tables: Vec<TableSnapshot> = schemas.iter().map(|s| TableSnapshot::from_schema(s)).collect();
        tables.sort_by(|a, b| a.table.cmp(&b.table));
        if let Some(w) = tables.windows(2).find(|w| w[0].table == w[1].table) {
            return Err(MigrateError::Invalid(format!(
                "models {} and {} both use table {:?}",
                w[0].model, w[1].model, w[0].table
            )));
        }
        Ok(Snapshot { version: FORMAT_VERSION, tables })
    }

    /// The snapshot of every model compiled into this program ([`crate::schema::registered`]).
    pub fn registered() -> Result<Snapshot, MigrateError> {
        let schemas: Vec<&ModelSchema> = crate::schema::registered().collect();
        Snapshot::from_schemas(&schemas)
    }

    /// The schemas (namespaces) its tables live in, besides the default one, sorted.
    pub fn schemas(&self) -> Vec<String> {
        let mut out: Vec<String> =
            self.tables.iter().filter_map(|t| crate::schema::split_table(&t.table).0).map(str::to_owned).collect();
        out.sort();
        out.dedup();
        out
    }

    /// The table named `name`.
    pub fn table(&self, name: &str) -> Option<&TableSnapshot> {
        self.tables.iter().find(|t| t.table == name)
    }

    /// Pretty JSON with a trailing newline: stable, reviewable, diff-friendly.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("a snapshot always serializes");
        s.push('\n');
        s
    }

    /// Parses a snapshot written by [`Snapshot::to_json`].
    pub fn from_json(json: &str) -> Result<Snapshot, MigrateError> {
        let snap: Snapshot =
            serde_json::from_str(json).map_err(|e| MigrateError::Invalid(format!("bad snapshot JSON: {e}")))?;
        if snap.version > FORMAT_VERSION {
            return Err(MigrateError::Invalid(format!(
                "snapshot format {} is newer than this polystore understands ({FORMAT_VERSION})",
                snap.version
            )));
        }
        Ok(snap)
    }
}

impl TableSnapshot {
    /// The snapshot of one model's table.
    pub fn from_schema(schema: &ModelSchema) -> TableSnapshot {
        let col = |i: usize| schema.fields[i].column.to_owned();
        let mut indexes: Vec<IndexSnapshot> = schema
            .indexes
            .iter()
            .map(|ix| IndexSnapshot {
                name: ix.name.to_owned(),
                columns: ix.fields.iter().map(|&i| col(i)).collect(),
                unique: ix.unique,
                ttl_secs: ix.ttl.map(|t| t.as_secs()),
                where_null: schema.soft_delete.filter(|_| ix.unique).map(col),
            })
            .collect();
        let covered = |field: usize| {
            schema.primary_key.first() == Some(&field)
                || schema.indexes.iter().any(|ix| ix.fields.first() == Some(&field))
        };
        let mut foreign_keys = Vec::new();
        for r in schema.relations.iter().filter(|r| r.kind == RelationKind::BelongsTo) {
            let target = (r.target)();
            let column = col(r.local_field);
            if !covered(r.local_field) {
                let name = format!("{}_{column}_idx", schema.table_name());
                indexes.push(IndexSnapshot {
                    name,
                    columns: vec![column.clone()],
                    unique: false,
                    ttl_secs: None,
                    where_null: None,
                });
            }
            foreign_keys.push(ForeignKeySnapshot {
                name: format!("{}_{column}_fkey", schema.table_name()),
                columns: vec![column],
                references: target.table.to_owned(),
                referenced_columns: target.key_fields().map(|f| f.column.to_owned()).collect(),
                on_delete: r.on_delete.sql().to_owned(),
                on_update: r.on_update.sql().to_owned(),
            });
        }
        foreign_keys.sort_by(|a, b| a.name.cmp(&b.name));
        indexes.sort_by(|a, b| a.name.cmp(&b.name));
        TableSnapshot {
            partition: schema.partition.as_ref().map(|p| PartitionSnapshot::from_schema(schema, p)),
            model: schema.name.to_owned(),
            table: schema.table.to_owned(),
            renamed_from: schema.renamed_from.map(str::to_owned),
            columns: schema
                .fields
                .iter()
                .map(|f| ColumnSnapshot {
                    name: f.column.to_owned(),
                    field: f.name.to_owned(),
                    ty: TypeSnapshot::from_type(&f.ty),
                    generated: f.generated,
                    auto: match f.auto {
                        AutoTimestamp::None => None,
                        AutoTimestamp::CreatedAt => Some(AutoKind::CreatedAt),
                        AutoTimestamp::UpdatedAt => Some(AutoKind::UpdatedAt),
                    },
                    default: f.default.as_ref().map(DefaultSnapshot::from_default),
                    renamed_from: f.renamed_from.map(str::to_owned),
                    checks: f.checks.iter().map(CheckSnapshot::from_check).collect(),
                })
                .collect(),
            primary_key: schema.primary_key.iter().map(|&i| col(i)).collect(),
            indexes,
            foreign_keys,
            distribution: schema.distribution.map(|d| DistributionSnapshot {
                column: col(d.column),
                kind: match d.kind {
                    DistributionKind::Hash => "hash".to_owned(),
                    DistributionKind::Range => "range".to_owned(),
                },
                colocate_with: d.colocate_with.map(str::to_owned),
            }),
            reference: schema.reference,
        }
    }

    /// How the table is laid out on a Citus cluster.
    pub fn layout(&self) -> LayoutSnapshot {
        LayoutSnapshot { distribution: self.distribution.clone(), reference: self.reference }
    }

    /// The column named `name`.
    pub fn column(&self, name: &str) -> Option<&ColumnSnapshot> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The index named `name`.
    pub fn index(&self, name: &str) -> Option<&IndexSnapshot> {
        self.indexes.iter().find(|i| i.name == name)
    }
}

impl TypeSnapshot {
    /// The snapshot of a stored type.
    pub fn from_type(ty: &ColumnType) -> TypeSnapshot {
        let scalar = ColumnType { nullable: false, array: false, ..*ty }.describe();
        let variants = match ty.scalar {
            Scalar::Enum(v) => v.iter().map(|s| (*s).to_owned()).collect(),
            _ => Vec::new(),
        };
        TypeSnapshot { scalar, variants, array: ty.array, nullable: ty.nullable }
    }

    /// A short human form: `i32`, `text[]?`, `enum(a, b)`.
    pub fn describe(&self) -> String {
        let base =
            if self.scalar == "enum" { format!("enum({})", self.variants.join(", ")) } else { self.scalar.clone() };
        format!("{base}{}{}", if self.array { "[]" } else { "" }, if self.nullable { "?" } else { "" })
    }

    /// The same type ignoring nullability.
    pub fn without_null(&self) -> TypeSnapshot {
        TypeSnapshot { nullable: false, ..self.clone() }
    }
}

impl DefaultSnapshot {
    fn from_default(d: &DefaultValue) -> DefaultSnapshot {
        match *d {
            DefaultValue::Int(n) => DefaultSnapshot::Int(n),
            DefaultValue::Float(x) => DefaultSnapshot::Float(x),
            DefaultValue::Bool(b) => DefaultSnapshot::Bool(b),
            DefaultValue::Str(s) => DefaultSnapshot::Str(s.to_owned()),
        }
    }
}

impl CheckSnapshot {
    fn from_check(c: &Check) -> CheckSnapshot {
        match *c {
            Check::Length { min, max } => CheckSnapshot::Length { min, max },
            Check::Range { min, max, exclusive_min, exclusive_max } => {
                CheckSnapshot::Range { min, max, exclusive_min, exclusive_max }
            }
            Check::Email => CheckSnapshot::Email,
            Check::Url => CheckSnapshot::Url,
            Check::Contains(p) => CheckSnapshot::Contains { pattern: p.to_owned() },
            Check::DoesNotContain(p) => CheckSnapshot::DoesNotContain { pattern: p.to_owned() },
            Check::Required => CheckSnapshot::Required,
        }
    }

    /// The rule's code, as used in constraint names (`length`, `range`, …).
    pub fn code(&self) -> &'static str {
        match self {
            CheckSnapshot::Length { .. } => "length",
            CheckSnapshot::Range { .. } => "range",
            CheckSnapshot::Email => "email",
            CheckSnapshot::Url => "url",
            CheckSnapshot::Contains { .. } => "contains",
            CheckSnapshot::DoesNotContain { .. } => "does_not_contain",
            CheckSnapshot::Required => "required",
        }
    }

    /// The constraint's name on `table`.`column`: `{table}_{column}_{rule}_check`.
    pub fn constraint_name(&self, table: &str, column: &str) -> String {
        format!("{table}_{column}_{}_check", self.code())
    }
}
