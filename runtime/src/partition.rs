//! Partition maintenance for models declared with `#[model(partition(..))]`: creating range
//! partitions ahead of time ([`Db::ensure_partitions`]) and retention
//! ([`Db::expire_partitions`]). PostgreSQL only; on SQLite a partitioned model is a plain table
//! and both are no-ops.
//!
//! polystore does its own maintenance rather than relying on `pg_partman`: the work is a few
//! statements per table (computed from the model, which already knows the column, interval and
//! retention), it runs from the application or the `migrate partitions` command, and it needs no
//! extension installed on every server (managed services and CI included).
//!
//! Each maintenance run of a table holds a transaction-level advisory lock keyed by the table
//! name, so concurrent runs (several application instances starting at once) create each
//! partition exactly once and never fail on each other. A range partition whose rows were
//! already written to the default partition is created with those rows moved out of the
//! default partition into it, in the same transaction.

use chrono::{DateTime, Datelike, NaiveDate, Utc};

use crate::db::{Backend, Db, Tx};
use crate::error::{Error, Result};
use crate::exec;
use crate::schema::{
    ColumnType, ModelSchema, PartitionKind, PartitionSchema, PartitionStep, Scalar, default_partition_name,
};
use crate::sql::ddl::{partition_ref, static_partitions};
use crate::sql::{Param, Statement};
use crate::value::Value;

/// One range partition: its name (without schema) and bounds as SQL literals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangePartition {
    /// The partition's table name, in the model's schema (`events_p2026_12`).
    pub name: String,
    /// The inclusive lower bound, as an SQL literal (`'2026-12-01 00:00:00+00'`).
    pub from: String,
    /// The exclusive upper bound, as an SQL literal.
    pub to: String,
}

/// A partition [`Db::expire_partitions`] removed from its table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiredPartition {
    /// The model's table.
    pub table: &'static str,
    /// The partition's name.
    pub partition: String,
    /// Where it was moved (`archive.events_p2025_01`), or `None` when it was dropped.
    pub archived_as: Option<String>,
}

/// The start of the period of `step` that holds `day`: months are counted from year 0 and
/// days from 1970-01-01, so periods of the same step always line up.
fn period_start(step: PartitionStep, day: NaiveDate) -> Option<NaiveDate> {
    match step {
        PartitionStep::Months(n) => {
            let index = i64::from(day.year()) * 12 + i64::from(day.month0());
            let start = index.div_euclid(i64::from(n)) * i64::from(n);
            NaiveDate::from_ymd_opt(
                i32::try_from(start.div_euclid(12)).ok()?,
                u32::try_from(start.rem_euclid(12)).ok()? + 1,
                1,
            )
        }
        PartitionStep::Days(n) => {
            let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
            let days = (day - epoch).num_days();
            epoch.checked_add_signed(chrono::Duration::days(days.div_euclid(i64::from(n)) * i64::from(n)))
        }
        PartitionStep::Int(_) => None,
    }
}

/// `start` moved by `k` steps.
fn advance(step: PartitionStep, start: NaiveDate, k: i64) -> Option<NaiveDate> {
    match step {
        PartitionStep::Months(n) => {
            let months = u32::try_from(k.checked_mul(i64::from(n))?.abs()).ok()?;
            if k >= 0 {
                start.checked_add_months(chrono::Months::new(months))
            } else {
                start.checked_sub_months(chrono::Months::new(months))
            }
        }
        PartitionStep::Days(n) => start.checked_add_signed(chrono::Duration::days(k.checked_mul(i64::from(n))?)),
        PartitionStep::Int(_) => None,
    }
}

/// A date as a bound literal of a column of type `ty`.
fn date_literal(day: NaiveDate, ty: ColumnType) -> String {
    match ty.scalar {
        Scalar::TimestampTz => format!("'{} 00:00:00+00'", day.format("%Y-%m-%d")),
        Scalar::Timestamp => format!("'{} 00:00:00'", day.format("%Y-%m-%d")),
        _ => format!("'{}'", day.format("%Y-%m-%d")),
    }
}

/// The name of the time partition starting on `start`: `{table}_p2026_12` for monthly steps,
/// `{table}_p2026_12_07` for daily ones.
fn time_partition_name(table: &str, step: PartitionStep, start: NaiveDate) -> String {
    match step {
        PartitionStep::Months(_) => format!("{table}_p{}", start.format("%Y_%m")),
        _ => format!("{table}_p{}", start.format("%Y_%m_%d")),
    }
}

/// The name of the integer partition starting at `start`: `{table}_p1000`, `{table}_pm1000`
/// below zero.
fn int_partition_name(table: &str, start: i64) -> String {
    if start < 0 { format!("{table}_pm{}", start.unsigned_abs()) } else { format!("{table}_p{start}") }
}

