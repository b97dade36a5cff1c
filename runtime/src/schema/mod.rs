//! The static description of a model that `#[derive(Model)]` emits, and that every other part
//! of polystore (DDL, query lowering, decoding, cache keys, migrations) interprets.
//!
//! Nothing here is computed per query: a `ModelSchema` is a `static` built at compile time.

pub mod docs;
mod partition;
mod types;

use std::time::Duration;

use crate::value::Value;

pub use partition::{
    PartitionKind, PartitionSchema, PartitionStep, PartitionValue, default_partition_name, hash_partition_name,
    list_partition_name, partition_int_column, partition_time_column,
};
pub use types::{ColumnType, Scalar};

/// Everything polystore knows about one model.
#[derive(Debug)]
pub struct ModelSchema {
    /// The Rust type's name (`User`).
    pub name: &'static str,
    /// The table (SQL) or collection (MongoDB) name, prefixed by the model's schema when it
    /// declares one (`#[model(schema = "billing")]` gives `billing.invoice`; table names never
    /// contain a dot otherwise). PostgreSQL reads the prefix as the schema (`"billing"."invoice"`);
    /// SQLite and MongoDB, which have no schemas, use the whole text as the table / collection
    /// name. See [`ModelSchema::schema_name`] and [`ModelSchema::table_name`].
    pub table: &'static str,
    /// Fields in declaration order; rows are read and written in this order.
    pub fields: &'static [FieldSchema],
    /// Positions in [`ModelSchema::fields`] of the primary key, in key order.
    pub primary_key: &'static [usize],
    /// Secondary indexes, unique or not.
    pub indexes: &'static [IndexSchema],
    /// Declarative partitioning (`#[model(partition(range(created_at), every = "1 month"))]`),
    /// if declared: PostgreSQL partitions the table; SQLite keeps a plain table; MongoDB turns
    /// a range retention into a TTL index.
    pub partition: Option<PartitionSchema>,
    /// How entries of this model are cached (`#[model(cache(ttl = "5m"))]`), if at all.
    pub cache: Option<CachePolicy>,
    /// The table's previous name (`#[model(renamed_from = "old")]`), for migrations.
    pub renamed_from: Option<&'static str>,
    /// Relations declared on the model's relation fields.
    pub relations: &'static [RelationSchema],
    /// Position in [`ModelSchema::fields`] of the `#[model(soft_delete)]` stamp, if the model
    /// declares one: rows where it is set are deleted, and reads leave them out unless asked
    /// (`with_deleted`, `only_deleted`); unique indexes cover the live rows only.
    pub soft_delete: Option<usize>,
    /// How the model's rows are spread over shards (`#[model(distributed_by = tenant_id)]`),
    /// if the model is distributed.
    pub distribution: Option<DistributionSchema>,
    /// A reference table (`#[model(reference)]`): a full copy on every node of a distributed
    /// database (Citus `create_reference_table`); a plain table elsewhere.
    pub reference: bool,
}

/// How a distributed model's rows are spread over shards (`#[model(distributed_by = col)]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DistributionSchema {
    /// Position in [`ModelSchema::fields`] of the distribution (shard key) column.
    pub column: usize,
    /// Hash or range distribution.
    pub kind: DistributionKind,
    /// The table this one is colocated with (`colocate_with = "orders"`), if named.
    pub colocate_with: Option<&'static str>,
}
/// How a [`DistributionSchema`] column places rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DistributionKind {
    /// Rows are placed by a hash of the column (Citus hash distribution, MongoDB hashed shard key).
    Hash,
    /// Rows are placed by ranges of the column (MongoDB ranged shard key).
    Range,
}

