//! Staff reads: recorded events, daily counters, dead letters.

use axum::extract::State;
use chrono::{Duration, NaiveDate, Utc};
use mercato_kernel::auth::{RequireRole, Staff};
use mercato_kernel::error::Problem;
use mercato_kernel::pagination::{Page, PageParams};
use mercato_kernel::{ApiError, Json, Query};
use serde::Deserialize;

use super::AppState;
use crate::store::{self, DeadLetter, EventRow, MetricCount};

/// Filters of the event list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventFilter {
    /// Only events of this name.
    pub name: Option<String>,
    /// Items per page, 1 to 100.
    pub limit: Option<u32>,
    /// Id of the last item of the previous page.
    pub starting_after: Option<String>,
}

/// Recorded events, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/analytics/events",
    tag = "analytics",
    params(EventFilter),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of events", body = Page<EventRow>),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not staff", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_events(
    _: RequireRole<Staff>,
    State(state): State<AppState>,
    Query(filter): Query<EventFilter>,
) -> Result<Json<Page<EventRow>>, ApiError> {
    let page = PageParams {
        limit: filter.limit,
        starting_after: filter.starting_after,
    }
    .parse()?;
    let rows = store::list_events(&state.db, filter.name.as_deref(), &page).await?;
    Ok(Json(Page::from_rows(rows, &page, |r| r.id.clone())))
}

/// Range of the daily counters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MetricFilter {
    /// Only this event name.
    pub name: Option<String>,
    /// First day, `YYYY-MM-DD` (default: 30 days ago).
    pub from: Option<String>,
    /// Last day, `YYYY-MM-DD` (default: today).
    pub to: Option<String>,
}

const MAX_RANGE_DAYS: i64 = 366;

/// Daily event counts.
#[utoipa::path(
    get,
    path = "/api/v1/analytics/metrics",
    tag = "analytics",
    params(MetricFilter),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Counts per name and day", body = Vec<MetricCount>),
        (status = 422, description = "Invalid range", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn metrics(
    _: RequireRole<Staff>,
    State(state): State<AppState>,
    Query(filter): Query<MetricFilter>,
) -> Result<Json<Vec<MetricCount>>, ApiError> {
    let today = Utc::now().date_naive();
    let from = parse_day("from", filter.from.as_deref(), today - Duration::days(30))?;
    let to = parse_day("to", filter.to.as_deref(), today)?;
    if from > to || (to - from).num_days() > MAX_RANGE_DAYS {
        return Err(ApiError::invalid_field(
            "from",
            "invalid_range",
            format!("`from` must be on or before `to`, at most {MAX_RANGE_DAYS} days apart"),
        ));
    }
    let (from, to) = (from.to_string(), to.to_string());
    Ok(Json(
        store::metric_counts(&state.db, filter.name.as_deref(), &from, &to).await?,
    ))
}

fn parse_day(field: &str, value: Option<&str>, default: NaiveDate) -> Result<NaiveDate, ApiError> {
    match value {
        None => Ok(default),
        Some(v) => NaiveDate::parse_from_str(v, "%Y-%m-%d")
            .map_err(|_| ApiError::invalid_field(field, "invalid_date", "expected YYYY-MM-DD")),
    }
}

/// Events a consumer gave up on after its retries, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/analytics/dead-letters",
    tag = "analytics",
    params(PageParams),
    security(("bearer" = [])),
    responses((status = 200, description = "A page of dead letters", body = Page<DeadLetter>))
)]
pub async fn list_dead_letters(
    _: RequireRole<Staff>,
    State(state): State<AppState>,
    Query(params): Query<PageParams>,
) -> Result<Json<Page<DeadLetter>>, ApiError> {
    let page = params.parse()?;
    let rows = store::list_dead_letters(&state.db, &page).await?;
    Ok(Json(Page::from_rows(rows, &page, |r| r.id.clone())))
}
