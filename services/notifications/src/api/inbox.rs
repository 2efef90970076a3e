//! `/api/v1/notifications/inbox`: the caller's in-app notifications, the unread count, marking
//! them read, and a Server-Sent Events stream of new ones. Staff also see the shared `staff`
//! inbox (operational alerts such as low stock).

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::routing::{get, post};
use futures::Stream;
use mercato_kernel::auth::{Claims, Role};
use mercato_kernel::error::Problem;
use mercato_kernel::pagination::PageParams;
use mercato_kernel::time::rfc3339;
use mercato_kernel::{ApiError, Json, Query};
use mercato_store::now_micros;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;

use super::AppState;
use crate::store;

/// The shared inbox of staff.
pub const STAFF_INBOX: &str = "staff";

/// Routes of this resource.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/notifications/inbox", get(inbox))
        .route("/api/v1/notifications/inbox/read", post(mark_read))
        .route("/api/v1/notifications/inbox/stream", get(stream))
}

/// OpenAPI of this resource.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(inbox, mark_read, stream),
    components(schemas(InboxView, InboxItem, ReadRequest, ReadView))
)]
pub struct Doc;

/// One in-app notification.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InboxItem {
    /// `ntf_…`.
    pub id: String,
    /// Title.
    pub subject: String,
    /// Text.
    pub body: String,
    /// Category.
    pub category: String,
    /// Whether it was read.
    pub read: bool,
    /// RFC 3339.
    pub created_at: String,
}

/// A page of the inbox.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InboxView {
    /// Newest first.
    pub data: Vec<InboxItem>,
    /// Unread in all.
    pub unread: i64,
    /// More after the last one.
    pub has_more: bool,
    /// `starting_after` of the next page.
    pub next_cursor: Option<String>,
}

/// The inboxes a caller reads: their own, and staff's for staff.
fn owners(claims: &Claims) -> Vec<String> {
    let mut owners = vec![claims.sub.clone()];
    if claims.has_role(Role::Staff) {
        owners.push(STAFF_INBOX.to_owned());
    }
    owners
}

/// The caller's in-app notifications, newest first, with the unread count.
#[utoipa::path(
    get, path = "/api/v1/notifications/inbox", tag = "inbox",
    params(PageParams),
    responses((status = 200, body = InboxView), (status = 401, body = Problem)),
    security(("bearer" = []))
)]
async fn inbox(
    State(state): State<AppState>,
    claims: Claims,
    Query(page): Query<PageParams>,
) -> Result<axum::Json<InboxView>, ApiError> {
    let page = page.parse()?;
    let mut conn = state.db.pool().acquire().await?;
    let mut rows = Vec::new();
    let mut unread = 0;
    for owner in owners(&claims) {
        rows.extend(
            store::inbox(&mut conn, &owner, page.after.as_deref(), page.fetch_limit()).await?,
        );
        unread += store::unread(&mut conn, &owner).await?;
    }
    rows.sort_by(|a, b| b.id.cmp(&a.id));
    let has_more = rows.len() > page.limit as usize;
    rows.truncate(page.limit as usize);
    let next_cursor = has_more
        .then(|| rows.last().map(|r| r.id.clone()))
        .flatten();
    Ok(axum::Json(InboxView {
        data: rows
            .into_iter()
            .map(|r| InboxItem {
                id: r.id,
                subject: r.subject,
                body: r.body,
                category: r.category,
                read: r.read_at.is_some(),
                created_at: rfc3339(r.created_at),
            })
            .collect(),
        unread,
        has_more,
        next_cursor,
    }))
}

/// Which notifications to mark read.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadRequest {
    /// One notification; all of the caller's when absent.
    pub id: Option<String>,
}

/// How many were marked.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReadView {
    /// Newly read.
    pub marked: u64,
    /// Unread left.
    pub unread: i64,
}

/// Mark one or all in-app notifications read.
#[utoipa::path(
    post, path = "/api/v1/notifications/inbox/read", tag = "inbox",
    request_body = ReadRequest,
    responses((status = 200, body = ReadView), (status = 422, body = Problem)),
    security(("bearer" = []))
)]
async fn mark_read(
    State(state): State<AppState>,
    claims: Claims,
    Json(body): Json<ReadRequest>,
) -> Result<axum::Json<ReadView>, ApiError> {
    if let Some(id) = &body.id {
        mercato_kernel::id::parse_id("ntf", id, "id")?;
    }
    let mut conn = state.db.pool().acquire().await?;
    let now = now_micros();
    let mut marked = 0;
    let mut unread = 0;
    for owner in owners(&claims) {
        marked += store::mark_read(&mut conn, &owner, body.id.as_deref(), now).await?;
        unread += store::unread(&mut conn, &owner).await?;
    }
    Ok(axum::Json(ReadView { marked, unread }))
}

/// New in-app notifications of the caller as Server-Sent Events (`event: notification`).
#[utoipa::path(
    get, path = "/api/v1/notifications/inbox/stream", tag = "inbox",
    responses((status = 200, content_type = "text/event-stream", description = "One event per new notification")),
    security(("bearer" = []))
)]
async fn stream(
    State(state): State<AppState>,
    claims: Claims,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let owners = owners(&claims);
    let receiver = state.inbox.subscribe();
    let stream = futures::stream::unfold((receiver, owners), |(mut receiver, owners)| async move {
        loop {
            match receiver.recv().await {
                Ok(event) if owners.contains(&event.user_id) => {
                    let data = serde_json::json!({
                        "id": event.notification_id,
                        "subject": event.subject,
                        "body": event.body,
                    });
                    let sse = SseEvent::default()
                        .event("notification")
                        .data(data.to_string());
                    return Some((Ok(sse), (receiver, owners)));
                }
                Ok(_) => {}
                // A slow reader missed some: tell it to re-read the inbox.
                Err(RecvError::Lagged(_)) => {
                    let sse = SseEvent::default().event("resync").data("{}");
                    return Some((Ok(sse), (receiver, owners)));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
