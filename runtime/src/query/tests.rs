//! Exact-SQL tests of query lowering, per dialect, on a hand-written model (so they do not
//! depend on the derive).

use chrono::{DateTime, Utc};

use crate::error::Error;
use crate::model::{Field, Model, RowReader};
use crate::query::{Cursor, FieldAggregates as _, Node, Query, count_all};
use crate::schema::{AutoTimestamp, ColumnType, FieldSchema, ModelSchema, RedisIndex, Scalar};
use crate::sql::lower as sql;
use crate::sql::postgres::Postgres;
use crate::sql::sqlite::Sqlite;
use crate::sql::{Dialect, Statement};
use crate::value::{FieldType, Value};

/// A small model: `people(id, email, nick?, age, tags[], updated_at)`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Person {
    pub id: i64,
    pub email: String,
    pub nick: Option<String>,
    pub age: i32,
    pub tags: Vec<String>,
    pub updated_at: DateTime<Utc>,
}

const fn field(name: &'static str, ty: ColumnType, generated: bool, auto: AutoTimestamp) -> FieldSchema {
    FieldSchema {
        name,
        column: name,
        ty,
        generated,
        auto,
        default: None,
        redis: RedisIndex::None,
        renamed_from: None,
        checks: &[],
    }
}

static PERSON: ModelSchema = ModelSchema {
    name: "Person",
    table: "people",
    fields: &[
        field("id", <i64 as FieldType>::COLUMN, true, AutoTimestamp::None),
        field("email", <String as FieldType>::COLUMN, false, AutoTimestamp::None),
        field("nick", <Option<String> as FieldType>::COLUMN, false, AutoTimestamp::None),
        field("age", <i32 as FieldType>::COLUMN, false, AutoTimestamp::None),
        field("tags", <Vec<String> as FieldType>::COLUMN, false, AutoTimestamp::None),
        field("updated_at", <DateTime<Utc> as FieldType>::COLUMN, false, AutoTimestamp::UpdatedAt),
    ],
    primary_key: &[0],
    indexes: &[],
    ..ModelSchema::EMPTY
};

impl Person {
    pub const ID: Field<Person, i64> = Field::new(0);
    pub const EMAIL: Field<Person, String> = Field::new(1);
    pub const NICK: Field<Person, Option<String>> = Field::new(2);
    pub const AGE: Field<Person, i32> = Field::new(3);
    pub const TAGS: Field<Person, Vec<String>> = Field::new(4);
    pub const UPDATED_AT: Field<Person, DateTime<Utc>> = Field::new(5);
}

impl Model for Person {
    type Key = i64;
    const SCHEMA: &'static ModelSchema = &PERSON;

    fn to_values(&self) -> Result<Vec<Value>, Error> {
        let enc = |r: Result<Value, crate::error::ValueError>| {
            r.map_err(|source| Error::Encode { model: "Person", field: "?", source })
        };
        Ok(vec![
            enc(self.id.to_value())?,
            enc(self.email.to_value())?,
            enc(self.nick.to_value())?,
            enc(self.age.to_value())?,
            enc(self.tags.to_value())?,
            enc(self.updated_at.to_value())?,
        ])
    }

    fn key_values(key: &i64) -> Result<Vec<Value>, Error> {
        Ok(vec![Value::I64(*key)])
    }

    fn primary_key_value(&self) -> Value {
        Value::I64(self.id)
    }

    fn from_reader<R: RowReader>(r: &mut R) -> Result<Self, Error> {
        Ok(Person {
            id: r.read(0)?,
            email: r.read(1)?,
            nick: r.read(2)?,
            age: r.read(3)?,
            tags: r.read(4)?,
            updated_at: r.read(5)?,
        })
    }
}

const COLS: &str = r#""id", "email", "nick", "age", "tags", "updated_at""#;

fn select(d: &dyn Dialect, q: &Query<Person>) -> Statement {
    sql::select(d, &PERSON, q).unwrap()
}

fn values(stmt: &Statement) -> Vec<Value> {
    stmt.params.iter().map(|p| p.value.clone()).collect()
}

