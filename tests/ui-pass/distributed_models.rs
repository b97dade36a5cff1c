//! A valid multi-tenant layout: a tenant table distributed by its key, colocated tables
//! distributed by `tenant_id` with keys and unique indexes that include it, and reference
//! tables they may refer to.
use polystore::prelude::*;

#[derive(Model)]
#[model(reference)]
pub struct Country {
    #[model(primary_key)]
    pub code: String,
    pub name: String,
}

#[derive(Model)]
#[model(distributed_by = id)]
pub struct Tenant {
    #[model(primary_key)]
    pub id: i64,
    pub country_code: String,
    #[model(belongs_to(key = country_code))]
    pub country: Rel<Country>,
}

#[derive(Model)]
#[model(distributed_by = tenant_id, colocate_with = "tenants", primary_key(tenant_id, id))]
#[model(index(tenant_id, email, unique))]
pub struct Customer {
    pub tenant_id: i64,
    pub id: i64,
    pub email: String,
    #[model(belongs_to(key = tenant_id))]
    pub tenant: Rel<Tenant>,
}

#[derive(Model)]
#[model(distributed_by(range(created_day)), primary_key(created_day, id))]
pub struct Event {
    pub created_day: i32,
    pub id: i64,
}

fn main() {
    let d = Customer::SCHEMA.distribution.expect("distributed");
    assert_eq!(Customer::SCHEMA.fields[d.column].name, "tenant_id");
    assert_eq!(d.colocate_with, Some("tenants"));
    assert_eq!(d.kind, polystore::DistributionKind::Hash);
    assert_eq!(Event::SCHEMA.distribution.unwrap().kind, polystore::DistributionKind::Range);
    assert!(Country::SCHEMA.reference && Country::SCHEMA.distribution.is_none());
}
