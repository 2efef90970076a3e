//! The transactional outbox: [`enqueue`] in the business transaction, [`Relay`] to publish.

use std::time::Duration;

use mercato_store::{Backend, Db, Tx, now_micros};
use sqlx::{AnyConnection, Row};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::consumer::{Backoff, sleep_or_shutdown};
use crate::{Bus, BusError, Event, RawEvent};

/// Wakes the relays of this process when something is enqueued. One for all databases: a
/// spurious wake-up costs one cheap query.
static ENQUEUED: Notify = Notify::const_new();

const DEFAULT_BATCH: usize = 100;
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// `enqueue` notifies before its transaction commits, so right after a wake-up the row may
/// not be visible yet: look again a few times at this pace before falling back to polling.
const EAGER_DELAY: Duration = Duration::from_millis(3);
const EAGER_LOOKS: u32 = 10;
/// Sent rows are kept this long (for inspection and replay), then pruned.
const RETENTION: Duration = Duration::from_secs(24 * 3600);
const PRUNE_EVERY: Duration = Duration::from_secs(300);

/// Writes `event` to the outbox inside the caller's transaction; the relay publishes it after
/// the commit. Enqueueing an id already in the outbox is a no-op.
pub async fn enqueue(tx: &mut Tx, event: &Event) -> Result<(), BusError> {
    event.validate()?;
    let payload = serde_json::to_string(event)?;
    sqlx::query(
        "INSERT INTO outbox (id, subject, payload, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(&event.id)
    .bind(&event.kind)
    .bind(payload)
    .bind(now_micros())
    .execute(&mut **tx)
    .await?;
    ENQUEUED.notify_waiters();
    Ok(())
}

/// Publishes committed outbox rows of one service database, in order.
pub struct Relay {
    db: Db,
    bus: Bus,
    batch_size: usize,
}

impl Relay {
    /// A relay from `db`'s outbox to `bus`.
    pub fn new(db: Db, bus: Bus) -> Self {
        Self {
            db,
            bus,
            batch_size: DEFAULT_BATCH,
        }
    }

    /// Sets how many rows one [`Relay::run_once`] publishes at most (default 100).
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.clamp(1, 1000);
        self
    }

    /// Publishes up to a batch of unsent rows in order, marks them sent, returns how many.
    pub async fn run_once(&self) -> Result<usize, BusError> {
        match self.db.backend() {
            // Rows stay locked until they are marked sent, so a second relay replica waits
            // instead of publishing the same rows or overtaking them: one publisher at a time
            // keeps the order. (SKIP LOCKED would let replicas publish later rows first.)
            Backend::Postgres => {
                let mut tx = self.db.begin().await?;
                let rows = unsent(&mut tx, self.batch_size, " FOR UPDATE").await?;
                let published = self.publish(&mut tx, rows).await?;
                tx.commit().await?;
                Ok(published)
            }
            // SQLite has one writer: a transaction here would block the service's writes while
            // the bus acknowledges. A second relay on the same file can at worst publish a row
            // twice, which the bus deduplicates by event id.
            Backend::Sqlite => {
                let mut conn = self.db.pool().acquire().await?;
                let rows = unsent(&mut conn, self.batch_size, "").await?;
                self.publish(&mut conn, rows).await
            }
        }
    }

    async fn publish(
        &self,
        conn: &mut AnyConnection,
        rows: Vec<(i64, RawEvent)>,
    ) -> Result<usize, BusError> {
        if rows.is_empty() {
            return Ok(0);
        }
        let (seqs, events): (Vec<i64>, Vec<RawEvent>) = rows.into_iter().unzip();
        self.bus.publish_raw(events).await?;
        mark_sent(conn, &seqs).await?;
        tracing::debug!(published = seqs.len(), "outbox relayed");
        Ok(seqs.len())
    }

    /// Runs the relay until `shutdown`: publishes while rows are waiting, then sleeps until
    /// an [`enqueue`] in this process or the poll interval; backs off on errors.
    pub fn spawn(self, shutdown: CancellationToken, tasks: &TaskTracker) {
        tasks.spawn(async move { self.run(shutdown).await });
    }

    async fn run(self, shutdown: CancellationToken) {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let mut eager_looks = 0;
        let mut pruned_at = Instant::now();
        while !shutdown.is_cancelled() {
            // Registered before looking, so an enqueue during the query is not missed.
            let enqueued = ENQUEUED.notified();
            tokio::pin!(enqueued);
            enqueued.as_mut().enable();
            match self.run_once().await {
                Ok(0) => {
                    backoff.reset();
                    let wait = if eager_looks > 0 {
                        eager_looks -= 1;
                        EAGER_DELAY
                    } else {
                        POLL_INTERVAL
                    };
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = &mut enqueued => eager_looks = EAGER_LOOKS,
                        () = tokio::time::sleep(wait) => {}
                    }
                }
                Ok(_) => backoff.reset(),
                Err(error) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(%error, retry_in_ms = delay.as_millis(), "outbox relay failed");
                    if !sleep_or_shutdown(delay, &shutdown).await {
                        break;
                    }
                }
            }
            if pruned_at.elapsed() >= PRUNE_EVERY {
                pruned_at = Instant::now();
                if let Err(error) = prune(&self.db).await {
                    tracing::warn!(%error, "pruning sent outbox rows failed");
                }
            }
        }
        tracing::debug!("outbox relay stopped");
    }
}

async fn unsent(
    conn: &mut AnyConnection,
    limit: usize,
    lock: &str,
) -> Result<Vec<(i64, RawEvent)>, BusError> {
    let sql = format!(
        "SELECT seq, id, subject, payload FROM outbox WHERE sent_at IS NULL \
         ORDER BY seq LIMIT $1{lock}"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(conn)
        .await?;
    rows.iter()
        .map(|row| {
            let event = RawEvent {
                id: row.try_get("id")?,
                subject: row.try_get("subject")?,
                payload: row.try_get("payload")?,
            };
            Ok((row.try_get("seq")?, event))
        })
        .collect()
}

/// Marks exactly the published rows: a range would also catch a row with a lower seq that a
/// concurrent PostgreSQL transaction committed meanwhile, unpublished.
async fn mark_sent(conn: &mut AnyConnection, seqs: &[i64]) -> Result<(), BusError> {
    let placeholders: Vec<String> = (2..seqs.len() + 2).map(|i| format!("${i}")).collect();
    let sql = format!(
        "UPDATE outbox SET sent_at = $1 WHERE seq IN ({})",
        placeholders.join(", ")
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now_micros());
    for seq in seqs {
        query = query.bind(*seq);
    }
    query.execute(conn).await?;
    Ok(())
}

async fn prune(db: &Db) -> Result<(), BusError> {
    let cutoff = now_micros() - i64::try_from(RETENTION.as_micros()).unwrap_or(i64::MAX);
    let done = sqlx::query("DELETE FROM outbox WHERE sent_at IS NOT NULL AND sent_at < $1")
        .bind(cutoff)
        .execute(db.pool())
        .await?;
    if done.rows_affected() > 0 {
        tracing::debug!(rows = done.rows_affected(), "pruned sent outbox rows");
    }
    Ok(())
}
