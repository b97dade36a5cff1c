//! Lowers a [`Query`] to SQL: SELECT (rows, projections, aggregates), COUNT, EXISTS, and the
//! bulk UPDATE / DELETE that share the query's filter. The same query shape always renders the
//! same text; every value is a parameter and every identifier is quoted.

use crate::error::Error;
use crate::query::{
    AggFunc, Assign, CalcNode, Clauses, CmpOp, Node, OrderTerm, Query, SelectItem, SubColumn, Subquery, TextOp,
};
use crate::schema::{ColumnType, ModelSchema, Scalar};
use crate::sql::calc::{write_calc, write_compare};
use crate::sql::order::{full_order, order_by, selected};
use crate::sql::texts::KeptTexts;
use crate::sql::{Dialect, SqlWriter, Statement};
use crate::value::Value;

pub(crate) mod join;
pub(crate) mod tree;
use join::Joins;

/// Lists longer than this are *long* on PostgreSQL: they are matched against a set PostgreSQL
/// estimates at 1 000 keys instead of 10 (see `membership`).
pub(crate) const LONG_LIST: usize = 256;

/// Selects the rows of a query: every column, in schema order (decoders read by position).
pub fn select<M>(d: &dyn Dialect, schema: &'static ModelSchema, query: &Query<M>) -> Result<Statement, Error> {
    select_of(d, schema, &query.clauses())
}

/// [`select`] on the query's clauses: compiled once, whatever the model.
fn select_of(d: &dyn Dialect, schema: &'static ModelSchema, query: &Clauses<'_>) -> Result<Statement, Error> {
    let head = select_head(d, schema);
    // Room for a short condition and ordering after the head.
    let mut w = SqlWriter::with_capacity(d, head.len() + 128);
    with_clause(&mut w, schema, query, &[])?;
    w.push(&head);
    no_aggregate_order(schema, query)?;
    where_clause(&mut w, schema, query.where_node(schema).as_deref())?;
    group_and_having(&mut w, schema, query, &[], &Joins::default())?;
    full_order(&mut w, schema, query, &[], &Joins::default())?;
    window(&mut w, query.limit, query.offset);
    Ok(w.finish())
}

/// `SELECT "a", "b", … FROM "t"`: every column of `schema` in order, and its table, rendered
/// once per model and dialect (see `sql::texts`; quoting each column name on every statement
/// was about a twentieth of a one-row read's client-side instructions).
fn select_head(d: &dyn Dialect, schema: &'static ModelSchema) -> std::sync::Arc<str> {
    static HEADS: KeptTexts<()> = KeptTexts::new(usize::MAX, usize::MAX);
    HEADS.get(d, schema, (), || {
        let mut w = SqlWriter::new(d);
        crate::sql::build::select_columns(&mut w, schema);
        w.finish().sql
    })
}

/// Ordering on aggregates needs grouped rows: only `select` has them.
fn no_aggregate_order(schema: &ModelSchema, query: &Clauses<'_>) -> Result<(), Error> {
    if query.agg_order.is_empty() && query.join_order.is_empty() && query.group_join.is_empty() {
        return Ok(());
    }
    Err(Error::Config(format!(
        "{}: ordering by an aggregate applies to `select(..)` queries (with `group_by`), not to reading or paging rows",
        schema.name
    )))
}

/// Pages are keyed by field values: an ordering on an expression cannot be resumed.
pub(crate) fn no_expression_order(schema: &ModelSchema, query: &Clauses<'_>) -> Result<(), Error> {
    if query.calc_order.is_empty() {
        return Ok(());
    }
    Err(Error::Config(format!(
        "{}: paging resumes after the last row's field values, so it cannot order by an expression \
         (order by fields, or read the rows with `all` / `limit` / `offset`)",
        schema.name
    )))
}

/// Selects a projection of a query: the given fields and aggregates, in order, with the
/// query's grouping and HAVING condition.
///
/// Columns reached through relations (`Track::ALBUM.then(Album::TITLE)`) come from one
/// `LEFT JOIN` per distinct relation path (see [`join`]); relation aggregates
/// (`Playlist::TRACKS.count()`) are correlated subqueries.
pub fn select_items<M>(
    d: &dyn Dialect,
    schema: &'static ModelSchema,
    query: &Query<M>,
    items: &[SelectItem],
) -> Result<Statement, Error> {
    let joins = Joins::plan(schema, query, items)?;
    let query = &query.clauses();
    let mut w = SqlWriter::new(d);
    with_clause(&mut w, schema, query, items)?;
    w.push("SELECT ");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            w.push(", ");
        }
        select_item(&mut w, schema, &joins, item)?;
    }
    w.push(" FROM ").table(schema.table);
    joins.write_from(&mut w, schema)?;
    where_clause(&mut w, schema, query.where_node(schema).as_deref())?;
    group_and_having(&mut w, schema, query, items, &joins)?;
    full_order(&mut w, schema, query, items, &joins)?;
    window(&mut w, query.limit, query.offset);
    Ok(w.finish())
}

/// Selects the rows of a query with an extra condition (a keyset) and another ordering and
/// limit, used for pagination.
pub fn select_page<M>(
    d: &dyn Dialect,
    schema: &ModelSchema,
    query: &Query<M>,
    keyset: Option<Node>,
    order: &[OrderTerm],
    limit: u64,
) -> Result<Statement, Error> {
    select_page_of(d, schema, &query.clauses(), keyset, order, limit)
}

