//! Citus: turning the tables of distributed (`#[model(distributed_by = col)]`) and reference
//! (`#[model(reference)]`) models into Citus distributed and reference tables.
//!
//! [`Db::create_all`](crate::Db::create_all) and migrations call [`distribute`] right after a
//! table's `CREATE TABLE`, before any data, when the server has the `citus` extension; tables
//! are created referenced-first and colocation targets first (see `by_foreign_keys` in
//! `db.rs`), so a table's foreign keys and colocation partner are already distributed when it
//! is. On a PostgreSQL server without Citus, and on SQLite, distributed and reference models
//! are plain tables.
//!
//! [`check_layout`] holds the rules that need two models at once (the derive sees one struct
//! at a time and checks what it can at compile time).

use crate::error::{Error, Result};
use crate::schema::{DistributionKind, ModelSchema, RelationKind};
use crate::sql::Dialect;

/// How a model's table is laid out on a Citus cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// A table on the coordinator only.
    Local,
    /// A table copied to every node.
    Reference,
    /// A table hash-distributed by a column.
    Distributed,
}

/// The layout `schema` declares.
pub fn layout(schema: &ModelSchema) -> Layout {
    if schema.reference {
        Layout::Reference
    } else if schema.distribution.is_some() {
        Layout::Distributed
    } else {
        Layout::Local
    }
}

