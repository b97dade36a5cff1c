//! What only MongoDB has, or only MongoDB needs: indexes and validators from the model,
//! transactions on sessions, key counters, the aggregation pipeline builder, the execution
//! point.

use futures_util::TryStreamExt as _;
use polystore::mongo::driver::bson::{self as bson, Document, doc};
use polystore::mongo::{Accumulator, MongoStore, Pipeline, json_schema};
use polystore_tests::run_on_mongo;

use super::types::Tier;
use super::*;

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "c_events", index(kind, note), index(at, ttl = "1h"))]
struct Event {
    #[model(primary_key, generated)]
    id: i32,
    #[model(unique)]
    slug: String,
    kind: Tier,
    at: DateTime<Utc>,
    note: Option<String>,
}

fn event(slug: &str, kind: Tier) -> Event {
    Event { id: 0, slug: slug.into(), kind, at: Utc.timestamp_opt(1_700_000_000, 0).unwrap(), note: None }
}

async fn indexes(store: &MongoStore) -> Vec<Document> {
    let cursor = store.database().collection::<Document>("c_events").list_indexes().await.expect("indexes");
    cursor
        .try_collect::<Vec<_>>()
        .await
        .expect("indexes")
        .into_iter()
        .map(|ix| bson::to_document(&ix).expect("index document"))
        .collect()
}

#[tokio::test]
async fn create_all_makes_indexes_and_a_json_schema_validator() {
    run_on_mongo(|store| async move {
        store.create_all(&[Event::SCHEMA]).await?;
        store.create_all(&[Event::SCHEMA]).await?; // idempotent
        let ix = indexes(&store).await;
        let find = |name: &str| ix.iter().find(|d| d.get_str("name") == Ok(name)).cloned();
        let unique = find("c_events_slug_key").expect("the unique index");
        assert_eq!(unique.get_document("key").unwrap(), &doc! { "slug": 1 });
        assert_eq!(unique.get_bool("unique"), Ok(true));
        let compound = ix.iter().find(|d| d.get_document("key").ok() == Some(&doc! { "kind": 1, "note": 1 }));
        assert!(compound.is_some(), "the compound index: {ix:?}");
        let ttl = ix.iter().find(|d| d.get("expireAfterSeconds").is_some()).expect("the TTL index");
        assert_eq!(ttl.get_document("key").unwrap(), &doc! { "at": 1 });
        assert_eq!(ttl.get("expireAfterSeconds").and_then(|v| v.as_i64().or(v.as_i32().map(i64::from))), Some(3600));

        let reply = store.run_command(doc! { "listCollections": 1, "filter": { "name": "c_events" } }).await?;
        let info =
            reply.get_document("cursor").unwrap().get_array("firstBatch").unwrap()[0].as_document().unwrap().clone();
        assert_eq!(
            info.get_document("options").unwrap().get_document("validator").unwrap(),
            &json_schema(Event::SCHEMA)
        );

        // The validator rejects what the model could not have written.
        let raw = store.database().collection::<Document>("c_events");
        let bad = raw.insert_one(doc! { "_id": 1, "slug": "x", "kind": "Gold", "at": bson::DateTime::now() }).await;
        assert!(bad.is_err(), "an enum value outside the model is rejected");
        let missing = raw.insert_one(doc! { "_id": 2, "slug": "y", "kind": "Free" }).await;
        assert!(missing.is_err(), "a required field is enforced");
        raw.insert_one(doc! { "_id": 3, "slug": "z", "kind": "Free", "at": bson::DateTime::now(), "note": null })
            .await
            .expect("null is allowed for an Option field");
        store.update_validator(Event::SCHEMA).await?;
        Ok::<_, Error>(())
    })
    .await
}

#[tokio::test]
async fn duplicate_keys_and_undecodable_documents_name_the_fields() {
    run_on_mongo(|store| async move {
        store.create_all(&[Event::SCHEMA]).await?;
        let a = event("a", Tier::Free).insert(&store).await?;
        assert_eq!(a.id, 1);
        let dup = event("a", Tier::Pro).insert(&store).await;
        assert_err!(dup, Error::UniqueViolation { ref constraint, ref fields, .. }
            if constraint.as_deref() == Some("c_events_slug_key") && fields == &["slug"]);
        let mut same_key = event("b", Tier::Pro);
        same_key.id = 1;
        let dup_key = same_key.upsert(&store).await.map(|e| e.slug);
        assert_eq!(dup_key?, "b", "upsert on the key replaces the fields");
        // A document written behind the model's back (validation bypassed) that does not
        // decode: the error names the model and the field.
        let foreign = doc! { "_id": 9, "slug": "n", "kind": "Pro", "at": bson::DateTime::now(), "note": 5 };
        store
            .run_command(doc! { "insert": "c_events", "documents": [foreign], "bypassDocumentValidation": true })
            .await?;
        assert_err!(Event::find(&store, 9).await, Error::Decode { model: "Event", field: "note", .. });
        Ok::<_, Error>(())
    })
    .await
}

