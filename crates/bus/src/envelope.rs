//! The CloudEvents 1.0 envelope every event travels in.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{BusError, subject};

/// The CloudEvents version this envelope follows.
pub const SPEC_VERSION: &str = "1.0";
/// The only content type Mercato events carry.
pub const JSON_CONTENT_TYPE: &str = "application/json";

/// An event in the CloudEvents 1.0 JSON format, plus the W3C `traceparent` extension.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Event {
    /// CloudEvents version, always "1.0".
    pub specversion: String,
    /// Unique id (`evt_` + UUIDv7); the deduplication key on the bus and in inboxes.
    pub id: String,
    /// Who produced it, e.g. `mercato/orders`.
    pub source: String,
    /// The event type, which is also the bus subject, e.g. `order.created`.
    #[serde(rename = "type")]
    pub kind: String,
    /// When it happened.
    pub time: DateTime<Utc>,
    /// What it is about, e.g. the order id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Media type of `data`, always `application/json`.
    #[serde(default = "json_content_type")]
    pub datacontenttype: String,
    /// The payload.
    #[serde(default)]
    pub data: serde_json::Value,
    /// W3C trace context of the request that caused it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

fn json_content_type() -> String {
    JSON_CONTENT_TYPE.to_owned()
}

impl Event {
    /// A new event of type `kind` from `source`, with a fresh id and the current time.
    pub fn new(source: &str, kind: &str, data: impl Serialize) -> Result<Self, BusError> {
        subject::validate_subject(kind)?;
        Ok(Self {
            specversion: SPEC_VERSION.to_owned(),
            id: Self::new_id(),
            source: source.to_owned(),
            kind: kind.to_owned(),
            time: Utc::now(),
            subject: None,
            datacontenttype: JSON_CONTENT_TYPE.to_owned(),
            data: serde_json::to_value(data)?,
            traceparent: None,
        })
    }

    /// A fresh event id: `evt_` + a UUIDv7 (time-ordered within the process).
    pub fn new_id() -> String {
        format!("evt_{}", uuid::Uuid::now_v7().simple())
    }

    /// Sets what the event is about (CloudEvents `subject`).
    pub fn with_subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// Replaces the id, e.g. to derive it from a business key so a retry deduplicates.
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// Sets the trace context to propagate to consumers.
    pub fn with_traceparent(mut self, traceparent: Option<String>) -> Self {
        self.traceparent = traceparent;
        self
    }

    /// Checks what the transports rely on: a valid subject, and an id usable as a header value.
    pub(crate) fn validate(&self) -> Result<(), BusError> {
        subject::validate_subject(&self.kind)?;
        if self.id.is_empty() || self.id.len() > 255 || self.id.chars().any(char::is_control) {
            return Err(BusError::InvalidId(self.id.clone()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn new_events_follow_cloudevents() {
        let event = Event::new(
            "mercato/orders",
            "order.created",
            json!({"order_id": "ord_1"}),
        )
        .unwrap()
        .with_subject("ord_1");
        let wire = serde_json::to_value(&event).unwrap();
        assert_eq!(wire["specversion"], "1.0");
        assert_eq!(wire["type"], "order.created");
        assert_eq!(wire["source"], "mercato/orders");
        assert_eq!(wire["subject"], "ord_1");
        assert_eq!(wire["datacontenttype"], "application/json");
        assert_eq!(wire["data"], json!({"order_id": "ord_1"}));
        assert!(wire["id"].as_str().unwrap().starts_with("evt_"));
        assert_eq!(wire["id"].as_str().unwrap().len(), 4 + 32);
        let time = wire["time"].as_str().unwrap();
        assert!(DateTime::parse_from_rfc3339(time).is_ok(), "{time}");
        assert!(wire.get("kind").is_none());
        assert!(
            wire.get("traceparent").is_none(),
            "absent extensions are omitted"
        );
    }

    #[test]
    fn round_trips_through_json() {
        let event = Event::new(
            "mercato/payments",
            "payment.succeeded",
            json!({"amount": 1999}),
        )
        .unwrap()
        .with_traceparent(Some(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
        ));
        let text = serde_json::to_string(&event).unwrap();
        assert_eq!(serde_json::from_str::<Event>(&text).unwrap(), event);
    }

    #[test]
    fn reads_minimal_cloudevents_from_elsewhere() {
        let event: Event = serde_json::from_value(json!({
            "specversion": "1.0", "id": "abc", "source": "x", "type": "user.registered",
            "time": "2026-01-02T03:04:05Z"
        }))
        .unwrap();
        assert_eq!(event.kind, "user.registered");
        assert_eq!(event.datacontenttype, "application/json");
        assert_eq!(event.data, serde_json::Value::Null);
        assert_eq!(event.subject, None);
    }

    #[test]
    fn ids_are_unique_and_time_ordered() {
        let a = Event::new_id();
        let b = Event::new_id();
        assert!(a < b, "{a} < {b}");
    }

    #[test]
    fn rejects_invalid_types_and_ids() {
        assert!(Event::new("x", "order.*", ()).is_err());
        assert!(Event::new("x", "", ()).is_err());
        let bad_id = Event::new("x", "order.created", ())
            .unwrap()
            .with_id("a\r\nb");
        assert!(bad_id.validate().is_err());
        let empty_id = Event::new("x", "order.created", ()).unwrap().with_id("");
        assert!(empty_id.validate().is_err());
    }
}
