//! The diff: two [`Snapshot`]s in, an ordered list of store-neutral [`Step`]s out.
//!
//! Tables and columns are matched by name. A table or column whose name changed is renamed
//! only when the newer side says so with `renamed_from` — a rename is never guessed, because
//! a wrong guess would move data into the wrong column. Everything else that disappeared is
//! dropped, which is a destructive step. A model whose table keeps its name but moves to
//! another schema (`#[model(schema = "..")]`) is moved, not dropped and recreated. Foreign keys are compared in new terms (a referenced
//! table's rename changes nothing), and new tables are created referenced-first. A kept table
//! whose Citus layout changed (local, reference, distributed by a column) gets a
//! [`Step::ChangeLayout`].

use std::collections::{BTreeMap, HashSet};

use super::MigrateError;
use super::snapshot::{ColumnSnapshot, ForeignKeySnapshot, IndexSnapshot, Snapshot, TableSnapshot};
pub use super::step::{Step, widens};
use crate::schema::split_table;
/// The ordered steps that turn the schema `from` into the schema `to`.
///
/// Order: foreign-key drops; table renames; then, table by table, index and CHECK drops,
/// column renames, additions, alterations, key changes, column drops, CHECK and index
/// additions; changes of Citus layout (a referenced table or colocation target before the
/// tables depending on it, after the key changes a distributed table needs); new tables (a
/// referenced table before the tables referring to it); dropped tables (referring ones first);
/// foreign-key additions last.
pub fn diff(from: &Snapshot, to: &Snapshot) -> Result<Vec<Step>, MigrateError> {
    let mut steps = Vec::new();
    let mut matched: Vec<(&TableSnapshot, &TableSnapshot)> = Vec::new();
    let mut created = Vec::new();
    let mut renames: BTreeMap<&str, &str> = BTreeMap::new();
    for new in &to.tables {
        if let Some(old) = from.table(&new.table) {
            matched.push((old, new));
        } else if let Some(old) = match renamed_table(from, to, new)? {
            Some(old) => Some(old),
            None => moved_table(from, to, new),
        } {
            steps.push(Step::RenameTable { from: old.table.clone(), to: new.table.clone(), old: old.clone() });
            renames.insert(&old.table, &new.table);
            matched.push((old, new));
        } else {
            created.push(new);
        }
    }
    let used_old: HashSet<&str> = matched.iter().map(|(o, _)| o.table.as_str()).collect();
    let dropped: Vec<&TableSnapshot> = from.tables.iter().filter(|t| !used_old.contains(t.table.as_str())).collect();
    let (mut fk_drops, mut fk_adds) = (Vec::new(), Vec::new());
    for &(old, new) in &matched {
        foreign_key_steps(old, new, &renames, &mut fk_drops, &mut fk_adds);
    }
    let mut out = fk_drops;
    out.append(&mut steps);
    let layouts = layout_steps(&matched, &renames);
    for (old, new) in matched {
        diff_table(old, new, &mut out)?;
    }
    out.extend(layouts);
    let existing: HashSet<&str> = to.tables.iter().filter(|t| !created.contains(t)).map(|t| t.table.as_str()).collect();
    for t in dependency_order(created, &existing) {
        out.push(Step::CreateTable { table: t.clone() });
    }
    let mut drops = dependency_order(dropped, &HashSet::new());
    drops.reverse();
    out.extend(drops.into_iter().map(|t| Step::DropTable { table: t.clone() }));
    out.extend(fk_adds);
    Ok(out)
}

/// The table of the same model and name in another schema (`#[model(schema = "..")]`
/// changed): the table moves there, with its rows.
fn moved_table<'a>(from: &'a Snapshot, to: &Snapshot, new: &TableSnapshot) -> Option<&'a TableSnapshot> {
    let (schema, name) = split_table(&new.table);
    from.tables.iter().find(|old| {
        let (old_schema, old_name) = split_table(&old.table);
        old.model == new.model && old_name == name && old_schema != schema && to.table(&old.table).is_none()
    })
}

