//! Bus throughput: outbox → relay → bus → consumer, end to end, plus the store's hot path.
//!
//! `cargo bench -p mercato-bus`. Always runs the embedded bus with SQLite service databases;
//! with `NATS_URL` and `TEST_DATABASE_URL` set, also NATS JetStream with PostgreSQL ones.
//! The async pipelines are measured by hand (divan times tight synchronous loops); divan then
//! times the per-event CPU work (envelope encoding and decoding).

#![allow(clippy::unwrap_used, reason = "a benchmark panics on failure")]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mercato_bus::{Bus, Consumer, Event, Handler, NatsOptions, Relay, enqueue};
use mercato_store::{Db, PoolSettings, Tx, now_micros, testing};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const EVENTS: usize = 5_000;
const INSERTS: usize = 5_000;
const LATENCY_EVENTS: usize = 200;

fn main() {
    pipelines();
    println!();
    divan::main();
}

#[divan::bench]
fn encode_event() -> String {
    let event = Event::new(
        "mercato/orders",
        "order.created",
        json!({"order_id": "ord_1"}),
    );
    serde_json::to_string(&event.unwrap()).unwrap()
}

#[divan::bench]
fn decode_event(bencher: divan::Bencher) {
    let event = Event::new(
        "mercato/orders",
        "order.created",
        json!({"order_id": "ord_1"}),
    );
    let text = serde_json::to_string(&event.unwrap()).unwrap();
    bencher.bench(|| serde_json::from_str::<Event>(divan::black_box(&text)).unwrap());
}

fn pipelines() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = |name: &str| format!("sqlite://{}", dir.path().join(name).display());
        let pg = testing::postgres_url();
        let nats = std::env::var("NATS_URL").ok().filter(|u| !u.is_empty());

        println!("store hot path: single-row INSERT in its own transaction, {INSERTS} times");
        store_hot_path("sqlite", &sqlite("hot.db")).await;
        if let Some(base) = &pg {
            store_hot_path("postgres", &testing::fresh_postgres_url(base)).await;
        }

        println!("\noutbox -> relay -> bus -> consumer, {EVENTS} events, one per transaction");
        let bus = Bus::embedded(dir.path()).await.unwrap();
        pipeline(
            "embedded bus + SQLite",
            bus,
            &sqlite("orders.db"),
            &sqlite("analytics.db"),
        )
        .await;
        match (&nats, &pg) {
            (Some(url), Some(base)) => {
                let options = NatsOptions {
                    stream: format!("BENCH_{}", uuid::Uuid::now_v7().simple()),
                    subject_prefix: "bench".to_owned(),
                    ..NatsOptions::default()
                };
                let stream = options.stream.clone();
                let bus = Bus::nats_with(url, options).await.unwrap();
                let (orders, analytics) = (
                    testing::fresh_postgres_url(base),
                    testing::fresh_postgres_url(base),
                );
                pipeline("NATS JetStream + PostgreSQL", bus, &orders, &analytics).await;
                let client = async_nats::connect(url.as_str()).await.unwrap();
                async_nats::jetstream::new(client)
                    .delete_stream(&stream)
                    .await
                    .unwrap();
            }
            _ => println!("  (NATS + PostgreSQL skipped: set NATS_URL and TEST_DATABASE_URL)"),
        }
    });
}

async fn connect(url: &str) -> Db {
    Db::connect(url, &PoolSettings::default()).await.unwrap()
}

