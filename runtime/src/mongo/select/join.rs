//! Joins along relations in MongoDB projections: the stages that bring a related model's
//! fields and relation aggregates into each document before the projection's own stages.
//!
//! - A column reached through `belongs_to` / `has_one` relations: one `$lookup` (by the link
//!   fields) and one `$unwind` with `preserveNullAndEmptyArrays: true` per distinct relation
//!   path, the related document under `__j<n>` — a document without a related one keeps a
//!   missing (NULL) value, like SQL's `LEFT JOIN`.
//! - A relation aggregate: a `$lookup` of the related documents into an array (N:M through
//!   the join collection, its right keys flattened with `$map` first), then `$set` of the
//!   aggregate over that array as `__r<k>` (count 0 / NULL when the array is empty), and the
//!   arrays removed. `$lookup` rather than a key pre-query: the value is needed per document,
//!   and the pre-query would have to bring every related key and value into the client and
//!   back into the command.

use mongodb::bson::{Bson, Document, doc};

use crate::error::{Error, Result};
use crate::mongo::bson::field_path;
use crate::query::{AggFunc, JoinColumn, JoinTerm, Query, RelatedAgg, SelectItem};
use crate::schema::{ModelSchema, RelationKind};

/// The joined paths and relation aggregates of one projection.
#[derive(Debug, Default)]
pub(super) struct Joins {
    /// Relation paths, each with the model it reaches; document key `__j<n+1>`.
    paths: Vec<(Vec<usize>, &'static ModelSchema)>,
    /// Relation aggregates; document key `__r<k>`.
    related: Vec<RelatedAgg>,
}

impl Joins {
    /// Plans the joins of the items, group keys and orderings of `q`.
    pub(super) fn plan<M>(root: &'static ModelSchema, q: &Query<M>, items: &[SelectItem]) -> Result<Self> {
        let mut joins = Joins::default();
        let mut add = |term: JoinTerm| -> Result<()> {
            match term {
                JoinTerm::Column(col) => joins.path(root, &col.hops).map(drop),
                JoinTerm::Related(agg) => {
                    if !joins.related.contains(&agg) {
                        joins.related.push(agg);
                    }
                    Ok(())
                }
            }
        };
        for item in items {
            match item {
                SelectItem::Joined(c) => add(JoinTerm::Column(c.clone()))?,
                SelectItem::Related(a) => add(JoinTerm::Related(*a))?,
                _ => {}
            }
        }
        for c in &q.group_join {
            add(JoinTerm::Column(c.clone()))?;
        }
        for s in &q.join_order {
            add(s.term.clone())?;
        }
        Ok(joins)
    }

    /// The index of path `hops`, planned with its prefixes.
    fn path(&mut self, root: &'static ModelSchema, hops: &[usize]) -> Result<usize> {
        if let Some(at) = self.paths.iter().position(|(h, _)| h == hops) {
            return Ok(at);
        }
        let from = match hops.len() {
            0 => return Err(Error::Config(format!("{}: a joined column needs at least one relation", root.name))),
            1 => root,
            n => {
                let p = self.path(root, &hops[..n - 1])?;
                self.paths[p].1
            }
        };
        let rel = from.relations.get(hops[hops.len() - 1]).ok_or_else(|| {
            Error::Config(format!("{}: relation number {} does not exist", from.name, hops[hops.len() - 1]))
        })?;
        if !matches!(rel.kind, RelationKind::BelongsTo | RelationKind::HasOne) {
            return Err(Error::Config(format!(
                "{}.{}: only belongs_to / has_one relations can be joined; aggregate a {:?} relation",
                from.name, rel.name, rel.kind
            )));
        }
        self.paths.push((hops.to_vec(), (rel.target)()));
        Ok(self.paths.len() - 1)
    }

    /// The document path of a joined column (after [`Joins::stages`]).
    pub(super) fn column_path(&self, col: &JoinColumn) -> Result<String> {
        let at = self
            .paths
            .iter()
            .position(|(h, _)| *h == col.hops)
            .ok_or_else(|| Error::Config(format!("joined column {col:?} was not planned")))?;
        Ok(format!("__j{}.{}", at + 1, field_path(self.paths[at].1, col.field)))
    }

    /// The document key of a relation aggregate (after [`Joins::stages`]).
    pub(super) fn related_path(&self, agg: &RelatedAgg) -> Result<String> {
        let k = self
            .related
            .iter()
            .position(|a| a == agg)
            .ok_or_else(|| Error::Config(format!("relation aggregate {agg:?} was not planned")))?;
        Ok(format!("__r{k}"))
    }

    /// The path of a join term (see [`Joins::column_path`], [`Joins::related_path`]).
    pub(super) fn term_path(&self, term: &JoinTerm) -> Result<String> {
        match term {
            JoinTerm::Column(c) => self.column_path(c),
            JoinTerm::Related(a) => self.related_path(a),
        }
    }