#[test]
fn select_with_between_postgres_and_sqlite() {
    let q = Query::<Person>::new().filter(Person::AGE.between(18, 65).and(Person::AGE.not_between(30, 40)));
    let pg = select(&Postgres, &q);
    assert_eq!(
        pg.sql,
        format!(r#"SELECT {COLS} FROM "people" WHERE ("age" BETWEEN $1 AND $2 AND "age" NOT BETWEEN $3 AND $4)"#)
    );
    assert_eq!(values(&pg), vec![Value::I32(18), Value::I32(65), Value::I32(30), Value::I32(40)]);
    let lite = select(&Sqlite, &q);
    assert_eq!(
        lite.sql,
        format!(r#"SELECT {COLS} FROM "people" WHERE ("age" BETWEEN ?1 AND ?2 AND "age" NOT BETWEEN ?3 AND ?4)"#)
    );
}

#[test]
fn select_with_text_matching_postgres() {
    let q = Query::<Person>::new()
        .filter(Person::EMAIL.starts_with("a%b_"))
        .filter(Person::EMAIL.ends_with_ci("@X.org"))
        .filter(Person::NICK.contains("\\"))
        .filter(Person::NICK.like("a_%"))
        .filter(Person::NICK.ilike("A%"));
    let pg = select(&Postgres, &q);
    assert_eq!(
        pg.sql,
        format!(
            r#"SELECT {COLS} FROM "people" WHERE (((("email" LIKE $1 ESCAPE '\' AND "email" ILIKE $2 ESCAPE '\') AND "nick" LIKE $3 ESCAPE '\') AND "nick" LIKE $4 ESCAPE '\') AND "nick" ILIKE $5 ESCAPE '\')"#
        )
    );
    let text = |s: &str| Value::Text(s.to_owned());
    assert_eq!(values(&pg), vec![text("a\\%b\\_%"), text("%@X.org"), text("%\\\\%"), text("a_%"), text("A%")]);
}

#[test]
fn select_with_text_matching_sqlite_uses_glob_when_case_matters() {
    let q = Query::<Person>::new().filter(Expr::all([
        Person::EMAIL.starts_with("a*b?[c%"),
        Person::EMAIL.ends_with("z"),
        Person::NICK.contains_ci("50%_off"),
        Person::NICK.like("a\\%_%"),
        Person::NICK.ilike("A%"),
    ]));
    let lite = select(&Sqlite, &q);
    assert_eq!(
        lite.sql,
        format!(
            r#"SELECT {COLS} FROM "people" WHERE ("email" GLOB ?1 AND "email" GLOB ?2 AND "nick" LIKE ?3 ESCAPE '\' AND "nick" GLOB ?4 AND "nick" LIKE ?5 ESCAPE '\')"#
        )
    );
    let text = |s: &str| Value::Text(s.to_owned());
    assert_eq!(
        values(&lite),
        vec![text("a[*]b[?][[]c%*"), text("*z"), text("%50\\%\\_off%"), text("a%?*"), text("A%")]
    );
}

use crate::query::Expr;

#[test]
fn select_with_array_contains_postgres_and_sqlite() {
    let q = Query::<Person>::new().filter(Person::TAGS.contains("rust"));
    let pg = select(&Postgres, &q);
    assert_eq!(pg.sql, format!(r#"SELECT {COLS} FROM "people" WHERE $1 = ANY("tags")"#));
    assert_eq!(pg.params[0].ty, ColumnType::scalar(Scalar::Text));
    let lite = select(&Sqlite, &q);
    assert_eq!(
        lite.sql,
        format!(r#"SELECT {COLS} FROM "people" WHERE EXISTS (SELECT 1 FROM json_each("tags") WHERE "value" = ?1)"#)
    );
}

#[test]
fn select_with_in_list_binds_one_array_whatever_its_length() {
    // `age` has no index the schema knows of; `id` is the primary key.
    let short = Query::<Person>::new().filter(Person::AGE.is_in([1, 2]));
    let short_32 = Query::<Person>::new().filter(Person::AGE.is_in(0..32));
    let long = Query::<Person>::new().filter(Person::AGE.is_in(0..5000));
    assert_eq!(select(&Sqlite, &short).sql, select(&Sqlite, &long).sql);
    // PostgreSQL: one text for short lists, one for long ones (estimated at 10 and 1 000 keys
    // in a generic plan).
    assert_eq!(select(&Postgres, &short).sql, select(&Postgres, &short_32).sql);
    for d in [&Postgres as &dyn Dialect, &Sqlite] {
        assert_eq!(select(d, &long).params.len(), 1);
    }
    let pg_short = format!(r#"SELECT {COLS} FROM "people" WHERE "age" IN (SELECT unnest($1))"#);
    assert_eq!(select(&Postgres, &short).sql, pg_short);
    let pg_long = r#""age" IN (SELECT ($1)[i] FROM generate_series(1, cardinality($1)) AS i)"#;
    assert_eq!(select(&Postgres, &long).sql, format!(r#"SELECT {COLS} FROM "people" WHERE {pg_long}"#));
    let not_in = Query::<Person>::new().filter(Person::AGE.not_in([1]));
    let pg_not_in = format!(r#"SELECT {COLS} FROM "people" WHERE "age" NOT IN (SELECT unnest($1))"#);
    assert_eq!(select(&Postgres, &not_in).sql, pg_not_in);
    // An indexed column keeps `= ANY($1)`: an index scan in any plan.
    let by_key = Query::<Person>::new().filter(Person::ID.is_in(0..5000));
    assert_eq!(select(&Postgres, &by_key).sql, format!(r#"SELECT {COLS} FROM "people" WHERE "id" = ANY($1)"#));
    let not_by_key = Query::<Person>::new().filter(Person::ID.not_in([1]));
    assert_eq!(
        select(&Postgres, &not_by_key).sql,
        format!(r#"SELECT {COLS} FROM "people" WHERE NOT ("id" = ANY($1))"#)
    );
    assert_eq!(
        select(&Sqlite, &by_key).sql,
        format!(r#"SELECT {COLS} FROM "people" WHERE "id" IN (SELECT "value" FROM json_each(?1))"#)
    );
    let empty = Query::<Person>::new().filter(Person::ID.is_in(Vec::<i64>::new()));
    assert_eq!(select(&Postgres, &empty).sql, format!(r#"SELECT {COLS} FROM "people" WHERE 1 = 0"#));
}

#[test]
fn select_with_nulls_ordering_postgres_and_sqlite() {
    let q = Query::<Person>::new()
        .order_by(Person::NICK.asc().nulls_first())
        .order_by(Person::AGE.desc().nulls_last())
        .order_by(Person::ID.asc());
    let expected = r#"ORDER BY "nick" ASC NULLS FIRST, "age" DESC NULLS LAST, "id" ASC"#;
    assert!(select(&Postgres, &q).sql.ends_with(expected));
    assert!(select(&Sqlite, &q).sql.ends_with(expected));
}

#[test]
fn select_with_same_shape_renders_same_text() {
    let a = Query::<Person>::new().filter(Person::EMAIL.starts_with("a")).limit(5);
    let b = Query::<Person>::new().filter(Person::EMAIL.starts_with("zzz%")).limit(500);
    assert_eq!(select(&Postgres, &a).sql, select(&Postgres, &b).sql);
    assert_eq!(select(&Sqlite, &a).sql, select(&Sqlite, &b).sql);
}

#[test]
fn exists_and_count_postgres() {
    let q = Query::<Person>::new().filter(Person::AGE.gt(3)).order_by(Person::ID.asc()).limit(3);
    assert_eq!(sql::exists(&Postgres, &PERSON, &q).unwrap().sql, r#"SELECT 1 FROM "people" WHERE "age" > $1 LIMIT 1"#);
    assert_eq!(sql::count(&Postgres, &PERSON, &q).unwrap().sql, r#"SELECT COUNT(*) FROM "people" WHERE "age" > $1"#);
}

#[test]
fn update_many_with_assignments_and_updated_at_postgres() {
    let q = Query::<Person>::new().filter(Person::EMAIL.ends_with("@x.org"));
    let assigns: Vec<_> = [Person::AGE.increment(1), Person::NICK.set_null(), Person::EMAIL.set("e")]
        .into_iter()
        .map(|a| a.into_assign().unwrap())
        .collect();
    let now = DateTime::UNIX_EPOCH;
    let stamps = crate::sql::build::update_stamps(&PERSON, now);
    let stmt = sql::update_many(&Postgres, &PERSON, &q, &assigns, stamps).unwrap();
    assert_eq!(
        stmt.sql,
        r#"UPDATE "people" SET "age" = "age" + $1, "nick" = NULL, "email" = $2, "updated_at" = $3 WHERE "email" LIKE $4 ESCAPE '\'"#
    );
    assert_eq!(values(&stmt)[2], Value::TimestampTz(now));
    let explicit =
        [Person::UPDATED_AT.set(now).into_assign().unwrap(), Person::AGE.decrement(2).into_assign().unwrap()];
    let stmt = sql::update_many(
        &Sqlite,
        &PERSON,
        &Query::<Person>::new(),
        &explicit,
        crate::sql::build::update_stamps(&PERSON, now),
    )
    .unwrap();
    assert_eq!(stmt.sql, r#"UPDATE "people" SET "updated_at" = ?1, "age" = "age" - ?2"#);
    assert!(matches!(
        sql::update_many(&Sqlite, &PERSON, &Query::<Person>::new(), &[], Vec::new()),
        Err(Error::Config(_))
    ));
}

#[test]
fn delete_many_with_filter_sqlite() {
    let q = Query::<Person>::new().filter(Person::NICK.is_null().or(Person::AGE.lt(0)));
    assert_eq!(
        sql::delete_many(&Sqlite, &PERSON, &q).unwrap().sql,
        r#"DELETE FROM "people" WHERE ("nick" IS NULL OR "age" < ?1)"#
    );
}

#[test]
fn select_projection_and_aggregates_with_group_by_having() {
    let q = Query::<Person>::new()
        .filter(Person::AGE.ge(0))
        .group_by(Person::NICK)
        .having(count_all::<Person>().gt(1).and(Person::AGE.sum().ge(10i64)))
        .order_by(Person::NICK.asc());
    let sel = (
        Person::NICK,
        count_all::<Person>(),
        Person::AGE.sum(),
        Person::AGE.avg(),
        Person::AGE.min(),
        Person::EMAIL.max(),
    );
    let mut items = Vec::new();
    crate::query::Selection::items(&sel, &mut items);
    let stmt = sql::select_items(&Postgres, &PERSON, &q, &items).unwrap();
    assert_eq!(
        stmt.sql,
        r#"SELECT "nick", COUNT(*), CAST(SUM("age") AS BIGINT), CAST(AVG("age") AS DOUBLE PRECISION), MIN("age"), MAX("email") FROM "people" WHERE "age" >= $1 GROUP BY "nick" HAVING (COUNT(*) > $2 AND CAST(SUM("age") AS BIGINT) >= $3) ORDER BY "nick" ASC"#
    );
    assert_eq!(values(&stmt), vec![Value::I32(0), Value::I64(1), Value::I64(10)]);
}

#[test]
fn select_with_keyset_pagination_condition() {
    use crate::query::page::after_condition;
    use crate::query::{Nulls, OrderTerm};
    let order = [
        OrderTerm { field: 2, descending: false, nulls: Some(Nulls::Last) },
        OrderTerm { field: 0, descending: false, nulls: None },
    ];
    let node = after_condition(&PERSON, &order, &[Value::Text("bo".into()), Value::I64(7)]);
    let q = Query::<Person>::new();
    let stmt = sql::select_page(&Postgres, &PERSON, &q, Some(node), &order, 3).unwrap();
    assert_eq!(
        stmt.sql,
        format!(
            r#"SELECT {COLS} FROM "people" WHERE (("nick" > $1 OR "nick" IS NULL) OR ("nick" = $2 AND "id" > $3)) ORDER BY "nick" ASC NULLS LAST, "id" ASC LIMIT $4"#
        )
    );
    // After a NULL with NULLs last, only ties on NULL remain.
    let node = after_condition(&PERSON, &order, &[Value::Null, Value::I64(7)]);
    let stmt = sql::select_page(&Sqlite, &PERSON, &q, Some(node), &order, 3).unwrap();
    assert!(stmt.sql.contains(r#"WHERE (("nick" IS NULL AND "id" > ?1))"#), "{}", stmt.sql);
}

#[test]
fn select_with_keyset_pagination_descending_nulls_first() {
    use crate::query::page::after_condition;
    use crate::query::{Nulls, OrderTerm};
    let order = [
        OrderTerm { field: 2, descending: true, nulls: Some(Nulls::First) },
        OrderTerm { field: 0, descending: true, nulls: None },
    ];
    let node = after_condition(&PERSON, &order, &[Value::Null, Value::I64(7)]);
    let stmt = sql::select_page(&Postgres, &PERSON, &Query::<Person>::new(), Some(node), &order, 3).unwrap();
    assert!(stmt.sql.contains(r#"WHERE ("nick" IS NOT NULL OR ("nick" IS NULL AND "id" < $1))"#), "{}", stmt.sql);
}

#[test]
fn invalid_values_surface_as_encode_errors() {
    let q = Query::<Person>::new().filter(Expr::from_node(Node::Invalid(crate::error::ValueError::UnexpectedNull)));
    assert!(matches!(sql::select(&Postgres, &PERSON, &q), Err(Error::Encode { .. })));
}

#[test]
fn cursor_type_is_opaque_text() {
    let c = Cursor::new("abc");
    assert_eq!(c.to_string(), "abc");
}
