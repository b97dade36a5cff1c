//! Exact-SQL tests of decimal lowering: SQLite compares, orders, adds and sums decimals through
//! polystore's exact functions and collation (never `REAL`); PostgreSQL keeps `numeric`.

use rust_decimal::Decimal;

use crate::error::Error;
use crate::model::{Field, Model, RowReader};
use crate::query::{Assign, FieldAggregates as _, Query, Selection};
use crate::schema::{FieldSchema, ModelSchema};
use crate::sql::lower as sql;
use crate::sql::postgres::Postgres;
use crate::sql::sqlite::Sqlite;
use crate::value::{FieldType, Value};

/// `accounts(id, amount)`.
struct Account {
    id: i64,
    amount: Decimal,
}

impl Model for Account {
    type Key = i64;
    const SCHEMA: &'static ModelSchema = &ACCOUNT;

    fn to_values(&self) -> Result<Vec<Value>, Error> {
        Ok(vec![Value::I64(self.id), Value::Decimal(self.amount)])
    }

    fn key_values(key: &i64) -> Result<Vec<Value>, Error> {
        Ok(vec![Value::I64(*key)])
    }

    fn primary_key_value(&self) -> Value {
        Value::I64(self.id)
    }

    fn from_reader<R: RowReader>(r: &mut R) -> Result<Self, Error> {
        Ok(Account { id: r.read(0)?, amount: r.read(1)? })
    }
}

static ACCOUNT: ModelSchema = ModelSchema {
    name: "Account",
    table: "accounts",
    fields: &[
        FieldSchema::plain("id", <i64 as FieldType>::COLUMN),
        FieldSchema::plain("amount", <Decimal as FieldType>::COLUMN),
    ],
    primary_key: &[0],
    indexes: &[],
    ..ModelSchema::EMPTY
};

const ID: Field<Account, i64> = Field::new(0);
const AMOUNT: Field<Account, Decimal> = Field::new(1);

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

#[test]
fn decimal_comparisons_and_ordering_use_the_exact_collation_on_sqlite() {
    let q = Query::<Account>::new()
        .filter(AMOUNT.gt(d("0.5")).and(AMOUNT.between(d("1"), d("2"))).and(AMOUNT.is_in([d("1.5")])))
        .order_by(AMOUNT.desc());
    assert_eq!(
        sql::select(&Sqlite, &ACCOUNT, &q).unwrap().sql,
        r#"SELECT "id", "amount" FROM "accounts" WHERE ("amount" COLLATE polystore_decimal > ?1 AND "amount" COLLATE polystore_decimal BETWEEN ?2 AND ?3 AND "amount" COLLATE polystore_decimal IN (SELECT "value" FROM json_each(?4))) ORDER BY "amount" COLLATE polystore_decimal DESC"#
    );
    assert_eq!(
        sql::select(&Postgres, &ACCOUNT, &q).unwrap().sql,
        r#"SELECT "id", "amount" FROM "accounts" WHERE ("amount" > $1 AND "amount" BETWEEN $2 AND $3 AND "amount" IN (SELECT unnest($4))) ORDER BY "amount" DESC"#
    );
}

#[test]
fn decimal_increments_call_the_exact_function_on_sqlite() {
    let q = Query::<Account>::new().filter(ID.eq(1));
    let assigns = [
        AMOUNT.increment(d("0.10")).into_assign().unwrap(),
        Assign::Sub { field: 1, value: Value::Decimal(d("0.01")) },
    ];
    assert_eq!(
        sql::update_many(&Sqlite, &ACCOUNT, &q, &assigns, Vec::new()).unwrap().sql,
        r#"UPDATE "accounts" SET "amount" = polystore_dec_add("amount", ?1), "amount" = polystore_dec_sub("amount", ?2) WHERE "id" = ?3"#
    );
    assert_eq!(
        sql::update_many(&Postgres, &ACCOUNT, &q, &assigns[..1], Vec::new()).unwrap().sql,
        r#"UPDATE "accounts" SET "amount" = "amount" + $1 WHERE "id" = $2"#
    );
}

#[test]
fn decimal_aggregates_stay_exact_and_avg_is_selected_as_sum_and_count() {
    let q = Query::<Account>::new().having(AMOUNT.sum().gt(d("10")));
    let sel = (AMOUNT.sum(), AMOUNT.avg(), AMOUNT.min(), AMOUNT.max());
    let mut items = Vec::new();
    sel.items(&mut items);
    assert_eq!(
        sql::select_items(&Sqlite, &ACCOUNT, &q, &items).unwrap().sql,
        r#"SELECT polystore_dec_sum("amount"), polystore_dec_sum("amount"), COUNT("amount"), MIN("amount" COLLATE polystore_decimal), MAX("amount" COLLATE polystore_decimal) FROM "accounts" HAVING polystore_dec_sum("amount") COLLATE polystore_decimal > ?1"#
    );
    assert_eq!(
        sql::select_items(&Postgres, &ACCOUNT, &q, &items).unwrap().sql,
        r#"SELECT SUM("amount"), SUM("amount"), COUNT("amount"), MIN("amount"), MAX("amount") FROM "accounts" HAVING SUM("amount") > $1"#
    );
}

#[test]
fn select_ordered_by_an_aggregate_interleaves_terms_and_places_nulls_first_ascending() {
    use crate::query::count_all;
    let q = Query::<Account>::new()
        .group_by(ID)
        .order_by(AMOUNT.sum().desc())
        .order_by(ID.asc())
        .order_by(count_all::<Account>().asc());
    let mut items = Vec::new();
    ID.items(&mut items);
    assert_eq!(
        sql::select_items(&Sqlite, &ACCOUNT, &q, &items).unwrap().sql,
        r#"SELECT "id" FROM "accounts" GROUP BY "id" ORDER BY polystore_dec_sum("amount") COLLATE polystore_decimal DESC NULLS LAST, "id" ASC, COUNT(*) ASC NULLS FIRST"#
    );
    assert_eq!(
        sql::select_items(&Postgres, &ACCOUNT, &q, &items).unwrap().sql,
        r#"SELECT "id" FROM "accounts" GROUP BY "id" ORDER BY SUM("amount") DESC NULLS LAST, "id" ASC, COUNT(*) ASC NULLS FIRST"#
    );
    assert!(sql::select(&Postgres, &ACCOUNT, &q).is_err(), "rows cannot be ordered by an aggregate");
}
