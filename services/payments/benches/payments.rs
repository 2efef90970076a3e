//! Payments benchmark: create + process per second with the built-in `test` provider, through
//! the engine (no HTTP), on SQLite and, when `TEST_DATABASE_URL` is set, PostgreSQL.
//!
//! `cargo bench -p mercato-payments --bench payments`. `BENCH_SECONDS` (default 10) and
//! `BENCH_CONCURRENCY` (default 8). Each payment: tokenize the card (fingerprint + vault),
//! insert the intent, claim it, score its risk (velocity, history and blocklist queries), call
//! the provider, write the attempt, the outcome and the `payment.succeeded` outbox row.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mercato_payments::domain::CaptureMethod;
use mercato_payments::engine::{Caller, Engine, MethodInput, NewPayment, Providers, Settings};
use mercato_payments::providers::test::TestProvider;
use mercato_payments::providers::{CardDetails, CardRef};
use mercato_payments::risk::Thresholds;
use mercato_payments::routing::{Breakers, Routes};
use mercato_store::testing::{TestDb, bench_setting, postgres_url};

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("start runtime");
    runtime.block_on(run());
}

async fn run() {
    let seconds = bench_setting("BENCH_SECONDS", 10);
    let clients = bench_setting("BENCH_CONCURRENCY", 8) as usize;
    println!(
        "payments benchmark: create + process with the test provider, {clients} tasks, {seconds} s"
    );
    println!(
        "{:<9} {:>12} {:>9} {:>9} {:>7}",
        "backend", "payments/s", "p50 ms", "p99 ms", "failed"
    );
    let mut dbs = vec![TestDb::sqlite(&mercato_payments::MIGRATOR).await];
    if let Some(base) = postgres_url() {
        dbs.push(TestDb::postgres(&base, &mercato_payments::MIGRATOR).await);
    }
    for test_db in &dbs {
        bench(test_db, clients, seconds).await;
    }
}

async fn bench(test_db: &TestDb, clients: usize, seconds: u64) {
    mercato_kernel::service::migrate(&test_db.db, &mercato_payments::MIGRATOR)
        .await
        .expect("migrate");
    let providers = Providers::default().with(Arc::new(TestProvider::new()));
    let settings = Settings {
        default_provider: "test".into(),
        call_timeout: Duration::from_secs(10),
        routes: Routes::default(),
        breakers: Arc::new(Breakers::new(5, Duration::from_secs(30))),
        thresholds: Thresholds {
            review: 50,
            block: 80,
        },
        fingerprint_key: b"bench".to_vec(),
    };
    let engine = Engine::new(test_db.db.clone(), providers, settings);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|task| tokio::spawn(client(engine.clone(), task, deadline)))
        .collect();
    let (mut latencies, mut failed) = (Vec::new(), 0);
    for task in tasks {
        let (l, f) = task.await.expect("bench task");
        latencies.extend(l);
        failed += f;
    }
    let wall = started.elapsed();
    latencies.sort_unstable();
    let at = |p: f64| {
        let i = ((latencies.len().max(1) - 1) as f64 * p).round() as usize;
        latencies.get(i).copied().unwrap_or_default().as_secs_f64() * 1e3
    };
    println!(
        "{:<9} {:>12.0} {:>9.2} {:>9.2} {:>7}",
        test_db.label(),
        latencies.len() as f64 / wall.as_secs_f64(),
        at(0.50),
        at(0.99),
        failed
    );
}

/// A Luhn-valid Visa number of its own for each payment, so card velocity stays quiet as in
/// a shop with many customers.
fn card_number(task: usize, n: u64) -> String {
    let body = format!("4{:02}{:012}", task % 100, n % 1_000_000_000_000);
    (0..10)
        .map(|check| format!("{body}{check}"))
        .find(|candidate| mercato_payments::domain::luhn(candidate))
        .unwrap_or_else(|| unreachable!("one check digit always fits"))
}

/// One task: creates and processes payments until `deadline`, each by its own buyer and
/// card.
async fn client(engine: Engine, task: usize, deadline: Instant) -> (Vec<Duration>, u64) {
    let (mut latencies, mut failed) = (Vec::new(), 0);
    let mut n = 0;
    while Instant::now() < deadline {
        n += 1;
        let caller = Caller {
            id: format!("usr_bench_{task}_{n}"),
            staff: false,
        };
        let card = CardRef {
            token: String::new(),
            brand: "visa".into(),
            last4: "4242".into(),
            exp_month: 12,
            exp_year: 2034,
        };
        let number = card_number(task, n);
        let card = CardRef {
            last4: number[12..].to_owned(),
            ..card
        };
        let details = CardDetails {
            number,
            exp_month: 12,
            exp_year: 2034,
            cvc: "123".into(),
        };
        let new = NewPayment {
            amount: 1999,
            currency: "EUR".into(),
            method: Some(MethodInput::Card(details, card)),
            customer_email: Some(format!("buyer{task}-{n}@example.com")),
            capture_method: CaptureMethod::Automatic,
            provider: None,
            metadata: Default::default(),
            ip: None,
            billing_country: None,
            shipping_country: None,
        };
        let t = Instant::now();
        let outcome = async {
            let payment = engine.create(new, &caller).await?;
            engine.process(&payment.row.id, None, &caller).await
        }
        .await;
        match outcome {
            Ok(p) if p.status() == mercato_payments::domain::Status::Succeeded => {
                latencies.push(t.elapsed());
            }
            Ok(p) => {
                if failed == 0 {
                    eprintln!("a payment ended {}", p.status().as_str());
                }
                failed += 1;
            }
            Err(e) => {
                if failed == 0 {
                    eprintln!("a payment failed: {e}");
                }
                failed += 1;
            }
        }
    }
    (latencies, failed)
}
