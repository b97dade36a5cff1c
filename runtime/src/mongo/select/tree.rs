//! `$graphLookup` for traversals of a self-relation ([`crate::relation::Traversal`]): one
//! `aggregate` on the model's collection.
//!
//! - Downwards: `$limit: 1` (any document carries the stage), then `$graphLookup` from the
//!   start key (`startWith: { $literal: key }`) connecting each reached document's key to the
//!   documents whose link field holds it; depth 0 are the direct children.
//! - Upwards: `$match` the start document, then `$graphLookup` from its link field
//!   connecting each reached document's link to the document with that key.
//!
//! The reached documents are unwound, sorted by depth and key, and decoded as models.
//! `$graphLookup` visits each document once (at its smallest depth), as the SQL lowering
//! reports each row once; `maxDepth` is the depth limit minus one.

use mongodb::bson::{Bson, doc};

use crate::error::{Error, Result};
use crate::model::Model;
use crate::mongo::bson::{field_path, to_bson};
use crate::mongo::{Conn, exec};
use crate::relation::{Direction, TreeLinks};
use crate::value::Value;

/// Runs a traversal from `start`, at most `max_depth` (≥ 1) links deep.
pub(crate) async fn all<M: Model>(
    mut conn: Conn<'_>,
    links: TreeLinks,
    direction: Direction,
    start: Value,
    max_depth: u32,
) -> Result<Vec<M>> {
    let schema = M::SCHEMA;
    let (parent, child) = (field_path(schema, links.parent), field_path(schema, links.child));
    let key = to_bson(start).map_err(|source| Error::Encode {
        model: schema.name,
        field: schema.fields[links.parent].name,
        source,
    })?;
    let (first, start_with, from, to) = match direction {
        Direction::Down => (doc! { "$limit": 1 }, Bson::Document(doc! { "$literal": key }), &parent, &child),
        Direction::Up => {
            let mut m = mongodb::bson::Document::new();
            m.insert(parent.as_ref(), key);
            (doc! { "$match": m }, Bson::String(format!("${child}")), &child, &parent)
        }
    };
    let pipeline = vec![
        first,
        doc! { "$graphLookup": {
            "from": schema.table,
            "startWith": start_with,
            "connectFromField": from.as_ref(),
            "connectToField": to.as_ref(),
            "as": "__tree",
            "depthField": "__depth",
            "maxDepth": i64::from(max_depth - 1),
        } },
        doc! { "$unwind": "$__tree" },
        doc! { "$replaceRoot": { "newRoot": "$__tree" } },
        doc! { "$sort": { "__depth": 1, parent.as_ref(): 1 } },
        doc! { "$unset": "__depth" },
    ];
    let cmd = doc! { "aggregate": schema.table, "pipeline": pipeline, "cursor": {} };
    let mut out = Vec::new();
    exec::cursor(&mut conn, "traverse", Some(schema), cmd, |d| {
        out.push(crate::mongo::from_document::<M>(d)?);
        Ok(())
    })
    .await?;
    Ok(out)
}