    /// The stages that add the joined documents and the relation aggregates.
    pub(super) fn stages(&self, root: &'static ModelSchema) -> Result<Vec<Document>> {
        let mut stages = Vec::new();
        for (at, (hops, schema)) in self.paths.iter().enumerate() {
            let (parent_prefix, from) = match hops.len() {
                1 => (String::new(), root),
                n => {
                    let p = self.paths.iter().position(|(h, _)| h[..] == hops[..n - 1]).unwrap_or_default();
                    (format!("__j{}.", p + 1), self.paths[p].1)
                }
            };
            let rel = &from.relations[hops[hops.len() - 1]];
            let foreign = match rel.remote_field {
                None => field_path(schema, schema.primary_key[0]),
                Some(name) => field_path(schema, schema.field_position(name)?),
            };
            let name = format!("__j{}", at + 1);
            stages.push(doc! { "$lookup": {
                "from": schema.table,
                "localField": format!("{parent_prefix}{}", field_path(from, rel.local_field)),
                "foreignField": foreign.as_ref(),
                "as": &name,
            } });
            stages.push(doc! { "$unwind": { "path": format!("${name}"), "preserveNullAndEmptyArrays": true } });
        }
        if self.related.is_empty() {
            return Ok(stages);
        }
        let mut values = Document::new();
        let mut unset = Vec::new();
        for (k, agg) in self.related.iter().enumerate() {
            let rows = format!("__r{k}_rows");
            let target = related_lookup(root, agg, &rows, &mut stages, &mut unset)?;
            values.insert(format!("__r{k}"), aggregate(target, agg, &rows));
            unset.push(rows);
        }
        stages.push(doc! { "$set": values });
        stages.push(doc! { "$unset": unset });
        Ok(stages)
    }
}

/// Adds the `$lookup` stages that put the documents related by `agg`'s relation into the
/// array `rows`, and returns the related model; helper fields to remove go to `unset`.
fn related_lookup(
    root: &'static ModelSchema,
    agg: &RelatedAgg,
    rows: &str,
    stages: &mut Vec<Document>,
    unset: &mut Vec<String>,
) -> Result<&'static ModelSchema> {
    let rel = root
        .relations
        .get(agg.relation)
        .ok_or_else(|| Error::Config(format!("{}: relation number {} does not exist", root.name, agg.relation)))?;
    let target = (rel.target)();
    let local = field_path(root, rel.local_field);
    match (rel.kind, &rel.through) {
        (RelationKind::ManyToMany, Some(through)) => {
            let join = (through.schema)();
            let left = field_path(join, join.field_position(through.left)?);
            let right = field_path(join, join.field_position(through.right)?);
            let (links, ids) = (format!("{rows}_links"), format!("{rows}_ids"));
            stages.push(doc! { "$lookup": {
                "from": join.table, "localField": local.as_ref(), "foreignField": left.as_ref(), "as": &links,
            } });
            stages.push(doc! { "$set": { &ids: {
                "$map": { "input": format!("${links}"), "as": "l", "in": format!("$$l.{right}") }
            } } });
            stages.push(doc! { "$lookup": {
                "from": target.table, "localField": &ids,
                "foreignField": field_path(target, target.primary_key[0]).as_ref(), "as": rows,
            } });
            unset.push(links);
            unset.push(ids);
        }
        (RelationKind::HasMany, _) => {
            let remote = match rel.remote_field {
                Some(name) => field_path(target, target.field_position(name)?),
                None => field_path(target, target.primary_key[0]),
            };
            stages.push(doc! { "$lookup": {
                "from": target.table, "localField": local.as_ref(), "foreignField": remote.as_ref(), "as": rows,
            } });
        }
        (kind, _) => {
            return Err(Error::Config(format!(
                "{}.{}: only has_many / many_to_many relations can be aggregated, not {kind:?}",
                root.name, rel.name
            )));
        }
    }
    // Soft-deleted related documents do not count: keep those whose stamp is null or missing.
    if let Some(stamp) = target.soft_delete {
        let path = format!("$$d.{}", field_path(target, stamp));
        stages.push(doc! { "$set": { rows: { "$filter": {
            "input": format!("${rows}"),
            "as": "d",
            "cond": { "$eq": [{ "$ifNull": [path, Bson::Null] }, Bson::Null] },
        } } } });
    }
    Ok(target)
}

/// The aggregate over the array `rows` of related documents, with SQL's rules: NULL and
/// missing values are ignored, `COUNT` of nothing is 0 and the others NULL.
fn aggregate(target: &ModelSchema, agg: &RelatedAgg, rows: &str) -> Bson {
    let Some(field) = agg.field else {
        return doc! { "$size": format!("${rows}") }.into();
    };
    let path = field_path(target, field);
    let values = doc! { "$filter": {
        "input": { "$map": { "input": format!("${rows}"), "as": "d", "in": { "$ifNull": [format!("$$d.{path}"), Bson::Null] } } },
        "as": "v",
        "cond": { "$ne": ["$$v", Bson::Null] },
    } };
    let empty = doc! { "$eq": [{ "$size": values.clone() }, 0] };
    let value = match agg.func {
        AggFunc::Count => return doc! { "$size": values }.into(),
        AggFunc::CountDistinct => return doc! { "$size": { "$setUnion": [values, []] } }.into(),
        AggFunc::Sum => doc! { "$sum": values },
        AggFunc::Avg => doc! { "$avg": values },
        AggFunc::Min => doc! { "$min": values },
        AggFunc::Max => doc! { "$max": values },
    };
    doc! { "$cond": [empty, Bson::Null, value] }.into()
}