/// The range partitions a time-partitioned model needs at `now`: the one holding `now` and the
/// `ahead` after it. Empty for other partitionings.
pub fn time_partitions(schema: &ModelSchema, now: DateTime<Utc>) -> Vec<RangePartition> {
    let Some(PartitionSchema { column, kind: PartitionKind::Range { every, ahead, .. } }) = schema.partition else {
        return Vec::new();
    };
    let ty = schema.fields[column].ty;
    let Some(current) = period_start(every, now.date_naive()) else { return Vec::new() };
    (0..=i64::from(ahead))
        .filter_map(|k| {
            let from = advance(every, current, k)?;
            let to = advance(every, current, k + 1)?;
            Some(RangePartition {
                name: time_partition_name(schema.table_name(), every, from),
                from: date_literal(from, ty),
                to: date_literal(to, ty),
            })
        })
        .collect()
}

/// The integer range partitions from the block holding `max` (the column's largest value, or
/// 0 for an empty table) and the `ahead` blocks after it.
pub fn int_partitions(schema: &ModelSchema, max: i64) -> Vec<RangePartition> {
    let Some(PartitionSchema { kind: PartitionKind::Range { every: PartitionStep::Int(n), ahead, .. }, .. }) =
        schema.partition
    else {
        return Vec::new();
    };
    let first = max.div_euclid(n) * n;
    (0..=i64::from(ahead))
        .map_while(|k| {
            let from = first.checked_add(k.checked_mul(n)?)?;
            let to = from.checked_add(n)?;
            Some(RangePartition {
                name: int_partition_name(schema.table_name(), from),
                from: from.to_string(),
                to: to.to_string(),
            })
        })
        .collect()
}

const TEXT: ColumnType = ColumnType::scalar(Scalar::Text).nullable();

fn text(s: &str) -> Param {
    Param { value: Value::Text(s.to_owned()), ty: TEXT }
}

/// Serializes maintenance of one table across sessions until the transaction ends.
async fn lock_table(tx: &mut Tx<'_>, schema: &'static ModelSchema) -> Result<()> {
    let stmt = Statement {
        sql: "SELECT pg_advisory_xact_lock(hashtext('polystore.partition.' || $1))".to_owned(),
        params: vec![text(schema.table)],
    };
    exec::fetch_with(&mut &mut *tx, "partition_lock", Some(schema), stmt, |_| Ok(())).await.map(drop)
}

/// The quoted table name `schema.table` as a text parameter for `::regclass`.
fn regclass(db: &Db, schema: &ModelSchema) -> String {
    let mut s = String::new();
    db.dialect().quote_table(&mut s, schema.table);
    s
}

/// The names of the partitions `schema`'s table has now.
async fn existing_partitions(tx: &mut Tx<'_>, db: &Db, schema: &'static ModelSchema) -> Result<Vec<String>> {
    let stmt = Statement {
        sql: "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
              WHERE i.inhparent = $1::regclass"
            .to_owned(),
        params: vec![text(&regclass(db, schema))],
    };
    exec::fetch_with(&mut &mut *tx, "partition_list", Some(schema), stmt, |row| {
        match row.value(0, TEXT).map_err(|e| Error::Database { code: None, message: e.to_string() })? {
            Value::Text(s) => Ok(s),
            other => Err(Error::Database { code: None, message: format!("unexpected partition name {other:?}") }),
        }
    })
    .await
}

/// Creates `part` as a partition of `schema`'s table, moving rows of its range out of the
/// default partition first if there are any.
async fn create_range_partition(
    tx: &mut Tx<'_>,
    db: &Db,
    schema: &'static ModelSchema,
    part: &RangePartition,
) -> Result<()> {
    let d = db.dialect();
    let mut parent = String::new();
    d.quote_table(&mut parent, schema.table);
    let mut col = String::new();
    d.quote_ident(&mut col, schema.fields[schema.partition.map_or(0, |p| p.column)].column);
    let target = partition_ref(d, schema, &part.name);
    let default = partition_ref(d, schema, &default_partition_name(schema.table_name()));
    let range = format!("{col} >= {} AND {col} < {}", part.from, part.to);
    let bounds = format!("FOR VALUES FROM ({}) TO ({})", part.from, part.to);
    let stmt = Statement { sql: format!("SELECT count(*) FROM {default} WHERE {range}"), params: Vec::new() };
    let stray = exec::fetch_i64(&mut &mut *tx, "partition_default_rows", schema, stmt).await?;
    let statements = if stray == 0 {
        vec![format!("CREATE TABLE {target} PARTITION OF {parent} {bounds}")]
    } else {
        vec![
            format!("CREATE TABLE {target} (LIKE {parent} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"),
            format!("INSERT INTO {target} SELECT * FROM {default} WHERE {range}"),
            format!("DELETE FROM {default} WHERE {range}"),
            format!("ALTER TABLE {parent} ATTACH PARTITION {target} {bounds}"),
        ]
    };
    for sql in statements {
        exec::execute_raw(&mut &mut *tx, "partition_create", Some(schema), &sql).await?;
    }
    Ok(())
}

