//! The query terminals on MongoDB: what `Query::all / first / one / count / exists /
//! paginate / update_many / delete_many` run when their target is a MongoDB store.
//!
//! A read is a `find` command, or an `aggregate` pipeline when the ordering asks for NULLs
//! where MongoDB does not put them (see `filter::sort`). Bulk updates are pipeline updates, so
//! that an increment leaves a NULL (or missing) value NULL, as SQL's `x = x + 1` does.

use futures_util::Stream;
use mongodb::bson::{Bson, Document, doc};
use tracing::Instrument as _;

use crate::db::Executor;
use crate::error::{Error, Result};
use crate::model::Model;
use crate::mongo::bson::{field_path, to_bson};
use crate::mongo::crud::{count_of, decode};
use crate::mongo::exec::{OpenCursor, Read};
use crate::mongo::filter::{count_bson, filter, sort};
use crate::mongo::relation_filter::resolve_query;
use crate::mongo::{Conn, exec};
use crate::query::page::{KnownKey, PagePlan, plan};
use crate::query::{Assign, Node, OrderTerm, Page, PageRequest, Query};
use crate::schema::ModelSchema;
use crate::sql::build::update_stamps;
use crate::value::Value;

/// The read of the documents matching `filter`, in `order`, after skipping `skip`, at most
/// `limit` of them: a `find`, or an `aggregate` when the ordering needs computed NULL flags.
pub(crate) fn read_command(
    schema: &'static ModelSchema,
    filter: Document,
    order: &[OrderTerm],
    skip: Option<u64>,
    limit: Option<u64>,
) -> Read {
    let (sort, flags) = sort(schema, order);
    match flags {
        None => Read::Find {
            collection: schema.table,
            filter,
            sort: if sort.is_empty() { None } else { Some(sort) },
            skip,
            limit,
            projection: None,
        },
        Some(flags) => {
            let hidden: Document = flags.keys().map(|k| (k.clone(), Bson::Int32(0))).collect();
            let mut pipeline = vec![doc! { "$match": filter }, doc! { "$addFields": flags }, doc! { "$sort": sort }];
            if let Some(n) = skip {
                pipeline.push(doc! { "$skip": count_bson(n) });
            }
            if let Some(n) = limit {
                pipeline.push(doc! { "$limit": count_bson(n) });
            }
            pipeline.push(doc! { "$project": hidden });
            Read::Command(doc! { "aggregate": schema.table, "pipeline": pipeline, "cursor": {} })
        }
    }
}

/// Runs a read command and decodes every document.
async fn fetch<M: Model>(conn: &mut Conn<'_>, op: &'static str, cmd: Read) -> Result<Vec<M>> {
    let mut out = Vec::new();
    exec::cursor(conn, op, Some(M::SCHEMA), cmd, |d| {
        out.push(decode::<M>(d)?);
        Ok(())
    })
    .await?;
    Ok(out)
}

/// Every matching document, in the query's order and window.
pub(crate) async fn all<M: Model>(mut conn: Conn<'_>, q: &Query<M>) -> Result<Vec<M>> {
    if q.limit == Some(0) {
        return Ok(Vec::new());
    }
    let q = resolve_query(&mut conn, q).await?;
    let cmd = stream_command(&q)?;
    fetch(&mut conn, "find", cmd).await
}

/// The first matching document.
pub(crate) async fn first<M: Model>(conn: Conn<'_>, q: Query<M>) -> Result<Option<M>> {
    Ok(all(conn, &q.limit(1)).await?.pop())
}

/// The only matching document.
pub(crate) async fn one<M: Model>(conn: Conn<'_>, q: Query<M>) -> Result<M> {
    let limit = q.limit.map_or(2, |n| n.min(2));
    let mut rows = all(conn, &q.limit(limit)).await?;
    match rows.len() {
        1 => Ok(rows.remove(0)),
        n => Err(Error::NotExactlyOne { model: M::SCHEMA.name, found: n as u64 }),
    }
}

