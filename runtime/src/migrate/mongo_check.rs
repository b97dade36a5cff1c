//! The drift check of the MongoDB side: the live database (collections, their indexes and
//! `$jsonSchema` validators) against the latest snapshot of a migrations directory.

use futures_util::TryStreamExt as _;
use mongodb::bson::{Bson, Document, doc};

use super::MigrateError;
use super::mongo_runner::MongoMigrator;
use super::rebuild::schema_of;
use super::status::Drift;
use crate::error::Error;
use crate::mongo::{index_specs, json_schema};

/// Collections polystore keeps for itself (bookkeeping, locks, generated-key counters).
fn is_internal(name: &str) -> bool {
    name.starts_with("_polystore_") || name == "polystore_counters" || name.starts_with("system.")
}

fn db_error(e: mongodb::error::Error) -> MigrateError {
    MigrateError::from(Error::Database { code: None, message: e.to_string() })
}

fn drift(table: &str, message: String) -> Drift {
    Drift { table: table.to_owned(), message }
}

impl MongoMigrator {
    /// Compares the live database with the latest snapshot: collections missing or not in the
    /// migrations, indexes missing, extra or different (keys, uniqueness, TTL, partial filter), and validators
    /// that differ from the one the snapshot implies. Empty when they agree.
    pub async fn check(&self) -> Result<Vec<Drift>, MigrateError> {
        let snapshot = self.directory().latest_snapshot()?;
        let db = self.store().database();
        let live: Vec<String> = db.list_collection_names().await.map_err(db_error)?;
        let mut out = Vec::new();
        for table in &snapshot.tables {
            let schema = schema_of(table)?;
            if !live.iter().any(|n| n == schema.table) {
                out.push(drift(schema.table, "collection is missing".into()));
                continue;
            }
            out.extend(index_drift(db, schema).await?);
            let info = db
                .list_collections()
                .filter(doc! { "name": schema.table })
                .await
                .map_err(db_error)?
                .try_next()
                .await
                .map_err(db_error)?;
            let validator = info.and_then(|c| c.options.validator);
            if validator.as_ref() != Some(&json_schema(schema)) {
                out.push(drift(schema.table, "the $jsonSchema validator differs from the snapshot's".into()));
            }
        }
        for name in live.iter().filter(|n| !is_internal(n)) {
            if !snapshot.tables.iter().any(|t| &t.table == name) {
                out.push(drift(name, "collection is not in the migrations".into()));
            }
        }
        Ok(out)
    }
}

/// The index differences of one collection.
async fn index_drift(
    db: &mongodb::Database,
    schema: &'static crate::schema::ModelSchema,
) -> Result<Vec<Drift>, MigrateError> {
    let live: Vec<mongodb::IndexModel> = db
        .collection::<Document>(schema.table)
        .list_indexes()
        .await
        .map_err(db_error)?
        .try_collect()
        .await
        .map_err(db_error)?;
    let name_of = |ix: &mongodb::IndexModel| ix.options.as_ref().and_then(|o| o.name.clone()).unwrap_or_default();
    let mut out = Vec::new();
    let expected = index_specs(schema);
    for spec in &expected {
        let name = spec.get_str("name").unwrap_or_default();
        let Some(found) = live.iter().find(|ix| name_of(ix) == name) else {
            out.push(drift(schema.table, format!("index {name} is missing")));
            continue;
        };
        if spec.get_document("keys").ok().or_else(|| spec.get_document("key").ok()) != Some(&found.keys) {
            out.push(drift(schema.table, format!("index {name} covers other fields")));
        }
        let unique = found.options.as_ref().and_then(|o| o.unique).unwrap_or(false);
        if spec.get_bool("unique").unwrap_or(false) != unique {
            out.push(drift(schema.table, format!("index {name} differs in uniqueness")));
        }
        let ttl = found.options.as_ref().and_then(|o| o.expire_after).map(|d| d.as_secs() as i64);
        let wanted_ttl = match spec.get("expireAfterSeconds") {
            Some(Bson::Int64(n)) => Some(*n),
            Some(Bson::Int32(n)) => Some(i64::from(*n)),
            _ => None,
        };
        if ttl != wanted_ttl {
            out.push(drift(schema.table, format!("index {name} differs in expiry")));
        }
        let partial = found.options.as_ref().and_then(|o| o.partial_filter_expression.as_ref());
        if spec.get_document("partialFilterExpression").ok() != partial {
            out.push(drift(
                schema.table,
                format!("index {name} differs in its partial filter (soft-deleted documents)"),
            ));
        }
    }
    for ix in &live {
        let name = name_of(ix);
        if name != "_id_" && !expected.iter().any(|s| s.get_str("name").ok() == Some(name.as_str())) {
            out.push(drift(schema.table, format!("index {name} is not in the migrations")));
        }
    }
    Ok(out)
}
