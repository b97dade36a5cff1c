//! The live catalog — tables, columns, keys, indexes and constraints as the database reports
//! them (`pg_catalog` on PostgreSQL; `sqlite_master` and `pragma_table_info` /
//! `pragma_index_list` on SQLite) — and the drift check that compares it with a snapshot.
//!
//! The expected side is read the same way from a *shadow* (see `shadow`): the snapshot's
//! tables created by the same DDL in a throw-away place (schemas inside a rolled-back
//! transaction on PostgreSQL, an in-memory database for SQLite). Both sides are then normalised by the
//! database itself, so defaults and CHECK expressions compare exactly without re-parsing SQL.
//! polystore's own tables (`_polystore_*`) are left out.

use std::collections::BTreeMap;
use std::fmt;

use crate::db::{Backend, Db, Executor};
use crate::exec;
use crate::schema::{ColumnType, ModelSchema, Scalar, split_table};
use crate::sql::{Param, Statement};
use crate::value::Value;

use super::MigrateError;
use super::diff::diff;
use super::render::render;
use super::shadow::shadow_catalog;
use super::snapshot::Snapshot;
use super::sqlite_ddl;

/// Every table of the database (polystore's bookkeeping excepted).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    /// Tables by name.
    pub tables: BTreeMap<String, TableCatalog>,
}

/// One table as the database describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableCatalog {
    /// Columns by name (their physical order is not compared).
    pub columns: BTreeMap<String, ColumnCatalog>,
    /// The primary-key columns, in key order.
    pub primary_key: Vec<String>,
    /// Indexes by name (not those backing the primary key).
    pub indexes: BTreeMap<String, IndexCatalog>,
    /// Constraints by name (CHECKs, primary key, unique, foreign keys) with their definition.
    /// SQLite's unnamed CHECKs are keyed `{column}.check{n}`.
    pub constraints: BTreeMap<String, String>,
    /// How a partitioned table is split, as PostgreSQL prints its key (`RANGE (created_at)`),
    /// followed by ` MODULUS n` for hash partitioning; `None` for a plain table. Partitions
    /// themselves are not tables of the catalog.
    pub partition: Option<String>,
}

/// One column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnCatalog {
    /// The declared type, as the database prints it.
    pub ty: String,
    /// Whether NULL is allowed.
    pub nullable: bool,
    /// The default expression, as the database prints it.
    pub default: Option<String>,
    /// An identity / auto-increment column.
    pub identity: bool,
}

/// One index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexCatalog {
    /// The indexed columns, in order.
    pub columns: Vec<String>,
    /// Whether it is unique.
    pub unique: bool,
    /// Whether it is partial (has a WHERE condition: a soft-delete model's unique indexes).
    pub partial: bool,
}

pub use super::status::Drift;

/// Whether a table belongs to polystore or the database itself, not to the models.
fn is_internal(table: &str) -> bool {
    table.starts_with("_polystore_") || table.starts_with("sqlite_")
}

/// Reads the catalog of `db`: on PostgreSQL, the tables of its current schema, plus those of
/// each schema in `schemas` keyed `schema.table` (as [`ModelSchema::table`] names them).
pub async fn read<E: Executor>(db: &mut E, backend: Backend, schemas: &[&str]) -> Result<Catalog, MigrateError> {
    match backend {
        Backend::Postgres => {
            let pairs: Vec<(String, String)> = schemas.iter().map(|s| (s.to_string(), s.to_string())).collect();
            read_postgres(db, &pairs).await
        }
        Backend::Sqlite => read_sqlite(db).await,
    }
}

/// The catalog `snapshot` describes, read from a shadow built next to `db` (see the module
/// docs). Needs the right to create a schema on PostgreSQL.
pub async fn expected(db: &Db, snapshot: &Snapshot) -> Result<Catalog, MigrateError> {
    let empty = Snapshot::empty();
    let steps = diff(&empty, snapshot)?;
    let tables = snapshot.tables.iter().map(|t| t.table.clone()).collect();
    shadow_catalog(db, &tables, false, |d| {
        Ok(render(d, &steps, &empty, snapshot, false)?.into_iter().flat_map(|s| s.statements).collect())
    })
    .await
}

