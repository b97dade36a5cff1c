//! Exact-SQL tests of typed expressions on both dialects: integer arithmetic stays native,
//! `f32` is widened on PostgreSQL, decimals go through `numeric` on PostgreSQL and only
//! through the exact `polystore_dec_*` functions on SQLite, divisors are guarded against zero,
//! and expression orderings put NULL first ascending.

use rust_decimal::Decimal;

use crate::error::Error;
use crate::model::{Field, Model, RowReader};
use crate::query::{CalcAggregates as _, Query, Selection, count_all};
use crate::schema::{FieldSchema, ModelSchema};
use crate::sql::lower as sql;
use crate::sql::postgres::Postgres;
use crate::sql::sqlite::Sqlite;
use crate::value::{FieldType, Value};

/// `lines(id, price, qty, weight)`.
struct Line;

impl Model for Line {
    type Key = i64;
    const SCHEMA: &'static ModelSchema = &LINE;

    fn to_values(&self) -> Result<Vec<Value>, Error> {
        Ok(Vec::new())
    }

    fn key_values(key: &i64) -> Result<Vec<Value>, Error> {
        Ok(vec![Value::I64(*key)])
    }

    fn primary_key_value(&self) -> Value {
        Value::Null
    }

    fn from_reader<R: RowReader>(_: &mut R) -> Result<Self, Error> {
        Ok(Line)
    }
}

static LINE: ModelSchema = ModelSchema {
    name: "Line",
    table: "lines",
    fields: &[
        FieldSchema::plain("id", <i64 as FieldType>::COLUMN),
        FieldSchema::plain("price", <Decimal as FieldType>::COLUMN),
        FieldSchema::plain("qty", <i32 as FieldType>::COLUMN),
        FieldSchema::plain("weight", <f32 as FieldType>::COLUMN),
    ],
    primary_key: &[0],
    indexes: &[],
    ..ModelSchema::EMPTY
};

const ID: Field<Line, i64> = Field::new(0);
const PRICE: Field<Line, Decimal> = Field::new(1);
const QTY: Field<Line, i32> = Field::new(2);
const WEIGHT: Field<Line, f32> = Field::new(3);

fn items(sel: &impl Selection<Line>) -> Vec<crate::query::SelectItem> {
    let mut out = Vec::new();
    sel.items(&mut out);
    out
}

fn both(q: &Query<Line>, sel: &impl Selection<Line>) -> (String, String) {
    let items = items(sel);
    (
        sql::select_items(&Postgres, &LINE, q, &items).unwrap().sql,
        sql::select_items(&Sqlite, &LINE, q, &items).unwrap().sql,
    )
}

#[test]
fn arithmetic_is_native_for_integers_and_floats_and_exact_for_decimals() {
    let q = Query::<Line>::new();
    let (pg, lite) = both(&q, &(QTY * 2 - QTY, WEIGHT * QTY, PRICE * QTY + Decimal::ONE, -PRICE));
    assert_eq!(
        pg,
        r#"SELECT (("qty" * $1) - "qty"), (CAST("weight" AS DOUBLE PRECISION) * "qty"), (("price" * "qty") + $2), (-"price") FROM "lines""#
    );
    assert_eq!(
        lite,
        r#"SELECT (("qty" * ?1) - "qty"), ("weight" * "qty"), polystore_dec_add(polystore_dec_mul("price", "qty"), ?2), polystore_dec_neg("price") FROM "lines""#
    );
}

#[test]
fn division_guards_zero_and_truncates_decimals_at_16_places() {
    let q = Query::<Line>::new();
    let (pg, lite) = both(&q, &(QTY / QTY, WEIGHT / 2, PRICE / QTY));
    assert_eq!(
        pg,
        r#"SELECT ("qty" / NULLIF("qty", 0)), (CAST("weight" AS DOUBLE PRECISION) / NULLIF($1, 0)), (div("price" * 10000000000000000, NULLIF("qty", 0)) * 0.0000000000000001) FROM "lines""#
    );
    assert_eq!(
        lite,
        r#"SELECT ("qty" / NULLIF("qty", 0)), ("weight" / NULLIF(?1, 0)), polystore_dec_quot("price", "qty") FROM "lines""#
    );
}