/// [`select_page`] on the query's clauses: compiled once, whatever the model.
fn select_page_of(
    d: &dyn Dialect,
    schema: &ModelSchema,
    query: &Clauses<'_>,
    keyset: Option<Node>,
    order: &[OrderTerm],
    limit: u64,
) -> Result<Statement, Error> {
    let filter = match (query.where_node(schema).map(std::borrow::Cow::into_owned), keyset) {
        (Some(f), Some(k)) => Some(Node::And(vec![f, k])),
        (f, k) => f.or(k),
    };
    let mut w = SqlWriter::new(d);
    with_clause(&mut w, schema, query, &[])?;
    w.push("SELECT ");
    w.list(schema.fields, |w, f| {
        w.ident(f.column);
    });
    w.push(" FROM ").table(schema.table);
    no_aggregate_order(schema, query)?;
    no_expression_order(schema, query)?;
    tail(&mut w, schema, query, filter.as_ref(), order, Some(limit))?;
    Ok(w.finish())
}

/// Counts the rows of a query (ignoring its order and window).
pub fn count<M>(d: &dyn Dialect, schema: &ModelSchema, query: &Query<M>) -> Result<Statement, Error> {
    count_of(d, schema, &query.clauses())
}

/// [`count`] on the query's clauses: compiled once, whatever the model.
fn count_of(d: &dyn Dialect, schema: &ModelSchema, query: &Clauses<'_>) -> Result<Statement, Error> {
    let mut w = SqlWriter::new(d);
    with_clause(&mut w, schema, query, &[])?;
    w.push("SELECT COUNT(*) FROM ").table(schema.table);
    where_clause(&mut w, schema, query.where_node(schema).as_deref())?;
    Ok(w.finish())
}

/// `SELECT 1 ... LIMIT 1`: whether any row matches.
pub fn exists<M>(d: &dyn Dialect, schema: &ModelSchema, query: &Query<M>) -> Result<Statement, Error> {
    exists_of(d, schema, &query.clauses())
}

/// [`exists`] on the query's clauses: compiled once, whatever the model.
fn exists_of(d: &dyn Dialect, schema: &ModelSchema, query: &Clauses<'_>) -> Result<Statement, Error> {
    let mut w = SqlWriter::new(d);
    with_clause(&mut w, schema, query, &[])?;
    w.push("SELECT 1 FROM ").table(schema.table);
    where_clause(&mut w, schema, query.where_node(schema).as_deref())?;
    w.push(" LIMIT 1");
    Ok(w.finish())
}

/// `UPDATE ... SET <assignments> WHERE <filter>`; `stamps` are the automatic `updated_at`
/// values to write as well (fields already assigned are skipped).
pub fn update_many<M>(
    d: &dyn Dialect,
    schema: &ModelSchema,
    query: &Query<M>,
    assignments: &[Assign],
    stamps: Vec<(usize, Value)>,
) -> Result<Statement, Error> {
    update_many_of(d, schema, &query.clauses(), assignments, stamps)
}

/// [`update_many`] on the query's clauses: compiled once, whatever the model.
fn update_many_of(
    d: &dyn Dialect,
    schema: &ModelSchema,
    query: &Clauses<'_>,
    assignments: &[Assign],
    stamps: Vec<(usize, Value)>,
) -> Result<Statement, Error> {
    if assignments.is_empty() {
        return Err(Error::Config(format!("{}: update_many needs at least one assignment", schema.name)));
    }
    let mut w = SqlWriter::new(d);
    with_clause(&mut w, schema, query, &[])?;
    w.push("UPDATE ").table(schema.table).push(" SET ");
    for (i, a) in assignments.iter().enumerate() {
        if i > 0 {
            w.push(", ");
        }
        let f = &schema.fields[a.field()];
        w.ident(f.column).push(" = ");
        match a {
            Assign::Set { value, .. } => {
                w.param(value.clone(), f.ty);
            }
            Assign::Add { value, .. } | Assign::Sub { value, .. } => {
                let add = matches!(a, Assign::Add { .. });
                if w.dialect().exact_decimal(&f.ty) {
                    w.push(if add { "polystore_dec_add(" } else { "polystore_dec_sub(" });
                    w.ident(f.column).push(", ").param(value.clone(), f.ty).push(")");
                } else {
                    w.ident(f.column).push(if add { " + " } else { " - " }).param(value.clone(), f.ty);
                }
            }
            Assign::SetNull { .. } => {
                w.push("NULL");
            }
            Assign::Push { value, .. } => push(&mut w, f.column, f.ty, value.clone()),
            Assign::Calc { value, .. } => write_calc(&mut w, schema, value)?,
        }
    }
    for (field, value) in stamps {
        if assignments.iter().any(|a| a.field() == field) {
            continue;
        }
        let f = &schema.fields[field];
        w.push(", ").ident(f.column).push(" = ").param(value, f.ty);
    }
    where_clause(&mut w, schema, query.where_node(schema).as_deref())?;
    Ok(w.finish())
}

