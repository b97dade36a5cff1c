//! Writes typed expressions ([`CalcNode`]) as SQL, with the same results on both dialects:
//!
//! - integers stay integers (`/` truncates toward zero on both), floats are `DOUBLE
//!   PRECISION` (an `f32` column is widened on PostgreSQL);
//! - decimals are exact: `numeric` on PostgreSQL, the `polystore_dec_*` functions on SQLite
//!   (never `REAL`);
//! - a decimal quotient is truncated toward zero at [`DECIMAL_QUOTIENT_SCALE`] places
//!   (`div(a * 10^16, b) * 10^-16` on PostgreSQL, `polystore_dec_quot` on SQLite);
//! - dividing by zero gives NULL (`NULLIF(divisor, 0)`).

use crate::error::Error;
use crate::query::{AggFunc, ArithOp, CalcNode, CmpOp, DatePart, TextFunc, TimeUnit};
use crate::schema::{ColumnType, ModelSchema, Scalar};
use crate::sql::SqlWriter;

/// The scale of a decimal quotient on every store: `10 / 4` is `2.5000000000000000`.
pub const DECIMAL_QUOTIENT_SCALE: u32 = 16;

/// The decimal quotient `a / b` truncated toward zero at [`DECIMAL_QUOTIENT_SCALE`] places,
/// computed exactly on the integer mantissas; `None` when `b` is zero. An error when the
/// exact computation needs more than 38 digits or the result does not fit in a `Decimal`.
#[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
pub(crate) fn decimal_quotient(
    a: rust_decimal::Decimal,
    b: rust_decimal::Decimal,
) -> Result<Option<rust_decimal::Decimal>, String> {
    if b.is_zero() {
        return Ok(None);
    }
    let too_big = || format!("the exact quotient {a} / {b} does not fit in a decimal (28 significant digits)");
    let shift = i64::from(b.scale()) + i64::from(DECIMAL_QUOTIENT_SCALE) - i64::from(a.scale());
    let pow = |e: i64| u32::try_from(e).ok().and_then(|e| 10_i128.checked_pow(e));
    let (num, den) = if shift >= 0 {
        (pow(shift).and_then(|p| a.mantissa().checked_mul(p)), Some(b.mantissa()))
    } else {
        (Some(a.mantissa()), pow(-shift).and_then(|p| b.mantissa().checked_mul(p)))
    };
    let (Some(num), Some(den)) = (num, den) else { return Err(too_big()) };
    // Trailing zeros give way when the 96-bit mantissa is full, as when PostgreSQL's and
    // MongoDB's wider quotients are read into a `Decimal`.
    let (mut q, mut scale) = (num / den, DECIMAL_QUOTIENT_SCALE);
    loop {
        match rust_decimal::Decimal::try_from_i128_with_scale(q, scale) {
            Ok(v) => return Ok(Some(v)),
            Err(_) if scale > 0 && q % 10 == 0 => {
                q /= 10;
                scale -= 1;
            }
            Err(_) => return Err(too_big()),
        }
    }
}

fn is_decimal(ty: ColumnType) -> bool {
    ty.scalar == Scalar::Decimal
}

fn sqlite(w: &SqlWriter<'_>) -> bool {
    w.dialect().name() == "sqlite"
}

