//! Payment analytics: volume and counts by day, currency, provider and status; success and
//! refund rates; average ticket; risk decisions.

use std::collections::BTreeMap;

use mercato_store::Db;
use serde::Serialize;

/// One group of payments.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Bucket {
    /// Days since the Unix epoch (UTC).
    pub day: i64,
    /// ISO 4217.
    pub currency: String,
    /// Provider.
    pub provider: String,
    /// Payment status.
    pub status: String,
    /// Payments.
    pub count: i64,
    /// Sum of their amounts, minor units.
    pub volume: i64,
    /// Captured.
    pub captured: i64,
    /// Refunded.
    pub refunded: i64,
}

/// Figures of one currency.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct CurrencyFigures {
    /// Payments.
    pub count: i64,
    /// Succeeded payments.
    pub succeeded: i64,
    /// Failed payments.
    pub failed: i64,
    /// Captured, minor units.
    pub captured: i64,
    /// Refunded, minor units.
    pub refunded: i64,
    /// Succeeded ÷ (succeeded + failed), 0 to 1.
    pub success_rate: f64,
    /// Refunded ÷ captured, 0 to 1.
    pub refund_rate: f64,
    /// Captured ÷ succeeded, minor units.
    pub average_ticket: i64,
}

/// The report.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Report {
    /// First day included (days since the epoch).
    pub from_day: i64,
    /// Per day, currency, provider and status.
    pub buckets: Vec<Bucket>,
    /// Per currency.
    pub by_currency: BTreeMap<String, CurrencyFigures>,
    /// Risk decisions: `allow`, `review`, `block` → payments.
    pub risk_decisions: BTreeMap<String, i64>,
}

const DAY: i64 = 86_400_000_000;

/// The last `days` days up to `now` (micros).
pub async fn report(db: &Db, now: i64, days: i64) -> Result<Report, sqlx::Error> {
    let from_day = now / DAY - (days - 1);
    let since = from_day * DAY;
    let mut conn = db.pool().acquire().await?;
    let buckets: Vec<Bucket> = sqlx::query_as(
        "SELECT created_at / 86400000000 AS day, currency, provider, status, \
         CAST(COUNT(*) AS BIGINT) AS count, CAST(SUM(amount) AS BIGINT) AS volume, \
         CAST(SUM(amount_captured) AS BIGINT) AS captured, \
         CAST(SUM(amount_refunded) AS BIGINT) AS refunded \
         FROM payments WHERE created_at >= $1 \
         GROUP BY created_at / 86400000000, currency, provider, status \
         ORDER BY day, currency, provider, status",
    )
    .bind(since)
    .fetch_all(&mut *conn)
    .await?;
    let decisions: Vec<(String, i64)> = sqlx::query_as(
        "SELECT risk_decision, CAST(COUNT(*) AS BIGINT) FROM payments \
         WHERE created_at >= $1 AND risk_decision IS NOT NULL GROUP BY risk_decision",
    )
    .bind(since)
    .fetch_all(&mut *conn)
    .await?;
    let mut by_currency: BTreeMap<String, CurrencyFigures> = BTreeMap::new();
    for b in &buckets {
        let f = by_currency.entry(b.currency.clone()).or_default();
        f.count += b.count;
        f.captured += b.captured;
        f.refunded += b.refunded;
        match b.status.as_str() {
            "succeeded" => f.succeeded += b.count,
            "failed" => f.failed += b.count,
            _ => {}
        }
    }
    for f in by_currency.values_mut() {
        let decided = f.succeeded + f.failed;
        f.success_rate = ratio(f.succeeded, decided);
        f.refund_rate = ratio(f.refunded, f.captured);
        f.average_ticket = if f.succeeded > 0 {
            f.captured / f.succeeded
        } else {
            0
        };
    }
    Ok(Report {
        from_day,
        buckets,
        by_currency,
        risk_decisions: decisions.into_iter().collect(),
    })
}

fn ratio(part: i64, whole: i64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        // Counts and minor-unit sums stay far below 2^53.
        part as f64 / whole as f64
    }
}
