//! Stripe webhooks: the `Stripe-Signature` check and the events the platform acts on.
//!
//! Anyone can POST to a webhook URL, so nothing in a body counts until its signature is
//! verified; the signed timestamp bounds how long a captured delivery can be replayed.

use hmac::{KeyInit, Mac};
use serde::Deserialize;

use super::super::{WebhookError, WebhookEvent, WebhookKind};

/// How old a webhook may be, in seconds, unless configured otherwise (Stripe's libraries use
/// five minutes: long enough for clock skew and queueing, short enough to limit replays).
pub const DEFAULT_WEBHOOK_TOLERANCE_SECS: i64 = 300;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Verifies a webhook the way Stripe's libraries do: the header `t=<unix>,v1=<hex>[,v1=…]`
/// (several `v1` while a secret is being rolled; `v0` and unknown schemes are ignored) must
/// hold an HMAC-SHA256 of `"{t}.{payload}"` under the endpoint secret (`whsec_…`, used as
/// is), compared in constant time; `t` must be within `tolerance_secs` of `now_unix`. Returns
/// the parsed event.
///
/// A bad header, a wrong signature and a stale timestamp are all
/// [`WebhookError::Signature`] (the message says which); a correctly signed body that is not
/// JSON is [`WebhookError::Malformed`].
pub fn verify_webhook(
    payload: &[u8],
    signature_header: &str,
    secret: &str,
    now_unix: i64,
    tolerance_secs: i64,
) -> Result<serde_json::Value, WebhookError> {
    let malformed =
        |why: String| WebhookError::Signature(format!("malformed stripe-signature header: {why}"));
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in signature_header.split(',') {
        let Some((name, value)) = part.trim().split_once('=') else {
            return Err(malformed(format!("`{part}` is not name=value")));
        };
        match name {
            "t" => {
                let t = value
                    .parse::<i64>()
                    .map_err(|_| malformed(format!("timestamp `{value}` is not a number")))?;
                timestamp = Some(t);
            }
            // A v1 that is not hex cannot match; skip it rather than fail the others.
            "v1" => signatures.extend(hex::decode(value).ok()),
            _ => {}
        }
    }
    let Some(timestamp) = timestamp else {
        return Err(malformed("no timestamp `t`".into()));
    };
    if signatures.is_empty() {
        return Err(malformed("no `v1` signature".into()));
    }
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes())
        .map_err(|e| WebhookError::Signature(format!("unusable webhook secret: {e}")))?;
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    // `verify_slice` compares in constant time; every signature is tried, so the timing does
    // not tell which one matched either.
    let matched = signatures.iter().fold(false, |found, signature| {
        mac.clone().verify_slice(signature).is_ok() | found
    });
    if !matched {
        return Err(WebhookError::Signature(
            "no stripe signature matches the payload".into(),
        ));
    }
    if now_unix.abs_diff(timestamp) > tolerance_secs.unsigned_abs() {
        return Err(WebhookError::Signature(format!(
            "stripe webhook timestamp {timestamp} is outside the tolerance of {tolerance_secs}s"
        )));
    }
    serde_json::from_slice(payload)
        .map_err(|e| WebhookError::Malformed(format!("stripe webhook body is not json: {e}")))
}

/// Reads what a verified Stripe event reports. References are PaymentIntent ids (`pi_…`) for
/// charges and disputes, Refund ids (`re_…`) for refunds: the ids the adapter hands out.
pub(super) fn read_event(event: serde_json::Value) -> Result<WebhookEvent, WebhookError> {
    let event: Event = serde_json::from_value(event)
        .map_err(|e| WebhookError::Malformed(format!("not a stripe event: {e}")))?;
    let object = event.data.object;
    let id = || {
        object
            .id
            .clone()
            .ok_or_else(|| WebhookError::Malformed(format!("{} has no object id", event.kind)))
    };
    let kind = match event.kind.as_str() {
        "payment_intent.succeeded" => WebhookKind::ChargeSucceeded { reference: id()? },
        "payment_intent.payment_failed" => {
            let error = object.last_payment_error.clone().unwrap_or_default();
            WebhookKind::ChargeFailed {
                reference: id()?,
                code: super::platform_decline_code(error.decline_code, error.code),
                message: error
                    .message
                    .unwrap_or_else(|| "the payment failed".to_owned()),
            }
        }
        // Stripe sends both `refund.*` and the older `charge.refund.updated` for one change;
        // the status decides, so either (or both) settle the refund once.
        "refund.created" | "refund.updated" | "refund.failed" | "charge.refund.updated" => {
            match object.status.as_deref() {
                Some("succeeded") => WebhookKind::RefundSucceeded { reference: id()? },
                Some("failed" | "canceled") => WebhookKind::RefundFailed { reference: id()? },
                _ => WebhookKind::Other(event.kind.clone()),
            }
        }
        "charge.dispute.created" => match object.payment_intent.clone() {
            Some(reference) => WebhookKind::Disputed { reference },
            None => {
                return Err(WebhookError::Malformed(
                    "charge.dispute.created names no payment_intent".into(),
                ));
            }
        },
        _ => WebhookKind::Other(event.kind.clone()),
    };
    Ok(WebhookEvent { id: event.id, kind })
}

/// Now, in Unix seconds (0 if the clock is before 1970, which then fails the tolerance).
pub(super) fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[derive(Debug, Deserialize)]
struct Event {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    data: EventData,
}

#[derive(Debug, Deserialize)]
struct EventData {
    object: EventObject,
}

/// The fields read from any event's object (PaymentIntent, Refund, Dispute).
#[derive(Debug, Deserialize)]
struct EventObject {
    id: Option<String>,
    status: Option<String>,
    payment_intent: Option<String>,
    last_payment_error: Option<PaymentError>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct PaymentError {
    code: Option<String>,
    decline_code: Option<String>,
    message: Option<String>,
}
