//! `/api/v1/auth`: register, login, refresh-token rotation, logout, signing-key rotation.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use jsonwebtoken::jwk::JwkSet;
use mercato_kernel::auth::{Admin, RequireRole};
use mercato_kernel::error::Problem;
use mercato_kernel::{ApiError, Json};
use serde::{Deserialize, Serialize};

use super::users::parse_account;
use super::{AppState, ClientIp, UserResponse};
use crate::accounts;
use crate::domain::user::Roles;
use crate::sessions::{self, Session};

/// Tokens of a signed-in user.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenResponse {
    /// The account.
    pub user: UserResponse,
    /// EdDSA JWT for `Authorization: Bearer`.
    pub access_token: String,
    /// Single-use token for `POST /api/v1/auth/refresh`; keep it secret.
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
}

impl From<Session> for TokenResponse {
    fn from(session: Session) -> Self {
        Self {
            user: session.user.into(),
            access_token: session.access.token,
            refresh_token: session.refresh_token,
            token_type: "Bearer",
            expires_in: session.access.expires_in,
        }
    }
}

/// A sign-up.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// Email address (ASCII; lower-cased).
    pub email: String,
    /// 8 to 128 characters, not a common password.
    pub password: String,
    /// Display name, 1 to 200 characters.
    pub name: String,
}

/// Credentials.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Email address.
    pub email: String,
    /// Password.
    pub password: String,
}

/// A refresh token to exchange or revoke.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The refresh token.
    pub refresh_token: String,
}

/// The signing keys after a rotation.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RotatedKeys {
    /// Key id that now signs.
    pub active_kid: String,
    /// Key ids published in the JWKS.
    pub published_kids: Vec<String>,
}

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/auth/register", post(register))
        .route("/api/v1/auth/login", post(login))
        .route("/api/v1/auth/refresh", post(refresh))
        .route("/api/v1/auth/logout", post(logout))
        .route("/api/v1/auth/keys/rotate", post(rotate_keys))
}

const PROBLEM: &str = "application/problem+json";

/// Creates a customer account and signs it in; a verification email is sent.
#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth", request_body = RegisterRequest,
    responses((status = 201, body = TokenResponse),
        (status = 409, description = "`email_taken`", body = Problem, content_type = PROBLEM),
        (status = 422, body = Problem, content_type = PROBLEM)))]
pub async fn register(
    State(state): State<AppState>,
    Json(body): Json<RegisterRequest>,
) -> Result<(StatusCode, Json<TokenResponse>), ApiError> {
    let account = parse_account(
        &body.email,
        &body.password,
        &body.name,
        Ok(Roles::customer()),
    )?;
    let session = accounts::register(&state, account).await?;
    Ok((StatusCode::CREATED, Json(session.into())))
}

/// Signs in; the same 401 for an unknown email and a wrong password; 429 when locked.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = TokenResponse),
        (status = 401, description = "`invalid_credentials`", body = Problem, content_type = PROBLEM),
        (status = 403, description = "Disabled account", body = Problem, content_type = PROBLEM),
        (status = 429, description = "`account_locked` or `too_many_attempts`", body = Problem, content_type = PROBLEM)))]
pub async fn login(
    ClientIp(ip): ClientIp,
    State(state): State<AppState>,
    Json(body): Json<LoginRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    let session = sessions::login(&state, &body.email, body.password, ip.as_deref()).await?;
    Ok(Json(session.into()))
}

/// Exchanges a refresh token (single use) for new tokens; a reused token revokes its family.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = TokenResponse),
        (status = 401, description = "`invalid_refresh_token` or `refresh_token_reused`", body = Problem, content_type = PROBLEM)))]
pub async fn refresh(
    State(state): State<AppState>,
    Json(body): Json<RefreshRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    Ok(Json(
        sessions::refresh(&state, &body.refresh_token).await?.into(),
    ))
}

/// Ends the session (the refresh token's family); answers 204 for unknown tokens too.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", request_body = RefreshRequest,
    responses((status = 204, description = "Signed out")))]
pub async fn logout(
    State(state): State<AppState>,
    Json(body): Json<RefreshRequest>,
) -> Result<StatusCode, ApiError> {
    sessions::logout(&state, &body.refresh_token).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Makes a new signing key and retires the old ones (admin); old tokens keep verifying
/// until they expire.
#[utoipa::path(post, path = "/api/v1/auth/keys/rotate", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = RotatedKeys),
        (status = 403, body = Problem, content_type = PROBLEM)))]
pub async fn rotate_keys(
    _: RequireRole<Admin>,
    State(state): State<AppState>,
) -> Result<Json<RotatedKeys>, ApiError> {
    state
        .tokens
        .rotate(&state.db)
        .await
        .map_err(ApiError::internal)?;
    let jwks: JwkSet = state.tokens.jwks();
    state.auth.set_local_keys(jwks.clone());
    let published_kids = jwks
        .keys
        .iter()
        .filter_map(|k| k.common.key_id.clone())
        .collect();
    tracing::info!(kid = %state.tokens.active_kid(), "signing key rotated");
    Ok(Json(RotatedKeys {
        active_kid: state.tokens.active_kid(),
        published_kids,
    }))
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(register, login, refresh, logout, rotate_keys),
    components(schemas(
        TokenResponse,
        RegisterRequest,
        LoginRequest,
        RefreshRequest,
        RotatedKeys
    ))
)]
pub(super) struct Doc;
