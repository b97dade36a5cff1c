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
use crate::query::{Node, Query};
use crate::schema::{ModelSchema, RelationKind};
use crate::value::Value;

/// Whether `node` holds a relation filter anywhere.
fn has_related(node: &Node) -> bool {
    match node {
        Node::Related { .. } => true,
        Node::And(items) | Node::Or(items) => items.iter().any(has_related),
        Node::Not(inner) => has_related(inner),
        _ => false,
    }
}

/// `q`, with every relation filter replaced by a condition on key values (running the
/// pre-queries on `conn`); `q` itself, untouched, when it has none.
pub(crate) async fn resolve_query<'q, M: Model>(conn: &mut Conn<'_>, q: &'q Query<M>) -> Result<Cow<'q, Query<M>>> {
    match &q.filter {
        Some(node) if has_related(node) => {
            let resolved = resolve(conn, M::SCHEMA, node).await?;
            let mut q = q.clone();
            q.filter = Some(resolved);
            Ok(Cow::Owned(q))
        }
        _ => Ok(Cow::Borrowed(q)),
    }
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
            other => other.clone(),
        })
    })
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
