//! The sender: takes due notifications from the queue (a claim per row, so replicas share the
//! work), applies preferences, quiet hours and rate limits, and hands each to its channel's
//! providers in order. A transient failure fails over to the next provider; when all fail the
//! message waits with exponential backoff and jitter, until `NOTIFICATIONS_MAX_ATTEMPTS`.
//! Throttled and quiet-hour messages wait too: delayed, never dropped.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use mercato_store::{Db, now_micros};
use serde_json::Value;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::domain::{self, Channel, QuietHours, Status, TRANSACTIONAL};
use crate::providers::{Message, Providers, SendError};
use crate::store::{self, AttemptRow, NotificationRow};

/// How the sender behaves.
#[derive(Debug, Clone)]
pub struct Settings {
    /// First retry pause.
    pub retry_ms: u64,
    /// Attempts before a message fails.
    pub max_attempts: u32,
    /// How often the queue is polled when nothing wakes the sender.
    pub poll: Duration,
    /// Messages per second per user and channel (0: unlimited).
    pub user_rate: u32,
    /// Messages per second per provider (0: unlimited).
    pub provider_rate: u32,
    /// Messages sent at once.
    pub concurrency: usize,
}

/// The sender; cheap to clone.
#[derive(Clone)]
pub struct Sender {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    providers: Providers,
    settings: Settings,
    wake: Notify,
    per_user: Option<DefaultKeyedRateLimiter<String>>,
    per_provider: Option<DefaultKeyedRateLimiter<&'static str>>,
}

fn limiter<K: std::hash::Hash + Eq + Clone>(rate: u32) -> Option<DefaultKeyedRateLimiter<K>> {
    NonZeroU32::new(rate).map(|r| RateLimiter::keyed(Quota::per_second(r)))
}

/// How long a claim lasts: longer than any provider call.
const CLAIM: Duration = Duration::from_secs(120);

impl Sender {
    /// A sender over `db` with `providers`.
    pub fn new(db: Db, providers: Providers, settings: Settings) -> Self {
        Self {
            inner: Arc::new(Inner {
                per_user: limiter(settings.user_rate),
                per_provider: limiter(settings.provider_rate),
                db,
                providers,
                settings,
                wake: Notify::new(),
            }),
        }
    }

