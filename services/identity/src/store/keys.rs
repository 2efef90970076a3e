//! The `signing_keys` table.

use mercato_store::{Db, Tx};
use sqlx::FromRow;

/// A stored signing key.
#[derive(Debug, Clone, FromRow)]
pub struct KeyRow {
    /// Key id, the JWT header `kid`.
    pub kid: String,
    /// PKCS#8 DER, standard base64.
    pub private_pkcs8: String,
    /// Raw public key, base64url.
    pub public_key: String,
    /// Epoch microseconds.
    pub created_at: i64,
    /// When a newer key took over (epoch microseconds).
    pub retired_at: Option<i64>,
}

/// Keys still published: unretired ones, and those retired after `retired_after`; newest first.
pub async fn published(db: &Db, retired_after: i64) -> Result<Vec<KeyRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT kid, private_pkcs8, public_key, created_at, retired_at FROM signing_keys \
         WHERE retired_at IS NULL OR retired_at > $1 ORDER BY created_at DESC, kid DESC",
    )
    .bind(retired_after)
    .fetch_all(db.pool())
    .await
}

/// Stores a key.
pub async fn insert(tx: &mut Tx, key: &KeyRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO signing_keys (kid, private_pkcs8, public_key, created_at, retired_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&key.kid)
    .bind(&key.private_pkcs8)
    .bind(&key.public_key)
    .bind(key.created_at)
    .bind(key.retired_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Retires every active key.
pub async fn retire_active(tx: &mut Tx, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL")
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