/// `DELETE FROM ... WHERE <filter>` (every row without a filter).
pub fn delete_many<M>(d: &dyn Dialect, schema: &ModelSchema, query: &Query<M>) -> Result<Statement, Error> {
    delete_many_of(d, schema, &query.clauses())
}

/// [`delete_many`] on the query's clauses: compiled once, whatever the model.
fn delete_many_of(d: &dyn Dialect, schema: &ModelSchema, query: &Clauses<'_>) -> Result<Statement, Error> {
    let mut w = SqlWriter::new(d);
    with_clause(&mut w, schema, query, &[])?;
    w.push("DELETE FROM ").table(schema.table);
    where_clause(&mut w, schema, query.where_node(schema).as_deref())?;
    Ok(w.finish())
}

/// WHERE, GROUP BY, HAVING, ORDER BY, LIMIT and OFFSET.
fn tail(
    w: &mut SqlWriter<'_>,
    schema: &ModelSchema,
    query: &Clauses<'_>,
    filter: Option<&Node>,
    order: &[OrderTerm],
    limit: Option<u64>,
) -> Result<(), Error> {
    where_clause(w, schema, filter)?;
    group_and_having(w, schema, query, &[], &Joins::default())?;
    order_by(w, schema, order);
    window(w, limit, query.offset);
    Ok(())
}

/// GROUP BY and HAVING.
fn group_and_having(
    w: &mut SqlWriter<'_>,
    schema: &ModelSchema,
    query: &Clauses<'_>,
    items: &[SelectItem],
    joins: &Joins,
) -> Result<(), Error> {
    if !query.group_by.is_empty() || !query.group_calc.is_empty() || !query.group_join.is_empty() {
        w.push(" GROUP BY ");
        w.list(query.group_by, |w, &i| {
            w.ident(schema.fields[i].column);
        });
        for (k, node) in query.group_calc.iter().enumerate() {
            w.push(if k == 0 && query.group_by.is_empty() { "" } else { ", " });
            // A selected key is named by its position: PostgreSQL does not match an expression
            // with parameters against the same expression in the SELECT list.
            match selected(w, items, node) {
                Some(i) => {
                    w.push(&(i + 1).to_string());
                }
                None => write_calc(w, schema, node)?,
            }
        }
        for (k, col) in query.group_join.iter().enumerate() {
            w.push(if k == 0 && query.group_by.is_empty() && query.group_calc.is_empty() { "" } else { ", " });
            joins.column(w, col)?;
        }
    }
    if let Some(having) = &query.having {
        w.push(" HAVING ");
        write_node(w, schema, having)?;
    }
    Ok(())
}

fn window(w: &mut SqlWriter<'_>, limit: Option<u64>, offset: Option<u64>) {
    let int = ColumnType::scalar(Scalar::I64);
    match (limit, offset) {
        (Some(limit), offset) => {
            w.push(" LIMIT ").param(Value::I64(clamp(limit)), int);
            if let Some(offset) = offset {
                w.push(" OFFSET ").param(Value::I64(clamp(offset)), int);
            }
        }
        (None, Some(offset)) => {
            // SQLite needs a LIMIT before OFFSET; -1 means "no limit" there.
            if w.dialect().name() == "sqlite" {
                w.push(" LIMIT -1");
            }
            w.push(" OFFSET ").param(Value::I64(clamp(offset)), int);
        }
        (None, None) => {}
    }
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn select_item(
    w: &mut SqlWriter<'_>,
    schema: &'static ModelSchema,
    joins: &Joins,
    item: &SelectItem,
) -> Result<(), Error> {
    match item {
        SelectItem::Field(i) => {
            w.ident(schema.fields[*i].column);
        }
        SelectItem::Agg { func, field } => aggregate(w, schema, *func, *field),
        SelectItem::Calc(node) => write_calc(w, schema, node)?,
        SelectItem::Joined(col) => joins.column(w, col)?,
        SelectItem::Related(agg) => join::related_aggregate(w, schema, agg)?,
    }
    Ok(())
}

/// Writes an aggregate. Integer sums are cast to BIGINT and float sums and averages to DOUBLE
/// PRECISION, so both dialects return the documented type; decimal sums and averages stay
/// exact (`numeric` on PostgreSQL, `polystore_dec_sum` / `_avg` on SQLite), and `MIN` / `MAX`
/// of SQLite decimals use the decimal collation.
pub(crate) fn aggregate(w: &mut SqlWriter<'_>, schema: &ModelSchema, func: AggFunc, field: Option<usize>) {
    aggregate_in(w, schema, None, func, field);
}

/// [`aggregate`] over the column of the table aliased `qualifier` (when given).
pub(crate) fn aggregate_in(
    w: &mut SqlWriter<'_>,
    schema: &ModelSchema,
    qualifier: Option<&str>,
    func: AggFunc,
    field: Option<usize>,
) {
    let ty = field.map(|i| schema.fields[i].ty);
    let col = |w: &mut SqlWriter<'_>| match field {
        Some(i) => {
            if let Some(q) = qualifier {
                w.ident(q).push(".");
            }
            w.ident(schema.fields[i].column);
        }
        None => {
            w.push("*");
        }
    };
    let decimal = ty.is_some_and(|t| t.scalar == Scalar::Decimal);
    let exact = ty.is_some_and(|t| w.dialect().exact_decimal(&t));
    match func {
        AggFunc::Count => {
            w.push("COUNT(");
            col(w);
            w.push(")");
        }
        AggFunc::CountDistinct => {
            w.push("COUNT(DISTINCT ");
            col(w);
            w.push(")");
        }
        AggFunc::Sum | AggFunc::Avg if exact => {
            w.push(if func == AggFunc::Sum { "polystore_dec_sum(" } else { "polystore_dec_avg(" });
            col(w);
            w.push(")");
        }
        AggFunc::Sum | AggFunc::Avg if decimal => {
            w.push(if func == AggFunc::Sum { "SUM(" } else { "AVG(" });
            col(w);
            w.push(")");
        }
        AggFunc::Sum => {
            let float = ty.is_some_and(|t| matches!(t.scalar, Scalar::F32 | Scalar::F64));
            w.push("CAST(SUM(");
            col(w);
            w.push(if float { ") AS DOUBLE PRECISION)" } else { ") AS BIGINT)" });
        }
        AggFunc::Avg => {
            w.push("CAST(AVG(");
            col(w);
            w.push(") AS DOUBLE PRECISION)");
        }
        AggFunc::Min | AggFunc::Max => {
            w.push(if func == AggFunc::Min { "MIN(" } else { "MAX(" });
            col(w);
            if let Some(ty) = ty {
                w.collate(ty);
            }
            w.push(")");
        }
    }
}

