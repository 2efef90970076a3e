//! `refresh_tokens` and `email_tokens`: secrets are stored as SHA-256 only.

use mercato_store::Tx;
use sqlx::FromRow;

/// A stored refresh token.
#[derive(Debug, Clone, FromRow)]
pub struct RefreshRow {
    /// `rtk_…`.
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// Rotation family.
    pub family_id: String,
    /// Epoch microseconds.
    pub expires_at: i64,
    /// Set once the token was exchanged.
    pub used_at: Option<i64>,
    /// Set when its family was revoked.
    pub revoked_at: Option<i64>,
}

/// Stores a new refresh token of `family_id`.
pub async fn insert_refresh(
    tx: &mut Tx,
    hash: &str,
    user_id: &str,
    family_id: &str,
    expires_at: i64,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO refresh_tokens (id, token_hash, user_id, family_id, expires_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(mercato_kernel::id::new_id("rtk"))
    .bind(hash)
    .bind(user_id)
    .bind(family_id)
    .bind(expires_at)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The refresh token with this hash.
pub async fn refresh_by_hash(tx: &mut Tx, hash: &str) -> Result<Option<RefreshRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, user_id, family_id, expires_at, used_at, revoked_at FROM refresh_tokens \
         WHERE token_hash = $1",
    )
    .bind(hash)
    .fetch_optional(&mut **tx)
    .await
}

/// Marks a token used unless it already was; false when another exchange won.
pub async fn mark_refresh_used(tx: &mut Tx, id: &str, now: i64) -> Result<bool, sqlx::Error> {
    let done =
        sqlx::query("UPDATE refresh_tokens SET used_at = $1 WHERE id = $2 AND used_at IS NULL")
            .bind(now)
            .bind(id)
            .execute(&mut **tx)
            .await?;
    Ok(done.rows_affected() == 1)
}

/// Revokes every token of a family.
pub async fn revoke_family(tx: &mut Tx, family_id: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(family_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Revokes every refresh token of a user.
pub async fn revoke_user(tx: &mut Tx, user_id: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(user_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Stores a single-use email token.
pub async fn insert_email_token(
    tx: &mut Tx,
    hash: &str,
    user_id: &str,
    purpose: &str,
    expires_at: i64,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO email_tokens (id, token_hash, user_id, purpose, expires_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(mercato_kernel::id::new_id("etk"))
    .bind(hash)
    .bind(user_id)
    .bind(purpose)
    .bind(expires_at)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Uses an unexpired, unused email token of `purpose`; returns its user, or `None` when the
/// token is unknown, used, expired or for another purpose.
pub async fn consume_email_token(
    tx: &mut Tx,
    hash: &str,
    purpose: &str,
    now: i64,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE email_tokens SET used_at = $1 WHERE token_hash = $2 AND purpose = $3 \
         AND used_at IS NULL AND expires_at > $1 RETURNING user_id",
    )
    .bind(now)
    .bind(hash)
    .bind(purpose)
    .fetch_optional(&mut **tx)
    .await
}

/// Invalidates the unused tokens of `purpose` of a user (a newer one replaces them).
pub async fn expire_email_tokens(
    tx: &mut Tx,
    user_id: &str,
    purpose: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE email_tokens SET used_at = $1 WHERE user_id = $2 AND purpose = $3 \
         AND used_at IS NULL",
    )
    .bind(now)
    .bind(user_id)
    .bind(purpose)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
