//! Projections and aggregates (`query.select(..)`) on MongoDB: one `aggregate` pipeline —
//! `$match` (the filter), `$group` (the grouping and accumulators), `$match` (`having`),
//! `$sort`, `$skip`, `$limit`, `$project` — whose output document holds the selected items as
//! `c0`, `c1`, …, read back by position like a SQL row.
//!
//! SQL's aggregate rules are kept: NULL (and missing) values are ignored, `SUM` of no values is
//! NULL (MongoDB's `$sum` would say 0), NULL group keys form one group, and an aggregate
//! without `group_by` returns one row even when nothing matches.

use mongodb::bson::raw::RawDocument;
use mongodb::bson::{Bson, Document, RawDocumentBuf, doc};

use crate::error::{Error, Result, ValueError};
use crate::model::Model;
use crate::mongo::bson::{field_path, from_bson, to_bson};
use crate::mongo::filter::{count_bson, filter, sort_by};
use crate::mongo::{Conn, exec};
use crate::query::{AggFunc, CmpOp, Columns, Node, OrderTerm, Query, SelectItem, ValueRow};
use crate::schema::{ColumnType, ModelSchema};
use crate::value::Value;

/// A result document read by position: item `i` is the key `c<i>`.
struct DocRow<'a>(&'a RawDocument);

impl ValueRow for DocRow<'_> {
    fn value(&self, idx: usize, ty: ColumnType) -> Result<Value, ValueError> {
        let b = self.0.get(format!("c{idx}")).map_err(|e| ValueError::Driver(e.to_string()))?;
        from_bson(b, ty)
    }

    fn column_index(&self, name: &str) -> Option<usize> {
        name.strip_prefix('c').and_then(|n| n.parse().ok())
    }
}

/// `"$<path>"` with null for a missing value.
fn value_of(schema: &ModelSchema, field: usize) -> Bson {
    doc! { "$ifNull": [format!("${}", field_path(schema, field)), Bson::Null] }.into()
}

/// 1 when the field holds a value, else 0.
fn present(schema: &ModelSchema, field: usize) -> Bson {
    doc! { "$cond": [{ "$eq": [value_of(schema, field), Bson::Null] }, 0, 1] }.into()
}

/// Adds the accumulators computing aggregate `func(field)` as `name` to `group`, and returns
/// the expression that yields its SQL value after the group.
fn accumulate(schema: &ModelSchema, group: &mut Document, name: &str, func: AggFunc, field: Option<usize>) -> Bson {
    let path = |f: usize| format!("${}", field_path(schema, f));
    match (func, field) {
        (AggFunc::Count, None) => {
            group.insert(name, doc! { "$sum": 1 });
        }
        (AggFunc::Count, Some(f)) => {
            group.insert(name, doc! { "$sum": present(schema, f) });
        }
        (AggFunc::CountDistinct, Some(f)) => {
            group.insert(name, doc! { "$addToSet": path(f) });
            let values = format!("${name}");
            return doc! { "$size": { "$filter": { "input": values, "cond": { "$ne": ["$$this", Bson::Null] } } } }
                .into();
        }
        (AggFunc::Sum, Some(f)) => {
            group.insert(name, doc! { "$sum": path(f) });
            group.insert(format!("{name}_n"), doc! { "$sum": present(schema, f) });
            return doc! { "$cond": [{ "$eq": [format!("${name}_n"), 0] }, Bson::Null, format!("${name}")] }.into();
        }
        (AggFunc::Avg, Some(f)) => {
            group.insert(name, doc! { "$avg": path(f) });
        }
        (AggFunc::Min, Some(f)) => {
            group.insert(name, doc! { "$min": path(f) });
        }
        (AggFunc::Max, Some(f)) => {
            group.insert(name, doc! { "$max": path(f) });
        }
        (_, None) => {
            group.insert(name, doc! { "$sum": 1 });
        }
    }
    Bson::String(format!("${name}"))
}

