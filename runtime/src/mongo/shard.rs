//! MongoDB sharding: a distributed model (`#[model(distributed_by = col)]`, see
//! [`DistributionSchema`]) is sharded on that column when the server is a sharded cluster.
//!
//! - The shard key is the distribution column: `{ col: "hashed" }` for
//!   [`DistributionKind::Hash`] (the default: writes spread evenly), `{ col: 1 }` for
//!   [`DistributionKind::Range`] (range queries on the key stay on few shards).
//! - A sharded cluster enforces a unique index only when the index starts with the shard key
//!   (and, for a hashed key, not at all beyond `_id`'s per-shard uniqueness): each unique index
//!   is created with the shard key column moved to its front. The compile-time rule that unique
//!   indexes of a distributed model include the distribution column guarantees the set of
//!   fields stays the same, so uniqueness means the same thing.
//! - Whether the server is a sharded cluster is read from the `hello` reply: `mongos` answers
//!   `msg: "isdbgrid"`. Against a replica set or a single server nothing is sharded and the
//!   indexes are created as declared.

use mongodb::bson::{Bson, Document, doc};

use crate::error::Result;
use crate::mongo::bson::field_path;
use crate::mongo::indexes::index_specs;
use crate::schema::{DistributionKind, DistributionSchema, ModelSchema};

/// Whether a `hello` reply comes from a sharded cluster's router (`msg: "isdbgrid"`).
pub fn is_sharded_reply(hello: &Document) -> bool {
    matches!(hello.get("msg"), Some(Bson::String(m)) if m == "isdbgrid")
}

/// The shard key document of a distributed model: `{ col: "hashed" }` or `{ col: 1 }`.
pub fn shard_key(schema: &ModelSchema, d: &DistributionSchema) -> Document {
    let path = field_path(schema, d.column).into_owned();
    match d.kind {
        DistributionKind::Hash => doc! { path: "hashed" },
        DistributionKind::Range => doc! { path: 1 },
    }
}

/// The admin commands that shard `schema`'s collection in database `db`, in order:
/// `enableSharding` (needed before MongoDB 6.0, harmless after) and `shardCollection`. Empty
/// for a model that is not distributed.
pub fn shard_commands(db: &str, schema: &ModelSchema) -> Vec<Document> {
    let Some(d) = schema.distribution.as_ref() else { return Vec::new() };
    vec![
        doc! { "enableSharding": db },
        doc! { "shardCollection": format!("{db}.{}", schema.table), "key": shard_key(schema, d) },
    ]
}

/// `createIndexes` specs for a sharded collection: [`index_specs`] with each unique index's
/// key reordered so the shard key column comes first (a sharded cluster refuses unique indexes
/// that are not prefixed by the shard key). Non-unique indexes are unchanged.
pub fn sharded_index_specs(schema: &ModelSchema) -> Vec<Document> {
    let specs = index_specs(schema);
    let Some(d) = schema.distribution.as_ref() else { return specs };
    let shard_path = field_path(schema, d.column).into_owned();
    specs
        .into_iter()
        .map(|mut spec| {
            let unique = spec.get_bool("unique").unwrap_or(false);
            let Ok(key) = spec.get_document("key").cloned() else { return spec };
            if !unique || key.keys().next().is_some_and(|k| *k == shard_path) {
                return spec;
            }
            let mut reordered = doc! { shard_path.clone(): key.get(&shard_path).cloned().unwrap_or(Bson::Int32(1)) };
            for (k, v) in key {
                if k != shard_path {
                    reordered.insert(k, v);
                }
            }
            spec.insert("key", reordered);
            spec
        })
        .collect()
}

impl super::MongoStore {
    /// Whether the server is a sharded cluster (its `hello` reply says `msg: "isdbgrid"`).
    pub async fn is_sharded(&self) -> Result<bool> {
        let hello = self.run_command(doc! { "hello": 1 }).await?;
        Ok(is_sharded_reply(&hello))
    }

