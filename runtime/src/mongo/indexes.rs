//! Indexes from the model: every [`IndexSchema`](crate::schema::IndexSchema) becomes one
//! `createIndexes` spec — single-field, compound, unique, and TTL (`expireAfterSeconds`) where
//! declared. The primary key needs none: it is `_id`, which MongoDB always indexes uniquely.

use mongodb::bson::{Bson, Document, doc};

use crate::error::Result;
use crate::mongo::bson::field_path;
use crate::mongo::{Conn, exec};
use crate::schema::{ModelSchema, PartitionKind, PartitionSchema};

/// The `createIndexes` specs of `schema`'s indexes: `{ key, name, unique?,
/// partialFilterExpression?, expireAfterSeconds? }`.
///
/// A range-partitioned model with a retention bound (`partition(range(created_at), every =
/// "1 month", retain = "12 months")`) keeps its documents that long through a TTL index on the
/// partition column (`expireAfterSeconds`, a month counted as 31 days so nothing expires early): the
/// declared single-field, non-unique, non-TTL index on that column gets the TTL when there is
/// one (MongoDB allows one index per key pattern), else an index `{table}_{column}_retention`
/// is added.
pub fn index_specs(schema: &ModelSchema) -> Vec<Document> {
    let retention = retention_ttl(schema);
    let mut merged = false;
    let mut specs: Vec<Document> = schema
        .indexes
        .iter()
        .map(|ix| {
            let ttl = match retention {
                Some((col, secs)) if !merged && ix.fields == [col] && !ix.unique && ix.ttl.is_none() => {
                    merged = true;
                    Some(secs)
                }
                _ => ix.ttl.map(|t| t.as_secs()),
            };
            let mut key = Document::new();
            for &i in ix.fields {
                key.insert(field_path(schema, i), 1);
            }
            let mut spec = doc! { "key": key, "name": ix.name };
            if ix.unique {
                spec.insert("unique", true);
                // A soft-delete model's unique values are unique among its live documents
                // only. Polystore writes a live document's stamp as an explicit null, which
                // `$type: "null"` matches (`{$eq: null}` is no partial filter MongoDB takes).
                if let Some(stamp) = schema.soft_delete {
                    spec.insert("partialFilterExpression", doc! { field_path(schema, stamp): { "$type": "null" } });
                }
            }
            if let Some(ttl) = ttl {
                spec.insert("expireAfterSeconds", Bson::Int64(i64::try_from(ttl).unwrap_or(i64::MAX)));
            }
            spec
        })
        .collect();
    if let Some((col, secs)) = retention.filter(|_| !merged) {
        let path = field_path(schema, col).into_owned();
        let name = format!("{}_{}_retention", schema.table_name(), schema.fields[col].column);
        specs.push(doc! {
            "key": { path: 1 },
            "name": name,
            "expireAfterSeconds": Bson::Int64(i64::try_from(secs).unwrap_or(i64::MAX)),
        });
    }
    specs
}

/// The partition column and TTL (seconds) of a range-partitioned model with a time
/// retention bound.
fn retention_ttl(schema: &ModelSchema) -> Option<(usize, u64)> {
    match schema.partition? {
        PartitionSchema { column, kind: PartitionKind::Range { retain: Some(retain), .. } } => {
            Some((column, retain.approx_duration()?.as_secs()))
        }
        _ => None,
    }
}

/// Creates `schema`'s indexes (nothing to do when it declares none).
pub(crate) async fn create_indexes(conn: &mut Conn<'_>, schema: &'static ModelSchema) -> Result<()> {
    let specs = index_specs(schema);
    if specs.is_empty() {
        return Ok(());
    }
    let cmd = doc! { "createIndexes": schema.table, "indexes": specs };
    exec::command(conn, "create_indexes", Some(schema), cmd).await.map(drop)
}

/// The names of the database's collections.
pub(crate) async fn collection_names(conn: &mut Conn<'_>) -> Result<Vec<String>> {
    let cmd = doc! { "listCollections": 1, "nameOnly": true };
    let mut names = Vec::new();
    exec::cursor(conn, "list_collections", None, cmd, |d| {
        if let Ok(Some(name)) = d.get_str("name").map(Some) {
            names.push(name.to_owned());
        }
        Ok(())
    })
    .await?;
    Ok(names)
}
