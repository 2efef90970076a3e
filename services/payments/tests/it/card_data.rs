//! No full card number or CVC reaches the database, a log line or an event.

use std::io::Write;
use std::sync::{Arc, Mutex};

use mercato_store::{Backend, Db};
use serde_json::json;

use crate::apps;

const NUMBERS: [&str; 3] = ["4242424242424242", "4000000000000002", "5555555555554444"];
const CVC: &str = "937";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every text value of every column of every table.
async fn dump(db: &Db) -> String {
    let tables: Vec<String> = match db.backend() {
        Backend::Sqlite => sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'"),
        Backend::Postgres => sqlx::query_scalar(
            "SELECT CAST(table_name AS TEXT) FROM information_schema.tables WHERE table_schema = 'public'",
        ),
    }
    .fetch_all(db.pool())
    .await
    .unwrap();
    let mut text = String::new();
    for table in tables {
        let columns: Vec<String> = match db.backend() {
            Backend::Sqlite => sqlx::query_scalar("SELECT name FROM pragma_table_info($1)"),
            Backend::Postgres => sqlx::query_scalar(
                "SELECT CAST(column_name AS TEXT) FROM information_schema.columns WHERE table_name = $1",
            ),
        }
        .bind(&table)
        .fetch_all(db.pool())
        .await
        .unwrap();
        for column in columns {
            let sql = format!("SELECT CAST(\"{column}\" AS TEXT) FROM \"{table}\"");
            let values: Vec<Option<String>> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_all(db.pool())
                .await
                .unwrap_or_default();
            for value in values.into_iter().flatten() {
                text.push_str(&value);
                text.push('\n');
            }
        }
    }
    text
}

/// Whether `text` holds the CVC next to a `cvc` name (digits alone occur in ids).
fn leaks_cvc(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    lower
        .match_indices(CVC)
        .any(|(at, _)| lower[at.saturating_sub(16)..at].contains("cvc"))
}

#[tokio::test]
async fn card_numbers_and_cvcs_never_reach_the_database_logs_or_events() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    for app in apps().await {
        let buyer = app.customer("usr_buyer");
        for number in NUMBERS {
            let method = json!({"type": "card", "card": {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": CVC}});
            let created = app
                .request_with(
                    "POST",
                    "/api/v1/payments",
                    Some(&buyer),
                    Some(
                        json!({"amount": 1234, "currency": "EUR", "payment_method": method})
                            .to_string(),
                    ),
                    &[("idempotency-key", &format!("create-{}", &number[12..]))],
                )
                .await;
            let id = created.body["id"].as_str().unwrap().to_owned();
            app.process(&id).await;
            app.post_as(&buyer, "/api/v1/payment-methods", method.clone())
                .await;
            // A refused request with a card in it.
            app.post_as(
                &buyer,
                "/api/v1/payments",
                json!({"amount": 0, "currency": "EUR", "payment_method": method}),
            )
            .await;
        }
        mercato_bus::Relay::new(app.db.clone(), app.bus.clone())
            .run_once()
            .await
            .unwrap();
        let stored = dump(&app.db).await;
        assert!(
            stored.contains("4242"),
            "{}: the dump reads the tables",
            app.label
        );
        for number in NUMBERS {
            assert!(
                !stored.contains(number),
                "{}: {number} in the database",
                app.label
            );
        }
        assert!(!leaks_cvc(&stored), "{}: CVC in the database", app.label);
    }
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(!logs.is_empty(), "logs were captured");
    for number in NUMBERS {
        assert!(!logs.contains(number), "{number} in a log line");
    }
    assert!(!leaks_cvc(&logs), "CVC in a log line");
}