/// Writes `node`.
pub fn write_calc(w: &mut SqlWriter<'_>, schema: &ModelSchema, node: &CalcNode) -> Result<(), Error> {
    match node {
        CalcNode::Field(i) => {
            w.ident(schema.fields[*i].column);
        }
        CalcNode::Literal { value, ty } => {
            w.param(value.clone(), *ty);
        }
        CalcNode::Binary { op, lhs, rhs, ty } => binary(w, schema, *op, lhs, rhs, *ty)?,
        CalcNode::Neg(inner) => {
            if sqlite(w) && is_decimal(inner.ty(schema)) {
                w.push("polystore_dec_neg(");
                write_calc(w, schema, inner)?;
                w.push(")");
            } else {
                w.push("(-");
                operand(w, schema, inner)?;
                w.push(")");
            }
        }
        CalcNode::Aggregate { func, arg, ty } => aggregate(w, schema, *func, arg, *ty)?,
        CalcNode::Coalesce { items, .. } => {
            w.push("COALESCE(");
            for (i, item) in items.iter().enumerate() {
                w.push(if i == 0 { "" } else { ", " });
                write_calc(w, schema, item)?;
            }
            w.push(")");
        }
        CalcNode::Case { branches, otherwise, .. } => {
            w.push("CASE");
            for (cond, value) in branches {
                w.push(" WHEN ");
                crate::sql::lower::write_node(w, schema, cond)?;
                w.push(" THEN ");
                write_calc(w, schema, value)?;
            }
            if let Some(value) = otherwise {
                w.push(" ELSE ");
                write_calc(w, schema, value)?;
            }
            w.push(" END");
        }
        CalcNode::Text { func, arg, .. } => text(w, schema, *func, arg)?,
        CalcNode::Concat { items, .. } => {
            w.push("(");
            for (i, item) in items.iter().enumerate() {
                w.push(if i == 0 { "" } else { " || " });
                write_calc(w, schema, item)?;
            }
            w.push(")");
        }
        CalcNode::Trunc { unit, arg } => trunc(w, schema, *unit, arg)?,
        CalcNode::Extract { part, arg, .. } => extract(w, schema, *part, arg)?,
        CalcNode::Subquery(query) => crate::sql::lower::scalar_subquery(w, query)?,
        CalcNode::Joined { column, .. } => crate::sql::lower::join::joined_value(w, schema, column)?,
        CalcNode::Invalid(e) => {
            return Err(Error::Encode { model: schema.name, field: "<expression>", source: e.clone() });
        }
    }
    Ok(())
}

/// `lower` / `upper` / `length`. Case mapping is ASCII-only on both dialects (SQLite's
/// `LOWER` is; PostgreSQL's is made so by the `"C"` collation), and `length` counts
/// characters (`char_length` on PostgreSQL, `length` of text on SQLite).
fn text(w: &mut SqlWriter<'_>, schema: &ModelSchema, func: TextFunc, arg: &CalcNode) -> Result<(), Error> {
    let lite = sqlite(w);
    match func {
        TextFunc::Lower | TextFunc::Upper => {
            w.push(if func == TextFunc::Lower { "LOWER(" } else { "UPPER(" });
            write_calc(w, schema, arg)?;
            w.push(if lite { ")" } else { " COLLATE \"C\")" });
        }
        TextFunc::Length => {
            w.push(if lite { "length(" } else { "CAST(char_length(" });
            write_calc(w, schema, arg)?;
            w.push(if lite { ")" } else { ") AS BIGINT)" });
        }
    }
    Ok(())
}

/// The `strftime` format of a date or time of type `scalar` truncated to `unit`, in the text
/// form polystore stores it in on SQLite (so that it decodes and compares as a stored value).
fn sqlite_trunc_format(scalar: Scalar, unit: TimeUnit) -> &'static str {
    match (scalar, unit) {
        (Scalar::Date, TimeUnit::Year) => "%Y-01-01",
        (Scalar::Date, TimeUnit::Month) => "%Y-%m-01",
        (Scalar::Date, _) => "%Y-%m-%d",
        (Scalar::Timestamp, TimeUnit::Year) => "%Y-01-01T00:00:00.000000",
        (Scalar::Timestamp, TimeUnit::Month) => "%Y-%m-01T00:00:00.000000",
        (Scalar::Timestamp, TimeUnit::Day) => "%Y-%m-%dT00:00:00.000000",
        (Scalar::Timestamp, TimeUnit::Hour) => "%Y-%m-%dT%H:00:00.000000",
        (Scalar::Timestamp, TimeUnit::Minute) => "%Y-%m-%dT%H:%M:00.000000",
        (_, TimeUnit::Year) => "%Y-01-01T00:00:00.000000Z",
        (_, TimeUnit::Month) => "%Y-%m-01T00:00:00.000000Z",
        (_, TimeUnit::Day) => "%Y-%m-%dT00:00:00.000000Z",
        (_, TimeUnit::Hour) => "%Y-%m-%dT%H:00:00.000000Z",
        (_, TimeUnit::Minute) => "%Y-%m-%dT%H:%M:00.000000Z",
    }
}

