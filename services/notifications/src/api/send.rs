//! `POST /api/v1/notifications` (staff and services), `GET /api/v1/notifications/{id}`, the
//! delivery analytics and the local mailbox.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Html;
use axum::routing::{get, post};
use governor::clock::{Clock, DefaultClock};
use mercato_kernel::auth::{RequireRole, Staff};
use mercato_kernel::error::Problem;
use mercato_kernel::idempotency::IDEMPOTENCY_KEY;
use mercato_kernel::time::rfc3339;
use mercato_kernel::{ApiError, Json, Path, Query};
use mercato_store::now_micros;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::AppState;
use crate::compose::{self, Send};
use crate::domain::{Channel, Status};
use crate::store::{self, AttemptRow, NotificationRow};

/// Routes of this resource.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/notifications",
            post(send_notification).get(list_notifications),
        )
        .route("/api/v1/notifications/{id}", get(get_notification))
        .route("/api/v1/analytics", get(analytics))
        .route("/api/v1/notifications/analytics", get(analytics))
        .route("/api/v1/notifications/mailbox", get(mailbox))
        .route("/admin/mail", get(mailbox_page))
}

/// OpenAPI of this resource.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        send_notification,
        list_notifications,
        get_notification,
        analytics,
        mailbox
    ),
    components(schemas(
        SendRequest,
        NotificationView,
        AttemptView,
        Channel,
        Status,
        AnalyticsRow,
        MailView
    ))
)]
pub struct Doc;

/// A notification to send: by template (`template` + `data`) or inline (`subject` + `body`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    /// `email`, `sms`, `push`, `in_app`, `webhook` or `chat`.
    pub channel: String,
    /// The recipient user: in-app goes to them; email and SMS to the address identity knows.
    pub user_id: Option<String>,
    /// An explicit address: email, E.164 phone, device token, or an http(s) URL.
    pub to: Option<String>,
    /// Template name.
    pub template: Option<String>,
    /// Template locale.
    pub locale: Option<String>,
    /// Template variables.
    #[schema(value_type = Object)]
    pub data: Option<Value>,
    /// Inline subject.
    pub subject: Option<String>,
    /// Inline text body.
    pub body: Option<String>,
    /// Inline HTML body (email).
    pub html: Option<String>,
    /// Category for preferences: `transactional` (default; cannot be turned off),
    /// `marketing`, `product_updates`, …
    pub category: Option<String>,
    /// Deliver during quiet hours too.
    #[serde(default)]
    pub urgent: bool,
}

/// A provider call.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AttemptView {
    /// Provider.
    pub provider: String,
    /// `sent`, `transient` or `permanent`.
    pub outcome: String,
    /// The provider's answer.
    pub response: Option<String>,
    /// Call duration.
    pub duration_ms: i64,
    /// RFC 3339.
    pub at: String,
}

impl From<AttemptRow> for AttemptView {
    fn from(a: AttemptRow) -> Self {
        Self {
            provider: a.provider,
            outcome: a.outcome,
            response: a.response,
            duration_ms: a.duration_ms,
            at: rfc3339(a.created_at),
        }
    }
}

/// A notification and its delivery.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NotificationView {
    /// `ntf_…`.
    pub id: String,
    /// Channel.
    pub channel: String,
    /// Where it is.
    pub status: String,
    /// Recipient user.
    pub user_id: Option<String>,
    /// Address used.
    pub to: String,
    /// Template, with its version.
    pub template: Option<String>,
    /// Template version rendered.
    pub template_version: Option<i64>,
    /// A/B variant rendered.
    pub variant: Option<String>,
    /// RFC 3339 of the first open (email pixel or click).
    pub opened_at: Option<String>,
    /// RFC 3339 of the first click.
    pub clicked_at: Option<String>,
    /// Category.
    pub category: String,
    /// Rendered subject.
    pub subject: String,
    /// Rendered body.
    pub body: String,
    /// Provider that took it.
    pub provider: Option<String>,
    /// The provider's message id.
    pub provider_message_id: Option<String>,
    /// Tries so far.
    pub attempts: i64,
    /// Why the last try failed.
    pub last_error: Option<String>,
    /// Every provider call.
    pub attempt_log: Vec<AttemptView>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339, once sent.
    pub sent_at: Option<String>,
    /// RFC 3339, when queued: the earliest next try.
    pub next_attempt_at: Option<String>,
}

