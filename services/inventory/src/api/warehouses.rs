//! `/api/v1/warehouses`: where stock is kept. Staff only.
//!
//! Allocation tries active warehouses by ascending `priority` (then `code`). A deactivated
//! warehouse keeps its stock and its reservations but gives no new ones.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use mercato_kernel::auth::{RequireRole, Staff};
use mercato_kernel::error::Problem;
use mercato_kernel::id::parse_id;
use mercato_kernel::time::rfc3339;
use mercato_kernel::{ApiError, FieldError, Json, Path};
use mercato_store::{is_unique_violation, now_micros};
use serde::{Deserialize, Serialize};

use super::AppState;
use crate::store::{self, WarehouseRow};

/// Routes of this resource.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/warehouses",
            get(list_warehouses).post(create_warehouse),
        )
        .route(
            "/api/v1/warehouses/{id}",
            get(get_warehouse).patch(update_warehouse),
        )
}

/// OpenAPI of this resource.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(list_warehouses, create_warehouse, get_warehouse, update_warehouse),
    components(schemas(WarehouseRequest, WarehouseResponse))
)]
pub struct Doc;

/// A warehouse to create (`code`, `name`, `country` required) or change (any subset).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WarehouseRequest {
    /// Short unique code, 1 to 32 letters, digits, `-` or `_` (stored upper-case).
    pub code: Option<String>,
    /// Display name, 1 to 100 characters.
    pub name: Option<String>,
    /// Postal address: string fields such as `line1`, `city`, `postal_code`.
    pub address: Option<BTreeMap<String, String>>,
    /// ISO 3166-1 alpha-2 country code.
    pub country: Option<String>,
    /// Allocation order, 0 to 1 000 000; smaller first (default 100).
    pub priority: Option<i64>,
    /// Whether new reservations may use it (default true).
    pub active: Option<bool>,
}

/// A warehouse.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WarehouseResponse {
    /// `wh_…`.
    pub id: String,
    /// Unique code.
    pub code: String,
    /// Display name.
    pub name: String,
    /// Postal address.
    pub address: BTreeMap<String, String>,
    /// ISO 3166-1 alpha-2.
    pub country: String,
    /// Allocation order; smaller first.
    pub priority: i64,
    /// Whether new reservations may use it.
    pub active: bool,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

impl From<WarehouseRow> for WarehouseResponse {
    fn from(w: WarehouseRow) -> Self {
        Self {
            address: serde_json::from_str(&w.address).unwrap_or_default(),
            id: w.id,
            code: w.code,
            name: w.name,
            country: w.country,
            priority: w.priority,
            active: w.active == 1,
            created_at: rfc3339(w.created_at),
            updated_at: rfc3339(w.updated_at),
        }
    }
}

/// Applies the request's fields to `w`, collecting every invalid one.
fn apply(req: WarehouseRequest, w: &mut WarehouseRow) -> Result<(), ApiError> {
    let mut errors = Vec::new();
    if let Some(code) = req.code {
        let ok = (1..=32).contains(&code.len())
            && code
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
        if ok {
            w.code = code.to_ascii_uppercase();
        } else {
            errors.push(FieldError::new(
                "code",
                "invalid",
                "1 to 32 letters, digits, `-` or `_`",
            ));
        }
    }
    if let Some(name) = req.name {
        let name = name.trim();
        if (1..=100).contains(&name.chars().count()) {
            name.clone_into(&mut w.name);
        } else {
            errors.push(FieldError::new("name", "invalid", "1 to 100 characters"));
        }
    }
    if let Some(address) = req.address {
        let ok = address.len() <= 10
            && address
                .iter()
                .all(|(k, v)| (1..=40).contains(&k.len()) && v.chars().count() <= 200);
        match serde_json::to_string(&address) {
            Ok(text) if ok => w.address = text,
            _ => errors.push(FieldError::new(
                "address",
                "invalid",
                "at most 10 fields of at most 200 characters",
            )),
        }
    }
    if let Some(country) = req.country {
        if country.len() == 2 && country.chars().all(|c| c.is_ascii_alphabetic()) {
            w.country = country.to_ascii_uppercase();
        } else {
            errors.push(FieldError::new(
                "country",
                "invalid",
                "an ISO 3166-1 alpha-2 code",
            ));
        }
    }
    if let Some(priority) = req.priority {
        if (0..=1_000_000).contains(&priority) {
            w.priority = priority;
        } else {
            errors.push(FieldError::new("priority", "out_of_range", "0 to 1000000"));
        }
    }
    if let Some(active) = req.active {
        w.active = i64::from(active);
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::validation(errors))
    }
}

