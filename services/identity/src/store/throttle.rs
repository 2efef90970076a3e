//! `login_failures` and `lockouts`.

use mercato_store::Db;

/// When the lock under `key` ends (past or future), if one was ever taken.
pub async fn locked_until(db: &Db, key: &str) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT locked_until FROM lockouts WHERE lock_key = $1")
        .bind(key)
        .fetch_optional(db.pool())
        .await
}

/// Sets the lock under `key`.
pub async fn lock(db: &Db, key: &str, until: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO lockouts (lock_key, locked_until) VALUES ($1, $2) \
         ON CONFLICT (lock_key) DO UPDATE SET locked_until = EXCLUDED.locked_until",
    )
    .bind(key)
    .bind(until)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Records a failed login.
pub async fn record_failure(
    db: &Db,
    account: &str,
    ip: Option<&str>,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO login_failures (id, account, ip, at) VALUES ($1, $2, $3, $4)")
        .bind(mercato_kernel::id::new_id("lgf"))
        .bind(account)
        .bind(ip)
        .bind(now)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Forgets failures older than `before`: they no longer count in any window.
pub async fn prune(db: &Db, before: i64) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM login_failures WHERE at < $1")
        .bind(before)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Failures of an account since `since`.
pub async fn account_failures(db: &Db, account: &str, since: i64) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM login_failures WHERE account = $1 AND at > $2")
        .bind(account)
        .bind(since)
        .fetch_one(db.pool())
        .await
}

/// Failures from an IP since `since`.
pub async fn ip_failures(db: &Db, ip: &str, since: i64) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM login_failures WHERE ip = $1 AND at > $2")
        .bind(ip)
        .bind(since)
        .fetch_one(db.pool())
        .await
}

/// Forgets an account's failures after a successful login or a password reset.
pub async fn clear_account(db: &Db, account: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM login_failures WHERE account = $1")
        .bind(account)
        .execute(db.pool())
        .await?;
    sqlx::query("DELETE FROM lockouts WHERE lock_key = $1")
        .bind(format!("account:{account}"))
        .execute(db.pool())
        .await?;
    Ok(())
}
