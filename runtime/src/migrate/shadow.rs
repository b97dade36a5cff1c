//! The shadow the drift check reads its *expected* catalog from: the tables a snapshot (or
//! `create_all`) describes, created by the same DDL in a throw-away place — fresh schemas
//! inside a rolled-back transaction on PostgreSQL, an in-memory database on SQLite.
//!
//! Tables of a named schema (`billing.invoice`) go to a shadow schema of their own, so a live
//! table of the same name is never touched and a table in `public` never stands in for one in
//! `billing`. [`ShadowDialect`] redirects the table references the DDL writes.

use std::collections::HashSet;

use crate::db::{Backend, Db};
use crate::exec;
use crate::schema::ColumnType;
use crate::schema::split_table;
use crate::sql::{Dialect, KeySequenceSql};

use super::MigrateError;
use super::catalog::{Catalog, read_postgres, read_sqlite};

/// A dialect that writes the shadow's table references: a schema-qualified table among
/// `tables` is written into its shadow schema; everything else is the inner dialect's.
struct ShadowDialect<'a> {
    inner: &'a dyn Dialect,
    /// (real schema, shadow schema).
    schemas: &'a [(String, String)],
    /// The tables the shadow creates (references to others go to the live ones).
    tables: &'a HashSet<String>,
}

impl Dialect for ShadowDialect<'_> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn placeholder(&self, out: &mut String, n: usize) {
        self.inner.placeholder(out, n);
    }
    fn quote_ident(&self, out: &mut String, ident: &str) {
        self.inner.quote_ident(out, ident);
    }
    fn has_schemas(&self) -> bool {
        self.inner.has_schemas()
    }
    fn quote_table(&self, out: &mut String, table: &str) {
        let shadow = match split_table(table) {
            (Some(schema), name) if self.tables.contains(table) => {
                self.schemas.iter().find(|(real, _)| real == schema).map(|(_, shadow)| (shadow, name))
            }
            _ => None,
        };
        match shadow {
            Some((shadow, name)) if self.has_schemas() => {
                self.quote_ident(out, shadow);
                out.push('.');
                self.quote_ident(out, name);
            }
            _ => self.inner.quote_table(out, table),
        }
    }
    fn column_type(&self, ty: &ColumnType) -> String {
        self.inner.column_type(ty)
    }
    fn identity_clause(&self) -> &'static str {
        self.inner.identity_clause()
    }
    fn generated_key_column(&self) -> Option<&'static str> {
        self.inner.generated_key_column()
    }
    fn key_sequence_sql(&self, table: &str, column: &str, max_key: i64) -> Option<KeySequenceSql> {
        self.inner.key_sequence_sql(table, column, max_key)
    }
    fn bool_literal(&self, b: bool) -> &'static str {
        self.inner.bool_literal(b)
    }
    fn now_default(&self, ty: &ColumnType) -> Option<&'static str> {
        self.inner.now_default(ty)
    }
    fn type_check(&self, ty: &ColumnType) -> Option<&'static str> {
        self.inner.type_check(ty)
    }
    fn checks_decimal_text(&self, ty: &ColumnType) -> bool {
        self.inner.checks_decimal_text(ty)
    }
    fn exact_decimal(&self, ty: &ColumnType) -> bool {
        self.inner.exact_decimal(ty)
    }
    fn max_params(&self) -> usize {
        self.inner.max_params()
    }
}

/// The catalog of `tables` created by the statements `render` writes for the dialect it is
/// given, read from a shadow next to `db`. With `see_live`, the shadow's statements also see
/// the live tables (on PostgreSQL, the shadow schema goes first in the `search_path`, ahead of
/// the current one), so foreign keys to tables outside `tables` resolve.
pub(super) async fn shadow_catalog<F>(
    db: &Db,
    tables: &HashSet<String>,
    see_live: bool,
    render: F,
) -> Result<Catalog, MigrateError>
where
    F: FnOnce(&dyn Dialect) -> Result<Vec<String>, MigrateError>,
{
    match db.backend() {
        Backend::Postgres => {
            let main = format!("_polystore_shadow_{}", std::process::id());
            let mut named: Vec<&str> = tables.iter().filter_map(|t| split_table(t).0).collect();
            named.sort_unstable();
            named.dedup();
            let schemas: Vec<(String, String)> =
                named.iter().enumerate().map(|(i, s)| (s.to_string(), format!("{main}_{i}"))).collect();
            let dialect = ShadowDialect { inner: db.dialect(), schemas: &schemas, tables };
            let statements = render(&dialect)?;
            let path = if see_live {
                format!("SELECT set_config('search_path', '\"{main}\", ' || current_setting('search_path'), true)")
            } else {
                format!("SET LOCAL search_path TO \"{main}\"")
            };
            let mut setup: Vec<String> = std::iter::once(&main)
                .chain(schemas.iter().map(|(_, s)| s))
                .map(|s| format!("CREATE SCHEMA \"{s}\""))
                .collect();
            setup.push(path);
            let mut tx = db.begin().await?;
            for sql in setup.iter().chain(&statements) {
                exec::execute_raw(&mut &mut tx, "migrate_shadow", None, sql).await?;
            }
            let catalog = read_postgres(&mut &mut tx, &schemas).await;
            tx.rollback().await?;
            catalog
        }
        Backend::Sqlite => {
            let statements = render(db.dialect())?;
            // One connection: every connection to `:memory:` is a database of its own.
            let one = crate::db::PoolConfig { max_connections: 1, ..Default::default() };
            let shadow = Db::connect_with("sqlite::memory:", one).await?;
            for sql in &statements {
                exec::execute_raw(&mut &shadow, "migrate_shadow", None, sql).await?;
            }
            let catalog = read_sqlite(&mut &shadow).await;
            shadow.close().await;
            catalog
        }
    }
}
