//! The MongoDB execution point: every command polystore sends passes through [`command`] or
//! [`cursor`], inside one `tracing` span (`db.system = "mongodb"`, operation, collection,
//! model), counted in the handle's [`Stats`](crate::Stats), with server errors mapped to
//! [`Error`] variants (duplicate keys to [`Error::UniqueViolation`] naming the fields).

use mongodb::bson::RawDocumentBuf;
use mongodb::bson::raw::RawDocument;
use mongodb::bson::{Bson, Document};
use tracing::Instrument as _;

use crate::error::{ConstraintKind, Error, Result};
use crate::mongo::Conn;
use crate::observe::{self, RowCount, Shape};
use crate::schema::ModelSchema;

/// The span of one command. It records the command's name, never its values.
fn span(conn: &Conn<'_>, op: &'static str, schema: Option<&ModelSchema>) -> tracing::Span {
    tracing::debug_span!(
        "polystore.mongodb",
        db.system = "mongodb",
        db.namespace = conn.db.name(),
        db.operation.name = op,
        db.collection.name = schema.map(|s| s.table).unwrap_or(""),
        polystore.model = schema.map(|s| s.name).unwrap_or(""),
        "error.type" = tracing::field::Empty,
    )
}

/// Reports a finished command to [`observe`] (metrics, slow log) and, on failure, records its
/// `error.type` on the span and logs it there.
fn finished(
    stats: &crate::db::Stats,
    sp: &tracing::Span,
    op: &'static str,
    schema: Option<&'static ModelSchema>,
    started: std::time::Instant,
    outcome: std::result::Result<RowCount, &Error>,
) {
    if let Err(e) = outcome {
        let class = e.class().as_str();
        sp.record("error.type", class);
        sp.in_scope(|| tracing::debug!(error = %e, error_type = class, "command failed"));
    }
    let shape = Shape { system: "mongodb", op, schema };
    observe::finished(stats, shape, op, started.elapsed(), outcome);
}

/// The documents a write's reply counts (`n`), if it has one.
fn reply_rows(reply: &Document) -> RowCount {
    match reply.get("n") {
        Some(Bson::Int32(n)) => RowCount::Affected(u64::try_from(*n).unwrap_or(0)),
        Some(Bson::Int64(n)) => RowCount::Affected(u64::try_from(*n).unwrap_or(0)),
        _ => RowCount::Unknown,
    }
}

/// A command to send: a document, or one already serialized (bulk inserts build their
/// documents straight into BSON bytes).
pub(crate) enum Cmd {
    /// A document.
    Doc(Document),
    /// Serialized BSON.
    Raw(RawDocumentBuf),
}

impl From<Document> for Cmd {
    fn from(d: Document) -> Self {
        Cmd::Doc(d)
    }
}

impl From<RawDocumentBuf> for Cmd {
    fn from(d: RawDocumentBuf) -> Self {
        Cmd::Raw(d)
    }
}

/// Runs a command and returns the server's reply; write errors reported inside a successful
/// reply (`writeErrors`) become errors too.
pub(crate) async fn command(
    conn: &mut Conn<'_>,
    op: &'static str,
    schema: Option<&'static ModelSchema>,
    cmd: impl Into<Cmd>,
) -> Result<Document> {
    observe::admit(Shape { system: "mongodb", op, schema }, None)?;
    conn.stats.record_statement();
    let sp = span(conn, op, schema);
    let started = std::time::Instant::now();
    let db = conn.db;
    let causal = conn.causal;
    let (cmd, selection) = with_consistency(db, cmd.into(), conn.session.is_some(), causal);
    let session = conn.session.as_deref_mut();
    let result = async move {
        let action = match cmd {
            Cmd::Doc(d) => db.run_command(d),
            Cmd::Raw(r) => db.run_raw_command(r),
        }
        .optional(selection, |a, s| a.selection_criteria(s));
        let reply = match session {
            Some(s) => action.session(s).await,
            None => action.await,
        };
        let reply = reply.map_err(|e| map_error(e, schema))?;
        if let Some(clock) = causal {
            clock.observe(reply.get_timestamp("operationTime").ok());
        }
        write_errors(reply, schema)
    }
    .instrument(sp.clone())
    .await;
    finished(conn.stats, &sp, op, schema, started, result.as_ref().map(reply_rows));
    result
}

