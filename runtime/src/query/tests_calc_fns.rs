//! Exact-SQL tests of the expression functions on both dialects: `CASE WHEN`, ASCII-only case
//! mapping (`COLLATE "C"` on PostgreSQL), character lengths, `||`, and date truncation and
//! parts in UTC (`AT TIME ZONE 'UTC'` on PostgreSQL; `strftime` into the stored text form on
//! SQLite).

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

use crate::error::Error;
use crate::model::{Field, Model, RowReader};
use crate::query::{CalcAggregates as _, DatePart, Query, Selection, TimeUnit, case_when, concat, count_all};
use crate::schema::{FieldSchema, ModelSchema};
use crate::sql::lower as sql;
use crate::sql::postgres::Postgres;
use crate::sql::sqlite::Sqlite;
use crate::value::{FieldType, Value};

/// `events(id, name, nick, at, local, day)`.
struct Event;

impl Model for Event {
    type Key = i64;
    const SCHEMA: &'static ModelSchema = &EVENT;

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
        Ok(Event)
    }
}

static EVENT: ModelSchema = ModelSchema {
    name: "Event",
    table: "events",
    fields: &[
        FieldSchema::plain("id", <i64 as FieldType>::COLUMN),
        FieldSchema::plain("name", <String as FieldType>::COLUMN),
        FieldSchema::plain("nick", <Option<String> as FieldType>::COLUMN),
        FieldSchema::plain("at", <DateTime<Utc> as FieldType>::COLUMN),
        FieldSchema::plain("local", <NaiveDateTime as FieldType>::COLUMN),
        FieldSchema::plain("day", <Option<NaiveDate> as FieldType>::COLUMN),
    ],
    primary_key: &[0],
    indexes: &[],
    ..ModelSchema::EMPTY
};

const ID: Field<Event, i64> = Field::new(0);
const NAME: Field<Event, String> = Field::new(1);
const NICK: Field<Event, Option<String>> = Field::new(2);
const AT: Field<Event, DateTime<Utc>> = Field::new(3);
const LOCAL: Field<Event, NaiveDateTime> = Field::new(4);
const DAY: Field<Event, Option<NaiveDate>> = Field::new(5);

fn both(q: &Query<Event>, sel: &impl Selection<Event>) -> (String, String) {
    let mut items = Vec::new();
    sel.items(&mut items);
    (
        sql::select_items(&Postgres, &EVENT, q, &items).unwrap().sql,
        sql::select_items(&Sqlite, &EVENT, q, &items).unwrap().sql,
    )
}

#[test]
fn string_functions_are_ascii_case_mappings_character_lengths_and_concatenation() {
    let q = Query::<Event>::new().filter(NAME.lower().eq("ada"));
    let (pg, lite) = both(&q, &(NAME.upper(), NICK.length(), NAME.concat(" ").concat(NICK), concat("#", NAME)));
    assert_eq!(
        pg,
        r#"SELECT UPPER("name" COLLATE "C"), CAST(char_length("nick") AS BIGINT), ("name" || $1 || "nick"), ($2 || "name") FROM "events" WHERE (LOWER("name" COLLATE "C") = $3)"#
    );
    assert_eq!(
        lite,
        r#"SELECT UPPER("name"), length("nick"), ("name" || ?1 || "nick"), (?2 || "name") FROM "events" WHERE (LOWER("name") = ?3)"#
    );
}

