//! Multi-row INSERT statements: their text (rendered once per shape and kept, see
//! [`insert_rows`]) and their parameters, either owned ([`insert`]) or borrowed from the rows
//! being written ([`InsertValues`]), which is what the SQL driver's inserts bind.

use super::{insert_fields, returning, stamp_of};
use crate::error::Error;
use crate::schema::{ColumnType, ModelSchema};
use crate::sql::texts::KeptTexts;
use crate::sql::{Dialect, Param, SqlWriter, Statement};
use crate::value::{Value, ValueRef};

/// One multi-row INSERT ... RETURNING for `rows` (each in schema order); a generated key is
/// left to the database.
pub fn insert(d: &dyn Dialect, schema: &ModelSchema, rows: Vec<Vec<Value>>) -> Statement {
    insert_owned(d, schema, rows, false)
}

/// One multi-row INSERT ... RETURNING for `rows` that writes every field, a generated key
/// included (the caller chose the keys; see [`crate::sql::Dialect::key_sequence_sql`]).
pub fn insert_with_keys(d: &dyn Dialect, schema: &ModelSchema, rows: Vec<Vec<Value>>) -> Statement {
    insert_owned(d, schema, rows, true)
}

fn insert_owned(d: &dyn Dialect, schema: &ModelSchema, rows: Vec<Vec<Value>>, keep_keys: bool) -> Statement {
    let sql = insert_text(d, schema, rows.len(), keep_keys);
    let mut params = Vec::with_capacity(rows.len() * insert_fields(schema, keep_keys).count());
    for row in rows {
        for (f, value) in schema.fields.iter().zip(row) {
            if keep_keys || !f.generated {
                params.push(Param { value, ty: f.ty });
            }
        }
    }
    Statement { sql, params }
}

/// The text of an INSERT of `rows` rows writing `insert_fields(schema, keep_keys)`, RETURNING
/// every column; its placeholders are numbered row after row, field after field.
fn insert_text(d: &dyn Dialect, schema: &ModelSchema, rows: usize, keep_keys: bool) -> String {
    let per_row = insert_fields(schema, keep_keys).count();
    let mut w = SqlWriter::new(d);
    // Each placeholder is `$n, ` (up to 8 bytes below 100 000 parameters), each row `(), `;
    // the column lists are counted from the names.
    let columns: usize = schema.fields.iter().map(|f| f.column.len() + 4).sum();
    w.reserve(rows * (per_row * 8 + 4) + 2 * columns + schema.table.len() + 40);
    w.push("INSERT INTO ").table(schema.table).push(" (");
    w.list(insert_fields(schema, keep_keys), |w, i| {
        w.ident(schema.fields[i].column);
    });
    w.push(") VALUES ");
    for r in 0..rows {
        w.push(if r == 0 { "(" } else { ", (" });
        for n in 0..per_row {
            if n > 0 {
                w.push(", ");
            }
            w.slot();
        }
        w.push(")");
    }
    returning(&mut w, schema);
    w.finish().sql
}

/// The parameters of a multi-row INSERT, borrowed from the rows it writes: every field of
/// every row in schema order, text and JSON by reference (see [`ValueRef`]), so a row's
/// strings are copied once, into the driver's argument buffer, and never into a [`Value`].
/// Bound in the order of the statement's placeholders, row after row; they can be bound again
/// (a retried statement).
#[derive(Debug, Clone)]
pub struct InsertValues<'a> {
    schema: &'static ModelSchema,
    keep_keys: bool,
    values: Vec<ValueRef<'a>>,
    rows: usize,
}

impl<'a> InsertValues<'a> {
    /// No rows yet, with room for `rows` of them; `keep_keys` writes generated keys too (see
    /// [`insert_with_keys`]).
    pub fn new(schema: &'static ModelSchema, keep_keys: bool, rows: usize) -> Self {
        InsertValues { schema, keep_keys, values: Vec::with_capacity(rows * schema.fields.len()), rows: 0 }
    }