pub(crate) fn view(n: NotificationRow, attempts: Vec<AttemptRow>) -> NotificationView {
    NotificationView {
        next_attempt_at: (n.status == Status::Queued.as_str()).then(|| rfc3339(n.next_attempt_at)),
        id: n.id,
        channel: n.channel,
        status: n.status,
        user_id: n.user_id,
        to: n.recipient,
        template: n.template,
        template_version: n.template_version,
        variant: n.variant,
        opened_at: n.opened_at.map(rfc3339),
        clicked_at: n.clicked_at.map(rfc3339),
        category: n.category,
        subject: n.subject,
        body: n.body,
        provider: n.provider,
        provider_message_id: n.provider_message_id,
        attempts: n.attempts,
        last_error: n.last_error,
        attempt_log: attempts.into_iter().map(Into::into).collect(),
        created_at: rfc3339(n.created_at),
        sent_at: n.sent_at.map(rfc3339),
    }
}

/// Queue a notification (staff and services); answers 202 at once. `Idempotency-Key`: the
/// same key answers the same notification.
#[utoipa::path(
    post, path = "/api/v1/notifications", tag = "notifications",
    params(("Idempotency-Key" = Option<String>, Header)),
    request_body = SendRequest,
    responses(
        (status = 202, body = NotificationView),
        (status = 422, description = "Unknown template, missing variables, bad address", body = Problem),
        (status = 429, description = "Over the caller's send budget", body = Problem),
    ),
    security(("bearer" = []))
)]
async fn send_notification(
    State(state): State<AppState>,
    RequireRole(claims, _): RequireRole<Staff>,
    headers: HeaderMap,
    Json(body): Json<SendRequest>,
) -> Result<(StatusCode, axum::Json<NotificationView>), ApiError> {
    if let Some(limit) = &state.caller_limit
        && let Err(not_until) = limit.check_key(&claims.sub)
    {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many notifications sent; slow down",
        )
        .with_retry_after(wait.as_secs().max(1)));
    }
    let key = headers
        .get(IDEMPOTENCY_KEY)
        .and_then(|v| v.to_str().ok())
        .filter(|k| !k.is_empty() && k.len() <= 255)
        .map(|k| format!("{}:{k}", claims.sub));
    let send = Send {
        channel: Channel::parse(&body.channel),
        user_id: body.user_id,
        to: body.to,
        template: body.template,
        locale: body.locale,
        data: body
            .data
            .unwrap_or_else(|| Value::Object(Default::default())),
        subject: body.subject,
        body: body.body,
        html: body.html,
        category: body.category,
        urgent: body.urgent,
        idempotency_key: key,
    };
    let row = compose::queue(&mut *state.db.pool().acquire().await?, &state.links, send).await?;
    state.sender.wake();
    Ok((StatusCode::ACCEPTED, axum::Json(view(row, Vec::new()))))
}

/// `?limit=` of the delivery log.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    /// How many, 1 to 100 (default 50).
    pub limit: Option<i64>,
}

/// The delivery log: the newest notifications with their status, provider and attempt count
/// (staff; each one's attempts are at `GET /api/v1/notifications/{id}`).
#[utoipa::path(
    get, path = "/api/v1/notifications", tag = "notifications",
    params(ListQuery),
    responses((status = 200, body = [NotificationView]), (status = 422, body = Problem)),
    security(("bearer" = []))
)]
async fn list_notifications(
    State(state): State<AppState>,
    _: RequireRole<Staff>,
    Query(query): Query<ListQuery>,
) -> Result<axum::Json<Vec<NotificationView>>, ApiError> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::invalid_field("limit", "out_of_range", "1 to 100"));
    }
    let rows = store::recent_notifications(&mut *state.db.pool().acquire().await?, limit).await?;
    Ok(axum::Json(
        rows.into_iter().map(|row| view(row, Vec::new())).collect(),
    ))
}