/// A relation declared on a model field (`#[model(belongs_to)] pub author: Rel<User>`).
#[derive(Debug)]
pub struct RelationSchema {
    /// The relation field's name (`author`).
    pub name: &'static str,
    /// What kind of relation.
    pub kind: RelationKind,
    /// The related model's schema (a function, so models can refer to each other).
    pub target: fn() -> &'static ModelSchema,
    /// The field of this model that links: the foreign key (`belongs_to`), or this model's
    /// primary key (`has_one`, `has_many`, `many_to_many`).
    pub local_field: usize,
    /// The field of the related model that links, by name: the foreign key (`has_one`,
    /// `has_many`); `None` for the related model's primary key (`belongs_to`, `many_to_many`).
    pub remote_field: Option<&'static str>,
    /// For `many_to_many`: the join model and its two key fields.
    pub through: Option<ThroughSchema>,
    /// What the database does to this row when the referenced row is deleted (`belongs_to`).
    pub on_delete: RefAction,
    /// What the database does when the referenced key changes (`belongs_to`).
    pub on_update: RefAction,
}

/// The join model of an N:M relation.
#[derive(Debug)]
pub struct ThroughSchema {
    /// The join model's schema.
    pub schema: fn() -> &'static ModelSchema,
    /// The join model's field holding this model's key.
    pub left: &'static str,
    /// The join model's field holding the related model's key.
    pub right: &'static str,
}

/// Kinds of relation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelationKind {
    /// This model holds the foreign key (N:1 or 1:1 from the owning side).
    BelongsTo,
    /// The related model holds a foreign key to this one, at most one row (1:1).
    HasOne,
    /// The related model holds a foreign key to this one (1:N).
    HasMany,
    /// Through a join model holding both keys (N:M).
    ManyToMany,
}

/// A foreign key's referential action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefAction {
    /// Refuse the change while rows refer to it (checked at the end of the statement).
    NoAction,
    /// Refuse the change immediately.
    Restrict,
    /// Delete / update the referring rows too.
    Cascade,
    /// Set the foreign key to NULL.
    SetNull,
    /// Set the foreign key to its default.
    SetDefault,
}

impl RefAction {
    /// The SQL spelling.
    pub fn sql(self) -> &'static str {
        match self {
            RefAction::NoAction => "NO ACTION",
            RefAction::Restrict => "RESTRICT",
            RefAction::Cascade => "CASCADE",
            RefAction::SetNull => "SET NULL",
            RefAction::SetDefault => "SET DEFAULT",
        }
    }
}

/// A model's cache policy, declared with `#[model(cache(ttl = "5m", jitter = "30s",
/// negative_ttl = "10s", max_entry_bytes = 65536))]`. Individual calls may override it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachePolicy {
    /// How long an entry lives.
    pub ttl: Duration,
    /// Up to this much is added at random to each entry's TTL, so entries written together do
    /// not expire together.
    pub jitter: Duration,
    /// When set, a miss in the database is cached as "absent" for this long.
    pub negative_ttl: Option<Duration>,
    /// Entries whose serialized size exceeds this are not cached.
    pub max_entry_bytes: Option<usize>,
}

/// One stored field.
#[derive(Debug)]
pub struct FieldSchema {
    /// The Rust field name (`email`).
    pub name: &'static str,
    /// The column (SQL) or document key (MongoDB) name.
    pub column: &'static str,
    /// The stored type and whether it may be NULL.
    pub ty: ColumnType,
    /// The database assigns the value (an identity / auto-increment key).
    pub generated: bool,
    /// Automatic timestamp behaviour.
    pub auto: AutoTimestamp,
    /// A database-side default.
    pub default: Option<DefaultValue>,
    /// A Redis structure kept in sync with this field.
    pub redis: RedisIndex,
    /// The column's previous name (`#[model(renamed_from = "old")]`), so a migration renames
    /// instead of dropping and adding.
    pub renamed_from: Option<&'static str>,
    /// Validation rules the database enforces too (CHECK constraints, `$jsonSchema`), taken
    /// from the field's `#[validate(...)]` attributes where their values are literals.
    pub checks: &'static [Check],
}

