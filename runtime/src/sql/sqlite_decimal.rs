//! Exact decimals on SQLite. SQLite has no decimal type: polystore stores a `Decimal` as its
//! exact text (`"0.90"`), and SQLite's own `+`, `SUM`, `<` and `ORDER BY` would read that text
//! as a floating-point number (`0.90 + 0.10` → `1.0`, `12345678901234567.89` →
//! `12345678901234600`). Every SQLite connection polystore opens therefore gets, from
//! [`register`]:
//!
//! - the collation [`COLLATION`] (`polystore_decimal`), which orders decimal text by value —
//!   comparisons, `BETWEEN`, `IN`, `ORDER BY`, `MIN` and `MAX` on decimal columns use it;
//! - the scalar functions `polystore_dec_add(a, b)`, `_sub`, `_mul`, `_div`, `_neg(a)` and
//!   `_quot(a, b)` (the quotient of typed expressions, see `sql::calc`);
//! - the aggregates `polystore_dec_sum(x)` and `polystore_dec_avg(x)`.
//!
//! All of them compute with [`rust_decimal::Decimal`] (28 significant digits) and return the
//! exact text with its scale (`0.90 + 0.10` is `1.00`, as on PostgreSQL). NULL in gives NULL
//! out; overflow, division by zero, or a value that is not decimal text (a REAL, a BLOB) make
//! the statement fail with an error naming the function — never a rounded float.
//!
//! A pool opened outside polystore ([`Db::from_sqlite_pool`](crate::Db::from_sqlite_pool))
//! needs [`register`] in its `after_connect` hook; without it a decimal query fails with
//! `no such function: polystore_dec_…` / `no such collation sequence: polystore_decimal`.

use std::cmp::Ordering;
use std::ffi::{CStr, c_int, c_void};

use libsqlite3_sys as ffi;
use rust_decimal::Decimal;

/// The collation that orders decimal text by numeric value.
pub const COLLATION: &str = "polystore_decimal";

/// The scalar operations, passed to the C callback as its user data.
#[derive(Clone, Copy)]
#[repr(usize)]
enum Op {
    Add,
    Sub,
    Mul,
    Div,
    Neg,
    Sum,
    Avg,
    Quot,
}

impl Op {
    const ALL: [Op; 8] = [Op::Add, Op::Sub, Op::Mul, Op::Div, Op::Neg, Op::Sum, Op::Avg, Op::Quot];

    fn name(self) -> &'static CStr {
        match self {
            Op::Add => c"polystore_dec_add",
            Op::Sub => c"polystore_dec_sub",
            Op::Mul => c"polystore_dec_mul",
            Op::Div => c"polystore_dec_div",
            Op::Neg => c"polystore_dec_neg",
            Op::Sum => c"polystore_dec_sum",
            Op::Avg => c"polystore_dec_avg",
            Op::Quot => c"polystore_dec_quot",
        }
    }

    fn from_user_data(p: *mut c_void) -> Op {
        Op::ALL[(p as usize).min(Op::ALL.len() - 1)]
    }
}

/// Registers the collation and functions on one connection (what polystore's pools run for
/// every new connection). Call it from your own `after_connect` hook when you hand polystore
/// a pool you built yourself.
///
/// # Errors
/// When SQLite refuses a registration (out of memory).
pub async fn register(conn: &mut sqlx::SqliteConnection) -> Result<(), sqlx::Error> {
    let mut handle = conn.lock_handle().await?;
    handle.create_collation(COLLATION, compare)?;
    let db = handle.as_raw_handle().as_ptr();
    for op in Op::ALL {
        let aggregate = matches!(op, Op::Sum | Op::Avg);
        let args = if matches!(op, Op::Neg | Op::Sum | Op::Avg) { 1 } else { 2 };
        // SAFETY: `db` is the live handle locked above; the name is NUL-terminated and static;
        // the user data is a plain integer, never dereferenced; the callbacks match the
        // signatures SQLite expects.
        let rc = unsafe {
            ffi::sqlite3_create_function_v2(
                db,
                op.name().as_ptr(),
                args,
                ffi::SQLITE_UTF8 | ffi::SQLITE_DETERMINISTIC | ffi::SQLITE_INNOCUOUS,
                op as usize as *mut c_void,
                if aggregate { None } else { Some(scalar) },
                if aggregate { Some(step) } else { None },
                if aggregate { Some(finish) } else { None },
                None,
            )
        };
        if rc != ffi::SQLITE_OK {
            return Err(sqlx::Error::Configuration(
                format!("registering {} failed with SQLite code {rc}", op.name().to_string_lossy()).into(),
            ));
        }
    }
    Ok(())
}

