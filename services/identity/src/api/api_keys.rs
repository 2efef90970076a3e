//! `/api/v1/api-keys`: create (secret shown once), list, revoke, and introspect for services
//! deployed apart from identity.
//!
//! Scopes: `read` (GET/HEAD/OPTIONS), `write` (every method) and `admin` (also the owner's
//! `staff`/`admin` roles; only staff and admins may create such keys). A key always acts with
//! its owner's current roles, so it never exceeds them.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, post};
use mercato_kernel::auth::{AuthError, Claims, Role, Scope, hash_api_key};
use mercato_kernel::error::Problem;
use mercato_kernel::id::new_id;
use mercato_kernel::pagination::{Page, PageParams};
use mercato_kernel::{ApiError, FieldError, Json, Path, Query};
use mercato_store::now_micros;
use serde::{Deserialize, Serialize};

use super::AppState;
use crate::domain::org::parse_name;
use crate::store::api_keys::{self as store, ApiKeyRow, DISPLAY_PREFIX_LEN};
use mercato_kernel::time::rfc3339;

/// The API key routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/api-keys", post(create_api_key).get(list_api_keys))
        .route("/api/v1/api-keys/introspect", post(introspect_api_key))
        .route("/api/v1/api-keys/{id}", delete(revoke_api_key))
}

/// OpenAPI paths of the API key routes.
#[derive(utoipa::OpenApi)]
#[openapi(paths(create_api_key, list_api_keys, revoke_api_key, introspect_api_key))]
pub struct Doc;

/// Body of `POST /api/v1/api-keys`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyRequest {
    /// A label, 1 to 100 characters.
    pub name: String,
    /// One or more of `read`, `write`, `admin`.
    pub scopes: Vec<String>,
    /// When the key stops working (RFC 3339, in the future); never when absent.
    pub expires_at: Option<String>,
}

/// An API key without its secret.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ApiKeyResponse {
    /// `key_…`.
    pub id: String,
    /// Label.
    pub name: String,
    /// The secret's first characters, to recognize it.
    pub prefix: String,
    /// Scopes.
    pub scopes: Vec<String>,
    /// RFC 3339, when the key expires.
    pub expires_at: Option<String>,
    /// RFC 3339, when the key was last used (to the minute).
    pub last_used_at: Option<String>,
    /// RFC 3339.
    pub created_at: String,
}

impl From<ApiKeyRow> for ApiKeyResponse {
    fn from(row: ApiKeyRow) -> Self {
        Self {
            scopes: row.scope_names(),
            id: row.id,
            name: row.name,
            prefix: row.prefix,
            expires_at: row.expires_at.map(rfc3339),
            last_used_at: row.last_used_at.map(rfc3339),
            created_at: rfc3339(row.created_at),
        }
    }
}

/// A new key: the only answer that holds the secret.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedApiKey {
    /// The key.
    #[serde(flatten)]
    pub key: ApiKeyResponse,
    /// The secret (`mk_live_…`); shown once, store it now.
    pub secret: String,
}

/// Body of `POST /api/v1/api-keys/introspect`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct IntrospectRequest {
    /// The API key secret.
    pub key: String,
}

/// Checks scopes: known names, no duplicates, none beyond what the caller may grant.
fn parse_scopes(names: &[String], caller: &Claims) -> Result<Vec<String>, ApiError> {
    let mut scopes: Vec<Scope> = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let Some(scope) = Scope::parse(name) else {
            return Err(ApiError::invalid_field(
                format!("scopes[{i}]"),
                "invalid_scope",
                "scopes are read, write or admin",
            ));
        };
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    if scopes.is_empty() {
        return Err(ApiError::invalid_field(
            "scopes",
            "required",
            "at least one scope",
        ));
    }
    for scope in &scopes {
        if !caller.allows(*scope) {
            return Err(ApiError::forbidden(
                "a key cannot grant more than the caller's key",
            ));
        }
        if *scope == Scope::Admin && !caller.has_role(Role::Staff) {
            return Err(ApiError::forbidden(
                "only staff and admins create admin keys",
            ));
        }
    }
    Ok(scopes.iter().map(|s| s.as_str().to_owned()).collect())
}

