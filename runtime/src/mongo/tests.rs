//! Exact lowering tests (no server): filters, sorts, validators and index specs for a model.

use mongodb::bson::{Bson, doc};

use crate::Order;
use crate::mongo::filter::{filter, sort};
use crate::mongo::{index_specs, json_schema};
use crate::prelude::*;
use crate::query::{Node, OrderTerm};

#[derive(crate::Enum, Debug, Clone, Copy, PartialEq)]
enum Role {
    Admin,
    User,
}

#[derive(crate::Model, Debug, Clone)]
#[model(table = "people", index(name, age), index(seen, ttl = "30d"))]
struct Person {
    #[model(primary_key, generated)]
    id: i64,
    #[model(unique)]
    email: String,
    name: String,
    age: Option<i32>,
    role: Role,
    tags: Vec<String>,
    seen: chrono::DateTime<chrono::Utc>,
}

#[derive(crate::Model, Debug, Clone)]
#[model(table = "links", primary_key(a, b))]
struct Link {
    a: String,
    b: i32,
    weight: f64,
}

fn lowered<M: Model>(expr: Expr<M>) -> mongodb::bson::Document {
    filter(M::SCHEMA, Some(&expr.into_node())).unwrap()
}

fn order<M: Model>(o: Order<M>) -> Vec<OrderTerm> {
    vec![o.into_term()]
}

#[test]
fn comparisons_use_explicit_operators_so_values_stay_values() {
    assert_eq!(lowered(Person::NAME.eq("{\"$ne\": null}")), doc! { "name": { "$eq": "{\"$ne\": null}" } });
    assert_eq!(lowered(Person::NAME.eq("$where")), doc! { "name": { "$eq": "$where" } });
    assert_eq!(lowered(Person::ID.eq(7)), doc! { "_id": { "$eq": 7_i64 } }, "a single key is `_id`");
    assert_eq!(lowered(Link::B.gt(1)), doc! { "_id.b": { "$gt": 1 } }, "a composite key part is under `_id`");
    assert_eq!(lowered(Person::AGE.ne(3)), doc! { "age": { "$nin": [3, Bson::Null] } }, "<> never selects NULL");
    assert_eq!(lowered(Person::AGE.eq(None::<i32>)), doc! { "age": { "$eq": Bson::Null } });
    assert_eq!(lowered(Person::AGE.between(1, 9)), doc! { "age": { "$gte": 1, "$lte": 9 } });
}

#[test]
fn a_key_list_is_one_in_and_filter_document_shows_what_a_find_sends() {
    let q = Person::query().filter(Person::ID.is_in([3_i64, 1, 2]));
    assert_eq!(crate::mongo::filter_document(&q).unwrap(), doc! { "_id": { "$in": [3_i64, 1_i64, 2_i64] } });
    let q = Person::query().filter(Person::AGE.not_in([1, 2]));
    assert_eq!(
        crate::mongo::filter_document(&q).unwrap(),
        doc! { "age": { "$nin": [1, 2, Bson::Null] } },
        "NOT IN never selects NULL, as in SQL"
    );
}

#[test]
fn not_is_pushed_down_to_the_leaves_with_sql_null_rules() {
    let e = Person::AGE.lt(18).or(Person::NAME.starts_with("a.")).not();
    assert_eq!(
        lowered(e),
        doc! { "$and": [
            { "age": { "$gte": 18 } },
            { "$and": [{ "$nor": [{ "name": { "$regex": "^a\\." } }] }, { "name": { "$ne": Bson::Null } }] },
        ] }
    );
    assert_eq!(lowered(Person::AGE.is_in([Some(1), None])), doc! { "age": { "$in": [1] } });
    assert_eq!(lowered(Person::AGE.not_in([Some(1), None])), doc! { "_id": { "$in": [] } });
    assert_eq!(lowered(Person::AGE.not_in([1, 2])), doc! { "age": { "$nin": [1, 2, Bson::Null] } });
    assert_eq!(lowered(Person::TAGS.contains("x")), doc! { "tags": { "$elemMatch": { "$eq": "x" } } });
    assert_eq!(lowered(Expr::<Person>::any([])), doc! { "_id": { "$in": [] } });
    assert_eq!(filter(Person::SCHEMA, Some(&Node::And(vec![]))).unwrap(), doc! {});
}

