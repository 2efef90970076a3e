//! `/api/v1/users`: the caller's own account, and admin management of every account.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use mercato_kernel::auth::{Admin, Claims, RequireRole};
use mercato_kernel::error::Problem;
use mercato_kernel::id::parse_id;
use mercato_kernel::pagination::{Page, PageParams};
use mercato_kernel::time::rfc3339;
use mercato_kernel::{ApiError, FieldError, Json, Path, Query};
use serde::{Deserialize, Serialize};

use super::{AppState, TokenResponse};
use crate::accounts::{self, AdminUpdate, NewAccount};
use crate::domain::email::Email;
use crate::domain::password::Password;
use crate::domain::user::{Name, Roles, User};
use crate::store;

/// A user account as the API shows it (never the password hash).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserResponse {
    /// `usr_…`.
    pub id: String,
    /// Normalized email.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Platform roles: `customer`, `staff`, `admin`.
    pub roles: Vec<String>,
    /// Whether the email was verified.
    pub email_verified: bool,
    /// When the email was verified (RFC 3339).
    pub email_verified_at: Option<String>,
    /// Whether an admin disabled the account.
    pub disabled: bool,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

impl From<User> for UserResponse {
    fn from(user: User) -> Self {
        Self {
            email_verified: user.email_verified_at.is_some(),
            email_verified_at: user.email_verified_at.map(rfc3339),
            disabled: user.is_disabled(),
            created_at: rfc3339(user.created_at),
            updated_at: rfc3339(user.updated_at),
            roles: user.roles.names(),
            id: user.id,
            email: user.email,
            name: user.name,
        }
    }
}

/// Parses the fields of a new account, reporting every invalid one.
pub fn parse_account(
    email: &str,
    password: &str,
    name: &str,
    roles: Result<Roles, FieldError>,
) -> Result<NewAccount, ApiError> {
    match (
        Email::parse(email, "email"),
        Password::parse(password, "password"),
        Name::parse(name),
        roles,
    ) {
        (Ok(email), Ok(password), Ok(name), Ok(roles)) => Ok(NewAccount {
            email,
            password,
            name,
            roles,
        }),
        (email, password, name, roles) => Err(ApiError::validation(
            [email.err(), password.err(), name.err(), roles.err()]
                .into_iter()
                .flatten()
                .collect(),
        )),
    }
}

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/users/me", get(get_me).patch(update_me))
        .route("/api/v1/users/me/password", post(change_password))
        .route("/api/v1/users", post(create_user).get(list_users))
        .route("/api/v1/users/{id}", get(get_user).patch(update_user))
}

/// The caller's account.
#[utoipa::path(get, path = "/api/v1/users/me", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = UserResponse),
        (status = 401, body = Problem, content_type = "application/problem+json")))]
pub async fn get_me(
    claims: Claims,
    State(state): State<AppState>,
) -> Result<Json<UserResponse>, ApiError> {
    Ok(Json(accounts::current(&state, &claims.sub).await?.into()))
}

/// Changes to the caller's own account.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMeRequest {
    /// New display name, 1 to 200 characters.
    pub name: String,
}

/// Renames the caller.
#[utoipa::path(patch, path = "/api/v1/users/me", tag = "users", security(("bearer" = [])),
    request_body = UpdateMeRequest,
    responses((status = 200, body = UserResponse),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn update_me(
    claims: Claims,
    State(state): State<AppState>,
    Json(body): Json<UpdateMeRequest>,
) -> Result<Json<UserResponse>, ApiError> {
    let name = Name::parse(&body.name).map_err(|e| ApiError::validation(vec![e]))?;
    Ok(Json(
        accounts::rename(&state, &claims.sub, name).await?.into(),
    ))
}

/// A password change.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    /// The password in use.
    pub current_password: String,
    /// The new password, 8 to 128 characters, not a common one.
    pub new_password: String,
}

