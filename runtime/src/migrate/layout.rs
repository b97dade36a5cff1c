//! The SQL of a [`Step::ChangeLayout`]: how [`render`](super::render) moves an existing table
//! between the Citus layouts (local, reference, distributed by a column) in a migration.
//!
//! One PostgreSQL `DO` block per step, acting only when the `citus` extension is installed, so
//! the same migration file runs on plain PostgreSQL (where it does nothing). Inside it, with
//! `citus.multi_shard_modify_mode = sequential` for the transaction (as
//! [`distribute_if_citus`](crate::sql::citus::distribute_if_citus)):
//!
//! | before → after | Citus call |
//! |---|---|
//! | local → distributed / reference | `create_distributed_table` / `create_reference_table`, then `truncate_local_data_after_distributing_table` (the rows were copied into the shards; this frees the coordinator's copy) |
//! | distributed / reference → local | `undistribute_table` |
//! | distributed → distributed (column or colocation) | `alter_distributed_table(distribution_column := .., colocate_with := ..)` |
//! | reference ↔ distributed | `undistribute_table`, then the `create_*` call |
//!
//! Citus refuses most of these while a foreign key links the table to one in another layout
//! (`undistribute_table` refuses any foreign key; distributing a table refuses a local table
//! referring to it). So the block first drops every foreign key between the table and another
//! table, and adds it back once both ends have their new layout: in the same block when the
//! other table keeps its layout, else in the block of whichever of the two changes last. A
//! foreign key of a table the migration drops afterwards is not added back. The foreign keys
//! are the ones the snapshot before the migration knows, followed through the steps that run
//! before this one (renames, drops, additions).

use crate::sql::Dialect;

use super::MigrateError;
use super::render::RenderedStep;
use super::snapshot::{ForeignKeySnapshot, LayoutSnapshot, Snapshot};
use super::step::Step;

/// The first step of a PostgreSQL migration that calls Citus (a change of layout, or a new
/// distributed or reference table): on a Citus server, `citus.multi_shard_modify_mode =
/// sequential` for the whole transaction. Citus refuses to convert a table after a statement of
/// the same transaction touched distributed tables over parallel connections (the key or index
/// changes before a change of layout do), so the mode is set before the first statement, not in
/// the step's own block. `None` for other migrations and dialects.
pub(super) fn sequential_mode(d: &dyn Dialect, steps: &[Step]) -> Option<RenderedStep> {
    let calls_citus = steps.iter().any(|s| match s {
        Step::ChangeLayout { .. } => true,
        Step::CreateTable { table } => table.distribution.is_some() || table.reference,
        _ => false,
    });
    if d.name() != "postgresql" || !calls_citus {
        return None;
    }
    Some(RenderedStep {
        comments: vec![
            "-- Citus: this migration's distributed DDL runs over one connection per node (nothing without Citus)"
                .to_owned(),
        ],
        statements: vec![
            "DO $polystore$ BEGIN IF EXISTS (SELECT FROM pg_extension WHERE extname = 'citus') THEN \
             PERFORM set_config('citus.multi_shard_modify_mode', 'sequential', true); END IF; END $polystore$"
                .to_owned(),
        ],
    })
}

/// The statements of the layout change `steps[at]`, which runs after `steps[..at]` on the
/// schema `before`: nothing outside PostgreSQL (SQLite has no Citus; MongoDB sharding is not a
/// migration's business), else one `DO` block.
pub(super) fn statements(
    d: &dyn Dialect,
    steps: &[Step],
    at: usize,
    before: &Snapshot,
) -> Result<Vec<String>, MigrateError> {
    let Step::ChangeLayout { table, from, to } = &steps[at] else {
        return Err(MigrateError::Invalid(format!("step {at} is not a change of layout")));
    };
    if d.name() != "postgresql" {
        return Ok(Vec::new());
    }
    let Some(call) = citus_call(d, table, from, to) else { return Ok(Vec::new()) };
    let layout_step =
        |name: &str| steps.iter().position(|s| matches!(s, Step::ChangeLayout { table: t, .. } if t == name));
    let dropped_later =
        |name: &str| steps[at + 1..].iter().any(|s| matches!(s, Step::DropTable { table: t } if t.table == name));
    let (mut drops, mut adds) = (Vec::new(), Vec::new());
    for (child, fk) in foreign_keys_at(steps, at, before) {
        if child != *table && fk.references != *table {
            continue;
        }
        let other = if child == *table { &fk.references } else { &child };
        let other_step = if other == table { None } else { layout_step(other) };
        let alter = format!("ALTER TABLE {} ", quote_table(d, &child));
        if other_step.is_none_or(|j| j > at) {
            let mut name = String::new();
            d.quote_ident(&mut name, &fk.name);
            drops.push(format!("{alter}DROP CONSTRAINT {name};"));
        }
        if other_step.is_none_or(|j| j < at) && !dropped_later(&child) {
            adds.push(format!("{alter}ADD {};", super::render::foreign_key(d, &fk)));
        }
    }
    let mut body = vec!["PERFORM set_config('citus.multi_shard_modify_mode', 'sequential', true);".to_owned()];
    body.extend(drops);
    body.push(call);
    body.extend(adds);
    Ok(vec![format!(
        "DO $polystore$ BEGIN IF EXISTS (SELECT FROM pg_extension WHERE extname = 'citus') THEN\n  {}\nEND IF; END $polystore$",
        body.join("\n  ")
    )])
}

