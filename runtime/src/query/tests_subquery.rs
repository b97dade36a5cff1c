//! Exact-SQL tests of subqueries on both dialects: `IN (SELECT ..)` leaves the subquery's
//! NULLs out, `EXISTS` names the outer row by its table (or the enclosing alias) and the inner
//! one by a fresh alias, decimal keys compare through the exact collation on SQLite, scalar
//! subqueries are typed as projections, and what a subquery cannot carry is refused.

use rust_decimal::Decimal;

use crate::error::Error;
use crate::model::{Field, Model, RowReader};
use crate::query::{FieldAggregates as _, Query, Selection, count_all, exists, not_exists};
use crate::schema::{FieldSchema, ModelSchema};
use crate::sql::lower as sql;
use crate::sql::postgres::Postgres;
use crate::sql::sqlite::Sqlite;
use crate::value::{FieldType, Value};

macro_rules! model {
    ($name:ident, $schema:ident) => {
        struct $name;

        impl Model for $name {
            type Key = i64;
            const SCHEMA: &'static ModelSchema = &$schema;

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
                Ok($name)
            }
        }
    };
}

model!(Customer, CUSTOMER);
model!(Invoice, INVOICE);

static CUSTOMER: ModelSchema = ModelSchema {
    name: "Customer",
    table: "customers",
    fields: &[
        FieldSchema::plain("id", <i64 as FieldType>::COLUMN),
        FieldSchema::plain("country", <String as FieldType>::COLUMN),
    ],
    primary_key: &[0],
    indexes: &[],
    ..ModelSchema::EMPTY
};

static INVOICE: ModelSchema = ModelSchema {
    name: "Invoice",
    table: "invoices",
    fields: &[
        FieldSchema::plain("id", <i64 as FieldType>::COLUMN),
        FieldSchema::plain("customer_id", <Option<i64> as FieldType>::COLUMN),
        FieldSchema::plain("total", <Decimal as FieldType>::COLUMN),
    ],
    primary_key: &[0],
    indexes: &[],
    ..ModelSchema::EMPTY
};

const C_ID: Field<Customer, i64> = Field::new(0);
const COUNTRY: Field<Customer, String> = Field::new(1);
const I_ID: Field<Invoice, i64> = Field::new(0);
const CUSTOMER_ID: Field<Invoice, Option<i64>> = Field::new(1);
const TOTAL: Field<Invoice, Decimal> = Field::new(2);

fn customers(q: &Query<Customer>) -> (String, String) {
    (sql::count(&Postgres, &CUSTOMER, q).unwrap().sql, sql::count(&Sqlite, &CUSTOMER, q).unwrap().sql)
}

fn invoices(q: &Query<Invoice>) -> (String, String) {
    (sql::count(&Postgres, &INVOICE, q).unwrap().sql, sql::count(&Sqlite, &INVOICE, q).unwrap().sql)
}

