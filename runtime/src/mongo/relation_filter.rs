//! Relation filters on MongoDB (`Post::AUTHOR.matches(..)`, `User::POSTS.any(..)`, `all`,
//! `none`, `is_empty`) by *key pre-queries*: before the filter is lowered, each
//! [`Node::Related`] is replaced by a condition on the filtered model's own link field.
//!
//! For a relation of `M` to `T` linked by `M.local = T.remote`, the pre-query is one
//! `aggregate` on `T`: `$match` the related condition, `$group` on the link field — the
//! distinct keys of the related rows that match. The relation node then becomes
//! `local IS NOT NULL AND local IN (keys)`, which is *true or false, never unknown*, like SQL's
//! `EXISTS`: so `NOT` (from `none`, `is_empty`, `all` or the user's `.not()`) selects exactly
//! the rows without a matching related row, a NULL foreign key included. N:M relations take two
//! pre-queries: the target's keys, then the join documents' left keys for those targets.
//! Conditions nest: the related condition is resolved (recursively) before its own pre-query.
//!
//! Subqueries go the same way: `field IN (subquery)` becomes `field IN (keys)` (the distinct
//! non-null values the subquery yields), a correlated `exists(..).on(inner, outer)` becomes
//! `outer IS NOT NULL AND outer IN (the distinct inner values)`, and a scalar subquery in an
//! expression becomes its value, computed by one `aggregate` (`$match`, `$group`).
//!
//! The pre-queries run on the same connection (and session) as the outer operation, one per
//! relation node, before it. Outside a transaction they are not atomic with the outer read: a
//! related document written in between may or may not be seen (docs/mongodb.md).

use std::borrow::Cow;

use mongodb::bson::doc;

use crate::error::{Error, Result};
use crate::model::{BoxFuture, Model};
use crate::mongo::bson::{field_path, from_bson};
use crate::mongo::filter::filter;
use crate::mongo::{Conn, exec};
use crate::query::{CalcNode, Node, Query, SelectItem, SubColumn, Subquery};
use crate::schema::{ModelSchema, RelationKind};
use crate::value::Value;

/// Whether `node` holds a relation filter or a subquery anywhere.
fn has_related(node: &Node) -> bool {
    match node {
        Node::Related { .. } | Node::InQuery { .. } | Node::Exists { .. } => true,
        Node::And(items) | Node::Or(items) => items.iter().any(has_related),
        Node::Not(inner) => has_related(inner),
        Node::Calc { lhs, rhs, .. } => has_subquery(lhs) || has_subquery(rhs),
        _ => false,
    }
}

/// Whether an expression holds a scalar subquery anywhere.
fn has_subquery(node: &CalcNode) -> bool {
    match node {
        CalcNode::Subquery(_) => true,
        CalcNode::Binary { lhs, rhs, .. } => has_subquery(lhs) || has_subquery(rhs),
        CalcNode::Neg(inner)
        | CalcNode::Aggregate { arg: inner, .. }
        | CalcNode::Text { arg: inner, .. }
        | CalcNode::Trunc { arg: inner, .. }
        | CalcNode::Extract { arg: inner, .. } => has_subquery(inner),
        CalcNode::Coalesce { items, .. } | CalcNode::Concat { items, .. } => items.iter().any(has_subquery),
        CalcNode::Case { branches, otherwise, .. } => {
            branches.iter().any(|(cond, value)| has_related(cond) || has_subquery(value))
                || otherwise.as_deref().is_some_and(has_subquery)
        }
        CalcNode::Field(_) | CalcNode::Literal { .. } | CalcNode::Joined { .. } | CalcNode::Invalid(_) => false,
    }
}

/// `items` with every scalar subquery replaced by its value (running the pre-queries on
/// `conn`); `items` itself when none holds one.
pub(crate) async fn resolve_items<'i>(
    conn: &mut Conn<'_>,
    schema: &'static ModelSchema,
    items: &'i [SelectItem],
) -> Result<Cow<'i, [SelectItem]>> {
    if !items.iter().any(|i| matches!(i, SelectItem::Calc(node) if has_subquery(node))) {
        return Ok(Cow::Borrowed(items));
    }
    let mut out = items.to_vec();
    for item in &mut out {
        if let SelectItem::Calc(node) = item {
            resolve_calc(conn, schema, node).await?;
        }
    }
    Ok(Cow::Owned(out))
}