/// How the tables among `schemas` that already exist differ from what
/// [`Db::create_all`] would create: the live catalog compared with a shadow built from
/// `create_all`'s own DDL, both restricted to those tables. Empty when none exists.
pub(crate) async fn existing_table_drift(db: &Db, schemas: &[&ModelSchema]) -> Result<Vec<Drift>, MigrateError> {
    let mut namespaces: Vec<&str> = schemas.iter().filter_map(|s| s.schema_name()).collect();
    namespaces.sort_unstable();
    namespaces.dedup();
    let live = read(&mut &*db, db.backend(), &namespaces).await?;
    let existing: Vec<&str> = schemas.iter().map(|s| s.table).filter(|t| live.tables.contains_key(*t)).collect();
    if existing.is_empty() {
        return Ok(Vec::new());
    }
    let tables = schemas.iter().map(|s| s.table.to_owned()).collect();
    // Foreign keys to tables not in `schemas` resolve to the live ones (PostgreSQL); those
    // among them to the shadow's, created first (on Citus, a plain table cannot refer to a
    // distributed one).
    let want = shadow_catalog(db, &tables, true, |d| {
        let mut statements = Vec::new();
        for schema in crate::db::by_foreign_keys(schemas) {
            statements.extend(crate::sql::ddl::create_table(d, schema, false)?);
        }
        Ok(statements)
    })
    .await?;
    let only =
        |c: Catalog| Catalog { tables: c.tables.into_iter().filter(|(t, _)| existing.contains(&t.as_str())).collect() };
    Ok(compare(&only(want), &only(live)))
}

/// The differences between the `expected` catalog and the `actual` one.
pub fn compare(expected: &Catalog, actual: &Catalog) -> Vec<Drift> {
    let mut out = Vec::new();
    let mut push = |table: &str, message: String| out.push(Drift { table: table.to_owned(), message });
    for (name, want) in &expected.tables {
        let Some(have) = actual.tables.get(name) else {
            push(name, "table is missing".to_owned());
            continue;
        };
        for (col, w) in &want.columns {
            match have.columns.get(col) {
                None => push(name, format!("column {col:?} is missing")),
                Some(h) if h != w => push(name, format!("column {col:?} is {} but should be {}", show(h), show(w))),
                Some(_) => {}
            }
        }
        for col in have.columns.keys().filter(|c| !want.columns.contains_key(*c)) {
            push(name, format!("column {col:?} is not in the schema"));
        }
        if want.primary_key != have.primary_key {
            push(
                name,
                format!(
                    "primary key is ({}) but should be ({})",
                    have.primary_key.join(", "),
                    want.primary_key.join(", ")
                ),
            );
        }
        if want.partition != have.partition {
            let show = |p: &Option<String>| {
                p.as_ref().map_or_else(|| "not partitioned".to_owned(), |p| format!("PARTITION BY {p}"))
            };
            push(name, format!("partitioning is {} but should be {}", show(&have.partition), show(&want.partition)));
        }
        compare_map(name, "index", &want.indexes, &have.indexes, &mut push);
        compare_map(name, "constraint", &want.constraints, &have.constraints, &mut push);
    }
    for name in actual.tables.keys().filter(|t| !expected.tables.contains_key(*t)) {
        push(name, "table is not in the schema".to_owned());
    }
    out
}

fn compare_map<V: PartialEq + fmt::Debug>(
    table: &str,
    what: &str,
    want: &BTreeMap<String, V>,
    have: &BTreeMap<String, V>,
    push: &mut impl FnMut(&str, String),
) {
    for (name, w) in want {
        match have.get(name) {
            None => push(table, format!("{what} {name:?} is missing")),
            Some(h) if h != w => push(table, format!("{what} {name:?} is {h:?} but should be {w:?}")),
            Some(_) => {}
        }
    }
    for name in have.keys().filter(|n| !want.contains_key(*n)) {
        push(table, format!("{what} {name:?} is not in the schema"));
    }
}

fn show(c: &ColumnCatalog) -> String {
    format!(
        "{}{}{}{}",
        c.ty,
        if c.nullable { " NULL" } else { " NOT NULL" },
        c.default.as_deref().map(|d| format!(" DEFAULT {d}")).unwrap_or_default(),
        if c.identity { " IDENTITY" } else { "" }
    )
}

