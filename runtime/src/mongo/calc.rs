//! Typed expressions ([`CalcNode`]) as MongoDB aggregation expressions, with the results the
//! SQL stores give:
//!
//! - `$add`, `$subtract`, `$multiply` (Decimal128 stays Decimal128, exactly);
//! - integer `/` truncates toward zero, exactly: `(a - a mod b) / b` computed in Decimal128
//!   and converted back with `$toLong` (a `$divide` of integers would be a double);
//! - decimal `/` is truncated toward zero at 16 places, exactly, as on PostgreSQL and SQLite:
//!   `A = a * 10^16`, `(A - A mod b) / b * 10^-16`;
//! - dividing by zero gives null;
//! - negation is `0 - x` (so that a decimal zero keeps its sign and scale);
//! - a comparison with a null (or missing) operand is unknown: the document is not selected,
//!   negated or not.

use mongodb::bson::{Bson, Document, doc};

use crate::error::{Error, Result};
use crate::mongo::bson::{field_path, to_bson};
use crate::query::{AggFunc, ArithOp, CalcNode, CmpOp, DatePart, Node, TextFunc, TimeUnit};
use crate::schema::{ModelSchema, Scalar};
use crate::value::Value;

/// What an aggregate inside an expression evaluates to (its accumulators are added to the
/// `$group` being built).
pub(crate) type AggregateOf<'a> = &'a mut dyn FnMut(AggFunc, &CalcNode) -> Result<Bson>;

/// How a lowering resolves the leaves of an expression: where a field's value is, and what an
/// aggregate evaluates to (after a `$group`).
pub(crate) struct Ctx<'a> {
    /// The document path of a field.
    pub path_of: &'a dyn Fn(usize) -> String,
    /// The expression of an aggregate over an argument (`None` outside a grouped `select`).
    pub aggregate: Option<AggregateOf<'a>>,
    /// The expressions the rows are grouped by: such a (sub)expression is read from the
    /// group key `_id.x<k>`.
    pub groups: &'a [CalcNode],
}

impl<'a> Ctx<'a> {
    /// Fields at their stored paths, no aggregates.
    pub(crate) fn plain(path_of: &'a dyn Fn(usize) -> String) -> Self {
        Ctx { path_of, aggregate: None, groups: &[] }
    }
}

fn literal(schema: &ModelSchema, value: &Value) -> Result<Bson> {
    let b =
        to_bson(value.clone()).map_err(|source| Error::Encode { model: schema.name, field: "<expression>", source })?;
    Ok(doc! { "$literal": b }.into())
}

fn decimal(text: &str) -> Bson {
    to_bson(Value::Decimal(text.parse().unwrap_or_default())).unwrap_or(Bson::Null)
}