fn parse_expiry(input: Option<&str>, now: i64) -> Result<Option<i64>, FieldError> {
    let Some(input) = input else { return Ok(None) };
    let at = chrono::DateTime::parse_from_rfc3339(input)
        .map_err(|_| FieldError::new("expires_at", "invalid_time", "expected an RFC 3339 time"))?
        .timestamp_micros();
    if at <= now {
        return Err(FieldError::new(
            "expires_at",
            "in_the_past",
            "must be in the future",
        ));
    }
    Ok(Some(at))
}

/// Creates an API key for the caller; the secret is in this answer only.
#[utoipa::path(post, path = "/api/v1/api-keys", tag = "api-keys", request_body = CreateApiKeyRequest,
    security(("bearer" = [])),
    responses((status = 201, body = CreatedApiKey),
        (status = 403, description = "Scope beyond the caller's roles", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json")))]
pub async fn create_api_key(
    State(state): State<AppState>,
    claims: Claims,
    Json(body): Json<CreateApiKeyRequest>,
) -> Result<(StatusCode, Json<CreatedApiKey>), ApiError> {
    let now = now_micros();
    let name = parse_name(&body.name, "name").map_err(|e| ApiError::validation(vec![e]))?;
    let expires_at =
        parse_expiry(body.expires_at.as_deref(), now).map_err(|e| ApiError::validation(vec![e]))?;
    let scopes = parse_scopes(&body.scopes, &claims)?;
    let secret = store::new_secret();
    let row = ApiKeyRow {
        id: new_id("key"),
        user_id: claims.sub.clone(),
        name,
        prefix: secret[..DISPLAY_PREFIX_LEN].to_owned(),
        scopes: serde_json::to_string(&scopes).map_err(ApiError::internal)?,
        expires_at,
        last_used_at: None,
        created_at: now,
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
    store::insert(&mut tx, &row, &hash_api_key(&secret)).await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedApiKey {
            key: row.into(),
            secret,
        }),
    ))
}

/// Lists the caller's live keys, without secrets.
#[utoipa::path(get, path = "/api/v1/api-keys", tag = "api-keys", params(PageParams),
    security(("bearer" = [])), responses((status = 200, body = Page<ApiKeyResponse>)))]
pub async fn list_api_keys(
    State(state): State<AppState>,
    claims: Claims,
    Query(params): Query<PageParams>,
) -> Result<Json<Page<ApiKeyResponse>>, ApiError> {
    let page = params.parse()?;
    let mut conn = state.db.pool().acquire().await?;
    let rows = store::list_for_user(&mut conn, &claims.sub, &page).await?;
    let page = Page::from_rows(rows, &page, |r| r.id.clone());
    Ok(Json(page.map(Into::into)))
}

/// Revokes one of the caller's keys; another user's key answers 404.
#[utoipa::path(delete, path = "/api/v1/api-keys/{id}", tag = "api-keys",
    params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 204, description = "Revoked"),
        (status = 404, description = "No such key of the caller", body = Problem, content_type = "application/problem+json")))]
pub async fn revoke_api_key(
    State(state): State<AppState>,
    claims: Claims,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let mut conn = state.db.pool().acquire().await?;
    if store::revoke(&mut conn, &claims.sub, &id, now_micros()).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("api key"))
    }
}

/// The claims of a valid API key, for services that cannot read identity's database; 401
/// for an unknown, revoked or expired key.
#[utoipa::path(post, path = "/api/v1/api-keys/introspect", tag = "api-keys",
    request_body = IntrospectRequest,
    responses((status = 200, description = "The key's claims", body = Object),
        (status = 401, description = "Invalid key", body = Problem, content_type = "application/problem+json")))]
pub async fn introspect_api_key(
    State(state): State<AppState>,
    Json(body): Json<IntrospectRequest>,
) -> Result<Json<Claims>, AuthError> {
    match store::resolve(&state.db, &body.key).await {
        Ok(Some(claims)) => Ok(Json(claims)),
        Ok(None) => Err(AuthError::InvalidApiKey),
        Err(e) => {
            tracing::warn!(error = %e, "introspecting an api key failed");
            Err(AuthError::IdentityUnavailable)
        }
    }
}
