//! `mercato bench <scenario>`: closed-loop HTTP load against a running platform.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::{Args, ValueEnum};
use reqwest::{RequestBuilder, StatusCode};
use serde_json::{Value, json};

/// What to drive.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Scenario {
    /// `GET /health`: gateway plus every service's readiness.
    Health,
    /// `POST /api/v1/analytics/track`: a write through the outbox.
    Track,
    /// `GET /nope`: the gateway's routing and problem rendering alone.
    NotFound,
    /// A guest checkout (cart, item, checkout with a card): 3 requests, one sample.
    Checkout,
    /// Self-contained: the gateway beside nginx in front of a tiny upstream, driven by wrk
    /// (ignores `--url`).
    Gateway,
}

/// Options of `mercato bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Scenario to run.
    #[arg(value_enum)]
    scenario: Scenario,
    /// Base URL of the platform.
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    url: String,
    /// How long to drive load, in seconds.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Concurrent connections.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Connection counts of the `gateway` scenario, one wrk run per count and target.
    #[arg(long, value_delimiter = ',', default_value = "64,256")]
    connections: Vec<usize>,
    /// Admin that creates the product and stock of `checkout`.
    #[arg(long, env = "MERCATO_BOOTSTRAP_ADMIN_EMAIL")]
    admin_email: Option<String>,
    /// Password of that admin.
    #[arg(long, env = "MERCATO_BOOTSTRAP_ADMIN_PASSWORD", hide_env_values = true)]
    admin_password: Option<String>,
}

/// A scenario with what its set-up prepared.
#[derive(Debug, Clone)]
enum Load {
    Health,
    Track,
    NotFound,
    Checkout { sku: String },
}

/// Last four digits the payments `test` provider treats specially (see
/// `services/payments/src/providers/test.rs`): declines and a later dispute.
const SPECIAL_LAST4: [&str; 3] = ["0002", "9995", "0259"];

struct Outcome {
    latencies_us: Vec<u64>,
    errors: u64,
    first_error: Option<String>,
}

