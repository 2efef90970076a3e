//! `/api/v1/reservations`: holding stock for an order until it is paid (commit) or abandoned
//! (release, or expiry after `ttl_seconds`). Staff and services only.
//!
//! A reservation is all or nothing: when any line is short the answer is 409
//! `insufficient_stock` with a `shortages` list and nothing is held.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use mercato_kernel::auth::{RequireRole, Staff};
use mercato_kernel::error::Problem;
use mercato_kernel::id::parse_id;
use mercato_kernel::time::rfc3339;
use mercato_kernel::{ApiError, FieldError, Json, Path, Query};
use serde::{Deserialize, Serialize};

use super::{AppState, check_sku};
use crate::domain::{MAX_LINES, MAX_QUANTITY, MAX_TTL_SECONDS, ReservationStatus};
use crate::ledger::{NewReservation, Reservation, Shortage, Want};
use crate::store;

/// Routes of this resource.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/reservations",
            post(create_reservation).get(find_reservations),
        )
        .route("/api/v1/reservations/{id}", get(get_reservation))
        .route("/api/v1/reservations/{id}/commit", post(commit_reservation))
        .route(
            "/api/v1/reservations/{id}/release",
            post(release_reservation),
        )
}

/// OpenAPI of this resource.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        create_reservation,
        find_reservations,
        get_reservation,
        commit_reservation,
        release_reservation
    ),
    components(schemas(
        ReservationRequest,
        LineRequest,
        ReservationResponse,
        Allocation,
        Shortage,
        ReservationStatus
    ))
)]
pub struct Doc;

/// What to hold.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReservationRequest {
    /// What the hold is for, usually the order id; 1 to 100 characters.
    pub reference: String,
    /// 1 to 1000 lines with distinct SKUs.
    pub lines: Vec<LineRequest>,
    /// Seconds until an uncommitted hold is released, 1 to 604 800 (default
    /// `INVENTORY_RESERVATION_TTL_SECONDS`).
    pub ttl_seconds: Option<i64>,
}

/// One line to hold.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LineRequest {
    /// The SKU.
    pub sku: String,
    /// Units, at least 1.
    pub quantity: i64,
}

/// Where a line's units are held.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Allocation {
    /// The SKU.
    pub sku: String,
    /// `wh_…`.
    pub warehouse_id: String,
    /// Units held there.
    pub quantity: i64,
}

/// A reservation.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReservationResponse {
    /// `res_…`.
    pub id: String,
    /// What the hold is for.
    pub reference: String,
    /// `active`, `committed`, `released` or `expired`.
    pub status: ReservationStatus,
    /// RFC 3339; an active hold is released after it.
    pub expires_at: String,
    /// Where the units are held, in request order.
    pub allocations: Vec<Allocation>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

impl From<Reservation> for ReservationResponse {
    fn from(r: Reservation) -> Self {
        Self {
            status: r.status(),
            id: r.row.id,
            reference: r.row.reference,
            expires_at: rfc3339(r.row.expires_at),
            allocations: r
                .lines
                .into_iter()
                .map(|l| Allocation {
                    sku: l.sku,
                    warehouse_id: l.warehouse_id,
                    quantity: l.quantity,
                })
                .collect(),
            created_at: rfc3339(r.row.created_at),
            updated_at: rfc3339(r.row.updated_at),
        }
    }
}

fn parse_request(req: ReservationRequest, default_ttl: i64) -> Result<NewReservation, ApiError> {
    let mut errors = Vec::new();
    let reference = req.reference.trim().to_owned();
    if !(1..=100).contains(&reference.chars().count()) {
        errors.push(FieldError::new(
            "reference",
            "invalid",
            "1 to 100 characters",
        ));
    }
    let ttl_seconds = req.ttl_seconds.unwrap_or(default_ttl);
    if !(1..=MAX_TTL_SECONDS).contains(&ttl_seconds) {
        errors.push(FieldError::new(
            "ttl_seconds",
            "out_of_range",
            format!("1 to {MAX_TTL_SECONDS} seconds"),
        ));
    }
    if req.lines.is_empty() || req.lines.len() > MAX_LINES {
        // Checking ten thousand lines one by one would only bury this one answer.
        errors.push(FieldError::new(
            "lines",
            "out_of_range",
            format!("1 to {MAX_LINES} lines"),
        ));
        return Err(ApiError::validation(errors));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, line) in req.lines.iter().enumerate() {
        if let Err(mut e) = check_sku("sku", &line.sku) {
            e.field = format!("lines[{i}].sku");
            errors.push(e);
        } else if !seen.insert(line.sku.as_str()) {
            errors.push(FieldError::new(
                format!("lines[{i}].sku"),
                "duplicate",
                format!("`{}` appears on more than one line", line.sku),
            ));
        }
        if !(1..=MAX_QUANTITY).contains(&line.quantity) {
            errors.push(FieldError::new(
                format!("lines[{i}].quantity"),
                "out_of_range",
                format!("1 to {MAX_QUANTITY} units"),
            ));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    Ok(NewReservation {
        reference,
        lines: req
            .lines
            .into_iter()
            .map(|l| Want {
                sku: l.sku,
                quantity: l.quantity,
            })
            .collect(),
        ttl_seconds,
    })
}

/// Hold stock for every line, or for none.
#[utoipa::path(
    post, path = "/api/v1/reservations", tag = "reservations",
    request_body = ReservationRequest,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 201, body = ReservationResponse),
        (status = 409, description = "`insufficient_stock`, with `shortages`", body = Problem),
        (status = 422, description = "Invalid lines or unknown SKUs", body = Problem),
    ),
    security(("bearer" = []))
)]
async fn create_reservation(
    State(state): State<AppState>,
    RequireRole(claims, _): RequireRole<Staff>,
    Json(req): Json<ReservationRequest>,
) -> Result<(StatusCode, axum::Json<ReservationResponse>), ApiError> {
    let new = parse_request(req, state.config.inventory_reservation_ttl_seconds)?;
    let reservation = state.ledger.reserve(&new, &claims.sub).await?;
    state.feed.poke();
    Ok((StatusCode::CREATED, axum::Json(reservation.into())))
}