const TEXT: ColumnType = ColumnType::scalar(Scalar::Text).nullable();
const BOOL: ColumnType = ColumnType::scalar(Scalar::Bool);
const INT: ColumnType = ColumnType::scalar(Scalar::I64).nullable();

/// Runs a catalog query returning text / bool / integer columns as strings.
async fn rows<E: Executor>(
    db: &mut E,
    sql: &str,
    params: Vec<Param>,
    types: &[ColumnType],
) -> Result<Vec<Vec<String>>, MigrateError> {
    let stmt = Statement { sql: sql.to_owned(), params };
    let rows = exec::fetch_with(db, "migrate_catalog", None, stmt, |row| {
        types
            .iter()
            .enumerate()
            .map(|(i, ty)| {
                let v = row.value(i, *ty).map_err(|e| crate::Error::Database { code: None, message: e.to_string() })?;
                Ok(match v {
                    Value::Null => String::new(),
                    Value::Text(s) => s,
                    Value::Bool(b) => b.to_string(),
                    Value::I64(n) => n.to_string(),
                    other => format!("{other:?}"),
                })
            })
            .collect::<Result<Vec<String>, crate::Error>>()
    })
    .await?;
    Ok(rows)
}

/// The namespaces a PostgreSQL catalog read covers, as a `WITH` clause: `ns(nsp, prefix)`
/// holds the current schema (prefix empty) and each `(schema, namespace)` pair, whose tables
/// are keyed `schema.table` (`namespace` is where they really are: a shadow's own schema).
fn namespaces(schemas: &[(String, String)]) -> (String, Vec<Param>) {
    let mut sql = String::from("WITH ns(nsp, prefix) AS (VALUES (current_schema()::text, ''::text)");
    let mut params = Vec::new();
    for (schema, nsp) in schemas {
        let n = params.len();
        sql.push_str(&format!(", (${}, ${})", n + 1, n + 2));
        params.push(Param { value: Value::Text(nsp.clone()), ty: TEXT });
        params.push(Param { value: Value::Text(format!("{schema}.")), ty: TEXT });
    }
    sql.push_str(") ");
    (sql, params)
}

pub(super) async fn read_postgres<E: Executor>(
    db: &mut E,
    schemas: &[(String, String)],
) -> Result<Catalog, MigrateError> {
    let mut cat = Catalog::default();
    let (with, params) = namespaces(schemas);
    let columns = format!(
        "{with}SELECT ns.prefix || c.relname::text, a.attname::text, format_type(a.atttypid, a.atttypmod), \
         NOT a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attidentity <> '' \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN ns ON ns.nsp = n.nspname::text \
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
         LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum \
         WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition"
    );
    for r in rows(db, &columns, params.clone(), &[TEXT, TEXT, TEXT, BOOL, TEXT, BOOL]).await? {
        if is_internal(split_table(&r[0]).1) {
            continue;
        }
        let default = (!r[4].is_empty()).then(|| r[4].clone());
        let col = ColumnCatalog { ty: r[2].clone(), nullable: r[3] == "true", default, identity: r[5] == "true" };
        cat.tables.entry(r[0].clone()).or_default().columns.insert(r[1].clone(), col);
    }
    let partitioned = format!(
        "{with}SELECT ns.prefix || c.relname::text, pg_get_partkeydef(c.oid) || coalesce(' MODULUS ' || \
           (SELECT max(substring(pg_get_expr(p.relpartbound, p.oid) from 'modulus (\\d+)')) \
            FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhrelid WHERE i.inhparent = c.oid), '') \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN ns ON ns.nsp = n.nspname::text \
         WHERE c.relkind = 'p' AND NOT c.relispartition"
    );
    for r in rows(db, &partitioned, params.clone(), &[TEXT, TEXT]).await? {
        if let Some(table) = cat.tables.get_mut(&r[0]) {
            table.partition = Some(r[1].clone());
        }
    }
    let indexes = format!(
        "{with}SELECT ns.prefix || t.relname::text, i.relname::text, ix.indisunique, ix.indisprimary, \
         array_to_string(ARRAY(SELECT a.attname::text FROM unnest(ix.indkey::int2[]) WITH ORDINALITY k(num, ord) \
           JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.num ORDER BY k.ord), ','), \
         ix.indpred IS NOT NULL \
         FROM pg_index ix JOIN pg_class i ON i.oid = ix.indexrelid JOIN pg_class t ON t.oid = ix.indrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace JOIN ns ON ns.nsp = n.nspname::text"
    );
    for r in rows(db, &indexes, params.clone(), &[TEXT, TEXT, BOOL, BOOL, TEXT, BOOL]).await? {
        let Some(table) = cat.tables.get_mut(&r[0]) else { continue };
        let columns: Vec<String> = r[4].split(',').filter(|c| !c.is_empty()).map(str::to_owned).collect();
        if r[3] == "true" {
            table.primary_key = columns;
        } else {
            let (unique, partial) = (r[2] == "true", r[5] == "true");
            table.indexes.insert(r[1].clone(), IndexCatalog { columns, unique, partial });
        }
    }
    // A foreign key's referenced table is written without its schema: PostgreSQL qualifies
    // it only when it is not on the search path, which differs between a shadow and the live
    // database.
    let constraints = format!(
        "{with}SELECT ns.prefix || c.relname::text, k.conname::text, CASE WHEN k.contype = 'f' \
           THEN regexp_replace(pg_get_constraintdef(k.oid), 'REFERENCES [^(]*\\(', \
             'REFERENCES ' || quote_ident(r.relname::text) || '(') \
           ELSE pg_get_constraintdef(k.oid) END \
         FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
         JOIN ns ON ns.nsp = n.nspname::text LEFT JOIN pg_class r ON r.oid = k.confrelid"
    );
    for r in rows(db, &constraints, params, &[TEXT, TEXT, TEXT]).await? {
        if let Some(table) = cat.tables.get_mut(&r[0]) {
            table.indexes.remove(&r[1]);
            table.constraints.insert(r[1].clone(), r[2].clone());
        }
    }
    Ok(cat)
}

