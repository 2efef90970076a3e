//! What analytics consumes: tracked events, audit entries and dead letters.

use chrono::{DateTime, Utc};
use mercato_bus::{Event, Handler};
use mercato_store::Tx;

use crate::domain::Metric;
use crate::store::{self, NewEvent};

pub use mercato_contracts::subjects::{ANALYTICS_AUDIT as AUDIT, ANALYTICS_METRIC as METRIC};

/// Records tracked events and audit entries and counts them per day.
pub struct Recorder;

#[async_trait::async_trait]
impl Handler for Recorder {
    async fn handle(&self, event: &Event, tx: &mut Tx) -> anyhow::Result<()> {
        let (kind, name, occurred_at) = if event.kind == METRIC {
            let metric: Metric = serde_json::from_value(event.data.clone())?;
            ("track", metric.name, metric.occurred_at)
        } else {
            let action = event
                .data
                .get("action")
                .and_then(|a| a.as_str())
                .unwrap_or("audit");
            ("audit", action.to_owned(), event.time)
        };
        let data = match event.data.get("properties") {
            Some(properties) if kind == "track" => properties.to_string(),
            _ => event.data.to_string(),
        };
        let row = NewEvent {
            event_id: &event.id,
            kind,
            name: &name,
            source: &event.source,
            subject: event.subject.as_deref(),
            data: &data,
            occurred_at: occurred_at.timestamp_micros(),
        };
        store::record_event(tx, &row, &day_of(occurred_at)).await?;
        Ok(())
    }
}

/// Keeps the dead letters other consumers gave up on, for inspection.
pub struct DeadLetters;

#[async_trait::async_trait]
impl Handler for DeadLetters {
    async fn handle(&self, event: &Event, tx: &mut Tx) -> anyhow::Result<()> {
        let data = &event.data;
        let original = data.get("event").cloned().unwrap_or_default();
        let original_id = original
            .get("id")
            .and_then(|v| v.as_str())
            .unwrap_or(&event.id);
        let consumer = data
            .get("consumer")
            .and_then(|v| v.as_str())
            .unwrap_or("unknown");
        let error = data.get("error").and_then(|v| v.as_str()).unwrap_or("");
        let attempts = data.get("attempts").and_then(|v| v.as_i64()).unwrap_or(0);
        store::record_dead_letter(
            tx,
            original_id,
            consumer,
            error,
            attempts,
            &original.to_string(),
        )
        .await?;
        tracing::warn!(
            event_id = original_id,
            consumer,
            error,
            "dead letter recorded"
        );
        Ok(())
    }
}

fn day_of(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d").to_string()
}