fn where_clause(w: &mut SqlWriter<'_>, schema: &ModelSchema, filter: Option<&Node>) -> Result<(), Error> {
    if let Some(node) = filter {
        w.push(" WHERE ");
        write_node(w, schema, node)?;
    }
    Ok(())
}

/// Writes one expression node; every value becomes a parameter typed by its field.
pub fn write_node(w: &mut SqlWriter<'_>, schema: &ModelSchema, node: &Node) -> Result<(), Error> {
    match node {
        Node::Compare { field, op, value } => {
            let f = &schema.fields[*field];
            match (value, op) {
                (Value::Null, CmpOp::Eq) => {
                    w.ident(f.column).push(" IS NULL");
                }
                (Value::Null, CmpOp::Ne) => {
                    w.ident(f.column).push(" IS NOT NULL");
                }
                _ => {
                    w.operand(f.column, f.ty).push(" ").push(op.sql()).push(" ").operand_param(value.clone(), f.ty);
                }
            }
        }
        Node::IsNull { field, negated } => {
            w.ident(schema.fields[*field].column).push(if *negated { " IS NOT NULL" } else { " IS NULL" });
        }
        Node::In { field, values, negated } => membership(w, schema, *field, values, *negated),
        Node::Between { field, low, high, negated } => {
            let f = &schema.fields[*field];
            w.operand(f.column, f.ty).push(if *negated { " NOT BETWEEN " } else { " BETWEEN " });
            w.operand_param(low.clone(), f.ty).push(" AND ").operand_param(high.clone(), f.ty);
        }
        Node::Text { field, op, text, case_insensitive } => text_match(w, schema, *field, *op, text, *case_insensitive),
        Node::ArrayContains { field, value } => array_contains(w, schema, *field, value)?,
        Node::Aggregate { func, field, op, value, ty } => {
            aggregate(w, schema, *func, *field);
            w.collate(*ty).push(" ").push(op.sql()).push(" ").param(value.clone(), *ty);
        }
        Node::And(items) | Node::Or(items) if items.is_empty() => {
            w.push(if matches!(node, Node::And(_)) { "1 = 1" } else { "1 = 0" });
        }
        Node::And(items) | Node::Or(items) => {
            let sep = if matches!(node, Node::And(_)) { " AND " } else { " OR " };
            w.push("(");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    w.push(sep);
                }
                write_node(w, schema, item)?;
            }
            w.push(")");
        }
        Node::Not(inner) => {
            w.push("NOT (");
            write_node(w, schema, inner)?;
            w.push(")");
        }
        Node::Related { relation, node } => related(w, schema, *relation, node.as_deref())?,
        Node::InQuery { field, query, negated } => in_subquery(w, schema, *field, query, *negated)?,
        Node::Exists { outer, query } => exists_subquery(w, schema, *outer, query)?,
        Node::Calc { lhs, op, rhs } => write_compare(w, schema, lhs, *op, rhs)?,
        Node::Invalid(e) => {
            return Err(Error::Encode { model: schema.name, field: "?", source: e.clone() });
        }
    }
    Ok(())
}

