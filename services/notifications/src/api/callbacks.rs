//! What providers report after accepting a message: Twilio's status callbacks and SendGrid's
//! Event Webhook move a `sent` notification to `delivered`, `bounced` or `failed` (and record
//! opens and clicks). Both are verified with the provider's signature; an unverified report is
//! 401 and changes nothing.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use mercato_kernel::ApiError;
use mercato_kernel::error::Problem;
use mercato_store::now_micros;
use serde::Deserialize;

use super::AppState;
use crate::providers::twilio;
use crate::store;

/// Where providers report.
pub const TWILIO_STATUS_PATH: &str = "/api/v1/notifications/providers/twilio/status";
/// Where SendGrid posts its events.
pub const SENDGRID_EVENTS_PATH: &str = "/api/v1/notifications/providers/sendgrid/events";

/// The credentials that verify reports.
#[derive(Debug, Clone, Default)]
pub struct Callbacks {
    /// Twilio's auth token and the public URL Twilio was given for the callback.
    pub twilio: Option<(String, String)>,
    /// SendGrid's verification key (DER `SubjectPublicKeyInfo`).
    pub sendgrid_key: Option<Vec<u8>>,
}

/// Routes of this resource.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(TWILIO_STATUS_PATH, post(twilio_status))
        .route(SENDGRID_EVENTS_PATH, post(sendgrid_events))
}

/// OpenAPI of this resource.
#[derive(utoipa::OpenApi)]
#[openapi(paths(twilio_status, sendgrid_events))]
pub struct Doc;

fn unverified() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_signature",
        "the report's signature does not verify",
    )
}

/// Twilio's message status callback (form fields `MessageSid`, `MessageStatus`, `ErrorCode`),
/// signed with `X-Twilio-Signature`.
#[utoipa::path(
    post, path = "/api/v1/notifications/providers/twilio/status", tag = "notifications",
    request_body(content = String, content_type = "application/x-www-form-urlencoded"),
    responses((status = 204), (status = 401, body = Problem))
)]
async fn twilio_status(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let Some((token, url)) = &state.callbacks.twilio else {
        return Err(ApiError::not_found("twilio callbacks"));
    };
    let params: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let given = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let expected = twilio::signature(token, url, &params);
    let valid = !given.is_empty()
        && given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if !valid {
        return Err(unverified());
    }
    let field = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let (Some(sid), Some(status)) = (field("MessageSid"), field("MessageStatus")) else {
        return Err(ApiError::bad_request(
            "invalid_report",
            "MessageSid and MessageStatus are required",
        ));
    };
    let (to, error) = match status {
        "delivered" => ("delivered", None),
        "undelivered" => ("bounced", field("ErrorCode")),
        "failed" => ("failed", field("ErrorCode")),
        // queued, sending, sent, accepted…: nothing new.
        _ => return Ok(StatusCode::NO_CONTENT),
    };
    let mut conn = state.db.pool().acquire().await?;
    if let Some(row) = store::find_by_provider_message(&mut conn, "twilio", sid).await? {
        let error = error.map(|code| format!("twilio error {code}"));
        store::report_delivery(&mut conn, &row.id, to, error.as_deref(), now_micros()).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// One SendGrid event.
#[derive(Debug, Deserialize)]
struct SendGridEvent {
    event: String,
    /// Our custom argument: the notification.
    notification_id: Option<String>,
    reason: Option<String>,
}

/// SendGrid's Event Webhook: a JSON array of events, signed with ECDSA P-256
/// (`X-Twilio-Email-Event-Webhook-Signature` over the timestamp header and the body).
#[utoipa::path(
    post, path = "/api/v1/notifications/providers/sendgrid/events", tag = "notifications",
    request_body(content = String, content_type = "application/json"),
    responses((status = 204), (status = 401, body = Problem))
)]
async fn sendgrid_events(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let Some(key) = &state.callbacks.sendgrid_key else {
        return Err(ApiError::not_found("sendgrid events"));
    };
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    let signature = STANDARD
        .decode(header("x-twilio-email-event-webhook-signature"))
        .map_err(|_| unverified())?;
    let mut signed = header("x-twilio-email-event-webhook-timestamp")
        .as_bytes()
        .to_vec();
    signed.extend_from_slice(&body);
    let public = aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
        key.as_slice(),
    );
    public
        .verify(&signed, &signature)
        .map_err(|_| unverified())?;
    let events: Vec<SendGridEvent> = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("invalid_report", e.to_string()))?;
    let mut conn = state.db.pool().acquire().await?;
    let now = now_micros();
    for event in events {
        let Some(id) = event.notification_id.filter(|id| id.starts_with("ntf_")) else {
            continue;
        };
        match event.event.as_str() {
            "delivered" => {
                store::report_delivery(&mut conn, &id, "delivered", None, now).await?;
            }
            "bounce" | "dropped" => {
                let why = event.reason.unwrap_or_else(|| event.event.clone());
                store::report_delivery(&mut conn, &id, "bounced", Some(&why), now).await?;
            }
            "open" => {
                store::mark_engaged(&mut conn, &id, false, now).await?;
            }
            "click" => {
                store::mark_engaged(&mut conn, &id, true, now).await?;
            }
            _ => {}
        }
    }
    Ok(StatusCode::NO_CONTENT)
}
