//! Lowers the store-neutral query to MongoDB: the [`Node`] tree to a filter document, the
//! ordering to a sort document (with SQL's `NULLS FIRST / LAST`), and the window to
//! skip / limit.
//!
//! **Values stay values.** Every comparison is written with an explicit operator
//! (`{ field: { $eq: value } }`), so a user value such as the string `{"$ne": null}` or a
//! document with `$`-keys is compared as data, never read as an operator; text matches become
//! anchored `$regex`es with every metacharacter of the user's text escaped.
//!
//! **NULL semantics follow SQL.** MongoDB treats `null` and a missing key alike, and a
//! condition on `null` is simply true or false, where SQL's is *unknown* (so that `NOT`
//! does not select it either). The lowering pushes `NOT` down to the leaves (De Morgan) and
//! makes each negated or `<>` leaf exclude `null` explicitly: `score <> 5` and
//! `NOT (score < 5)` skip documents whose score is null or missing, as on PostgreSQL and
//! SQLite.

use mongodb::bson::{Bson, Document, doc};

use crate::error::{Error, Result};
use crate::mongo::bson::{field_path, to_bson};
use crate::query::{CmpOp, Node, Nulls, OrderTerm, TextOp};
use crate::schema::ModelSchema;
use crate::value::Value;

/// A filter that matches nothing.
fn nothing() -> Document {
    doc! { "_id": { "$in": [] } }
}

/// The filter document of an optional filter (`{}` matches everything).
pub(crate) fn filter(schema: &'static ModelSchema, node: Option<&Node>) -> Result<Document> {
    match node {
        None => Ok(Document::new()),
        Some(node) => lower(schema, node, false),
    }
}

fn value(schema: &'static ModelSchema, field: usize, v: &Value) -> Result<Bson> {
    to_bson(v.clone()).map_err(|source| Error::Encode { model: schema.name, field: schema.fields[field].name, source })
}

/// `{ path: { op: value } }`.
fn leaf(schema: &ModelSchema, field: usize, op: &str, v: Bson) -> Document {
    let mut cond = Document::new();
    cond.insert(op, v);
    let mut d = Document::new();
    d.insert(field_path(schema, field), cond);
    d
}

/// "The field is neither null nor missing" alongside `cond`.
fn and_not_null(schema: &ModelSchema, field: usize, cond: Document) -> Document {
    doc! { "$and": [cond, leaf(schema, field, "$ne", Bson::Null)] }
}

/// Lowers `node`, or (when `negated`) its SQL negation: the documents for which `node` is
/// *false* (not unknown).
fn lower(schema: &'static ModelSchema, node: &Node, negated: bool) -> Result<Document> {
    Ok(match node {
        Node::Compare { field, op, value: v } => compare(schema, *field, *op, v, negated)?,
        Node::IsNull { field, negated: not_null } => {
            leaf(schema, *field, if *not_null != negated { "$ne" } else { "$eq" }, Bson::Null)
        }
        Node::In { field, values, negated: not_in } => membership(schema, *field, values, *not_in != negated)?,
        Node::Between { field, low, high, negated: outside } => {
            if matches!(low, Value::Null) || matches!(high, Value::Null) {
                return Ok(nothing());
            }
            let (low, high) = (value(schema, *field, low)?, value(schema, *field, high)?);
            if *outside != negated {
                doc! { "$or": [leaf(schema, *field, "$lt", low), leaf(schema, *field, "$gt", high)] }
            } else {
                let mut d = Document::new();
                d.insert(field_path(schema, *field), doc! { "$gte": low, "$lte": high });
                d
            }
        }
        Node::Text { field, op, text, case_insensitive } => {
            let mut re = doc! { "$regex": regex(*op, text) };
            let options = match (*case_insensitive, *op == TextOp::Like) {
                (true, true) => "is",
                (true, false) => "i",
                (false, true) => "s",
                (false, false) => "",
            };
            if !options.is_empty() {
                re.insert("$options", options);
            }
            let mut d = Document::new();
            d.insert(field_path(schema, *field), re);
            if negated { and_not_null(schema, *field, doc! { "$nor": [d] }) } else { d }
        }
        Node::ArrayContains { field, value: v } => {
            let d = leaf(schema, *field, "$elemMatch", Bson::Document(doc! { "$eq": value(schema, *field, v)? }));
            if negated { and_not_null(schema, *field, doc! { "$nor": [d] }) } else { d }
        }
        Node::And(items) | Node::Or(items) => {
            // NOT (a AND b) = (NOT a) OR (NOT b), and the other way round.
            let conjunction = matches!(node, Node::And(_)) != negated;
            let parts = items.iter().map(|n| lower(schema, n, negated)).collect::<Result<Vec<_>>>()?;
            combine(parts, conjunction)
        }
        Node::Not(inner) => lower(schema, inner, !negated)?,
        Node::Calc { lhs, op, rhs } => crate::mongo::calc::compare(schema, lhs, *op, rhs, negated)?,
        Node::Aggregate { .. } => {
            return Err(Error::Unsupported {
                store: "mongodb",
                what: "a condition on an aggregate outside `having`".into(),
            });
        }
        Node::Related { relation, .. } => {
            return Err(Error::Unsupported {
                store: "mongodb",
                what: format!(
                    "filtering {} by its relation `{}` inside a hand-built `Pipeline` (use `Query::filter`, which \
                     resolves relation filters by key pre-queries, or `$lookup` stages)",
                    schema.name, schema.relations[*relation].name
                ),
            });
        }
        Node::InQuery { .. } | Node::Exists { .. } => {
            return Err(Error::Unsupported {
                store: "mongodb",
                what: format!(
                    "a subquery in a filter on {} inside a hand-built `Pipeline` (use `Query::filter`, which resolves \
                     subqueries by key pre-queries)",
                    schema.name
                ),
            });
        }
        Node::Invalid(e) => return Err(Error::Encode { model: schema.name, field: "?", source: e.clone() }),
    })
}

