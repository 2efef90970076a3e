//! SQL of the payments database.

use sqlx::{AnyConnection, FromRow};

/// A card token as stored.
#[derive(Debug, Clone, FromRow)]
pub struct CardRow {
    pub token: String,
    pub brand: String,
    pub last4: String,
    pub exp_month: i64,
    pub exp_year: i64,
    pub provider: Option<String>,
    pub provider_method: Option<String>,
    pub owner: String,
    pub created_at: i64,
}

/// Stores a card token.
pub async fn insert_card(conn: &mut AnyConnection, c: &CardRow) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO card_tokens (token, brand, last4, exp_month, exp_year, provider, \
         provider_method, owner, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&c.token)
    .bind(&c.brand)
    .bind(&c.last4)
    .bind(c.exp_month)
    .bind(c.exp_year)
    .bind(&c.provider)
    .bind(&c.provider_method)
    .bind(&c.owner)
    .bind(c.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// One card token.
pub async fn find_card(conn: &mut AnyConnection, token: &str) -> sqlx::Result<Option<CardRow>> {
    sqlx::query_as(
        "SELECT token, brand, last4, exp_month, exp_year, provider, provider_method, owner, \
         created_at FROM card_tokens WHERE token = $1",
    )
    .bind(token)
    .fetch_optional(conn)
    .await
}

/// A payment as stored.
#[derive(Debug, Clone, FromRow)]
pub struct PaymentRow {
    pub id: String,
    pub amount: i64,
    pub currency: String,
    pub status: String,
    pub capture_method: String,
    pub provider: String,
    pub provider_reference: Option<String>,
    pub card_token: Option<String>,
    pub amount_capturable: i64,
    pub amount_captured: i64,
    pub amount_refunded: i64,
    pub customer_email: Option<String>,
    pub metadata: String,
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
    pub owner: String,
    pub created_at: i64,
    pub updated_at: i64,
}

const PAYMENT_COLUMNS: &str = "id, amount, currency, status, capture_method, provider, \
     provider_reference, card_token, amount_capturable, amount_captured, amount_refunded, \
     customer_email, metadata, failure_code, failure_message, owner, created_at, updated_at";

/// Inserts a payment.
pub async fn insert_payment(conn: &mut AnyConnection, p: &PaymentRow) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO payments (id, amount, currency, status, capture_method, provider, \
         provider_reference, card_token, amount_capturable, amount_captured, amount_refunded, \
         customer_email, metadata, failure_code, failure_message, owner, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
    )
    .bind(&p.id)
    .bind(p.amount)
    .bind(&p.currency)
    .bind(&p.status)
    .bind(&p.capture_method)
    .bind(&p.provider)
    .bind(&p.provider_reference)
    .bind(&p.card_token)
    .bind(p.amount_capturable)
    .bind(p.amount_captured)
    .bind(p.amount_refunded)
    .bind(&p.customer_email)
    .bind(&p.metadata)
    .bind(&p.failure_code)
    .bind(&p.failure_message)
    .bind(&p.owner)
    .bind(p.created_at)
    .bind(p.updated_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// One payment.
pub async fn find_payment(conn: &mut AnyConnection, id: &str) -> sqlx::Result<Option<PaymentRow>> {
    let sql = format!("SELECT {PAYMENT_COLUMNS} FROM payments WHERE id = $1");
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// Takes the payment for one provider call when it is in one of `statuses` and no other call
/// holds it; `false` when another request got there first or the status moved on. `to` is the
/// status it holds during the call.
pub async fn claim(
    conn: &mut AnyConnection,
    id: &str,
    statuses: &[&str],
    to: &str,
    now: i64,
    hold_until: i64,
) -> sqlx::Result<bool> {
    // Statuses come from the code, never from input.
    let list = statuses
        .iter()
        .map(|s| format!("'{s}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "UPDATE payments SET status = $2, locked_until = $4, updated_at = $3 \
         WHERE id = $1 AND status IN ({list}) AND locked_until < $3"
    );
    let done = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(to)
        .bind(now)
        .bind(hold_until)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// The outcome of a provider call, written when the call returns; frees the claim.
#[derive(Debug, Clone, Default)]
pub struct Settle<'a> {
    pub status: &'a str,
    pub provider_reference: Option<&'a str>,
    pub amount_capturable: Option<i64>,
    pub amount_captured: Option<i64>,
    pub failure: Option<(&'a str, &'a str)>,
}

/// Writes a call's outcome and frees the claim.
pub async fn settle(
    conn: &mut AnyConnection,
    id: &str,
    s: &Settle<'_>,
    now: i64,
) -> sqlx::Result<()> {
    let (failure_code, failure_message) = s.failure.unzip();
    sqlx::query(
        "UPDATE payments SET status = $2, \
         provider_reference = COALESCE($3, provider_reference), \
         amount_capturable = COALESCE($4, amount_capturable), \
         amount_captured = COALESCE($5, amount_captured), \
         failure_code = COALESCE($6, failure_code), failure_message = COALESCE($7, failure_message), \
         locked_until = 0, updated_at = $8 WHERE id = $1",
    )
    .bind(id)
    .bind(s.status)
    .bind(s.provider_reference)
    .bind(s.amount_capturable)
    .bind(s.amount_captured)
    .bind(failure_code)
    .bind(failure_message)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Frees a claim without changing anything else (the provider could not be reached).
pub async fn release(conn: &mut AnyConnection, id: &str, now: i64) -> sqlx::Result<()> {
    sqlx::query("UPDATE payments SET locked_until = 0, updated_at = $2 WHERE id = $1")
        .bind(id)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

/// Attaches a card to a payment that has none.
pub async fn attach_card(
    conn: &mut AnyConnection,
    id: &str,
    token: &str,
    now: i64,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE payments SET card_token = $2, status = 'requires_confirmation', updated_at = $3 \
         WHERE id = $1 AND status = 'requires_payment_method'",
    )
    .bind(id)
    .bind(token)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Reserves `amount` of the captured money for a refund; `false` when that would exceed it
/// (or the payment is not succeeded).
pub async fn reserve_refund(
    conn: &mut AnyConnection,
    id: &str,
    amount: i64,
    now: i64,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE payments SET amount_refunded = amount_refunded + $2, updated_at = $3 \
         WHERE id = $1 AND status = 'succeeded' AND amount_refunded + $2 <= amount_captured",
    )
    .bind(id)
    .bind(amount)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Gives back a reserved refund amount after the provider refused the refund.
pub async fn unreserve_refund(
    conn: &mut AnyConnection,
    id: &str,
    amount: i64,
    now: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE payments SET amount_refunded = amount_refunded - $2, updated_at = $3 WHERE id = $1",
    )
    .bind(id)
    .bind(amount)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// A provider call as recorded.
#[derive(Debug, Clone, FromRow)]
pub struct AttemptRow {
    pub id: String,
    pub payment_id: String,
    pub operation: String,
    pub provider: String,
    pub idempotency_key: String,
    pub outcome: String,
    pub code: Option<String>,
    pub message: Option<String>,
    pub reference: Option<String>,
    pub duration_ms: i64,
    pub created_at: i64,
}

/// Records a provider call.
pub async fn insert_attempt(conn: &mut AnyConnection, a: &AttemptRow) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO payment_attempts (id, payment_id, operation, provider, idempotency_key, \
         outcome, code, message, reference, duration_ms, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&a.id)
    .bind(&a.payment_id)
    .bind(&a.operation)
    .bind(&a.provider)
    .bind(&a.idempotency_key)
    .bind(&a.outcome)
    .bind(&a.code)
    .bind(&a.message)
    .bind(&a.reference)
    .bind(a.duration_ms)
    .bind(a.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// A payment's provider calls, oldest first.
pub async fn attempts_of(
    conn: &mut AnyConnection,
    payment_id: &str,
) -> sqlx::Result<Vec<AttemptRow>> {
    sqlx::query_as(
        "SELECT id, payment_id, operation, provider, idempotency_key, outcome, code, message, \
         reference, duration_ms, created_at FROM payment_attempts WHERE payment_id = $1 ORDER BY id",
    )
    .bind(payment_id)
    .fetch_all(conn)
    .await
}

/// A refund as stored.
#[derive(Debug, Clone, FromRow)]
pub struct RefundRow {
    pub id: String,
    pub payment_id: String,
    pub amount: i64,
    pub reason: Option<String>,
    pub status: String,
    pub provider_reference: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Inserts a refund.
pub async fn insert_refund(conn: &mut AnyConnection, r: &RefundRow) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO refunds (id, payment_id, amount, reason, status, provider_reference, \
         created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&r.id)
    .bind(&r.payment_id)
    .bind(r.amount)
    .bind(&r.reason)
    .bind(&r.status)
    .bind(&r.provider_reference)
    .bind(r.created_at)
    .bind(r.updated_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Sets a refund's outcome.
pub async fn settle_refund(
    conn: &mut AnyConnection,
    id: &str,
    status: &str,
    provider_reference: Option<&str>,
    now: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE refunds SET status = $2, provider_reference = COALESCE($3, provider_reference), \
         updated_at = $4 WHERE id = $1",
    )
    .bind(id)
    .bind(status)
    .bind(provider_reference)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// A payment's refunds, oldest first.
pub async fn refunds_of(
    conn: &mut AnyConnection,
    payment_id: &str,
) -> sqlx::Result<Vec<RefundRow>> {
    sqlx::query_as(
        "SELECT id, payment_id, amount, reason, status, provider_reference, created_at, \
         updated_at FROM refunds WHERE payment_id = $1 ORDER BY id",
    )
    .bind(payment_id)
    .fetch_all(conn)
    .await
}
