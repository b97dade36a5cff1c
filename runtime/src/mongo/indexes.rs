//! Indexes from the model: every [`IndexSchema`](crate::schema::IndexSchema) becomes one
//! `createIndexes` spec — single-field, compound, unique, and TTL (`expireAfterSeconds`) where
//! declared. The primary key needs none: it is `_id`, which MongoDB always indexes uniquely.

use mongodb::bson::{Bson, Document, doc};

use crate::error::Result;
use crate::mongo::bson::field_path;
use crate::mongo::{Conn, exec};
use crate::schema::ModelSchema;

/// The `createIndexes` specs of `schema`'s indexes: `{ key, name, unique?,
/// partialFilterExpression?, expireAfterSeconds? }`.
pub fn index_specs(schema: &ModelSchema) -> Vec<Document> {
    schema
        .indexes
        .iter()
        .map(|ix| {
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
            if let Some(ttl) = ix.ttl {
                spec.insert("expireAfterSeconds", Bson::Int64(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX)));
            }
            spec
        })
        .collect()
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
