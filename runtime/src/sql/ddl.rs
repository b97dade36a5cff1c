//! DDL computed from a model's schema description: CREATE TABLE (with NOT NULL, primary key,
//! defaults and type checks) and its indexes, and DROP TABLE.

use crate::error::Error;
use crate::schema::{
    AutoTimestamp, Check, ColumnType, FieldSchema, ModelSchema, PartitionKind, PartitionSchema, PartitionValue, Scalar,
    default_partition_name, hash_partition_name, list_partition_name,
};
use crate::sql::{Dialect, default_literal};

/// The statements that create the model's table and indexes, in order.
pub fn create_table(d: &dyn Dialect, schema: &ModelSchema, if_not_exists: bool) -> Result<Vec<String>, Error> {
    create_table_with(d, schema, if_not_exists, true)
}

/// [`create_table`] with the foreign keys left out when `foreign_keys` is false (a Citus table
/// gets them after it is distributed: see [`crate::sql::citus`]).
pub(crate) fn create_table_with(
    d: &dyn Dialect,
    schema: &ModelSchema,
    if_not_exists: bool,
    with_foreign_keys: bool,
) -> Result<Vec<String>, Error> {
    let mut out = Vec::with_capacity(1 + schema.indexes.len());
    let mut sql = String::from("CREATE TABLE ");
    if if_not_exists {
        sql.push_str("IF NOT EXISTS ");
    }
    d.quote_table(&mut sql, schema.table);
    sql.push_str(" (\n");
    let inline_key = schema.primary_key.len() == 1
        && schema.fields[schema.primary_key[0]].generated
        && d.generated_key_column().is_some();
    let mut lines = Vec::with_capacity(schema.fields.len() + 1);
    for (i, f) in schema.fields.iter().enumerate() {
        let mut line = String::from("  ");
        if inline_key && schema.is_key(i) {
            d.quote_ident(&mut line, f.column);
            line.push(' ');
            line.push_str(d.generated_key_column().unwrap_or_default());
        } else {
            line.push_str(&column_definition(d, schema, f)?);
        }
        lines.push(line);
    }
    if !inline_key && !schema.primary_key.is_empty() {
        let mut line = String::from("  CONSTRAINT ");
        d.quote_ident(&mut line, &schema.primary_key_name());
        line.push_str(" PRIMARY KEY (");
        for (n, f) in schema.key_fields().enumerate() {
            if n > 0 {
                line.push_str(", ");
            }
            d.quote_ident(&mut line, f.column);
        }
        line.push(')');
        lines.push(line);
    }
    if with_foreign_keys {
        lines.extend(foreign_keys(d, schema));
    }
    sql.push_str(&lines.join(",\n"));
    sql.push_str("\n)");
    let partition = schema.partition.as_ref().filter(|_| d.name() == "postgresql");
    if let Some(p) = partition {
        sql.push_str(" PARTITION BY ");
        sql.push_str(p.strategy());
        sql.push_str(" (");
        d.quote_ident(&mut sql, schema.fields[p.column].column);
        sql.push(')');
    }
    if d.name() == "sqlite" {
        sql.push_str(" STRICT");
    }
    out.push(sql);
    if let Some(p) = partition {
        out.extend(static_partitions(d, schema, p, if_not_exists));
    }
    for ix in schema.indexes {
        let mut s = String::from(if ix.unique { "CREATE UNIQUE INDEX " } else { "CREATE INDEX " });
        if if_not_exists {
            s.push_str("IF NOT EXISTS ");
        }
        d.quote_ident(&mut s, ix.name);
        s.push_str(" ON ");
        d.quote_table(&mut s, schema.table);
        s.push_str(" (");
        for (n, &i) in ix.fields.iter().enumerate() {
            if n > 0 {
                s.push_str(", ");
            }
            d.quote_ident(&mut s, schema.fields[i].column);
        }
        s.push(')');
        // A soft-delete model's unique values are unique among its live rows only: a deleted
        // row keeps its values without blocking a new row from taking them.
        if let (true, Some(stamp)) = (ix.unique, schema.soft_delete) {
            s.push_str(" WHERE ");
            d.quote_ident(&mut s, schema.fields[stamp].column);
            s.push_str(" IS NULL");
        }
        out.push(s);
    }
    out.extend(foreign_key_indexes(d, schema, if_not_exists));
    Ok(out)
}

