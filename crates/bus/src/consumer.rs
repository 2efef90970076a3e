//! Consumers: the inbox that makes effects exactly once, retries, and dead letters.
//!
//! The transport (embedded log or JetStream) delivers at least once and in order; this module
//! turns one delivery into one settled outcome, and the transport then acknowledges it (moves
//! the cursor, or acks the JetStream message). The acknowledgement always comes after the
//! commit, so a crash in between gives a redelivery, which the inbox absorbs.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::FutureExt;
use mercato_store::{Db, Tx, now_micros};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::{Bus, BusError, DLQ_SUBJECT, Event, Inner, subject};

/// Reacts to events, inside the consumer's transaction.
#[async_trait::async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Applies the event's effects with `tx`; an error rolls them back and retries later.
    async fn handle(&self, event: &Event, tx: &mut Tx) -> anyhow::Result<()>;
}

/// How often and how patiently a failing handler is retried before its event is dead-lettered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Handler calls per event, the first included (at least 1).
    pub max_attempts: u32,
    /// Wait after the first failure; doubled after each further one.
    pub initial_backoff: Duration,
    /// Longest wait between two attempts.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// Wait after the `failures`-th failed attempt (1-based).
    pub(crate) fn backoff(&self, failures: u32) -> Duration {
        let factor = 2u32.saturating_pow(failures.saturating_sub(1));
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// A durable, named subscription that feeds events to a [`Handler`].
pub struct Consumer {
    name: String,
    subjects: Vec<String>,
    db: Db,
    handler: Arc<dyn Handler>,
    retry: RetryPolicy,
    lost_acks: usize,
}

impl Consumer {
    /// A consumer `name` (durable: it resumes where it stopped) of events whose subject matches
    /// one of `subjects` (exact or with `*`/`>` wildcards), recording handled ids in `db`'s inbox.
    pub fn new(name: &str, subjects: &[&str], db: Db, handler: impl Handler) -> Self {
        Self {
            name: name.to_owned(),
            subjects: subjects.iter().map(|s| (*s).to_owned()).collect(),
            db,
            handler: Arc::new(handler),
            retry: RetryPolicy::default(),
            lost_acks: 0,
        }
    }

    /// Replaces the default retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Test hook: the first `n` handled events are committed but not acknowledged, as if the
    /// process died between commit and ack.
    #[doc(hidden)]
    pub fn lose_acks_for_test(mut self, n: usize) -> Self {
        self.lost_acks = n;
        self
    }

    /// Starts consuming in background tasks that stop at `shutdown`.
    pub fn spawn(self, bus: &Bus, shutdown: CancellationToken, tasks: &TaskTracker) {
        if self.subjects.is_empty() {
            tracing::error!(consumer = %self.name, "consumer has no subjects; not started");
            return;
        }
        for pattern in &self.subjects {
            if let Err(error) = subject::validate_pattern(pattern) {
                tracing::error!(consumer = %self.name, %error, "consumer not started");
                return;
            }
        }
        let core = Arc::new(Core {
            name: self.name,
            db: self.db,
            handler: self.handler,
            retry: RetryPolicy {
                max_attempts: self.retry.max_attempts.max(1),
                ..self.retry
            },
            bus: bus.clone(),
            lost_acks: AtomicUsize::new(self.lost_acks),
        });
        match &*bus.inner {
            Inner::Embedded(log) => log.spawn_consumer(core, self.subjects, shutdown, tasks),
            Inner::Nats(jetstream) => {
                jetstream.spawn_consumers(core, &self.subjects, &shutdown, tasks);
            }
        }
    }
}

/// How a delivery ended; every variant but `AckLost` is acknowledged by the transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settled {
    /// The handler's effects are committed.
    Handled,
    /// The inbox already had it: an earlier delivery was handled.
    Duplicate,
    /// Retries ran out; it went to the dead-letter subject.
    DeadLettered,
    /// Committed, but the test hook swallows the acknowledgement.
    AckLost,
}

enum AttemptError {
    /// The handler failed: counts towards the retry limit.
    Handler(anyhow::Error),
    /// The consumer database failed: not the event's fault, retried without limit.
    Store(BusError),
}

/// What the transport-specific loops share: the handler, the inbox and the retry logic.
pub(crate) struct Core {
    pub(crate) name: String,
    db: Db,
    handler: Arc<dyn Handler>,
    retry: RetryPolicy,
    bus: Bus,
    lost_acks: AtomicUsize,
}

impl Core {
    /// Handles one delivery until it is settled, or returns `None` when `shutdown` interrupted
    /// it (then it must not be acknowledged). `in_progress` is called before each wait, to keep
    /// the transport from redelivering meanwhile.
    pub(crate) async fn process<F, Fut>(
        &self,
        event: &Event,
        shutdown: &CancellationToken,
        in_progress: F,
    ) -> Option<Settled>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = ()>,
    {
        let span = tracing::info_span!("consume", consumer = %self.name, event_id = %event.id,
            subject = %event.kind);
        async {
            let mut failures = 0;
            let mut store_backoff =
                Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
            loop {
                let delay = match self.attempt(event).await {
                    Ok(true) if self.take_lost_ack() => return Some(Settled::AckLost),
                    Ok(true) => return Some(Settled::Handled),
                    Ok(false) => {
                        tracing::debug!("already handled; redelivery skipped");
                        return Some(Settled::Duplicate);
                    }
                    Err(AttemptError::Handler(error)) => {
                        failures += 1;
                        let error = format!("{error:#}");
                        if failures >= self.retry.max_attempts {
                            let original = serde_json::to_value(event).unwrap_or_default();
                            return self
                                .dead_letter(&event.id, original, &error, failures, shutdown)
                                .await
                                .then_some(Settled::DeadLettered);
                        }
                        let delay = self.retry.backoff(failures);
                        tracing::warn!(attempt = failures, %error, retry_in_ms = delay.as_millis(),
                            "event handler failed");
                        delay
                    }
                    Err(AttemptError::Store(error)) => {
                        let delay = store_backoff.next_delay();
                        tracing::warn!(%error, retry_in_ms = delay.as_millis(),
                            "consumer database failed");
                        delay
                    }
                };
                in_progress().await;
                if !sleep_or_shutdown(delay, shutdown).await {
                    return None;
                }
            }
        }
        .instrument(span)
        .await
    }

