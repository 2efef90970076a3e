//! `mercato bench <scenario>`: closed-loop HTTP load against a running platform.

use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};

/// What to drive.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Scenario {
    /// `GET /health`: gateway plus every service's readiness.
    Health,
    /// `POST /api/v1/analytics/track`: a write through the outbox.
    Track,
    /// `GET /nope`: the gateway's routing and problem rendering alone.
    NotFound,
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
}

struct Outcome {
    latencies_us: Vec<u64>,
    errors: u64,
}

async fn worker(
    client: reqwest::Client,
    args_url: String,
    scenario: Scenario,
    deadline: Instant,
    worker: usize,
) -> Outcome {
    let mut outcome = Outcome {
        latencies_us: Vec::new(),
        errors: 0,
    };
    let mut n = 0u64;
    while Instant::now() < deadline {
        n += 1;
        let request = match scenario {
            Scenario::Health => client.get(format!("{args_url}/health")),
            Scenario::NotFound => client.get(format!("{args_url}/nope")),
            Scenario::Track => client
                .post(format!("{args_url}/api/v1/analytics/track"))
                .json(&serde_json::json!({
                    "event": "bench_event",
                    "message_id": format!("bench-{}-{worker}-{n}", std::process::id()),
                    "properties": {"n": n}
                })),
        };
        let started = Instant::now();
        let ok = match request.send().await {
            Ok(response) => {
                let status = response.status();
                let expected = match scenario {
                    Scenario::NotFound => status == reqwest::StatusCode::NOT_FOUND,
                    _ => status.is_success(),
                };
                response.bytes().await.is_ok() && expected
            }
            Err(_) => false,
        };
        outcome
            .latencies_us
            .push(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX));
        if !ok {
            outcome.errors += 1;
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

/// Runs the scenario and prints requests/s and p50/p99 latency.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
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
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.duration.max(1));
    let workers: Vec<_> = (0..args.concurrency.max(1))
        .map(|i| {
            tokio::spawn(worker(
                client.clone(),
                url.clone(),
                args.scenario,
                deadline,
                i,
            ))
        })
        .collect();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for w in workers {
        let outcome = w.await?;
        latencies.extend(outcome.latencies_us);
        errors += outcome.errors;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    println!(
        "{:?}: {} requests in {elapsed:.1}s with {} connections, {errors} errors",
        args.scenario,
        latencies.len(),
        args.concurrency
    );
    println!(
        "  {:.0} requests/s  p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        latencies.len() as f64 / elapsed,
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0),
        percentile(&latencies, 100.0),
    );
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
}