/// Inserts `docs` into `schema`'s collection with the driver's `insertMany` (ordered).
pub(crate) async fn insert_many(
    conn: &mut Conn<'_>,
    op: &'static str,
    schema: &'static ModelSchema,
    docs: Vec<RawDocumentBuf>,
) -> Result<()> {
    observe::admit(Shape { system: "mongodb", op, schema: Some(schema) }, None)?;
    conn.stats.record_statement();
    let sp = span(conn, op, Some(schema));
    let started = std::time::Instant::now();
    let inserted = docs.len() as u64;
    let collection = conn.db.collection::<RawDocumentBuf>(schema.table);
    let session = conn.session.as_deref_mut();
    let (client, causal) = (collection.client().clone(), conn.causal);
    let result = async move {
        let action = collection.insert_many(docs);
        match (session, causal) {
            (Some(s), _) => action.session(s).await,
            // A causally consistent handle learns the write's operationTime from a session
            // of its own (the driver's insertMany reply does not show it).
            (None, Some(clock)) => {
                let mut s = client.start_session().await.map_err(|e| map_error(e, Some(schema)))?;
                let done = action.session(&mut s).await;
                clock.observe(s.operation_time());
                done
            }
            (None, None) => action.await,
        }
        .map(drop)
        .map_err(|e| map_error(e, Some(schema)))
    }
    .instrument(sp.clone())
    .await;
    finished(conn.stats, &sp, op, Some(schema), started, result.as_ref().map(|()| RowCount::Affected(inserted)));
    result
}

/// Commands that read, and get the handle's read concern and read preference.
const READ_COMMANDS: [&str; 4] = ["find", "aggregate", "count", "distinct"];

/// Commands that write, and get the handle's write concern.
const WRITE_COMMANDS: [&str; 4] = ["insert", "update", "delete", "findAndModify"];

/// Applies the handle's read preference, read concern and write concern (the options of its
/// database handle, see [`MongoStore::with_read_preference`](crate::mongo::MongoStore::with_read_preference))
/// to a command the driver would send as it is: a read gets `readConcern` and the read
/// preference for server selection (returned), a write gets `writeConcern`. Operations the
/// driver runs on a collection (`find`, `insertMany`) take them from the database handle
/// themselves. Inside a transaction (`in_tx`) the transaction's own settings apply, and a
/// command that already names a concern keeps it. With a causal clock, a read's concern also
/// gets `afterClusterTime` (see [`MongoStore::with_causal_consistency`](crate::mongo::MongoStore::with_causal_consistency)).
fn with_consistency(
    db: &mongodb::Database,
    cmd: Cmd,
    in_tx: bool,
    causal: Option<&crate::mongo::CausalClock>,
) -> (Cmd, Option<mongodb::options::SelectionCriteria>) {
    if in_tx {
        return (cmd, None);
    }
    let name = match &cmd {
        Cmd::Doc(d) => d.keys().next().cloned(),
        Cmd::Raw(r) => r.iter().next().and_then(|e| e.ok()).map(|(k, _)| k.to_owned()),
    };
    let Some(name) = name else { return (cmd, None) };
    let (key, concern) = if READ_COMMANDS.contains(&name.as_str()) {
        let mut concern = db.read_concern().and_then(|c| mongodb::bson::to_document(c).ok());
        if let Some(after) = causal.and_then(|c| c.time()) {
            concern.get_or_insert_with(Document::new).insert("afterClusterTime", after);
        }
        ("readConcern", concern)
    } else if WRITE_COMMANDS.contains(&name.as_str()) {
        ("writeConcern", db.write_concern().and_then(|c| mongodb::bson::to_document(c).ok()))
    } else {
        return (cmd, None);
    };
    let selection = if key == "readConcern" { db.selection_criteria().cloned() } else { None };
    let cmd = match (cmd, concern) {
        (Cmd::Doc(mut d), Some(concern)) if !d.contains_key(key) => {
            d.insert(key, concern);
            Cmd::Doc(d)
        }
        (Cmd::Raw(mut r), Some(concern)) if r.get(key).ok().flatten().is_none() => {
            match RawDocumentBuf::from_document(&concern) {
                Ok(concern) => r.append(key, concern),
                Err(e) => tracing::debug!(error = %e, "the concern did not serialize; sent without it"),
            }
            Cmd::Raw(r)
        }
        (cmd, _) => cmd,
    };
    (cmd, selection)
}

