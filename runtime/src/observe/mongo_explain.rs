//! MongoDB's side of the index advisor: `explain` of a `find`, flagging a collection scan
//! (`COLLSCAN`) and suggesting the index that would serve the filter and sort.

use mongodb::bson::{Bson, Document, doc};

use crate::error::{Error, ErrorClass, Result};
use crate::mongo::MongoStore;
use crate::schema::ModelSchema;

/// What the server plans for a `find` ([`explain_find`]).
#[derive(Debug, Clone, PartialEq)]
pub struct MongoPlan {
    /// The collection.
    pub collection: &'static str,
    /// The winning plan's stages, outermost first (`FETCH`, `IXSCAN`; `SORT`, `COLLSCAN`).
    pub stages: Vec<String>,
    /// Whether the plan reads the whole collection.
    pub collscan: bool,
    /// The index the plan uses, if any (`IXSCAN`'s `indexName`).
    pub index: Option<String>,
    /// For a collection scan: the fields an index should hold, equality fields first, then
    /// the sort fields or else the first range field (document field names).
    pub suggested_keys: Vec<String>,
    /// For a collection scan: the model attribute to add (`#[model(index(country, created_at))]`),
    /// when every suggested key is a field of the model.
    pub attribute: Option<String>,
    /// The winning plan as the server returned it.
    pub winning_plan: Document,
}

/// Asks the server how it would run `find` on `schema`'s collection with `filter` and `sort`
/// (`explain` with verbosity `queryPlanner`: nothing is read). A plan with a `COLLSCAN` stage
/// is flagged, with the index to add.
///
/// A server without `explain` (some MongoDB-compatible servers) gives
/// [`Error::Unsupported`] saying so; connection errors stay what they are.
pub async fn explain_find(
    store: &MongoStore,
    schema: &'static ModelSchema,
    filter: Document,
    sort: Option<Document>,
) -> Result<MongoPlan> {
    let mut find = doc! { "find": schema.table, "filter": filter.clone() };
    if let Some(sort) = &sort {
        find.insert("sort", sort.clone());
    }
    let reply = match store.run_command(doc! { "explain": find, "verbosity": "queryPlanner" }).await {
        Ok(reply) => reply,
        Err(e) if matches!(e.class(), ErrorClass::Unavailable | ErrorClass::Transient) => return Err(e),
        Err(e) => {
            return Err(Error::Unsupported {
                store: "mongodb",
                what: format!("explain of a find (the server answered: {e})"),
            });
        }
    };
    let winning = reply
        .get_document("queryPlanner")
        .and_then(|q| q.get_document("winningPlan"))
        .map_err(|_| Error::Unsupported {
            store: "mongodb",
            what: "explain of a find (the reply has no queryPlanner.winningPlan)".into(),
        })?
        .clone();
    let mut stages = Vec::new();
    let mut index = None;
    let mut node = Some(&winning);
    while let Some(n) = node {
        if let Ok(stage) = n.get_str("stage") {
            stages.push(stage.to_owned());
        }
        if index.is_none()
            && let Ok(name) = n.get_str("indexName")
        {
            index = Some(name.to_owned());
        }
        node = n
            .get_document("inputStage")
            .ok()
            .or_else(|| n.get_array("inputStages").ok().and_then(|a| a.first()).and_then(Bson::as_document));
    }
    let collscan = stages.iter().any(|s| s == "COLLSCAN");
    let suggested_keys = if collscan { keys(&filter, sort.as_ref()) } else { Vec::new() };
    let attribute = (collscan && !suggested_keys.is_empty())
        .then(|| {
            let fields: Option<Vec<&str>> = suggested_keys.iter().map(|k| field_of(schema, k)).collect();
            fields.map(|f| format!("#[model(index({}))]", f.join(", ")))
        })
        .flatten();
    Ok(MongoPlan {
        collection: schema.table,
        stages,
        collscan,
        index,
        suggested_keys,
        attribute,
        winning_plan: winning,
    })
}

/// The model field stored under document key `key` (`_id` is the primary key).
fn field_of(schema: &ModelSchema, key: &str) -> Option<&'static str> {
    if key == "_id" {
        return match schema.primary_key {
            [one] => Some(schema.fields[*one].name),
            _ => None,
        };
    }
    schema.fields.iter().find(|f| f.column == key || f.name == key).map(|f| f.name)
}

/// Equality keys of `filter` (also inside `$and`), then the sort keys or else the first range
/// key.
fn keys(filter: &Document, sort: Option<&Document>) -> Vec<String> {
    fn walk(filter: &Document, eq: &mut Vec<String>, range: &mut Vec<String>) {
        for (key, value) in filter {
            if key == "$and" {
                if let Bson::Array(items) = value {
                    items.iter().filter_map(Bson::as_document).for_each(|d| walk(d, eq, range));
                }
                continue;
            }
            if key.starts_with('$') {
                continue;
            }
            let is_range = match value {
                Bson::Document(ops) => {
                    if ops.keys().any(|op| matches!(op.as_str(), "$eq" | "$in")) {
                        false
                    } else if ops.keys().any(|op| matches!(op.as_str(), "$gt" | "$gte" | "$lt" | "$lte")) {
                        true
                    } else {
                        continue;
                    }
                }
                _ => false,
            };
            let list = if is_range { &mut *range } else { &mut *eq };
            if !list.contains(key) {
                list.push(key.clone());
            }
        }
    }
    let (mut eq, mut range) = (Vec::new(), Vec::new());
    walk(filter, &mut eq, &mut range);
    let sorts: Vec<String> = sort.map(|s| s.keys().cloned().collect()).unwrap_or_default();
    if sorts.is_empty() {
        if let Some(r) = range.into_iter().next()
            && !eq.contains(&r)
        {
            eq.push(r);
        }
    } else {
        for s in sorts {
            if !eq.contains(&s) {
                eq.push(s);
            }
        }
    }
    eq
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equality_keys_come_before_sort_and_range_keys() {
        let f = doc! { "created_at": { "$gt": 1 }, "country": "fr", "$and": [{ "tier": { "$in": [1, 2] } }] };
        assert_eq!(keys(&f, None), ["country", "tier", "created_at"]);
        assert_eq!(keys(&f, Some(&doc! { "name": 1 })), ["country", "tier", "name"]);
        assert_eq!(keys(&doc! { "name": { "$regex": "^a" } }, None), Vec::<String>::new());
    }
}