/// Parses stored decimal text exactly (more than 28 significant digits is an error, not a
/// rounding).
fn parse(text: &str) -> Option<Decimal> {
    Decimal::from_str_exact(text.trim()).ok()
}

/// The collation: decimal text by value (`"1.0"` equals `"1.00"`); text that is not a decimal
/// sorts after every decimal, by its bytes — a total order, as SQLite requires.
fn compare(a: &str, b: &str) -> Ordering {
    match (parse(a), parse(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

/// One argument: `None` for NULL.
///
/// # Safety
/// `v` must be a valid `sqlite3_value` of the current call.
unsafe fn arg(v: *mut ffi::sqlite3_value) -> Result<Option<Decimal>, String> {
    // SAFETY: the caller hands a live value; text pointers stay valid until the next call on it.
    unsafe {
        match ffi::sqlite3_value_type(v) {
            ffi::SQLITE_NULL => Ok(None),
            ffi::SQLITE_INTEGER => Ok(Some(Decimal::from(ffi::sqlite3_value_int64(v)))),
            ffi::SQLITE_TEXT => {
                let ptr = ffi::sqlite3_value_text(v);
                let len = usize::try_from(ffi::sqlite3_value_bytes(v)).unwrap_or(0);
                let bytes = if ptr.is_null() { &[][..] } else { std::slice::from_raw_parts(ptr, len) };
                let text = String::from_utf8_lossy(bytes);
                parse(&text).map(Some).ok_or_else(|| format!("{text:?} is not an exact decimal"))
            }
            _ => Err("a REAL or BLOB value is not an exact decimal (decimals are stored as text)".to_owned()),
        }
    }
}

/// Sets the call's result.
///
/// # Safety
/// `ctx` must be the context of the current call.
unsafe fn result(ctx: *mut ffi::sqlite3_context, op: Op, value: Result<Option<Decimal>, String>) {
    // SAFETY: SQLITE_TRANSIENT makes SQLite copy the text before this function returns.
    unsafe {
        match value {
            Ok(None) => ffi::sqlite3_result_null(ctx),
            Ok(Some(d)) => {
                let text = d.to_string();
                let len = c_int::try_from(text.len()).unwrap_or(c_int::MAX);
                ffi::sqlite3_result_text(ctx, text.as_ptr().cast(), len, ffi::SQLITE_TRANSIENT());
            }
            Err(e) => {
                let msg = format!("{}: {e}", op.name().to_string_lossy());
                let len = c_int::try_from(msg.len()).unwrap_or(c_int::MAX);
                ffi::sqlite3_result_error(ctx, msg.as_ptr().cast(), len);
            }
        }
    }
}

/// The arithmetic itself; NULL when any operand is NULL.
fn apply(op: Op, a: Option<Decimal>, b: Option<Decimal>) -> Result<Option<Decimal>, String> {
    let overflow = || "the exact result does not fit in a decimal (28 significant digits)".to_owned();
    let (Some(a), b) = (a, b) else { return Ok(None) };
    if let Op::Neg = op {
        return Ok(Some(-a));
    }
    let Some(b) = b else { return Ok(None) };
    match op {
        Op::Add => a.checked_add(b).ok_or_else(overflow),
        Op::Sub => a.checked_sub(b).ok_or_else(overflow),
        Op::Mul => a.checked_mul(b).ok_or_else(overflow),
        Op::Quot => return crate::sql::calc::decimal_quotient(a, b),
        _ if b.is_zero() => Err("division by zero".to_owned()),
        _ => a.checked_div(b).ok_or_else(overflow),
    }
    .map(Some)
}

/// `xFunc` of the scalar functions.
unsafe extern "C" fn scalar(ctx: *mut ffi::sqlite3_context, n: c_int, args: *mut *mut ffi::sqlite3_value) {
    // SAFETY: SQLite passes `n` live values and the user data given at registration.
    unsafe {
        let op = Op::from_user_data(ffi::sqlite3_user_data(ctx));
        let value = (|| {
            let a = arg(*args)?;
            let b = if n > 1 { arg(*args.add(1))? } else { None };
            apply(op, a, b)
        })();
        result(ctx, op, value);
    }
}

/// The running state of `polystore_dec_sum` / `_avg`.
#[derive(Default)]
struct Acc {
    sum: Decimal,
    count: i64,
    error: Option<String>,
}

/// The state of this aggregate call; allocated on first use when `create`.
///
/// # Safety
/// `ctx` must be the context of an aggregate call.
unsafe fn state(ctx: *mut ffi::sqlite3_context, create: bool) -> Option<*mut *mut Acc> {
    let bytes = if create { c_int::try_from(size_of::<*mut Acc>()).unwrap_or(8) } else { 0 };
    // SAFETY: SQLite hands out zeroed memory of `bytes` bytes, the same for every call of one
    // aggregate, so the slot holds a null or a pointer this module boxed.
    unsafe {
        let slot = ffi::sqlite3_aggregate_context(ctx, bytes).cast::<*mut Acc>();
        if slot.is_null() {
            return None;
        }
        if (*slot).is_null() {
            if !create {
                return None;
            }
            *slot = Box::into_raw(Box::default());
        }
        Some(slot)
    }
}

/// `xStep`: adds one value (NULLs are skipped, as SQL's `SUM` does).
unsafe extern "C" fn step(ctx: *mut ffi::sqlite3_context, _n: c_int, args: *mut *mut ffi::sqlite3_value) {
    // SAFETY: see `state` and `arg`.
    unsafe {
        let Some(slot) = state(ctx, true) else {
            ffi::sqlite3_result_error_nomem(ctx);
            return;
        };
        let acc = &mut **slot;
        if acc.error.is_some() {
            return;
        }
        match arg(*args) {
            Ok(None) => {}
            Ok(Some(d)) => match acc.sum.checked_add(d) {
                Some(sum) => {
                    acc.sum = sum;
                    acc.count += 1;
                }
                None => acc.error = Some("the exact sum does not fit in a decimal (28 significant digits)".into()),
            },
            Err(e) => acc.error = Some(e),
        }
    }
}

/// `xFinal`: the sum or average; NULL over no values.
unsafe extern "C" fn finish(ctx: *mut ffi::sqlite3_context) {
    // SAFETY: see `state`; the box is taken back exactly once and the slot cleared.
    unsafe {
        let op = Op::from_user_data(ffi::sqlite3_user_data(ctx));
        let acc = match state(ctx, false) {
            Some(slot) => {
                let acc = Box::from_raw(*slot);
                *slot = std::ptr::null_mut();
                *acc
            }
            None => Acc::default(),
        };
        let value = match (acc.error, acc.count) {
            (Some(e), _) => Err(e),
            (None, 0) => Ok(None),
            (None, n) if matches!(op, Op::Avg) => apply(Op::Div, Some(acc.sum), Some(Decimal::from(n))),
            (None, _) => Ok(Some(acc.sum)),
        };
        result(ctx, op, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn arithmetic_keeps_the_scale_and_every_digit() {
        assert_eq!(apply(Op::Add, Some(d("0.90")), Some(d("0.10"))).unwrap().unwrap().to_string(), "1.00");
        let big = apply(Op::Add, Some(d("12345678901234567.89")), Some(d("0.10"))).unwrap().unwrap();
        assert_eq!(big.to_string(), "12345678901234567.99");
        assert_eq!(apply(Op::Mul, Some(d("1.5")), Some(d("2.25"))).unwrap().unwrap().to_string(), "3.375");
        assert_eq!(apply(Op::Neg, Some(d("2.50")), None).unwrap().unwrap().to_string(), "-2.50");
        assert_eq!(apply(Op::Add, None, Some(d("1"))).unwrap(), None);
        assert!(apply(Op::Div, Some(d("1")), Some(d("0"))).unwrap_err().contains("division by zero"));
        let max = Decimal::MAX;
        assert!(apply(Op::Add, Some(max), Some(max)).unwrap_err().contains("does not fit"));
    }

    #[test]
    fn collation_orders_by_value_and_is_total() {
        assert_eq!(compare("1.0", "1.00"), Ordering::Equal);
        assert_eq!(compare("9.5", "10"), Ordering::Less);
        assert_eq!(compare("-2", "-10"), Ordering::Greater);
        assert_eq!(compare("12345678901234567.89", "12345678901234567.9"), Ordering::Less);
        assert_eq!(compare("abc", "1"), Ordering::Greater);
        assert_eq!(compare("abc", "abd"), Ordering::Less);
    }
}