/// The steps that undo `steps` (a [`diff`]'s output): each step's inverse, in reverse order,
/// then grouped like a diff's output, with one difference: the changes inside a renamed table
/// name it by its newer name, so they run *before* it gets its old name back. Foreign-key
/// drops, changes inside tables, table renames, new tables, dropped tables, foreign-key
/// additions — so that a table dropped by `up` is recreated by `down` only after the tables
/// it refers to got their old names back.
pub fn reverse(steps: &[Step]) -> Vec<Step> {
    let mut out: Vec<Step> = steps.iter().rev().map(Step::inverse).collect();
    out.sort_by_key(|step| match step {
        Step::DropForeignKey { .. } => 0,
        Step::RenameTable { .. } => 2,
        Step::CreateTable { .. } => 3,
        Step::DropTable { .. } => 4,
        Step::AddForeignKey { .. } => 5,
        _ => 1,
    });
    // Layout changes come back referring-first, before the key changes they needed are undone;
    // a table colocated with another still goes after it.
    let at: Vec<usize> = (0..out.len()).filter(|&i| matches!(out[i], Step::ChangeLayout { .. })).collect();
    let layouts = colocation_order(at.iter().map(|&i| out[i].clone()).collect());
    for (i, step) in at.into_iter().zip(layouts) {
        out[i] = step;
    }
    out
}

/// A [`Step::ChangeLayout`] for every kept table whose Citus layout differs (an old
/// `colocate_with` compared in new terms, so renaming the colocation target changes nothing),
/// referenced tables and colocation targets first.
fn layout_steps(matched: &[(&TableSnapshot, &TableSnapshot)], renames: &BTreeMap<&str, &str>) -> Vec<Step> {
    let mut changed = Vec::new();
    for &(old, new) in matched {
        let mut from = old.layout();
        if let Some(with) = from.distribution.as_mut().and_then(|d| d.colocate_with.as_mut())
            && let Some(renamed) = renames.get(with.as_str())
        {
            *with = (*renamed).to_owned();
        }
        let to = new.layout();
        if from != to {
            changed.push((new, from, to));
        }
    }
    let order = dependency_order(changed.iter().map(|(t, ..)| *t).collect(), &HashSet::new());
    order
        .into_iter()
        .filter_map(|t| changed.iter().find(|(n, ..)| n.table == t.table))
        .map(|(t, from, to)| Step::ChangeLayout { table: t.table.clone(), from: from.clone(), to: to.clone() })
        .collect()
}

/// Layout changes in their given order, except that one whose new layout is colocated with a
/// table changing layout too comes after that table's step (Citus colocates only with a table
/// that is distributed already).
fn colocation_order(mut steps: Vec<Step>) -> Vec<Step> {
    let target = |s: &Step| match s {
        Step::ChangeLayout { to, .. } => to.distribution.as_ref().and_then(|d| d.colocate_with.clone()),
        _ => None,
    };
    let mut out = Vec::new();
    while !steps.is_empty() {
        let ready =
            |s: &Step| target(s).is_none_or(|with| with == s.table() || !steps.iter().any(|p| p.table() == with));
        let pos = steps.iter().position(ready).unwrap_or(0);
        out.push(steps.remove(pos));
    }
    out
}

/// Foreign keys dropped and added on a kept table. An old key is compared in new terms (its
/// referenced table under its new name), so renaming a referenced table changes nothing.
fn foreign_key_steps(
    old: &TableSnapshot,
    new: &TableSnapshot,
    renames: &BTreeMap<&str, &str>,
    drops: &mut Vec<Step>,
    adds: &mut Vec<Step>,
) {
    let carried = |fk: &ForeignKeySnapshot| ForeignKeySnapshot {
        references: renames.get(fk.references.as_str()).map_or_else(|| fk.references.clone(), |n| (*n).to_owned()),
        ..fk.clone()
    };
    for fk in &old.foreign_keys {
        if !new.foreign_keys.contains(&carried(fk)) {
            // Runs before the table renames: under the old name.
            drops.push(Step::DropForeignKey { table: old.table.clone(), fk: fk.clone() });
        }
    }
    for fk in &new.foreign_keys {
        if !old.foreign_keys.iter().any(|o| &carried(o) == fk) {
            adds.push(Step::AddForeignKey { table: new.table.clone(), fk: fk.clone() });
        }
    }
}