impl FieldSchema {
    /// A stored field named `name` (column of the same name) of type `ty`, with no key,
    /// default, index or check: the shape of polystore's own bookkeeping tables and of the
    /// hand-written schemas in unit tests.
    #[cfg_attr(not(any(feature = "postgres", feature = "sqlite")), allow(dead_code))]
    pub(crate) const fn plain(name: &'static str, ty: ColumnType) -> FieldSchema {
        FieldSchema {
            name,
            column: name,
            ty,
            generated: false,
            auto: AutoTimestamp::None,
            default: None,
            redis: RedisIndex::None,
            renamed_from: None,
            checks: &[],
        }
    }
}

/// A field rule the database can enforce, from `#[validate(...)]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Check {
    /// `length(min = .., max = .., equal = ..)`: characters of text, elements of a list.
    Length {
        /// Fewest allowed.
        min: Option<u64>,
        /// Most allowed.
        max: Option<u64>,
    },
    /// `range(min = .., max = .., exclusive_min = .., exclusive_max = ..)` on numbers.
    Range {
        /// Lower bound.
        min: Option<f64>,
        /// Upper bound.
        max: Option<f64>,
        /// Whether the lower bound itself is excluded.
        exclusive_min: bool,
        /// Whether the upper bound itself is excluded.
        exclusive_max: bool,
    },
    /// `email`: a loose shape check in the database (`local@domain`); the app applies the
    /// full rule.
    Email,
    /// `url`: a loose shape check in the database (`scheme://…`).
    Url,
    /// `contains(pattern = "..")`.
    Contains(&'static str),
    /// `does_not_contain(pattern = "..")`.
    DoesNotContain(&'static str),
    /// `required` on an `Option` field: NOT NULL.
    Required,
}

/// A Redis structure a field is mirrored into, declared on the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisIndex {
    /// None.
    None,
    /// `#[model(set_index)]`: one Redis set of primary keys per value of the field.
    Set,
    /// `#[model(sorted_set)]`: one Redis sorted set of primary keys scored by the field
    /// (a leaderboard).
    SortedSet,
}

/// Fields whose value polystore sets itself on writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoTimestamp {
    /// A plain field.
    None,
    /// Set to the current time on insert, never changed afterwards.
    CreatedAt,
    /// Set to the current time on insert and on every update.
    UpdatedAt,
}

/// A literal default value declared with `#[model(default = ...)]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DefaultValue {
    /// An integer literal.
    Int(i64),
    /// A floating-point literal.
    Float(f64),
    /// `true` / `false`.
    Bool(bool),
    /// A string literal (also used for enum variants).
    Str(&'static str),
}

impl DefaultValue {
    /// Whether this literal can be the default of a column of type `ty`: integers for integer,
    /// float and decimal columns, floats for float and decimal columns, booleans for `bool`,
    /// strings for text, enum, UUID, date and JSON columns. `#[derive(Model)]` checks this at
    /// compile time, so `#[model(default = "zero")] hits: i32` does not build.
    pub const fn fits(&self, ty: ColumnType) -> bool {
        use Scalar::*;
        match self {
            DefaultValue::Int(_) => matches!(ty.scalar, I16 | I32 | I64 | F32 | F64 | Decimal),
            DefaultValue::Float(_) => matches!(ty.scalar, F32 | F64 | Decimal),
            DefaultValue::Bool(_) => matches!(ty.scalar, Bool),
            DefaultValue::Str(_) => matches!(ty.scalar, Text | Enum(_) | Uuid | Date | Json),
        }
    }
}

/// A secondary index.
#[derive(Debug)]
pub struct IndexSchema {
    /// The index name in the database.
    pub name: &'static str,
    /// Positions in [`ModelSchema::fields`], in index order.
    pub fields: &'static [usize],
    /// Whether the index enforces uniqueness.
    pub unique: bool,
    /// Documents expire this long after the (timestamp) field's value: a MongoDB TTL index
    /// (`index(created_at, ttl = "30d")`). SQL stores create a plain index.
    pub ttl: Option<Duration>,
}

