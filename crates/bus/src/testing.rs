//! Test support: what a service wrote to its outbox.

use mercato_store::Db;

/// Envelopes (as JSON) of the outbox rows of `subject` in `db`, oldest first, sent or not.
pub async fn outbox_envelopes(db: &Db, subject: &str) -> Vec<serde_json::Value> {
    let rows: Vec<String> =
        sqlx::query_scalar("SELECT payload FROM outbox WHERE subject = $1 ORDER BY seq")
            .bind(subject)
            .fetch_all(db.pool())
            .await
            .unwrap_or_else(|e| panic!("reading the outbox: {e}"));
    rows.iter()
        .map(|p| serde_json::from_str(p).unwrap_or_else(|e| panic!("outbox payload: {e}")))
        .collect()
}