fn unsupported_grouping<M>(q: &Query<M>) -> Result<()> {
    if q.group_by.is_empty() && q.group_calc.is_empty() && q.having.is_none() && q.agg_order.is_empty() {
        Ok(())
    } else {
        Err(Error::Config(
            "group_by / having / ordering by an aggregate apply to `select` with aggregates, not to reading models"
                .into(),
        ))
    }
}

/// The number of matching documents (an `aggregate` with `$count`, which, unlike the `count`
/// command, also runs inside transactions).
pub(crate) async fn count<M: Model>(mut conn: Conn<'_>, q: &Query<M>) -> Result<i64> {
    let q = resolve_query(&mut conn, q).await?;
    let pipeline =
        vec![doc! { "$match": filter(M::SCHEMA, q.where_node(M::SCHEMA).as_deref())? }, doc! { "$count": "n" }];
    let cmd = doc! { "aggregate": M::SCHEMA.table, "pipeline": pipeline, "cursor": {} };
    let mut n = 0;
    exec::cursor(&mut conn, "count", Some(M::SCHEMA), cmd, |d| {
        n = match d.get("n") {
            Ok(Some(mongodb::bson::RawBsonRef::Int32(v))) => i64::from(v),
            Ok(Some(mongodb::bson::RawBsonRef::Int64(v))) => v,
            _ => 0,
        };
        Ok(())
    })
    .await?;
    Ok(n)
}

/// Whether any document matches (`find` with limit 1, only `_id` returned).
pub(crate) async fn exists<M: Model>(mut conn: Conn<'_>, q: &Query<M>) -> Result<bool> {
    let q = resolve_query(&mut conn, q).await?;
    let f = filter(M::SCHEMA, q.where_node(M::SCHEMA).as_deref())?;
    let cmd =
        doc! { "find": M::SCHEMA.table, "filter": f, "projection": { "_id": 1 }, "limit": 1, "singleBatch": true };
    let mut found = false;
    exec::cursor(&mut conn, "exists", Some(M::SCHEMA), cmd, |_| {
        found = true;
        Ok(())
    })
    .await?;
    Ok(found)
}

/// Deletes every matching document; returns how many.
pub(crate) async fn delete_many<M: Model>(mut conn: Conn<'_>, q: &Query<M>) -> Result<u64> {
    let q = resolve_query(&mut conn, q).await?;
    let f = filter(M::SCHEMA, q.where_node(M::SCHEMA).as_deref())?;
    let cmd = doc! { "delete": M::SCHEMA.table, "deletes": [{ "q": f, "limit": 0 }] };
    let reply = exec::command(&mut conn, "delete_many", Some(M::SCHEMA), cmd).await?;
    Ok(count_of(&reply, "n"))
}

/// The negation of a numeric value (for decrements).
fn negate(v: Value) -> Value {
    match v {
        Value::I16(n) => Value::I16(n.wrapping_neg()),
        Value::I32(n) => Value::I32(n.wrapping_neg()),
        Value::I64(n) => Value::I64(n.wrapping_neg()),
        Value::F32(n) => Value::F32(-n),
        Value::F64(n) => Value::F64(-n),
        Value::Decimal(d) => Value::Decimal(-d),
        other => other,
    }
}

