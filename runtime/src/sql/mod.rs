//! SQL generation: one writer, one [`Dialect`] per database. The writer does the common thing;
//! a dialect overrides only what differs (placeholders, column types, literals).
//!
//! Values are always bound as parameters and identifiers always quoted: no user value is ever
//! spliced into SQL text.

pub mod build;
pub mod calc;
#[cfg(feature = "postgres")]
pub mod citus;
pub mod ddl;
pub(crate) mod hints;
pub mod lower;
mod order;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod sqlite;
#[cfg(feature = "sqlite")]
pub mod sqlite_decimal;
pub(crate) mod texts;

use std::fmt::Write as _;

use crate::error::ValueError;
use crate::schema::{ColumnType, DefaultValue, Scalar};
use crate::value::Value;

/// A bound parameter: the value and the column type it is bound as (which also types NULLs).
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    /// The value.
    pub value: Value,
    /// The type to bind it as.
    pub ty: ColumnType,
}

/// A rendered statement: SQL text with placeholders, and the parameters in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// The SQL text. The same query shape always renders the same text, so prepared
    /// statements are reused.
    pub sql: String,
    /// The parameters, in placeholder order.
    pub params: Vec<Param>,
}

/// How a dialect keeps a generated key's sequence ahead of explicitly written keys
/// ([`Dialect::key_sequence_sql`]): keys at or below `last` need nothing; otherwise the write
/// runs in a transaction that first takes `lock` (no other insert can draw a key until it
/// ends) and afterwards runs `advance`.
#[derive(Debug, Clone, PartialEq)]
pub struct KeySequenceSql {
    /// Reads the last key the sequence handed out, as a BIGINT (0 when none yet).
    pub last: Statement,
    /// Keeps other transactions from drawing keys from the sequence until this one ends.
    pub lock: Statement,
    /// Moves the sequence to the larger of its last key and the largest explicit key.
    pub advance: Statement,
}

/// What differs between SQL databases.
pub trait Dialect: Sync {
    /// The `db.system` name used in traces (`postgresql`, `sqlite`).
    fn name(&self) -> &'static str;

    /// Whether statement texts rendered in this dialect may be kept and reused for every
    /// statement of the same model and shape in a dialect of the same [`Dialect::name`]
    /// (polystore keeps the texts of finds, inserts and column lists). True for polystore's
    /// own dialects; the default is false, so a dialect that renders differently under a
    /// name it shares (a wrapper redirecting table names, say) never meets another's texts.
    fn texts_reusable(&self) -> bool {
        false
    }

    /// Writes the placeholder of parameter number `n` (1-based).
    fn placeholder(&self, out: &mut String, n: usize);

    /// Writes a quoted identifier.
    fn quote_ident(&self, out: &mut String, ident: &str) {
        out.reserve(ident.len() + 2);
        out.push('"');
        if ident.contains('"') {
            out.push_str(&ident.replace('"', "\"\""));
        } else {
            out.push_str(ident);
        }
        out.push('"');
    }

    /// Whether the database has schemas (namespaces) that qualify table names: PostgreSQL
    /// does; SQLite (without `ATTACH`) does not.
    fn has_schemas(&self) -> bool {
        false
    }

    /// Writes a table reference: `table` is a model's [`ModelSchema::table`], possibly
    /// schema-qualified (`billing.invoice`). With schemas it is `"billing"."invoice"`; without,
    /// the whole name is one identifier, `"billing.invoice"`.
    ///
    /// [`ModelSchema::table`]: crate::schema::ModelSchema::table
    fn quote_table(&self, out: &mut String, table: &str) {
        match crate::schema::split_table(table) {
            (Some(schema), name) if self.has_schemas() => {
                self.quote_ident(out, schema);
                out.push('.');
                self.quote_ident(out, name);
            }
            _ => self.quote_ident(out, table),
        }
    }

    /// The column type in DDL (without NULL-ness).
    fn column_type(&self, ty: &ColumnType) -> String;

    /// The clause for a database-generated integer key, written after the type; `None` when the
    /// dialect writes such keys differently (see [`Dialect::generated_key_column`]).
    fn identity_clause(&self) -> &'static str;

