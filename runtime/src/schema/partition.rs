//! Declarative partitioning: what `#[model(partition(...))]` declares.
//!
//! - `partition(range(created_at), every = "1 month", ahead = 3, retain = "12 months",
//!   archive = "archive")`: one partition per period of a time column (`every` = `"N days"`,
//!   `"N weeks"`, `"N months"`, `"N years"`), or per block of an integer column
//!   (`every = 1000000`), plus a default partition.
//! - `partition(list(country), values("DE", "FR"))`: one partition per listed value, plus a
//!   default partition.
//! - `partition(hash(id, modulus = 8))`: eight partitions by a hash of the column.
//!
//! The partition names are computed here, so DDL, maintenance and the tests agree on them.

use std::time::Duration;

use super::{ColumnType, Scalar};

/// A model's partitioning.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PartitionSchema {
    /// Position in [`ModelSchema::fields`](super::ModelSchema::fields) of the partition column.
    pub column: usize,
    /// Range, list or hash, with its parameters.
    pub kind: PartitionKind,
}

/// How a [`PartitionSchema`] splits rows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PartitionKind {
    /// `range(col)`: consecutive, non-overlapping blocks of the column, plus a default
    /// partition for rows outside every block.
    Range {
        /// The width of one partition.
        every: PartitionStep,
        /// How many partitions after the current one `ensure_partitions` keeps created.
        ahead: u32,
        /// Partitions whose whole range ends at or before `now - retain` are expired by
        /// `apply_retention` (time columns only).
        retain: Option<PartitionStep>,
        /// Where expired partitions go: detached and moved to this schema (PostgreSQL) when
        /// set, detached and dropped otherwise.
        archive: Option<&'static str>,
    },
    /// `list(col)`: one partition per listed value, plus a default partition.
    List {
        /// The listed values, each getting its own partition.
        values: &'static [PartitionValue],
    },
    /// `hash(col, modulus = n)`: `n` partitions by a hash of the column.
    Hash {
        /// The number of partitions (at least 2).
        modulus: u32,
    },
}

/// The width of a range partition, or a retention bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionStep {
    /// Calendar months (`"1 month"`, `"3 months"`; `"1 year"` is 12 months).
    Months(u32),
    /// Days (`"1 day"`, `"7 days"`; `"1 week"` is 7 days).
    Days(u32),
    /// A block of an integer column (`every = 1000000`).
    Int(i64),
}

/// A value of a list partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionValue {
    /// A text value.
    Str(&'static str),
    /// An integer value.
    Int(i64),
}

impl PartitionStep {
    /// Reads `"1 month"`, `"3 months"`, `"1 year"`, `"7 days"`, `"2 weeks"` (and the singular /
    /// plural and short forms `mon`, `d`, `w`, `y`). Integer steps are not written as text.
    pub fn parse(text: &str) -> Result<PartitionStep, String> {
        let t = text.trim();
        let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        if digits == 0 {
            return Err(format!("cannot read {text:?} as a partition interval: it must start with a number"));
        }
        let n: u32 = t[..digits].parse().map_err(|_| format!("{text:?} is too large"))?;
        if n == 0 {
            return Err(format!("a partition interval must be longer than zero, not {text:?}"));
        }
        let unit = t[digits..].trim();
        let scaled = |factor: u32| n.checked_mul(factor).ok_or_else(|| format!("{text:?} is too large"));
        match unit {
            "day" | "days" | "d" => Ok(PartitionStep::Days(n)),
            "week" | "weeks" | "w" => Ok(PartitionStep::Days(scaled(7)?)),
            "month" | "months" | "mon" => Ok(PartitionStep::Months(n)),
            "year" | "years" | "y" => Ok(PartitionStep::Months(scaled(12)?)),
            "" => Err(format!("{text:?} needs a unit (days, weeks, months or years)")),
            other => {
                Err(format!("unknown partition interval unit {other:?} in {text:?}: use days, weeks, months or years"))
            }
        }
    }

    /// A length for stores that count in seconds (MongoDB TTL indexes), never shorter than
    /// the calendar interval: a month counts as 31 days (a year as 372). `None` for integer
    /// steps.
    pub fn approx_duration(self) -> Option<Duration> {
        const DAY: u64 = 86_400;
        match self {
            PartitionStep::Months(n) => Some(Duration::from_secs(u64::from(n) * 31 * DAY)),
            PartitionStep::Days(n) => Some(Duration::from_secs(u64::from(n) * DAY)),
            PartitionStep::Int(_) => None,
        }
    }

