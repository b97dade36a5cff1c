//! Steps → SQL, per dialect: what `up.{dialect}.sql` and `down.{dialect}.sql` hold.
//!
//! Tables and columns are written by the same code as `create_all` (the snapshot's tables are
//! rebuilt into static schemas, see [`rebuild`](super::rebuild)), so a database built by
//! migrations has the catalog a `create_all` database has.
//!
//! PostgreSQL alters in place (its DDL is transactional). SQLite cannot change a column's
//! type, nullability, default or CHECKs, nor rename constraints; for those it gets the
//! documented table rebuild (<https://www.sqlite.org/lang_altertable.html#otheralter>): create
//! the new table under a temporary name, copy the rows, drop the old table, rename the new
//! one, recreate the indexes — inside the migration's transaction.

use std::collections::{HashMap, HashSet};

use crate::schema::{ModelSchema, split_table};
use crate::sql::Dialect;
use crate::sql::ddl;

use super::MigrateError;
use super::diff::Step;
use super::layout;
use super::rebuild::{self, schema_of};
use super::snapshot::{ColumnSnapshot, ForeignKeySnapshot, IndexSnapshot, Snapshot, TableSnapshot};

/// The marker that starts the comment of a destructive step; the runner refuses a migration
/// holding it unless destructive steps are allowed.
pub const DESTRUCTIVE_MARKER: &str = "-- DESTRUCTIVE:";

/// One step's SQL with its comment lines.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedStep {
    /// Comment lines (with their `-- `).
    pub comments: Vec<String>,
    /// The statements, without trailing `;`.
    pub statements: Vec<String>,
}