impl Db {
    /// Creates the partitions each partitioned model in `schemas` needs now: for `range` on a
    /// time column, the partition holding the current time and the `ahead` after it (default
    /// 3); for `range` on an integer column, the block holding the largest value and the
    /// `ahead` after it; for `list` and `hash`, any declared partition that is missing (a value
    /// added to `values(..)`). Returns the names of the partitions created. Run it on a
    /// schedule (daily is plenty for monthly partitions) or with `migrate partitions`;
    /// [`Db::create_all`] runs it too. A no-op on SQLite.
    pub async fn ensure_partitions(&self, schemas: &[&'static ModelSchema]) -> Result<Vec<String>> {
        self.ensure_partitions_at(schemas, Utc::now()).await
    }

    /// [`Db::ensure_partitions`] as if the time were `now`.
    pub async fn ensure_partitions_at(
        &self,
        schemas: &[&'static ModelSchema],
        now: DateTime<Utc>,
    ) -> Result<Vec<String>> {
        let mut created = Vec::new();
        if self.backend() != Backend::Postgres {
            return Ok(created);
        }
        for &schema in schemas {
            let Some(p) = schema.partition else { continue };
            let mut tx = self.begin().await?;
            lock_table(&mut tx, schema).await?;
            let existing = existing_partitions(&mut tx, self, schema).await?;
            let wanted = match p.kind {
                PartitionKind::Range { every: PartitionStep::Int(_), .. } => {
                    let mut col = String::new();
                    self.dialect().quote_ident(&mut col, schema.fields[p.column].column);
                    let mut table = String::new();
                    self.dialect().quote_table(&mut table, schema.table);
                    let stmt = Statement {
                        sql: format!("SELECT coalesce(max({col}), 0)::bigint FROM {table}"),
                        params: Vec::new(),
                    };
                    let max = exec::fetch_i64(&mut &mut tx, "partition_max", schema, stmt).await?;
                    int_partitions(schema, max)
                }
                PartitionKind::Range { .. } => time_partitions(schema, now),
                PartitionKind::List { .. } | PartitionKind::Hash { .. } => {
                    for sql in static_partitions(self.dialect(), schema, &p, true) {
                        exec::execute_raw(&mut &mut tx, "partition_create", Some(schema), &sql).await?;
                    }
                    let after = existing_partitions(&mut tx, self, schema).await?;
                    created.extend(after.into_iter().filter(|n| !existing.contains(n)));
                    tx.commit().await?;
                    continue;
                }
            };
            if !existing.contains(&default_partition_name(schema.table_name())) {
                for sql in static_partitions(self.dialect(), schema, &p, true) {
                    exec::execute_raw(&mut &mut tx, "partition_create", Some(schema), &sql).await?;
                }
                created.push(default_partition_name(schema.table_name()));
            }
            for part in wanted.iter().filter(|w| !existing.contains(&w.name)) {
                create_range_partition(&mut tx, self, schema, part).await?;
                created.push(part.name.clone());
            }
            tx.commit().await?;
        }
        Ok(created)
    }

    /// Applies the retention of each time-partitioned model in `schemas` declaring `retain`:
    /// every range partition whose upper bound is at or before `now - retain` is detached from
    /// the table, then dropped — or, with `archive = "schema"`, moved to that schema and kept
    /// (queries on the model no longer see its rows; the data stays for export or restore).
    /// The default partition is never touched. A no-op on SQLite.
    pub async fn expire_partitions(&self, schemas: &[&'static ModelSchema]) -> Result<Vec<ExpiredPartition>> {
        self.expire_partitions_at(schemas, Utc::now()).await
    }

    /// [`Db::expire_partitions`] as if the time were `now`.
    pub async fn expire_partitions_at(
        &self,
        schemas: &[&'static ModelSchema],
        now: DateTime<Utc>,
    ) -> Result<Vec<ExpiredPartition>> {
        let mut out = Vec::new();
        if self.backend() != Backend::Postgres {
            return Ok(out);
        }
        for &schema in schemas {
            let Some(PartitionSchema { column, kind: PartitionKind::Range { retain: Some(retain), archive, .. } }) =
                schema.partition
            else {
                continue;
            };
            let Some(cutoff) = advance(retain, now.date_naive(), -1) else { continue };
            let ty = schema.fields[column].ty;
            let cast = match ty.scalar {
                Scalar::TimestampTz => "timestamptz",
                Scalar::Timestamp => "timestamp",
                _ => "date",
            };
            let mut tx = self.begin().await?;
            lock_table(&mut tx, schema).await?;
            // A partition's upper bound, read back from PostgreSQL's own rendering of it.
            let stmt = Statement {
                sql: format!(
                    "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
                     WHERE i.inhparent = $1::regclass AND NOT pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT' \
                     AND substring(pg_get_expr(c.relpartbound, c.oid) from 'TO \\(''([^'']*)''\\)')::{cast} <= $2::{cast} \
                     ORDER BY 1"
                ),
                params: vec![text(&regclass(self, schema)), text(&date_literal(cutoff, ty).replace('\'', ""))],
            };
            let expired = exec::fetch_with(&mut &mut tx, "partition_expired", Some(schema), stmt, |row| {
                match row.value(0, TEXT).map_err(|e| Error::Database { code: None, message: e.to_string() })? {
                    Value::Text(s) => Ok(s),
                    other => {
                        Err(Error::Database { code: None, message: format!("unexpected partition name {other:?}") })
                    }
                }
            })
            .await?;
            let d = self.dialect();
            let mut parent = String::new();
            d.quote_table(&mut parent, schema.table);
            if let Some(archive) = archive.filter(|_| !expired.is_empty()) {
                let mut sql = String::from("CREATE SCHEMA IF NOT EXISTS ");
                d.quote_ident(&mut sql, archive);
                exec::execute_raw(&mut &mut tx, "partition_archive", Some(schema), &sql).await?;
            }
            for name in expired {
                let part = partition_ref(d, schema, &name);
                exec::execute_raw(
                    &mut &mut tx,
                    "partition_detach",
                    Some(schema),
                    &format!("ALTER TABLE {parent} DETACH PARTITION {part}"),
                )
                .await?;
                let archived_as = match archive {
                    Some(archive) => {
                        let mut sql = format!("ALTER TABLE {part} SET SCHEMA ");
                        d.quote_ident(&mut sql, archive);
                        exec::execute_raw(&mut &mut tx, "partition_archive", Some(schema), &sql).await?;
                        Some(format!("{archive}.{name}"))
                    }
                    None => {
                        exec::execute_raw(&mut &mut tx, "partition_drop", Some(schema), &format!("DROP TABLE {part}"))
                            .await?;
                        None
                    }
                };
                out.push(ExpiredPartition { table: schema.table, partition: name, archived_as });
            }
            tx.commit().await?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn periods_line_up_on_calendar_boundaries() {
        assert_eq!(period_start(PartitionStep::Months(1), day(2026, 12, 1)), Some(day(2026, 12, 1)));
        assert_eq!(period_start(PartitionStep::Months(1), day(2026, 12, 31)), Some(day(2026, 12, 1)));
        assert_eq!(period_start(PartitionStep::Months(3), day(2026, 5, 17)), Some(day(2026, 4, 1)));
        assert_eq!(period_start(PartitionStep::Months(12), day(2026, 5, 17)), Some(day(2026, 1, 1)));
        assert_eq!(period_start(PartitionStep::Days(1), day(2026, 5, 17)), Some(day(2026, 5, 17)));
        // 1970-01-01 was a Thursday: weekly periods start on Thursdays.
        assert_eq!(period_start(PartitionStep::Days(7), day(2026, 12, 1)), Some(day(2026, 11, 26)));
        assert_eq!(period_start(PartitionStep::Days(7), day(1969, 12, 31)), Some(day(1969, 12, 25)));
        assert_eq!(advance(PartitionStep::Months(1), day(2026, 12, 1), 1), Some(day(2027, 1, 1)));
        assert_eq!(advance(PartitionStep::Months(12), day(2026, 12, 1), -1), Some(day(2025, 12, 1)));
    }

    #[test]
    fn partition_names_sort_in_time_order() {
        assert_eq!(time_partition_name("ev", PartitionStep::Months(1), day(2026, 2, 1)), "ev_p2026_02");
        assert_eq!(time_partition_name("ev", PartitionStep::Days(7), day(2026, 2, 5)), "ev_p2026_02_05");
        assert_eq!(int_partition_name("t", -1000), "t_pm1000");
        assert_eq!(int_partition_name("t", 5000), "t_p5000");
    }
}
