//! Email verification and password reset by single-use, expiring tokens sent by email.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use mercato_kernel::auth::Claims;
use mercato_kernel::error::Problem;
use mercato_kernel::{ApiError, Json};
use serde::{Deserialize, Serialize};

use super::{AppState, UserResponse};
use crate::accounts;
use crate::domain::email::Email;
use crate::domain::password::Password;

/// A token from an email.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// The token the email carried.
    pub token: String,
}

/// Who forgot their password.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    /// Email address of the account.
    pub email: String,
}

/// A new password with the reset token.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPasswordRequest {
    /// The token the reset email carried.
    pub token: String,
    /// The new password.
    pub new_password: String,
}

/// Acknowledgement of an email request.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Accepted {
    /// What happens next.
    pub status: &'static str,
}

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/auth/verify-email/request",
            post(request_verification),
        )
        .route("/api/v1/auth/verify-email", post(verify_email))
        .route(
            "/api/v1/auth/password-reset/request",
            post(request_password_reset),
        )
        .route("/api/v1/auth/password-reset", post(reset_password))
}

const PROBLEM: &str = "application/problem+json";

/// Emails the signed-in user a new verification token (valid 24 hours).
#[utoipa::path(post, path = "/api/v1/auth/verify-email/request", tag = "auth",
    security(("bearer" = [])),
    responses((status = 202, body = Accepted),
        (status = 409, description = "`already_verified`", body = Problem, content_type = PROBLEM)))]
pub async fn request_verification(
    claims: Claims,
    State(state): State<AppState>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    accounts::request_verification(&state, &claims.sub).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            status: "verification_email_sent",
        }),
    ))
}

/// Verifies an email address with the token it received.
#[utoipa::path(post, path = "/api/v1/auth/verify-email", tag = "auth", request_body = TokenRequest,
    responses((status = 200, body = UserResponse),
        (status = 400, description = "`invalid_token`", body = Problem, content_type = PROBLEM)))]
pub async fn verify_email(
    State(state): State<AppState>,
    Json(body): Json<TokenRequest>,
) -> Result<Json<UserResponse>, ApiError> {
    Ok(Json(
        accounts::verify_email(&state, &body.token).await?.into(),
    ))
}

/// Emails a reset token (valid 1 hour) when the account exists; the same 202 either way.
#[utoipa::path(post, path = "/api/v1/auth/password-reset/request", tag = "auth",
    request_body = ResetRequest,
    responses((status = 202, body = Accepted),
        (status = 422, body = Problem, content_type = PROBLEM)))]
pub async fn request_password_reset(
    State(state): State<AppState>,
    Json(body): Json<ResetRequest>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let email = Email::parse(&body.email, "email").map_err(|e| ApiError::validation(vec![e]))?;
    accounts::request_password_reset(&state, &email).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            status: "reset_email_sent_if_account_exists",
        }),
    ))
}

/// Sets a new password with a reset token; every session of the account ends.
#[utoipa::path(post, path = "/api/v1/auth/password-reset", tag = "auth",
    request_body = ResetPasswordRequest,
    responses((status = 204, description = "Password changed"),
        (status = 400, description = "`invalid_token`", body = Problem, content_type = PROBLEM),
        (status = 422, body = Problem, content_type = PROBLEM)))]
pub async fn reset_password(
    State(state): State<AppState>,
    Json(body): Json<ResetPasswordRequest>,
) -> Result<StatusCode, ApiError> {
    let password = Password::parse(&body.new_password, "new_password")
        .map_err(|e| ApiError::validation(vec![e]))?;
    accounts::reset_password(&state, &body.token, password).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        request_verification,
        verify_email,
        request_password_reset,
        reset_password
    ),
    components(schemas(TokenRequest, ResetRequest, ResetPasswordRequest, Accepted))
)]
pub(super) struct Doc;