/// The expression computing `node`.
pub(crate) fn expr(schema: &ModelSchema, node: &CalcNode, ctx: &mut Ctx<'_>) -> Result<Bson> {
    if let Some(k) = ctx.groups.iter().position(|g| g == node) {
        return Ok(Bson::String(format!("$_id.x{k}")));
    }
    Ok(match node {
        CalcNode::Field(i) => doc! { "$ifNull": [format!("${}", (ctx.path_of)(*i)), Bson::Null] }.into(),
        CalcNode::Literal { value, .. } => literal(schema, value)?,
        CalcNode::Binary { op, lhs, rhs, ty } => {
            let (a, b) = (expr(schema, lhs, ctx)?, expr(schema, rhs, ctx)?);
            match op {
                ArithOp::Add => doc! { "$add": [a, b] }.into(),
                ArithOp::Sub => doc! { "$subtract": [a, b] }.into(),
                ArithOp::Mul => doc! { "$multiply": [a, b] }.into(),
                ArithOp::Div => divide(a, b, ty.scalar),
            }
        }
        CalcNode::Neg(inner) => doc! { "$subtract": [0, expr(schema, inner, ctx)?] }.into(),
        CalcNode::Coalesce { items, .. } => {
            let items = items.iter().map(|n| expr(schema, n, ctx)).collect::<Result<Vec<_>>>()?;
            doc! { "$ifNull": items }.into()
        }
        CalcNode::Aggregate { func, arg, .. } => match ctx.aggregate.as_mut() {
            Some(f) => f(*func, arg)?,
            None => {
                return Err(Error::Config(format!(
                    "{}: an aggregate in an expression belongs in a `select` (or `having` / an aggregate ordering)",
                    schema.name
                )));
            }
        },
        CalcNode::Case { branches, otherwise, .. } => {
            let mut out = match otherwise {
                Some(value) => expr(schema, value, ctx)?,
                None => Bson::Null,
            };
            for (cond, value) in branches.iter().rev() {
                let test = condition(schema, cond, false, ctx)?;
                out = doc! { "$cond": [test, expr(schema, value, ctx)?, out] }.into();
            }
            out
        }
        CalcNode::Text { func, arg, .. } => {
            let value = expr(schema, arg, ctx)?;
            match func {
                TextFunc::Lower => unless_null(value, |v| doc! { "$toLower": v }.into()),
                TextFunc::Upper => unless_null(value, |v| doc! { "$toUpper": v }.into()),
                TextFunc::Length => unless_null(value, |v| doc! { "$toLong": { "$strLenCP": v } }.into()),
            }
        }
        CalcNode::Concat { items, .. } => {
            let items = items.iter().map(|n| expr(schema, n, ctx)).collect::<Result<Vec<_>>>()?;
            doc! { "$concat": items }.into()
        }
        CalcNode::Trunc { unit, arg } => {
            let value = expr(schema, arg, ctx)?;
            let unit = match (arg.ty(schema).scalar, unit) {
                (Scalar::Date, TimeUnit::Hour | TimeUnit::Minute) => TimeUnit::Day,
                (_, unit) => *unit,
            };
            unless_null(value, |v| doc! { "$dateTrunc": { "date": v, "unit": unit.name() } }.into())
        }
        CalcNode::Extract { part, arg, .. } => {
            let value = expr(schema, arg, ctx)?;
            let op = match part {
                DatePart::Year => "$year",
                DatePart::Month => "$month",
                DatePart::Day => "$dayOfMonth",
                DatePart::Hour => "$hour",
                DatePart::Minute => "$minute",
                DatePart::DayOfWeek => "$isoDayOfWeek",
            };
            unless_null(value, |v| {
                let mut d = Document::new();
                d.insert(op, v);
                d.into()
            })
        }
        CalcNode::Joined { .. } => {
            return Err(Error::Unsupported {
                store: "mongodb",
                what: format!(
                    "a related model's column in an expression over {} (in a filter, `having` or arithmetic); select, \
                     group or order on the column itself, or filter with a relation filter such as \
                     `Track::ALBUM.matches(Album::TITLE.eq(..))`",
                    schema.name
                ),
            });
        }
        CalcNode::Subquery(query) => {
            return Err(Error::Unsupported {
                store: "mongodb",
                what: format!(
                    "a scalar subquery over {} in an ordering, a grouping or a hand-built `Pipeline` (filter, \
                     `having` and `select` resolve it: compute it first with `.select(..).one(..)` and use the value)",
                    query.schema.name
                ),
            });
        }
        CalcNode::Invalid(e) => {
            return Err(Error::Encode { model: schema.name, field: "<expression>", source: e.clone() });
        }
    })
}

/// `f(value)`, or null when `value` is null: `$toLower` of null is `""` and `$strLenCP` of
/// null an error, where SQL gives NULL.
fn unless_null(value: Bson, f: impl FnOnce(Bson) -> Bson) -> Bson {
    let v = "$$polystore_v";
    let body = doc! { "$cond": [{ "$eq": [v, Bson::Null] }, Bson::Null, f(Bson::String(v.to_owned()))] };
    doc! { "$let": { "vars": { "polystore_v": value }, "in": body } }.into()
}