#[test]
fn in_a_subquery_leaves_its_nulls_out_and_keeps_the_outer_collation() {
    let big = Invoice::query_of().filter(TOTAL.gt(Decimal::TEN)).select(CUSTOMER_ID);
    let (pg, lite) = customers(&Query::new().filter(C_ID.is_in(big.clone())));
    assert_eq!(
        pg,
        r#"SELECT COUNT(*) FROM "customers" WHERE "id" IN (SELECT "r1"."customer_id" FROM "invoices" AS "r1" WHERE "r1"."customer_id" IS NOT NULL AND "total" > $1)"#
    );
    assert_eq!(
        lite,
        r#"SELECT COUNT(*) FROM "customers" WHERE "id" IN (SELECT "r1"."customer_id" FROM "invoices" AS "r1" WHERE "r1"."customer_id" IS NOT NULL AND "total" COLLATE polystore_decimal > ?1)"#
    );
    let (pg, _) = customers(&Query::new().filter(C_ID.not_in(big)));
    assert!(pg.contains(r#""id" NOT IN (SELECT "r1"."customer_id""#), "{pg}");
    // Decimals against decimals: the outer column's collation governs `IN` on SQLite.
    let same = Invoice::query_of().select(TOTAL);
    let (_, lite) = invoices(&Query::new().filter(TOTAL.is_in(same)));
    assert_eq!(
        lite,
        r#"SELECT COUNT(*) FROM "invoices" WHERE "total" COLLATE polystore_decimal IN (SELECT "r1"."total" FROM "invoices" AS "r1" WHERE "r1"."total" IS NOT NULL)"#
    );
}

#[test]
fn exists_links_the_aliased_inner_rows_to_the_outer_table() {
    let large = || Invoice::query_of().filter(TOTAL.ge(Decimal::ONE));
    let (pg, lite) = customers(&Query::new().filter(exists(large()).on(CUSTOMER_ID, C_ID)));
    assert_eq!(
        pg,
        r#"SELECT COUNT(*) FROM "customers" WHERE EXISTS (SELECT 1 FROM "invoices" AS "r1" WHERE "r1"."customer_id" = "customers"."id" AND "total" >= $1)"#
    );
    assert_eq!(
        lite,
        r#"SELECT COUNT(*) FROM "customers" WHERE EXISTS (SELECT 1 FROM "invoices" AS "r1" WHERE "r1"."customer_id" = "customers"."id" AND "total" COLLATE polystore_decimal >= ?1)"#
    );
    let (pg, _) = customers(&Query::new().filter(not_exists(Invoice::query_of()).on(CUSTOMER_ID, C_ID)));
    assert_eq!(
        pg,
        r#"SELECT COUNT(*) FROM "customers" WHERE NOT (EXISTS (SELECT 1 FROM "invoices" AS "r1" WHERE "r1"."customer_id" = "customers"."id"))"#
    );
    // Nested: the inner subquery's outer row is the enclosing alias, not the table.
    let same_country = exists(Customer::query_of()).on(COUNTRY, COUNTRY);
    let nested = exists(Customer::query_of().filter(same_country)).on(C_ID, CUSTOMER_ID);
    let (pg, _) = invoices(&Query::new().filter(nested));
    assert_eq!(
        pg,
        r#"SELECT COUNT(*) FROM "invoices" WHERE EXISTS (SELECT 1 FROM "customers" AS "r1" WHERE "r1"."id" = "invoices"."customer_id" AND EXISTS (SELECT 1 FROM "customers" AS "r2" WHERE "r2"."country" = "r1"."country"))"#
    );
    // Decimal links compare exactly on SQLite.
    let (_, lite) = invoices(&Query::new().filter(exists(Invoice::query_of()).on(TOTAL, TOTAL)));
    assert!(lite.contains(r#""r1"."total" COLLATE polystore_decimal = "invoices"."total""#), "{lite}");
}

#[test]
fn scalar_subqueries_are_typed_as_projections() {
    let avg = Invoice::query_of().filter(CUSTOMER_ID.is_not_null()).select(TOTAL.avg());
    let (pg, lite) = invoices(&Query::new().filter(TOTAL.calc().gt(avg)));
    assert_eq!(
        pg,
        r#"SELECT COUNT(*) FROM "invoices" WHERE ("total" > (SELECT AVG("r1"."total") FROM "invoices" AS "r1" WHERE "customer_id" IS NOT NULL))"#
    );
    assert_eq!(
        lite,
        r#"SELECT COUNT(*) FROM "invoices" WHERE ("total" COLLATE polystore_decimal > (SELECT polystore_dec_avg("r1"."total") FROM "invoices" AS "r1" WHERE "customer_id" IS NOT NULL) COLLATE polystore_decimal)"#
    );
    let n = Customer::query_of().select(count_all::<Customer>());
    let q = Query::<Invoice>::new();
    let mut items = Vec::new();
    (I_ID, I_ID.calc() - n).items(&mut items);
    assert_eq!(
        sql::select_items(&Postgres, &INVOICE, &q, &items).unwrap().sql,
        r#"SELECT "id", ("id" - (SELECT COUNT(*) FROM "customers" AS "r1")) FROM "invoices""#
    );
}

#[test]
fn a_subquery_carries_a_filter_only() {
    let ordered = Invoice::query_of().order_by(I_ID.asc()).select(CUSTOMER_ID);
    let q = Query::<Customer>::new().filter(C_ID.is_in(ordered));
    let err = sql::count(&Postgres, &CUSTOMER, &q).unwrap_err();
    assert!(matches!(&err, Error::Config(m) if m.contains("filter only")), "{err}");
    let limited = Invoice::query_of().limit(1);
    let q = Query::<Customer>::new().filter(exists(limited).on(CUSTOMER_ID, C_ID));
    assert!(sql::count(&Sqlite, &CUSTOMER, &q).is_err());
    let grouped = Invoice::query_of().group_by(CUSTOMER_ID).select(TOTAL.sum());
    let q = Query::<Invoice>::new().filter(TOTAL.calc().gt(grouped));
    assert!(sql::count(&Postgres, &INVOICE, &q).is_err());
}

trait QueryOf: Model + Sized {
    fn query_of() -> Query<Self> {
        Query::new()
    }
}

impl QueryOf for Customer {}
impl QueryOf for Invoice {}

#[test]
fn a_named_subquery_is_a_common_table_expression_defined_once() {
    let uk = || Customer::query_of().filter(COUNTRY.eq("UK")).select(C_ID).named("uk");
    let q = Query::<Invoice>::new().filter(CUSTOMER_ID.is_in(uk()).or(CUSTOMER_ID.not_in(uk()).and(I_ID.gt(3_i64))));
    let (pg, lite) = invoices(&q);
    assert_eq!(
        pg,
        r#"WITH "uk" ("v") AS (SELECT "r1"."id" FROM "customers" AS "r1" WHERE "r1"."id" IS NOT NULL AND "country" = $1) SELECT COUNT(*) FROM "invoices" WHERE ("customer_id" IN (SELECT "v" FROM "uk") OR ("customer_id" NOT IN (SELECT "v" FROM "uk") AND "id" > $2))"#
    );
    assert!(lite.starts_with(r#"WITH "uk" ("v") AS (SELECT "r1"."id" FROM "customers" AS "r1" WHERE "r1"."id" IS NOT NULL AND "country" = ?1) SELECT COUNT(*)"#), "{lite}");
    // Nested: the inner named subquery is defined first; UPDATE and DELETE take a WITH too.
    let big_uk = Invoice::query_of().filter(CUSTOMER_ID.is_in(uk())).select(CUSTOMER_ID).named("big_uk");
    let q = Query::<Customer>::new().filter(C_ID.is_in(big_uk));
    let stmt = sql::delete_many(&Postgres, &CUSTOMER, &q).unwrap().sql;
    assert_eq!(
        stmt,
        r#"WITH "uk" ("v") AS (SELECT "r1"."id" FROM "customers" AS "r1" WHERE "r1"."id" IS NOT NULL AND "country" = $1), "big_uk" ("v") AS (SELECT "r2"."customer_id" FROM "invoices" AS "r2" WHERE "r2"."customer_id" IS NOT NULL AND "customer_id" IN (SELECT "v" FROM "uk")) DELETE FROM "customers" WHERE "id" IN (SELECT "v" FROM "big_uk")"#
    );
    // A name that is a table the statement reads, or one name for two subqueries: refused.
    let shadow = Customer::query_of().select(C_ID).named("invoices");
    assert!(matches!(
        sql::count(&Postgres, &INVOICE, &Query::new().filter(CUSTOMER_ID.is_in(shadow))),
        Err(Error::Config(_))
    ));
    let other = Customer::query_of().filter(COUNTRY.eq("US")).select(C_ID).named("uk");
    let twice = Query::<Invoice>::new().filter(CUSTOMER_ID.is_in(uk()).and(CUSTOMER_ID.is_in(other)));
    assert!(matches!(sql::count(&Sqlite, &INVOICE, &twice), Err(Error::Config(m)) if m.contains("two different")));
}

mod joined {
    use crate::prelude::*;
    use crate::sql::lower as sql;
    use crate::sql::{postgres::Postgres, sqlite::Sqlite};

    #[derive(crate::Model, Debug, Clone)]
    #[model(table = "artists")]
    struct Artist {
        #[model(primary_key, generated)]
        id: i64,
        name: String,
    }

    #[derive(crate::Model, Debug, Clone)]
    #[model(table = "albums")]
    struct Album {
        #[model(primary_key, generated)]
        id: i64,
        artist_id: Option<i64>,
        #[model(belongs_to(key = artist_id))]
        artist: Rel<Option<Artist>>,
    }

    #[derive(crate::Model, Debug, Clone)]
    #[model(table = "tracks")]
    struct Track {
        #[model(primary_key, generated)]
        id: i64,
        album_id: i64,
        ms: i32,
        #[model(belongs_to)]
        album: Rel<Album>,
    }

    #[test]
    fn a_related_column_in_a_filter_is_a_correlated_subquery_along_the_links() {
        let artist = Track::ALBUM.then(Album::ARTIST).then(Artist::NAME);
        let q = Track::query().filter(artist.calc().eq("Björk"));
        assert_eq!(
            sql::count(&Postgres, Track::SCHEMA, &q).unwrap().sql,
            r#"SELECT COUNT(*) FROM "tracks" WHERE ((SELECT "r2"."name" FROM "albums" AS "r1" JOIN "artists" AS "r2" ON "r2"."id" = "r1"."artist_id" WHERE "r1"."id" = "tracks"."album_id" LIMIT 1) = $1)"#
        );
        // In arithmetic, one hop.
        let gap = Track::query().filter((Track::MS - Track::ALBUM.then(Album::ID).calc()).gt(0_i64));
        assert_eq!(
            sql::count(&Sqlite, Track::SCHEMA, &gap).unwrap().sql,
            r#"SELECT COUNT(*) FROM "tracks" WHERE (("ms" - (SELECT "r1"."id" FROM "albums" AS "r1" WHERE "r1"."id" = "tracks"."album_id" LIMIT 1)) > ?1)"#
        );
    }
}
