//! MongoDB steps (feature `mongodb`): the same [`Step`]s as MongoDB commands, written to a
//! migration's `mongo.json` and run by the [`MongoMigrator`](super::mongo_runner::MongoMigrator).
//!
//! | step | commands |
//! |---|---|
//! | create table | `create` with the `$jsonSchema` validator, `createIndexes` |
//! | drop table | `drop` |
//! | rename table | `renameCollection` |
//! | add / drop / rename index | `createIndexes` / `dropIndexes` (a rename is both) |
//! | rename column | `update` with `$rename` on every document |
//! | drop column | `update` with `$unset` on every document |
//! | add column with a default | `update` with `$set` where the field is missing |
//! | any change to a collection's fields or rules | `collMod` with the new validator |
//! | a retention bound (`retain`) added, changed or removed | `dropIndexes` / `createIndexes` of the TTL index it maps to |
//!
//! Validators and index specs come from the crate's MongoDB mapping (`json_schema`,
//! `index_specs`) applied to the snapshot's tables, so a migrated collection looks like one
//! made by `MongoStore::create_all`. While documents are rewritten, validation is switched
//! off for the collection (the old validator would reject a renamed required field) and the
//! new validator is switched on afterwards.

use std::collections::{BTreeSet, HashMap};

use mongodb::bson::{Bson, Document, doc};
use serde::{Deserialize, Serialize};

use crate::mongo::{index_specs, json_schema};

use super::MigrateError;
use super::diff::Step;
use super::rebuild::schema_of;
use super::snapshot::{DefaultSnapshot, IndexSnapshot, Snapshot, TableSnapshot};

/// The file holding a migration's MongoDB commands.
pub const MONGO_FILE: &str = "mongo.json";

/// A migration's MongoDB side: commands (relaxed extended JSON) for both directions, and the
/// destructive steps of each direction (which need consent, like the SQL ones).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MongoPlan {
    /// Commands run by `up`, in order.
    pub up: Vec<serde_json::Value>,
    /// Commands run by `down`, in order.
    pub down: Vec<serde_json::Value>,
    /// What `up` destroys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destructive_up: Vec<String>,
    /// What `down` destroys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destructive_down: Vec<String>,
}

impl MongoPlan {
    /// The plan of `steps` (which turn `before` into `after`) and of their reverse.
    pub fn new(steps: &[Step], before: &Snapshot, after: &Snapshot) -> Result<MongoPlan, MigrateError> {
        let reverse = super::diff::reverse(steps);
        let destructive = |steps: &[Step]| steps.iter().filter(|s| s.is_destructive()).map(Step::describe).collect();
        Ok(MongoPlan {
            up: commands(steps, before, after)?,
            down: commands(&reverse, after, before)?,
            destructive_up: destructive(steps),
            destructive_down: destructive(&reverse),
        })
    }

    /// Pretty JSON with a trailing newline.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("a plan always serializes");
        s.push('\n');
        s
    }
}

fn json(d: Document) -> serde_json::Value {
    Bson::Document(d).into_relaxed_extjson()
}

/// The commands of `steps`, in order, then one `collMod` per collection whose fields changed.
fn commands(steps: &[Step], before: &Snapshot, after: &Snapshot) -> Result<Vec<serde_json::Value>, MigrateError> {
    let mut out = Vec::new();
    let mut changed: BTreeSet<String> = BTreeSet::new();
    let mut rewritten: BTreeSet<String> = BTreeSet::new();
    // Where a table ends up: commands name a collection as it is called at that point, the
    // index specs need its description after the steps.
    let finals: HashMap<&str, &str> = steps
        .iter()
        .filter_map(
            |s| if let Step::RenameTable { from, to, .. } = s { Some((from.as_str(), to.as_str())) } else { None },
        )
        .collect();
    let (derived_drops, derived_creates) = derived_index_changes(steps, before, after, &finals)?;
    out.extend(derived_drops);
    for step in steps {
        let updates = step_commands(step, before, after, &finals, &mut out)?;
        let table = step.table();
        let last_name = finals.get(table).copied().unwrap_or(table).to_owned();
        if !matches!(step, Step::CreateTable { .. } | Step::DropTable { .. } | Step::ChangeLayout { .. }) {
            changed.insert(last_name.clone());
        }
        if !updates.is_empty() {
            if rewritten.insert(last_name) {
                out.push(json(doc! { "collMod": table, "validationLevel": "off" }));
            }
            out.push(json(doc! { "update": table, "updates": updates }));
        }
    }
    for table in changed {
        if let Some(t) = after.table(&table) {
            let mut cmd = doc! { "collMod": &table, "validator": json_schema(schema_of(t)?) };
            if rewritten.contains(&table) {
                cmd.insert("validationLevel", "strict");
            }
            out.push(json(cmd));
        }
    }
    out.extend(derived_creates);
    Ok(out)
}

