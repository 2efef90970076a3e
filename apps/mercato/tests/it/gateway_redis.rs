//! Two `mercato serve gateway` processes sharing their rate limits through Redis.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Child;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{free_port, spawn_mercato, wait_ok};

/// Kills the gateways however the test ends.
struct Gateways(Vec<Child>);

impl Drop for Gateways {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Panics unless the Redis at `url` (`redis://host:port`) answers PING: a set
/// `TEST_REDIS_URL` means the shared limits are tested, never skipped.
fn assert_redis_answers(url: &str) {
    let address = url
        .trim_start_matches("redis://")
        .split(['/', '?'])
        .next()
        .unwrap();
    let address = address.rsplit('@').next().unwrap();
    let mut stream = TcpStream::connect(address)
        .unwrap_or_else(|e| panic!("Redis at TEST_REDIS_URL is down ({e})"));
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(b"PING\r\n").unwrap();
    let mut reply = [0; 7];
    stream.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"+PONG\r\n", "Redis at TEST_REDIS_URL answers PING");
}

#[tokio::test]
async fn two_gateway_processes_share_one_budget_through_redis() {
    let Ok(redis_url) = std::env::var("TEST_REDIS_URL") else {
        println!("TEST_REDIS_URL is not set: shared rate limits are not tested");
        return;
    };
    assert_redis_answers(&redis_url);
    let dir = tempfile::tempdir().unwrap();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    // Unique per run, so neither reruns nor a parallel run meet this run's Redis keys.
    let group = format!("rl{}x{nanos}", std::process::id());
    let warm = format!("{group}w");

    let mut gateways = Gateways(Vec::new());
    let mut bases = Vec::new();
    for i in 0..2 {
        let port = free_port().to_string();
        let env = vec![
            ("REDIS_URL".to_owned(), redis_url.clone()),
            (
                "GATEWAY_RATE_LIMITS".to_owned(),
                format!("{group}=1/10;{warm}=100/100"),
            ),
            (
                "MERCATO_DATA_DIR".to_owned(),
                dir.path().join(format!("gateway{i}")).display().to_string(),
            ),
        ];
        gateways
            .0
            .push(spawn_mercato(&["serve", "gateway", "--port", &port], &env));
        let base = format!("http://127.0.0.1:{port}");
        wait_ok(gateways.0.last_mut().unwrap(), &format!("{base}/health")).await;
        bases.push(base);
    }

    let client = reqwest::Client::new();
    // Through another group first, so that the burst below meets ready Redis connections.
    for base in &bases {
        let response = client
            .get(format!("{base}/api/v1/{warm}/x"))
            .send()
            .await
            .unwrap();
        assert_ne!(response.status(), 429);
    }
    let calls = (0..40).map(|i| {
        client
            .get(format!("{}/api/v1/{group}/x", bases[i % 2]))
            .send()
    });
    let statuses: Vec<u16> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(|r| r.unwrap().status().as_u16())
        .collect();
    let passed = statuses.iter().filter(|s| **s != 429).count();
    assert_eq!(
        passed, 10,
        "a burst of 10 across both processes: {statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s < 500),
        "no server error: {statuses:?}"
    );
}
