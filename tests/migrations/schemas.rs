//! Schemas (namespaces), `#[model(schema = "..")]`: on PostgreSQL every statement names the
//! table `"schema"."table"` (DDL, CRUD, relation loads and filters, join tables, foreign keys
//! across schemas) and migrations create, move and check tables per schema; SQLite maps the
//! model to the table named `schema.table`, MongoDB to the collection `schema.table`.
//!
//! Each test uses schema names of its own and drops them at the start and the end.

use super::*;
use polystore::Rel;
use polystore_tests::query_text;

/// Invoices and their lines in one schema, tags in another, customers in the default one.
pub mod billing {
    use polystore::Rel;
    use polystore::prelude::*;

    #[derive(Model, Debug, Clone)]
    #[model(table = "customers")]
    pub struct Customer {
        #[model(primary_key, generated)]
        pub id: i64,
        pub name: String,
        #[model(has_many(foreign_key = customer_id))]
        pub invoices: Rel<Vec<Invoice>>,
    }

    #[derive(Model, Debug, Clone)]
    #[model(schema = "ps_schema_crud", table = "invoices", index(total))]
    pub struct Invoice {
        #[model(primary_key, generated)]
        pub id: i64,
        pub customer_id: i64,
        pub total: i64,
        #[model(belongs_to(key = customer_id, on_delete = "cascade"))]
        pub customer: Rel<Customer>,
        #[model(has_many)]
        pub lines: Rel<Vec<Line>>,
        #[model(many_to_many(through = InvoiceTag))]
        pub tags: Rel<Vec<Tag>>,
    }

    #[derive(Model, Debug, Clone)]
    #[model(schema = "ps_schema_crud")]
    pub struct Line {
        #[model(primary_key, generated)]
        pub id: i64,
        pub invoice_id: i64,
        pub amount: i64,
        #[model(belongs_to(on_delete = "cascade"))]
        pub invoice: Rel<Invoice>,
    }

    #[derive(Model, Debug, Clone)]
    #[model(schema = "ps_schema_crud_tags", table = "tags")]
    pub struct Tag {
        #[model(primary_key, generated)]
        pub id: i64,
        #[model(unique)]
        pub name: String,
    }

    #[derive(Model, Debug, Clone)]
    #[model(schema = "ps_schema_crud", table = "invoice_tags", primary_key(invoice_id, tag_id))]
    pub struct InvoiceTag {
        pub invoice_id: i64,
        pub tag_id: i64,
        #[model(belongs_to(on_delete = "cascade"))]
        pub invoice: Rel<Invoice>,
        #[model(belongs_to(on_delete = "cascade"))]
        pub tag: Rel<Tag>,
    }
}

/// An account in schema `a`, and entries (default schema) referring to it.
pub mod moved_v1 {
    use polystore::Rel;
    use polystore::prelude::*;

    #[derive(Model, Debug, Clone)]
    #[model(schema = "ps_schema_mig_a", table = "accounts")]
    pub struct Account {
        #[model(primary_key, generated)]
        pub id: i64,
        #[model(unique)]
        pub name: String,
    }

    #[derive(Model, Debug, Clone)]
    #[model(table = "entries")]
    pub struct Entry {
        #[model(primary_key, generated)]
        pub id: i64,
        pub account_id: i64,
        #[model(belongs_to)]
        pub account: Rel<Account>,
    }
}

/// The same account table moved to schema `b`.
pub mod moved_v2 {
    use polystore::Rel;
    use polystore::prelude::*;

    #[derive(Model, Debug, Clone)]
    #[model(schema = "ps_schema_mig_b", table = "accounts")]
    pub struct Account {
        #[model(primary_key, generated)]
        pub id: i64,
        #[model(unique)]
        pub name: String,
    }

    #[derive(Model, Debug, Clone)]
    #[model(table = "entries")]
    pub struct Entry {
        #[model(primary_key, generated)]
        pub id: i64,
        pub account_id: i64,
        #[model(belongs_to)]
        pub account: Rel<Account>,
    }
}

/// The account table moved to the default schema.
pub mod moved_v3 {
    use polystore::Rel;
    use polystore::prelude::*;

    #[derive(Model, Debug, Clone)]
    #[model(table = "accounts")]
    pub struct Account {
        #[model(primary_key, generated)]
        pub id: i64,
        #[model(unique)]
        pub name: String,
    }

    #[derive(Model, Debug, Clone)]
    #[model(table = "entries")]
    pub struct Entry {
        #[model(primary_key, generated)]
        pub id: i64,
        pub account_id: i64,
        #[model(belongs_to)]
        pub account: Rel<Account>,
    }
}

/// A model in a schema, on MongoDB.
#[derive(Model, Debug, Clone)]
#[model(schema = "ps_schema_mongo", table = "notes")]
pub struct Note {
    #[model(primary_key, generated)]
    pub id: i64,
    pub body: String,
}

/// Drops the schemas on PostgreSQL (nothing to do on SQLite, whose in-memory database goes).
async fn drop_schemas(db: &Db, schemas: &[&str]) {
    if db.backend() == polystore::Backend::Postgres {
        for s in schemas {
            execute_sql(db, &format!("DROP SCHEMA IF EXISTS \"{s}\" CASCADE")).await;
        }
    }
}