    /// Tells the sender there is new work.
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// Runs the sender until `shutdown`.
    pub fn spawn(&self, shutdown: CancellationToken, tasks: &TaskTracker) {
        let sender = self.clone();
        tasks.spawn(async move {
            loop {
                match sender.run_once().await {
                    Ok(n) if n > 0 => continue,
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "sending notifications failed"),
                }
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = sender.inner.wake.notified() => {}
                    () = tokio::time::sleep(sender.inner.settings.poll) => {}
                }
            }
        });
    }

    /// Sends what is due now; returns how many were taken.
    pub async fn run_once(&self) -> anyhow::Result<usize> {
        let inner = &self.inner;
        let limit = i64::try_from(inner.settings.concurrency.max(1) * 4).unwrap_or(64);
        let due = store::due(&mut *inner.db.pool().acquire().await?, now_micros(), limit).await?;
        let taken = due.len();
        futures::stream::iter(due)
            .for_each_concurrent(inner.settings.concurrency.max(1), |id| async move {
                if let Err(e) = self.take(&id).await {
                    tracing::warn!(notification = %id, error = %e, "delivering a notification failed");
                }
            })
            .await;
        Ok(taken)
    }

    async fn take(&self, id: &str) -> anyhow::Result<()> {
        let db = &self.inner.db;
        let now = now_micros();
        let claim_until = now + micros(CLAIM);
        if !store::claim(&mut *db.pool().acquire().await?, id, now, claim_until).await? {
            return Ok(());
        }
        let Some(row) = store::find_notification(&mut *db.pool().acquire().await?, id).await?
        else {
            return Ok(());
        };
        self.deliver(row).await
    }

    async fn deliver(&self, row: NotificationRow) -> anyhow::Result<()> {
        let db = &self.inner.db;
        let now = now_micros();
        let channel = Channel::parse(&row.channel);
        let Some(channel) = channel else {
            let mut conn = db.pool().acquire().await?;
            store::settle(
                &mut conn,
                &row.id,
                Status::Failed.as_str(),
                None,
                None,
                row.attempts,
                Some("unknown channel"),
                now,
            )
            .await?;
            return Ok(());
        };
        let opt_out_possible = row.category != TRANSACTIONAL;
        if let (Some(user), true) = (&row.user_id, opt_out_possible) {
            let mut conn = db.pool().acquire().await?;
            if store::is_disabled(&mut conn, user, &row.category, channel.as_str()).await? {
                let why = format!(
                    "{} turned {} off on {}",
                    user,
                    row.category,
                    channel.as_str()
                );
                store::settle(
                    &mut conn,
                    &row.id,
                    Status::Suppressed.as_str(),
                    None,
                    None,
                    row.attempts,
                    Some(&why),
                    now,
                )
                .await?;
                return Ok(());
            }
            if row.urgent == 0
                && let Some((start, end, offset)) = store::quiet_hours(&mut conn, user).await?
            {
                let hours = QuietHours {
                    start,
                    end,
                    offset_minutes: offset,
                };
                let release = hours.release_at(now);
                if release > now {
                    drop(conn);
                    return self.requeue(&row, release, Some("quiet hours")).await;
                }
            }
        }
        if let Some(limiter) = &self.inner.per_user {
            let key = format!(
                "{}:{}",
                row.user_id.as_deref().unwrap_or(&row.recipient),
                channel.as_str()
            );
            if let Err(not_until) = limiter.check_key(&key) {
                return self
                    .requeue(&row, throttled_until(&not_until, now), None)
                    .await;
            }
        }
        let message = Message {
            id: row.id.clone(),
            to: row.recipient.clone(),
            subject: row.subject.clone(),
            text: row.body.clone(),
            html: row.html.clone(),
            data: serde_json::from_str(&row.data).unwrap_or(Value::Null),
        };
        let providers = self.inner.providers.of(channel);
        if providers.is_empty() {
            let mut conn = db.pool().acquire().await?;
            let why = format!("no provider is configured for {}", channel.as_str());
            store::settle(
                &mut conn,
                &row.id,
                Status::Failed.as_str(),
                None,
                None,
                row.attempts,
                Some(&why),
                now,
            )
            .await?;
            return Ok(());
        }
        let attempts = row.attempts + 1;
        let mut last_error = String::new();
        for provider in providers {
            if let Some(limiter) = &self.inner.per_provider
                && let Err(not_until) = limiter.check_key(&provider.name())
            {
                return self
                    .requeue(&row, throttled_until(&not_until, now), None)
                    .await;
            }
            let started = Instant::now();
            let result = provider.send(&message).await;
            let (outcome, response) = match &result {
                Ok(accepted) => ("sent", accepted.response.clone()),
                Err(SendError::Transient(e)) => ("transient", e.clone()),
                Err(SendError::Permanent(e)) => ("permanent", e.clone()),
            };
            let mut conn = db.pool().acquire().await?;
            store::insert_attempt(
                &mut conn,
                &AttemptRow {
                    id: mercato_kernel::id::new_id("att"),
                    notification_id: row.id.clone(),
                    provider: provider.name().to_owned(),
                    outcome: outcome.to_owned(),
                    response: Some(response.chars().take(1000).collect()),
                    duration_ms: i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX),
                    created_at: now_micros(),
                },
            )
            .await?;
            match result {
                Ok(accepted) => {
                    // Stored or handed to the user's session: that is delivery for these two.
                    let status = if matches!(provider.name(), "in_app" | "mailbox") {
                        Status::Delivered
                    } else {
                        Status::Sent
                    };
                    store::settle(
                        &mut conn,
                        &row.id,
                        status.as_str(),
                        Some(provider.name()),
                        accepted.message_id.as_deref(),
                        attempts,
                        None,
                        now_micros(),
                    )
                    .await?;
                    if provider.name() == "mailbox" {
                        drop(conn);
                        self.copy_to_inbox(&row).await?;
                    }
                    return Ok(());
                }
                Err(SendError::Permanent(e)) => {
                    store::settle(
                        &mut conn,
                        &row.id,
                        Status::Failed.as_str(),
                        Some(provider.name()),
                        None,
                        attempts,
                        Some(&e),
                        now_micros(),
                    )
                    .await?;
                    return Ok(());
                }
                Err(SendError::Transient(e)) => last_error = format!("{}: {e}", provider.name()),
            }
        }
        let mut conn = db.pool().acquire().await?;
        let max = i64::from(self.inner.settings.max_attempts.max(1));
        if attempts >= max {
            store::settle(
                &mut conn,
                &row.id,
                Status::Failed.as_str(),
                None,
                None,
                attempts,
                Some(&last_error),
                now_micros(),
            )
            .await?;
        } else {
            let jitter: f64 = rand::random();
            let pause = domain::backoff_micros(
                self.inner.settings.retry_ms,
                u32::try_from(attempts).unwrap_or(u32::MAX),
                jitter,
            );
            store::requeue(
                &mut conn,
                &row.id,
                now_micros() + pause,
                attempts,
                Some(&last_error),
                now_micros(),
            )
            .await?;
        }
        Ok(())
    }
}