#[test]
fn case_when_writes_its_conditions_as_filters_and_null_without_otherwise() {
    let size = case_when(ID.gt(10_i64), "big").when(NICK.is_null().or(ID.is_in([1_i64, 2])), NICK).end();
    let (pg, lite) = both(&Query::<Event>::new(), &(size, case_when(NAME.eq("x"), 1).otherwise(0)));
    assert_eq!(
        pg,
        r#"SELECT CASE WHEN "id" > $1 THEN $2 WHEN ("nick" IS NULL OR "id" = ANY($3)) THEN "nick" END, CASE WHEN "name" = $4 THEN $5 ELSE $6 END FROM "events""#
    );
    assert_eq!(
        lite,
        r#"SELECT CASE WHEN "id" > ?1 THEN ?2 WHEN ("nick" IS NULL OR "id" IN (SELECT "value" FROM json_each(?3))) THEN "nick" END, CASE WHEN "name" = ?4 THEN ?5 ELSE ?6 END FROM "events""#
    );
}

#[test]
fn dates_truncate_and_extract_in_utc() {
    let q = Query::<Event>::new();
    let sel = (AT.trunc(TimeUnit::Month), LOCAL.trunc(TimeUnit::Hour), DAY.trunc(TimeUnit::Year));
    let (pg, lite) = both(&q, &sel);
    assert_eq!(
        pg,
        r#"SELECT (date_trunc('month', "at" AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'), date_trunc('hour', "local"), CAST(date_trunc('year', CAST("day" AS TIMESTAMP)) AS DATE) FROM "events""#
    );
    assert_eq!(
        lite,
        r#"SELECT strftime('%Y-%m-01T00:00:00.000000Z', "at"), strftime('%Y-%m-%dT%H:00:00.000000', "local"), strftime('%Y-01-01', "day") FROM "events""#
    );
    let sel = (AT.extract(DatePart::Year), AT.extract(DatePart::DayOfWeek), DAY.extract(DatePart::Month));
    let (pg, lite) = both(&q, &sel);
    assert_eq!(
        pg,
        r#"SELECT CAST(EXTRACT(YEAR FROM "at" AT TIME ZONE 'UTC') AS INTEGER), CAST(EXTRACT(ISODOW FROM "at" AT TIME ZONE 'UTC') AS INTEGER), CAST(EXTRACT(MONTH FROM CAST("day" AS TIMESTAMP)) AS INTEGER) FROM "events""#
    );
    assert_eq!(
        lite,
        r#"SELECT CAST(strftime('%Y', "at") AS INTEGER), ((CAST(strftime('%w', "at") AS INTEGER) + 6) % 7 + 1), CAST(strftime('%m', "day") AS INTEGER) FROM "events""#
    );
}

#[test]
fn functions_group_order_and_assign() {
    let month = || AT.trunc(TimeUnit::Month);
    let q = Query::<Event>::new().group_by(month()).order_by(month().asc()).having(ID.calc().count().gt(1));
    let (pg, lite) = both(&q, &(month(), count_all::<Event>(), NAME.length().sum()));
    assert_eq!(
        pg,
        r#"SELECT (date_trunc('month', "at" AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'), COUNT(*), CAST(SUM(CAST(char_length("name") AS BIGINT)) AS BIGINT) FROM "events" GROUP BY 1 HAVING (COUNT("id") > $1) ORDER BY 1 ASC NULLS FIRST"#
    );
    assert_eq!(
        lite,
        r#"SELECT strftime('%Y-%m-01T00:00:00.000000Z', "at"), COUNT(*), CAST(SUM(length("name")) AS BIGINT) FROM "events" GROUP BY strftime('%Y-%m-01T00:00:00.000000Z', "at") HAVING (COUNT("id") > ?1) ORDER BY strftime('%Y-%m-01T00:00:00.000000Z', "at") ASC NULLS FIRST"#
    );
    let assigns = [NICK.set_to(NAME.lower()).into_assign().unwrap()];
    let q = Query::<Event>::new().filter(LOCAL.extract(DatePart::Hour).lt(12));
    assert_eq!(
        sql::update_many(&Sqlite, &EVENT, &q, &assigns, Vec::new()).unwrap().sql,
        r#"UPDATE "events" SET "nick" = LOWER("name") WHERE (CAST(strftime('%H', "local") AS INTEGER) < ?1)"#
    );
}