/// `$and` / `$or` of `parts`, without the empty forms MongoDB rejects.
fn combine(parts: Vec<Document>, conjunction: bool) -> Document {
    if conjunction {
        let mut parts: Vec<Document> = parts.into_iter().filter(|d| !d.is_empty()).collect();
        match parts.len() {
            0 => Document::new(),
            1 => parts.remove(0),
            _ => doc! { "$and": parts },
        }
    } else if parts.iter().any(Document::is_empty) {
        Document::new()
    } else {
        match parts.len() {
            0 => nothing(),
            _ => doc! { "$or": parts },
        }
    }
}

fn compare(schema: &'static ModelSchema, field: usize, op: CmpOp, v: &Value, negated: bool) -> Result<Document> {
    if matches!(v, Value::Null) {
        // `= NULL` / `<> NULL` mean IS [NOT] NULL; other comparisons with NULL are unknown.
        return Ok(match op {
            CmpOp::Eq => leaf(schema, field, if negated { "$ne" } else { "$eq" }, Bson::Null),
            CmpOp::Ne => leaf(schema, field, if negated { "$eq" } else { "$ne" }, Bson::Null),
            _ => nothing(),
        });
    }
    let op = if negated {
        match op {
            CmpOp::Eq => CmpOp::Ne,
            CmpOp::Ne => CmpOp::Eq,
            CmpOp::Lt => CmpOp::Ge,
            CmpOp::Le => CmpOp::Gt,
            CmpOp::Gt => CmpOp::Le,
            CmpOp::Ge => CmpOp::Lt,
        }
    } else {
        op
    };
    let b = value(schema, field, v)?;
    Ok(match op {
        CmpOp::Eq => leaf(schema, field, "$eq", b),
        // `$ne` alone would also select null / missing values.
        CmpOp::Ne => leaf(schema, field, "$nin", Bson::Array(vec![b, Bson::Null])),
        CmpOp::Lt => leaf(schema, field, "$lt", b),
        CmpOp::Le => leaf(schema, field, "$lte", b),
        CmpOp::Gt => leaf(schema, field, "$gt", b),
        CmpOp::Ge => leaf(schema, field, "$gte", b),
    })
}

/// `IN` / `NOT IN` with SQL's NULL rules: a NULL in the list never matches, and makes a
/// `NOT IN` match nothing; an empty `NOT IN` matches everything.
fn membership(schema: &'static ModelSchema, field: usize, values: &[Value], not_in: bool) -> Result<Document> {
    if values.is_empty() {
        return Ok(if not_in { Document::new() } else { nothing() });
    }
    let has_null = values.iter().any(|v| matches!(v, Value::Null));
    let mut list = Vec::with_capacity(values.len() + 1);
    for v in values.iter().filter(|v| !matches!(v, Value::Null)) {
        list.push(value(schema, field, v)?);
    }
    if not_in {
        if has_null {
            return Ok(nothing());
        }
        list.push(Bson::Null);
        return Ok(leaf(schema, field, "$nin", Bson::Array(list)));
    }
    if list.is_empty() {
        return Ok(nothing());
    }
    Ok(leaf(schema, field, "$in", Bson::Array(list)))
}