impl ModelSchema {
    /// A schema with no fields (what a model that failed to compile points at), and the base
    /// of hand-written schemas (`ModelSchema { name, table, fields, .., ..ModelSchema::EMPTY }`),
    /// so a new field of `ModelSchema` changes only this literal and the derive.
    #[doc(hidden)]
    pub const EMPTY: ModelSchema = ModelSchema {
        name: "",
        table: "",
        fields: &[],
        primary_key: &[],
        indexes: &[],
        partition: None,
        cache: None,
        renamed_from: None,
        relations: &[],
        soft_delete: None,
        distribution: None,
        reference: false,
    };

    /// The primary-key values of a row given as all its field values (in field order).
    pub fn key_of(&self, values: &[Value]) -> Vec<Value> {
        self.primary_key.iter().map(|&i| values[i].clone()).collect()
    }

    /// The position in the primary key of the distribution column, for a distributed model
    /// (`#[model(distributed_by = ..)]`; the derive makes its key include the column).
    pub fn distribution_key_position(&self) -> Option<usize> {
        let d = self.distribution?;
        self.primary_key.iter().position(|&f| f == d.column)
    }

    /// The primary-key fields, in key order.
    pub fn key_fields(&self) -> impl ExactSizeIterator<Item = &'static FieldSchema> + '_ {
        self.primary_key.iter().map(|&i| &self.fields[i])
    }

    /// Whether field `index` is part of the primary key.
    pub fn is_key(&self, index: usize) -> bool {
        self.primary_key.contains(&index)
    }

    /// The position of the field with the given Rust name; an error naming the model when
    /// there is none (relation metadata refers to fields by name).
    pub fn field_position(&self, name: &str) -> crate::Result<usize> {
        self.fields.iter().position(|f| f.name == name).ok_or_else(|| {
            crate::Error::Config(format!("{}: no field `{name}` (relation metadata out of date)", self.name))
        })
    }

    /// The field with the given column name.
    pub fn field_by_column(&self, column: &str) -> Option<(usize, &'static FieldSchema)> {
        self.fields.iter().enumerate().find(|(_, f)| f.column == column)
    }

    /// The schema (namespace) the table lives in, when the model declares one
    /// (`#[model(schema = "billing")]`); `None` for the connection's default schema.
    pub fn schema_name(&self) -> Option<&'static str> {
        split_table(self.table).0
    }

    /// The table name without its schema (`invoice` for `billing.invoice`). Constraint and
    /// index names are built from it: PostgreSQL keeps them per schema.
    pub fn table_name(&self) -> &'static str {
        split_table(self.table).1
    }

    /// The name of the primary-key constraint.
    pub fn primary_key_name(&self) -> String {
        format!("{}_pkey", self.table_name())
    }

    /// Rust names of the fields a unique constraint or index covers, found by its name.
    pub fn fields_of_constraint(&self, constraint: &str) -> Vec<&'static str> {
        if constraint == self.primary_key_name() {
            return self.key_fields().map(|f| f.name).collect();
        }
        self.indexes
            .iter()
            .find(|ix| ix.name == constraint)
            .map(|ix| ix.fields.iter().map(|&i| self.fields[i].name).collect())
            .unwrap_or_default()
    }
}

/// Splits a schema-qualified table name (`billing.invoice`) into its schema and table; a name
/// without a dot has no schema. Table names cannot contain dots (`#[derive(Model)]` refuses
/// them), so the first dot is always the separator.
pub fn split_table(table: &str) -> (Option<&str>, &str) {
    match table.split_once('.') {
        Some((schema, name)) => (Some(schema), name),
        None => (None, table),
    }
}

/// A model's entry in the registry every `#[derive(Model)]` adds itself to (see
/// [`registered`]): what migrations and schema docs enumerate.
#[derive(Debug)]
pub struct Registration {
    /// The model's schema.
    pub schema: &'static ModelSchema,
}

inventory::collect!(Registration);

/// Every model compiled into this program (in no particular order: sort by name or table if
/// order matters).
pub fn registered() -> impl Iterator<Item = &'static ModelSchema> {
    inventory::iter::<Registration>.into_iter().map(|r| r.schema)
}