/// How raw SQL names the table of a model in `schema`.
fn qualified(db: &Db, schema: &str, table: &str) -> String {
    match db.backend() {
        polystore::Backend::Postgres => format!("\"{schema}\".\"{table}\""),
        polystore::Backend::Sqlite => format!("\"{schema}.{table}\""),
    }
}

const CRUD_SCHEMAS: [&str; 2] = ["ps_schema_crud", "ps_schema_crud_tags"];

fn crud_models() -> Vec<&'static ModelSchema> {
    use billing::*;
    vec![Customer::SCHEMA, Invoice::SCHEMA, Line::SCHEMA, Tag::SCHEMA, InvoiceTag::SCHEMA]
}

sql_test!(models_in_schemas_are_created_written_read_and_related, |db| async move {
    use billing::*;
    drop_schemas(&db, &CRUD_SCHEMAS).await;
    // A table of the same name in the default schema must not stand in for the model's.
    execute_sql(&db, "CREATE TABLE invoices (x INTEGER)").await;
    db.create_all(&crud_models()).await?;
    db.create_all(&crud_models()).await.expect("the existing tables have the models' shape");

    let ada = Customer { id: 0, name: "Ada".into(), invoices: Rel::NotLoaded }.insert(&db).await?;
    let invoice = |total| Invoice {
        id: 0,
        customer_id: ada.id,
        total,
        customer: Rel::NotLoaded,
        lines: Rel::NotLoaded,
        tags: Rel::NotLoaded,
    };
    let invoices = Invoice::insert_many(&db, &[invoice(50), invoice(500)]).await?;
    let line = |amount| Line { id: 0, invoice_id: invoices[1].id, amount, invoice: Rel::NotLoaded };
    Line::insert_many(&db, &[line(200), line(300)]).await?;
    let tag = Tag { id: 0, name: "urgent".into() }.insert(&db).await?;
    Invoice::TAGS.link(&db, &invoices[1], &tag).await?;
    let count = |sql: String| {
        let db = db.clone();
        async move { query_i64(&db, &sql).await }
    };
    assert_eq!(count(format!("SELECT COUNT(*) FROM {}", qualified(&db, "ps_schema_crud", "invoices"))).await, 2);
    assert_eq!(count("SELECT COUNT(*) FROM invoices".into()).await, 0, "the decoy table is untouched");

    let loaded = Customer::query().with(Customer::INVOICES).one(&db).await?;
    assert_eq!(loaded.invoices.get().unwrap().len(), 2, "has_many into another schema");
    let big = Invoice::query()
        .filter(Invoice::LINES.any(Line::AMOUNT.ge(300)))
        .with(Invoice::CUSTOMER)
        .with(Invoice::LINES)
        .with(Invoice::TAGS)
        .all(&db)
        .await?;
    assert_eq!(big.len(), 1, "a relation filter names the outer table with its schema");
    assert_eq!(big[0].customer.get().unwrap().name, "Ada", "belongs_to from a schema to the default one");
    assert_eq!(big[0].lines.get().unwrap().len(), 2);
    assert_eq!(big[0].tags.get().unwrap()[0].name, "urgent", "many_to_many through a join table in a schema");
    let rich = Customer::query().filter(Customer::INVOICES.any(Invoice::TOTAL.gt(100))).all(&db).await?;
    assert_eq!(rich.len(), 1);
    let tagged = Invoice::query().filter(Invoice::TAGS.any(Tag::NAME.eq("urgent"))).all(&db).await?;
    assert_eq!(tagged.iter().map(|i| i.id).collect::<Vec<_>>(), [invoices[1].id], "N:M filter through the join table");
    let explicit = Invoice { id: 1000, ..invoice(1) }.insert_with_key(&db).await?;
    assert!(invoice(2).insert(&db).await?.id > explicit.id, "the generated key's sequence is found in its schema");

    let mut first = Invoice::find(&db, invoices[0].id).await?;
    first.total = 75;
    first.update(&db).await?;
    assert_eq!(Invoice::find(&db, invoices[0].id).await?.total, 75);
    assert_err!(Tag { id: 0, name: "urgent".into() }.insert(&db).await, Error::UniqueViolation { .. });
    first.delete(&db).await?;
    assert_eq!(Invoice::query().count(&db).await?, 3);

    db.drop_all(&crud_models()).await?;
    if db.backend() == polystore::Backend::Postgres {
        let left = "SELECT COUNT(*) FROM pg_namespace WHERE nspname IN ('ps_schema_crud', 'ps_schema_crud_tags')";
        assert_eq!(query_i64(&db, left).await, 2, "drop_all leaves the schemas");
    }
    assert_eq!(count("SELECT COUNT(*) FROM invoices".into()).await, 0, "drop_all leaves the decoy");
    drop_schemas(&db, &CRUD_SCHEMAS).await;
    Ok::<_, Error>(())
});

const MIG_SCHEMAS: [&str; 2] = ["ps_schema_mig_a", "ps_schema_mig_b"];