    /// The step as `every = ...` writes it (`"1 month"`, `"7 days"`, `1000`).
    pub fn describe(self) -> String {
        match self {
            PartitionStep::Months(1) => "1 month".to_owned(),
            PartitionStep::Months(n) => format!("{n} months"),
            PartitionStep::Days(1) => "1 day".to_owned(),
            PartitionStep::Days(n) => format!("{n} days"),
            PartitionStep::Int(n) => n.to_string(),
        }
    }
}

impl PartitionSchema {
    /// The partition strategy's SQL keyword: `RANGE`, `LIST` or `HASH`.
    pub fn strategy(&self) -> &'static str {
        match self.kind {
            PartitionKind::Range { .. } => "RANGE",
            PartitionKind::List { .. } => "LIST",
            PartitionKind::Hash { .. } => "HASH",
        }
    }

    /// Whether the table gets a default partition (range and list).
    pub fn has_default(&self) -> bool {
        !matches!(self.kind, PartitionKind::Hash { .. })
    }
}

/// Whether a column can be range-partitioned by a time interval (`every = "1 month"`): a
/// non-array `DateTime<Utc>`, `NaiveDateTime` or `NaiveDate`. `#[derive(Model)]` checks it at
/// compile time.
pub const fn partition_time_column(ty: ColumnType) -> bool {
    !ty.array && matches!(ty.scalar, Scalar::TimestampTz | Scalar::Timestamp | Scalar::Date)
}

/// Whether a column can be range-partitioned by integer blocks (`every = 1000000`): a
/// non-array `i16`, `i32` or `i64`.
pub const fn partition_int_column(ty: ColumnType) -> bool {
    !ty.array && matches!(ty.scalar, Scalar::I16 | Scalar::I32 | Scalar::I64)
}

/// The name of the default partition of `table` (a table name without its schema):
/// `{table}_default`, in the table's schema.
pub fn default_partition_name(table: &str) -> String {
    format!("{table}_default")
}

/// The name of hash partition `remainder` of `table`: `{table}_h{remainder}`.
pub fn hash_partition_name(table: &str, remainder: u32) -> String {
    format!("{table}_h{remainder}")
}

/// The name of the list partition of `value`: `{table}_v_{value}` with every character that
/// is not an ASCII letter or digit written as `_` (and a negative number's `-` as `m`).
pub fn list_partition_name(table: &str, value: PartitionValue) -> String {
    let text = match value {
        PartitionValue::Str(s) => {
            s.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect()
        }
        PartitionValue::Int(n) if n < 0 => format!("m{}", n.unsigned_abs()),
        PartitionValue::Int(n) => n.to_string(),
    };
    format!("{table}_v_{text}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_parse_with_units() {
        assert_eq!(PartitionStep::parse("1 month"), Ok(PartitionStep::Months(1)));
        assert_eq!(PartitionStep::parse("3 months"), Ok(PartitionStep::Months(3)));
        assert_eq!(PartitionStep::parse("1 year"), Ok(PartitionStep::Months(12)));
        assert_eq!(PartitionStep::parse("2 weeks"), Ok(PartitionStep::Days(14)));
        assert_eq!(PartitionStep::parse("1day"), Ok(PartitionStep::Days(1)));
        assert!(PartitionStep::parse("month").is_err());
        assert!(PartitionStep::parse("0 days").is_err());
        assert!(PartitionStep::parse("1 fortnight").is_err());
        assert!(PartitionStep::parse("5").is_err());
        assert!(PartitionStep::parse("99999999999 days").is_err());
    }

    #[test]
    fn partition_names_are_safe_identifiers() {
        assert_eq!(list_partition_name("users", PartitionValue::Str("DE")), "users_v_de");
        assert_eq!(list_partition_name("users", PartitionValue::Str("a-b c")), "users_v_a_b_c");
        assert_eq!(list_partition_name("t", PartitionValue::Int(-3)), "t_v_m3");
        assert_eq!(hash_partition_name("t", 7), "t_h7");
        assert_eq!(default_partition_name("t"), "t_default");
    }
}