#[test]
fn expression_filters_orderings_and_assignments() {
    let q = Query::<Line>::new().filter((PRICE * QTY).gt(10)).order_by((PRICE * QTY).desc()).order_by(ID.asc());
    assert_eq!(
        sql::select(&Postgres, &LINE, &q).unwrap().sql,
        r#"SELECT "id", "price", "qty", "weight" FROM "lines" WHERE (("price" * "qty") > $1) ORDER BY ("price" * "qty") DESC NULLS LAST, "id" ASC"#
    );
    assert_eq!(
        sql::select(&Sqlite, &LINE, &q).unwrap().sql,
        r#"SELECT "id", "price", "qty", "weight" FROM "lines" WHERE (polystore_dec_mul("price", "qty") COLLATE polystore_decimal > polystore_dec_add(?1, 0) COLLATE polystore_decimal) ORDER BY polystore_dec_mul("price", "qty") COLLATE polystore_decimal DESC NULLS LAST, "id" ASC"#
    );
    let assigns = [ID.set_to(ID + 1_i64).into_assign().unwrap()];
    let q = Query::<Line>::new().filter(QTY.calc().lt(QTY * QTY));
    assert_eq!(
        sql::update_many(&Sqlite, &LINE, &q, &assigns, Vec::new()).unwrap().sql,
        r#"UPDATE "lines" SET "id" = ("id" + ?1) WHERE ("qty" < ("qty" * "qty"))"#
    );
    let paged = Query::<Line>::new().order_by((QTY * 2).asc());
    assert!(sql::select_page(&Postgres, &LINE, &paged, None, &[], 10).is_err(), "pages cannot resume an expression");
}

#[test]
fn aggregates_over_expressions_group_order_and_filter() {
    let revenue = || (PRICE * QTY).sum();
    let q = Query::<Line>::new()
        .group_by(QTY / 4)
        .having(revenue().gt(100))
        .order_by(revenue().desc())
        .order_by(count_all::<Line>().asc());
    let (pg, lite) = both(&q, &(QTY / 4, revenue(), (PRICE * QTY).avg(), (QTY * 2).sum()));
    assert_eq!(
        pg,
        r#"SELECT ("qty" / NULLIF($1, 0)), SUM(("price" * "qty")), (div(SUM(("price" * "qty")) * 10000000000000000, NULLIF(COUNT(("price" * "qty")), 0)) * 0.0000000000000001), CAST(SUM(("qty" * $2)) AS BIGINT) FROM "lines" GROUP BY 1 HAVING (SUM(("price" * "qty")) > $3) ORDER BY 2 DESC NULLS LAST, COUNT(*) ASC NULLS FIRST"#
    );
    assert_eq!(
        lite,
        r#"SELECT ("qty" / NULLIF(?1, 0)), polystore_dec_sum(polystore_dec_mul("price", "qty")), polystore_dec_quot(polystore_dec_sum(polystore_dec_mul("price", "qty")), COUNT(polystore_dec_mul("price", "qty"))), CAST(SUM(("qty" * ?2)) AS BIGINT) FROM "lines" GROUP BY ("qty" / NULLIF(?3, 0)) HAVING (polystore_dec_sum(polystore_dec_mul("price", "qty")) COLLATE polystore_decimal > polystore_dec_add(?4, 0) COLLATE polystore_decimal) ORDER BY polystore_dec_sum(polystore_dec_mul("price", "qty")) COLLATE polystore_decimal DESC NULLS LAST, COUNT(*) ASC NULLS FIRST"#
    );
}