impl Sender {
    /// Without an email provider, an email to a user also lands in their in-app inbox, so
    /// it is seen, not only stored.
    async fn copy_to_inbox(&self, row: &NotificationRow) -> anyhow::Result<()> {
        let Some(user) = &row.user_id else {
            return Ok(());
        };
        let now = now_micros();
        let copy = NotificationRow {
            id: mercato_kernel::id::new_id("ntf"),
            channel: Channel::InApp.as_str().to_owned(),
            recipient: user.clone(),
            status: Status::Delivered.as_str().to_owned(),
            provider: Some("in_app".to_owned()),
            idempotency_key: Some(format!("mailbox:{}", row.id)),
            html: None,
            attempts: 1,
            created_at: now,
            updated_at: now,
            sent_at: Some(now),
            next_attempt_at: now,
            claimed_until: None,
            ..row.clone()
        };
        let mut conn = self.inner.db.pool().acquire().await?;
        match store::insert_notification(&mut conn, &copy).await {
            Ok(()) => {}
            // Delivered twice (a claim ran out mid-send): one copy is enough.
            Err(e) if mercato_store::is_unique_violation(&e) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        if let Some(in_app) = self.inner.providers.of(Channel::InApp).first() {
            let message = Message {
                id: copy.id.clone(),
                to: user.clone(),
                subject: copy.subject.clone(),
                text: copy.body.clone(),
                html: None,
                data: Value::Null,
            };
            // The inbox has it already; this only tells open streams.
            let _ = in_app.send(&message).await;
        }
        Ok(())
    }
}

impl Sender {
    /// Puts a claimed notification back to wait until `at`, without counting an attempt.
    async fn requeue(
        &self,
        row: &NotificationRow,
        at: i64,
        note: Option<&str>,
    ) -> anyhow::Result<()> {
        let mut conn = self.inner.db.pool().acquire().await?;
        store::requeue(&mut conn, &row.id, at, row.attempts, note, now_micros()).await?;
        Ok(())
    }
}

/// When a send a rate limit refused may try again (at least a millisecond later).
fn throttled_until(
    not_until: &governor::NotUntil<governor::clock::QuantaInstant>,
    now: i64,
) -> i64 {
    let wait = not_until.wait_time_from(DefaultClock::default().now());
    now + micros(wait).max(1000)
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}