/// `trunc(unit)`: `date_trunc` on PostgreSQL (an instant in UTC, whatever the session's time
/// zone; a date through `timestamp` and back), `strftime` on SQLite.
fn trunc(w: &mut SqlWriter<'_>, schema: &ModelSchema, unit: TimeUnit, arg: &CalcNode) -> Result<(), Error> {
    let scalar = arg.ty(schema).scalar;
    if sqlite(w) {
        w.push("strftime('").push(sqlite_trunc_format(scalar, unit)).push("', ");
        write_calc(w, schema, arg)?;
        w.push(")");
        return Ok(());
    }
    let open = format!("date_trunc('{}', ", unit.name());
    match scalar {
        Scalar::TimestampTz => {
            w.push("(").push(&open);
            write_calc(w, schema, arg)?;
            w.push(" AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')");
        }
        Scalar::Date => {
            w.push("CAST(").push(&open).push("CAST(");
            write_calc(w, schema, arg)?;
            w.push(" AS TIMESTAMP)) AS DATE)");
        }
        _ => {
            w.push(&open);
            write_calc(w, schema, arg)?;
            w.push(")");
        }
    }
    Ok(())
}

/// `extract(part)` as an integer: `EXTRACT` on PostgreSQL (in UTC; `ISODOW` for the day of
/// the week), `strftime` on SQLite (`%w` turned into ISO numbering).
fn extract(w: &mut SqlWriter<'_>, schema: &ModelSchema, part: DatePart, arg: &CalcNode) -> Result<(), Error> {
    let scalar = arg.ty(schema).scalar;
    if sqlite(w) {
        let format = match part {
            DatePart::Year => "%Y",
            DatePart::Month => "%m",
            DatePart::Day => "%d",
            DatePart::Hour => "%H",
            DatePart::Minute => "%M",
            DatePart::DayOfWeek => "%w",
        };
        if part == DatePart::DayOfWeek {
            w.push("((CAST(strftime('%w', ");
            write_calc(w, schema, arg)?;
            w.push(") AS INTEGER) + 6) % 7 + 1)");
        } else {
            w.push("CAST(strftime('").push(format).push("', ");
            write_calc(w, schema, arg)?;
            w.push(") AS INTEGER)");
        }
        return Ok(());
    }
    let field = match part {
        DatePart::Year => "YEAR",
        DatePart::Month => "MONTH",
        DatePart::Day => "DAY",
        DatePart::Hour => "HOUR",
        DatePart::Minute => "MINUTE",
        DatePart::DayOfWeek => "ISODOW",
    };
    w.push("CAST(EXTRACT(").push(field).push(" FROM ");
    match scalar {
        Scalar::TimestampTz => {
            write_calc(w, schema, arg)?;
            w.push(" AT TIME ZONE 'UTC'");
        }
        Scalar::Date => {
            w.push("CAST(");
            write_calc(w, schema, arg)?;
            w.push(" AS TIMESTAMP)");
        }
        _ => {
            write_calc(w, schema, arg)?;
        }
    }
    w.push(") AS INTEGER)");
    Ok(())
}

/// An operand of arithmetic: an `f32` is widened to `DOUBLE PRECISION` on PostgreSQL (so that
/// the result is the documented `f64`).
fn operand(w: &mut SqlWriter<'_>, schema: &ModelSchema, node: &CalcNode) -> Result<(), Error> {
    if !sqlite(w) && node.ty(schema).scalar == Scalar::F32 {
        w.push("CAST(");
        write_calc(w, schema, node)?;
        w.push(" AS DOUBLE PRECISION)");
        return Ok(());
    }
    write_calc(w, schema, node)
}

/// The divisor with zero turned into NULL (`polystore_dec_quot` does that itself on SQLite).
fn divisor(w: &mut SqlWriter<'_>, schema: &ModelSchema, node: &CalcNode) -> Result<(), Error> {
    w.push("NULLIF(");
    operand(w, schema, node)?;
    w.push(", 0)");
    Ok(())
}