    /// Runs an `admin` database command (sharding) through the execution point.
    pub(crate) async fn admin_command(&self, schema: &'static ModelSchema, cmd: Document) -> Result<Document> {
        let admin = self.client().database("admin");
        let mut conn = super::Conn { db: &admin, session: None, stats: self.stats(), causal: None };
        super::exec::command(&mut conn, "shard_collection", Some(schema), cmd).await
    }
}

#[cfg(test)]
mod tests {
    use mongodb::bson::doc;

    use super::*;
    use crate::schema::{ColumnType, FieldSchema, IndexSchema, Scalar};

    const I64: ColumnType = ColumnType::scalar(Scalar::I64);
    const TEXT: ColumnType = ColumnType::scalar(Scalar::Text);

    static FIELDS: [FieldSchema; 4] = [
        FieldSchema::plain("id", I64),
        FieldSchema::plain("tenant_id", I64),
        FieldSchema::plain("number", TEXT),
        FieldSchema::plain("status", TEXT),
    ];
    static INDEXES: [IndexSchema; 3] = [
        IndexSchema { name: "orders_number_tenant_id_key", fields: &[2, 1], unique: true, ttl: None },
        IndexSchema { name: "orders_tenant_id_status_key", fields: &[1, 3], unique: true, ttl: None },
        IndexSchema { name: "orders_status_idx", fields: &[3], unique: false, ttl: None },
    ];

    const fn orders(distribution: Option<DistributionSchema>) -> ModelSchema {
        ModelSchema {
            name: "Order",
            table: "orders",
            fields: &FIELDS,
            primary_key: &[0],
            indexes: &INDEXES,
            partition: None,
            cache: None,
            renamed_from: None,
            relations: &[],
            distribution,
            reference: false,
            soft_delete: None,
        }
    }

    static HASHED: ModelSchema =
        orders(Some(DistributionSchema { column: 1, kind: DistributionKind::Hash, colocate_with: None }));
    static RANGED: ModelSchema =
        orders(Some(DistributionSchema { column: 1, kind: DistributionKind::Range, colocate_with: Some("tenants") }));
    static PLAIN: ModelSchema = orders(None);

    #[test]
    fn shard_commands_name_the_namespace_and_key() {
        assert_eq!(
            shard_commands("app", &HASHED),
            [
                doc! { "enableSharding": "app" },
                doc! { "shardCollection": "app.orders", "key": { "tenant_id": "hashed" } },
            ]
        );
        assert_eq!(
            shard_commands("app", &RANGED)[1],
            doc! { "shardCollection": "app.orders", "key": { "tenant_id": 1 } }
        );
        assert!(shard_commands("app", &PLAIN).is_empty());
    }

    #[test]
    fn unique_indexes_are_prefixed_by_the_shard_key_when_sharded() {
        assert_eq!(
            sharded_index_specs(&HASHED),
            [
                doc! { "key": { "tenant_id": 1, "number": 1 }, "name": "orders_number_tenant_id_key", "unique": true },
                doc! { "key": { "tenant_id": 1, "status": 1 }, "name": "orders_tenant_id_status_key", "unique": true },
                doc! { "key": { "status": 1 }, "name": "orders_status_idx" },
            ]
        );
        // Not distributed: the declared specs, untouched.
        assert_eq!(sharded_index_specs(&PLAIN), index_specs(&PLAIN));
        assert_eq!(index_specs(&HASHED)[0].get_document("key").unwrap(), &doc! { "number": 1, "tenant_id": 1 });
    }

    #[test]
    fn only_a_mongos_hello_reply_means_sharded() {
        assert!(is_sharded_reply(&doc! { "isWritablePrimary": true, "msg": "isdbgrid", "maxWireVersion": 21 }));
        assert!(!is_sharded_reply(&doc! { "isWritablePrimary": true, "setName": "rs0" }));
        assert!(!is_sharded_reply(&doc! { "isWritablePrimary": true }));
        assert!(!is_sharded_reply(&doc! { "msg": "something else" }));
    }
}