/// The boolean expression that is true exactly when SQL's `WHEN` would take the branch of
/// `node` (or, when `negated`, of `NOT node`): a comparison with a null operand is unknown,
/// and neither it nor its negation holds.
pub(crate) fn condition(schema: &ModelSchema, node: &Node, negated: bool, ctx: &mut Ctx<'_>) -> Result<Bson> {
    let field = |i: usize, ctx: &mut Ctx<'_>| expr(schema, &CalcNode::Field(i), ctx);
    let lit = |value: &Value| literal(schema, value);
    let not_null = |v: &Bson| -> Bson { doc! { "$gt": [v.clone(), Bson::Null] }.into() };
    // `test` holds (or, negated, fails) for a non-null `v`.
    let guarded = |v: Bson, test: Bson| -> Bson {
        let test = if negated { doc! { "$not": [test] }.into() } else { test };
        doc! { "$and": [not_null(&v), test] }.into()
    };
    Ok(match node {
        Node::Compare { field: f, op, value: Value::Null } if matches!(op, CmpOp::Eq | CmpOp::Ne) => {
            let is_null = (*op == CmpOp::Eq) != negated;
            doc! { if is_null { "$eq" } else { "$ne" }: [field(*f, ctx)?, Bson::Null] }.into()
        }
        Node::Compare { field: f, op, value } => {
            let lhs = CalcNode::Field(*f);
            let rhs = CalcNode::Literal { value: value.clone(), ty: schema.fields[*f].ty };
            compare_expr(schema, &lhs, *op, &rhs, negated, ctx)?
        }
        Node::IsNull { field: f, negated: not } => {
            doc! { if *not != negated { "$ne" } else { "$eq" }: [field(*f, ctx)?, Bson::Null] }.into()
        }
        Node::In { values, negated: not, .. } if values.is_empty() => Bson::Boolean(*not != negated),
        Node::In { field: f, values, negated: not } => {
            let v = field(*f, ctx)?;
            let list = values.iter().map(lit).collect::<Result<Vec<_>>>()?;
            let test: Bson = doc! { "$in": [v.clone(), list] }.into();
            let test = if *not { doc! { "$not": [test] }.into() } else { test };
            guarded(v, test)
        }
        Node::Between { field: f, low, high, negated: not } => {
            let v = field(*f, ctx)?;
            let test: Bson =
                doc! { "$and": [{ "$gte": [v.clone(), lit(low)?] }, { "$lte": [v.clone(), lit(high)?] }] }.into();
            let test = if *not { doc! { "$not": [test] }.into() } else { test };
            guarded(v, test)
        }
        Node::Calc { lhs, op, rhs } => compare_expr(schema, lhs, *op, rhs, negated, ctx)?,
        Node::And(items) | Node::Or(items) => {
            // NOT (a AND b) holds when NOT a or NOT b holds (and dually for OR).
            let any = matches!(node, Node::Or(_)) != negated;
            let parts = items.iter().map(|n| condition(schema, n, negated, ctx)).collect::<Result<Vec<_>>>()?;
            if any { doc! { "$or": parts }.into() } else { doc! { "$and": parts }.into() }
        }
        Node::Not(inner) => condition(schema, inner, !negated, ctx)?,
        Node::Invalid(e) => return Err(Error::Encode { model: schema.name, field: "?", source: e.clone() }),
        _ => {
            return Err(Error::Unsupported {
                store: "mongodb",
                what: "text, array, aggregate and relation conditions in `case_when` (use comparisons, `is_null`, \
                       `is_in` or `between` there)"
                    .into(),
            });
        }
    })
}

/// `a / b` of result type `scalar`, null when `b` is zero.
fn divide(a: Bson, b: Bson, scalar: Scalar) -> Bson {
    let (x, y) = ("$$polystore_a", "$$polystore_b");
    let quotient: Bson = match scalar {
        Scalar::I16 | Scalar::I32 | Scalar::I64 => {
            let exact = doc! { "$divide": [
                { "$toDecimal": { "$subtract": [x, { "$mod": [x, y] }] } },
                { "$toDecimal": y },
            ] };
            let long = doc! { "$toLong": exact };
            if scalar == Scalar::I64 { long.into() } else { doc! { "$toInt": long }.into() }
        }
        Scalar::Decimal => {
            let scaled = doc! { "$multiply": [x, decimal("10000000000000000")] };
            let q = doc! { "$divide": [{ "$subtract": [&scaled, { "$mod": [&scaled, y] }] }, y] };
            doc! { "$multiply": [{ "$trunc": [q, 0] }, decimal("0.0000000000000001")] }.into()
        }
        _ => doc! { "$divide": [x, y] }.into(),
    };
    let body = doc! { "$cond": [{ "$eq": [y, 0] }, Bson::Null, quotient] };
    doc! { "$let": { "vars": { "polystore_a": a, "polystore_b": b }, "in": body } }.into()
}

fn op_name(op: CmpOp) -> &'static str {
    match op {
        CmpOp::Eq => "$eq",
        CmpOp::Ne => "$ne",
        CmpOp::Lt => "$lt",
        CmpOp::Le => "$lte",
        CmpOp::Gt => "$gt",
        CmpOp::Ge => "$gte",
    }
}

/// The boolean expression of `lhs op rhs` (or, when `negated`, of its SQL negation), false
/// when either side is null.
pub(crate) fn compare_expr(
    schema: &ModelSchema,
    lhs: &CalcNode,
    op: CmpOp,
    rhs: &CalcNode,
    negated: bool,
    ctx: &mut Ctx<'_>,
) -> Result<Bson> {
    let (a, b) = (expr(schema, lhs, ctx)?, expr(schema, rhs, ctx)?);
    let mut cmp = Document::new();
    cmp.insert(op_name(op), vec![a.clone(), b.clone()]);
    let test: Bson = if negated { doc! { "$not": [cmp] }.into() } else { cmp.into() };
    // Null and missing sort below every value, so `x > null` means "x is a value".
    let mut parts = Vec::new();
    for (side, node) in [(a, lhs), (b, rhs)] {
        if !matches!(node, CalcNode::Literal { .. }) {
            parts.push(Bson::Document(doc! { "$gt": [side, Bson::Null] }));
        }
    }
    parts.push(test);
    Ok(doc! { "$and": parts }.into())
}