/// `tables` ordered so that a table comes after the tables (among them) its foreign keys
/// reference; tables in `existing` count as there already. A cycle keeps name order.
fn dependency_order<'a>(mut tables: Vec<&'a TableSnapshot>, existing: &HashSet<&str>) -> Vec<&'a TableSnapshot> {
    let mut out: Vec<&TableSnapshot> = Vec::new();
    while !tables.is_empty() {
        let ready = |t: &TableSnapshot, out: &[&TableSnapshot]| {
            let colocated = t.distribution.as_ref().and_then(|d| d.colocate_with.as_deref());
            t.foreign_keys.iter().map(|fk| fk.references.as_str()).chain(colocated).all(|target| {
                target == t.table
                    || existing.contains(target)
                    || out.iter().any(|o| o.table == target)
                    || !tables.iter().any(|p| p.table == target)
            })
        };
        let pos = tables.iter().position(|t| ready(t, &out)).unwrap_or(0);
        out.push(tables.remove(pos));
    }
    out
}

/// The old table a new table is renamed from, when it says so and the old one exists.
fn renamed_table<'a>(
    from: &'a Snapshot,
    to: &Snapshot,
    new: &TableSnapshot,
) -> Result<Option<&'a TableSnapshot>, MigrateError> {
    let Some(old_name) = &new.renamed_from else { return Ok(None) };
    if to.table(old_name).is_some() {
        return Err(MigrateError::Invalid(format!(
            "table {:?} says renamed_from = {old_name:?}, but a model still uses table {old_name:?}",
            new.table
        )));
    }
    Ok(from.table(old_name))
}

/// How each new column relates to the old table: kept (same name), renamed, or added.
fn match_columns<'a>(
    old: &'a TableSnapshot,
    new: &TableSnapshot,
) -> Result<BTreeMap<String, Option<&'a ColumnSnapshot>>, MigrateError> {
    let mut map = BTreeMap::new();
    for c in &new.columns {
        let source = match (old.column(&c.name), &c.renamed_from) {
            (Some(same), _) => Some(same),
            (None, Some(prev)) => {
                if new.column(prev).is_some() {
                    return Err(MigrateError::Invalid(format!(
                        "column {:?}.{:?} says renamed_from = {prev:?}, but the table still has a column {prev:?}",
                        new.table, c.name
                    )));
                }
                old.column(prev)
            }
            (None, None) => None,
        };
        map.insert(c.name.clone(), source);
    }
    Ok(map)
}

fn diff_table(old: &TableSnapshot, new: &TableSnapshot, steps: &mut Vec<Step>) -> Result<(), MigrateError> {
    let t = &new.table;
    partition_unchanged(old, new)?;
    let sources = match_columns(old, new)?;
    let renamed_to = |old_col: &str| -> Option<String> {
        sources.iter().find(|(_, s)| s.is_some_and(|s| s.name == old_col)).map(|(n, _)| n.clone())
    };
    // An old index in new terms (its columns under their new names), to find it again.
    type Shape = (Vec<String>, bool, Option<u64>, Option<String>);
    let carried = |ix: &IndexSnapshot| -> Option<Shape> {
        let cols: Option<Vec<String>> = ix.columns.iter().map(|c| renamed_to(c)).collect();
        let partial = match &ix.where_null {
            Some(c) => Some(renamed_to(c)?),
            None => None,
        };
        cols.map(|c| (c, ix.unique, ix.ttl_secs, partial))
    };
    let shape_of = |n: &IndexSnapshot| -> Shape { (n.columns.clone(), n.unique, n.ttl_secs, n.where_null.clone()) };
    let mut kept_indexes = HashSet::new();
    let mut renamed_indexes = Vec::new();
    for ix in &old.indexes {
        let shape = carried(ix);
        let same = new.index(&ix.name).filter(|n| shape.as_ref() == Some(&shape_of(n)));
        let moved = new.indexes.iter().find(|n| old.index(&n.name).is_none() && shape.as_ref() == Some(&shape_of(n)));
        match (same, moved) {
            (Some(n), _) => {
                kept_indexes.insert(n.name.clone());
            }
            (None, Some(n)) if !kept_indexes.contains(&n.name) => {
                kept_indexes.insert(n.name.clone());
                renamed_indexes.push(Step::RenameIndex { table: t.clone(), from: ix.clone(), to: n.clone() });
            }
            _ => steps.push(Step::DropIndex { table: t.clone(), index: ix.clone() }),
        }
    }
    // CHECKs dropped (or changed) — named after the old column.
    for c in &old.columns {
        let new_col = renamed_to(&c.name).and_then(|n| new.column(&n));
        for check in &c.checks {
            if !new_col.is_some_and(|n| n.checks.contains(check)) && new_col.is_some() {
                steps.push(Step::DropCheck {
                    table: t.clone(),
                    column: c.name.clone(),
                    ty: c.ty.clone(),
                    check: check.clone(),
                });
            }
        }
    }
    for (name, source) in &sources {
        if let Some(src) = source.filter(|s| &s.name != name) {
            let new_col = new.column(name).expect("matched columns exist");
            let checks = src.checks.iter().filter(|c| new_col.checks.contains(c)).cloned().collect();
            let column = ColumnSnapshot { checks, ..src.clone() };
            steps.push(Step::RenameColumn { table: t.clone(), from: src.name.clone(), to: name.clone(), column });
        }
    }
    column_steps(old, new, &sources, steps);
    // CHECKs added.
    for c in &new.columns {
        let old_col = sources.get(&c.name).copied().flatten();
        for check in &c.checks {
            if !old_col.is_some_and(|o| o.checks.contains(check)) && old_col.is_some() {
                steps.push(Step::AddCheck {
                    table: t.clone(),
                    column: c.name.clone(),
                    ty: c.ty.clone(),
                    check: check.clone(),
                });
            }
        }
    }
    steps.extend(renamed_indexes);
    for ix in new.indexes.iter().filter(|ix| !kept_indexes.contains(&ix.name)) {
        steps.push(Step::AddIndex { table: t.clone(), index: ix.clone() });
    }
    Ok(())
}