/// The pipeline-update stage for `assignments` plus the automatic `updated_at` stamps:
/// `$set` values, increments as `$add` that keep NULL NULL, `set_null` as `null`.
fn update_stage(schema: &'static ModelSchema, assignments: Vec<Assign>) -> Result<Document> {
    let mut set = Document::new();
    let encode = |field: usize, v: Value| {
        to_bson(v).map_err(|source| Error::Encode { model: schema.name, field: schema.fields[field].name, source })
    };
    let stamps = update_stamps(schema, chrono::Utc::now());
    for a in assignments {
        let field = a.field();
        if schema.is_key(field) {
            return Err(Error::Unsupported {
                store: "mongodb",
                what: "changing a primary key (`_id` is immutable)".into(),
            });
        }
        let path = field_path(schema, field);
        let value = match a {
            // `$literal`: a value is never read as an expression or a field path (`"$x"`).
            Assign::Set { value, .. } => doc! { "$literal": encode(field, value)? }.into(),
            Assign::Add { value, .. } => add(&path, encode(field, value)?),
            Assign::Sub { value, .. } => add(&path, encode(field, negate(value))?),
            Assign::SetNull { .. } => Bson::Null,
            Assign::Calc { value, .. } => {
                let stored = |f: usize| field_path(schema, f).into_owned();
                crate::mongo::calc::expr(schema, &value, &mut crate::mongo::calc::Ctx::plain(&stored))?
            }
            Assign::Push { value, .. } => {
                let element = doc! { "$literal": to_bson(value).map_err(|source| Error::Encode {
                    model: schema.name,
                    field: schema.fields[field].name,
                    source,
                })? };
                doc! { "$concatArrays": [{ "$ifNull": [format!("${path}"), []] }, [element]] }.into()
            }
        };
        set.insert(path, value);
    }
    for (field, value) in stamps {
        let path = field_path(schema, field);
        if !set.contains_key(path.as_ref()) {
            set.insert(path, doc! { "$literal": encode(field, value)? });
        }
    }
    Ok(doc! { "$set": set })
}

/// `path + amount`, NULL (or missing) staying NULL.
fn add(path: &str, amount: Bson) -> Bson {
    let current = format!("${path}");
    let is_null = doc! { "$eq": [{ "$ifNull": [&current, Bson::Null] }, Bson::Null] };
    doc! { "$cond": [is_null, Bson::Null, { "$add": [&current, amount] }] }.into()
}

/// Applies `assignments` to every matching document (one pipeline `update`); returns how many
/// documents matched.
pub(crate) async fn update_many<M: Model>(mut conn: Conn<'_>, q: &Query<M>, assignments: Vec<Assign>) -> Result<u64> {
    let schema = M::SCHEMA;
    if assignments.is_empty() {
        return Err(Error::Config(format!("{}: update_many needs at least one assignment", schema.name)));
    }
    let q = resolve_query(&mut conn, q).await?;
    let f = filter(schema, q.where_node(schema).as_deref())?;
    let stage = update_stage(schema, assignments)?;
    let cmd = doc! { "update": schema.table, "updates": [{ "q": f, "u": [stage], "multi": true }] };
    let reply = exec::command(&mut conn, "update_many", Some(schema), cmd).await?;
    Ok(count_of(&reply, "n"))
}

/// Claims one document `q` matches (the first in its order) for a worker: one
/// `findAndModify` applying `assignments` (a pipeline update, as [`update_many`]) and returning
/// the document as changed. Atomic on the server: of concurrent claims, one changes the
/// document and the others, finding it no longer matching, move on to the next one.
pub(crate) async fn claim_one<M: Model>(
    conn: &mut Conn<'_>,
    q: &Query<M>,
    assignments: Vec<Assign>,
) -> Result<Option<M>> {
    let schema = M::SCHEMA;
    let q = resolve_query(conn, q).await?;
    let f = filter(schema, q.where_node(schema).as_deref())?;
    let (order, _) = sort(schema, &q.order);
    let stage = update_stage(schema, assignments)?;
    let mut cmd = doc! { "findAndModify": schema.table, "query": f, "update": [stage], "new": true };
    if !order.is_empty() {
        cmd.insert("sort", order);
    }
    let reply = exec::command(conn, "claim", Some(schema), cmd).await?;
    match reply.get("value") {
        Some(Bson::Document(d)) => {
            let raw = mongodb::bson::RawDocumentBuf::from_document(d).map_err(|e| Error::Driver(Box::new(e)))?;
            decode::<M>(&raw).map(Some)
        }
        _ => Ok(None),
    }
}

/// Where a [`stream`] is.
enum StreamState<E, M> {
    /// Not started: the command is sent on the first poll.
    Start(E, Query<M>),
    /// Reading the cursor.
    Open(E, OpenCursor, tracing::Span),
    /// Finished (or failed).
    Done,
}