    /// Appends one row, `row.values_ref(..)` in schema order: automatic timestamps are set to
    /// `now` and a version field (`version`, see [`Model::VERSION_FIELD`]) holding 0 becomes 1.
    /// Returns the row's generated key (position, value) when it holds one other than 0, for the
    /// caller to check.
    ///
    /// [`Model::VERSION_FIELD`]: crate::Model::VERSION_FIELD
    pub fn push_row(
        &mut self,
        row: impl FnOnce(&mut Vec<ValueRef<'a>>) -> Result<(), Error>,
        now: chrono::DateTime<chrono::Utc>,
        version: Option<usize>,
    ) -> Result<Option<(usize, i64)>, Error> {
        let start = self.values.len();
        row(&mut self.values)?;
        self.prepare_row(start, now, version)
    }

    fn prepare_row(
        &mut self,
        start: usize,
        now: chrono::DateTime<chrono::Utc>,
        version: Option<usize>,
    ) -> Result<Option<(usize, i64)>, Error> {
        let schema = self.schema;
        let row = &mut self.values[start..];
        if row.len() != schema.fields.len() {
            let given = row.len();
            self.values.truncate(start);
            return Err(Error::Config(format!(
                "{}: values_ref gave {given} values for {} fields",
                schema.name,
                schema.fields.len()
            )));
        }
        self.rows += 1;
        let given = crate::crud::given_key_at(schema, |i| row[i].as_owned());
        for (f, v) in schema.fields.iter().zip(row.iter_mut()) {
            if let Some(t) = stamp_of(f, now, true) {
                *v = ValueRef::Owned(t);
            }
        }
        if let Some(ValueRef::Owned(v)) = version.map(|i| &mut row[i]) {
            crate::version::initial_value(v);
        }
        Ok(given)
    }

    /// How many rows were appended.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// How many parameters the rows bind.
    pub fn len(&self) -> usize {
        self.rows * insert_fields(self.schema, self.keep_keys).count()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Each parameter with the column type it binds as, in placeholder order.
    pub fn params(&self) -> impl Iterator<Item = (&ValueRef<'a>, ColumnType)> + '_ {
        let fields = self.schema.fields;
        let keep = self.keep_keys;
        self.values
            .chunks_exact(fields.len().max(1))
            .flat_map(move |row| row.iter().zip(fields).filter(move |(_, f)| keep || !f.generated))
            .map(|(v, f)| (v, f.ty))
    }

    /// The parameters as owned [`Param`]s (copying what is borrowed): for drivers that take
    /// their arguments by value (SQLite) and for inspection.
    pub fn to_params(&self) -> Vec<Param> {
        self.params().map(|(v, ty)| Param { value: v.clone().into_owned(), ty }).collect()
    }
}

/// A multi-row INSERT ... RETURNING every column whose parameters borrow from the rows it
/// writes (see [`InsertValues`]).
#[derive(Debug, Clone)]
pub struct InsertStatement<'a> {
    /// The SQL text.
    pub sql: String,
    /// The rows' parameters, in placeholder order.
    pub values: InsertValues<'a>,
}

impl InsertStatement<'_> {
    /// The same statement with owned parameters.
    pub fn to_statement(&self) -> Statement {
        Statement { sql: self.sql.clone(), params: self.values.to_params() }
    }
}

/// One multi-row INSERT ... RETURNING of the rows in `values`: a generated key is left to the
/// database unless they were collected to keep it ([`InsertValues::new`]).
///
/// The text depends only on the model, the dialect, the key handling and the number of rows,
/// and is rendered once per such shape and kept (up to [`TEXT_CACHE_BYTES`] of texts in all,
/// each up to [`TEXT_CACHE_ENTRY_BYTES`]): a bulk insert's text is hundreds of placeholders, and
/// rendering it was a tenth of a 100-row insert's client-side instructions.
pub fn insert_rows<'a>(d: &'static dyn Dialect, values: InsertValues<'a>) -> InsertStatement<'a> {
    InsertStatement { sql: insert_text_cached(d, values.schema, values.rows, values.keep_keys), values }
}

/// How many bytes of INSERT texts [`insert_rows`] keeps, all shapes together; shapes met once
/// that is reached are rendered every time.
pub const TEXT_CACHE_BYTES: usize = 2 << 20;

/// The longest INSERT text [`insert_rows`] keeps (one of PostgreSQL's largest, 65 535
/// parameters, is about half of it); longer ones are rendered every time.
pub const TEXT_CACHE_ENTRY_BYTES: usize = 1 << 20;

/// [`insert_text`], kept by shape (see [`insert_rows`]).
fn insert_text_cached(d: &'static dyn Dialect, schema: &'static ModelSchema, rows: usize, keep_keys: bool) -> String {
    /// The texts by (model, dialect, keep keys, rows).
    static TEXTS: KeptTexts<(bool, usize)> = KeptTexts::new(TEXT_CACHE_BYTES, TEXT_CACHE_ENTRY_BYTES);
    String::from(&*TEXTS.get(d, schema, (keep_keys, rows), || insert_text(d, schema, rows, keep_keys)))
}

#[cfg(test)]
pub(crate) mod tests {
    use chrono::{TimeZone as _, Utc};

    use super::*;
    use crate::schema::{AutoTimestamp, FieldSchema, Scalar};
    use crate::sql::build::stamp;
    use crate::sql::sqlite::Sqlite;

    const fn field(name: &'static str, ty: ColumnType) -> FieldSchema {
        FieldSchema::plain(name, ty)
    }