/// A table's partitioning (strategy, column, hash modulus) cannot change in a migration:
/// PostgreSQL cannot partition an existing table, un-partition one, or change its key in
/// place. The diff refuses with the documented rebuild instead of silently ignoring it.
/// Maintenance settings (`every`, `ahead`, `retain`, `archive`, list `values`) may change: they
/// only steer `ensure_partitions` and `expire_partitions`.
fn partition_unchanged(old: &TableSnapshot, new: &TableSnapshot) -> Result<(), MigrateError> {
    let shape = |t: &TableSnapshot| t.partition.as_ref().map(|p| p.shape());
    let (from, to) = (shape(old), shape(new));
    if from == to {
        return Ok(());
    }
    let show =
        |s: &Option<String>| s.clone().map_or_else(|| "not partitioned".to_owned(), |s| format!("PARTITION BY {s}"));
    Err(MigrateError::Invalid(format!(
        "table {:?}: partitioning changes from {} to {}, which PostgreSQL cannot do to an existing table. \
         Rebuild it: give the model a new table name with `renamed_from` left out (a new, empty table is \
         created and the old one dropped), copy the rows in a data migration, or keep the old partitioning \
         (see docs/scaling.md, \"Changing a table's partitioning\")",
        new.table,
        show(&from),
        show(&to)
    )))
}

/// Additions, alterations, key changes and drops of columns.
fn column_steps(
    old: &TableSnapshot,
    new: &TableSnapshot,
    sources: &BTreeMap<String, Option<&ColumnSnapshot>>,
    steps: &mut Vec<Step>,
) {
    let t = &new.table;
    for c in &new.columns {
        match sources.get(&c.name).copied().flatten() {
            None => steps.push(Step::AddColumn { table: t.clone(), column: c.clone() }),
            Some(src) => {
                let before = ColumnSnapshot { name: c.name.clone(), ..src.clone() };
                if before.ty != c.ty
                    || before.default != c.default
                    || before.auto != c.auto
                    || before.generated != c.generated
                {
                    let to = ColumnSnapshot { checks: before.checks.clone(), ..c.clone() };
                    steps.push(Step::AlterColumn { table: t.clone(), from: before, to });
                }
            }
        }
    }
    let old_key: Vec<String> = old
        .primary_key
        .iter()
        .map(|k| sources.iter().find(|(_, s)| s.is_some_and(|s| &s.name == k)).map_or(k.clone(), |(n, _)| n.clone()))
        .collect();
    if old_key != new.primary_key {
        steps.push(Step::SetPrimaryKey { table: t.clone(), from: old_key, to: new.primary_key.clone() });
    }
    let used: HashSet<&str> = sources.values().filter_map(|s| s.map(|s| s.name.as_str())).collect();
    for c in old.columns.iter().filter(|c| !used.contains(c.name.as_str())) {
        steps.push(Step::DropColumn { table: t.clone(), column: c.clone() });
    }
}
