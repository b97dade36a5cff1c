//! Every supported field type and attribute on one model compiles, and the schema says what
//! the attributes declared.
use polystore::prelude::*;
use polystore::schema::{AutoTimestamp, Scalar};

#[derive(Enum, Debug, Clone, Copy, PartialEq)]
#[model(rename_all = "snake_case")]
pub enum Plan {
    Free,
    ProTeam,
    #[model(rename = "ent")]
    Enterprise,
}

#[derive(Embedded, serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq)]
pub struct Address {
    pub city: String,
}

#[derive(Model, Debug, Clone)]
#[model(table = "accounts", index(country, created_at), index(plan, country, unique, name = "accounts_plan_country"))]
#[model(cache(ttl = "5m", jitter = "30s", negative_ttl = "10s", max_entry_bytes = 65536))]
#[model(index(updated_at, ttl = "30d"))]
pub struct Account {
    #[model(primary_key, generated)]
    pub id: i64,
    #[model(unique)]
    pub email: String,
    #[model(index, column = "nation", renamed_from = "country_code")]
    pub country: String,
    #[model(set_index)]
    pub small: i16,
    #[model(sorted_set)]
    pub medium: i32,
    #[model(default = -1.5)]
    pub ratio: f64,
    pub single: f32,
    #[model(default = true)]
    pub active: bool,
    pub nickname: Option<String>,
    pub born: chrono::NaiveDate,
    pub local: chrono::NaiveDateTime,
    pub token: uuid::Uuid,
    pub balance: rust_decimal::Decimal,
    pub extra: serde_json::Value,
    pub tags: Vec<String>,
    pub scores: Vec<i32>,
    pub plan: Plan,
    pub address: Address,
    pub previous: Vec<Address>,
    pub r#type: Option<i64>,
    #[model(created_at)]
    pub created_at: chrono::DateTime<chrono::Utc>,
    #[model(updated_at)]
    pub updated_at: Option<chrono::NaiveDateTime>,
}

#[derive(Model)]
#[model(primary_key(tenant, number))]
struct Invoice {
    tenant: String,
    number: i32,
}

fn main() {
    let s = Account::SCHEMA;
    assert_eq!(s.table, "accounts");
    assert_eq!(s.primary_key, &[0]);
    assert!(s.fields[0].generated);
    assert_eq!(Account::COUNTRY.column(), "nation");
    assert_eq!(Account::COUNTRY.schema().renamed_from, Some("country_code"));
    assert_eq!(Account::TYPE.name(), "type");
    assert_eq!(s.fields[20].auto, AutoTimestamp::CreatedAt);
    assert_eq!(s.fields[16].ty.scalar, Scalar::Enum(&["free", "pro_team", "ent"]));
    assert!(s.fields[8].ty.nullable);
    assert!(s.fields[14].ty.array);
    assert_eq!(s.fields[18].ty.scalar, Scalar::Json);
    let names: Vec<&str> = s.indexes.iter().map(|i| i.name).collect();
    assert_eq!(
        names,
        [
            "accounts_email_key",
            "accounts_nation_idx",
            "accounts_nation_created_at_idx",
            "accounts_plan_country",
            "accounts_updated_at_idx"
        ]
    );
    assert!(s.indexes[3].unique);
    assert_eq!(s.indexes[4].ttl, Some(std::time::Duration::from_secs(30 * 86_400)));
    let cache = s.cache.expect("a cache policy");
    assert_eq!(cache.ttl, std::time::Duration::from_secs(300));
    assert_eq!(cache.negative_ttl, Some(std::time::Duration::from_secs(10)));
    assert_eq!(cache.max_entry_bytes, Some(65_536));
    assert_eq!(s.fields[3].redis, polystore::schema::RedisIndex::Set);
    assert_eq!(s.fields[4].redis, polystore::schema::RedisIndex::SortedSet);

    let registered: Vec<&str> = polystore::schema::registered().map(|s| s.name).collect();
    assert!(registered.contains(&"Account") && registered.contains(&"Invoice"), "{registered:?}");

    assert_eq!(Invoice::SCHEMA.table, "invoices");
    assert_eq!(Invoice::SCHEMA.primary_key, &[0, 1]);
    let key: <Invoice as Model>::Key = ("acme".to_owned(), 7);
    let values = Invoice::key_values(&key).unwrap();
    assert_eq!(values, vec![polystore::Value::Text("acme".into()), polystore::Value::I32(7)]);
    let _ = Invoice { tenant: String::new(), number: 0 };

    let _typed: Query<Account> = Account::query()
        .filter(Account::NICKNAME.eq("ada").or(Account::NICKNAME.is_null()))
        .filter(Account::PLAN.eq(Plan::ProTeam))
        .order_by(Account::CREATED_AT.desc());
}
