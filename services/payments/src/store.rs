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
    pub fingerprint: String,
    pub owner: String,
    pub created_at: i64,
}

/// Stores a card token.
pub async fn insert_card(conn: &mut AnyConnection, c: &CardRow) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO card_tokens (token, brand, last4, exp_month, exp_year, fingerprint, owner, \
         created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&c.token)
    .bind(&c.brand)
    .bind(&c.last4)
    .bind(c.exp_month)
    .bind(c.exp_year)
    .bind(&c.fingerprint)
    .bind(&c.owner)
    .bind(c.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// One card token.
pub async fn find_card(conn: &mut AnyConnection, token: &str) -> sqlx::Result<Option<CardRow>> {
    sqlx::query_as(
        "SELECT token, brand, last4, exp_month, exp_year, fingerprint, owner, created_at \
         FROM card_tokens WHERE token = $1",
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
    pub provider_pinned: i64,
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
     provider_pinned, provider_reference, card_token, amount_capturable, amount_captured, amount_refunded, \
     customer_email, metadata, failure_code, failure_message, owner, created_at, updated_at";

/// Inserts a payment.
pub async fn insert_payment(conn: &mut AnyConnection, p: &PaymentRow) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO payments (id, amount, currency, status, capture_method, provider, \
         provider_reference, card_token, amount_capturable, amount_captured, amount_refunded, \
         customer_email, metadata, failure_code, failure_message, owner, created_at, updated_at, \
         provider_pinned) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)",
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
    .bind(p.provider_pinned)
    .execute(conn)
    .await?;
    Ok(())
}

impl PaymentRow {
    /// Whether the creator named the provider (no route or failover applies).
    pub fn provider_explicit(&self) -> bool {
        self.provider_pinned == 1
    }
}

/// One payment.
pub async fn find_payment(conn: &mut AnyConnection, id: &str) -> sqlx::Result<Option<PaymentRow>> {
    let sql = format!("SELECT {PAYMENT_COLUMNS} FROM payments WHERE id = $1");
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// Ids of the newest payments, optionally only those in `status`, newest first.
pub async fn recent_payments(
    conn: &mut AnyConnection,
    status: Option<&str>,
    limit: i64,
) -> sqlx::Result<Vec<String>> {
    let rows: Vec<(String,)> = match status {
        Some(status) => sqlx::query_as(
            "SELECT id FROM payments WHERE status = $1 ORDER BY created_at DESC, id DESC LIMIT $2",
        )
        .bind(status)
        .bind(limit)
        .fetch_all(conn)
        .await?,
        None => {
            sqlx::query_as("SELECT id FROM payments ORDER BY created_at DESC, id DESC LIMIT $1")
                .bind(limit)
                .fetch_all(conn)
                .await?
        }
    };
    Ok(rows.into_iter().map(|(id,)| id).collect())
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

/// Records that `provider` holds the card as `provider_method` (empty: the provider needs
/// nothing beyond the platform's token).
pub async fn insert_vault(
    conn: &mut AnyConnection,
    token: &str,
    provider: &str,
    provider_method: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO card_vaults (token, provider, provider_method) VALUES ($1, $2, $3) \
         ON CONFLICT (token, provider) DO NOTHING",
    )
    .bind(token)
    .bind(provider)
    .bind(provider_method)
    .execute(conn)
    .await?;
    Ok(())
}

/// The providers that can charge a card, with their id for it.
pub async fn vaults_of(
    conn: &mut AnyConnection,
    token: &str,
) -> sqlx::Result<Vec<(String, String)>> {
    sqlx::query_as("SELECT provider, provider_method FROM card_vaults WHERE token = $1")
        .bind(token)
        .fetch_all(conn)
        .await
}

/// What risk rules and routing read of a payment beyond [`PaymentRow`].
#[derive(Debug, Clone, Default, FromRow)]
pub struct RiskRow {
    pub ip: Option<String>,
    pub billing_country: Option<String>,
    pub shipping_country: Option<String>,
    pub fingerprint: Option<String>,
    pub risk_score: Option<i64>,
    pub risk_decision: Option<String>,
    pub risk_reasons: Option<String>,
    pub review_decision: Option<String>,
    pub reviewed_by: Option<String>,
    pub disputed: i64,
}

/// The risk fields of a payment.
pub async fn risk_of(conn: &mut AnyConnection, id: &str) -> sqlx::Result<RiskRow> {
    let row: Option<RiskRow> = sqlx::query_as(
        "SELECT ip, billing_country, shipping_country, fingerprint, risk_score, risk_decision, \
         risk_reasons, review_decision, reviewed_by, disputed FROM payments WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(row.unwrap_or_default())
}

/// Writes the request's risk inputs at creation.
pub async fn set_risk_inputs(conn: &mut AnyConnection, id: &str, r: &RiskRow) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE payments SET ip = $2, billing_country = $3, shipping_country = $4, \
         fingerprint = $5 WHERE id = $1",
    )
    .bind(id)
    .bind(&r.ip)
    .bind(&r.billing_country)
    .bind(&r.shipping_country)
    .bind(&r.fingerprint)
    .execute(conn)
    .await?;
    Ok(())
}

/// Stores an assessment.
pub async fn set_assessment(
    conn: &mut AnyConnection,
    id: &str,
    score: i64,
    decision: &str,
    reasons: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE payments SET risk_score = $2, risk_decision = $3, risk_reasons = $4 WHERE id = $1",
    )
    .bind(id)
    .bind(score)
    .bind(decision)
    .bind(reasons)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records a staff review decision and moves the payment on; `false` when it was not
/// waiting for one.
pub async fn review(
    conn: &mut AnyConnection,
    id: &str,
    decision: &str,
    to: &str,
    reviewer: &str,
    now: i64,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE payments SET review_decision = $2, status = $3, reviewed_by = $4, updated_at = $5 \
         WHERE id = $1 AND status = 'requires_review'",
    )
    .bind(id)
    .bind(decision)
    .bind(to)
    .bind(reviewer)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Payments in the last `since` micros with `column` = `value`, other than `id`.
pub async fn recent_count(
    conn: &mut AnyConnection,
    column: &'static str,
    value: &str,
    since: i64,
    id: &str,
) -> sqlx::Result<i64> {
    // `column` is one of the code's own names, never input.
    let sql = format!(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM payments WHERE {column} = $1 AND created_at > $2 AND id <> $3"
    );
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(value)
        .bind(since)
        .bind(id)
        .fetch_one(conn)
        .await
}

/// Succeeded payments of `email` in `currency`: how many and their average captured amount.
pub async fn history(
    conn: &mut AnyConnection,
    email: &str,
    currency: &str,
) -> sqlx::Result<(i64, i64)> {
    sqlx::query_as(
        "SELECT CAST(COUNT(*) AS BIGINT), CAST(COALESCE(AVG(amount_captured), 0) AS BIGINT) \
         FROM payments WHERE customer_email = $1 AND currency = $2 AND status = 'succeeded'",
    )
    .bind(email)
    .bind(currency)
    .fetch_one(conn)
    .await
}

/// Which of the given `(kind, value)` pairs are on the blocklist.
pub async fn blocked(
    conn: &mut AnyConnection,
    candidates: &[(&str, String)],
) -> sqlx::Result<Vec<String>> {
    let mut hits = Vec::new();
    for (kind, value) in candidates {
        let found: Option<String> =
            sqlx::query_scalar("SELECT kind FROM risk_blocklist WHERE kind = $1 AND value = $2")
                .bind(*kind)
                .bind(value)
                .fetch_optional(&mut *conn)
                .await?;
        if found.is_some() {
            hits.push((*kind).to_owned());
        }
    }
    Ok(hits)
}

/// A blocklist entry.
#[derive(Debug, Clone, FromRow)]
pub struct BlockRow {
    pub kind: String,
    pub value: String,
    pub reason: Option<String>,
    pub created_by: String,
    pub created_at: i64,
}

/// Adds (or replaces) a blocklist entry.
pub async fn insert_block(conn: &mut AnyConnection, b: &BlockRow) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO risk_blocklist (kind, value, reason, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (kind, value) DO UPDATE SET reason = $3",
    )
    .bind(&b.kind)
    .bind(&b.value)
    .bind(&b.reason)
    .bind(&b.created_by)
    .bind(b.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// The blocklist, newest first.
pub async fn blocklist(conn: &mut AnyConnection) -> sqlx::Result<Vec<BlockRow>> {
    sqlx::query_as(
        "SELECT kind, value, reason, created_by, created_at FROM risk_blocklist \
         ORDER BY created_at DESC LIMIT 1000",
    )
    .fetch_all(conn)
    .await
}

/// Removes a blocklist entry; `false` when there was none.
pub async fn delete_block(conn: &mut AnyConnection, kind: &str, value: &str) -> sqlx::Result<bool> {
    let done = sqlx::query("DELETE FROM risk_blocklist WHERE kind = $1 AND value = $2")
        .bind(kind)
        .bind(value)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Records a webhook delivery; `false` when it was seen before.
pub async fn record_webhook(
    conn: &mut AnyConnection,
    provider: &str,
    event_id: &str,
    kind: &str,
    now: i64,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "INSERT INTO webhook_events (provider, event_id, kind, received_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (provider, event_id) DO NOTHING",
    )
    .bind(provider)
    .bind(event_id)
    .bind(kind)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The payment a provider's charge reference belongs to.
pub async fn payment_by_reference(
    conn: &mut AnyConnection,
    provider: &str,
    reference: &str,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT id FROM payments WHERE provider = $1 AND provider_reference = $2")
        .bind(provider)
        .bind(reference)
        .fetch_optional(conn)
        .await
}

/// The refund a provider's refund reference belongs to.
pub async fn refund_by_reference(
    conn: &mut AnyConnection,
    reference: &str,
) -> sqlx::Result<Option<RefundRow>> {
    sqlx::query_as(
        "SELECT id, payment_id, amount, reason, status, provider_reference, created_at, \
         updated_at FROM refunds WHERE provider_reference = $1",
    )
    .bind(reference)
    .fetch_optional(conn)
    .await
}

/// Marks a payment disputed.
pub async fn mark_disputed(conn: &mut AnyConnection, id: &str, now: i64) -> sqlx::Result<()> {
    sqlx::query("UPDATE payments SET disputed = 1, updated_at = $2 WHERE id = $1")
        .bind(id)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

/// Moves a payment whose charge outcome was unknown to what the provider reported.
pub async fn resolve_processing(
    conn: &mut AnyConnection,
    id: &str,
    s: &Settle<'_>,
    now: i64,
) -> sqlx::Result<bool> {
    let (failure_code, failure_message) = s.failure.unzip();
    let done = sqlx::query(
        "UPDATE payments SET status = $2, amount_capturable = COALESCE($3, amount_capturable), \
         amount_captured = COALESCE($4, amount_captured), failure_code = COALESCE($5, failure_code), \
         failure_message = COALESCE($6, failure_message), locked_until = 0, updated_at = $7 \
         WHERE id = $1 AND status = 'processing'",
    )
    .bind(id)
    .bind(s.status)
    .bind(s.amount_capturable)
    .bind(s.amount_captured)
    .bind(failure_code)
    .bind(failure_message)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Sets the provider that serves a payment (after a failover).
pub async fn set_provider(conn: &mut AnyConnection, id: &str, provider: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE payments SET provider = $2 WHERE id = $1")
        .bind(id)
        .bind(provider)
        .execute(conn)
        .await?;
    Ok(())
}

/// A service key, made on first use.
pub async fn service_key(
    conn: &mut AnyConnection,
    name: &str,
    fresh: &str,
    now: i64,
) -> sqlx::Result<String> {
    sqlx::query(
        "INSERT INTO service_keys (name, value, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(fresh)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    sqlx::query_scalar("SELECT value FROM service_keys WHERE name = $1")
        .bind(name)
        .fetch_one(conn)
        .await
}
