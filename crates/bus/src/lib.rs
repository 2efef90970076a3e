//! Mercato's event bus: the CloudEvents envelope, the transactional outbox and its relay,
//! idempotent consumers (inbox) with retries and a dead-letter subject, over two backends.
//!
//! - **embedded**: a durable append-only log in a SQLite file (`bus.db`) with per-consumer
//!   cursors; used by `mercato up` and tests.
//! - **nats**: NATS JetStream, one stream, durable pull consumers; used in production.
//!
//! Delivery is at least once on both; effects are exactly once because a consumer writes the
//! event id into its `inbox` table in the same transaction as the handler's changes.

mod consumer;
mod embedded;
mod envelope;
mod nats;
mod outbox;
mod subject;
pub mod testing;

use std::fmt;
use std::path::Path;
use std::sync::{Arc, LazyLock};

use mercato_store::{Backend, Db, Migrator, StoreError};

pub use consumer::{Consumer, Handler, RetryPolicy};
pub use envelope::{Event, JSON_CONTENT_TYPE, SPEC_VERSION};
pub use nats::NatsOptions;
pub use outbox::{Relay, enqueue};

/// Subject of dead letters: events a consumer gave up on after its retries.
pub const DLQ_SUBJECT: &str = "analytics.dlq";

/// Errors of publishing, consuming and setting up the bus.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// An event type or subscription pattern is not a valid subject.
    #[error("invalid subject `{0}`: {1}")]
    InvalidSubject(String, &'static str),
    /// An event id is empty, too long or holds control characters.
    #[error("invalid event id `{0}`")]
    InvalidId(String),
    /// Encoding or decoding an event failed.
    #[error("encoding event failed: {0}")]
    Json(#[from] serde_json::Error),
    /// Opening the bus or service database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A query on the bus or service database failed.
    #[error("bus query failed: {0}")]
    Db(#[from] sqlx::Error),
    /// Creating the bus tables failed.
    #[error("migrating bus tables failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A NATS operation failed.
    #[error("nats {action} failed: {message}")]
    Nats {
        /// What was being attempted.
        action: &'static str,
        /// The client's error.
        message: String,
    },
}

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// Bookkeeping table of the bus migrations, apart from the service's `_sqlx_migrations`:
/// each migrator would otherwise see the other's versions as unknown and refuse to run.
const MIGRATIONS_TABLE: &str = "_bus_migrations";

fn own_table(migrations: &Migrator) -> Migrator {
    let mut migrator = Migrator::with_migrations(migrations.migrations.to_vec());
    migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
    migrator
}

static SERVICE_MIGRATORS: LazyLock<(Migrator, Migrator)> = LazyLock::new(|| {
    (
        own_table(&SQLITE_MIGRATIONS),
        own_table(&POSTGRES_MIGRATIONS),
    )
});

/// Creates the bus tables (`outbox`, `inbox`) in a service database.
///
/// Two migration sets because the outbox's auto-increment key is spelt differently on SQLite
/// and PostgreSQL; everything else in them is the same text.
pub async fn migrate(db: &Db) -> Result<(), BusError> {
    let migrator = match db.backend() {
        Backend::Sqlite => &SERVICE_MIGRATORS.0,
        Backend::Postgres => &SERVICE_MIGRATORS.1,
    };
    db.migrate(migrator).await?;
    Ok(())
}

/// An event as stored in an outbox and sent on the wire: id, subject and the JSON envelope.
#[derive(Debug, Clone)]
pub(crate) struct RawEvent {
    pub(crate) id: String,
    pub(crate) subject: String,
    pub(crate) payload: String,
}

/// Handle to the event bus; cheap to clone.
#[derive(Clone)]
pub struct Bus {
    inner: Arc<Inner>,
}

#[expect(
    clippy::large_enum_variant,
    reason = "one per process, already behind an Arc"
)]
enum Inner {
    Embedded(embedded::Log),
    Nats(nats::JetStream),
}

impl fmt::Debug for Bus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bus")
            .field("backend", &self.backend_name())
            .finish()
    }
}

impl Bus {
    /// Opens (or creates) the embedded durable log at `dir/bus.db`.
    pub async fn embedded(dir: &Path) -> Result<Bus, BusError> {
        let log = embedded::Log::open(dir).await?;
        Ok(Self::from_inner(Inner::Embedded(log)))
    }

    /// Connects to NATS JetStream at `url` and creates the platform stream when missing.
    pub async fn nats(url: &str) -> Result<Bus, BusError> {
        Self::nats_with(url, NatsOptions::default()).await
    }

    /// Like [`Bus::nats`] with another stream name, subject prefix or timings (tests use a
    /// stream per test).
    pub async fn nats_with(url: &str, options: NatsOptions) -> Result<Bus, BusError> {
        let jetstream = nats::JetStream::connect(url, options).await?;
        Ok(Self::from_inner(Inner::Nats(jetstream)))
    }

    /// NATS when `nats_url` is given (and not empty), else the embedded log under `data_dir`.
    pub async fn connect(nats_url: Option<&str>, data_dir: &Path) -> Result<Bus, BusError> {
        match nats_url.filter(|u| !u.trim().is_empty()) {
            Some(url) => Self::nats(url).await,
            None => Self::embedded(data_dir).await,
        }
    }

    fn from_inner(inner: Inner) -> Self {
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Publishes one event on subject `event.kind` and waits until the bus has stored it.
    ///
    /// Publishing an id again is a no-op (NATS deduplicates within its window, the embedded
    /// log forever); prefer [`enqueue`] in a transaction when the event reports a state change.
    pub async fn publish(&self, event: &Event) -> Result<(), BusError> {
        event.validate()?;
        let raw = RawEvent {
            id: event.id.clone(),
            subject: event.kind.clone(),
            payload: serde_json::to_string(event)?,
        };
        self.publish_raw(vec![raw]).await
    }

    /// Publishes already-encoded events in order and waits until all are stored.
    pub(crate) async fn publish_raw(&self, events: Vec<RawEvent>) -> Result<(), BusError> {
        if events.is_empty() {
            return Ok(());
        }
        match &*self.inner {
            Inner::Embedded(log) => log.append(&events).await,
            Inner::Nats(jetstream) => jetstream.publish(events).await,
        }
    }

    /// Checks that the bus answers, for readiness probes.
    pub async fn ping(&self) -> Result<(), BusError> {
        match &*self.inner {
            Inner::Embedded(log) => log.ping().await,
            Inner::Nats(jetstream) => jetstream.ping().await,
        }
    }

    /// `embedded` or `nats`, for logs and health reports.
    pub fn backend_name(&self) -> &'static str {
        match &*self.inner {
            Inner::Embedded(_) => "embedded",
            Inner::Nats(_) => "nats",
        }
    }
}