    pub(crate) static NOTE: ModelSchema = ModelSchema {
        name: "Note",
        table: "notes",
        fields: &[
            FieldSchema { generated: true, ..field("id", ColumnType::scalar(Scalar::I64)) },
            field("body", ColumnType::scalar(Scalar::Text)),
            field("meta", ColumnType::scalar(Scalar::Json).nullable()),
            field("version", ColumnType::scalar(Scalar::I32)),
            FieldSchema {
                auto: AutoTimestamp::CreatedAt,
                ..field("created_at", ColumnType::scalar(Scalar::TimestampTz))
            },
        ],
        primary_key: &[0],
        ..ModelSchema::EMPTY
    };

    fn now() -> chrono::DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).single().expect("a valid time")
    }

    /// Two rows as `to_values` gives them: the second with a chosen key and no metadata.
    pub(crate) fn owned_rows() -> Vec<Vec<Value>> {
        let old = Value::TimestampTz(Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).single().expect("a valid time"));
        vec![
            vec![
                Value::I64(0),
                Value::Text("first".into()),
                Value::Json(serde_json::json!({"a": 1})),
                Value::I32(0),
                old.clone(),
            ],
            vec![Value::I64(42), Value::Text("second".into()), Value::Null, Value::I32(3), old],
        ]
    }

    /// The same rows borrowed, prepared as an insert prepares them; also the generated keys seen.
    pub(crate) fn borrowed<'a>(
        rows: &[Vec<Value>],
        text: &[&'a str],
        json: &'a serde_json::Value,
        keep: bool,
    ) -> (InsertValues<'a>, Vec<Option<(usize, i64)>>) {
        let mut values = InsertValues::new(&NOTE, keep, rows.len());
        let mut keys = Vec::new();
        for (r, row) in rows.iter().enumerate() {
            let given = values
                .push_row(
                    |out| {
                        out.extend(row.iter().enumerate().map(|(i, v)| match (i, v) {
                            (1, _) => ValueRef::Text(text[r]),
                            (2, Value::Json(_)) => ValueRef::Json(json),
                            (_, v) => ValueRef::Owned(v.clone()),
                        }));
                        Ok(())
                    },
                    now(),
                    Some(3),
                )
                .expect("a whole row");
            keys.push(given);
        }
        (values, keys)
    }

    #[test]
    fn borrowed_insert_renders_and_binds_as_the_owned_one() {
        let json = serde_json::json!({"a": 1});
        for keep in [false, true] {
            let mut owned = owned_rows();
            for row in &mut owned {
                stamp(&NOTE, row, now(), true);
                crate::version::initial_value(&mut row[3]);
            }
            let expected = if keep {
                insert_with_keys(&Sqlite, &NOTE, owned.clone())
            } else {
                insert(&Sqlite, &NOTE, owned.clone())
            };
            // The second time, the text comes from the kept ones.
            for _ in 0..2 {
                let (values, keys) = borrowed(&owned_rows(), &["first", "second"], &json, keep);
                assert_eq!(keys, [None, Some((0, 42))], "the chosen key is reported, 0 is not");
                assert_eq!((values.rows(), values.len()), (2, if keep { 10 } else { 8 }));
                let stmt = insert_rows(&Sqlite, values);
                assert_eq!(stmt.to_statement(), expected);
            }
        }
    }

    #[test]
    fn insert_text_numbers_placeholders_row_after_row() {
        let stmt = insert(&Sqlite, &NOTE, owned_rows());
        assert_eq!(
            stmt.sql,
            r#"INSERT INTO "notes" ("body", "meta", "version", "created_at") VALUES (?1, ?2, ?3, ?4), (?5, ?6, ?7, ?8) RETURNING "id", "body", "meta", "version", "created_at""#
        );
        assert_eq!(stmt.params.len(), 8);
        assert_eq!(stmt.params[4], Param { value: Value::Text("second".into()), ty: NOTE.fields[1].ty });
    }

    #[test]
    fn prepared_rows_get_timestamps_and_the_first_version() {
        let json = serde_json::Value::Null;
        let (values, _) = borrowed(&owned_rows(), &["a", "b"], &json, false);
        let params: Vec<_> = values.params().map(|(v, _)| v.clone()).collect();
        assert_eq!(params[2], ValueRef::Owned(Value::I32(1)), "version 0 is stored as 1");
        assert_eq!(params[6], ValueRef::Owned(Value::I32(3)), "another version as given");
        assert_eq!(params[3], ValueRef::Owned(Value::TimestampTz(now())), "created_at stamped");
        assert_eq!(params[4], ValueRef::Text("b"));
    }

    #[test]
    fn a_row_of_the_wrong_width_is_refused() {
        let mut values = InsertValues::new(&NOTE, false, 1);
        let short = values.push_row(
            |out| {
                out.push(ValueRef::Text("only"));
                Ok(())
            },
            now(),
            None,
        );
        assert!(matches!(short, Err(Error::Config(m)) if m.contains("1 values for 5 fields")));
    }
}