/// Applies an optional setting to a driver action builder.
trait Optional: Sized {
    fn optional<T>(self, value: Option<T>, set: impl FnOnce(Self, T) -> Self) -> Self {
        match value {
            Some(v) => set(self, v),
            None => self,
        }
    }
}

impl<T> Optional for T {}

/// An open server cursor, on a session or not.
pub(crate) enum OpenCursor {
    /// A cursor outside a transaction.
    Plain(mongodb::Cursor<RawDocumentBuf>),
    /// A cursor inside a transaction: advancing it needs the session.
    Session(mongodb::SessionCursor<RawDocumentBuf>),
}

/// A read that returns a cursor.
#[allow(clippy::large_enum_variant)] // one per read, moved once
pub(crate) enum Read {
    /// A `find` on a collection, through the driver's `find` (as an application using the
    /// driver directly would send it).
    Find {
        /// The collection.
        collection: &'static str,
        /// The filter.
        filter: Document,
        /// The sort, if any.
        sort: Option<Document>,
        /// Documents to skip.
        skip: Option<u64>,
        /// Most documents to return.
        limit: Option<u64>,
        /// The projection, if any.
        projection: Option<Document>,
    },
    /// Any command returning a cursor (`aggregate`, `listCollections`).
    Command(Document),
}

impl From<Document> for Read {
    fn from(d: Document) -> Self {
        Read::Command(d)
    }
}

impl OpenCursor {
    /// Moves to the next document (fetching the next batch when needed); false at the end.
    pub(crate) async fn advance(&mut self, conn: &mut Conn<'_>, schema: Option<&'static ModelSchema>) -> Result<bool> {
        let more = match (self, conn.session.as_deref_mut()) {
            (OpenCursor::Plain(c), _) => c.advance().await,
            (OpenCursor::Session(c), Some(s)) => c.advance(s).await,
            (OpenCursor::Session(_), None) => {
                return Err(Error::Config("a session cursor outlived its session".into()));
            }
        };
        more.map_err(|e| map_error(e, schema))
    }

    /// The current document, without copying it.
    pub(crate) fn current(&self) -> &RawDocument {
        match self {
            OpenCursor::Plain(c) => c.current(),
            OpenCursor::Session(c) => c.current(),
        }
    }
}

/// Sends a command that returns a cursor (`find`, `aggregate`): counted and traced here; the
/// returned span is the one to advance the cursor in. Its duration (to the first batch) is
/// reported to [`observe`] as the command's.
pub(crate) async fn open_cursor(
    conn: &mut Conn<'_>,
    op: &'static str,
    schema: Option<&'static ModelSchema>,
    read: impl Into<Read>,
) -> Result<(OpenCursor, tracing::Span)> {
    let started = std::time::Instant::now();
    let opened = open(conn, op, schema, read).await;
    match &opened {
        Ok((_, sp)) => finished(conn.stats, sp, op, schema, started, Ok(RowCount::Unknown)),
        Err((e, sp)) => finished(conn.stats, sp, op, schema, started, Err(e)),
    }
    opened.map_err(|(e, _)| e)
}

