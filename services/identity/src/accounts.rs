//! Account life cycle: registration, admin-created users, email verification, password
//! reset and change, profile and admin updates.

use axum::http::StatusCode;
use mercato_kernel::ApiError;
use mercato_kernel::id::new_id;
use mercato_store::{Tx, is_unique_violation, now_micros};

use crate::api::AppState;
use crate::domain::email::Email;
use crate::domain::password::{self, Password};
use crate::domain::user::{Name, Roles, User};
use crate::events;
use crate::sessions::{self, Session};
use crate::store::{self, token_hash};
use crate::tokens::random_secret;

/// Lifetime of an email verification token.
pub const VERIFY_EMAIL_SECONDS: i64 = 24 * 3600;
/// Lifetime of a password reset token.
pub const PASSWORD_RESET_SECONDS: i64 = 3600;

/// What a new account is made of.
#[derive(Debug)]
pub struct NewAccount {
    /// Normalized email.
    pub email: Email,
    /// Accepted password.
    pub password: Password,
    /// Display name.
    pub name: Name,
    /// Platform roles.
    pub roles: Roles,
}

fn email_taken() -> ApiError {
    ApiError::conflict("email_taken", "an account with this email already exists")
}

fn invalid_email_token() -> ApiError {
    ApiError::bad_request("invalid_token", "the token is invalid, used or expired")
}

/// Hashes the password and inserts the user; a taken email is 409 `email_taken`.
pub async fn insert_user(tx: &mut Tx, account: NewAccount) -> Result<User, ApiError> {
    let password_hash = password::hash_blocking(account.password)
        .await
        .map_err(ApiError::internal)?;
    let now = now_micros();
    let user = User {
        id: new_id("usr"),
        email: account.email.into_string(),
        name: account.name.as_str().to_owned(),
        password_hash,
        roles: account.roles,
        email_verified_at: None,
        disabled_at: None,
        created_at: now,
        updated_at: now,
    };
    store::users::insert(tx, &user).await.map_err(|e| {
        if is_unique_violation(&e) {
            email_taken()
        } else {
            ApiError::from(e)
        }
    })?;
    events::user_registered(tx, &user).await?;
    Ok(user)
}

/// Registers a customer, sends the verification email and signs them in.
pub async fn register(state: &AppState, account: NewAccount) -> Result<Session, ApiError> {
    let mut tx = state.db.begin().await?;
    let user = insert_user(&mut tx, account).await?;
    send_email_token(
        &mut tx,
        &user,
        events::VERIFY_EMAIL_TEMPLATE,
        VERIFY_EMAIL_SECONDS,
    )
    .await?;
    let session = sessions::open(state, &mut tx, user, None, now_micros()).await?;
    tx.commit().await?;
    Ok(session)
}

/// An admin creates a user with roles.
pub async fn create(state: &AppState, account: NewAccount) -> Result<User, ApiError> {
    let mut tx = state.db.begin().await?;
    let user = insert_user(&mut tx, account).await?;
    tx.commit().await?;
    Ok(user)
}

/// The caller's own account; a deleted or disabled account is 401.
pub async fn current(state: &AppState, user_id: &str) -> Result<User, ApiError> {
    store::users::by_id(&state.db, user_id)
        .await?
        .filter(|u| !u.is_disabled())
        .ok_or_else(|| ApiError::unauthorized("this account is disabled or gone"))
}

/// Stores a fresh single-use token of `purpose` (= template) and emails it via the outbox.
async fn send_email_token(
    tx: &mut Tx,
    user: &User,
    purpose: &str,
    ttl: i64,
) -> Result<(), ApiError> {
    let token = random_secret("").map_err(ApiError::internal)?;
    let now = now_micros();
    store::tokens::expire_email_tokens(tx, &user.id, purpose, now).await?;
    let expires_at = now + ttl * 1_000_000;
    store::tokens::insert_email_token(tx, &token_hash(&token), &user.id, purpose, expires_at, now)
        .await?;
    events::email(tx, user, purpose, &token, ttl).await
}