/// `IN (...)` with one array parameter, so the text does not depend on the list's length
/// (no parameter limit): `IN (SELECT "value" FROM json_each(?1))` on SQLite. On PostgreSQL:
///
/// - on a column the schema knows to be indexed (the leading column of the primary key or of
///   a declared index, or a `belongs_to` key, which `create_all` indexes): `= ANY($1)`, an
///   index scan whatever the plan;
/// - otherwise a set, so that no plan compares every row with every key: up to [`LONG_LIST`]
///   values `IN (SELECT unnest($1))` (estimated at 10 keys in a generic plan: an index nested
///   loop if an undeclared index exists, else a hash semi-join), longer lists
///   `IN (SELECT ($1)[i] FROM generate_series(1, cardinality($1)) AS i)` (estimated at 1 000
///   keys: a hash join unless an index lookup per key is cheaper).
///
/// Why: after five executions a prepared statement may switch to a generic plan, whose cost
/// assumes a short array; on a column without an index, `= ANY($1)` then compares every row
/// with every element (a parameter array is never hashed) — 4–14× slower than a custom plan
/// at thousands of keys. Arrays stored as JSON get one placeholder per value. See
/// docs/performance.md, "The generic-plan cliff".
fn membership(w: &mut SqlWriter<'_>, schema: &ModelSchema, field: usize, values: &[Value], negated: bool) {
    let f = &schema.fields[field];
    if values.is_empty() {
        w.push(if negated { "1 = 1" } else { "1 = 0" });
        return;
    }
    let array = Value::Array(values.to_vec());
    if !f.ty.array && f.ty.scalar != Scalar::Json {
        let ty = ColumnType { array: true, nullable: false, ..f.ty };
        if w.dialect().name() == "sqlite" {
            // Decimals are JSON strings here, compared through the column's decimal collation.
            w.operand(f.column, f.ty).push(if negated { " NOT IN" } else { " IN" });
            w.push(" (SELECT \"value\" FROM json_each(").param(array, ty).push("))");
        } else if indexed(schema, field) {
            w.push(if negated { "NOT (" } else { "" }).ident(f.column).push(" = ANY(").param(array, ty).push(")");
            w.push(if negated { ")" } else { "" });
        } else {
            w.ident(f.column).push(if negated { " NOT IN" } else { " IN" });
            if values.len() > LONG_LIST {
                w.push(" (SELECT (").param(array, ty).push(")[i] FROM generate_series(1, cardinality(");
                let n = w.param_count();
                w.push(&format!("${n}")).push(")) AS i)");
            } else {
                w.push(" (SELECT unnest(").param(array, ty).push("))");
            }
        }
        return;
    }
    w.ident(f.column).push(if negated { " NOT IN (" } else { " IN (" });
    w.list(values, |w, v| {
        w.param(v.clone(), f.ty);
    });
    w.push(")");
}

/// Whether an index that starts with `field` exists as far as the schema knows: the primary
/// key, a declared index, or a `belongs_to` key (indexed by `create_all`).
pub(crate) fn known_indexed(schema: &ModelSchema, field: usize) -> bool {
    schema.primary_key.first() == Some(&field)
        || schema.indexes.iter().any(|ix| ix.fields.first() == Some(&field))
        || schema.relations.iter().any(|r| r.kind == crate::schema::RelationKind::BelongsTo && r.local_field == field)
}

/// [`known_indexed`], or an index the database's catalog has (looked up by the driver before
/// lowering: see `sql::hints`).
fn indexed(schema: &ModelSchema, field: usize) -> bool {
    known_indexed(schema, field) || crate::sql::hints::indexed(schema.table, schema.fields[field].column)
}

/// A text match. PostgreSQL: `LIKE` / `ILIKE` with `\` escapes. SQLite's `LIKE` ignores
/// ASCII case, so case-sensitive matches use `GLOB` (with the wildcards escaped in brackets)
/// and case-insensitive ones use `LIKE`.
fn text_match(w: &mut SqlWriter<'_>, schema: &ModelSchema, field: usize, op: TextOp, text: &str, ci: bool) {
    let f = &schema.fields[field];
    let ty = ColumnType::scalar(Scalar::Text);
    let sqlite = w.dialect().name() == "sqlite";
    if sqlite && !ci {
        let pattern = match op {
            TextOp::StartsWith => format!("{}*", glob_escape(text)),
            TextOp::EndsWith => format!("*{}", glob_escape(text)),
            TextOp::Contains => format!("*{}*", glob_escape(text)),
            TextOp::Like => like_to_glob(text),
        };
        w.ident(f.column).push(" GLOB ").param(Value::Text(pattern), ty);
        return;
    }
    let pattern = match op {
        TextOp::StartsWith => format!("{}%", like_escape(text)),
        TextOp::EndsWith => format!("%{}", like_escape(text)),
        TextOp::Contains => format!("%{}%", like_escape(text)),
        TextOp::Like => text.to_owned(),
    };
    let keyword = if ci && !sqlite { " ILIKE " } else { " LIKE " };
    w.ident(f.column).push(keyword).param(Value::Text(pattern), ty).push(" ESCAPE '\\'");
}

/// Escapes LIKE's wildcards and escape character with `\`.
pub(crate) fn like_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Makes GLOB's special characters literal by putting each in brackets.
pub(crate) fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        match c {
            '*' | '?' | '[' => {
                out.push('[');
                out.push(c);
                out.push(']');
            }
            c => out.push(c),
        }
    }
    out
}

/// Turns a LIKE pattern (`%`, `_`, `\` escapes) into the equivalent GLOB pattern.
pub(crate) fn like_to_glob(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 2);
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '%' => out.push('*'),
            '_' => out.push('?'),
            '\\' => out.push_str(&glob_escape(&chars.next().unwrap_or('\\').to_string())),
            c => out.push_str(&glob_escape(&c.to_string())),
        }
    }
    out
}