    /// One transaction: claim the event in the inbox, run the handler, commit. `Ok(false)` when
    /// the inbox already had it.
    async fn attempt(&self, event: &Event) -> Result<bool, AttemptError> {
        let store = |e: sqlx::Error| AttemptError::Store(e.into());
        let mut tx = self
            .db
            .begin()
            .await
            .map_err(|e| AttemptError::Store(e.into()))?;
        // On PostgreSQL a concurrent claim of the same id waits for the other transaction, then
        // finds the row (it committed) or inserts it (it rolled back): never both handle it.
        let claimed = sqlx::query(
            "INSERT INTO inbox (consumer, event_id, handled_at) VALUES ($1, $2, $3) \
             ON CONFLICT (consumer, event_id) DO NOTHING",
        )
        .bind(&self.name)
        .bind(&event.id)
        .bind(now_micros())
        .execute(&mut *tx)
        .await
        .map_err(store)?
        .rows_affected();
        if claimed == 0 {
            tx.rollback().await.map_err(store)?;
            return Ok(false);
        }
        // A panicking handler is a failing handler: it must not kill the consumer task.
        let outcome = AssertUnwindSafe(self.handler.handle(event, &mut tx))
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| {
                Err(anyhow::anyhow!("handler panicked: {}", panic_text(&panic)))
            });
        if let Err(error) = outcome {
            // Dropping the transaction rolls it back too; an explicit rollback failing changes
            // nothing for the retry.
            let _ = tx.rollback().await;
            return Err(AttemptError::Handler(error));
        }
        tx.commit().await.map_err(store)?;
        Ok(true)
    }

    fn take_lost_ack(&self) -> bool {
        self.lost_acks
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    /// Publishes a dead letter for `original` (the envelope, or the raw payload when it did not
    /// decode), retrying the publish until it succeeds; `false` when `shutdown` came first.
    pub(crate) async fn dead_letter(
        &self,
        original_id: &str,
        original: serde_json::Value,
        error: &str,
        attempts: u32,
        shutdown: &CancellationToken,
    ) -> bool {
        if original.get("type").and_then(|t| t.as_str()) == Some(DLQ_SUBJECT) {
            // A dead letter of a dead letter would loop forever.
            tracing::error!(event_id = original_id, %error, "dead-letter handler failed; dropped");
            return true;
        }
        let data = json!({
            "consumer": self.name,
            "error": error,
            "attempts": attempts,
            "event": original,
        });
        let letter = match Event::new("mercato/bus", DLQ_SUBJECT, data) {
            // Derived id: if we crash before acking, the repeated dead letter deduplicates.
            Ok(letter) => letter
                .with_id(format!("evt_dlq_{}_{}", self.name, original_id))
                .with_subject(original_id),
            Err(e) => {
                tracing::error!(event_id = original_id, error = %e, "cannot build dead letter");
                return true;
            }
        };
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        loop {
            match self.bus.publish(&letter).await {
                Ok(()) => {
                    tracing::warn!(event_id = original_id, attempts, %error, "event dead-lettered");
                    return true;
                }
                Err(e) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(event_id = original_id, error = %e,
                        retry_in_ms = delay.as_millis(), "publishing dead letter failed");
                    if !sleep_or_shutdown(delay, shutdown).await {
                        return false;
                    }
                }
            }
        }
    }
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

/// Exponential backoff for infrastructure errors.
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Starts at `initial`, doubles up to `max`.
    pub(crate) fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            next: initial,
        }
    }

    /// The delay to wait now; the following one is twice as long.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        delay
    }

    /// Back to the initial delay after a success.
    pub(crate) fn reset(&mut self) {
        self.next = self.initial;
    }
}

/// Sleeps for `delay`; `false` if `shutdown` fired first.
pub(crate) async fn sleep_or_shutdown(delay: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        () = shutdown.cancelled() => false,
        () = tokio::time::sleep(delay) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_retry_doubles_from_100ms_to_5s() {
        let retry = RetryPolicy::default();
        assert_eq!(retry.max_attempts, 5);
        let waits: Vec<u128> = (1..=8).map(|n| retry.backoff(n).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        assert_eq!(retry.backoff(200), Duration::from_secs(5), "no overflow");
    }

    #[test]
    fn backoff_doubles_and_resets() {
        let mut backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(35));
        let waits: Vec<u128> = (0..4).map(|_| backoff.next_delay().as_millis()).collect();
        assert_eq!(waits, [10, 20, 35, 35]);
        backoff.reset();
        assert_eq!(backoff.next_delay(), Duration::from_millis(10));
    }
}