#[tokio::test]
async fn transactions_commit_or_roll_back_on_a_session() {
    run_on_mongo(|store| async move {
        store.create_all(&[Event::SCHEMA]).await?;
        let mut tx = store.begin().await?;
        let a = event("a", Tier::Free).insert(&mut tx).await?;
        assert_eq!(Event::find(&mut tx, a.id).await?.slug, "a", "the transaction sees its own write");
        assert_eq!(Event::query().count(&mut tx).await?, 1);
        tx.rollback().await?;
        assert_eq!(Event::query().count(&store).await?, 0, "rolled back");

        let mut tx = store.begin().await?;
        Event::insert_many(&mut tx, &[event("b", Tier::Free), event("c", Tier::Pro)]).await?;
        Event::query().filter(Event::SLUG.eq("b")).update_many(&mut tx, [Event::NOTE.set("x")]).await?;
        tx.commit().await?;
        assert_eq!(Event::query().count(&store).await?, 2);
        assert_eq!(Event::query().filter(Event::NOTE.eq("x")).count(&store).await?, 1);

        let tx = store.begin().await?;
        drop(tx); // dropping aborts
        Ok::<_, Error>(())
    })
    .await
}

#[derive(serde::Deserialize, Debug, PartialEq)]
struct PerCountry {
    #[serde(rename = "_id")]
    country: Option<String>,
    people: i32,
    total: i64,
    best: i32,
    emails: Vec<String>,
}

#[tokio::test]
async fn the_pipeline_builder_groups_unwinds_and_facets() {
    run_on_mongo(|store| async move {
        store.create_all(&[Person::SCHEMA]).await?;
        seed(&store).await?;
        let rows: Vec<PerCountry> = Pipeline::<Person>::new()
            .filter(Person::SCORE.ge(20))
            .sort([Person::EMAIL.asc()])
            .group(
                Person::COUNTRY,
                [
                    ("people", Accumulator::count()),
                    ("total", Accumulator::sum(Person::SCORE)),
                    ("best", Accumulator::max(Person::SCORE)),
                    ("emails", Accumulator::push(Person::EMAIL)),
                ],
            )
            .stage(doc! { "$addFields": { "total": { "$toLong": "$total" } } })
            .stage(doc! { "$sort": { "_id": 1 } })
            .all(&store)
            .await?;
        assert_eq!(rows.len(), 4);
        assert_eq!(
            rows[2],
            PerCountry {
                country: Some("UK".into()),
                people: 2,
                total: 77,
                best: 41,
                emails: vec!["ada@x.io".into(), "alan@x.io".into()]
            }
        );
        let tags = Pipeline::<Person>::new().unwind(Person::TAGS).count("n").documents(&store).await?;
        assert_eq!(tags[0].get("n").and_then(|n| n.as_i32().or(n.as_i64().map(|v| v as i32))), Some(4));
        let facets = Pipeline::<Person>::new()
            .facet([
                ("top", Pipeline::new().sort([Person::SCORE.desc()]).limit(1).project([Person::EMAIL])),
                ("uk", Pipeline::new().filter(Person::COUNTRY.eq("UK")).count("n")),
            ])
            .documents(&store)
            .await?;
        let top = facets[0].get_array("top").unwrap()[0].as_document().unwrap();
        assert_eq!(top.get_str("email"), Ok("mia@x.io"));
        let first_two = Pipeline::<Person>::new().sort([Person::ID.asc()]).limit(2).models(&store).await?;
        assert_eq!(first_two.iter().map(|p| p.id).collect::<Vec<_>>(), [1, 2]);
        let stats_before = store.stats().statements();
        Person::query().count(&store).await?;
        assert_eq!(store.stats().statements(), stats_before + 1, "one command, counted once");
        Ok::<_, Error>(())
    })
    .await
}

/// Records the fields of every `polystore.mongodb` span.
#[derive(Clone, Default)]
struct Spans(std::sync::Arc<std::sync::Mutex<Vec<SpanFields>>>);

/// The (name, value) fields of one span.
type SpanFields = Vec<(String, String)>;