    /// The whole column definition of a single generated integer primary key, when the dialect
    /// needs it inline (SQLite's `INTEGER PRIMARY KEY AUTOINCREMENT`).
    fn generated_key_column(&self) -> Option<&'static str> {
        None
    }

    /// The statements that keep the sequence behind a generated key (`column` of `table`)
    /// ahead of keys a caller wrote explicitly, up to `max_key`; `None` when the database
    /// does that by itself (SQLite's `AUTOINCREMENT` remembers the largest key ever stored).
    fn key_sequence_sql(&self, table: &str, column: &str, max_key: i64) -> Option<KeySequenceSql> {
        let _ = (table, column, max_key);
        None
    }

    /// Writes a condition true when the key generator of `column` in `table` has already handed
    /// out `key` (it will never draw it again), and returns whether it wrote one; `false`
    /// (nothing written) when the dialect has no such test. Lets an upsert under a chosen
    /// generated key skip [`Dialect::key_sequence_sql`]'s read round trip in the usual case.
    fn key_generated_condition(&self, w: &mut SqlWriter<'_>, table: &str, column: &str, key: i64) -> bool {
        let _ = (w, table, column, key);
        false
    }

    /// Writes a boolean literal.
    fn bool_literal(&self, b: bool) -> &'static str {
        if b { "TRUE" } else { "FALSE" }
    }

    /// The default expression for automatic timestamps of this type, if the dialect has one.
    fn now_default(&self, ty: &ColumnType) -> Option<&'static str>;

    /// A CHECK expression that the column's type needs on this dialect (booleans as 0/1,
    /// valid JSON), with `{col}` standing for the quoted column.
    fn type_check(&self, ty: &ColumnType) -> Option<&'static str> {
        let _ = ty;
        None
    }

    /// Whether values of `ty` are decimals stored as text that a CHECK constraint must compare
    /// as numbers (SQLite): a range check compares them through the exact decimal collation
    /// (see [`Dialect::exact_decimal`]), never as `REAL`.
    fn checks_decimal_text(&self, ty: &ColumnType) -> bool {
        let _ = ty;
        false
    }

    /// Whether values of `ty` are decimals stored as text, which queries compare, order, add
    /// and sum through polystore's exact functions (SQLite: the `polystore_decimal` collation
    /// and `polystore_dec_*` functions, see `sql::sqlite_decimal`) instead of the database's
    /// floating-point arithmetic.
    fn exact_decimal(&self, ty: &ColumnType) -> bool {
        let _ = ty;
        false
    }

    /// Most parameters one statement may bind.
    fn max_params(&self) -> usize;

    /// The clause a locking read ends with (`FOR UPDATE SKIP LOCKED`), when the dialect has
    /// row locks; `None` when it has none (SQLite, whose transactions lock the whole database:
    /// a locking read there takes the database's write lock first, see `crate::lock`).
    fn row_lock_clause(&self, lock: crate::lock::RowLock) -> Option<&'static str> {
        let _ = lock;
        None
    }
}

/// Builds SQL text and its parameter list together.
pub struct SqlWriter<'d> {
    dialect: &'d dyn Dialect,
    sql: String,
    params: Vec<Param>,
    /// Placeholders written for parameters the caller binds itself (see [`SqlWriter::slot`]).
    slots: usize,
    /// Aliases of the relation subqueries being written, innermost last.
    scopes: Vec<String>,
    /// How many relation aliases were handed out.
    aliases: usize,
}

impl<'d> SqlWriter<'d> {
    /// An empty writer for `dialect`.
    pub fn new(dialect: &'d dyn Dialect) -> Self {
        Self::with_capacity(dialect, 128)
    }

    /// An empty writer for `dialect` with room for `bytes` of SQL text (a statement whose
    /// length can be estimated, so that the text is not copied as it grows).
    pub fn with_capacity(dialect: &'d dyn Dialect, bytes: usize) -> Self {
        SqlWriter {
            dialect,
            sql: String::with_capacity(bytes),
            params: Vec::new(),
            slots: 0,
            scopes: Vec::new(),
            aliases: 0,
        }
    }

    /// Makes room for `additional` more bytes of SQL text (a long statement whose size is
    /// known ahead, such as a multi-row INSERT).
    pub fn reserve(&mut self, additional: usize) -> &mut Self {
        self.sql.reserve(additional);
        self
    }