/// The Citus calls that take `table` from layout `from` to `to` (see the module's table);
/// `None` when only what Citus does not store changed (a distribution's `kind`, which only
/// MongoDB reads).
fn citus_call(d: &dyn Dialect, table: &str, from: &LayoutSnapshot, to: &LayoutSnapshot) -> Option<String> {
    let rel = literal(&quote_table(d, table));
    let citus = format!("EXISTS (SELECT FROM pg_dist_partition WHERE logicalrelid = {rel}::regclass)");
    let undistribute = format!("IF {citus} THEN PERFORM undistribute_table({rel}); END IF;");
    let create = match (&to.distribution, to.reference) {
        (_, true) => Some(format!("create_reference_table({rel})")),
        (Some(dist), false) => Some(match &dist.colocate_with {
            Some(with) => format!(
                "create_distributed_table({rel}, {}, colocate_with => {})",
                literal(&dist.column),
                literal(&quote_table(d, with))
            ),
            None => format!("create_distributed_table({rel}, {})", literal(&dist.column)),
        }),
        (None, false) => None,
    };
    let distribute =
        create.map(|call| format!("PERFORM {call}; PERFORM truncate_local_data_after_distributing_table({rel});"));
    match (&from.distribution, from.reference, &to.distribution, to.reference, distribute) {
        // Distributed → distributed: Citus rewrites the table in place.
        (Some(was), false, Some(is), false, _) => {
            if was.column == is.column && was.colocate_with == is.colocate_with {
                return None;
            }
            let with =
                is.colocate_with.as_ref().map_or_else(|| "'default'".to_owned(), |w| literal(&quote_table(d, w)));
            Some(format!(
                "IF {citus} THEN PERFORM alter_distributed_table({rel}, distribution_column := {}, colocate_with := {with}); END IF;",
                literal(&is.column)
            ))
        }
        // Local → reference or distributed (skipped when Citus has the table already).
        (None, false, _, _, Some(distribute)) => Some(format!("IF NOT {citus} THEN {distribute} END IF;")),
        // Reference ↔ distributed: back to local, then the new layout.
        (_, _, _, _, Some(distribute)) => Some(format!("{undistribute} {distribute}")),
        // → local.
        (_, _, _, _, None) => Some(undistribute),
    }
}

/// The foreign keys that exist when `steps[at]` runs: those of `before`, followed through the
/// renames, drops and additions of `steps[..at]`, as (referring table, foreign key).
fn foreign_keys_at(steps: &[Step], at: usize, before: &Snapshot) -> Vec<(String, ForeignKeySnapshot)> {
    let mut fks: Vec<(String, ForeignKeySnapshot)> =
        before.tables.iter().flat_map(|t| t.foreign_keys.iter().map(|fk| (t.table.clone(), fk.clone()))).collect();
    for step in &steps[..at] {
        match step {
            Step::DropForeignKey { table, fk } => fks.retain(|(t, f)| !(t == table && f.name == fk.name)),
            Step::AddForeignKey { table, fk } => fks.push((table.clone(), fk.clone())),
            Step::CreateTable { table } => {
                fks.extend(table.foreign_keys.iter().map(|fk| (table.table.clone(), fk.clone())));
            }
            Step::DropTable { table } => fks.retain(|(t, _)| *t != table.table),
            Step::RenameTable { from, to, .. } => {
                for (t, fk) in &mut fks {
                    if t == from {
                        t.clone_from(to);
                    }
                    if fk.references == *from {
                        fk.references.clone_from(to);
                    }
                }
            }
            _ => {}
        }
    }
    fks
}

fn quote_table(d: &dyn Dialect, table: &str) -> String {
    let mut s = String::new();
    d.quote_table(&mut s, table);
    s
}

/// A SQL string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}