/// Lowers a `having` tree over the computed aggregates `h<k>` (collected into `aggs`).
fn having(schema: &'static ModelSchema, node: &Node, aggs: &mut Vec<(AggFunc, Option<usize>)>) -> Result<Document> {
    Ok(match node {
        Node::Aggregate { func, field, op, value, .. } => {
            let k = match aggs.iter().position(|a| *a == (*func, *field)) {
                Some(k) => k,
                None => {
                    aggs.push((*func, *field));
                    aggs.len() - 1
                }
            };
            let v =
                to_bson(value.clone()).map_err(|source| Error::Encode { model: schema.name, field: "?", source })?;
            let op = match op {
                CmpOp::Eq => "$eq",
                CmpOp::Ne => "$ne",
                CmpOp::Lt => "$lt",
                CmpOp::Le => "$lte",
                CmpOp::Gt => "$gt",
                CmpOp::Ge => "$gte",
            };
            let mut cond = Document::new();
            cond.insert(op, v);
            let mut d = Document::new();
            d.insert(format!("h{k}"), cond);
            d
        }
        Node::And(items) if items.is_empty() => Document::new(),
        Node::And(items) => doc! { "$and": items.iter().map(|n| having(schema, n, aggs)).collect::<Result<Vec<_>>>()? },
        Node::Or(items) if items.is_empty() => doc! { "_id": { "$in": [] } },
        Node::Or(items) => doc! { "$or": items.iter().map(|n| having(schema, n, aggs)).collect::<Result<Vec<_>>>()? },
        Node::Not(inner) => doc! { "$nor": [having(schema, inner, aggs)?] },
        Node::Invalid(e) => return Err(Error::Encode { model: schema.name, field: "?", source: e.clone() }),
        _ => {
            return Err(Error::Unsupported {
                store: "mongodb",
                what: "field conditions in `having` (use `filter`)".into(),
            });
        }
    })
}

/// The pipeline of a projection / aggregate query.
fn pipeline<M>(schema: &'static ModelSchema, q: &Query<M>, items: &[SelectItem]) -> Result<Vec<Document>> {
    let mut stages = vec![doc! { "$match": filter(schema, q.filter.as_ref())? }];
    let grouped =
        !q.group_by.is_empty() || q.having.is_some() || items.iter().any(|i| matches!(i, SelectItem::Agg { .. }));
    let mut project = doc! { "_id": 0 };
    let path_of: Box<dyn Fn(usize) -> String> = if grouped {
        let keys = q.group_by.clone();
        Box::new(move |f| match keys.iter().position(|&k| k == f) {
            Some(k) => format!("_id.g{k}"),
            None => format!("__polystore_unGrouped{f}"),
        })
    } else {
        Box::new(move |f| field_path(schema, f).into_owned())
    };
    if grouped {
        let mut key = Document::new();
        for (k, &f) in q.group_by.iter().enumerate() {
            key.insert(format!("g{k}"), value_of(schema, f));
        }
        let mut group = doc! { "_id": key };
        let mut computed = Document::new();
        for (i, item) in items.iter().enumerate() {
            let out = match item {
                SelectItem::Field(f) => Bson::String(format!("${}", path_of(*f))),
                SelectItem::Agg { func, field } => accumulate(schema, &mut group, &format!("a{i}"), *func, *field),
            };
            computed.insert(format!("c{i}"), out);
        }
        let mut aggs = Vec::new();
        let having = match &q.having {
            Some(node) => Some(having(schema, node, &mut aggs)?),
            None => None,
        };
        for (k, (func, field)) in aggs.iter().enumerate() {
            let out = accumulate(schema, &mut group, &format!("x{k}"), *func, *field);
            computed.insert(format!("h{k}"), out);
        }
        for (k, a) in q.agg_order.iter().enumerate() {
            let out = accumulate(schema, &mut group, &format!("y{k}"), a.func, a.field);
            computed.insert(format!("o{k}"), out);
        }
        stages.push(doc! { "$group": group });
        stages.push(doc! { "$addFields": computed });
        if let Some(h) = having {
            stages.push(doc! { "$match": h });
        }
        for i in 0..items.len() {
            project.insert(format!("c{i}"), 1);
        }
    } else {
        for (i, item) in items.iter().enumerate() {
            if let SelectItem::Field(f) = item {
                project.insert(format!("c{i}"), format!("${}", path_of(*f)));
            }
        }
    }
    if q.agg_order.is_empty() {
        push_order(&mut stages, schema, &q.order, &*path_of);
    } else {
        stages.push(doc! { "$sort": aggregate_sort(q, &*path_of)? });
    }
    if let Some(n) = q.offset {
        stages.push(doc! { "$skip": count_bson(n) });
    }
    if let Some(n) = q.limit {
        stages.push(doc! { "$limit": count_bson(n) });
    }
    stages.push(doc! { "$project": project });
    Ok(stages)
}

