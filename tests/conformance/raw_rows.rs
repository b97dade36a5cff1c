//! Raw SQL into ad-hoc rows on PostgreSQL and SQLite: tuples (by position), `#[derive(Row)]`
//! structs (by column name) and JSON maps, with exact decimals, timestamps, NULL → `Option`,
//! and errors that name the row type, the column and its SQL type.

use super::*;
use polystore::Row;
use polystore::query::raw_rows;

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "crr_invoices")]
struct Invoice {
    #[model(primary_key, generated)]
    id: i64,
    customer: String,
    total: Decimal,
    paid_at: Option<DateTime<Utc>>,
}

#[derive(Row, Debug, PartialEq)]
struct Revenue {
    customer: String,
    #[row(column = "n")]
    invoices: i64,
    last_paid: Option<DateTime<Utc>>,
}

#[derive(Row, Debug)]
struct WrongType {
    #[allow(dead_code)]
    customer: i64,
}

#[derive(Row, Debug)]
struct MissingColumn {
    #[allow(dead_code)]
    region: String,
}

async fn seed(db: &Db) -> Result<()> {
    db.create_all(&[Invoice::SCHEMA]).await?;
    let paid = Utc.with_ymd_and_hms(2024, 3, 1, 12, 30, 0).unwrap();
    let invoice = |customer: &str, total: &str, paid_at| Invoice {
        id: 0,
        customer: customer.into(),
        total: total.parse().unwrap(),
        paid_at,
    };
    let rows = [invoice("ada", "12.50", Some(paid)), invoice("ada", "0.10", None), invoice("bob", "7.25", None)];
    Invoice::insert_many(db, &rows).await?;
    Ok(())
}

polystore_tests::sql_test!(raw_rows_decode_into_tuples_by_position, |db| async move {
    seed(&db).await?;
    let sql = "SELECT customer, total, paid_at FROM crr_invoices ORDER BY id";
    let rows: Vec<(String, Decimal, Option<DateTime<Utc>>)> = raw_rows(sql).all(&db).await?;
    let paid = Utc.with_ymd_and_hms(2024, 3, 1, 12, 30, 0).unwrap();
    assert_eq!(rows[0], ("ada".to_owned(), "12.50".parse().unwrap(), Some(paid)));
    assert_eq!(rows[0].1.to_string(), "12.50", "decimals keep their scale");
    assert_eq!(rows[1].2, None, "NULL reads as None");
    let bound = raw_rows::<(i64,)>("SELECT id FROM crr_invoices WHERE customer = $1 ORDER BY id").bind("bob");
    assert_eq!(bound.all(&db).await?, [(3,)]);
    let err = raw_rows::<(String, String)>("SELECT customer FROM crr_invoices").all(&db).await;
    assert_err!(err, Error::Decode { model: "(tuple of 2)", field: "column 2", .. });
    Ok::<_, Error>(())
});

polystore_tests::sql_test!(raw_rows_decode_into_derived_structs_by_name, |db| async move {
    seed(&db).await?;
    let sql = "SELECT MAX(paid_at) AS last_paid, customer, COUNT(*) AS n FROM crr_invoices \
               GROUP BY customer ORDER BY customer";
    let rows: Vec<Revenue> = raw_rows(sql).all(&db).await?;
    let paid = Utc.with_ymd_and_hms(2024, 3, 1, 12, 30, 0).unwrap();
    assert_eq!(
        rows,
        [
            Revenue { customer: "ada".into(), invoices: 2, last_paid: Some(paid) },
            Revenue { customer: "bob".into(), invoices: 1, last_paid: None },
        ]
    );
    let missing = raw_rows::<MissingColumn>("SELECT customer FROM crr_invoices").all(&db).await;
    match missing {
        Err(e @ Error::Decode { model: "MissingColumn", field: "region", .. }) => {
            assert!(e.to_string().contains("no column \"region\""), "{e}");
        }
        other => panic!("expected a decode error naming the column, got {other:?}"),
    }
    let wrong = raw_rows::<WrongType>("SELECT customer FROM crr_invoices").all(&db).await;
    match wrong {
        Err(e @ Error::Decode { model: "WrongType", field: "customer", .. }) => {
            assert!(e.to_string().contains("SQL type TEXT"), "the SQL type is named: {e}");
        }
        other => panic!("expected a decode error naming the SQL type, got {other:?}"),
    }
    Ok::<_, Error>(())
});

polystore_tests::sql_test!(raw_rows_decode_into_json_maps, |db| async move {
    seed(&db).await?;
    let sql = "SELECT id, customer, paid_at FROM crr_invoices WHERE id <= 2 ORDER BY id";
    let rows: Vec<serde_json::Map<String, serde_json::Value>> = raw_rows(sql).all(&db).await?;
    assert_eq!(rows[0]["id"], serde_json::json!(1));
    assert_eq!(rows[0]["customer"], serde_json::json!("ada"));
    assert!(rows[0]["paid_at"].as_str().is_some_and(|t| t.starts_with("2024-03-01T12:30:00")), "{:?}", rows[0]);
    assert_eq!(rows[1]["paid_at"], serde_json::Value::Null);
    let totals: Vec<serde_json::Map<String, serde_json::Value>> =
        raw_rows("SELECT total FROM crr_invoices ORDER BY id").all(&db).await?;
    assert_eq!(totals[0]["total"], serde_json::json!("12.50"), "decimals as exact strings");
    Ok::<_, Error>(())
});