fn binary(
    w: &mut SqlWriter<'_>,
    schema: &ModelSchema,
    op: ArithOp,
    lhs: &CalcNode,
    rhs: &CalcNode,
    ty: ColumnType,
) -> Result<(), Error> {
    let decimal = is_decimal(ty);
    if decimal && sqlite(w) {
        w.push(match op {
            ArithOp::Add => "polystore_dec_add(",
            ArithOp::Sub => "polystore_dec_sub(",
            ArithOp::Mul => "polystore_dec_mul(",
            ArithOp::Div => "polystore_dec_quot(",
        });
        write_calc(w, schema, lhs)?;
        w.push(", ");
        write_calc(w, schema, rhs)?;
        w.push(")");
        return Ok(());
    }
    if decimal && op == ArithOp::Div {
        // Exact truncation at 16 places: `div` is the integral quotient, truncated toward zero.
        w.push("(div(");
        write_calc(w, schema, lhs)?;
        w.push(" * 10000000000000000, ");
        divisor(w, schema, rhs)?;
        w.push(") * 0.0000000000000001)");
        return Ok(());
    }
    w.push("(");
    operand(w, schema, lhs)?;
    w.push(match op {
        ArithOp::Add => " + ",
        ArithOp::Sub => " - ",
        ArithOp::Mul => " * ",
        ArithOp::Div => " / ",
    });
    if op == ArithOp::Div {
        divisor(w, schema, rhs)?;
    } else {
        operand(w, schema, rhs)?;
    }
    w.push(")");
    Ok(())
}

/// One side of a comparison whose common type is `common`: on SQLite a non-decimal side of a
/// decimal comparison is turned into decimal text, and a decimal side compares through the
/// decimal collation.
fn compared(w: &mut SqlWriter<'_>, schema: &ModelSchema, node: &CalcNode, common: bool) -> Result<(), Error> {
    if !(common && sqlite(w)) {
        return write_calc(w, schema, node);
    }
    if is_decimal(node.ty(schema)) {
        write_calc(w, schema, node)?;
    } else {
        w.push("polystore_dec_add(");
        write_calc(w, schema, node)?;
        w.push(", 0)");
    }
    w.push(" COLLATE polystore_decimal");
    Ok(())
}

/// `lhs op rhs` for a filter or a HAVING condition.
pub fn write_compare(
    w: &mut SqlWriter<'_>,
    schema: &ModelSchema,
    lhs: &CalcNode,
    op: CmpOp,
    rhs: &CalcNode,
) -> Result<(), Error> {
    let decimal = is_decimal(lhs.ty(schema)) || is_decimal(rhs.ty(schema));
    w.push("(");
    compared(w, schema, lhs, decimal)?;
    w.push(" ").push(op.sql()).push(" ");
    compared(w, schema, rhs, decimal)?;
    w.push(")");
    Ok(())
}

/// An ordering term on an expression: NULL is the smallest value on both dialects.
pub fn write_order(
    w: &mut SqlWriter<'_>,
    schema: &ModelSchema,
    node: &CalcNode,
    descending: bool,
) -> Result<(), Error> {
    write_calc(w, schema, node)?;
    w.collate(node.ty(schema));
    w.push(if descending { " DESC NULLS LAST" } else { " ASC NULLS FIRST" });
    Ok(())
}

/// An aggregate over an expression, typed like the aggregates over fields: integer sums are
/// `BIGINT`, float sums and averages `DOUBLE PRECISION`, decimal sums exact.
fn aggregate(
    w: &mut SqlWriter<'_>,
    schema: &ModelSchema,
    func: AggFunc,
    arg: &CalcNode,
    ty: ColumnType,
) -> Result<(), Error> {
    let arg_ty = arg.ty(schema);
    let exact = w.dialect().exact_decimal(&arg_ty);
    let (open, close) = match func {
        AggFunc::Count => ("COUNT(", ")"),
        AggFunc::CountDistinct => ("COUNT(DISTINCT ", ")"),
        AggFunc::Sum if exact => ("polystore_dec_sum(", ")"),
        AggFunc::Avg if exact => ("polystore_dec_avg(", ")"),
        AggFunc::Sum | AggFunc::Avg if is_decimal(arg_ty) => {
            if func == AggFunc::Sum {
                ("SUM(", ")")
            } else {
                ("AVG(", ")")
            }
        }
        AggFunc::Sum if matches!(ty.scalar, Scalar::F64) => ("CAST(SUM(", ") AS DOUBLE PRECISION)"),
        AggFunc::Sum => ("CAST(SUM(", ") AS BIGINT)"),
        AggFunc::Avg => ("CAST(AVG(", ") AS DOUBLE PRECISION)"),
        AggFunc::Min => ("MIN(", ")"),
        AggFunc::Max => ("MAX(", ")"),
    };
    w.push(open);
    write_calc(w, schema, arg)?;
    if matches!(func, AggFunc::Min | AggFunc::Max) {
        w.collate(arg_ty);
    }
    w.push(close);
    Ok(())
}