/// The dialects this build can write migrations for, with their file-name tags
/// (`up.{tag}.sql`).
pub fn dialects() -> Vec<(&'static str, &'static dyn Dialect)> {
    [
        #[cfg(feature = "postgres")]
        ("postgres", &crate::sql::postgres::Postgres as &'static dyn Dialect),
        ("sqlite", &crate::sql::sqlite::Sqlite as &'static dyn Dialect),
    ]
    .into_iter()
    .collect()
}

/// Renders `steps`, which turn `before` into `after`, for dialect `d`. For the down direction
/// pass the inverse steps (reversed) with `before` and `after` swapped.
pub fn render(
    d: &dyn Dialect,
    steps: &[Step],
    before: &Snapshot,
    after: &Snapshot,
    down: bool,
) -> Result<Vec<RenderedStep>, MigrateError> {
    let sqlite = d.name() == "sqlite";
    let finals = final_names(steps);
    let rebuilt: HashSet<String> = if sqlite {
        steps.iter().filter(|s| needs_rebuild(s, before)).map(|s| final_name(&finals, s.table())).collect()
    } else {
        HashSet::new()
    };
    let renamed: HashSet<String> = steps
        .iter()
        .filter_map(|s| if let Step::RenameTable { to, .. } = s { Some(to.clone()) } else { None })
        .collect();
    let mut done: HashSet<String> = HashSet::new();
    let mut out = Vec::new();
    for (at, step) in steps.iter().enumerate() {
        let table = final_name(&finals, step.table());
        let mut comments = comments(step, down);
        if let Step::ChangeLayout { .. } = step {
            out.push(RenderedStep { comments, statements: layout::statements(d, steps, at, before)? });
            continue;
        }
        let whole_table = matches!(step, Step::CreateTable { .. } | Step::DropTable { .. });
        if !rebuilt.contains(&table) || whole_table {
            out.push(RenderedStep { comments, statements: statements(d, step)? });
            continue;
        }
        // A SQLite table rebuild covers every step of the table. A renamed table is renamed
        // in place first (which also updates the foreign keys of other tables referring to
        // it), then rebuilt under its new name.
        let is_rename = matches!(step, Step::RenameTable { .. });
        if done.contains(&table) || (renamed.contains(&table) && !is_rename) {
            comments.push("--   (part of the SQLite table rebuild)".to_owned());
            out.push(RenderedStep { comments, statements: Vec::new() });
            continue;
        }
        done.insert(table.clone());
        comments.push(format!("--   SQLite: rebuilds table {table:?} (create, copy, drop, rename)"));
        let mut sql = if is_rename { statements(d, step)? } else { Vec::new() };
        sql.extend(rebuild_table(d, &table, steps, &finals, before, after)?);
        out.push(RenderedStep { comments, statements: sql });
    }
    create_schemas(d, steps, before, &mut out);
    out.splice(0..0, layout::sequential_mode(d, steps));
    Ok(out)
}

/// Puts `CREATE SCHEMA IF NOT EXISTS` before the first table created in (or moved to) a
/// schema that `before` has no table in, on databases with schemas.
fn create_schemas(d: &dyn Dialect, steps: &[Step], before: &Snapshot, out: &mut [RenderedStep]) {
    let mut known: HashSet<String> = before.schemas().into_iter().collect();
    for (step, rendered) in steps.iter().zip(out.iter_mut()) {
        let target = match step {
            Step::CreateTable { table } => &table.table,
            Step::RenameTable { to, .. } => to,
            _ => continue,
        };
        let Some(schema) = split_table(target).0 else { continue };
        if known.insert(schema.to_owned())
            && let Some(sql) = ddl::create_schema_named(d, schema)
        {
            rendered.statements.insert(0, sql);
        }
    }
}

/// The comment lines of a step: what it does, and whether it destroys data or may fail.
fn comments(step: &Step, down: bool) -> Vec<String> {
    let mut out = Vec::new();
    if step.is_destructive() {
        let loss = step.loss().unwrap_or_default();
        out.push(format!("{DESTRUCTIVE_MARKER} {}; loses {loss}", step.describe()));
    } else {
        out.push(format!("-- {}", step.describe()));
    }
    if let Some(caveat) = step.caveat() {
        out.push(format!("--   note: {caveat}"));
    }
    if let Some(loss) = step.inverse().loss().filter(|_| down) {
        out.push(format!("--   CANNOT RESTORE: {loss}"));
    }
    out
}

/// Maps every name a table has during the steps to its name after them.
fn final_names(steps: &[Step]) -> HashMap<String, String> {
    steps
        .iter()
        .filter_map(|s| match s {
            Step::RenameTable { from, to, .. } => Some((from.clone(), to.clone())),
            _ => None,
        })
        .collect()
}

fn final_name(finals: &HashMap<String, String>, table: &str) -> String {
    finals.get(table).cloned().unwrap_or_else(|| table.to_owned())
}

/// Whether SQLite needs a table rebuild for this step.
fn needs_rebuild(step: &Step, before: &Snapshot) -> bool {
    match step {
        Step::RenameTable { old, .. } => has_named_constraints(old),
        Step::AlterColumn { .. }
        | Step::SetPrimaryKey { .. }
        | Step::AddCheck { .. }
        | Step::DropCheck { .. }
        | Step::AddForeignKey { .. }
        | Step::DropForeignKey { .. } => true,
        Step::RenameColumn { column, .. } => !column.checks.is_empty(),
        Step::AddColumn { column, .. } => {
            column.generated || column.auto.is_some() || (!column.ty.nullable && column.default.is_none())
        }
        Step::DropColumn { table, column } => {
            before.table(table).is_none_or(|t| t.primary_key.contains(&column.name)) || column.generated
        }
        Step::CreateTable { .. }
        | Step::DropTable { .. }
        | Step::AddIndex { .. }
        | Step::DropIndex { .. }
        | Step::RenameIndex { .. }
        | Step::ChangeLayout { .. } => false,
    }
}

/// Whether a table's SQLite definition names constraints after the table (a primary key
/// other than an inline generated one, rule CHECKs, foreign keys): renaming the table then
/// needs a rebuild to rename them.
fn has_named_constraints(t: &TableSnapshot) -> bool {
    let inline_key = t.primary_key.len() == 1 && t.column(&t.primary_key[0]).is_some_and(|c| c.generated);
    (!t.primary_key.is_empty() && !inline_key)
        || t.columns.iter().any(|c| !c.checks.is_empty())
        || !t.foreign_keys.is_empty()
}

fn quote(d: &dyn Dialect, ident: &str) -> String {
    let mut s = String::new();
    d.quote_ident(&mut s, ident);
    s
}

/// A table reference, schema-qualified where the dialect has schemas (`"billing"."invoice"`).
fn quote_table(d: &dyn Dialect, table: &str) -> String {
    let mut s = String::new();
    d.quote_table(&mut s, table);
    s
}

/// An index of `table`: in the table's schema (indexes live next to their table).
fn quote_index(d: &dyn Dialect, table: &str, index: &str) -> String {
    match split_table(table).0 {
        Some(schema) => quote_table(d, &format!("{schema}.{index}")),
        None => quote(d, index),
    }
}

/// The table name without its schema: what constraint and index names are built from.
fn local(table: &str) -> &str {
    split_table(table).1
}

/// `ALTER TABLE "t" ` .
fn alter(d: &dyn Dialect, table: &str) -> String {
    format!("ALTER TABLE {} ", quote_table(d, table))
}

/// The SQL of one step, altering in place.
fn statements(d: &dyn Dialect, step: &Step) -> Result<Vec<String>, MigrateError> {
    let q = |s: &str| quote(d, s);
    Ok(match step {
        Step::CreateTable { table } => create_table(d, table, &table.table)?,
        Step::DropTable { table } => vec![ddl::drop_table(d, schema_of(table)?, false)],
        Step::RenameTable { from, to, old } => {
            let mut out = move_table(d, from, to);
            if d.name() == "postgresql" {
                out.extend(rename_constraints(d, to, old, from, to, None));
                if old.partition.is_some() {
                    out.push(follow_partitions(d, from, to));
                }
            }
            out
        }
        Step::AddColumn { table, column } => {
            let (schema, field) = column_schema(table, column)?;
            vec![format!("{}ADD COLUMN {}", alter(d, table), ddl::column_definition(d, schema, field)?)]
        }
        Step::DropColumn { table, column } => vec![format!("{}DROP COLUMN {}", alter(d, table), q(&column.name))],
        Step::RenameColumn { table, from, to, column } => {
            let mut out = vec![format!("{}RENAME COLUMN {} TO {}", alter(d, table), q(from), q(to))];
            if d.name() == "postgresql" {
                let single = TableSnapshot { columns: vec![column.clone()], ..bare(table) };
                out.extend(rename_constraints(d, table, &single, table, table, Some(to)));
            }
            out
        }
        Step::AlterColumn { table, from, to } => alter_column(d, table, from, to)?,
        Step::SetPrimaryKey { table, from, to } => {
            let mut out = Vec::new();
            let name = q(&format!("{}_pkey", local(table)));
            if !from.is_empty() {
                out.push(format!("{}DROP CONSTRAINT {name}", alter(d, table)));
            }
            if !to.is_empty() {
                let cols: Vec<String> = to.iter().map(|c| q(c)).collect();
                out.push(format!("{}ADD CONSTRAINT {name} PRIMARY KEY ({})", alter(d, table), cols.join(", ")));
            }
            out
        }
        Step::AddIndex { table, index } => vec![create_index(d, table, index)],
        Step::DropIndex { table, index } => vec![format!("DROP INDEX {}", quote_index(d, table, &index.name))],
        Step::RenameIndex { table, from, to } if d.name() == "sqlite" => {
            vec![format!("DROP INDEX {}", quote_index(d, table, &from.name)), create_index(d, table, to)]
        }
        Step::RenameIndex { table, from, to } => {
            vec![format!("ALTER INDEX {} RENAME TO {}", quote_index(d, table, &from.name), q(&to.name))]
        }
        Step::AddCheck { table, column, ty, check } => {
            let ty = rebuild::column_type(ty)?;
            let expr = ddl::rule_check(d, &q(column), &ty, &rebuild::check(check));
            match expr {
                Some(expr) => vec![format!(
                    "{}ADD CONSTRAINT {} CHECK ({expr})",
                    alter(d, table),
                    q(&check.constraint_name(local(table), column))
                )],
                None => Vec::new(),
            }
        }
        Step::DropCheck { table, column, check, .. } => {
            vec![format!(
                "{}DROP CONSTRAINT IF EXISTS {}",
                alter(d, table),
                q(&check.constraint_name(local(table), column))
            )]
        }
        Step::AddForeignKey { table, fk } => vec![format!("{}ADD {}", alter(d, table), foreign_key(d, fk))],
        Step::DropForeignKey { table, fk } => vec![format!("{}DROP CONSTRAINT {}", alter(d, table), q(&fk.name))],
        Step::ChangeLayout { table, .. } => {
            return Err(MigrateError::Invalid(format!(
                "the change of layout of {table:?} is rendered with the steps around it (layout::statements)"
            )));
        }
    })
}

/// `ALTER TABLE .. SET SCHEMA` when a table moves to another schema (on databases with
/// schemas), then `RENAME TO` when its name changes too. Without schemas, `billing.invoice` is
/// a plain table name and a move is a rename.
fn move_table(d: &dyn Dialect, from: &str, to: &str) -> Vec<String> {
    if !d.has_schemas() {
        return vec![format!("{}RENAME TO {}", alter(d, from), quote_table(d, to))];
    }
    let ((from_schema, from_name), (to_schema, to_name)) = (split_table(from), split_table(to));
    let mut out = Vec::new();
    let mut current = from.to_owned();
    if from_schema != to_schema {
        out.push(match to_schema {
            Some(schema) => format!("{}SET SCHEMA {}", alter(d, from), quote(d, schema)),
            // Back to the connection's default schema, whatever it is called.
            None => format!(
                "DO $$ BEGIN EXECUTE format('ALTER TABLE %s SET SCHEMA %I', {}, current_schema()); END $$",
                sql_string(&quote_table(d, from))
            ),
        });
        current = match to_schema {
            Some(schema) => format!("{schema}.{from_name}"),
            None => from_name.to_owned(),
        };
    }
    if from_name != to_name {
        out.push(format!("{}RENAME TO {}", alter(d, &current), quote(d, to_name)));
    }
    out
}

/// PostgreSQL: the partitions of a partitioned table renamed from `from` to `to` follow it.
/// polystore names partitions after their table (`{table}_p2031_06`, `{table}_default`, …), and
/// `ensure_partitions` looks for them by those names: left behind, they would keep the old
/// prefix (and their old schema), and maintenance would try to create new-named partitions over
/// the same bounds. Every partition whose name starts with the old table name and `_` is renamed
/// to the new prefix and moved into the table's new schema; partitions named otherwise (made by
/// hand) only move schema.
fn follow_partitions(d: &dyn Dialect, from: &str, to: &str) -> String {
    let (from_name, to_name) = (split_table(from).1, split_table(to).1);
    let prefix = format!("{from_name}_");
    format!(
        "DO $polystore$ DECLARE r record; target name; BEGIN \
         SELECT n.nspname INTO target FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.oid = {parent}::regclass; \
         FOR r IN SELECT n.nspname AS nsp, c.relname AS rel FROM pg_inherits i \
         JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE i.inhparent = {parent}::regclass LOOP \
         IF r.nsp <> target THEN EXECUTE format('ALTER TABLE %I.%I SET SCHEMA %I', r.nsp, r.rel, target); END IF; \
         IF left(r.rel, {len}) = {prefix} THEN \
         EXECUTE format('ALTER TABLE %I.%I RENAME TO %I', target, r.rel, {to_prefix} || substr(r.rel, {len} + 1)); \
         END IF; END LOOP; END $polystore$",
        parent = sql_string(&quote_table(d, to)),
        len = prefix.chars().count(),
        prefix = sql_string(&prefix),
        to_prefix = sql_string(&format!("{to_name}_")),
    )
}

/// A SQL string literal.
fn sql_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A table description with no columns, to build single-column schemas from.
fn bare(table: &str) -> TableSnapshot {
    TableSnapshot {
        model: table.to_owned(),
        table: table.to_owned(),
        renamed_from: None,
        columns: Vec::new(),
        primary_key: Vec::new(),
        indexes: Vec::new(),
        foreign_keys: Vec::new(),
        partition: None,
        distribution: None,
        reference: false,
    }
}

/// A static schema holding just `column` of `table`, and that column's field.
fn column_schema(
    table: &str,
    column: &ColumnSnapshot,
) -> Result<(&'static ModelSchema, &'static crate::schema::FieldSchema), MigrateError> {
    let schema = schema_of(&TableSnapshot { columns: vec![column.clone()], ..bare(table) })?;
    Ok((schema, &schema.fields[0]))
}

/// Renames the constraints PostgreSQL names after the table and column (the primary key,
/// enum CHECKs, `#[validate]` CHECKs) when the table (`column` = `None`) or one column is
/// renamed. SQLite rebuilds instead.
fn rename_constraints(
    d: &dyn Dialect,
    table: &str,
    old: &TableSnapshot,
    old_table: &str,
    new_table: &str,
    column: Option<&String>,
) -> Vec<String> {
    let (old_table, new_table) = (local(old_table), local(new_table));
    let mut pairs = Vec::new();
    if column.is_none() && !old.primary_key.is_empty() {
        pairs.push((format!("{old_table}_pkey"), format!("{new_table}_pkey")));
    }
    for c in &old.columns {
        let new_col = column.unwrap_or(&c.name);
        if c.ty.scalar == "enum" && d.name() == "postgresql" {
            pairs.push((format!("{old_table}_{}_check", c.name), format!("{new_table}_{new_col}_check")));
        }
        for check in &c.checks {
            pairs.push((check.constraint_name(old_table, &c.name), check.constraint_name(new_table, new_col)));
        }
    }
    pairs
        .into_iter()
        .filter(|(a, b)| a != b)
        .map(|(a, b)| format!("{}RENAME CONSTRAINT {} TO {}", alter(d, table), quote(d, &a), quote(d, &b)))
        .collect()
}

/// PostgreSQL `ALTER COLUMN`s for a change of type, nullability, default or identity.
fn alter_column(
    d: &dyn Dialect,
    table: &str,
    from: &ColumnSnapshot,
    to: &ColumnSnapshot,
) -> Result<Vec<String>, MigrateError> {
    let a = alter(d, table);
    let col = quote(d, &to.name);
    let (to_schema, to_field) = column_schema(table, to)?;
    let mut out = Vec::new();
    let type_changed = from.ty.without_null() != to.ty.without_null();
    let default_changed = from.default != to.default || from.auto != to.auto;
    if from.generated && !to.generated {
        out.push(format!("{a}ALTER COLUMN {col} DROP IDENTITY IF EXISTS"));
    }
    if type_changed {
        let check = quote(d, &format!("{}_{}_check", local(table), to.name));
        if from.ty.scalar == "enum" {
            out.push(format!("{a}DROP CONSTRAINT IF EXISTS {check}"));
        }
        if from.default.is_some() || from.auto.is_some() {
            out.push(format!("{a}ALTER COLUMN {col} DROP DEFAULT"));
        }
        let ty = d.column_type(&to_field.ty);
        out.push(format!("{a}ALTER COLUMN {col} TYPE {ty} USING {col}::{ty}"));
        if let Some(expr) = ddl::enum_check(d, &col, &to_field.ty) {
            out.push(format!("{a}ADD CONSTRAINT {check} CHECK ({expr})"));
        }
    }
    if from.ty.nullable != to.ty.nullable {
        out.push(format!("{a}ALTER COLUMN {col} {} NOT NULL", if to.ty.nullable { "DROP" } else { "SET" }));
    }
    if default_changed || (type_changed && (from.default.is_some() || from.auto.is_some())) {
        match ddl::column_default(d, to_schema, to_field)? {
            Some(expr) => out.push(format!("{a}ALTER COLUMN {col} SET DEFAULT {expr}")),
            None if !type_changed => out.push(format!("{a}ALTER COLUMN {col} DROP DEFAULT")),
            None => {}
        }
    }
    if to.generated && !from.generated {
        out.push(format!("{a}ALTER COLUMN {col} ADD GENERATED BY DEFAULT AS IDENTITY"));
        out.push(format!(
            "SELECT setval(pg_get_serial_sequence('{}', '{}'), COALESCE(MAX({col}), 0) + 1, false) FROM {}",
            quote_table(d, table).replace('\'', "''"),
            to.name.replace('\'', "''"),
            quote_table(d, table)
        ));
    }
    Ok(out)
}

/// The statements creating `table` (named `name`: a rebuild creates it under a temporary
/// name, keeping the constraint names of the real one): `create_table`'s, with the foreign
/// keys added to the CREATE TABLE.
fn create_table(d: &dyn Dialect, table: &TableSnapshot, name: &str) -> Result<Vec<String>, MigrateError> {
    let mut out = ddl::create_table(d, schema_of(table)?, false)?;
    #[cfg(feature = "postgres")]
    if d.name() == "postgresql" && (table.distribution.is_some() || table.reference) && name == table.table {
        // The table (the schema rebuilt from a snapshot has no relations, so no foreign keys),
        // then its distribution on a Citus server, then its foreign keys (see `sql::citus`).
        out.extend(crate::sql::citus::distribute_if_citus(d, schema_of(table)?));
        for fk in &table.foreign_keys {
            out.push(format!("{}ADD {}", alter(d, name), foreign_key(d, fk)));
        }
        return Ok(out);
    }
    let head = format!("CREATE TABLE {} (", quote_table(d, &table.table));
    let body = out[0].strip_prefix(&head).ok_or_else(|| MigrateError::Invalid("unexpected CREATE TABLE".into()))?;
    let end = body.rfind("\n)").ok_or_else(|| MigrateError::Invalid("unexpected CREATE TABLE".into()))?;
    let mut sql = format!("CREATE TABLE {} ({}", quote_table(d, name), &body[..end]);
    for fk in &table.foreign_keys {
        sql.push_str(",\n  ");
        sql.push_str(&foreign_key(d, fk));
    }
    sql.push_str(&body[end..]);
    out[0] = sql;
    Ok(out)
}

/// A foreign key's table constraint.
pub(super) fn foreign_key(d: &dyn Dialect, fk: &ForeignKeySnapshot) -> String {
    let columns: Vec<&str> = fk.columns.iter().map(String::as_str).collect();
    let target_columns: Vec<&str> = fk.referenced_columns.iter().map(String::as_str).collect();
    ddl::foreign_key_clause(
        d,
        &ddl::ForeignKeyDef {
            name: &fk.name,
            columns: &columns,
            target: &fk.references,
            target_columns: &target_columns,
            on_delete: &fk.on_delete,
            on_update: &fk.on_update,
        },
    )
}

/// `CREATE [UNIQUE] INDEX`, as `create_table` writes it.
fn create_index(d: &dyn Dialect, table: &str, index: &IndexSnapshot) -> String {
    let cols: Vec<String> = index.columns.iter().map(|c| quote(d, c)).collect();
    let partial = index.where_null.as_ref().map(|c| format!(" WHERE {} IS NULL", quote(d, c))).unwrap_or_default();
    format!(
        "CREATE {}INDEX {} ON {} ({}){partial}",
        if index.unique { "UNIQUE " } else { "" },
        quote(d, &index.name),
        quote_table(d, table),
        cols.join(", ")
    )
}

/// The SQLite table rebuild of `table` (its name after the steps): the new definition under a
/// temporary name, the rows copied column by column (renamed columns from their old names,
/// new columns left to their defaults), the old table dropped, the new one renamed, indexes
/// recreated.
fn rebuild_table(
    d: &dyn Dialect,
    table: &str,
    steps: &[Step],
    finals: &HashMap<String, String>,
    before: &Snapshot,
    after: &Snapshot,
) -> Result<Vec<String>, MigrateError> {
    let target = after.table(table).ok_or_else(|| missing(table))?;
    // A renamed table was renamed in place just before: its rows are under the new name.
    let old_name = steps
        .iter()
        .find_map(|s| match s {
            Step::RenameTable { from, to, .. } if to == table => Some(from.clone()),
            _ => None,
        })
        .unwrap_or_else(|| table.to_owned());
    let source = before.table(&old_name).ok_or_else(|| missing(&old_name))?;
    let source_name = table;
    let renamed: HashMap<&str, &str> = steps
        .iter()
        .filter_map(|s| match s {
            Step::RenameColumn { table: t, from, to, .. } if final_name(finals, t) == table => {
                Some((to.as_str(), from.as_str()))
            }
            _ => None,
        })
        .collect();
    let temp = format!("_polystore_new_{table}");
    let mut create = create_table(d, target, &temp)?;
    let mut out = vec![create.remove(0)];
    let (mut into, mut from) = (Vec::new(), Vec::new());
    for c in &target.columns {
        let src = renamed.get(c.name.as_str()).copied().unwrap_or(&c.name);
        if source.column(src).is_some() {
            into.push(quote(d, &c.name));
            from.push(quote(d, src));
        }
    }
    out.push(format!(
        "INSERT INTO {} ({}) SELECT {} FROM {}",
        quote(d, &temp),
        into.join(", "),
        from.join(", "),
        quote(d, source_name)
    ));
    out.push(format!("DROP TABLE {}", quote(d, source_name)));
    out.push(format!("ALTER TABLE {} RENAME TO {}", quote(d, &temp), quote(d, table)));
    out.extend(create);
    Ok(out)
}

fn missing(table: &str) -> MigrateError {
    MigrateError::Invalid(format!("table {table:?} is not in the snapshot the steps were rendered against"))
}

/// A whole SQL file: a header, then each step's comments and statements (`;`-terminated).
pub fn sql_file(header: &[String], steps: &[RenderedStep]) -> String {
    let mut out = String::new();
    for line in header {
        out.push_str(line);
        out.push('\n');
    }
    for step in steps {
        out.push('\n');
        for c in &step.comments {
            out.push_str(c);
            out.push('\n');
        }
        for s in &step.statements {
            out.push_str(s);
            out.push_str(";\n");
        }
    }
    out
}
