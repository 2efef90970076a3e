//! The NATS JetStream backend.
//!
//! One stream holds every platform event. On the wire each subject gets a prefix token
//! (`order.created` → `mercato.order.created`) and the stream captures `mercato.>`: any event
//! type is stored without keeping a list of domains in sync, nothing else on the server (KV,
//! `_INBOX`, `$JS.API`) is captured, and a test can use its own prefix and stream.
//!
//! Consumers are durable pull consumers with explicit acks; retries and dead letters are ours,
//! so `max_deliver` stays unlimited. A 2.9 server filters a consumer on one subject only
//! (`filter_subjects` is 2.10+), so a consumer of several patterns runs one JetStream consumer
//! per pattern, named `<name>__<pattern>`, each in its own task. They share the inbox, so an
//! event matching two patterns still has one effect; order holds within each pattern.
//! Stream and consumer configs keep to 2.9-era fields.

use std::sync::Arc;
use std::time::Duration;

use async_nats::connection::State;
use async_nats::header::NATS_MESSAGE_ID;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::message::AckKind;
use async_nats::jetstream::stream::{self, RetentionPolicy, StorageType};
use async_nats::jetstream::{self, Message};
use async_nats::{ConnectOptions, HeaderMap};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::consumer::{Backoff, Core, Settled, sleep_or_shutdown};
use crate::{BusError, Event, RawEvent, subject};

/// Where and how the NATS backend keeps events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatsOptions {
    /// Name of the JetStream stream holding every event.
    pub stream: String,
    /// Subject prefix on the wire; the stream captures `<prefix>.>`.
    pub subject_prefix: String,
    /// How long a repeated `Nats-Msg-Id` is recognised and dropped.
    pub duplicate_window: Duration,
    /// How long the server waits for a consumer's ack before redelivering.
    pub ack_wait: Duration,
}

impl Default for NatsOptions {
    fn default() -> Self {
        Self {
            stream: "MERCATO".to_owned(),
            subject_prefix: "mercato".to_owned(),
            duplicate_window: Duration::from_secs(120),
            ack_wait: Duration::from_secs(30),
        }
    }
}

impl NatsOptions {
    fn validate(&self) -> Result<(), BusError> {
        let bad_stream = self.stream.is_empty()
            || self.stream.chars().any(|c| {
                c.is_whitespace() || c.is_control() || matches!(c, '.' | '*' | '>' | '/' | '\\')
            });
        if bad_stream {
            return Err(nats_error(
                "configure",
                format!("invalid stream name `{}`", self.stream),
            ));
        }
        subject::validate_subject(&self.subject_prefix)
    }

    /// The subject an event type is published on.
    pub(crate) fn wire_subject(&self, subject: &str) -> String {
        format!("{}.{subject}", self.subject_prefix)
    }

    pub(crate) fn stream_config(&self) -> stream::Config {
        stream::Config {
            name: self.stream.clone(),
            description: Some("Mercato platform events".to_owned()),
            subjects: vec![self.wire_subject(">")],
            storage: StorageType::File,
            retention: RetentionPolicy::Limits,
            duplicate_window: self.duplicate_window,
            ..Default::default()
        }
    }

    pub(crate) fn consumer_config(&self, durable: &str, pattern: &str) -> pull::Config {
        pull::Config {
            durable_name: Some(durable.to_owned()),
            description: Some(format!("mercato consumer of {pattern}")),
            filter_subject: self.wire_subject(pattern),
            // A new consumer starts at the beginning of the stream, like a new cursor on the
            // embedded log: a service added later catches up on history.
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::Explicit,
            ack_wait: self.ack_wait,
            ..Default::default()
        }
    }
}