/// The partitions a partitioned table gets with its CREATE TABLE (PostgreSQL): the default
/// partition (range, list), one partition per listed value (list) and the `modulus` hash
/// partitions (hash). Range partitions depend on the date and are created by
/// [`Db::ensure_partitions`](crate::Db::ensure_partitions).
pub fn static_partitions(
    d: &dyn Dialect,
    schema: &ModelSchema,
    p: &PartitionSchema,
    if_not_exists: bool,
) -> Vec<String> {
    let mut out = Vec::new();
    let head = |name: &str| {
        let mut s = String::from("CREATE TABLE ");
        if if_not_exists {
            s.push_str("IF NOT EXISTS ");
        }
        s.push_str(&partition_ref(d, schema, name));
        s.push_str(" PARTITION OF ");
        d.quote_table(&mut s, schema.table);
        s
    };
    match p.kind {
        PartitionKind::Hash { modulus } => {
            for r in 0..modulus {
                out.push(format!(
                    "{} FOR VALUES WITH (MODULUS {modulus}, REMAINDER {r})",
                    head(&hash_partition_name(schema.table_name(), r))
                ));
            }
        }
        PartitionKind::List { values } => {
            for &v in values {
                out.push(format!(
                    "{} FOR VALUES IN ({})",
                    head(&list_partition_name(schema.table_name(), v)),
                    list_literal(v)
                ));
            }
        }
        PartitionKind::Range { .. } => {}
    }
    if p.has_default() {
        out.push(format!("{} DEFAULT", head(&default_partition_name(schema.table_name()))));
    }
    out
}

/// A reference to the partition `name` of `schema`'s table: in the same schema as the table
/// (as the dialect writes the table, so a drift check's shadow keeps its partitions too).
pub(crate) fn partition_ref(d: &dyn Dialect, schema: &ModelSchema, name: &str) -> String {
    let mut parent = String::new();
    d.quote_table(&mut parent, schema.table);
    let mut tail = String::new();
    d.quote_ident(&mut tail, schema.table_name());
    let mut out = parent.strip_suffix(&tail).unwrap_or_default().to_owned();
    d.quote_ident(&mut out, name);
    out
}

/// A list partition value as an SQL literal.
pub(crate) fn list_literal(v: PartitionValue) -> String {
    match v {
        PartitionValue::Str(s) => format!("'{}'", s.replace('\'', "''")),
        PartitionValue::Int(n) => n.to_string(),
    }
}

/// `CONSTRAINT "{table}_{column}_fkey" FOREIGN KEY (..) REFERENCES target (key) ON DELETE ..
/// ON UPDATE ..`, one per `belongs_to` relation.
pub fn foreign_keys(d: &dyn Dialect, schema: &ModelSchema) -> Vec<String> {
    schema
        .relations
        .iter()
        .filter(|r| r.kind == crate::schema::RelationKind::BelongsTo)
        .map(|r| {
            let target = (r.target)();
            let column = schema.fields[r.local_field].column;
            let keys: Vec<&str> = target.key_fields().map(|f| f.column).collect();
            let fk = ForeignKeyDef {
                name: &format!("{}_{column}_fkey", schema.table_name()),
                columns: &[column],
                target: target.table,
                target_columns: &keys,
                on_delete: r.on_delete.sql(),
                on_update: r.on_update.sql(),
            };
            format!("  {}", foreign_key_clause(d, &fk))
        })
        .collect()
}

/// A foreign key's parts, for [`foreign_key_clause`].
pub(crate) struct ForeignKeyDef<'a> {
    /// The constraint name.
    pub name: &'a str,
    /// The referring columns.
    pub columns: &'a [&'a str],
    /// The referenced table.
    pub target: &'a str,
    /// The referenced columns.
    pub target_columns: &'a [&'a str],
    /// `ON DELETE` action (SQL spelling).
    pub on_delete: &'a str,
    /// `ON UPDATE` action (SQL spelling).
    pub on_update: &'a str,
}

