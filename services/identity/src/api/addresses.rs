//! `/api/v1/users/me/addresses`: the caller's address book, offered again at checkout.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get};
use mercato_kernel::address::Address;
use mercato_kernel::auth::Claims;
use mercato_kernel::error::Problem;
use mercato_kernel::id::new_id;
use mercato_kernel::time::rfc3339;
use mercato_kernel::{ApiError, FieldError, Json, Path};
use mercato_store::now_micros;
use serde::{Deserialize, Serialize};

use super::AppState;
use crate::store::addresses::{self as store, AddressRow};

/// Most addresses one user keeps.
pub const MAX_ADDRESSES: i64 = 20;
/// Longest label, in characters.
const MAX_LABEL: usize = 50;

/// The address book routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/users/me/addresses",
            get(list_addresses).post(create_address),
        )
        .route("/api/v1/users/me/addresses/{id}", delete(delete_address))
}

/// OpenAPI paths of the address book.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list_addresses, create_address, delete_address))]
pub struct Doc;

/// Body of `POST /api/v1/users/me/addresses`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddressRequest {
    /// A name for it ("Home"), up to 50 characters.
    pub label: Option<String>,
    /// The address.
    pub address: Address,
}

/// A saved address.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AddressResponse {
    /// `adr_…`.
    pub id: String,
    /// Its name, if given.
    pub label: Option<String>,
    /// The address.
    pub address: Address,
    /// RFC 3339.
    pub created_at: String,
}

impl TryFrom<AddressRow> for AddressResponse {
    type Error = ApiError;

    fn try_from(row: AddressRow) -> Result<Self, ApiError> {
        Ok(Self {
            address: serde_json::from_str(&row.address).map_err(ApiError::internal)?,
            id: row.id,
            label: row.label,
            created_at: rfc3339(row.created_at),
        })
    }
}

/// The label as stored: trimmed, empty as none.
fn parse_label(label: Option<&str>) -> Result<Option<String>, FieldError> {
    let label = label.map(str::trim).filter(|l| !l.is_empty());
    match label {
        Some(l) if l.chars().count() > MAX_LABEL || l.chars().any(char::is_control) => {
            Err(FieldError::new(
                "label",
                "invalid_length",
                format!("at most {MAX_LABEL} characters, no control characters"),
            ))
        }
        other => Ok(other.map(str::to_owned)),
    }
}

/// The caller's saved addresses, newest first.
#[utoipa::path(get, path = "/api/v1/users/me/addresses", tag = "users",
    security(("bearer" = [])), responses((status = 200, body = Vec<AddressResponse>)))]
pub async fn list_addresses(
    State(state): State<AppState>,
    claims: Claims,
) -> Result<Json<Vec<AddressResponse>>, ApiError> {
    let mut conn = state.db.pool().acquire().await?;
    let rows = store::list_for_user(&mut conn, &claims.sub).await?;
    Ok(Json(
        rows.into_iter()
            .map(AddressResponse::try_from)
            .collect::<Result<_, _>>()?,
    ))
}

/// Saves an address for the caller.
#[utoipa::path(post, path = "/api/v1/users/me/addresses", tag = "users",
    request_body = AddressRequest, security(("bearer" = [])),
    responses((status = 201, body = AddressResponse),
        (status = 409, description = "The address book is full", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json")))]
pub async fn create_address(
    State(state): State<AppState>,
    claims: Claims,
    Json(body): Json<AddressRequest>,
) -> Result<(StatusCode, Json<AddressResponse>), ApiError> {
    let mut address = body.address;
    let mut errors = Vec::new();
    address.check("address", &mut errors);
    let label = parse_label(body.label.as_deref())
        .map_err(|e| errors.push(e))
        .ok()
        .flatten();
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let row = AddressRow {
        id: new_id("adr"),
        user_id: claims.sub.clone(),
        label,
        address: serde_json::to_string(&address).map_err(ApiError::internal)?,
        created_at: now_micros(),
    };
    let mut tx = state.db.begin().await?;
    if crate::store::orgs::active_user_email(&mut tx, &claims.sub)
        .await?
        .is_none()
    {
        return Err(ApiError::unauthorized(
            "the account does not exist or is disabled",
        ));
    }
    if store::count_for_user(&mut tx, &claims.sub).await? >= MAX_ADDRESSES {
        return Err(ApiError::conflict(
            "address_book_full",
            format!("at most {MAX_ADDRESSES} addresses are kept; delete one first"),
        ));
    }
    store::insert(&mut tx, &row).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(row.try_into()?)))
}

/// Deletes one of the caller's addresses; another user's answers 404.
#[utoipa::path(delete, path = "/api/v1/users/me/addresses/{id}", tag = "users",
    params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 204, description = "Deleted"),
        (status = 404, description = "No such address of the caller", body = Problem, content_type = "application/problem+json")))]
pub async fn delete_address(
    State(state): State<AppState>,
    claims: Claims,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let mut conn = state.db.pool().acquire().await?;
    if store::delete(&mut conn, &claims.sub, &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("address"))
    }
}