/// The filter document of a comparison between expressions.
pub(crate) fn compare(
    schema: &'static ModelSchema,
    lhs: &CalcNode,
    op: CmpOp,
    rhs: &CalcNode,
    negated: bool,
) -> Result<Document> {
    let path_of = |f: usize| field_path(schema, f).into_owned();
    let e = compare_expr(schema, lhs, op, rhs, negated, &mut Ctx::plain(&path_of))?;
    Ok(doc! { "$expr": e })
}

/// The key an expression ordering term is computed into.
pub(crate) fn sort_key(k: usize) -> String {
    format!("__polystore_calc{k}")
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;
    use mongodb::bson::{Bson, doc};

    use super::{Ctx, condition, expr};
    use crate::query::{CalcNode, CmpOp, DatePart, Node, TextFunc, TimeUnit};
    use crate::schema::{FieldSchema, ModelSchema};
    use crate::value::{FieldType, Value};

    static DOC: ModelSchema = ModelSchema {
        name: "Doc",
        table: "docs",
        fields: &[
            FieldSchema::plain("n", <Option<i32> as FieldType>::COLUMN),
            FieldSchema::plain("name", <String as FieldType>::COLUMN),
            FieldSchema::plain("day", <NaiveDate as FieldType>::COLUMN),
        ],
        primary_key: &[0],
        indexes: &[],
        ..ModelSchema::EMPTY
    };

    fn lower(node: &CalcNode) -> Bson {
        let path_of = |i: usize| DOC.fields[i].name.to_owned();
        expr(&DOC, node, &mut Ctx::plain(&path_of)).unwrap()
    }

    fn field(path: &str) -> Bson {
        doc! { "$ifNull": [path, Bson::Null] }.into()
    }

    fn guarded(value: Bson, op: mongodb::bson::Document) -> Bson {
        let body = doc! { "$cond": [{ "$eq": ["$$polystore_v", Bson::Null] }, Bson::Null, op] };
        doc! { "$let": { "vars": { "polystore_v": value }, "in": body } }.into()
    }

    #[test]
    fn text_and_date_functions_give_null_for_null() {
        let name = || Box::new(CalcNode::Field(1));
        let lowered = lower(&CalcNode::Text { func: TextFunc::Lower, arg: name(), ty: String::COLUMN });
        assert_eq!(lowered, guarded(field("$name"), doc! { "$toLower": "$$polystore_v" }));
        let length = lower(&CalcNode::Text { func: TextFunc::Length, arg: name(), ty: i64::COLUMN });
        assert_eq!(length, guarded(field("$name"), doc! { "$toLong": { "$strLenCP": "$$polystore_v" } }));
        // A date has no hours: truncating it to the hour is truncating it to the day.
        let trunc = lower(&CalcNode::Trunc { unit: TimeUnit::Hour, arg: Box::new(CalcNode::Field(2)) });
        assert_eq!(trunc, guarded(field("$day"), doc! { "$dateTrunc": { "date": "$$polystore_v", "unit": "day" } }));
        let dow =
            lower(&CalcNode::Extract { part: DatePart::DayOfWeek, arg: Box::new(CalcNode::Field(2)), ty: i32::COLUMN });
        assert_eq!(dow, guarded(field("$day"), doc! { "$isoDayOfWeek": "$$polystore_v" }));
    }

    #[test]
    fn case_conditions_keep_sql_three_valued_logic() {
        let path_of = |i: usize| DOC.fields[i].name.to_owned();
        let gt = Node::Compare { field: 0, op: CmpOp::Gt, value: Value::I32(3) };
        let in_list = Node::In { field: 0, values: vec![Value::I32(1)], negated: false };
        // NOT (n > 3 AND n IN [1]): NOT a OR NOT b, each false for a null n.
        let node = Node::Not(Box::new(Node::And(vec![gt, in_list])));
        let cond = condition(&DOC, &node, false, &mut Ctx::plain(&path_of)).unwrap();
        let n = field("$n");
        let lit = |v: i32| Bson::from(doc! { "$literal": v });
        assert_eq!(
            cond,
            Bson::from(doc! { "$or": [
                { "$and": [{ "$gt": [n.clone(), Bson::Null] }, { "$not": [{ "$gt": [n.clone(), lit(3)] }] }] },
                { "$and": [{ "$gt": [n.clone(), Bson::Null] }, { "$not": [{ "$in": [n.clone(), [lit(1)]] }] }] },
            ] })
        );
        let text =
            Node::Text { field: 1, op: crate::query::TextOp::Contains, text: "a".into(), case_insensitive: false };
        let err = condition(&DOC, &text, false, &mut Ctx::plain(&path_of)).unwrap_err();
        assert!(matches!(err, crate::error::Error::Unsupported { store: "mongodb", .. }), "{err:?}");
    }
}