/// Replaces, in place, every scalar subquery in `node` (an expression over `schema`) by its
/// value, and resolves the conditions of its `case_when` branches.
fn resolve_calc<'a>(
    conn: &'a mut Conn<'_>,
    schema: &'static ModelSchema,
    node: &'a mut CalcNode,
) -> BoxFuture<'a, Result<()>> {
    Box::pin(async move {
        match node {
            CalcNode::Subquery(query) => {
                query.check()?;
                let SubColumn::Agg { func, field, ty } = query.column else {
                    return Err(Error::Unsupported {
                        store: "mongodb",
                        what: format!("a subquery over {} selecting a field as one value", query.schema.name),
                    });
                };
                let filter = match &query.filter {
                    Some(n) => Some(resolve(conn, query.schema, n).await?),
                    None => None,
                };
                let value = crate::mongo::select::scalar(conn, query.schema, filter, func, field, ty).await?;
                *node = CalcNode::Literal { value, ty };
            }
            CalcNode::Binary { lhs, rhs, .. } => {
                resolve_calc(conn, schema, lhs).await?;
                resolve_calc(conn, schema, rhs).await?;
            }
            CalcNode::Neg(inner)
            | CalcNode::Aggregate { arg: inner, .. }
            | CalcNode::Text { arg: inner, .. }
            | CalcNode::Trunc { arg: inner, .. }
            | CalcNode::Extract { arg: inner, .. } => resolve_calc(conn, schema, inner).await?,
            CalcNode::Coalesce { items, .. } | CalcNode::Concat { items, .. } => {
                for item in items {
                    resolve_calc(conn, schema, item).await?;
                }
            }
            CalcNode::Case { branches, otherwise, .. } => {
                for (cond, value) in branches {
                    if has_related(cond) {
                        *cond = resolve(conn, schema, cond).await?;
                    }
                    resolve_calc(conn, schema, value).await?;
                }
                if let Some(value) = otherwise {
                    resolve_calc(conn, schema, value).await?;
                }
            }
            CalcNode::Field(_) | CalcNode::Literal { .. } | CalcNode::Joined { .. } | CalcNode::Invalid(_) => {}
        }
        Ok(())
    })
}

/// `q`, with every relation filter replaced by a condition on key values (running the
/// pre-queries on `conn`); `q` itself, untouched, when it has none.
pub(crate) async fn resolve_query<'q, M: Model>(conn: &mut Conn<'_>, q: &'q Query<M>) -> Result<Cow<'q, Query<M>>> {
    let filter = q.filter.as_ref().is_some_and(has_related);
    let having = q.having.as_ref().is_some_and(has_related);
    if !filter && !having {
        return Ok(Cow::Borrowed(q));
    }
    let mut q = q.clone();
    if let (true, Some(node)) = (filter, &q.filter) {
        q.filter = Some(resolve(conn, M::SCHEMA, node).await?);
    }
    if let (true, Some(node)) = (having, &q.having) {
        q.having = Some(resolve(conn, M::SCHEMA, node).await?);
    }
    Ok(Cow::Owned(q))
}

