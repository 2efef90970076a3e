//! `POST /api/v1/analytics/track`: accept an event now, record it asynchronously.

use axum::extract::State;
use axum::http::StatusCode;
use mercato_bus::Event;
use mercato_kernel::error::Problem;
use mercato_kernel::{ApiError, Json};
use serde::{Deserialize, Serialize};

use super::AppState;
use crate::domain::Track;
use crate::events::METRIC;
use crate::store;

/// A tracked event from a storefront, an app or a backend.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrackRequest {
    /// Event name, e.g. `product_viewed`.
    pub event: String,
    /// Free-form properties (a JSON object, at most 16 KiB).
    pub properties: Option<serde_json::Value>,
    /// Client-chosen id: a retried call with the same id is recorded once.
    pub message_id: Option<String>,
    /// When it happened (RFC 3339); defaults to now.
    pub timestamp: Option<String>,
}

/// Answer to a track call.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TrackAccepted {
    /// Id of the event on the bus.
    pub id: String,
    /// True when this message id had been accepted before.
    pub duplicate: bool,
}

/// Accepts an event; it is recorded and counted shortly after.
#[utoipa::path(
    post,
    path = "/api/v1/analytics/track",
    tag = "analytics",
    request_body = TrackRequest,
    responses(
        (status = 202, description = "Accepted", body = TrackAccepted),
        (status = 422, description = "Invalid event", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn track(
    State(state): State<AppState>,
    Json(body): Json<TrackRequest>,
) -> Result<(StatusCode, Json<TrackAccepted>), ApiError> {
    let track = Track::parse(
        &body.event,
        body.properties,
        body.message_id.as_deref(),
        body.timestamp.as_deref(),
        chrono::Utc::now(),
    )
    .map_err(ApiError::validation)?;
    let event = Event::new(crate::SOURCE, METRIC, &track.metric)
        .map_err(ApiError::internal)?
        .with_id(track.event_id.clone());
    let mut tx = state.db.begin().await?;
    let fresh = store::accept_message(&mut tx, &track.event_id).await?;
    if fresh {
        mercato_bus::enqueue(&mut tx, &event)
            .await
            .map_err(ApiError::internal)?;
    }
    tx.commit().await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(TrackAccepted {
            id: track.event_id,
            duplicate: !fresh,
        }),
    ))
}
