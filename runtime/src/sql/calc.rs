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
use crate::query::{AggFunc, ArithOp, CalcNode, CmpOp};
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
        CalcNode::Invalid(e) => {
            return Err(Error::Encode { model: schema.name, field: "<expression>", source: e.clone() });
        }
    }
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