sql_test!(migrations_create_check_and_move_tables_between_schemas, |db| async move {
    drop_schemas(&db, &MIG_SCHEMAS).await;
    let dir = TempDir::new();
    let mut names = dir.generate(&[("v1", vec![moved_v1::Account::SCHEMA, moved_v1::Entry::SCHEMA])]);
    let up = |name: &str| std::fs::read_to_string(dir.path().join(name).join("up.postgres.sql")).unwrap();
    let first = up(&names[0]);
    assert!(first.contains("CREATE SCHEMA IF NOT EXISTS \"ps_schema_mig_a\""), "{first}");
    assert!(first.contains("CREATE TABLE \"ps_schema_mig_a\".\"accounts\""), "{first}");
    assert!(first.contains("REFERENCES \"ps_schema_mig_a\".\"accounts\""), "{first}");

    let migrator = Migrator::new(&db, dir.path());
    migrator.up(None).await?;
    let ada = moved_v1::Account { id: 0, name: "Ada".into() }.insert(&db).await?;
    moved_v1::Entry { id: 0, account_id: ada.id, account: Rel::NotLoaded }.insert(&db).await?;
    assert!(migrator.check().await?.is_empty(), "{:?}", migrator.check().await?);

    // The same table in the default schema does not satisfy the model in its schema.
    let (inside, outside) = match db.backend() {
        polystore::Backend::Postgres => (
            "ALTER TABLE \"ps_schema_mig_a\".\"accounts\" SET SCHEMA \"$current\"",
            "ALTER TABLE accounts SET SCHEMA \"ps_schema_mig_a\"",
        ),
        polystore::Backend::Sqlite => (
            "ALTER TABLE \"ps_schema_mig_a.accounts\" RENAME TO accounts",
            "ALTER TABLE accounts RENAME TO \"ps_schema_mig_a.accounts\"",
        ),
    };
    let inside = match db.backend() {
        polystore::Backend::Postgres => {
            inside.replace("$current", &query_text(&db, "SELECT current_schema()::text").await.unwrap_or_default())
        }
        polystore::Backend::Sqlite => inside.to_owned(),
    };
    execute_sql(&db, &inside).await;
    let drift: Vec<String> = migrator.check().await?.iter().map(ToString::to_string).collect();
    assert!(drift.contains(&"ps_schema_mig_a.accounts: table is missing".to_owned()), "{drift:?}");
    assert!(drift.contains(&"accounts: table is not in the schema".to_owned()), "{drift:?}");
    execute_sql(&db, outside).await;
    assert!(migrator.check().await?.is_empty());

    names.extend(dir.generate(&[("move accounts", vec![moved_v2::Account::SCHEMA, moved_v2::Entry::SCHEMA])]));
    let second = up(&names[1]);
    assert!(second.contains("ALTER TABLE \"ps_schema_mig_a\".\"accounts\" SET SCHEMA \"ps_schema_mig_b\""), "{second}");
    assert!(second.contains("CREATE SCHEMA IF NOT EXISTS \"ps_schema_mig_b\""), "{second}");
    assert!(!second.contains("DROP TABLE"), "a move keeps the rows: {second}");
    migrator.up(None).await?;
    assert_eq!(moved_v2::Account::find(&db, ada.id).await?.name, "Ada", "the rows moved with the table");
    assert!(migrator.check().await?.is_empty(), "{:?}", migrator.check().await?);
    assert_eq!(moved_v2::Entry::query().with(moved_v2::Entry::ACCOUNT).count(&db).await?, 1);
    migrator.down(1).await?;
    assert_eq!(moved_v1::Account::find(&db, ada.id).await?.name, "Ada", "down moves it back");
    assert_err!(moved_v2::Account::find(&db, ada.id).await, Error::Database { .. });

    // To the default schema (whatever it is called) and back.
    names.extend(dir.generate(&[("unqualify accounts", vec![moved_v3::Account::SCHEMA, moved_v3::Entry::SCHEMA])]));
    assert_eq!(migrator.up(None).await?, names[1..]);
    assert_eq!(moved_v3::Account::find(&db, ada.id).await?.name, "Ada");
    assert!(migrator.check().await?.is_empty(), "{:?}", migrator.check().await?);
    migrator.down(1).await?;
    assert_eq!(moved_v2::Account::find(&db, ada.id).await?.name, "Ada");
    drop_schemas(&db, &MIG_SCHEMAS).await;
    Ok::<_, MigrateError>(())
});

#[tokio::test]
async fn mongodb_maps_a_schema_to_a_dotted_collection_name() {
    polystore_tests::run_on_mongo(|store| async move {
        store.create_all(&[Note::SCHEMA]).await?;
        let note = Note { id: 0, body: "hello".into() }.insert(&store).await?;
        assert_eq!(Note::find(&store, note.id).await?.body, "hello");
        let names = store.database().list_collection_names().await.expect("list collections");
        assert!(names.contains(&"ps_schema_mongo.notes".to_owned()), "{names:?}");
        Ok::<_, Error>(())
    })
    .await
}
