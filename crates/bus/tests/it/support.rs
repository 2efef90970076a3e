//! Test kit: a bus per backend, fresh service databases, a recording handler, polling helpers.

use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use mercato_bus::{Bus, Event, Handler, NatsOptions};
use mercato_store::testing::{self, TestDb};
use mercato_store::{Db, Migrator, PoolSettings, Tx, now_micros};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The test's own table (`effects`); the bus tables come from `mercato_bus::migrate`.
pub static MIGRATOR: Migrator = sqlx::migrate!("tests/it/migrations");

/// A bus on one backend, isolated from every other test.
pub struct TestBus {
    pub bus: Bus,
    /// The embedded log's directory.
    pub dir: Option<tempfile::TempDir>,
    /// NATS url and this test's stream.
    pub nats: Option<(String, String)>,
}

impl TestBus {
    pub async fn embedded() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let bus = Bus::embedded(dir.path()).await.unwrap();
        Self {
            bus,
            dir: Some(dir),
            nats: None,
        }
    }

    /// A bus on its own stream and subject prefix; fails (never skips) when NATS is down.
    pub async fn nats(url: &str, ack_wait: Duration) -> Self {
        let unique = uuid::Uuid::now_v7().simple().to_string();
        let options = NatsOptions {
            stream: format!("TEST_{unique}"),
            subject_prefix: format!("t{unique}"),
            ack_wait,
            ..NatsOptions::default()
        };
        let stream = options.stream.clone();
        let bus = Bus::nats_with(url, options)
            .await
            .unwrap_or_else(|e| panic!("NATS_URL is set but NATS failed: {e}"));
        Self {
            bus,
            dir: None,
            nats: Some((url.to_owned(), stream)),
        }
    }

    pub fn label(&self) -> &'static str {
        self.bus.backend_name()
    }

    /// The embedded log's own database, to look inside it.
    pub async fn log_db(&self) -> Db {
        let dir = self.dir.as_ref().expect("embedded bus").path();
        open_sqlite(&dir.join("bus.db")).await
    }

    /// A JetStream context and this test's stream name.
    pub async fn jetstream(&self) -> (jetstream::Context, String) {
        let (url, stream) = self.nats.clone().expect("nats bus");
        let client = async_nats::connect(url).await.unwrap();
        (jetstream::new(client), stream)
    }

    /// Deletes the test's stream on NATS.
    pub async fn cleanup(self) {
        if self.nats.is_some() {
            let (js, stream) = self.jetstream().await;
            js.delete_stream(&stream).await.unwrap();
        }
    }
}

pub fn nats_url() -> Option<String> {
    std::env::var("NATS_URL").ok().filter(|u| !u.is_empty())
}

/// Fresh service databases (SQLite, and PostgreSQL with `TEST_DATABASE_URL`) with bus tables.
pub async fn service_dbs() -> Vec<TestDb> {
    let dbs = testing::databases(&MIGRATOR).await;
    for db in &dbs {
        mercato_bus::migrate(&db.db).await.unwrap();
    }
    dbs
}

/// One bus backend with one service database.
pub struct Setup {
    pub bus: TestBus,
    pub db: TestDb,
}

impl Setup {
    pub fn label(&self) -> String {
        format!("{} bus, {} db", self.bus.label(), self.db.label())
    }
}

/// Every bus backend × every database, each pair fresh.
pub async fn setups() -> Vec<Setup> {
    setups_with_ack_wait(Duration::from_secs(30)).await
}

pub async fn setups_with_ack_wait(ack_wait: Duration) -> Vec<Setup> {
    let mut all = Vec::new();
    let mut kinds = vec![None];
    kinds.extend(nats_url().map(Some));
    for kind in &kinds {
        for db in service_dbs().await {
            let bus = match kind {
                None => TestBus::embedded().await,
                Some(url) => TestBus::nats(url, ack_wait).await,
            };
            all.push(Setup { bus, db });
        }
    }
    all
}

pub async fn open_sqlite(path: &Path) -> Db {
    let url = format!("sqlite://{}", path.display());
    Db::connect(&url, &PoolSettings::default()).await.unwrap()
}

/// Background tasks of one test, stopped together.
pub struct Running {
    pub shutdown: CancellationToken,
    pub tasks: TaskTracker,
}

impl Running {
    pub fn new() -> Self {
        Self {
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        }
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        self.tasks.close();
        tokio::time::timeout(Duration::from_secs(30), self.tasks.wait())
            .await
            .expect("background tasks stop on shutdown");
    }
}

/// Records each handled event: a row in `effects` (in the consumer's transaction) and in memory.
#[derive(Clone)]
pub struct Recorder {
    pub consumer: String,
    seen: Arc<Mutex<Vec<Event>>>,
    calls: Arc<AtomicUsize>,
}

impl Recorder {
    pub fn new(consumer: &str) -> Self {
        Self {
            consumer: consumer.to_owned(),
            seen: Arc::default(),
            calls: Arc::default(),
        }
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    pub fn seen(&self) -> Vec<Event> {
        self.seen.lock().unwrap().clone()
    }

    pub fn ids(&self) -> Vec<String> {
        self.seen().into_iter().map(|e| e.id).collect()
    }
}

#[async_trait::async_trait]
impl Handler for Recorder {
    async fn handle(&self, event: &Event, tx: &mut Tx) -> anyhow::Result<()> {
        record_effect(&self.consumer, event, tx).await?;
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.seen.lock().unwrap().push(event.clone());
        Ok(())
    }
}

pub async fn record_effect(consumer: &str, event: &Event, tx: &mut Tx) -> anyhow::Result<()> {
    sqlx::query("INSERT INTO effects (consumer, event_id, created_at) VALUES ($1, $2, $3)")
        .bind(consumer)
        .bind(&event.id)
        .bind(now_micros())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// (all effects, distinct event ids) written by `consumer`.
pub async fn effects(db: &Db, consumer: &str) -> (i64, i64) {
    sqlx::query_as("SELECT COUNT(*), COUNT(DISTINCT event_id) FROM effects WHERE consumer = $1")
        .bind(consumer)
        .fetch_one(db.pool())
        .await
        .unwrap()
}

pub async fn unsent_outbox_rows(db: &Db) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL")
        .fetch_one(db.pool())
        .await
        .unwrap()
}

/// Polls `check` until it holds, failing the test after `timeout`.
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
