//! Projections and aggregates (`query.select(..)`) on MongoDB: one `aggregate` pipeline —
//! `$match` (the filter), `$group` (the grouping and accumulators), `$match` (`having`),
//! `$sort`, `$skip`, `$limit`, `$project` — whose output document holds the selected items as
//! `c0`, `c1`, …, read back by position like a SQL row.
//!
//! Columns of related models and relation aggregates are brought in by `$lookup` stages right
//! after the filter (see [`join`]).
//!
//! SQL's aggregate rules are kept: NULL (and missing) values are ignored, `SUM` of no values is
//! NULL (MongoDB's `$sum` would say 0), NULL group keys form one group, and an aggregate
//! without `group_by` returns one row even when nothing matches.

use mongodb::bson::raw::RawDocument;
use mongodb::bson::{Bson, Document, RawDocumentBuf, doc};

use crate::error::{Error, Result, ValueError};
use crate::model::Model;
use crate::mongo::bson::{field_path, from_bson, to_bson};
use crate::mongo::calc::{self, Ctx};
use crate::mongo::filter::{count_bson, filter, needs_null_key, null_key};
use crate::mongo::{Conn, exec};
use crate::query::{
    AggFunc, CmpOp, Columns, FullKey, JoinTerm, Node, Nulls, OrderKey as SortKey, Query, SelectItem, ValueRow,
};

mod join;
pub(crate) mod tree;
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

/// 1 when the value holds something, else 0.
fn present(value: Bson) -> Bson {
    doc! { "$cond": [{ "$eq": [{ "$ifNull": [value, Bson::Null] }, Bson::Null] }, 0, 1] }.into()
}

/// Adds the accumulators computing aggregate `func(field)` as `name` to `group`, and returns
/// the expression that yields its SQL value after the group.
fn accumulate(schema: &ModelSchema, group: &mut Document, name: &str, func: AggFunc, field: Option<usize>) -> Bson {
    let arg = field.map(|f| Bson::String(format!("${}", field_path(schema, f))));
    accumulate_value(group, name, func, arg)
}

/// [`accumulate`] over a value expression (`None` for `*`).
fn accumulate_value(group: &mut Document, name: &str, func: AggFunc, arg: Option<Bson>) -> Bson {
    let path = |f: Bson| f;
    let present = |f: Bson| present(f);
    match (func, arg) {
        (AggFunc::Count, None) => {
            group.insert(name, doc! { "$sum": 1 });
        }
        (AggFunc::Count, Some(f)) => {
            group.insert(name, doc! { "$sum": present(f) });
        }
        (AggFunc::CountDistinct, Some(f)) => {
            group.insert(name, doc! { "$addToSet": path(f) });
            let values = format!("${name}");
            return doc! { "$size": { "$filter": { "input": values, "cond": { "$ne": ["$$this", Bson::Null] } } } }
                .into();
        }
        (AggFunc::Sum, Some(f)) => {
            group.insert(name, doc! { "$sum": path(f.clone()) });
            group.insert(format!("{name}_n"), doc! { "$sum": present(f) });
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

/// Lowers a `having` tree over the computed aggregates `h<k>` (collected into `aggs`);
/// expression comparisons are evaluated with `ctx` (aggregates resolved after the group).
fn having(
    schema: &'static ModelSchema,
    node: &Node,
    aggs: &mut Vec<(AggFunc, Option<usize>)>,
    ctx: &mut Ctx<'_>,
) -> Result<Document> {
    let mut all = |items: &[Node], ctx: &mut Ctx<'_>| -> Result<Vec<Document>> {
        items.iter().map(|n| having(schema, n, aggs, ctx)).collect()
    };
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
        Node::Calc { lhs, op, rhs } => doc! { "$expr": calc::compare_expr(schema, lhs, *op, rhs, false, ctx)? },
        Node::And(items) if items.is_empty() => Document::new(),
        Node::And(items) => doc! { "$and": all(items, ctx)? },
        Node::Or(items) if items.is_empty() => doc! { "_id": { "$in": [] } },
        Node::Or(items) => doc! { "$or": all(items, ctx)? },
        Node::Not(inner) => doc! { "$nor": [having(schema, inner, aggs, ctx)?] },
        Node::Invalid(e) => return Err(Error::Encode { model: schema.name, field: "?", source: e.clone() }),
        _ => {
            return Err(Error::Unsupported {
                store: "mongodb",
                what: "field conditions in `having` (use `filter`)".into(),
            });
        }
    })
}