/// Emails a new verification token to a signed-in user.
pub async fn request_verification(state: &AppState, user_id: &str) -> Result<(), ApiError> {
    let user = current(state, user_id).await?;
    if user.email_verified_at.is_some() {
        return Err(ApiError::conflict(
            "already_verified",
            "the email is already verified",
        ));
    }
    let mut tx = state.db.begin().await?;
    send_email_token(
        &mut tx,
        &user,
        events::VERIFY_EMAIL_TEMPLATE,
        VERIFY_EMAIL_SECONDS,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Uses a token of `purpose` and returns its (enabled) user.
async fn redeem(tx: &mut Tx, token: &str, purpose: &str, now: i64) -> Result<User, ApiError> {
    if token.is_empty() || token.len() > 128 {
        return Err(invalid_email_token());
    }
    let user_id = store::tokens::consume_email_token(tx, &token_hash(token), purpose, now)
        .await?
        .ok_or_else(invalid_email_token)?;
    store::users::by_id_tx(tx, &user_id)
        .await?
        .filter(|u| !u.is_disabled())
        .ok_or_else(invalid_email_token)
}

/// Marks the email of a verification token's user verified.
pub async fn verify_email(state: &AppState, token: &str) -> Result<User, ApiError> {
    let now = now_micros();
    let mut tx = state.db.begin().await?;
    let mut user = redeem(&mut tx, token, events::VERIFY_EMAIL_TEMPLATE, now).await?;
    user.email_verified_at.get_or_insert(now);
    store::users::update(&mut tx, &user, now).await?;
    tx.commit().await?;
    Ok(user)
}

/// Emails a reset token when the account exists and is enabled; silent otherwise.
pub async fn request_password_reset(state: &AppState, email: &Email) -> Result<(), ApiError> {
    let Some(user) = store::users::by_email(&state.db, email.as_str()).await? else {
        return Ok(());
    };
    if user.is_disabled() {
        return Ok(());
    }
    let mut tx = state.db.begin().await?;
    send_email_token(
        &mut tx,
        &user,
        events::PASSWORD_RESET_TEMPLATE,
        PASSWORD_RESET_SECONDS,
    )
    .await?;
    events::password_reset_requested(&mut tx, &user).await?;
    tx.commit().await?;
    Ok(())
}

/// Sets a new password from a reset token; every session of the user ends, the account
/// lock lifts, and the email counts as verified (the token came through it).
pub async fn reset_password(
    state: &AppState,
    token: &str,
    password: Password,
) -> Result<(), ApiError> {
    let hash = password::hash_blocking(password)
        .await
        .map_err(ApiError::internal)?;
    let now = now_micros();
    let mut tx = state.db.begin().await?;
    let mut user = redeem(&mut tx, token, events::PASSWORD_RESET_TEMPLATE, now).await?;
    user.password_hash = hash;
    user.email_verified_at.get_or_insert(now);
    store::users::update(&mut tx, &user, now).await?;
    store::tokens::revoke_user(&mut tx, &user.id, now).await?;
    tx.commit().await?;
    store::throttle::clear_account(&state.db, &user.email).await?;
    Ok(())
}

/// Changes the caller's password after checking the current one; every other session ends
/// and a new one is returned.
pub async fn change_password(
    state: &AppState,
    user_id: &str,
    current_password: String,
    new_password: Password,
) -> Result<Session, ApiError> {
    let mut user = current(state, user_id).await?;
    if !password::verify_blocking(current_password, Some(user.password_hash.clone())).await {
        return Err(ApiError::invalid_field(
            "current_password",
            "incorrect_password",
            "the current password is incorrect",
        ));
    }
    user.password_hash = password::hash_blocking(new_password)
        .await
        .map_err(ApiError::internal)?;
    let now = now_micros();
    let mut tx = state.db.begin().await?;
    store::users::update(&mut tx, &user, now).await?;
    store::tokens::revoke_user(&mut tx, &user.id, now).await?;
    let session = sessions::open(state, &mut tx, user, None, now).await?;
    tx.commit().await?;
    Ok(session)
}

/// Changes the caller's display name.
pub async fn rename(state: &AppState, user_id: &str, name: Name) -> Result<User, ApiError> {
    let mut user = current(state, user_id).await?;
    user.name = name.as_str().to_owned();
    let now = now_micros();
    let mut tx = state.db.begin().await?;
    store::users::update(&mut tx, &user, now).await?;
    tx.commit().await?;
    user.updated_at = now;
    Ok(user)
}

/// An admin's change to a user.
#[derive(Debug, Default)]
pub struct AdminUpdate {
    /// New roles.
    pub roles: Option<Roles>,
    /// Disable (true) or enable (false) the account.
    pub disabled: Option<bool>,
    /// New display name.
    pub name: Option<Name>,
}

/// Applies an admin's change; disabling ends every session. Admins cannot disable or demote
/// themselves (the platform would risk having no admin).
pub async fn admin_update(
    state: &AppState,
    admin_id: &str,
    user_id: &str,
    update: AdminUpdate,
) -> Result<User, ApiError> {
    let self_lockout = update.disabled == Some(true)
        || update
            .roles
            .as_ref()
            .is_some_and(|r| !r.contains(mercato_kernel::auth::Role::Admin));
    if admin_id == user_id && self_lockout {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "cannot_change_own_admin",
            "admins cannot disable or demote themselves",
        ));
    }
    let now = now_micros();
    let mut tx = state.db.begin().await?;
    let mut user = store::users::by_id_tx(&mut tx, user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    if let Some(roles) = update.roles {
        user.roles = roles;
    }
    if let Some(name) = update.name {
        user.name = name.as_str().to_owned();
    }
    match update.disabled {
        Some(true) if user.disabled_at.is_none() => {
            user.disabled_at = Some(now);
            store::tokens::revoke_user(&mut tx, &user.id, now).await?;
        }
        Some(false) => user.disabled_at = None,
        _ => {}
    }
    store::users::update(&mut tx, &user, now).await?;
    tx.commit().await?;
    user.updated_at = now;
    Ok(user)
}
