//! The embedded backend: a durable append-only log in a SQLite file with a cursor per consumer.
//!
//! Publishing is an insert (the unique id makes a second publish a no-op); a consumer reads
//! `seq > cursor` in order, hands matching events to its [`Core`], and stores its cursor after
//! each batch. Both survive a process kill: an insert is durable once committed (WAL), and a
//! consumer restarts at its stored cursor, at worst redelivering a batch its inbox absorbs.

use std::path::Path;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use mercato_store::{Db, Migrator, PoolSettings, now_micros};
use sqlx::Row;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::consumer::{Backoff, Core, Settled, sleep_or_shutdown};
use crate::{BusError, Event, RawEvent, subject};

static LOG_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/log");
static LOG_MIGRATOR: LazyLock<Migrator> = LazyLock::new(|| crate::own_table(&LOG_MIGRATIONS));

/// Events a consumer reads per query; its cursor is stored once per batch.
const BATCH: i64 = 256;
/// Fallback for a publish that no wake-up announces (another process on the same file).
const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Wakes the embedded consumers of this process after an append. One for every log, so two
/// `Bus` handles on the same directory wake each other's consumers; a consumer of another log
/// woken for nothing costs one indexed query.
static APPENDED: Notify = Notify::const_new();

/// The log file.
#[derive(Clone)]
pub(crate) struct Log {
    db: Db,
}

struct Entry {
    seq: i64,
    subject: String,
    payload: String,
}

impl Log {
    /// Opens or creates `dir/bus.db` and its tables.
    pub(crate) async fn open(dir: &Path) -> Result<Self, BusError> {
        let url = format!("sqlite://{}", dir.join("bus.db").display());
        let settings = PoolSettings {
            max_connections: 8,
            ..PoolSettings::default()
        };
        let db = Db::connect(&url, &settings).await?;
        db.migrate(&LOG_MIGRATOR).await?;
        tracing::debug!(dir = %dir.display(), "embedded bus log open");
        Ok(Self { db })
    }

    /// Appends events in one transaction; ids already in the log are skipped.
    pub(crate) async fn append(&self, events: &[RawEvent]) -> Result<(), BusError> {
        let now = now_micros();
        let mut tx = self.db.begin().await?;
        for event in events {
            let done = sqlx::query(
                "INSERT INTO events (id, subject, payload, published_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(&event.id)
            .bind(&event.subject)
            .bind(&event.payload)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                tracing::debug!(event_id = %event.id, "already in the log; publish ignored");
            }
        }
        tx.commit().await?;
        APPENDED.notify_waiters();
        Ok(())
    }

    /// Checks the log file answers.
    pub(crate) async fn ping(&self) -> Result<(), BusError> {
        self.db.ping().await?;
        Ok(())
    }

    async fn read(&self, after: i64) -> Result<Vec<Entry>, BusError> {
        let rows = sqlx::query(
            "SELECT seq, subject, payload FROM events WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after)
        .bind(BATCH)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Entry {
                    seq: row.try_get("seq")?,
                    subject: row.try_get("subject")?,
                    payload: row.try_get("payload")?,
                })
            })
            .collect()
    }

    async fn cursor(&self, consumer: &str) -> Result<i64, BusError> {
        let seq = sqlx::query_scalar("SELECT last_seq FROM consumer_cursors WHERE consumer = $1")
            .bind(consumer)
            .fetch_optional(self.db.pool())
            .await?;
        Ok(seq.unwrap_or(0))
    }

    async fn save_cursor(&self, consumer: &str, seq: i64) -> Result<(), BusError> {
        sqlx::query(
            "INSERT INTO consumer_cursors (consumer, last_seq, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (consumer) DO UPDATE SET last_seq = excluded.last_seq, \
             updated_at = excluded.updated_at",
        )
        .bind(consumer)
        .bind(seq)
        .bind(now_micros())
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    /// Starts one task that feeds matching events to `core` in log order.
    pub(crate) fn spawn_consumer(
        &self,
        core: Arc<Core>,
        patterns: Vec<String>,
        shutdown: CancellationToken,
        tasks: &TaskTracker,
    ) {
        let log = self.clone();
        tasks.spawn(async move { log.consume(&core, &patterns, &shutdown).await });
    }

    async fn consume(&self, core: &Core, patterns: &[String], shutdown: &CancellationToken) {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let mut saved = loop {
            match self.cursor(&core.name).await {
                Ok(seq) => break seq,
                Err(error) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(consumer = %core.name, %error, "reading consumer cursor failed");
                    if !sleep_or_shutdown(delay, shutdown).await {
                        return;
                    }
                }
            }
        };
        tracing::debug!(consumer = %core.name, cursor = saved, "embedded consumer started");
        let mut cursor = saved;
        'poll: while !shutdown.is_cancelled() {
            // Registered before reading, so a publish during the read is not missed.
            let appended = APPENDED.notified();
            tokio::pin!(appended);
            appended.as_mut().enable();
            let entries = match self.read(cursor).await {
                Ok(entries) => entries,
                Err(error) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(consumer = %core.name, %error, "reading the bus log failed");
                    if !sleep_or_shutdown(delay, shutdown).await {
                        break;
                    }
                    continue;
                }
            };
            backoff.reset();
            if entries.is_empty() {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = &mut appended => {}
                    () = tokio::time::sleep(POLL_INTERVAL) => {}
                }
                continue;
            }
            for entry in entries {
                if patterns.iter().any(|p| subject::matches(p, &entry.subject)) {
                    match deliver(core, &entry, shutdown).await {
                        // Shut down mid-event: the cursor stays before it.
                        None => break 'poll,
                        // As after a crash: resume from the stored cursor.
                        Some(Settled::AckLost) => {
                            cursor = saved;
                            continue 'poll;
                        }
                        Some(_) => {}
                    }
                }
                cursor = entry.seq;
            }
            if cursor != saved {
                match self.save_cursor(&core.name, cursor).await {
                    Ok(()) => saved = cursor,
                    // Not fatal: the next save catches up; a restart meanwhile redelivers a
                    // batch that the inbox absorbs.
                    Err(error) => {
                        tracing::warn!(consumer = %core.name, %error, "saving cursor failed");
                    }
                }
            }
        }
        if cursor != saved
            && let Err(error) = self.save_cursor(&core.name, cursor).await
        {
            tracing::warn!(consumer = %core.name, %error, "saving cursor at shutdown failed");
        }
        tracing::debug!(consumer = %core.name, cursor, "embedded consumer stopped");
    }
}

async fn deliver(core: &Core, entry: &Entry, shutdown: &CancellationToken) -> Option<Settled> {
    match serde_json::from_str::<Event>(&entry.payload) {
        Ok(event) => {
            core.process(&event, shutdown, || std::future::ready(()))
                .await
        }
        Err(error) => {
            let id = format!("seq_{}", entry.seq);
            let raw = serde_json::Value::String(entry.payload.clone());
            let error = format!("undecodable event: {error}");
            core.dead_letter(&id, raw, &error, 0, shutdown)
                .await
                .then_some(Settled::DeadLettered)
        }
    }
}