/// The matching documents as a stream, decoded one at a time as the server sends them (one
/// batch in memory). The stream owns `db` until it is dropped or finished.
pub(crate) fn stream<M: Model, E: Executor>(db: E, q: Query<M>) -> impl Stream<Item = Result<M>> + Send {
    futures_util::stream::unfold(StreamState::Start(db, q), |state| async move {
        let (mut db, mut cursor, span) = match state {
            StreamState::Done => return None,
            StreamState::Open(db, cursor, span) => (db, cursor, span),
            StreamState::Start(mut db, q) => {
                let opened = match crate::mongo::conn(&mut db) {
                    Some(mut conn) => match resolve_query(&mut conn, &q).await.and_then(|q| stream_command(&q)) {
                        Ok(cmd) => exec::open_cursor(&mut conn, "stream", Some(M::SCHEMA), cmd).await,
                        Err(e) => Err(e),
                    },
                    None => Err(Error::Unsupported { store: "sql", what: "a MongoDB stream".into() }),
                };
                match opened {
                    Ok((cursor, span)) => (db, cursor, span),
                    Err(e) => return Some((Err(e), StreamState::Done)),
                }
            }
        };
        let next = match crate::mongo::conn(&mut db) {
            Some(mut conn) => cursor.advance(&mut conn, Some(M::SCHEMA)).instrument(span.clone()).await,
            None => Ok(false),
        };
        match next {
            Ok(true) => {
                let item = decode::<M>(cursor.current());
                Some((item, StreamState::Open(db, cursor, span)))
            }
            Ok(false) => None,
            Err(e) => Some((Err(e), StreamState::Done)),
        }
    })
}

fn stream_command<M: Model>(q: &Query<M>) -> Result<Read> {
    unsupported_grouping(q)?;
    if !q.calc_order.is_empty() {
        return calc_read(q);
    }
    Ok(read_command(M::SCHEMA, filter(M::SCHEMA, q.where_node(M::SCHEMA).as_deref())?, &q.order, q.offset, q.limit))
}

/// The read of a query ordered (also) by expressions: an `aggregate` computing the sort keys.
fn calc_read<M: Model>(q: &Query<M>) -> Result<Read> {
    let schema = M::SCHEMA;
    let stored = |f: usize| field_path(schema, f).into_owned();
    let mut extra = Document::new();
    let mut ctx = crate::mongo::calc::Ctx::plain(&stored);
    let sort = crate::mongo::select::merged_sort(schema, q, &stored, &mut ctx, &mut extra)?;
    let hidden: Document = extra.keys().map(|k| (k.clone(), Bson::Int32(0))).collect();
    let mut pipeline =
        vec![doc! { "$match": filter(schema, q.where_node(schema).as_deref())? }, doc! { "$addFields": extra }];
    pipeline.push(doc! { "$sort": sort });
    if let Some(n) = q.offset {
        pipeline.push(doc! { "$skip": count_bson(n) });
    }
    if let Some(n) = q.limit {
        pipeline.push(doc! { "$limit": count_bson(n) });
    }
    pipeline.push(doc! { "$project": hidden });
    Ok(Read::Command(doc! { "aggregate": schema.table, "pipeline": pipeline, "cursor": {} }))
}

/// One page by keyset: the plan (ordering, cursor condition) is the SQL stores'; MongoDB
/// places NULLs like SQLite, as the smallest values.
pub(crate) async fn paginate<M: Model>(
    mut conn: Conn<'_>,
    q: Query<M>,
    request: PageRequest,
    known: Option<&KnownKey>,
) -> Result<Page<M>> {
    let schema = M::SCHEMA;
    unsupported_grouping(&q)?;
    let q = resolve_query(&mut conn, &q).await?.into_owned();
    crate::sql::lower::no_expression_order(schema, &q.clauses())?;
    let plan: PagePlan = plan(schema, &q.order, false, &request, known)?;
    let f = match (q.where_node(schema).map(std::borrow::Cow::into_owned), plan.keyset.clone()) {
        (Some(f), Some(k)) => Some(Node::And(vec![f, k])),
        (f, k) => f.or(k),
    };
    let cmd = read_command(schema, filter(schema, f.as_ref())?, &plan.run_order, None, Some(plan.fetch_limit()));
    let items: Vec<M> = fetch(&mut conn, "paginate", cmd).await?;
    plan.finish(items)
}