/// Whether the projection aggregates (then the pipeline groups).
fn is_grouped<M>(q: &Query<M>, items: &[SelectItem]) -> bool {
    crate::query::is_grouped_select(q, items)
}

/// The pipeline of a projection / aggregate query.
fn pipeline<M>(schema: &'static ModelSchema, q: &Query<M>, items: &[SelectItem]) -> Result<Vec<Document>> {
    let mut stages = vec![doc! { "$match": filter(schema, q.where_node(schema).as_deref())? }];
    crate::query::check_grouping(schema, q, items)?;
    let joins = join::Joins::plan(schema, q, items)?;
    stages.extend(joins.stages(schema)?);
    let grouped = is_grouped(q, items);
    let mut project = doc! { "_id": 0 };
    let stored = move |f: usize| field_path(schema, f).into_owned();
    let path_of: Box<dyn Fn(usize) -> String> = if grouped {
        let keys = q.group_by.clone();
        Box::new(move |f| match keys.iter().position(|&k| k == f) {
            Some(k) => format!("_id.g{k}"),
            None => format!("__polystore_unGrouped{f}"),
        })
    } else {
        Box::new(stored)
    };
    let mut extra = Document::new();
    let sort;
    if grouped {
        let mut key = Document::new();
        for (k, &f) in q.group_by.iter().enumerate() {
            key.insert(format!("g{k}"), value_of(schema, f));
        }
        for (k, node) in q.group_calc.iter().enumerate() {
            key.insert(format!("x{k}"), calc::expr(schema, node, &mut Ctx::plain(&stored))?);
        }
        for (k, col) in q.group_join.iter().enumerate() {
            key.insert(format!("j{k}"), doc! { "$ifNull": [format!("${}", joins.column_path(col)?), Bson::Null] });
        }
        let group = std::cell::RefCell::new(doc! { "_id": key });
        let mut n = 0;
        let mut agg_of = |func: AggFunc, arg: &crate::query::CalcNode| -> Result<Bson> {
            let value = calc::expr(schema, arg, &mut Ctx::plain(&stored))?;
            n += 1;
            Ok(accumulate_value(&mut group.borrow_mut(), &format!("e{n}"), func, Some(value)))
        };
        let mut ctx = Ctx { path_of: &*path_of, aggregate: Some(&mut agg_of), groups: &q.group_calc };
        let mut computed = Document::new();
        for (i, item) in items.iter().enumerate() {
            let out = match item {
                SelectItem::Field(f) => Bson::String(format!("${}", path_of(*f))),
                SelectItem::Agg { func, field } => {
                    accumulate(schema, &mut group.borrow_mut(), &format!("a{i}"), *func, *field)
                }
                SelectItem::Calc(node) => calc::expr(schema, node, &mut ctx)?,
                SelectItem::Joined(col) => Bson::String(format!("$_id.{}", group_join_key(q, col)?)),
                SelectItem::Related(_) => return Err(Error::Config("relation aggregates are not grouped".into())),
            };
            computed.insert(format!("c{i}"), out);
        }
        let mut aggs = Vec::new();
        let having = match &q.having {
            Some(node) => Some(having(schema, node, &mut aggs, &mut ctx)?),
            None => None,
        };
        for (k, (func, field)) in aggs.iter().enumerate() {
            let out = accumulate(schema, &mut group.borrow_mut(), &format!("x{k}"), *func, *field);
            computed.insert(format!("h{k}"), out);
        }
        for (k, a) in q.agg_order.iter().enumerate() {
            let out = accumulate(schema, &mut group.borrow_mut(), &format!("y{k}"), a.func, a.field);
            computed.insert(format!("o{k}"), out);
        }
        let join_path = |t: &JoinTerm| -> Result<String> {
            match t {
                JoinTerm::Column(col) => Ok(format!("_id.{}", group_join_key(q, col)?)),
                JoinTerm::Related(_) => Err(Error::Config("relation aggregates are not grouped".into())),
            }
        };
        sort = sort_with_joins(schema, q, &*path_of, &mut ctx, &mut extra, Some(&join_path))?;
        stages.push(doc! { "$group": group.into_inner() });
        stages.push(doc! { "$addFields": computed });
        if let Some(h) = having {
            stages.push(doc! { "$match": h });
        }
        for i in 0..items.len() {
            project.insert(format!("c{i}"), 1);
        }
    } else {
        let mut ctx = Ctx::plain(&*path_of);
        for (i, item) in items.iter().enumerate() {
            match item {
                SelectItem::Field(f) => {
                    project.insert(format!("c{i}"), format!("${}", path_of(*f)));
                }
                SelectItem::Calc(node) => {
                    project.insert(format!("c{i}"), calc::expr(schema, node, &mut ctx)?);
                }
                SelectItem::Joined(col) => {
                    project.insert(
                        format!("c{i}"),
                        doc! { "$ifNull": [format!("${}", joins.column_path(col)?), Bson::Null] },
                    );
                }
                SelectItem::Related(agg) => {
                    project.insert(format!("c{i}"), format!("${}", joins.related_path(agg)?));
                }
                SelectItem::Agg { .. } => {}
            }
        }
        let join_path = |t: &JoinTerm| joins.term_path(t);
        sort = sort_with_joins(schema, q, &*path_of, &mut ctx, &mut extra, Some(&join_path))?;
    }
    if !extra.is_empty() {
        stages.push(doc! { "$addFields": extra });
    }
    if !sort.is_empty() {
        stages.push(doc! { "$sort": sort });
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

/// The `$sort` of the query's full ordering: field terms (with a computed NULL flag where
/// MongoDB's placement is not the one asked for), aggregate terms (`o<k>`, computed after the
/// group) and expression terms (computed into `extra`). MongoDB sorts null as the smallest
/// value, as polystore's aggregate and expression orderings do on every store.
pub(crate) fn merged_sort<M>(
    schema: &ModelSchema,
    q: &Query<M>,
    path_of: &dyn Fn(usize) -> String,
    ctx: &mut Ctx<'_>,
    extra: &mut Document,
) -> Result<Document> {
    sort_with_joins(schema, q, path_of, ctx, extra, None)
}

/// The key under which group key `col` (a joined column) is grouped: `j<k>`.
fn group_join_key<M>(q: &Query<M>, col: &crate::query::JoinColumn) -> Result<String> {
    match q.group_join.iter().position(|c| c == col) {
        Some(k) => Ok(format!("j{k}")),
        None => Err(Error::Config("a related model's column in a grouped `select` must be a group key".into())),
    }
}

/// The document path of a join term in a projection's pipeline.
type JoinPathOf<'a> = &'a dyn Fn(&JoinTerm) -> Result<String>;

/// [`merged_sort`] with the orderings on joined columns and relation aggregates of a
/// projection, sorted on the document paths `join_path` gives (NULL and missing first).
fn sort_with_joins<M>(
    schema: &ModelSchema,
    q: &Query<M>,
    path_of: &dyn Fn(usize) -> String,
    ctx: &mut Ctx<'_>,
    extra: &mut Document,
    join_path: Option<JoinPathOf<'_>>,
) -> Result<Document> {
    let mut sort = Document::new();
    for (i, key) in crate::query::full_keys(&q.clauses()).into_iter().enumerate() {
        let key = match key {
            FullKey::Base(key) => key,
            FullKey::Join(j) => {
                let path = match join_path {
                    Some(path_of) => path_of(&j.term)?,
                    None => {
                        return Err(Error::Config(
                            "ordering on a related model's column or a relation aggregate needs `select`".into(),
                        ));
                    }
                };
                sort.entry(path).or_insert(Bson::Int32(if j.descending { -1 } else { 1 }));
                continue;
            }
        };
        match key {
            SortKey::Field(t) => {
                let path = path_of(t.field);
                if needs_null_key(schema, t) {
                    let flag = null_key(i);
                    let is_null = doc! { "$eq": [{ "$ifNull": [format!("${path}"), Bson::Null] }, Bson::Null] };
                    extra.insert(&flag, doc! { "$cond": [is_null, 1, 0] });
                    sort.insert(flag, if t.nulls == Some(Nulls::Last) { 1 } else { -1 });
                }
                sort.entry(path).or_insert(Bson::Int32(if t.descending { -1 } else { 1 }));
            }
            SortKey::Agg(k, a) => {
                sort.insert(format!("o{k}"), if a.descending { -1 } else { 1 });
            }
            SortKey::Calc(k, c) => {
                extra.insert(calc::sort_key(k), calc::expr(schema, &c.node, ctx)?);
                sort.insert(calc::sort_key(k), if c.descending { -1 } else { 1 });
            }
        }
    }
    Ok(sort)
}

/// The value of a scalar subquery: aggregate `func` over `field` of the documents of `schema`
/// matching `filter` (already resolved), typed `ty`. Over no documents it is NULL (0 for a
/// count); a decimal average is the exact sum divided by the count in Rust, as in a projection.
pub(crate) async fn scalar(
    conn: &mut Conn<'_>,
    schema: &'static ModelSchema,
    filter: Option<Node>,
    func: AggFunc,
    field: Option<usize>,
    ty: ColumnType,
) -> Result<Value> {
    let q = Query::<()>::untyped(filter);
    let decimal_avg = func == AggFunc::Avg && ty.scalar == crate::schema::Scalar::Decimal;
    let items = if decimal_avg {
        vec![SelectItem::Agg { func: AggFunc::Sum, field }, SelectItem::Agg { func: AggFunc::Count, field }]
    } else {
        vec![SelectItem::Agg { func, field }]
    };
    let cmd = doc! { "aggregate": schema.table, "pipeline": pipeline(schema, &q, &items)?, "cursor": {} };
    let count_ty = ColumnType::scalar(crate::schema::Scalar::I64);
    let decode = |e| Error::Decode { model: schema.name, field: "<subquery>", source: e };
    let mut row = None;
    exec::cursor(conn, "subquery", Some(schema), cmd, |d| {
        let doc = DocRow(d);
        let value = doc.value(0, ty).map_err(decode)?;
        let count = if decimal_avg { Some(doc.value(1, count_ty).map_err(decode)?) } else { None };
        row = Some((value, count));
        Ok(())
    })
    .await?;
    Ok(match row {
        None if matches!(func, AggFunc::Count | AggFunc::CountDistinct) => Value::I64(0),
        None => Value::Null,
        Some((value, None)) => value,
        Some((Value::Decimal(sum), Some(Value::I64(n)))) if n > 0 => match sum.checked_div(n.into()) {
            Some(avg) => Value::Decimal(avg.normalize()),
            None => {
                return Err(decode(ValueError::OutOfRange { value: sum.to_string(), target: "decimal average" }));
            }
        },
        Some(_) => Value::Null,
    })
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
    let items = &*crate::mongo::relation_filter::resolve_items(&mut conn, M::SCHEMA, items).await?;
    let cmd = doc! { "aggregate": schema.table, "pipeline": pipeline(schema, q, items)?, "cursor": {} };
    let mut out = Vec::new();
    exec::cursor(&mut conn, "select", Some(schema), cmd, |d| {
        out.push(decode(&mut Columns::new(&DocRow(d), schema.name))?);
        Ok(())
    })
    .await?;
    let aggregates_only = q.group_by.is_empty()
        && q.group_calc.is_empty()
        && items.iter().all(|i| match i {
            SelectItem::Agg { .. } => true,
            SelectItem::Calc(node) => node.has_aggregate(),
            SelectItem::Field(_) | SelectItem::Joined(_) | SelectItem::Related(_) => false,
        });
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