/// [`open_cursor`] without the report (the caller reports when the cursor is drained).
async fn open(
    conn: &mut Conn<'_>,
    op: &'static str,
    schema: Option<&'static ModelSchema>,
    read: impl Into<Read>,
) -> std::result::Result<(OpenCursor, tracing::Span), (Error, tracing::Span)> {
    let sp = span(conn, op, schema);
    if let Err(e) = observe::admit(Shape { system: "mongodb", op, schema }, None) {
        return Err((e, sp));
    }
    conn.stats.record_statement();
    let db = conn.db;
    let in_tx = conn.session.is_some();
    let causal = conn.causal;
    let session = conn.session.as_deref_mut();
    let read = match read.into() {
        // The driver's `find` cannot carry `afterClusterTime`: the same `find` as a command.
        Read::Find { collection, filter, sort, skip, limit, projection } if causal.is_some() && !in_tx => {
            let mut cmd = mongodb::bson::doc! { "find": collection, "filter": filter };
            if let Some(sort) = sort {
                cmd.insert("sort", sort);
            }
            if let Some(skip) = skip {
                cmd.insert("skip", i64::try_from(skip).unwrap_or(i64::MAX));
            }
            if let Some(limit) = limit {
                cmd.insert("limit", i64::try_from(limit).unwrap_or(i64::MAX));
            }
            if let Some(projection) = projection {
                cmd.insert("projection", projection);
            }
            Read::Command(cmd)
        }
        read => read,
    };
    let opened = async move {
        match read {
            Read::Command(cmd) => {
                let (cmd, selection) = match with_consistency(db, Cmd::Doc(cmd), in_tx, causal) {
                    (Cmd::Doc(cmd), selection) => (cmd, selection),
                    (Cmd::Raw(_), _) => unreachable!("a document stays a document"),
                };
                let action = db.run_cursor_command(cmd).optional(selection, |a, s| a.selection_criteria(s));
                match session {
                    Some(s) => action.session(s).await.map(|c| OpenCursor::Session(c.with_type())),
                    None => action.await.map(|c| OpenCursor::Plain(c.with_type())),
                }
            }
            Read::Find { collection, filter, sort, skip, limit, projection } => {
                let collection = db.collection::<RawDocumentBuf>(collection);
                let action = collection
                    .find(filter)
                    .optional(sort, |a, s| a.sort(s))
                    .optional(skip, |a, n| a.skip(n))
                    .optional(limit, |a, n| a.limit(i64::try_from(n).unwrap_or(i64::MAX)))
                    .optional(projection, |a, p| a.projection(p));
                match session {
                    Some(s) => action.session(s).await.map(OpenCursor::Session),
                    None => action.await.map(OpenCursor::Plain),
                }
            }
        }
        .map_err(|e| map_error(e, schema))
    }
    .instrument(sp.clone())
    .await;
    match opened {
        Ok(c) => Ok((c, sp)),
        Err(e) => Err((e, sp)),
    }
}

/// Runs a command that returns a cursor (`find`, `aggregate`) and hands each result document
/// to `each` as it arrives, without copying it.
pub(crate) async fn cursor(
    conn: &mut Conn<'_>,
    op: &'static str,
    schema: Option<&'static ModelSchema>,
    read: impl Into<Read>,
    mut each: impl FnMut(&RawDocument) -> Result<()> + Send,
) -> Result<()> {
    let started = std::time::Instant::now();
    let (mut cursor, sp) = match open(conn, op, schema, read).await {
        Ok(opened) => opened,
        Err((e, sp)) => {
            finished(conn.stats, &sp, op, schema, started, Err(&e));
            return Err(e);
        }
    };
    let mut documents = 0u64;
    let result = async {
        while cursor.advance(conn, schema).await? {
            documents += 1;
            each(cursor.current())?;
        }
        Ok(())
    }
    .instrument(sp.clone())
    .await;
    finished(conn.stats, &sp, op, schema, started, result.as_ref().map(|()| RowCount::Returned(documents)));
    result
}

/// Turns the first entry of a reply's `writeErrors` (or its `writeConcernError`) into an error.
fn write_errors(reply: Document, schema: Option<&'static ModelSchema>) -> Result<Document> {
    let first = match reply.get("writeErrors") {
        Some(Bson::Array(errors)) => errors.first().and_then(Bson::as_document).cloned(),
        _ => None,
    };
    let first = first.or_else(|| reply.get_document("writeConcernError").ok().cloned());
    match first {
        None => Ok(reply),
        Some(e) => {
            let code = e.get("code").and_then(|c| c.as_i32().or_else(|| c.as_i64().map(|n| n as i32))).unwrap_or(0);
            let message = e.get_str("errmsg").unwrap_or("write error").to_owned();
            let key_pattern = e.get_document("keyPattern").ok();
            Err(server_error(code, message, key_pattern, schema))
        }
    }
}