/// The anchored regular expression for a text match, with the user's text escaped. The end
/// anchor is `\z` (the very end of the string), not `$`, which in MongoDB's PCRE also matches
/// before a final newline: `ends_with("tail")` must not match `"tail\n"`. `^` without the
/// multiline option already anchors at the very start.
pub(crate) fn regex(op: TextOp, text: &str) -> String {
    match op {
        TextOp::StartsWith => format!("^{}", regex_escape(text)),
        TextOp::EndsWith => format!("{}\\z", regex_escape(text)),
        TextOp::Contains => regex_escape(text),
        TextOp::Like => {
            let mut out = String::from("^");
            let mut chars = text.chars();
            while let Some(c) = chars.next() {
                match c {
                    '%' => out.push_str(".*"),
                    '_' => out.push('.'),
                    '\\' => out.push_str(&regex_escape(&chars.next().unwrap_or('\\').to_string())),
                    c => out.push_str(&regex_escape(&c.to_string())),
                }
            }
            out.push_str("\\z");
            out
        }
    }
}

/// Escapes every regular-expression metacharacter with `\`.
pub(crate) fn regex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 4);
    for c in text.chars() {
        if "\\^$.|?*+()[]{}-#/".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The key an ordering term's NULL flag is computed into, when MongoDB's own NULL placement
/// (null and missing before every value ascending, after every value descending) is not the
/// one asked for.
pub(crate) fn null_key(i: usize) -> String {
    format!("__polystore_null{i}")
}

/// Whether term `t` asks for NULLs where MongoDB would not put them.
pub(crate) fn needs_null_key(schema: &ModelSchema, t: &OrderTerm) -> bool {
    schema.fields[t.field].ty.nullable
        && matches!((t.descending, t.nulls), (false, Some(Nulls::Last)) | (true, Some(Nulls::First)))
}

/// The sort document, and the `$addFields` stage computing the NULL flags it refers to
/// (`None` when MongoDB's placement is the one asked for, so a plain `find` can run).
pub(crate) fn sort(schema: &ModelSchema, order: &[OrderTerm]) -> (Document, Option<Document>) {
    sort_by(schema, order, &|f| field_path(schema, f).into_owned())
}

/// [`sort`] with the document path of each field given by `path_of` (after a `$group`, the
/// group keys live under `_id`).
pub(crate) fn sort_by(
    schema: &ModelSchema,
    order: &[OrderTerm],
    path_of: &dyn Fn(usize) -> String,
) -> (Document, Option<Document>) {
    let mut sort = Document::new();
    let mut flags = Document::new();
    for (i, t) in order.iter().enumerate() {
        let path = path_of(t.field);
        if needs_null_key(schema, t) {
            let key = null_key(i);
            let is_null = doc! { "$eq": [{ "$ifNull": [format!("${path}"), Bson::Null] }, Bson::Null] };
            flags.insert(&key, doc! { "$cond": [is_null, 1, 0] });
            // 1 for NULL: ascending puts NULLs last, descending first.
            sort.insert(key, if t.nulls == Some(Nulls::Last) { 1 } else { -1 });
        }
        if !sort.contains_key(&path) {
            sort.insert(path, if t.descending { -1 } else { 1 });
        }
    }
    (sort, if flags.is_empty() { None } else { Some(flags) })
}

/// A `u64` count as BSON (clamped to `i64`).
pub(crate) fn count_bson(n: u64) -> Bson {
    Bson::Int64(i64::try_from(n).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_text_is_escaped_and_anchored() {
        assert_eq!(regex(TextOp::StartsWith, "a.b*"), "^a\\.b\\*");
        assert_eq!(regex(TextOp::EndsWith, "$x"), "\\$x\\z");
        assert_eq!(regex(TextOp::Like, "_o%\\%"), "^.o.*%\\z");
        assert_eq!(regex(TextOp::Contains, "(a|b)"), "\\(a\\|b\\)");
    }
}
