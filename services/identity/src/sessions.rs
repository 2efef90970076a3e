//! Sign-in sessions: login with throttling, refresh-token rotation with reuse detection,
//! logout.

use mercato_kernel::ApiError;
use mercato_kernel::id::new_id;
use mercato_store::{Tx, now_micros};

use crate::api::AppState;
use crate::domain::email::{self, Email};
use crate::domain::password;
use crate::domain::throttle::{Subject, retry_after_seconds};
use crate::domain::user::User;
use crate::store::{self, token_hash};
use crate::tokens::{AccessToken, random_secret};

/// Lifetime of a refresh token.
pub const REFRESH_TOKEN_SECONDS: i64 = 30 * 24 * 3600;
/// Prefix of refresh tokens.
pub const REFRESH_PREFIX: &str = "rt_";

/// What a successful sign-in or refresh hands out.
#[derive(Debug)]
pub struct Session {
    /// The signed-in user.
    pub user: User,
    /// A fresh access token.
    pub access: AccessToken,
    /// A fresh single-use refresh token (shown once; stored hashed).
    pub refresh_token: String,
}

/// 401 `invalid_credentials`, the same for an unknown email and a wrong password.
pub fn invalid_credentials() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::UNAUTHORIZED,
        "invalid_credentials",
        "email or password is incorrect",
    )
}

fn invalid_refresh(code: &'static str, detail: &'static str) -> ApiError {
    ApiError::new(axum::http::StatusCode::UNAUTHORIZED, code, detail)
}

/// Issues an access token and a refresh token of `family` (a new family when `None`).
pub async fn open(
    state: &AppState,
    tx: &mut Tx,
    user: User,
    family: Option<&str>,
    now: i64,
) -> Result<Session, ApiError> {
    let refresh_token = random_secret(REFRESH_PREFIX).map_err(ApiError::internal)?;
    let family = family.map_or_else(|| new_id("rtf"), str::to_owned);
    let expires_at = now + REFRESH_TOKEN_SECONDS * 1_000_000;
    let hash = token_hash(&refresh_token);
    store::tokens::insert_refresh(tx, &hash, &user.id, &family, expires_at, now).await?;
    let access = state
        .tokens
        .issue(&user.id, user.roles.names(), None)
        .map_err(ApiError::internal)?;
    Ok(Session {
        user,
        access,
        refresh_token,
    })
}

/// The throttling key of what a client typed as email: normalized when it parses.
fn account_key(input: &str) -> String {
    Email::parse(input, "email").map_or_else(
        |_| {
            input
                .trim()
                .chars()
                .take(email::MAX_LEN)
                .collect::<String>()
                .to_lowercase()
        },
        Email::into_string,
    )
}

/// Checks email and password, throttled per account and per IP.
pub async fn login(
    state: &AppState,
    email: &str,
    password: String,
    ip: Option<&str>,
) -> Result<Session, ApiError> {
    let account = account_key(email);
    let now = now_micros();
    check_lock(state, &format!("account:{account}"), Subject::Account, now).await?;
    if let Some(ip) = ip {
        check_lock(state, &format!("ip:{ip}"), Subject::Ip, now).await?;
    }
    let user = store::users::by_email(&state.db, &account).await?;
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    let matches = password::verify_blocking(password, hash).await;
    let user = match user {
        Some(user) if matches => user,
        _ => {
            record_failure(state, &account, ip, now).await?;
            return Err(invalid_credentials());
        }
    };
    if user.is_disabled() {
        return Err(ApiError::forbidden("this account is disabled"));
    }
    store::throttle::clear_account(&state.db, &account).await?;
    let mut tx = state.db.begin().await?;
    let session = open(state, &mut tx, user, None, now).await?;
    tx.commit().await?;
    Ok(session)
}

async fn check_lock(
    state: &AppState,
    key: &str,
    subject: Subject,
    now: i64,
) -> Result<(), ApiError> {
    let Some(until) = store::throttle::locked_until(&state.db, key).await? else {
        return Ok(());
    };
    if until <= now {
        return Ok(());
    }
    let (code, detail) = match subject {
        Subject::Account => ("account_locked", "too many failed logins; try again later"),
        Subject::Ip => (
            "too_many_attempts",
            "too many failed logins from this address",
        ),
    };
    Err(
        ApiError::new(axum::http::StatusCode::TOO_MANY_REQUESTS, code, detail)
            .with_retry_after(retry_after_seconds(until, now)),
    )
}

async fn record_failure(
    state: &AppState,
    account: &str,
    ip: Option<&str>,
    now: i64,
) -> Result<(), ApiError> {
    let policy = state.throttle;
    store::throttle::prune(&state.db, policy.window_start(now, None)).await?;
    store::throttle::record_failure(&state.db, account, ip, now).await?;
    let key = format!("account:{account}");
    let since = policy.window_start(now, store::throttle::locked_until(&state.db, &key).await?);
    if store::throttle::account_failures(&state.db, account, since).await?
        >= policy.limit(Subject::Account)
    {
        tracing::warn!(account, "account locked after repeated login failures");
        store::throttle::lock(&state.db, &key, policy.lock_until(now)).await?;
    }
    if let Some(ip) = ip {
        let key = format!("ip:{ip}");
        let since = policy.window_start(now, store::throttle::locked_until(&state.db, &key).await?);
        if store::throttle::ip_failures(&state.db, ip, since).await? >= policy.limit(Subject::Ip) {
            tracing::warn!(ip, "client address locked after repeated login failures");
            store::throttle::lock(&state.db, &key, policy.lock_until(now)).await?;
        }
    }
    Ok(())
}

/// Exchanges a refresh token for a new pair. A token used before revokes its whole family:
/// someone else holds a copy.
pub async fn refresh(state: &AppState, token: &str) -> Result<Session, ApiError> {
    let now = now_micros();
    let mut tx = state.db.begin().await?;
    let invalid = || {
        invalid_refresh(
            "invalid_refresh_token",
            "refresh token is invalid or expired",
        )
    };
    let Some(row) = store::tokens::refresh_by_hash(&mut tx, &token_hash(token)).await? else {
        return Err(invalid());
    };
    if row.revoked_at.is_some() || row.expires_at <= now {
        return Err(invalid());
    }
    if row.used_at.is_some() || !store::tokens::mark_refresh_used(&mut tx, &row.id, now).await? {
        store::tokens::revoke_family(&mut tx, &row.family_id, now).await?;
        tx.commit().await?;
        tracing::warn!(user_id = %row.user_id, family = %row.family_id, "refresh token reused; family revoked");
        return Err(invalid_refresh(
            "refresh_token_reused",
            "refresh token was already used; sign in again",
        ));
    }
    let user = store::users::by_id_tx(&mut tx, &row.user_id).await?;
    let Some(user) = user.filter(|u| !u.is_disabled()) else {
        store::tokens::revoke_family(&mut tx, &row.family_id, now).await?;
        tx.commit().await?;
        return Err(invalid());
    };
    let session = open(state, &mut tx, user, Some(&row.family_id), now).await?;
    tx.commit().await?;
    Ok(session)
}

/// Revokes the family of a refresh token; unknown tokens are ignored.
pub async fn logout(state: &AppState, token: &str) -> Result<(), ApiError> {
    let mut tx = state.db.begin().await?;
    if let Some(row) = store::tokens::refresh_by_hash(&mut tx, &token_hash(token)).await? {
        store::tokens::revoke_family(&mut tx, &row.family_id, now_micros()).await?;
    }
    tx.commit().await?;
    Ok(())
}