/// Maps a driver error; server errors by their code.
pub(crate) fn map_error(e: mongodb::error::Error, schema: Option<&'static ModelSchema>) -> Error {
    use mongodb::error::{ErrorKind, InsertManyError, WriteFailure};
    match *e.kind {
        ErrorKind::Command(c) => server_error(c.code, c.message, None, schema),
        ErrorKind::Write(WriteFailure::WriteError(w)) => server_error(w.code, w.message, None, schema),
        ErrorKind::InsertMany(InsertManyError { write_errors: Some(errors), .. }) if !errors.is_empty() => {
            let first = &errors[0];
            server_error(first.code, first.message.clone(), None, schema)
        }
        ErrorKind::Io(_) | ErrorKind::ServerSelection { .. } | ErrorKind::ConnectionPoolCleared { .. } => {
            Error::Connection { store: "mongodb", message: e.to_string() }
        }
        ErrorKind::InvalidArgument { .. } => Error::Config(e.to_string()),
        ErrorKind::Transaction { message, .. } if message.contains("not supported") => {
            Error::Unsupported { store: "mongodb", what: message }
        }
        _ => Error::Driver(Box::new(e)),
    }
}

/// A server error by code: 11000 (duplicate key) → [`Error::UniqueViolation`], 121 (document
/// failed validation) → a check [`Error::ConstraintViolation`], 20 / 263 (transactions not
/// available) → [`Error::Unsupported`].
fn server_error(
    code: i32,
    message: String,
    key_pattern: Option<&Document>,
    schema: Option<&'static ModelSchema>,
) -> Error {
    let model = schema.map(|s| s.name).unwrap_or("?");
    match code {
        11000 | 11001 => {
            let (constraint, fields) = duplicate_key_details(schema, &message, key_pattern);
            Error::UniqueViolation { model, constraint, fields }
        }
        121 => Error::ConstraintViolation {
            model,
            kind: ConstraintKind::Check,
            constraint: Some("$jsonSchema".to_owned()),
            message,
        },
        20 | 263 if message.contains("ransaction") => Error::Unsupported { store: "mongodb", what: message },
        _ => Error::Database { code: Some(code.to_string()), message },
    }
}

/// The index name and model fields of a duplicate-key error: the index named in the message
/// (`... index: users_email dup key: ...`), the key's fields for `_id_`, or the fields of the
/// reported key pattern.
fn duplicate_key_details(
    schema: Option<&'static ModelSchema>,
    message: &str,
    key_pattern: Option<&Document>,
) -> (Option<String>, Vec<&'static str>) {
    let index = message.split(" index: ").nth(1).and_then(|rest| rest.split_whitespace().next()).map(str::to_owned);
    let Some(schema) = schema else { return (index, Vec::new()) };
    if let Some(name) = &index {
        if name == "_id_" {
            return (Some(schema.primary_key_name()), schema.key_fields().map(|f| f.name).collect());
        }
        let fields = schema.fields_of_constraint(name);
        if !fields.is_empty() {
            return (index, fields);
        }
    }
    let fields = key_pattern
        .map(|kp| {
            kp.keys()
                .filter_map(|k| {
                    let column = k.strip_prefix("_id.").unwrap_or(k);
                    schema.field_by_column(column).map(|(_, f)| f.name)
                })
                .collect()
        })
        .unwrap_or_default();
    (index, fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_key_messages_name_the_index() {
        let (index, fields) = duplicate_key_details(
            None,
            "E11000 duplicate key error collection: db.users index: users_email dup key: { email: \"a\" }",
            None,
        );
        assert_eq!(index.as_deref(), Some("users_email"));
        assert!(fields.is_empty());
    }
}