/// The `$sort` of an ordering with aggregate terms (`o<k>`, computed after the group):
/// MongoDB already sorts null as the smallest value, as polystore's aggregate ordering does
/// on every store. Field terms with an explicit NULL placement are refused here.
fn aggregate_sort<M>(q: &Query<M>, path_of: &dyn Fn(usize) -> String) -> Result<Document> {
    let mut sort = Document::new();
    for i in 0..=q.order.len() {
        for (k, a) in q.agg_order.iter().enumerate().filter(|(_, a)| a.pos == i) {
            sort.insert(format!("o{k}"), if a.descending { -1 } else { 1 });
        }
        if let Some(t) = q.order.get(i) {
            if t.nulls.is_some() {
                return Err(Error::Unsupported {
                    store: "mongodb",
                    what: "nulls_first / nulls_last on a field next to an aggregate ordering (drop the NULL \
                           placement, or order by the aggregate alone)"
                        .into(),
                });
            }
            sort.entry(path_of(t.field)).or_insert(Bson::Int32(if t.descending { -1 } else { 1 }));
        }
    }
    Ok(sort)
}

fn push_order(
    stages: &mut Vec<Document>,
    schema: &ModelSchema,
    order: &[OrderTerm],
    path_of: &dyn Fn(usize) -> String,
) {
    if order.is_empty() {
        return;
    }
    let (sort, flags) = sort_by(schema, order, path_of);
    if let Some(flags) = flags {
        stages.push(doc! { "$addFields": flags });
    }
    stages.push(doc! { "$sort": sort });
}

/// Runs a projection / aggregate query; `decode` reads one result row.
pub(crate) async fn fetch<M: Model, T>(
    mut conn: Conn<'_>,
    q: &Query<M>,
    items: &[SelectItem],
    mut decode: impl FnMut(&mut Columns<'_>) -> Result<T> + Send,
) -> Result<Vec<T>>
where
    T: Send,
{
    let schema = M::SCHEMA;
    if q.limit == Some(0) {
        return Ok(Vec::new());
    }
    let q = &*crate::mongo::relation_filter::resolve_query(&mut conn, q).await?;
    let cmd = doc! { "aggregate": schema.table, "pipeline": pipeline(schema, q, items)?, "cursor": {} };
    let mut out = Vec::new();
    exec::cursor(&mut conn, "select", Some(schema), cmd, |d| {
        out.push(decode(&mut Columns::new(&DocRow(d), schema.name))?);
        Ok(())
    })
    .await?;
    let aggregates_only = q.group_by.is_empty() && items.iter().all(|i| matches!(i, SelectItem::Agg { .. }));
    if out.is_empty() && aggregates_only && q.having.is_none() && q.offset.unwrap_or(0) == 0 {
        // SQL returns one row for an aggregate over no rows: counts 0, everything else NULL.
        let mut empty = Document::new();
        for (i, item) in items.iter().enumerate() {
            if let SelectItem::Agg { func: AggFunc::Count | AggFunc::CountDistinct, .. } = item {
                empty.insert(format!("c{i}"), 0_i64);
            }
        }
        let raw = RawDocumentBuf::from_document(&empty).map_err(|e| Error::Driver(Box::new(e)))?;
        out.push(decode(&mut Columns::new(&DocRow(&raw), schema.name))?);
    }
    Ok(out)
}