struct FieldList<'a>(&'a mut Vec<(String, String)>);

impl tracing::field::Visit for FieldList<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push((field.name().to_owned(), format!("{value:?}")));
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.push((field.name().to_owned(), value.to_owned()));
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Spans {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _: &tracing::span::Id,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if attrs.metadata().name() == "polystore.mongodb" {
            let mut fields = Vec::new();
            attrs.record(&mut FieldList(&mut fields));
            self.0.lock().unwrap().push(fields);
        }
    }
}

#[tokio::test]
async fn every_command_is_one_traced_and_counted_operation() {
    use tracing_subscriber::layer::SubscriberExt as _;
    run_on_mongo(|store| async move {
        store.create_all(&[Person::SCHEMA]).await?;
        // The same commands once before subscribing, so that this thread registers the span
        // callsites: a callsite first met on another test's thread while this one rebuilds the
        // interest cache can be stored as "never interested" (tracing-core computes and stores
        // a new callsite's interest in two steps), and tests here run in parallel.
        let warm = person("w@x.io", "W", None, "UK", 1, None).insert(&store).await?;
        Person::find(&store, warm.id).await?;
        Person::query().filter(Person::SCORE.gt(0)).count(&store).await?;
        let spans = Spans::default();
        let _guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(spans.clone()));
        // Other tests in this process may have met the span's callsite while no subscriber
        // listened, which caches "never interested": recompute that for the new subscriber.
        // A rebuild by another test's thread at the wrong moment can still leave the callsite
        // "never interested" for a while (tracing's interest cache is process-wide, and tests
        // here run in parallel), so a round that recorded no span at all is run again, a few
        // times at most; the statement count is checked every round.
        let mut seen = Vec::new();
        for round in 0..5 {
            tracing::callsite::rebuild_interest_cache();
            spans.0.lock().unwrap().clear();
            let before = store.stats().statements();
            let email = format!("a{round}@x.io");
            let inserted = person(&email, "A", None, "UK", 1, None).insert(&store).await?; // counter + insert
            Person::find(&store, inserted.id).await?;
            Person::query().filter(Person::SCORE.gt(0)).count(&store).await?;
            assert_eq!(store.stats().statements() - before, 4);
            seen = spans.0.lock().unwrap().clone();
            if !seen.is_empty() {
                break;
            }
        }
        let ops: Vec<String> = seen
            .iter()
            .map(|f| f.iter().find(|(k, _)| k == "db.operation.name").map(|(_, v)| v.clone()).unwrap_or_default())
            .collect();
        assert_eq!(ops, ["next_key", "insert", "find", "count"]);
        for fields in &seen {
            assert!(fields.contains(&("db.system".into(), "mongodb".into())), "{fields:?}");
            assert!(fields.contains(&("db.collection.name".into(), "c_people".into())), "{fields:?}");
        }
        Ok::<_, Error>(())
    })
    .await
}

#[tokio::test]
async fn sql_only_operations_say_so_on_mongodb() {
    run_on_mongo(|store| async move {
        store.create_all(&[Person::SCHEMA]).await?;
        let raw = polystore::raw::<Person>("SELECT * FROM c_people").all(&store).await;
        assert_err!(raw, Error::Unsupported { store: "mongodb", .. });
        let rows = polystore::query::raw_rows::<(i64,)>("SELECT id FROM c_people").all(&store).await;
        assert_err!(rows, Error::Unsupported { store: "mongodb", .. });
        let db = polystore_tests::sqlite().await;
        let pipeline = Pipeline::<Person>::new().count("n").documents(&db).await;
        assert_err!(pipeline, Error::Unsupported { .. });
        Ok::<_, Error>(())
    })
    .await
}

#[tokio::test]
async fn generated_keys_come_from_one_counter_per_collection() {
    run_on_mongo(|store| async move {
        store.create_all(&[Event::SCHEMA, Person::SCHEMA]).await?;
        let batch = Event::insert_many(&store, &[event("a", Tier::Free), event("b", Tier::Free)]).await?;
        assert_eq!(batch.iter().map(|e| e.id).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(person("p@x.io", "P", None, "UK", 1, None).insert(&store).await?.id, 1, "another counter");
        assert_eq!(event("c", Tier::Pro).insert(&store).await?.id, 3);
        store.drop_all(&[Event::SCHEMA, Person::SCHEMA]).await?;
        store.create_all(&[Event::SCHEMA]).await?;
        assert_eq!(event("d", Tier::Pro).insert(&store).await?.id, 1, "drop_all resets the counter");
        Ok::<_, Error>(())
    })
    .await
}