/// Changes the caller's password; every other session ends, a new one is returned.
#[utoipa::path(post, path = "/api/v1/users/me/password", tag = "users", security(("bearer" = [])),
    request_body = ChangePasswordRequest,
    responses((status = 200, body = TokenResponse),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn change_password(
    claims: Claims,
    State(state): State<AppState>,
    Json(body): Json<ChangePasswordRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    let new_password = Password::parse(&body.new_password, "new_password")
        .map_err(|e| ApiError::validation(vec![e]))?;
    let session =
        accounts::change_password(&state, &claims.sub, body.current_password, new_password).await?;
    Ok(Json(session.into()))
}

/// An account an admin creates.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    /// Email address.
    pub email: String,
    /// Initial password.
    pub password: String,
    /// Display name.
    pub name: String,
    /// Platform roles (default `customer`).
    #[serde(default)]
    pub roles: Vec<String>,
}

/// Creates a user (admin).
#[utoipa::path(post, path = "/api/v1/users", tag = "users", security(("bearer" = [])),
    request_body = CreateUserRequest,
    responses((status = 201, body = UserResponse),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn create_user(
    _: RequireRole<Admin>,
    State(state): State<AppState>,
    Json(body): Json<CreateUserRequest>,
) -> Result<(StatusCode, Json<UserResponse>), ApiError> {
    let roles = Roles::parse(&body.roles);
    let account = parse_account(&body.email, &body.password, &body.name, roles)?;
    let user = accounts::create(&state, account).await?;
    Ok((StatusCode::CREATED, Json(user.into())))
}

/// Lists users in creation order (admin).
#[utoipa::path(get, path = "/api/v1/users", tag = "users", security(("bearer" = [])),
    params(PageParams),
    responses((status = 200, body = Page<UserResponse>)))]
pub async fn list_users(
    _: RequireRole<Admin>,
    State(state): State<AppState>,
    Query(params): Query<PageParams>,
) -> Result<Json<Page<UserResponse>>, ApiError> {
    let page = params.parse()?;
    let rows = store::users::list(&state.db, &page).await?;
    let page = Page::from_rows(rows, &page, |u| u.id.clone());
    Ok(Json(page.map(UserResponse::from)))
}

/// One user (admin).
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = String, Path, description = "`usr_…`")),
    responses((status = 200, body = UserResponse),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_user(
    _: RequireRole<Admin>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<UserResponse>, ApiError> {
    let id = parse_id("usr", &id, "id")?;
    let user = store::users::by_id(&state.db, id).await?;
    Ok(Json(
        user.ok_or_else(|| ApiError::not_found("user"))?.into(),
    ))
}

/// An admin's change to a user; absent fields stay as they are.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    /// New platform roles.
    pub roles: Option<Vec<String>>,
    /// Disable (true) or re-enable (false) the account.
    pub disabled: Option<bool>,
    /// New display name.
    pub name: Option<String>,
}

/// Changes roles, name or disabled state of a user (admin); disabling ends its sessions.
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = String, Path, description = "`usr_…`")),
    request_body = UpdateUserRequest,
    responses((status = 200, body = UserResponse),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn update_user(
    admin: RequireRole<Admin>,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(body): Json<UpdateUserRequest>,
) -> Result<Json<UserResponse>, ApiError> {
    let id = parse_id("usr", &id, "id")?;
    let roles = body.roles.as_deref().map(Roles::parse).transpose();
    let name = body.name.as_deref().map(Name::parse).transpose();
    let (roles, name) = match (roles, name) {
        (Ok(roles), Ok(name)) => (roles, name),
        (roles, name) => {
            return Err(ApiError::validation(
                [roles.err(), name.err()].into_iter().flatten().collect(),
            ));
        }
    };
    let update = AdminUpdate {
        roles,
        disabled: body.disabled,
        name,
    };
    let user = accounts::admin_update(&state, &admin.sub, id, update).await?;
    Ok(Json(user.into()))
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        get_me,
        update_me,
        change_password,
        create_user,
        list_users,
        get_user,
        update_user
    ),
    components(schemas(
        UserResponse,
        UpdateMeRequest,
        ChangePasswordRequest,
        CreateUserRequest,
        UpdateUserRequest
    ))
)]
pub(super) struct Doc;
