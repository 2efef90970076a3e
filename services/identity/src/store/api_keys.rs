//! API keys: SQL, secret generation, and the resolver that turns `Bearer mk_…` into claims.

use mercato_kernel::auth::{AuthError, Claims, ResolveFuture, Scope, hash_api_key};
use mercato_kernel::pagination::PageRequest;
use mercato_store::{Db, now_micros};
use sqlx::{AnyConnection, FromRow};
use subtle::ConstantTimeEq;

/// Every secret starts with this.
pub const SECRET_PREFIX: &str = "mk_live_";
/// Length of a secret: the prefix and 32 random bytes in hex.
pub const SECRET_LEN: usize = SECRET_PREFIX.len() + 64;
/// Length of the stored, non-secret display prefix (`mk_live_` + 8 hex characters).
pub const DISPLAY_PREFIX_LEN: usize = SECRET_PREFIX.len() + 8;
/// `last_used_at` is written at most this often per key, in microseconds.
const TOUCH_INTERVAL_MICROS: i64 = 60 * 1_000_000;
/// How long resolved claims are valid, in seconds (a cache may keep them that long).
const CLAIMS_LIFETIME_SECONDS: i64 = 60;

/// A new secret: `mk_live_` + 32 random bytes in lowercase hex.
pub fn new_secret() -> String {
    format!("{SECRET_PREFIX}{}", hex::encode(rand::random::<[u8; 32]>()))
}

/// An API key as stored (no secret, no hash).
#[derive(Debug, Clone, FromRow)]
pub struct ApiKeyRow {
    /// `key_…`.
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// Label chosen by the owner.
    pub name: String,
    /// Display prefix of the secret.
    pub prefix: String,
    /// JSON array of scopes.
    pub scopes: String,
    /// Epoch microseconds, if the key expires.
    pub expires_at: Option<i64>,
    /// Epoch microseconds, at most a minute stale.
    pub last_used_at: Option<i64>,
    /// Epoch microseconds.
    pub created_at: i64,
}

impl ApiKeyRow {
    /// The key's scopes.
    pub fn scope_names(&self) -> Vec<String> {
        serde_json::from_str(&self.scopes).unwrap_or_default()
    }
}

/// Inserts a key with the hash of its secret.
pub async fn insert(
    conn: &mut AnyConnection,
    key: &ApiKeyRow,
    secret_hash: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO api_keys (id, user_id, name, prefix, secret_hash, scopes, expires_at, \
         created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&key.id)
    .bind(&key.user_id)
    .bind(&key.name)
    .bind(&key.prefix)
    .bind(secret_hash)
    .bind(&key.scopes)
    .bind(key.expires_at)
    .bind(key.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// The user's keys that are not revoked, by id, after the cursor.
pub async fn list_for_user(
    conn: &mut AnyConnection,
    user_id: &str,
    page: &PageRequest,
) -> Result<Vec<ApiKeyRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, user_id, name, prefix, scopes, expires_at, last_used_at, created_at \
         FROM api_keys WHERE user_id = $1 AND revoked_at IS NULL AND id > $2 \
         ORDER BY id LIMIT $3",
    )
    .bind(user_id)
    .bind(page.after.as_deref().unwrap_or(""))
    .bind(page.fetch_limit())
    .fetch_all(conn)
    .await
}

/// Revokes one of the user's keys; false when the user has no such live key.
pub async fn revoke(
    conn: &mut AnyConnection,
    user_id: &str,
    id: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE api_keys SET revoked_at = $1 WHERE user_id = $2 AND id = $3 \
         AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(user_id)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

#[derive(FromRow)]
struct Candidate {
    id: String,
    user_id: String,
    secret_hash: String,
    scopes: String,
    expires_at: Option<i64>,
    last_used_at: Option<i64>,
    revoked_at: Option<i64>,
    roles: String,
    disabled_at: Option<i64>,
}

/// The claims of a valid key: unknown, revoked and expired keys and keys of disabled users
/// are `None`. Records the use (at most once a minute per key).
pub async fn resolve(db: &Db, secret: &str) -> Result<Option<Claims>, sqlx::Error> {
    if secret.len() != SECRET_LEN || !secret.starts_with(SECRET_PREFIX) || !secret.is_ascii() {
        return Ok(None);
    }
    let candidates: Vec<Candidate> = sqlx::query_as(
        "SELECT k.id, k.user_id, k.secret_hash, k.scopes, k.expires_at, k.last_used_at, \
         k.revoked_at, u.roles, u.disabled_at FROM api_keys k JOIN users u ON u.id = k.user_id \
         WHERE k.prefix = $1",
    )
    .bind(&secret[..DISPLAY_PREFIX_LEN])
    .fetch_all(db.pool())
    .await?;
    let hash = hash_api_key(secret);
    let Some(key) = candidates
        .into_iter()
        .find(|c| bool::from(c.secret_hash.as_bytes().ct_eq(hash.as_bytes())))
    else {
        return Ok(None);
    };
    let now = now_micros();
    if key.revoked_at.is_some()
        || key.disabled_at.is_some()
        || key.expires_at.is_some_and(|at| at <= now)
    {
        return Ok(None);
    }
    if key
        .last_used_at
        .is_none_or(|at| at < now - TOUCH_INTERVAL_MICROS)
    {
        sqlx::query(
            "UPDATE api_keys SET last_used_at = $1 WHERE id = $2 \
             AND (last_used_at IS NULL OR last_used_at < $3)",
        )
        .bind(now)
        .bind(&key.id)
        .bind(now - TOUCH_INTERVAL_MICROS)
        .execute(db.pool())
        .await?;
    }
    Ok(Some(claims_of(key, now)))
}

/// A key's claims: its scopes, and its owner's current roles, without `staff`/`admin`
/// unless the key holds the `admin` scope.
fn claims_of(key: Candidate, now_micros: i64) -> Claims {
    let scopes: Vec<String> = serde_json::from_str(&key.scopes).unwrap_or_default();
    let privileged = scopes.iter().any(|s| s == Scope::Admin.as_str());
    let roles: Vec<String> = serde_json::from_str::<Vec<String>>(&key.roles)
        .unwrap_or_default()
        .into_iter()
        .filter(|r| privileged || (r != "staff" && r != "admin"))
        .collect();
    let now = now_micros / 1_000_000;
    let mut exp = now + CLAIMS_LIFETIME_SECONDS;
    if let Some(expires_at) = key.expires_at {
        exp = exp.min(expires_at / 1_000_000);
    }
    Claims {
        sub: key.user_id,
        roles,
        exp,
        iat: now,
        jti: Some(key.id),
        scopes,
        ..Claims::default()
    }
}

/// Resolves API keys against the identity database; installed on the process's
/// authenticator when identity starts.
#[derive(Debug, Clone)]
pub struct DbApiKeyResolver {
    db: Db,
}

impl DbApiKeyResolver {
    /// A resolver over identity's database.
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

impl mercato_kernel::auth::ApiKeyResolver for DbApiKeyResolver {
    fn resolve<'a>(&'a self, secret: &'a str) -> ResolveFuture<'a> {
        Box::pin(async move {
            resolve(&self.db, secret).await.map_err(|e| {
                tracing::warn!(error = %e, "resolving an api key failed");
                AuthError::IdentityUnavailable
            })
        })
    }
}
