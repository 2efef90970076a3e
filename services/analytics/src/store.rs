//! SQL for the analytics tables.

use mercato_kernel::pagination::PageRequest;
use mercato_store::{Db, Tx, now_micros};
use serde::Serialize;
use sqlx::FromRow;

/// A recorded event, as listed by the API.
#[derive(Debug, Clone, Serialize, FromRow, utoipa::ToSchema)]
pub struct EventRow {
    /// Row id (`aev_…`), the pagination cursor.
    pub id: String,
    /// Id of the bus event it came from.
    pub event_id: String,
    /// `track` or `audit`.
    pub kind: String,
    /// Event name.
    pub name: String,
    /// Service or client that produced it.
    pub source: String,
    /// What it is about, when known.
    pub subject: Option<String>,
    /// Properties or audit details, as JSON text.
    pub data: String,
    /// When it happened (epoch microseconds).
    pub occurred_at: i64,
    /// When analytics recorded it (epoch microseconds).
    pub recorded_at: i64,
}

/// One daily counter.
#[derive(Debug, Clone, Serialize, FromRow, utoipa::ToSchema)]
pub struct MetricCount {
    /// Event name.
    pub name: String,
    /// UTC day, `YYYY-MM-DD`.
    pub day: String,
    /// Events of that name that day.
    pub count: i64,
}

/// An event a consumer gave up on.
#[derive(Debug, Clone, Serialize, FromRow, utoipa::ToSchema)]
pub struct DeadLetter {
    /// Row id (`dlq_…`).
    pub id: String,
    /// Id of the failed event.
    pub event_id: String,
    /// Consumer that failed.
    pub consumer: String,
    /// Last error.
    pub error: String,
    /// Attempts made.
    pub attempts: i64,
    /// The failed event's envelope, as JSON text.
    pub event: String,
    /// When it was recorded (epoch microseconds).
    pub recorded_at: i64,
}

/// Records that a track call with this event id was accepted; false if it was already.
pub async fn accept_message(tx: &mut Tx, event_id: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO accepted_messages (event_id, accepted_at) VALUES ($1, $2) \
         ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(event_id)
    .bind(now_micros())
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Fields of an event to record.
pub struct NewEvent<'a> {
    /// Bus event id.
    pub event_id: &'a str,
    /// `track` or `audit`.
    pub kind: &'a str,
    /// Event name.
    pub name: &'a str,
    /// Producer.
    pub source: &'a str,
    /// Subject, if any.
    pub subject: Option<&'a str>,
    /// JSON text.
    pub data: &'a str,
    /// Epoch microseconds.
    pub occurred_at: i64,
}

/// Records an event and counts it for its day.
pub async fn record_event(tx: &mut Tx, event: &NewEvent<'_>, day: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO events (id, event_id, kind, name, source, subject, data, occurred_at, recorded_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(mercato_kernel::id::new_id("aev"))
    .bind(event.event_id)
    .bind(event.kind)
    .bind(event.name)
    .bind(event.source)
    .bind(event.subject)
    .bind(event.data)
    .bind(event.occurred_at)
    .bind(now_micros())
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO metric_counts (name, day, count) VALUES ($1, $2, 1) \
         ON CONFLICT (name, day) DO UPDATE SET count = metric_counts.count + 1",
    )
    .bind(event.name)
    .bind(day)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Records a dead letter; a second copy of the same failed event is ignored.
pub async fn record_dead_letter(
    tx: &mut Tx,
    event_id: &str,
    consumer: &str,
    error: &str,
    attempts: i64,
    event: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO dead_letters (id, event_id, consumer, error, attempts, event, recorded_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(mercato_kernel::id::new_id("dlq"))
    .bind(event_id)
    .bind(consumer)
    .bind(error)
    .bind(attempts)
    .bind(event)
    .bind(now_micros())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A page of recorded events, optionally of one name, oldest first.
pub async fn list_events(
    db: &Db,
    name: Option<&str>,
    page: &PageRequest,
) -> Result<Vec<EventRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, event_id, kind, name, source, subject, data, occurred_at, recorded_at \
         FROM events WHERE ($1 IS NULL OR name = $1) AND ($2 IS NULL OR id > $2) \
         ORDER BY id LIMIT $3",
    )
    .bind(name)
    .bind(page.after.as_deref())
    .bind(page.fetch_limit())
    .fetch_all(db.pool())
    .await
}

/// Daily counters in a day range (inclusive), optionally of one name.
pub async fn metric_counts(
    db: &Db,
    name: Option<&str>,
    from: &str,
    to: &str,
) -> Result<Vec<MetricCount>, sqlx::Error> {
    sqlx::query_as(
        "SELECT name, day, count FROM metric_counts \
         WHERE ($1 IS NULL OR name = $1) AND day >= $2 AND day <= $3 ORDER BY day, name",
    )
    .bind(name)
    .bind(from)
    .bind(to)
    .fetch_all(db.pool())
    .await
}

/// A page of dead letters, oldest first.
pub async fn list_dead_letters(
    db: &Db,
    page: &PageRequest,
) -> Result<Vec<DeadLetter>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, event_id, consumer, error, attempts, event, recorded_at FROM dead_letters \
         WHERE ($1 IS NULL OR id > $1) ORDER BY id LIMIT $2",
    )
    .bind(page.after.as_deref())
    .bind(page.fetch_limit())
    .fetch_all(db.pool())
    .await
}