/// Checks the rules between models that a Citus cluster enforces, before anything is created:
/// - a distributed model is hash-distributed (`distributed_by(range(..))` is a MongoDB shard key);
/// - `colocate_with` names a distributed model's table, distributed by a column of the same type;
/// - a `belongs_to` of a distributed model targets a reference model, or a distributed model
///   whose key is its distribution column, through this model's distribution column, and the
///   two are colocated (the same distribution column type, and no `colocate_with` naming a
///   third table);
/// - a `belongs_to` of a reference model targets a reference model;
/// - a `belongs_to` of a local model does not target a distributed model.
///
/// The first problem found is [`Error::Config`], naming both models.
pub fn check_layout(schemas: &[&'static ModelSchema]) -> Result<()> {
    for schema in schemas {
        if let Some(d) = schema.distribution {
            if d.kind == DistributionKind::Range {
                return Err(Error::Config(format!(
                    "model {} is distributed by range of `{}`: Citus distributes tables by hash only \
                     (ranged distribution is for MongoDB shard keys); write #[model(distributed_by = {})]",
                    schema.name, schema.fields[d.column].name, schema.fields[d.column].name
                )));
            }
            if let Some(other) = d.colocate_with {
                let Some(target) = schemas.iter().find(|s| s.table == other) else {
                    return Err(Error::Config(format!(
                        "model {} is colocated with table `{other}`, which is not among the models given",
                        schema.name
                    )));
                };
                let Some(td) = target.distribution else {
                    return Err(Error::Config(format!(
                        "model {} is colocated with {} (table `{other}`), which is not distributed: \
                         colocate_with names a distributed model's table",
                        schema.name, target.name
                    )));
                };
                if target.fields[td.column].ty.scalar != schema.fields[d.column].ty.scalar {
                    return Err(Error::Config(format!(
                        "model {} (distributed by `{}`) is colocated with {} (distributed by `{}`), but the two \
                         distribution columns have different types: colocated tables need the same type",
                        schema.name, schema.fields[d.column].name, target.name, target.fields[td.column].name
                    )));
                }
            }
        }
        for rel in schema.relations.iter().filter(|r| r.kind == RelationKind::BelongsTo) {
            let target = (rel.target)();
            let fk = schema.fields[rel.local_field].name;
            let problem = match (layout(schema), layout(target)) {
                (_, Layout::Reference) => None,
                (Layout::Distributed, Layout::Distributed) => distributed_pair(schema, target, rel.local_field),
                (Layout::Distributed, Layout::Local) => Some(format!(
                    "{} is local (neither distributed nor reference): a distributed table's foreign keys point \
                     at reference tables or colocated distributed tables; mark {} #[model(reference)] or distribute it",
                    target.name, target.name
                )),
                (Layout::Reference, _) => Some(format!(
                    "{} is reference (copied to every node) and can only refer to reference tables; mark {} \
                     #[model(reference)]",
                    schema.name, target.name
                )),
                (Layout::Local, Layout::Distributed) => Some(format!(
                    "{} is distributed, and a local table cannot refer to a distributed one; distribute {} too \
                     (#[model(distributed_by = ..)]) or make {} a reference model",
                    target.name, schema.name, target.name
                )),
                (Layout::Local, Layout::Local) => None,
            };
            if let Some(problem) = problem {
                return Err(Error::Config(format!(
                    "the foreign key {}.{fk} (relation `{}`) to {} cannot exist on a Citus cluster: {problem}",
                    schema.name, rel.name, target.name
                )));
            }
        }
    }
    Ok(())
}

/// The rule for a foreign key between two distributed models; `None` when it holds.
fn distributed_pair(schema: &ModelSchema, target: &ModelSchema, fk: usize) -> Option<String> {
    let (d, td) = (schema.distribution?, target.distribution?);
    if fk != d.column {
        return Some(format!(
            "it does not include {}'s distribution column `{}`; link through it (belongs_to(key = {}))",
            schema.name, schema.fields[d.column].name, schema.fields[d.column].name
        ));
    }
    if target.primary_key != [td.column] {
        return Some(format!(
            "{}'s key is not its distribution column `{}`, so the foreign key cannot include the distribution \
             column on both sides",
            target.name, target.fields[td.column].name
        ));
    }
    if schema.fields[d.column].ty.scalar != target.fields[td.column].ty.scalar {
        return Some(format!(
            "the distribution columns `{}` and `{}` have different types, so the tables are not colocated",
            schema.fields[d.column].name, target.fields[td.column].name
        ));
    }
    if let Some(other) = d.colocate_with.filter(|t| *t != target.table) {
        return Some(format!(
            "{} is colocated with table `{other}` (colocate_with), not with {}",
            schema.name, target.name
        ));
    }
    None
}

/// Whether the server behind `db` has the `citus` extension.
pub(crate) async fn has_citus<E: crate::Executor>(db: &mut E) -> Result<bool> {
    use crate::sql::Statement;
    static PROBE: ModelSchema = ModelSchema::EMPTY;
    let n = crate::exec::fetch_i64(
        db,
        "citus_probe",
        &PROBE,
        Statement { sql: "SELECT count(*) FROM pg_extension WHERE extname = 'citus'".into(), params: Vec::new() },
    )
    .await?;
    Ok(n > 0)
}

/// The statements that create `schema`'s table on a Citus cluster, unless it exists: its
/// schema (namespace), the table and its indexes without foreign keys, the
/// `create_reference_table` / `create_distributed_table` call, then the foreign keys (a
/// foreign key declared before the table is distributed would make Citus adopt the table as a
/// local one). Nothing for a table that exists (`create_all` has checked its shape).
pub(crate) async fn create_table<E: crate::Executor>(db: &mut E, schema: &'static ModelSchema) -> Result<Vec<String>> {
    use crate::sql::Statement;
    use crate::sql::postgres::Postgres;
    let mut quoted = String::new();
    Postgres.quote_table(&mut quoted, schema.table);
    let exists = crate::exec::fetch_i64(
        db,
        "citus_table_exists",
        schema,
        Statement {
            sql: format!("SELECT count(*) FROM pg_class WHERE oid = to_regclass({})", literal(&quoted)),
            params: Vec::new(),
        },
    )
    .await?;
    if exists > 0 {
        return Ok(Vec::new());
    }
    let mut out: Vec<String> = crate::sql::ddl::create_schema(&Postgres, schema).into_iter().collect();
    out.extend(crate::sql::ddl::create_table_with(&Postgres, schema, false, false)?);
    out.extend(distribute(&Postgres, schema));
    out.extend(
        crate::sql::ddl::foreign_keys(&Postgres, schema)
            .into_iter()
            .map(|fk| format!("ALTER TABLE {quoted} ADD {}", fk.trim_start())),
    );
    Ok(out)
}

/// The statement that makes `schema`'s freshly created table a Citus reference or distributed
/// table, if the model is either; it does nothing to a table Citus already knows.
pub fn distribute(dialect: &dyn Dialect, schema: &ModelSchema) -> Option<String> {
    let mut table = String::new();
    dialect.quote_table(&mut table, schema.table);
    let table = literal(&table);
    let call = match (layout(schema), schema.distribution) {
        (Layout::Reference, _) => format!("create_reference_table({table})"),
        (Layout::Distributed, Some(d)) => {
            let column = literal(schema.fields[d.column].column);
            match d.colocate_with {
                Some(other) => {
                    let mut with = String::new();
                    dialect.quote_table(&mut with, other);
                    format!("create_distributed_table({table}, {column}, colocate_with => {})", literal(&with))
                }
                None => format!("create_distributed_table({table}, {column})"),
            }
        }
        _ => return None,
    };
    Some(format!(
        "SELECT {call} WHERE NOT EXISTS (SELECT FROM pg_dist_partition WHERE logicalrelid = {table}::regclass)"
    ))
}

/// [`distribute`] for a migration file, which must also run on PostgreSQL without Citus: a
/// `DO` block calling it only when the `citus` extension is installed (and then making the
/// migration's transaction run distributed DDL over one connection per node).
pub fn distribute_if_citus(dialect: &dyn Dialect, schema: &ModelSchema) -> Option<String> {
    let call = distribute(dialect, schema)?;
    let call = call.strip_prefix("SELECT ").unwrap_or(&call);
    Some(format!(
        "DO $polystore$ BEGIN IF EXISTS (SELECT FROM pg_extension WHERE extname = 'citus') THEN \
         PERFORM set_config('citus.multi_shard_modify_mode', 'sequential', true); PERFORM {call}; END IF; END $polystore$"
    ))
}

/// A SQL string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}