/// An array field holds a value: `$1 = ANY(col)` on PostgreSQL; on SQLite, where arrays
/// are JSON text, a `json_each` lookup.
fn array_contains(w: &mut SqlWriter<'_>, schema: &ModelSchema, field: usize, value: &Value) -> Result<(), Error> {
    let f = &schema.fields[field];
    if !f.ty.array {
        return Err(Error::Unsupported {
            store: w.dialect().name(),
            what: format!("element tests on {}.{} (an array stored as one JSON value)", schema.name, f.name),
        });
    }
    let element = ColumnType { array: false, nullable: false, ..f.ty };
    if w.dialect().name() == "sqlite" {
        w.push("EXISTS (SELECT 1 FROM json_each(").ident(f.column).push(") WHERE \"value\" = ");
        w.param(value.clone(), element).push(")");
    } else {
        w.param(value.clone(), element).push(" = ANY(").ident(f.column).push(")");
    }
    Ok(())
}

/// `EXISTS (SELECT 1 FROM related AS rN WHERE <link> [AND <condition>])`. Only the link is
/// qualified: the condition's columns resolve to the innermost table, the related one. The
/// outer row is named by the table (or by the enclosing relation's alias when nested).
fn related(w: &mut SqlWriter<'_>, schema: &ModelSchema, index: usize, node: Option<&Node>) -> Result<(), Error> {
    use crate::schema::RelationKind;
    let rel = &schema.relations[index];
    let target = (rel.target)();
    // Soft-deleted related rows do not count.
    let node = crate::soft_delete::finish(target, crate::soft_delete::Rows::Live, node);
    let node = node.as_deref();
    let mut outer = String::new();
    match w.scope() {
        Some(alias) => w.dialect().quote_ident(&mut outer, alias),
        None => w.dialect().quote_table(&mut outer, schema.table),
    }
    let local = schema.fields[rel.local_field].column;
    let inner = w.push_scope();
    let field_of = |s: &ModelSchema, name: Option<&str>| -> Result<&'static str, Error> {
        match name {
            None => Ok(s.fields[s.primary_key[0]].column),
            Some(n) => s.field_position(n).map(|i| s.fields[i].column),
        }
    };
    w.push("EXISTS (SELECT 1 FROM ");
    match (&rel.through, rel.kind) {
        (Some(through), RelationKind::ManyToMany) => {
            // EXISTS (SELECT 1 FROM join AS jN WHERE jN.left = outer.key AND jN.right IN
            //   (SELECT key FROM related WHERE <condition>))
            let join = (through.schema)();
            let (left, right) = (field_of(join, Some(through.left))?, field_of(join, Some(through.right))?);
            w.table(join.table).push(" AS ").ident(&inner).push(" WHERE ");
            w.ident(&inner).push(".").ident(left).push(" = ").push(&outer).push(".").ident(local);
            w.push(" AND ").ident(&inner).push(".").ident(right).push(" IN (SELECT ");
            let rows = w.push_scope();
            w.ident(&rows).push(".").ident(field_of(target, None)?).push(" FROM ").table(target.table);
            w.push(" AS ").ident(&rows);
            if let Some(node) = node {
                w.push(" WHERE ");
                write_node(w, target, node)?;
            }
            w.pop_scope();
            w.push(")");
        }
        _ => {
            let remote = field_of(target, rel.remote_field)?;
            w.table(target.table).push(" AS ").ident(&inner).push(" WHERE ");
            w.ident(&inner).push(".").ident(remote).push(" = ").push(&outer).push(".").ident(local);
            if let Some(node) = node {
                w.push(" AND ");
                write_node(w, target, node)?;
            }
        }
    }
    w.push(")");
    w.pop_scope();
    Ok(())
}

/// `WITH "name" ("v") AS (SELECT ..), ..` for the named subqueries (common table expressions)
/// of the query's filter, `having` and select items, each once, a nested one before the one
/// that uses it; nothing when there are none.
fn with_clause(
    w: &mut SqlWriter<'_>,
    schema: &ModelSchema,
    query: &Clauses<'_>,
    items: &[SelectItem],
) -> Result<(), Error> {
    let mut named: Vec<&Subquery> = Vec::new();
    for node in query.filter.iter().chain(query.having.iter()) {
        named_in(node, &mut named);
    }
    for item in items {
        if let SelectItem::Calc(node) = item {
            named_in_calc(node, &mut named);
        }
    }
    if named.is_empty() {
        return Ok(());
    }
    let mut tables = vec![schema.table];
    for q in &named {
        tables.push(q.schema.table);
    }
    let mut defined: Vec<&Subquery> = Vec::new();
    for q in named {
        let name = q.name.as_deref().unwrap_or_default();
        if tables.contains(&name) {
            return Err(Error::Config(format!(
                "the subquery name `{name}` is the name of a table the statement reads"
            )));
        }
        match defined.iter().find(|d| d.name == q.name) {
            Some(d) if *d == q => continue,
            Some(_) => return Err(Error::Config(format!("the subquery name `{name}` names two different subqueries"))),
            None => {}
        }
        let inner = subquery_field(w, q)?;
        let col = q.schema.fields[inner].column;
        w.push(if defined.is_empty() { "WITH " } else { ", " });
        w.ident(name).push(" (\"v\") AS (SELECT ");
        let alias = w.push_scope();
        w.ident(&alias).push(".").ident(col);
        let result = subquery_tail(w, q, &alias, |w| {
            w.ident(&alias).push(".").ident(col).push(" IS NOT NULL");
        });
        w.pop_scope();
        result?;
        defined.push(q);
    }
    w.push(" ");
    Ok(())
}