/// The JetStream durable name for `pattern` of consumer `name`.
pub(crate) fn durable_name(name: &str, pattern: &str, only_pattern: bool) -> String {
    let clean = |s: &str| -> String {
        s.replace('*', "any")
            .replace('>', "all")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    if only_pattern {
        clean(name)
    } else {
        format!("{}__{}", clean(name), clean(pattern))
    }
}

fn nats_error(action: &'static str, error: impl std::fmt::Display) -> BusError {
    BusError::Nats {
        action,
        message: error.to_string(),
    }
}

/// A JetStream connection with the platform stream in place.
#[derive(Clone)]
pub(crate) struct JetStream {
    client: async_nats::Client,
    context: jetstream::Context,
    options: Arc<NatsOptions>,
}

impl JetStream {
    /// Connects (failing at once when the server is down) and creates the stream if missing.
    pub(crate) async fn connect(url: &str, options: NatsOptions) -> Result<Self, BusError> {
        options.validate()?;
        let client = ConnectOptions::new()
            .name("mercato-bus")
            .connection_timeout(Duration::from_secs(5))
            .event_callback(|event| async move {
                match event {
                    async_nats::Event::Connected => tracing::info!("nats connected"),
                    async_nats::Event::Disconnected => tracing::warn!("nats disconnected"),
                    other => tracing::warn!(event = %other, "nats connection event"),
                }
            })
            .connect(url)
            .await
            .map_err(|e| nats_error("connect", e))?;
        let context = jetstream::new(client.clone());
        let stream = context
            .get_or_create_stream(options.stream_config())
            .await
            .map_err(|e| nats_error("create stream", e))?;
        tracing::info!(stream = %stream.cached_info().config.name,
            subjects = ?stream.cached_info().config.subjects, "jetstream stream ready");
        Ok(Self {
            client,
            context,
            options: Arc::new(options),
        })
    }

    /// Publishes in order with `Nats-Msg-Id` = event id, then waits for every ack.
    pub(crate) async fn publish(&self, events: Vec<RawEvent>) -> Result<(), BusError> {
        // All publishes go out before the first ack is awaited: one round trip per batch, not
        // per event. They share one connection, so the stream stores them in this order.
        let mut acks = Vec::with_capacity(events.len());
        for event in events {
            let mut headers = HeaderMap::new();
            headers.insert(NATS_MESSAGE_ID, event.id.as_str());
            let subject = self.options.wire_subject(&event.subject);
            let ack = self
                .context
                .publish_with_headers(subject, headers, event.payload.into())
                .await
                .map_err(|e| nats_error("publish", e))?;
            acks.push((event.id, ack));
        }
        for (id, ack) in acks {
            let ack = ack.await.map_err(|e| nats_error("publish", e))?;
            if ack.duplicate {
                tracing::debug!(event_id = %id, "duplicate publish dropped by jetstream");
            }
        }
        Ok(())
    }

    /// Checks the connection is up and JetStream answers.
    pub(crate) async fn ping(&self) -> Result<(), BusError> {
        let state = self.client.connection_state();
        if state != State::Connected {
            return Err(nats_error("ping", format!("connection is {state:?}")));
        }
        // Account info does not decode from a 2.9 server; the stream's info proves both that
        // JetStream answers and that our stream is there.
        tokio::time::timeout(
            Duration::from_secs(5),
            self.context.get_stream(&self.options.stream),
        )
        .await
        .map_err(|_| nats_error("ping", "no answer within 5s"))?
        .map_err(|e| nats_error("ping", e))?;
        Ok(())
    }

    /// Starts one task per pattern, each on its own durable JetStream consumer.
    pub(crate) fn spawn_consumers(
        &self,
        core: Arc<Core>,
        patterns: &[String],
        shutdown: &CancellationToken,
        tasks: &TaskTracker,
    ) {
        for pattern in patterns {
            let durable = durable_name(&core.name, pattern, patterns.len() == 1);
            let config = self.options.consumer_config(&durable, pattern);
            let (this, core, shutdown) = (self.clone(), core.clone(), shutdown.clone());
            tasks.spawn(async move { this.consume(&core, config, &shutdown).await });
        }
    }

    /// (Re)creates the consumer and handles its messages until shutdown; errors of the server
    /// or the connection back off and start over (creating a durable consumer is idempotent).
    async fn consume(&self, core: &Core, config: pull::Config, shutdown: &CancellationToken) {
        let durable = config.durable_name.clone().unwrap_or_default();
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        while !shutdown.is_cancelled() {
            let error = match self.open(config.clone()).await {
                Ok(messages) => {
                    tracing::debug!(consumer = %core.name, %durable, "jetstream consumer started");
                    backoff.reset();
                    match self.drain(core, messages, shutdown).await {
                        Ok(()) => break,
                        Err(error) => error,
                    }
                }
                Err(error) => error,
            };
            let delay = backoff.next_delay();
            tracing::warn!(consumer = %core.name, %durable, %error,
                retry_in_ms = delay.as_millis(), "jetstream consumer failed");
            if !sleep_or_shutdown(delay, shutdown).await {
                break;
            }
        }
        tracing::debug!(consumer = %core.name, %durable, "jetstream consumer stopped");
    }

    async fn open(&self, config: pull::Config) -> Result<pull::Stream, BusError> {
        let stream = self
            .context
            .get_stream(&self.options.stream)
            .await
            .map_err(|e| nats_error("get stream", e))?;
        let consumer = stream
            .create_consumer(config)
            .await
            .map_err(|e| nats_error("create consumer", e))?;
        // Small batches: a message waiting in the client buffer behind a slow or retrying one
        // is still inside its ack_wait.
        consumer
            .stream()
            .max_messages_per_batch(100)
            .messages()
            .await
            .map_err(|e| nats_error("pull messages", e))
    }

    /// Handles messages in order until shutdown (`Ok`) or a transport error (`Err`).
    async fn drain(
        &self,
        core: &Core,
        mut messages: pull::Stream,
        shutdown: &CancellationToken,
    ) -> Result<(), BusError> {
        loop {
            let next = tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                next = messages.next() => next,
            };
            let message = match next {
                Some(Ok(message)) => message,
                Some(Err(e)) => return Err(nats_error("pull messages", e)),
                None => return Err(nats_error("pull messages", "message stream ended")),
            };
            match self.deliver(core, &message, shutdown).await {
                Some(Settled::AckLost) => {
                    tracing::debug!(consumer = %core.name, "ack dropped by test hook");
                }
                Some(_) => {
                    // A lost ack only means a redelivery, which the inbox absorbs.
                    if let Err(error) = message.ack().await {
                        tracing::warn!(consumer = %core.name, %error, "ack failed");
                    }
                }
                None => {
                    // Interrupted by shutdown: hand it back at once instead of after ack_wait.
                    let _ = message.ack_with(AckKind::Nak(None)).await;
                    return Ok(());
                }
            }
        }
    }

    async fn deliver(
        &self,
        core: &Core,
        message: &Message,
        shutdown: &CancellationToken,
    ) -> Option<Settled> {
        match serde_json::from_slice::<Event>(&message.payload) {
            Ok(event) => {
                let in_progress = || async {
                    // Resets ack_wait while we retry, so the server does not redeliver meanwhile.
                    let _ = message.ack_with(AckKind::Progress).await;
                };
                core.process(&event, shutdown, in_progress).await
            }
            Err(error) => {
                let seq = message
                    .info()
                    .map(|i| i.stream_sequence)
                    .unwrap_or_default();
                let id = format!("{}_seq_{seq}", self.options.stream);
                let raw = String::from_utf8_lossy(&message.payload).into_owned();
                let error = format!("undecodable event: {error}");
                core.dead_letter(&id, raw.into(), &error, 0, shutdown)
                    .await
                    .then_some(Settled::DeadLettered)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_captures_every_platform_subject_and_only_those() {
        let options = NatsOptions::default();
        let config = options.stream_config();
        assert_eq!(config.name, "MERCATO");
        assert_eq!(config.subjects, ["mercato.>"]);
        assert_eq!(config.duplicate_window, Duration::from_secs(120));
        assert_eq!(config.storage, StorageType::File);
        for kind in [
            "command.checkout",
            "order.created",
            "inventory.stock.updated",
            "payment.succeeded",
            "notification.email",
            "user.registered",
            "organization.member.added",
            "analytics.dlq",
        ] {
            let wire = options.wire_subject(kind);
            assert!(
                crate::subject::matches(&config.subjects[0], &wire),
                "{wire}"
            );
        }
        for other in ["_INBOX.abc", "$JS.API.INFO", "$KV.bucket.key", "mercato"] {
            assert!(
                !crate::subject::matches(&config.subjects[0], other),
                "{other}"
            );
        }
    }

    #[test]
    fn configs_use_only_fields_a_2_9_server_knows() {
        let options = NatsOptions::default();
        let stream = serde_json::to_value(options.stream_config()).unwrap();
        let consumer =
            serde_json::to_value(options.consumer_config("analytics", "order.*")).unwrap();
        for key in [
            "metadata",
            "subject_transform",
            "compression",
            "consumer_limits",
        ] {
            assert!(stream.get(key).is_none(), "stream has {key}: {stream}");
        }
        assert!(consumer.get("filter_subjects").is_none(), "{consumer}");
        assert_eq!(consumer["filter_subject"], "mercato.order.*");
        assert_eq!(consumer["durable_name"], "analytics");
        assert_eq!(consumer["ack_policy"], "explicit");
        assert_eq!(consumer["ack_wait"], 30_000_000_000u64);
        assert!(
            consumer.get("max_deliver").is_none(),
            "unlimited: {consumer}"
        );
    }

    #[test]
    fn durable_names_are_valid_and_distinct_per_pattern() {
        assert_eq!(durable_name("analytics", "order.*", true), "analytics");
        assert_eq!(
            durable_name("analytics", "order.*", false),
            "analytics__order_any"
        );
        assert_eq!(
            durable_name("analytics", "inventory.>", false),
            "analytics__inventory_all"
        );
        assert_eq!(durable_name("a.b c", "x", true), "a_b_c");
    }

    #[test]
    fn rejects_unusable_options() {
        let bad_stream = NatsOptions {
            stream: "A.B".into(),
            ..NatsOptions::default()
        };
        assert!(bad_stream.validate().is_err());
        let bad_prefix = NatsOptions {
            subject_prefix: "mercato.*".into(),
            ..NatsOptions::default()
        };
        assert!(bad_prefix.validate().is_err());
        NatsOptions::default().validate().unwrap();
    }
}
