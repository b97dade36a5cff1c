//! Required columns added to tables that may hold rows: `generate` refuses them unless the
//! field has a default, or writes a backfill template on request — the column added as
//! nullable, an `UPDATE` whose value the user fills in, then `SET NOT NULL` — that the runner
//! refuses to apply while the placeholder is still there.

use crate::sql::Dialect;

use super::MigrateError;
use super::diff::diff;
use super::render::{RenderedStep, render};
use super::snapshot::Snapshot;
use super::step::Step;

/// The text standing for the value existing rows get, in a backfill template's `UPDATE`. The
/// runner refuses a migration that still contains it.
pub const BACKFILL_PLACEHOLDER: &str = "POLYSTORE_BACKFILL_VALUE";

/// A NOT NULL column without a default added to an existing table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequiredColumn {
    /// The model's Rust name.
    pub model: String,
    /// The Rust field name.
    pub field: String,
    /// The table.
    pub table: String,
    /// The column.
    pub column: String,
}

/// The columns among `steps` that existing rows cannot get a value for: NOT NULL, no
/// default, not generated, not an automatic timestamp.
pub(crate) fn required_columns(steps: &[Step], after: &Snapshot) -> Vec<RequiredColumn> {
    steps
        .iter()
        .filter_map(|s| match s {
            Step::AddColumn { table, column }
                if !column.ty.nullable && column.default.is_none() && column.auto.is_none() && !column.generated =>
            {
                Some(RequiredColumn {
                    model: after.table(table).map_or_else(|| table.clone(), |t| t.model.clone()),
                    field: column.field.clone(),
                    table: table.clone(),
                    column: column.name.clone(),
                })
            }
            _ => None,
        })
        .collect()
}

/// The error `generate` returns for required columns without a backfill: which model and
/// field, and the two ways out.
pub(crate) fn refusal(columns: &[RequiredColumn]) -> MigrateError {
    let list: Vec<String> = columns
        .iter()
        .map(|c| format!("{}.{} (column {:?} of table {:?})", c.model, c.field, c.column, c.table))
        .collect();
    MigrateError::Invalid(format!(
        "cannot add the required field {} to a table that may already have rows: existing rows \
         would have no value, and the migration would fail. Either give the field a default \
         (#[model(default = ...)]), which existing rows get, or generate with a backfill \
         (`migrate generate <name> --backfill`, or `MigrationDir::generate_with_backfill`): the \
         column is added nullable, up.*.sql gets an UPDATE whose {BACKFILL_PLACEHOLDER} you replace \
         with the value for existing rows, then the column is made NOT NULL",
        list.join(", ")
    ))
}

/// The up steps of a backfill migration from `before` to `after` for dialect `d`: the changes
/// with the `columns` still nullable, the backfill `UPDATE`s, then the changes that make them
/// NOT NULL.
pub(crate) fn render_up(
    d: &dyn Dialect,
    before: &Snapshot,
    after: &Snapshot,
    columns: &[RequiredColumn],
) -> Result<Vec<RenderedStep>, MigrateError> {
    let mut mid = after.clone();
    for c in columns {
        if let Some(col) = mid.tables.iter_mut().find(|t| t.table == c.table).and_then(|t| column_mut(t, &c.column)) {
            col.ty.nullable = true;
        }
    }
    let mut out = render(d, &diff(before, &mid)?, before, &mid, false)?;
    for c in columns {
        let (mut table, mut column) = (String::new(), String::new());
        d.quote_table(&mut table, &c.table);
        d.quote_ident(&mut column, &c.column);
        out.push(RenderedStep {
            comments: vec![
                format!(
                    "-- BACKFILL {}.{}: replace {BACKFILL_PLACEHOLDER} with the value existing rows get",
                    c.model, c.field
                ),
                "--   (an expression: a literal, or one computed from other columns of the row);".to_owned(),
                "--   the runner refuses this migration while the placeholder is here.".to_owned(),
            ],
            statements: vec![format!("UPDATE {table} SET {column} = {BACKFILL_PLACEHOLDER} WHERE {column} IS NULL")],
        });
    }
    out.extend(render(d, &diff(&mid, after)?, &mid, after, false)?);
    Ok(out)
}

fn column_mut<'a>(
    table: &'a mut super::snapshot::TableSnapshot,
    name: &str,
) -> Option<&'a mut super::snapshot::ColumnSnapshot> {
    table.columns.iter_mut().find(|c| c.name == name)
}

/// Refuses to apply `sql` (the file `file` of migration `name`) while it holds the backfill
/// placeholder outside comments.
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub(crate) fn check_filled(name: &str, file: &str, sql: &str) -> Result<(), MigrateError> {
    let unfilled = super::split::statements(sql).iter().any(|s| s.contains(BACKFILL_PLACEHOLDER));
    if unfilled {
        return Err(MigrateError::Invalid(format!(
            "migration {name}: {file} still holds the backfill placeholder {BACKFILL_PLACEHOLDER}; \
             replace it with the value existing rows get for the new required column, then apply again"
        )));
    }
    Ok(())
}