async fn store_hot_path(label: &str, url: &str) {
    let db = connect(url).await;
    sqlx::query("CREATE TABLE items (id TEXT PRIMARY KEY, n BIGINT NOT NULL, at BIGINT NOT NULL)")
        .execute(db.pool())
        .await
        .unwrap();
    let started = Instant::now();
    for n in 0..INSERTS {
        let mut tx = db.begin().await.unwrap();
        sqlx::query("INSERT INTO items (id, n, at) VALUES ($1, $2, $3)")
            .bind(format!("itm_{n}"))
            .bind(i64::try_from(n).unwrap())
            .bind(now_micros())
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    let took = started.elapsed();
    println!(
        "  {label:<8} {:>8.0} tx/s  {:>7.1} µs/tx",
        rate(INSERTS, took),
        took.as_secs_f64() * 1e6 / INSERTS as f64
    );
}

/// Writes an effect row per event and remembers how long each event took to arrive.
#[derive(Clone, Default)]
struct Sink {
    latencies: Arc<Mutex<Vec<Duration>>>,
}

#[async_trait::async_trait]
impl Handler for Sink {
    async fn handle(&self, event: &Event, tx: &mut Tx) -> anyhow::Result<()> {
        sqlx::query("INSERT INTO effects (event_id, at) VALUES ($1, $2)")
            .bind(&event.id)
            .bind(now_micros())
            .execute(&mut **tx)
            .await?;
        let latency = (chrono::Utc::now() - event.time)
            .to_std()
            .unwrap_or_default();
        self.latencies.lock().unwrap().push(latency);
        Ok(())
    }
}

async fn pipeline(label: &str, bus: Bus, producer_url: &str, consumer_url: &str) {
    let producer = connect(producer_url).await;
    let consumer = connect(consumer_url).await;
    mercato_bus::migrate(&producer).await.unwrap();
    mercato_bus::migrate(&consumer).await.unwrap();
    sqlx::query("CREATE TABLE effects (event_id TEXT NOT NULL, at BIGINT NOT NULL)")
        .execute(consumer.pool())
        .await
        .unwrap();

    let (shutdown, tasks) = (CancellationToken::new(), TaskTracker::new());
    let sink = Sink::default();
    Relay::new(producer.clone(), bus.clone()).spawn(shutdown.clone(), &tasks);
    Consumer::new("bench", &["order.*"], consumer.clone(), sink.clone()).spawn(
        &bus,
        shutdown.clone(),
        &tasks,
    );

    let started = Instant::now();
    produce(&producer, EVENTS, None).await;
    let enqueued = started.elapsed();
    sink.wait_for(EVENTS).await;
    let total = started.elapsed();
    let loaded = sink.take_percentiles();

    // Unloaded: one event every 10 ms, so the figure is the wake-up path, not a backlog.
    produce(&producer, LATENCY_EVENTS, Some(Duration::from_millis(10))).await;
    sink.wait_for(LATENCY_EVENTS).await;
    let idle = sink.take_percentiles();

    shutdown.cancel();
    tasks.close();
    tasks.wait().await;

    println!("  {label}");
    println!(
        "    enqueue (producer tx)   {:>8.0} events/s",
        rate(EVENTS, enqueued)
    );
    println!(
        "    end to end              {:>8.0} events/s  ({} events in {:.2} s)",
        rate(EVENTS, total),
        EVENTS,
        total.as_secs_f64()
    );
    println!(
        "    latency, saturated      p50 {:>6.1} ms  p99 {:>6.1} ms",
        loaded.0, loaded.1
    );
    println!(
        "    latency, 1 event/10 ms  p50 {:>6.1} ms  p99 {:>6.1} ms  (enqueue -> handled)",
        idle.0, idle.1
    );
}

/// Enqueues `n` events, one transaction each, pausing `pause` between them.
async fn produce(db: &Db, n: usize, pause: Option<Duration>) {
    for i in 0..n {
        let event = Event::new("mercato/orders", "order.created", json!({"n": i})).unwrap();
        let mut tx = db.begin().await.unwrap();
        enqueue(&mut tx, &event).await.unwrap();
        tx.commit().await.unwrap();
        if let Some(pause) = pause {
            tokio::time::sleep(pause).await;
        }
    }
}

impl Sink {
    async fn wait_for(&self, n: usize) {
        while self.latencies.lock().unwrap().len() < n {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// p50 and p99 in milliseconds of what was recorded so far, then forgets it.
    fn take_percentiles(&self) -> (f64, f64) {
        let mut latencies = std::mem::take(&mut *self.latencies.lock().unwrap());
        latencies.sort();
        let pct = |p: usize| latencies[(latencies.len() * p / 100).min(latencies.len() - 1)];
        (pct(50).as_secs_f64() * 1e3, pct(99).as_secs_f64() * 1e3)
    }
}

fn rate(n: usize, took: Duration) -> f64 {
    n as f64 / took.as_secs_f64()
}