#[test]
fn text_matches_are_anchored_escaped_regexes() {
    assert_eq!(lowered(Person::NAME.ends_with_ci("(x)")), doc! { "name": { "$regex": "\\(x\\)\\z", "$options": "i" } });
    assert_eq!(lowered(Person::NAME.like("a_%")), doc! { "name": { "$regex": "^a..*\\z", "$options": "s" } });
}

#[test]
fn sorts_compute_a_null_flag_only_where_mongodb_differs() {
    assert_eq!(sort(Person::SCHEMA, &order(Person::AGE.asc())), (doc! { "age": 1 }, None));
    assert_eq!(sort(Person::SCHEMA, &order(Person::AGE.asc().nulls_first())), (doc! { "age": 1 }, None));
    assert_eq!(sort(Person::SCHEMA, &order(Person::AGE.desc().nulls_last())), (doc! { "age": -1 }, None));
    let (s, flags) = sort(Person::SCHEMA, &order(Person::AGE.asc().nulls_last()));
    assert_eq!(s, doc! { "__polystore_null0": 1, "age": 1 });
    assert!(flags.is_some());
    let (s, _) = sort(Person::SCHEMA, &order(Person::ID.desc().nulls_first()));
    assert_eq!(s, doc! { "_id": -1 }, "non-nullable fields need no flag");
}

#[test]
fn the_validator_follows_the_column_types() {
    let v = json_schema(Person::SCHEMA);
    let s = v.get_document("$jsonSchema").unwrap();
    assert_eq!(
        s.get_array("required").unwrap(),
        &vec![
            Bson::from("_id"),
            Bson::from("email"),
            Bson::from("name"),
            Bson::from("role"),
            Bson::from("tags"),
            Bson::from("seen"),
        ]
    );
    let p = s.get_document("properties").unwrap();
    assert_eq!(p.get_document("_id").unwrap(), &doc! { "bsonType": "long" });
    assert_eq!(p.get_document("age").unwrap(), &doc! { "bsonType": ["int", "null"] });
    assert_eq!(p.get_document("role").unwrap(), &doc! { "bsonType": "string", "enum": ["Admin", "User"] });
    assert_eq!(p.get_document("tags").unwrap(), &doc! { "bsonType": "array", "items": { "bsonType": "string" } });
    assert_eq!(p.get_document("seen").unwrap(), &doc! { "bsonType": "date" });
    let link = json_schema(Link::SCHEMA);
    let id = link.get_document("$jsonSchema").unwrap().get_document("properties").unwrap().get_document("_id").unwrap();
    assert_eq!(id.get_array("required").unwrap(), &vec![Bson::from("a"), Bson::from("b")]);
}

#[test]
fn index_specs_cover_unique_compound_and_ttl() {
    let specs = index_specs(Person::SCHEMA);
    let by_key = |key: mongodb::bson::Document| specs.iter().find(|s| s.get_document("key") == Ok(&key)).cloned();
    assert_eq!(by_key(doc! { "email": 1 }).unwrap().get_bool("unique"), Ok(true));
    assert!(by_key(doc! { "name": 1, "age": 1 }).is_some());
    assert_eq!(by_key(doc! { "seen": 1 }).unwrap().get_i64("expireAfterSeconds"), Ok(30 * 86_400));
    assert!(index_specs(Link::SCHEMA).is_empty(), "the key is `_id`, indexed already");
    let _ = Role::Admin;
    let _ = Role::User;
}