pub(super) async fn read_sqlite<E: Executor>(db: &mut E) -> Result<Catalog, MigrateError> {
    let mut cat = Catalog::default();
    let tables =
        rows(db, "SELECT name, sql FROM sqlite_master WHERE type = 'table'", Vec::new(), &[TEXT, TEXT]).await?;
    let text = |s: &str| vec![Param { value: Value::Text(s.to_owned()), ty: TEXT }];
    for t in tables.iter().filter(|t| !is_internal(&t[0])) {
        let mut table = TableCatalog::default();
        let defs = sqlite_ddl::column_defs(&t[1]);
        let cols = "SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info(?1)";
        let mut key: Vec<(i64, String)> = Vec::new();
        for c in rows(db, cols, text(&t[0]), &[TEXT, TEXT, INT, TEXT, INT]).await? {
            let identity = defs.get(&c[0]).is_some_and(|d| d.to_ascii_uppercase().contains("AUTOINCREMENT"));
            let pk: i64 = c[4].parse().unwrap_or(0);
            if pk > 0 {
                key.push((pk, c[0].clone()));
            }
            let default = (!c[3].is_empty()).then(|| c[3].clone());
            let nullable = c[2] == "0" && pk == 0;
            table.columns.insert(c[0].clone(), ColumnCatalog { ty: c[1].clone(), nullable, default, identity });
        }
        key.sort();
        table.primary_key = key.into_iter().map(|(_, c)| c).collect();
        let list = "SELECT name, \"unique\", origin, partial FROM pragma_index_list(?1)";
        for ix in rows(db, list, text(&t[0]), &[TEXT, INT, TEXT, INT]).await? {
            if ix[2] == "pk" {
                continue;
            }
            let info = "SELECT name FROM pragma_index_info(?1) ORDER BY seqno";
            let columns = rows(db, info, text(&ix[0]), &[TEXT]).await?.into_iter().map(|mut r| r.remove(0)).collect();
            let (unique, partial) = (ix[1] == "1", ix[3] == "1");
            table.indexes.insert(ix[0].clone(), IndexCatalog { columns, unique, partial });
        }
        table.constraints = sqlite_ddl::constraints(&t[1]);
        cat.tables.insert(t[0].clone(), table);
    }
    Ok(cat)
}