/// Index specs that change without an index step of their own: those the mapping derives from
/// other model settings rather than from a declared index. Today that is the TTL of a range
/// partition's retention bound (`retain = ..`), merged into the declared index on the partition
/// column or added as `{table}_{column}_retention`: adding, changing or removing `retain`
/// changes no SQL, but it changes these MongoDB indexes.
///
/// For each collection present before and after, the specs `index_specs` gives for both
/// snapshots are compared by name, leaving out the names an index step of `steps` already
/// handles: an index only before is dropped, one only after is created, and one whose spec
/// changed is dropped and created again (MongoDB cannot change a non-TTL index into a TTL one
/// in place on every server polystore supports). Returns the drops, which run before the steps
/// (on the collection's old name), and the creations, which run after them (on its new name),
/// so a new index never meets an old one on the same key.
fn derived_index_changes(
    steps: &[Step],
    before: &Snapshot,
    after: &Snapshot,
    finals: &HashMap<&str, &str>,
) -> Result<(Vec<serde_json::Value>, Vec<serde_json::Value>), MigrateError> {
    let mut touched: BTreeSet<(&str, &str)> = BTreeSet::new();
    for step in steps {
        match step {
            Step::AddIndex { table, index } | Step::DropIndex { table, index } => {
                touched.insert((finals.get(table.as_str()).copied().unwrap_or(table), &index.name));
            }
            Step::RenameIndex { table, from, to } => {
                let table = finals.get(table.as_str()).copied().unwrap_or(table);
                touched.insert((table, &from.name));
                touched.insert((table, &to.name));
            }
            _ => {}
        }
    }
    let (mut drops, mut creates) = (Vec::new(), Vec::new());
    for old in &before.tables {
        let name = finals.get(old.table.as_str()).copied().unwrap_or(&old.table);
        let Some(new) = after.table(name) else { continue };
        let by_name = |specs: Vec<Document>| -> Vec<(String, Document)> {
            specs.into_iter().map(|d| (d.get_str("name").unwrap_or_default().to_owned(), d)).collect()
        };
        let (was, is) = (by_name(index_specs(schema_of(old)?)), by_name(index_specs(schema_of(new)?)));
        let spec_in = |list: &[(String, Document)], n: &str| list.iter().find(|(m, _)| m == n).map(|(_, d)| d.clone());
        for (index, spec) in &was {
            if touched.contains(&(name, index.as_str())) {
                continue;
            }
            if spec_in(&is, index).as_ref() != Some(spec) {
                drops.push(json(doc! { "dropIndexes": &old.table, "index": index }));
            }
        }
        for (index, spec) in &is {
            if touched.contains(&(name, index.as_str())) {
                continue;
            }
            if spec_in(&was, index).as_ref() != Some(spec) {
                creates.push(json(doc! { "createIndexes": name, "indexes": [spec.clone()] }));
            }
        }
    }
    Ok((drops, creates))
}