/// The named subqueries in `node`, innermost first.
fn named_in<'a>(node: &'a Node, out: &mut Vec<&'a Subquery>) {
    match node {
        Node::And(items) | Node::Or(items) => items.iter().for_each(|n| named_in(n, out)),
        Node::Not(inner) => named_in(inner, out),
        Node::Related { node: Some(inner), .. } => named_in(inner, out),
        Node::InQuery { query, .. } | Node::Exists { query, .. } => {
            if let Some(f) = &query.filter {
                named_in(f, out);
            }
            if query.name.is_some() {
                out.push(query);
            }
        }
        Node::Calc { lhs, rhs, .. } => {
            named_in_calc(lhs, out);
            named_in_calc(rhs, out);
        }
        _ => {}
    }
}

/// The named subqueries in the conditions and subqueries of an expression.
fn named_in_calc<'a>(node: &'a CalcNode, out: &mut Vec<&'a Subquery>) {
    match node {
        CalcNode::Subquery(query) => {
            if let Some(f) = &query.filter {
                named_in(f, out);
            }
        }
        CalcNode::Binary { lhs, rhs, .. } => {
            named_in_calc(lhs, out);
            named_in_calc(rhs, out);
        }
        CalcNode::Neg(inner)
        | CalcNode::Aggregate { arg: inner, .. }
        | CalcNode::Text { arg: inner, .. }
        | CalcNode::Trunc { arg: inner, .. }
        | CalcNode::Extract { arg: inner, .. } => named_in_calc(inner, out),
        CalcNode::Coalesce { items, .. } | CalcNode::Concat { items, .. } => {
            items.iter().for_each(|n| named_in_calc(n, out));
        }
        CalcNode::Case { branches, otherwise, .. } => {
            for (cond, value) in branches {
                named_in(cond, out);
                named_in_calc(value, out);
            }
            if let Some(o) = otherwise {
                named_in_calc(o, out);
            }
        }
        CalcNode::Field(_) | CalcNode::Literal { .. } | CalcNode::Joined { .. } | CalcNode::Invalid(_) => {}
    }
}

/// The subquery's linking (or selected) field, which `IN` and `EXISTS` need.
fn subquery_field(w: &SqlWriter<'_>, query: &Subquery) -> Result<usize, Error> {
    query.check()?;
    match query.column {
        SubColumn::Field(f) => Ok(f),
        SubColumn::Agg { .. } => Err(Error::Unsupported {
            store: w.dialect().name(),
            what: format!("an aggregate subquery over {} as a list of values (select a field)", query.schema.name),
        }),
    }
}