/// Sends `request` and answers its JSON body when the status is `expected`.
async fn expect(
    request: RequestBuilder,
    expected: StatusCode,
    what: &str,
) -> anyhow::Result<Value> {
    let response = request
        .send()
        .await
        .with_context(|| format!("{what}: request failed"))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .with_context(|| format!("{what}: reading the response failed"))?;
    if status != expected {
        let text = String::from_utf8_lossy(&body);
        let text: String = text.chars().take(300).collect();
        anyhow::bail!("{what}: expected {expected}, got {status}: {text}");
    }
    Ok(serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// Logs in as the admin and creates a product with plenty of stock; answers its SKU.
async fn set_up_checkout(
    client: &reqwest::Client,
    url: &str,
    args: &BenchArgs,
) -> anyhow::Result<String> {
    let (Some(email), Some(password)) = (&args.admin_email, &args.admin_password) else {
        anyhow::bail!(
            "the checkout scenario needs an admin: pass --admin-email and --admin-password \
             (or set MERCATO_BOOTSTRAP_ADMIN_EMAIL and MERCATO_BOOTSTRAP_ADMIN_PASSWORD)"
        );
    };
    let login = expect(
        client
            .post(format!("{url}/api/v1/auth/login"))
            .json(&json!({"email": email, "password": password})),
        StatusCode::OK,
        "logging in as the admin",
    )
    .await?;
    let token = login["access_token"]
        .as_str()
        .context("logging in as the admin: no access_token in the answer")?
        .to_owned();
    let pid = std::process::id();
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let sku = format!("BENCH-{pid}-{secs}");
    expect(
        client
            .post(format!("{url}/api/v1/products"))
            .bearer_auth(&token)
            .json(&json!({
                "title": format!("Bench product {pid}"),
                "status": "active",
                "variants": [{"sku": sku, "weight_grams": 300,
                    "prices": [{"amount": 1999, "currency": "EUR"}]}]
            })),
        StatusCode::CREATED,
        "creating the bench product",
    )
    .await?;
    let warehouses = expect(
        client
            .get(format!("{url}/api/v1/warehouses"))
            .bearer_auth(&token),
        StatusCode::OK,
        "listing warehouses",
    )
    .await?;
    let warehouse = match warehouses.get(0) {
        Some(first) => first.clone(),
        None => {
            expect(
                client
                    .post(format!("{url}/api/v1/warehouses"))
                    .bearer_auth(&token)
                    .json(&json!({"code": "BENCH", "name": "Bench", "country": "DE",
                        "priority": 1})),
                StatusCode::CREATED,
                "creating a warehouse",
            )
            .await?
        }
    };
    let warehouse_id = warehouse["id"]
        .as_str()
        .context("finding a warehouse: no id in the answer")?;
    expect(
        client
            .post(format!("{url}/api/v1/stock/adjustments"))
            .bearer_auth(&token)
            .json(
                &json!({"sku": sku, "warehouse_id": warehouse_id, "delta": 10_000_000,
                "reason": "receipt"}),
            ),
        StatusCode::CREATED,
        "receiving stock of the bench product",
    )
    .await?;
    Ok(sku)
}

/// The Luhn check digit of `payload` (its digits; anything else is skipped).
fn luhn_check_digit(payload: &str) -> u32 {
    let sum: u32 = payload
        .chars()
        .rev()
        .filter_map(|c| c.to_digit(10))
        .enumerate()
        .map(|(i, d)| match (i % 2 == 0, d * 2) {
            (true, doubled) if doubled > 9 => doubled - 9,
            (true, doubled) => doubled,
            (false, _) => d,
        })
        .sum();
    (10 - sum % 10) % 10
}

/// A Luhn-valid 16-digit Visa number unique to (`pid`, `worker`, `n`).
fn card_number(pid: u32, worker: usize, n: u64) -> String {
    let payload = format!(
        "4{:04}{:03}{:07}",
        pid % 10_000,
        worker % 1_000,
        n % 10_000_000
    );
    let check = luhn_check_digit(&payload);
    format!("{payload}{check}")
}

/// The worker's next card number, skipping the test provider's special last four digits.
fn next_card(pid: u32, worker: usize, counter: &mut u64) -> String {
    loop {
        *counter += 1;
        let card = card_number(pid, worker, *counter);
        if !SPECIAL_LAST4.iter().any(|last4| card.ends_with(last4)) {
            return card;
        }
    }
}

/// One guest checkout: a cart, one item, a card payment that must come back `paid`.
async fn checkout_once(
    client: &reqwest::Client,
    url: &str,
    sku: &str,
    key: &str,
    card: &str,
) -> anyhow::Result<()> {
    let cart = expect(
        client
            .post(format!("{url}/api/v1/carts"))
            .json(&json!({"currency": "EUR"})),
        StatusCode::CREATED,
        "creating a cart",
    )
    .await?;
    let cart_id = cart["id"].as_str().context("creating a cart: no id")?;
    expect(
        client
            .post(format!("{url}/api/v1/carts/{cart_id}/items"))
            .json(&json!({"sku": sku, "quantity": 1})),
        StatusCode::CREATED,
        "adding the item",
    )
    .await?;
    let order = expect(
        client
            .post(format!("{url}/api/v1/checkout"))
            .header("Idempotency-Key", key)
            .json(&json!({
                "cart_id": cart_id,
                "email": format!("{key}@example.com"),
                "shipping_address": {"name": "Bench Buyer", "line1": "Hauptstrasse 1",
                    "city": "Berlin", "postal_code": "10115", "country": "DE"},
                "payment_method": {"type": "card", "card": {"number": card, "exp_month": 12,
                    "exp_year": 2040, "cvc": "123"}}
            })),
        StatusCode::CREATED,
        "checking out",
    )
    .await?;
    match order["status"].as_str() {
        Some("paid") => Ok(()),
        other => anyhow::bail!("checking out: order is {other:?}, not paid"),
    }
}

/// One request of the single-request scenarios.
async fn request_once(
    client: &reqwest::Client,
    url: &str,
    load: &Load,
    message_id: &str,
    n: u64,
) -> anyhow::Result<()> {
    let (request, expected) = match load {
        Load::Health => (client.get(format!("{url}/health")), StatusCode::OK),
        Load::NotFound => (client.get(format!("{url}/nope")), StatusCode::NOT_FOUND),
        Load::Track => (
            client
                .post(format!("{url}/api/v1/analytics/track"))
                .json(&json!({
                    "event": "bench_event",
                    "message_id": message_id,
                    "properties": {"n": n}
                })),
            StatusCode::ACCEPTED,
        ),
        Load::Checkout { .. } => anyhow::bail!("a checkout is not one request"),
    };
    let response = request.send().await?;
    let status = response.status();
    response.bytes().await?;
    let ok = match load {
        Load::NotFound => status == expected,
        _ => status.is_success(),
    };
    anyhow::ensure!(ok, "expected {expected}, got {status}");
    Ok(())
}

async fn worker(
    client: reqwest::Client,
    url: String,
    load: Load,
    deadline: Instant,
    worker: usize,
) -> Outcome {
    let mut outcome = Outcome {
        latencies_us: Vec::new(),
        errors: 0,
        first_error: None,
    };
    let pid = std::process::id();
    let mut cards = 0u64;
    let mut n = 0u64;
    while Instant::now() < deadline {
        n += 1;
        let key = format!("bench-{pid}-{worker}-{n}");
        let started = Instant::now();
        let result = match &load {
            Load::Checkout { sku } => {
                let card = next_card(pid, worker, &mut cards);
                checkout_once(&client, &url, sku, &key, &card).await
            }
            _ => request_once(&client, &url, &load, &key, n).await,
        };
        outcome
            .latencies_us
            .push(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX));
        if let Err(e) = result {
            outcome.errors += 1;
            outcome.first_error.get_or_insert_with(|| format!("{e:#}"));
        }
    }
    outcome
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)] as f64 / 1000.0
}