fn code_taken(e: sqlx::Error) -> ApiError {
    if is_unique_violation(&e) {
        ApiError::conflict("code_taken", "another warehouse has this code")
    } else {
        e.into()
    }
}

/// Create a warehouse.
#[utoipa::path(
    post, path = "/api/v1/warehouses", tag = "warehouses",
    request_body = WarehouseRequest,
    responses(
        (status = 201, body = WarehouseResponse),
        (status = 409, description = "Code taken", body = Problem),
        (status = 422, body = Problem),
    ),
    security(("bearer" = []))
)]
async fn create_warehouse(
    State(state): State<AppState>,
    _: RequireRole<Staff>,
    Json(req): Json<WarehouseRequest>,
) -> Result<(StatusCode, axum::Json<WarehouseResponse>), ApiError> {
    let mut missing = Vec::new();
    for (field, absent) in [
        ("code", req.code.is_none()),
        ("name", req.name.is_none()),
        ("country", req.country.is_none()),
    ] {
        if absent {
            missing.push(FieldError::new(field, "required", "required"));
        }
    }
    if !missing.is_empty() {
        return Err(ApiError::validation(missing));
    }
    let mut row = WarehouseRow::new("", "", "", 100, now_micros());
    apply(req, &mut row)?;
    let mut conn = state.ledger.db().pool().acquire().await?;
    store::insert_warehouse(&mut conn, &row)
        .await
        .map_err(code_taken)?;
    Ok((StatusCode::CREATED, axum::Json(row.into())))
}

/// List warehouses in allocation order.
#[utoipa::path(
    get, path = "/api/v1/warehouses", tag = "warehouses",
    responses((status = 200, body = [WarehouseResponse])),
    security(("bearer" = []))
)]
async fn list_warehouses(
    State(state): State<AppState>,
    _: RequireRole<Staff>,
) -> Result<axum::Json<Vec<WarehouseResponse>>, ApiError> {
    let mut conn = state.ledger.db().pool().acquire().await?;
    let rows = store::list_warehouses(&mut conn).await?;
    Ok(axum::Json(rows.into_iter().map(Into::into).collect()))
}

/// One warehouse.
#[utoipa::path(
    get, path = "/api/v1/warehouses/{id}", tag = "warehouses",
    params(("id" = String, Path, description = "`wh_…`")),
    responses((status = 200, body = WarehouseResponse), (status = 404, body = Problem)),
    security(("bearer" = []))
)]
async fn get_warehouse(
    State(state): State<AppState>,
    _: RequireRole<Staff>,
    Path(id): Path<String>,
) -> Result<axum::Json<WarehouseResponse>, ApiError> {
    parse_id("wh", &id, "id")?;
    let mut conn = state.ledger.db().pool().acquire().await?;
    let row = store::find_warehouse(&mut conn, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("warehouse"))?;
    Ok(axum::Json(row.into()))
}

/// Change a warehouse.
#[utoipa::path(
    patch, path = "/api/v1/warehouses/{id}", tag = "warehouses",
    params(("id" = String, Path, description = "`wh_…`")),
    request_body = WarehouseRequest,
    responses(
        (status = 200, body = WarehouseResponse),
        (status = 404, body = Problem),
        (status = 409, description = "Code taken", body = Problem),
        (status = 422, body = Problem),
    ),
    security(("bearer" = []))
)]
async fn update_warehouse(
    State(state): State<AppState>,
    _: RequireRole<Staff>,
    Path(id): Path<String>,
    Json(req): Json<WarehouseRequest>,
) -> Result<axum::Json<WarehouseResponse>, ApiError> {
    parse_id("wh", &id, "id")?;
    let mut conn = state.ledger.db().pool().acquire().await?;
    let mut row = store::find_warehouse(&mut conn, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("warehouse"))?;
    let was_active = row.active;
    apply(req, &mut row)?;
    row.updated_at = now_micros();
    store::update_warehouse(&mut conn, &row)
        .await
        .map_err(code_taken)?;
    drop(conn);
    if row.active != was_active {
        state.ledger.warehouse_changed(&row.id).await?;
        state.feed.poke();
    }
    Ok(axum::Json(row.into()))
}