/// `CONSTRAINT "name" FOREIGN KEY (..) REFERENCES "target" (..) ON DELETE .. ON UPDATE ..`:
/// a table constraint as CREATE TABLE and `ALTER TABLE .. ADD` write it.
pub(crate) fn foreign_key_clause(d: &dyn Dialect, fk: &ForeignKeyDef<'_>) -> String {
    let list = |cols: &[&str]| {
        let mut s = String::new();
        for (n, c) in cols.iter().enumerate() {
            if n > 0 {
                s.push_str(", ");
            }
            d.quote_ident(&mut s, c);
        }
        s
    };
    let mut line = String::from("CONSTRAINT ");
    d.quote_ident(&mut line, fk.name);
    line.push_str(" FOREIGN KEY (");
    line.push_str(&list(fk.columns));
    line.push_str(") REFERENCES ");
    d.quote_table(&mut line, fk.target);
    line.push_str(" (");
    line.push_str(&list(fk.target_columns));
    line.push_str(") ON DELETE ");
    line.push_str(fk.on_delete);
    line.push_str(" ON UPDATE ");
    line.push_str(fk.on_update);
    line
}

/// An index on each foreign-key column that no declared index (nor the primary key) starts
/// with: joins and relation loads filter on it, and deleting a referenced row checks it.
pub fn foreign_key_indexes(d: &dyn Dialect, schema: &ModelSchema, if_not_exists: bool) -> Vec<String> {
    let covered = |field: usize| {
        schema.primary_key.first() == Some(&field) || schema.indexes.iter().any(|ix| ix.fields.first() == Some(&field))
    };
    schema
        .relations
        .iter()
        .filter(|r| r.kind == crate::schema::RelationKind::BelongsTo && !covered(r.local_field))
        .map(|r| {
            let column = schema.fields[r.local_field].column;
            let mut s = String::from("CREATE INDEX ");
            if if_not_exists {
                s.push_str("IF NOT EXISTS ");
            }
            d.quote_ident(&mut s, &format!("{}_{column}_idx", schema.table_name()));
            s.push_str(" ON ");
            d.quote_table(&mut s, schema.table);
            s.push_str(" (");
            d.quote_ident(&mut s, column);
            s.push(')');
            s
        })
        .collect()
}

/// One column's definition as CREATE TABLE writes it (and `ALTER TABLE .. ADD COLUMN` can):
/// name, type, identity, NOT NULL, default, the type's and enum's CHECKs and the named
/// `#[validate]` rule CHECKs. Not for a SQLite inline generated key (see
/// [`Dialect::generated_key_column`]).
pub(crate) fn column_definition(d: &dyn Dialect, schema: &ModelSchema, f: &FieldSchema) -> Result<String, Error> {
    let mut line = String::new();
    d.quote_ident(&mut line, f.column);
    line.push(' ');
    line.push_str(&d.column_type(&f.ty));
    if f.generated {
        line.push_str(d.identity_clause());
    }
    if !f.ty.nullable {
        line.push_str(" NOT NULL");
    }
    if let Some(default) = column_default(d, schema, f)? {
        line.push_str(" DEFAULT ");
        line.push_str(&default);
    }
    let mut col = String::new();
    d.quote_ident(&mut col, f.column);
    if let Some(check) = enum_check(d, &col, &f.ty) {
        line.push_str(&format!(" CHECK ({check})"));
    }
    if let Some(check) = d.type_check(&f.ty) {
        line.push_str(&format!(" CHECK ({})", check.replace("{col}", &col)));
    }
    for check in f.checks {
        if let Some(expr) = rule_check(d, &col, &f.ty, check) {
            line.push_str(" CONSTRAINT ");
            d.quote_ident(&mut line, &rule_check_name(schema.table_name(), f.column, check));
            line.push_str(&format!(" CHECK ({expr})"));
        }
    }
    Ok(line)
}