/// A notification with its delivery attempts (staff).
#[utoipa::path(
    get, path = "/api/v1/notifications/{id}", tag = "notifications",
    params(("id" = String, Path)),
    responses((status = 200, body = NotificationView), (status = 404, body = Problem)),
    security(("bearer" = []))
)]
async fn get_notification(
    State(state): State<AppState>,
    _: RequireRole<Staff>,
    Path(id): Path<String>,
) -> Result<axum::Json<NotificationView>, ApiError> {
    mercato_kernel::id::parse_id("ntf", &id, "id")?;
    let mut conn = state.db.pool().acquire().await?;
    let row = store::find_notification(&mut conn, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("notification"))?;
    let attempts = store::attempts_of(&mut conn, &id).await?;
    Ok(axum::Json(view(row, attempts)))
}

/// `?days=`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct AnalyticsQuery {
    /// How many days back, 1 to 366 (default 30).
    pub days: Option<i64>,
}

/// Notifications of one channel in one status.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AnalyticsRow {
    /// Channel.
    pub channel: String,
    /// Status.
    pub status: String,
    /// How many.
    pub count: i64,
}

/// Delivery counts per channel and status (staff).
#[utoipa::path(
    get, path = "/api/v1/notifications/analytics", tag = "notifications",
    params(AnalyticsQuery),
    responses((status = 200, body = [AnalyticsRow]), (status = 422, body = Problem)),
    security(("bearer" = []))
)]
async fn analytics(
    State(state): State<AppState>,
    _: RequireRole<Staff>,
    Query(query): Query<AnalyticsQuery>,
) -> Result<axum::Json<Vec<AnalyticsRow>>, ApiError> {
    let days = query.days.unwrap_or(30);
    if !(1..=366).contains(&days) {
        return Err(ApiError::invalid_field("days", "out_of_range", "1 to 366"));
    }
    let from = now_micros() - days * 86_400_000_000;
    let rows = store::analytics(&mut *state.db.pool().acquire().await?, from).await?;
    Ok(axum::Json(
        rows.into_iter()
            .map(|(channel, status, count)| AnalyticsRow {
                channel,
                status,
                count,
            })
            .collect(),
    ))
}

/// An email delivered to the local mailbox.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MailView {
    /// `mail_…`.
    pub id: String,
    /// The notification.
    pub notification_id: String,
    /// Recipient.
    pub to: String,
    /// Subject.
    pub subject: String,
    /// Text part.
    pub text: String,
    /// HTML part.
    pub html: Option<String>,
    /// RFC 3339.
    pub at: String,
}

async fn mails(state: &AppState) -> Result<Vec<MailView>, ApiError> {
    let rows = store::mails(&mut *state.db.pool().acquire().await?, 200).await?;
    Ok(rows
        .into_iter()
        .map(|m| MailView {
            id: m.id,
            notification_id: m.notification_id,
            to: m.recipient,
            subject: m.subject,
            text: m.text_body,
            html: m.html_body,
            at: rfc3339(m.created_at),
        })
        .collect())
}

/// The newest 200 emails of the local mailbox (used when no SMTP server is configured; staff).
#[utoipa::path(
    get, path = "/api/v1/notifications/mailbox", tag = "notifications",
    responses((status = 200, body = [MailView])),
    security(("bearer" = []))
)]
async fn mailbox(
    State(state): State<AppState>,
    _: RequireRole<Staff>,
) -> Result<axum::Json<Vec<MailView>>, ApiError> {
    Ok(axum::Json(mails(&state).await?))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `/admin/mail`: the local mailbox as a page (staff).
async fn mailbox_page(
    State(state): State<AppState>,
    _: RequireRole<Staff>,
) -> Result<Html<String>, ApiError> {
    let mut page = String::from(
        "<!doctype html><meta charset=utf-8><title>Mailbox</title><h1>Local mailbox</h1>",
    );
    let list = mails(&state).await?;
    if list.is_empty() {
        page.push_str("<p>No email yet.</p>");
    }
    for m in list {
        page.push_str(&format!(
            "<article><h2>{}</h2><p>To {} · {}</p><pre>{}</pre></article>",
            escape(&m.subject),
            escape(&m.to),
            escape(&m.at),
            escape(&m.text)
        ));
    }
    Ok(Html(page))
}
