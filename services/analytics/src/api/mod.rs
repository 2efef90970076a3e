//! HTTP handlers of the analytics service.

mod reports;
mod track;

use axum::Router;
use axum::routing::{get, post};
use mercato_kernel::openapi::BearerAuth;
use mercato_store::Db;

/// State every handler gets.
#[derive(Clone)]
pub struct AppState {
    /// The analytics database.
    pub db: Db,
}

/// Routes under `/api/v1/analytics`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/analytics/track", post(track::track))
        .route("/api/v1/analytics/events", get(reports::list_events))
        .route("/api/v1/analytics/metrics", get(reports::metrics))
        .route(
            "/api/v1/analytics/dead-letters",
            get(reports::list_dead_letters),
        )
        .with_state(state)
}

/// The service's OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(track::track, reports::list_events, reports::metrics, reports::list_dead_letters),
    components(schemas(mercato_kernel::error::Problem)),
    modifiers(&BearerAuth),
    tags((name = "analytics", description = "Event tracking, audit trail and dead letters"))
)]
pub struct ApiDoc;