/// The DEFAULT expression of a column: its declared literal, or the dialect's "now" for an
/// automatic timestamp.
pub(crate) fn column_default(d: &dyn Dialect, schema: &ModelSchema, f: &FieldSchema) -> Result<Option<String>, Error> {
    if let Some(default) = &f.default {
        let lit = default_literal(d, default, &f.ty).map_err(|source| Error::Encode {
            model: schema.name,
            field: f.name,
            source,
        })?;
        return Ok(Some(lit));
    }
    Ok(d.now_default(&f.ty).filter(|_| f.auto != AutoTimestamp::None).map(str::to_owned))
}

/// The CHECK expression listing an enum column's variants on the quoted column `col`, if any.
pub(crate) fn enum_check(d: &dyn Dialect, col: &str, ty: &ColumnType) -> Option<String> {
    let Scalar::Enum(variants) = ty.scalar else { return None };
    let list: Vec<String> = variants.iter().map(|v| format!("'{}'", v.replace('\'', "''"))).collect();
    match (ty.array, d.name()) {
        (true, "postgresql") => Some(format!("{col} <@ ARRAY[{}]::TEXT[]", list.join(", "))),
        (true, _) => None,
        (false, _) => Some(format!("{col} IN ({})", list.join(", "))),
    }
}

/// The name of a `#[validate]` rule's CHECK constraint: `{table}_{column}_{rule}_check`.
pub(crate) fn rule_check_name(table: &str, column: &str, check: &Check) -> String {
    format!("{table}_{column}_{}_check", check_code(check))
}

/// `CREATE SCHEMA IF NOT EXISTS "billing"` for a model declaring a schema, on a database that
/// has schemas (PostgreSQL); `None` otherwise.
pub fn create_schema(d: &dyn Dialect, schema: &ModelSchema) -> Option<String> {
    create_schema_named(d, schema.schema_name()?)
}

/// `CREATE SCHEMA IF NOT EXISTS "name"` on a database that has schemas (PostgreSQL).
pub(crate) fn create_schema_named(d: &dyn Dialect, name: &str) -> Option<String> {
    if !d.has_schemas() {
        return None;
    }
    let mut sql = String::from("CREATE SCHEMA IF NOT EXISTS ");
    d.quote_ident(&mut sql, name);
    Some(sql)
}

/// The statement that drops the model's table (and with it its indexes).
pub fn drop_table(d: &dyn Dialect, schema: &ModelSchema, if_exists: bool) -> String {
    let mut sql = String::from("DROP TABLE ");
    if if_exists {
        sql.push_str("IF EXISTS ");
    }
    d.quote_table(&mut sql, schema.table);
    sql
}

/// The rule's code, as `validator` names it (used in constraint names).
pub fn check_code(check: &Check) -> &'static str {
    match check {
        Check::Length { .. } => "length",
        Check::Range { .. } => "range",
        Check::Email => "email",
        Check::Url => "url",
        Check::Contains(_) => "contains",
        Check::DoesNotContain(_) => "does_not_contain",
        Check::Required => "required",
    }
}

/// The CHECK expression of a `#[validate]` rule on the quoted column `col`, or `None` when the
/// dialect cannot express it.
pub fn rule_check(d: &dyn Dialect, col: &str, ty: &ColumnType, check: &Check) -> Option<String> {
    let sqlite = d.name() == "sqlite";
    let quote = |s: &str| format!("'{}'", s.replace('\'', "''"));
    Some(match check {
        Check::Length { min, max } => {
            let len = match (ty.array || ty.scalar == Scalar::Json, sqlite) {
                (true, true) => format!("json_array_length({col})"),
                (true, false) => format!("coalesce(cardinality({col}), 0)"),
                (false, true) => format!("length({col})"),
                (false, false) => format!("char_length({col})"),
            };
            bounds(&len, min.map(|n| n.to_string()), max.map(|n| n.to_string()), false, false)?
        }
        Check::Range { min, max, exclusive_min, exclusive_max } => {
            let exact = |bound: Option<f64>| bound.map_or(Some(None), |x| decimal_bound(x).map(Some));
            if d.checks_decimal_text(ty)
                && let (Some(lo), Some(hi)) = (exact(*min), exact(*max))
            {
                return bounds(&format!("{col} COLLATE polystore_decimal"), lo, hi, *exclusive_min, *exclusive_max);
            }
            let value = if d.checks_decimal_text(ty) { format!("CAST({col} AS REAL)") } else { col.to_owned() };
            let num =
                |x: f64| if x.fract() == 0.0 && x.abs() < 1e15 { format!("{}", x as i64) } else { format!("{x:?}") };
            bounds(&value, min.map(num), max.map(num), *exclusive_min, *exclusive_max)?
        }
        Check::Email if sqlite => format!("{col} GLOB '?*@?*' AND {col} NOT GLOB '*[ ]*'"),
        Check::Email => format!("{col} ~ '^[^@[:space:]]+@[^@[:space:]]+$'"),
        Check::Url if sqlite => format!("{col} GLOB '[A-Za-z]*://?*'"),
        Check::Url => format!("{col} ~ '^[A-Za-z][A-Za-z0-9+.-]*://.'"),
        Check::Contains(p) if sqlite => format!("instr({col}, {}) > 0", quote(p)),
        Check::Contains(p) => format!("strpos({col}, {}) > 0", quote(p)),
        Check::DoesNotContain(p) if sqlite => format!("instr({col}, {}) = 0", quote(p)),
        Check::DoesNotContain(p) => format!("strpos({col}, {}) = 0", quote(p)),
        Check::Required => format!("{col} IS NOT NULL"),
    })
}