/// `node` over `schema` with its relation filters replaced by key conditions.
fn resolve<'a>(conn: &'a mut Conn<'_>, schema: &'static ModelSchema, node: &'a Node) -> BoxFuture<'a, Result<Node>> {
    Box::pin(async move {
        Ok(match node {
            Node::Related { relation, node: inner } => related(conn, schema, *relation, inner.as_deref()).await?,
            Node::And(items) | Node::Or(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    out.push(resolve(conn, schema, item).await?);
                }
                if matches!(node, Node::And(_)) { Node::And(out) } else { Node::Or(out) }
            }
            Node::Not(inner) => Node::Not(Box::new(resolve(conn, schema, inner).await?)),
            Node::InQuery { field, query, negated } => {
                let keys = subquery_keys(conn, query).await?;
                Node::In { field: *field, values: keys, negated: *negated }
            }
            Node::Exists { outer, query } => {
                let keys = subquery_keys(conn, query).await?;
                Node::And(vec![
                    Node::IsNull { field: *outer, negated: true },
                    Node::In { field: *outer, values: keys, negated: false },
                ])
            }
            Node::Calc { lhs, op, rhs } => {
                let (mut lhs, mut rhs) = (lhs.clone(), rhs.clone());
                resolve_calc(conn, schema, &mut lhs).await?;
                resolve_calc(conn, schema, &mut rhs).await?;
                Node::Calc { lhs, op: *op, rhs }
            }
            other => other.clone(),
        })
    })
}

/// The distinct non-null values of a subquery's field over its matching documents.
async fn subquery_keys(conn: &mut Conn<'_>, query: &Subquery) -> Result<Vec<Value>> {
    query.check()?;
    let SubColumn::Field(field) = query.column else {
        return Err(Error::Unsupported {
            store: "mongodb",
            what: format!("an aggregate subquery over {} as a list of values (select a field)", query.schema.name),
        });
    };
    let inner = match &query.filter {
        Some(n) => Some(resolve(conn, query.schema, n).await?),
        None => None,
    };
    distinct(conn, query.schema, field, inner.as_ref()).await
}

/// The key condition for relation number `index` of `schema` with related condition `inner`.
async fn related(
    conn: &mut Conn<'_>,
    schema: &'static ModelSchema,
    index: usize,
    inner: Option<&Node>,
) -> Result<Node> {
    let rel = &schema.relations[index];
    let target = (rel.target)();
    let inner = match inner {
        Some(n) => Some(resolve(conn, target, n).await?),
        None => None,
    };
    // Soft-deleted related documents do not count.
    let inner = crate::soft_delete::finish_owned(target, crate::soft_delete::Rows::Live, inner);
    let keys = match (&rel.through, rel.kind) {
        (Some(through), RelationKind::ManyToMany) => {
            let targets = distinct(conn, target, target.primary_key[0], inner.as_ref()).await?;
            let join = (through.schema)();
            let (left, right) = (join.field_position(through.left)?, join.field_position(through.right)?);
            let linked = Node::In { field: right, values: targets, negated: false };
            distinct(conn, join, left, Some(&linked)).await?
        }
        _ => {
            let remote = match rel.remote_field {
                Some(name) => target.field_position(name)?,
                None => target.primary_key[0],
            };
            distinct(conn, target, remote, inner.as_ref()).await?
        }
    };
    let local = rel.local_field;
    Ok(Node::And(vec![
        Node::IsNull { field: local, negated: true },
        Node::In { field: local, values: keys, negated: false },
    ]))
}

/// The distinct non-null values of `field` over the documents of `schema` matching `node`.
async fn distinct(
    conn: &mut Conn<'_>,
    schema: &'static ModelSchema,
    field: usize,
    node: Option<&Node>,
) -> Result<Vec<Value>> {
    if matches!(node, Some(Node::In { values, negated: false, .. }) if values.is_empty()) {
        return Ok(Vec::new());
    }
    let path = format!("${}", field_path(schema, field));
    let pipeline = vec![doc! { "$match": filter(schema, node)? }, doc! { "$group": { "_id": path } }];
    let cmd = doc! { "aggregate": schema.table, "pipeline": pipeline, "cursor": {} };
    let ty = schema.fields[field].ty;
    let mut keys = Vec::new();
    exec::cursor(conn, "relation_keys", Some(schema), cmd, |d| {
        let raw = d.get("_id").map_err(|e| Error::Driver(Box::new(e)))?;
        match from_bson(raw, ty) {
            Ok(Value::Null) => {}
            Ok(v) => keys.push(v),
            Err(source) => return Err(Error::Decode { model: schema.name, field: schema.fields[field].name, source }),
        }
        Ok(())
    })
    .await?;
    Ok(keys)
}