/// `?reference=`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ReferenceQuery {
    /// What the holds are for.
    pub reference: String,
}

/// The reservations made for a reference (at most 100, oldest first).
#[utoipa::path(
    get, path = "/api/v1/reservations", tag = "reservations",
    params(ReferenceQuery),
    responses((status = 200, body = [ReservationResponse])),
    security(("bearer" = []))
)]
async fn find_reservations(
    State(state): State<AppState>,
    _: RequireRole<Staff>,
    Query(query): Query<ReferenceQuery>,
) -> Result<axum::Json<Vec<ReservationResponse>>, ApiError> {
    let mut conn = state.ledger.db().pool().acquire().await?;
    let mut found = Vec::new();
    for row in store::reservations_for(&mut conn, query.reference.trim()).await? {
        let lines = store::lines_of(&mut conn, &row.id).await?;
        found.push(Reservation { row, lines }.into());
    }
    Ok(axum::Json(found))
}

/// One reservation.
#[utoipa::path(
    get, path = "/api/v1/reservations/{id}", tag = "reservations",
    params(("id" = String, Path, description = "`res_…`")),
    responses((status = 200, body = ReservationResponse), (status = 404, body = Problem)),
    security(("bearer" = []))
)]
async fn get_reservation(
    State(state): State<AppState>,
    _: RequireRole<Staff>,
    Path(id): Path<String>,
) -> Result<axum::Json<ReservationResponse>, ApiError> {
    parse_id("res", &id, "id")?;
    let mut conn = state.ledger.db().pool().acquire().await?;
    let row = store::find_reservation(&mut conn, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("reservation"))?;
    let lines = store::lines_of(&mut conn, &id).await?;
    Ok(axum::Json(Reservation { row, lines }.into()))
}

/// The held units leave stock. Committing again answers the same; a released or expired
/// reservation cannot be committed (409).
#[utoipa::path(
    post, path = "/api/v1/reservations/{id}/commit", tag = "reservations",
    params(("id" = String, Path, description = "`res_…`")),
    responses(
        (status = 200, body = ReservationResponse),
        (status = 404, body = Problem),
        (status = 409, description = "`reservation_released` or `reservation_expired`", body = Problem),
    ),
    security(("bearer" = []))
)]
async fn commit_reservation(
    State(state): State<AppState>,
    RequireRole(claims, _): RequireRole<Staff>,
    Path(id): Path<String>,
) -> Result<axum::Json<ReservationResponse>, ApiError> {
    parse_id("res", &id, "id")?;
    let reservation = state.ledger.commit(&id, &claims.sub).await?;
    state.feed.poke();
    Ok(axum::Json(reservation.into()))
}

/// The held units return to available. Releasing again (or after expiry) answers the
/// same; a committed reservation cannot be released (409).
#[utoipa::path(
    post, path = "/api/v1/reservations/{id}/release", tag = "reservations",
    params(("id" = String, Path, description = "`res_…`")),
    responses(
        (status = 200, body = ReservationResponse),
        (status = 404, body = Problem),
        (status = 409, description = "`reservation_committed`", body = Problem),
    ),
    security(("bearer" = []))
)]
async fn release_reservation(
    State(state): State<AppState>,
    RequireRole(claims, _): RequireRole<Staff>,
    Path(id): Path<String>,
) -> Result<axum::Json<ReservationResponse>, ApiError> {
    parse_id("res", &id, "id")?;
    let reservation = state.ledger.release(&id, &claims.sub).await?;
    state.feed.poke();
    Ok(axum::Json(reservation.into()))
}