/// The commands of one step, pushed to `out`; returns the document updates it needs (run with
/// validation off).
fn step_commands(
    step: &Step,
    before: &Snapshot,
    after: &Snapshot,
    finals: &HashMap<&str, &str>,
    out: &mut Vec<serde_json::Value>,
) -> Result<Vec<Document>, MigrateError> {
    let described = |table: &str| {
        let name = finals.get(table).copied().unwrap_or(table);
        after.table(name).ok_or_else(|| MigrateError::Invalid(format!("no table {name:?} in the snapshot")))
    };
    let is_key = |snapshot: &Snapshot, table: &str, column: &str| {
        snapshot.table(table).is_some_and(|t| t.primary_key.iter().any(|k| k == column))
    };
    let mut updates: Vec<Document> = Vec::new();
    match step {
        Step::CreateTable { table } => {
            let schema = schema_of(table)?;
            out.push(json(doc! { "create": &table.table, "validator": json_schema(schema) }));
            let specs = index_specs(schema);
            if !specs.is_empty() {
                out.push(json(doc! { "createIndexes": &table.table, "indexes": specs }));
            }
        }
        Step::DropTable { table } => out.push(json(doc! { "drop": &table.table })),
        Step::RenameTable { from, to, .. } => out.push(json(doc! { "renameCollection": from, "to": to })),
        Step::AddIndex { table, index } => out.push(create_index(described(table)?, table, index)?),
        Step::DropIndex { table, index } => out.push(json(doc! { "dropIndexes": table, "index": &index.name })),
        Step::RenameIndex { table, from, to } => {
            out.push(json(doc! { "dropIndexes": table, "index": &from.name }));
            out.push(create_index(described(table)?, table, to)?);
        }
        Step::RenameColumn { table, from, to, .. } if !is_key(before, table, from) && !is_key(after, table, to) => {
            updates.push(doc! { "q": { from: { "$exists": true } }, "u": { "$rename": { from: to } }, "multi": true });
        }
        Step::DropColumn { table, column } if !is_key(before, table, &column.name) => {
            updates.push(doc! { "q": {}, "u": { "$unset": { &column.name: "" } }, "multi": true });
        }
        // Sharding a collection (`sh.shardCollection`, a shard key change) is an operation on the
        // cluster, outside migrations: a change of Citus layout has no MongoDB command.
        Step::ChangeLayout { .. } => {}
        Step::AddColumn { column, .. } => {
            if let Some(value) = column.default.as_ref().map(|d| default_bson(d, &column.ty.scalar)) {
                let name = &column.name;
                updates.push(
                    doc! { "q": { name: { "$exists": false } }, "u": { "$set": { name: value } }, "multi": true },
                );
            }
        }
        _ => {}
    }
    Ok(updates)
}

/// `createIndexes` for one index of `t`, on the collection currently named `table`.
fn create_index(t: &TableSnapshot, table: &str, index: &IndexSnapshot) -> Result<serde_json::Value, MigrateError> {
    let only = TableSnapshot { indexes: vec![index.clone()], foreign_keys: Vec::new(), ..t.clone() };
    Ok(json(doc! { "createIndexes": table, "indexes": index_specs(schema_of(&only)?) }))
}

/// A default as the BSON type the validator expects for the column's scalar.
fn default_bson(d: &DefaultSnapshot, scalar: &str) -> Bson {
    match d {
        DefaultSnapshot::Int(n) if matches!(scalar, "i16" | "i32") => {
            Bson::Int32(i32::try_from(*n).unwrap_or_default())
        }
        DefaultSnapshot::Int(n) if matches!(scalar, "f32" | "f64") => Bson::Double(*n as f64),
        DefaultSnapshot::Int(n) => Bson::Int64(*n),
        DefaultSnapshot::Float(x) => Bson::Double(*x),
        DefaultSnapshot::Bool(b) => Bson::Boolean(*b),
        DefaultSnapshot::Str(s) => Bson::String(s.clone()),
    }
}

/// Converts a stored command back to BSON.
pub(crate) fn to_document(value: &serde_json::Value) -> Result<Document, MigrateError> {
    match Bson::try_from(value.clone()) {
        Ok(Bson::Document(d)) => Ok(d),
        Ok(_) => Err(MigrateError::Invalid(format!("{MONGO_FILE}: a command must be an object: {value}"))),
        Err(e) => Err(MigrateError::Invalid(format!("{MONGO_FILE}: not extended JSON: {e}"))),
    }
}