/// ` FROM table AS rN WHERE <head> [AND <filter>])` for a subquery in scope `alias`, where
/// `head` writes the first condition.
fn subquery_tail(
    w: &mut SqlWriter<'_>,
    query: &Subquery,
    alias: &str,
    head: impl FnOnce(&mut SqlWriter<'_>),
) -> Result<(), Error> {
    w.push(" FROM ").table(query.schema.table).push(" AS ").ident(alias).push(" WHERE ");
    head(w);
    if let Some(node) = &query.filter {
        w.push(" AND ");
        write_node(w, query.schema, node)?;
    }
    w.push(")");
    Ok(())
}

/// `field [NOT] IN (SELECT rN.col FROM other AS rN WHERE rN.col IS NOT NULL AND <filter>)`.
/// The subquery's NULLs are left out, so that `NOT IN` keeps the rows whose value is not among
/// the others (SQL would make it unknown for every row), as on MongoDB. The subquery's own
/// columns resolve to its table (unqualified, the innermost scope).
fn in_subquery(
    w: &mut SqlWriter<'_>,
    schema: &ModelSchema,
    field: usize,
    query: &Subquery,
    negated: bool,
) -> Result<(), Error> {
    let inner = subquery_field(w, query)?;
    let f = &schema.fields[field];
    let col = &query.schema.fields[inner];
    w.operand(f.column, f.ty).push(if negated { " NOT IN (SELECT " } else { " IN (SELECT " });
    if let Some(name) = &query.name {
        // Defined by `with_clause` at the head of the statement.
        w.push("\"v\" FROM ").ident(name).push(")");
        return Ok(());
    }
    let alias = w.push_scope();
    w.ident(&alias).push(".").ident(col.column);
    let result = subquery_tail(w, query, &alias, |w| {
        w.ident(&alias).push(".").ident(col.column).push(" IS NOT NULL");
    });
    w.pop_scope();
    result
}

/// `EXISTS (SELECT 1 FROM other AS rN WHERE rN.link = outer.field AND <filter>)`: true or
/// false, never unknown. The outer row is named by its table, or by the enclosing subquery's
/// alias.
fn exists_subquery(w: &mut SqlWriter<'_>, schema: &ModelSchema, outer: usize, query: &Subquery) -> Result<(), Error> {
    let inner = subquery_field(w, query)?;
    let mut outer_name = String::new();
    match w.scope() {
        Some(alias) => w.dialect().quote_ident(&mut outer_name, alias),
        None => w.dialect().quote_table(&mut outer_name, schema.table),
    }
    let col = &query.schema.fields[inner];
    let outer_col = schema.fields[outer].column;
    w.push("EXISTS (SELECT 1");
    let alias = w.push_scope();
    let result = subquery_tail(w, query, &alias, |w| {
        w.ident(&alias).push(".").ident(col.column).collate(col.ty).push(" = ");
        w.push(&outer_name).push(".").ident(outer_col);
    });
    w.pop_scope();
    result
}

/// A scalar subquery, `(SELECT AVG(rN.col) FROM other AS rN [WHERE <filter>])`: one aggregate
/// (typed as in a projection) over the matching rows.
pub(crate) fn scalar_subquery(w: &mut SqlWriter<'_>, query: &Subquery) -> Result<(), Error> {
    query.check()?;
    let SubColumn::Agg { func, field, .. } = query.column else {
        return Err(Error::Unsupported {
            store: w.dialect().name(),
            what: format!("a subquery over {} selecting a field as one value (select an aggregate)", query.schema.name),
        });
    };
    w.push("(SELECT ");
    let alias = w.push_scope();
    aggregate_in(w, query.schema, Some(&alias), func, field);
    w.push(" FROM ").table(query.schema.table).push(" AS ").ident(&alias);
    let result = match &query.filter {
        Some(node) => {
            w.push(" WHERE ");
            write_node(w, query.schema, node)
        }
        None => Ok(()),
    };
    w.pop_scope();
    w.push(")");
    result
}

/// The new value of a list after appending `value`: `array_append` for PostgreSQL arrays,
/// `jsonb ||` for lists stored as JSON, `json_insert(.., '$[#]', ..)` on SQLite (where every
/// list is JSON text). A NULL list becomes a one-element list.
fn push(w: &mut SqlWriter<'_>, column: &str, ty: ColumnType, value: Value) {
    let json_element = || Value::Json(value.clone().into_json());
    let json = ColumnType::scalar(Scalar::Json);
    if w.dialect().name() == "sqlite" {
        w.push("json_insert(COALESCE(").ident(column).push(", '[]'), '$[#]', json(").param(json_element(), json);
        w.push("))");
    } else if ty.array {
        let element = ColumnType { array: false, nullable: false, ..ty };
        w.push("array_append(").ident(column).push(", ").param(value, element).push(")");
    } else {
        w.push("COALESCE(").ident(column).push(", '[]'::jsonb) || jsonb_build_array(").param(json_element(), json);
        w.push(")");
    }
}

#[cfg(all(test, feature = "postgres"))]
mod tests {
    use super::*;
    use crate::prelude::*;
    use crate::sql::postgres::Postgres;

    #[derive(crate::Model, Debug, Clone)]
    #[model(schema = "billing", table = "heads")]
    struct Head {
        #[model(primary_key)]
        id: i64,
        name: String,
    }

    /// PostgreSQL under its own name, writing every table into another schema (as the drift
    /// check's shadow does).
    struct Elsewhere;

    impl Dialect for Elsewhere {
        fn name(&self) -> &'static str {
            Postgres.name()
        }
        fn placeholder(&self, out: &mut String, n: usize) {
            Postgres.placeholder(out, n);
        }
        fn quote_table(&self, out: &mut String, table: &str) {
            out.push_str("\"elsewhere\".");
            self.quote_ident(out, crate::schema::split_table(table).1);
        }
        fn column_type(&self, ty: &ColumnType) -> String {
            Postgres.column_type(ty)
        }
        fn identity_clause(&self) -> &'static str {
            Postgres.identity_clause()
        }
        fn now_default(&self, ty: &ColumnType) -> Option<&'static str> {
            Postgres.now_default(ty)
        }
        fn max_params(&self) -> usize {
            Postgres.max_params()
        }
    }

    /// The kept column lists (and find texts) are the texts a fresh rendering gives, and a
    /// dialect that shares PostgreSQL's name but writes tables elsewhere never gets them.
    #[test]
    fn kept_texts_are_per_dialect_and_equal_a_fresh_rendering() {
        let q = Head::query().filter(Head::NAME.eq("a"));
        for _ in 0..2 {
            let kept = select(&Postgres, Head::SCHEMA, &q).unwrap().sql;
            assert_eq!(
                kept, "SELECT \"id\", \"name\" FROM \"billing\".\"heads\" WHERE \"name\" = $1",
                "the second round reads the kept head"
            );
            let moved = select(&Elsewhere, Head::SCHEMA, &q).unwrap().sql;
            assert_eq!(moved, "SELECT \"id\", \"name\" FROM \"elsewhere\".\"heads\" WHERE \"name\" = $1");
            let find = crate::sql::build::find_by_key_cached(&Elsewhere, Head::SCHEMA, vec![Value::I64(1)]).sql;
            assert!(find.contains("\"elsewhere\".\"heads\""), "{find}");
            let find = crate::sql::build::find_by_key_cached(&Postgres, Head::SCHEMA, vec![Value::I64(1)]).sql;
            assert!(find.contains("\"billing\".\"heads\""), "{find}");
        }
    }
}