    /// The dialect.
    pub fn dialect(&self) -> &'d dyn Dialect {
        self.dialect
    }

    /// Appends raw SQL (keywords and punctuation written by polystore, never user values).
    pub fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    /// Appends a quoted identifier.
    pub fn ident(&mut self, ident: &str) -> &mut Self {
        self.dialect.quote_ident(&mut self.sql, ident);
        self
    }

    /// Appends a table reference (see [`Dialect::quote_table`]): the one place statements
    /// name a model's table.
    pub fn table(&mut self, table: &str) -> &mut Self {
        self.dialect.quote_table(&mut self.sql, table);
        self
    }

    /// Appends a comma-separated list produced by `f` for each item.
    pub fn list<I, F>(&mut self, items: I, mut f: F) -> &mut Self
    where
        I: IntoIterator,
        F: FnMut(&mut Self, I::Item),
    {
        for (i, item) in items.into_iter().enumerate() {
            if i > 0 {
                self.sql.push_str(", ");
            }
            f(self, item);
        }
        self
    }

    /// Appends a column as an operand of a comparison or ordering on a field of type `ty`:
    /// decimals stored as text get the exact decimal collation (see [`Dialect::exact_decimal`]),
    /// which the comparison, `BETWEEN`, `IN`, `ORDER BY`, `MIN` and `MAX` then use.
    pub fn operand(&mut self, column: &str, ty: ColumnType) -> &mut Self {
        self.ident(column).collate(ty)
    }

    /// Appends a bound value compared with a field of type `ty` (the column's collation
    /// already governs the comparison).
    pub fn operand_param(&mut self, value: Value, ty: ColumnType) -> &mut Self {
        self.param(value, ty)
    }

    /// Appends ` COLLATE polystore_decimal` after an expression of type `ty` when the dialect
    /// compares that type through polystore's exact decimal collation.
    pub fn collate(&mut self, ty: ColumnType) -> &mut Self {
        if self.dialect.exact_decimal(&ty) { self.push(" COLLATE polystore_decimal") } else { self }
    }

    /// Appends a placeholder and binds `value` as `ty`.
    pub fn param(&mut self, value: Value, ty: ColumnType) -> &mut Self {
        self.params.push(Param { value, ty });
        self.dialect.placeholder(&mut self.sql, self.params.len() + self.slots);
        self
    }

    /// Appends the placeholder of the next parameter without collecting a value for it: the
    /// caller binds that parameter itself, in placeholder order (the borrowed rows of a
    /// multi-row INSERT, see [`build::InsertValues`]).
    pub fn slot(&mut self) -> &mut Self {
        self.slots += 1;
        self.dialect.placeholder(&mut self.sql, self.params.len() + self.slots);
        self
    }

    /// The alias of the innermost relation subquery being written, if any.
    pub fn scope(&self) -> Option<&str> {
        self.scopes.last().map(String::as_str)
    }

    /// Enters a relation subquery: a fresh alias (`r1`, `r2`, …) for its table.
    pub fn push_scope(&mut self) -> String {
        self.aliases += 1;
        let alias = format!("r{}", self.aliases);
        self.scopes.push(alias.clone());
        alias
    }

    /// Leaves the innermost relation subquery.
    pub fn pop_scope(&mut self) {
        self.scopes.pop();
    }

    /// The number of parameters bound so far (slots included).
    pub fn param_count(&self) -> usize {
        self.params.len() + self.slots
    }

    /// The finished statement.
    pub fn finish(self) -> Statement {
        Statement { sql: self.sql, params: self.params }
    }
}

/// Writes a DEFAULT literal. Strings are quoted with `'` doubled; numbers are validated.
pub(crate) fn default_literal(
    dialect: &dyn Dialect,
    value: &DefaultValue,
    ty: &ColumnType,
) -> Result<String, ValueError> {
    let mismatch = |found: &'static str| ValueError::TypeMismatch { expected: static_describe(ty), found };
    Ok(match (value, ty.scalar) {
        (
            DefaultValue::Int(n),
            Scalar::I16 | Scalar::I32 | Scalar::I64 | Scalar::F32 | Scalar::F64 | Scalar::Decimal,
        ) => n.to_string(),
        (DefaultValue::Float(x), Scalar::F32 | Scalar::F64 | Scalar::Decimal) => {
            let mut s = String::new();
            write!(s, "{x:?}").expect("writing to a String");
            s
        }
        (DefaultValue::Bool(b), Scalar::Bool) => dialect.bool_literal(*b).to_owned(),
        (DefaultValue::Str(s), Scalar::Text | Scalar::Enum(_) | Scalar::Uuid | Scalar::Date | Scalar::Json) => {
            format!("'{}'", s.replace('\'', "''"))
        }
        (DefaultValue::Int(_), _) => return Err(mismatch("integer literal")),
        (DefaultValue::Float(_), _) => return Err(mismatch("float literal")),
        (DefaultValue::Bool(_), _) => return Err(mismatch("bool literal")),
        (DefaultValue::Str(_), _) => return Err(mismatch("string literal")),
    })
}

fn static_describe(ty: &ColumnType) -> &'static str {
    match ty.scalar {
        Scalar::Bool => "bool",
        Scalar::I16 | Scalar::I32 | Scalar::I64 => "integer",
        Scalar::F32 | Scalar::F64 => "float",
        Scalar::Decimal => "decimal",
        Scalar::Text | Scalar::Enum(_) => "text",
        Scalar::TimestampTz | Scalar::Timestamp => "timestamp",
        Scalar::Date => "date",
        Scalar::Uuid => "uuid",
        Scalar::ObjectId => "objectid",
        Scalar::Json => "json",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_with_inner_quotes_doubled() {
        let mut out = String::new();
        sqlite::Sqlite.quote_ident(&mut out, "users");
        out.push(' ');
        sqlite::Sqlite.quote_ident(&mut out, r#"we"ird""#);
        assert_eq!(out, r#""users" "we""ird""""#);
    }
}
