//! Tracked events: what a client may send and what is kept of it.

use chrono::{DateTime, Utc};
use mercato_kernel::FieldError;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Longest event name.
pub const MAX_NAME_LEN: usize = 100;
/// Largest `properties` object, serialized.
pub const MAX_PROPERTIES_BYTES: usize = 16 * 1024;
/// Longest client message id.
pub const MAX_MESSAGE_ID_LEN: usize = 128;

/// A validated track call, ready to be published as an `analytics.metric` event.
#[derive(Debug, Clone, PartialEq)]
pub struct Track {
    /// Event id on the bus; derived from the client's message id when there is one, so that a
    /// retried call maps to the same event.
    pub event_id: String,
    /// Body of the `analytics.metric` event.
    pub metric: Metric,
}

/// Data of an `analytics.metric` event.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Metric {
    /// Event name, e.g. `product_viewed`.
    pub name: String,
    /// Free-form properties.
    pub properties: serde_json::Value,
    /// When it happened, per the client (else when it was accepted).
    pub occurred_at: DateTime<Utc>,
}

impl Track {
    /// Checks a track call; every invalid field is reported.
    pub fn parse(
        name: &str,
        properties: Option<serde_json::Value>,
        message_id: Option<&str>,
        occurred_at: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let name_ok = !name.is_empty()
            && name.len() <= MAX_NAME_LEN
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name.bytes().all(|b| {
                b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || matches!(b, b'_' | b'.' | b':' | b'-')
            });
        if !name_ok {
            errors.push(FieldError::new(
                "event",
                "invalid_name",
                format!(
                    "1 to {MAX_NAME_LEN} characters: a lower-case letter, then a-z, 0-9, `_.:-`"
                ),
            ));
        }
        let properties = properties.unwrap_or_else(|| serde_json::json!({}));
        if !properties.is_object() {
            errors.push(FieldError::new(
                "properties",
                "not_an_object",
                "must be a JSON object",
            ));
        } else if properties.to_string().len() > MAX_PROPERTIES_BYTES {
            errors.push(FieldError::new(
                "properties",
                "too_large",
                format!("at most {MAX_PROPERTIES_BYTES} bytes"),
            ));
        }
        let bad_id = |id: &str| {
            id.is_empty()
                || id.len() > MAX_MESSAGE_ID_LEN
                || !id.bytes().all(|b| b.is_ascii_graphic())
        };
        if message_id.is_some_and(bad_id) {
            errors.push(FieldError::new(
                "message_id",
                "invalid_message_id",
                format!("1 to {MAX_MESSAGE_ID_LEN} visible ASCII characters"),
            ));
        }
        let occurred_at = match occurred_at.map(DateTime::parse_from_rfc3339) {
            None => Some(now),
            Some(Ok(at)) => Some(at.with_timezone(&Utc)),
            Some(Err(_)) => {
                errors.push(FieldError::new(
                    "timestamp",
                    "invalid_timestamp",
                    "must be RFC 3339",
                ));
                None
            }
        };
        match (errors.is_empty(), occurred_at) {
            (true, Some(occurred_at)) => Ok(Self {
                event_id: message_id
                    .map_or_else(|| mercato_kernel::id::new_id("evt"), event_id_for),
                metric: Metric {
                    name: name.to_owned(),
                    properties,
                    occurred_at,
                },
            }),
            _ => Err(errors),
        }
    }
}

/// The bus event id of a client message id: stable across retries, unguessable across clients
/// only as far as their message ids are.
pub fn event_id_for(message_id: &str) -> String {
    let digest = Sha256::digest(message_id.as_bytes());
    format!("evt_{}", &hex::encode(digest)[..32])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-21T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn accepts_a_plain_event() {
        let track = Track::parse("product_viewed", None, None, None, now()).unwrap();
        assert_eq!(track.metric.name, "product_viewed");
        assert_eq!(track.metric.occurred_at, now());
        assert!(track.event_id.starts_with("evt_"));
    }

    #[test]
    fn same_message_id_gives_the_same_event_id() {
        let a = Track::parse("x", None, Some("m-1"), None, now()).unwrap();
        let b = Track::parse("x", None, Some("m-1"), None, now()).unwrap();
        let c = Track::parse("x", None, Some("m-2"), None, now()).unwrap();
        assert_eq!(a.event_id, b.event_id);
        assert_ne!(a.event_id, c.event_id);
    }

    #[test]
    fn reports_every_invalid_field() {
        let errors = Track::parse(
            "Bad Name",
            Some(serde_json::json!([1])),
            Some(""),
            Some("yesterday"),
            now(),
        )
        .unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["event", "properties", "message_id", "timestamp"]);
    }

    #[test]
    fn refuses_oversized_properties_and_names() {
        let big = serde_json::json!({ "k": "x".repeat(MAX_PROPERTIES_BYTES) });
        assert!(Track::parse("a", Some(big), None, None, now()).is_err());
        assert!(Track::parse(&"a".repeat(MAX_NAME_LEN + 1), None, None, None, now()).is_err());
        assert!(Track::parse("été", None, None, None, now()).is_err());
    }
}