/// A range bound on a decimal stored as text (SQLite), as a quoted decimal literal compared
/// through the exact decimal collation: the shortest decimal that reads back as the bound
/// (`0.1`, as written in `#[validate(range(max = 0.1))]`), which is what PostgreSQL's
/// `numeric` comparison uses too. `None` when that decimal does not fit a `Decimal` (beyond
/// 28 digits): such a bound is compared as `REAL`, where no stored decimal can reach it.
fn decimal_bound(x: f64) -> Option<String> {
    let text = format!("{x}");
    text.parse::<rust_decimal::Decimal>().ok().filter(|d| d.to_string() == text).map(|_| format!("'{text}'"))
}

fn bounds(
    value: &str,
    min: Option<String>,
    max: Option<String>,
    exclusive_min: bool,
    exclusive_max: bool,
) -> Option<String> {
    let low = min.map(|m| format!("{value} {} {m}", if exclusive_min { ">" } else { ">=" }));
    let high = max.map(|m| format!("{value} {} {m}", if exclusive_max { "<" } else { "<=" }));
    match (low, high) {
        (Some(l), Some(h)) => Some(format!("{l} AND {h}")),
        (Some(one), None) | (None, Some(one)) => Some(one),
        (None, None) => None,
    }
}

#[cfg(all(test, feature = "postgres", feature = "sqlite"))]
mod tests {
    use super::rule_check;
    use crate::schema::{Check, ColumnType, Scalar};
    use crate::sql::postgres::Postgres;
    use crate::sql::sqlite::Sqlite;

    fn range(min: Option<f64>, max: Option<f64>) -> Check {
        Check::Range { min, max, exclusive_min: false, exclusive_max: true }
    }

    #[test]
    fn decimal_range_checks_compare_exactly_on_sqlite() {
        let decimal = ColumnType::scalar(Scalar::Decimal);
        let check = range(Some(0.1), Some(9007199254740992.0));
        assert_eq!(
            rule_check(&Sqlite, "\"x\"", &decimal, &check).unwrap(),
            "\"x\" COLLATE polystore_decimal >= '0.1' AND \"x\" COLLATE polystore_decimal < '9007199254740992'"
        );
        assert_eq!(
            rule_check(&Postgres, "\"x\"", &decimal, &check).unwrap(),
            "\"x\" >= 0.1 AND \"x\" < 9007199254740992.0"
        );
        // Integers and floats are numbers in the column already.
        let int = ColumnType::scalar(Scalar::I32);
        assert_eq!(rule_check(&Sqlite, "\"n\"", &int, &range(None, Some(5.0))).unwrap(), "\"n\" < 5");
        // A bound no decimal can reach stays a float comparison.
        let huge = rule_check(&Sqlite, "\"x\"", &decimal, &range(None, Some(1e300))).unwrap();
        assert_eq!(huge, "CAST(\"x\" AS REAL) < 1e300");
    }
}
