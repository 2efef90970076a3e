//! SQL of the `idempotency_keys` table; one text serves SQLite and PostgreSQL.

use mercato_store::Db;

/// State of a row whose first request is still running.
pub(super) const IN_PROGRESS: &str = "in_progress";
/// State of a row holding the stored response.
pub(super) const COMPLETED: &str = "completed";

/// Which key of which caller a row belongs to, and the lease of the request running it.
#[derive(Debug, Clone)]
pub(super) struct Slot {
    pub scope: String,
    pub key: String,
    pub lease: String,
}

/// A row as read back when a key is seen again.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct Row {
    pub fingerprint: String,
    pub state: String,
    pub lease: String,
    pub response_status: Option<i64>,
    pub response_headers: Option<String>,
    pub response_body: Option<String>,
    pub created_at: i64,
    pub locked_at: i64,
}

/// Inserts an `in_progress` row; false when the key is already taken.
pub(super) async fn insert(
    db: &Db,
    slot: &Slot,
    fingerprint: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO idempotency_keys \
         (scope, idempotency_key, fingerprint, state, lease, created_at, locked_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $6) \
         ON CONFLICT (scope, idempotency_key) DO NOTHING",
    )
    .bind(&slot.scope)
    .bind(&slot.key)
    .bind(fingerprint)
    .bind(IN_PROGRESS)
    .bind(&slot.lease)
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The row of a key, if any.
pub(super) async fn find(db: &Db, scope: &str, key: &str) -> Result<Option<Row>, sqlx::Error> {
    sqlx::query_as::<_, Row>(
        "SELECT fingerprint, state, lease, response_status, response_headers, response_body, \
         created_at, locked_at FROM idempotency_keys WHERE scope = $1 AND idempotency_key = $2",
    )
    .bind(scope)
    .bind(key)
    .fetch_optional(db.pool())
    .await
}

/// Moves a stale `in_progress` row from the lease `old` to `slot`; false if another request
/// got there first.
pub(super) async fn take_over(
    db: &Db,
    slot: &Slot,
    old: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE idempotency_keys SET lease = $1, locked_at = $2 \
         WHERE scope = $3 AND idempotency_key = $4 AND state = $5 AND lease = $6",
    )
    .bind(&slot.lease)
    .bind(now)
    .bind(&slot.scope)
    .bind(&slot.key)
    .bind(IN_PROGRESS)
    .bind(old)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Stores the response of the request holding the lease; false if it lost the lease.
pub(super) async fn complete(
    db: &Db,
    slot: &Slot,
    status: i64,
    headers: &str,
    body: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE idempotency_keys SET state = $1, response_status = $2, response_headers = $3, \
         response_body = $4, locked_at = $5 \
         WHERE scope = $6 AND idempotency_key = $7 AND state = $8 AND lease = $9",
    )
    .bind(COMPLETED)
    .bind(status)
    .bind(headers)
    .bind(body)
    .bind(now)
    .bind(&slot.scope)
    .bind(&slot.key)
    .bind(IN_PROGRESS)
    .bind(&slot.lease)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes the `in_progress` row of the lease, so that a retry runs the request again.
pub(super) async fn release(db: &Db, slot: &Slot) -> Result<(), sqlx::Error> {
    sqlx::query(
        "DELETE FROM idempotency_keys \
         WHERE scope = $1 AND idempotency_key = $2 AND state = $3 AND lease = $4",
    )
    .bind(&slot.scope)
    .bind(&slot.key)
    .bind(IN_PROGRESS)
    .bind(&slot.lease)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Deletes one key's row if it was created before `cutoff`.
pub(super) async fn delete_expired(
    db: &Db,
    scope: &str,
    key: &str,
    cutoff: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "DELETE FROM idempotency_keys \
         WHERE scope = $1 AND idempotency_key = $2 AND created_at < $3",
    )
    .bind(scope)
    .bind(key)
    .bind(cutoff)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Deletes every row created before `cutoff`; returns how many.
pub(super) async fn purge(db: &Db, cutoff: i64) -> Result<u64, sqlx::Error> {
    let done = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
        .bind(cutoff)
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected())
}