/// Runs the scenario and prints requests/s (checkouts/s for `checkout`) and p50/p99 latency.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if let Scenario::Gateway = args.scenario {
        return crate::bench_gateway::run(args.duration, &args.connections).await;
    }
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .timeout(Duration::from_secs(30))
        .build()?;
    let url = args.url.trim_end_matches('/').to_owned();
    client
        .get(format!("{url}/health"))
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("platform not reachable at {url}: {e}"))?;
    let load = match args.scenario {
        Scenario::Health => Load::Health,
        Scenario::Track => Load::Track,
        Scenario::NotFound => Load::NotFound,
        Scenario::Checkout => Load::Checkout {
            sku: set_up_checkout(&client, &url, &args).await?,
        },
        Scenario::Gateway => anyhow::bail!("the gateway scenario starts its own servers"),
    };
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.duration.max(1));
    let workers: Vec<_> = (0..args.concurrency.max(1))
        .map(|i| {
            tokio::spawn(worker(
                client.clone(),
                url.clone(),
                load.clone(),
                deadline,
                i,
            ))
        })
        .collect();
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    for w in workers {
        let outcome = w.await?;
        latencies.extend(outcome.latencies_us);
        errors += outcome.errors;
        first_error = first_error.or(outcome.first_error);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let rate = latencies.len() as f64 / elapsed;
    let percentiles = format!(
        "p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0),
        percentile(&latencies, 100.0),
    );
    if let Load::Checkout { .. } = load {
        println!(
            "{:?}: {} checkouts ({} requests) in {elapsed:.1}s with {} connections, {errors} errors",
            args.scenario,
            latencies.len(),
            latencies.len() * 3,
            args.concurrency
        );
        println!(
            "  {rate:.1} checkouts/s ({:.0} requests/s)  {percentiles} per checkout",
            rate * 3.0
        );
    } else {
        println!(
            "{:?}: {} requests in {elapsed:.1}s with {} connections, {errors} errors",
            args.scenario,
            latencies.len(),
            args.concurrency
        );
        println!("  {rate:.0} requests/s  {percentiles}");
    }
    if let Some(e) = first_error {
        eprintln!("first error: {e}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_sorted_sample() {
        let sample: Vec<u64> = (1..=100).map(|n| n * 1000).collect();
        assert_eq!(percentile(&sample, 50.0), 51.0);
        assert_eq!(percentile(&sample, 99.0), 99.0);
        assert_eq!(percentile(&[], 99.0), 0.0);
    }

    fn luhn_valid(number: &str) -> bool {
        let (payload, check) = number.split_at(number.len() - 1);
        check.parse::<u32>().ok() == Some(luhn_check_digit(payload))
    }

    #[test]
    fn luhn_check_digit_of_known_card_numbers() {
        assert_eq!(luhn_check_digit("7992739871"), 3);
        assert_eq!(luhn_check_digit("424242424242424"), 2);
        assert_eq!(luhn_check_digit("400000000000000"), 2);
        assert_eq!(luhn_check_digit("400000000000999"), 5);
        assert_eq!(luhn_check_digit("400000000000025"), 9);
    }

    #[test]
    fn luhn_valid_bench_cards_are_distinct_visa_numbers_and_never_special() {
        let mut seen = std::collections::HashSet::new();
        for worker in 0..3 {
            let mut counter = 0;
            for _ in 0..2_000 {
                let card = next_card(4_194_303, worker, &mut counter);
                assert_eq!(card.len(), 16, "{card}");
                assert!(card.starts_with('4'), "{card}");
                assert!(luhn_valid(&card), "{card}");
                assert!(!SPECIAL_LAST4.iter().any(|s| card.ends_with(s)), "{card}");
                assert!(seen.insert(card.clone()), "{card} twice");
            }
        }
    }
}
