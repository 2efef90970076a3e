//! Rate limits at the edge: GCRA budgets per client and route group.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;

use crate::support::{Fake, THINGS, WIDGETS, config, gateway, get, in_process, send};

fn from(ip: &str, uri: &str) -> Request<Body> {
    let addr: SocketAddr = format!("{ip}:40000").parse().expect("a socket address");
    let mut request = Request::get(uri)
        .body(Body::empty())
        .expect("a valid request");
    request.extensions_mut().insert(ConnectInfo(addr));
    request
}

#[tokio::test]
async fn a_client_over_its_budget_gets_429_with_retry_after_and_others_are_untouched() {
    let fake = Fake::new("things");
    let mut config = config();
    config.gateway_rate_limit_rps = 1;
    config.gateway_rate_limit_burst = 3;
    let app = gateway(&config, vec![in_process(&THINGS, &fake, "things")]);

    let mut remaining = Vec::new();
    for _ in 0..3 {
        let answer = send(&app, from("10.0.0.1", "/api/v1/things")).await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.header("ratelimit-limit"), "3");
        remaining.push(answer.header("ratelimit-remaining").to_owned());
    }
    assert_eq!(remaining, ["2", "1", "0"]);
    let refused = send(&app, from("10.0.0.1", "/api/v1/things")).await;
    refused.assert_problem(429, "rate_limited");
    assert_eq!(refused.header("retry-after"), "1");
    assert_eq!(refused.header("ratelimit-remaining"), "0");
    assert_eq!(
        fake.hits(),
        3,
        "a refused request never reaches the service"
    );

    let other = send(&app, from("10.0.0.2", "/api/v1/things")).await;
    assert_eq!(other.status, 200, "another client has its own budget");
    assert_eq!(
        get(&app, "/health").await.status,
        200,
        "only the API is limited"
    );
}

#[tokio::test]
async fn limits_are_exact_under_concurrency() {
    let fake = Fake::new("things");
    let mut config = config();
    config.gateway_rate_limit_rps = 1;
    config.gateway_rate_limit_burst = 20;
    let app = gateway(&config, vec![in_process(&THINGS, &fake, "things")]);
    let started = Instant::now();
    let calls = (0..200).map(|_| send(&app, from("10.0.0.9", "/api/v1/things")));
    let answers = futures::future::join_all(calls).await;
    let refilled = started.elapsed().as_secs() as usize;
    let ok = answers.iter().filter(|a| a.status == 200).count();
    assert!(
        (20..=20 + refilled).contains(&ok),
        "{ok} passed in {refilled} s with a burst of 20"
    );
    assert_eq!(answers.iter().filter(|a| a.status == 429).count(), 200 - ok);
}

#[tokio::test]
async fn route_groups_have_their_own_budgets_and_zero_turns_limits_off() {
    let things = Fake::new("things");
    let widgets = Fake::new("widgets");
    let mut config = config();
    config.gateway_rate_limit_rps = 100;
    config.gateway_rate_limit_burst = 100;
    config.gateway_rate_limits = "widgets=1/1".into();
    let app = gateway(
        &config,
        vec![
            in_process(&THINGS, &things, "things"),
            in_process(&WIDGETS, &widgets, "widgets"),
        ],
    );
    assert_eq!(
        send(&app, from("10.0.0.3", "/api/v1/widgets")).await.status,
        200
    );
    send(&app, from("10.0.0.3", "/api/v1/widgets"))
        .await
        .assert_problem(429, "rate_limited");
    assert_eq!(
        send(&app, from("10.0.0.3", "/api/v1/things")).await.status,
        200
    );

    config.gateway_rate_limit_rps = 0;
    config.gateway_rate_limits = String::new();
    let unlimited = gateway(&config, vec![in_process(&THINGS, &things, "things")]);
    for _ in 0..300 {
        let answer = send(&unlimited, from("10.0.0.4", "/api/v1/things")).await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.header("ratelimit-limit"), "");
    }
}

/// The Redis to share budgets through: `TEST_REDIS_URL`, which must then answer; `None` (and a
/// line saying so) when unset.
async fn test_redis() -> Option<String> {
    let Ok(url) = std::env::var("TEST_REDIS_URL") else {
        println!("TEST_REDIS_URL is not set: shared rate limits are not tested");
        return None;
    };
    let client = redis::Client::open(url.as_str()).expect("TEST_REDIS_URL is a Redis URL");
    let mut connection = tokio::time::timeout(
        Duration::from_secs(5),
        client.get_multiplexed_async_connection(),
    )
    .await
    .expect("Redis at TEST_REDIS_URL answers within 5 s")
    .expect("Redis at TEST_REDIS_URL accepts a connection");
    let pong: String = redis::cmd("PING")
        .query_async(&mut connection)
        .await
        .expect("Redis at TEST_REDIS_URL answers PING");
    assert_eq!(pong, "PONG");
    Some(url)
}

/// A route group no other test or earlier run uses, so no two share Redis keys.
fn unique_group() -> String {
    format!("rl{:016x}", rand::random::<u64>())
}

/// A gateway over the things service, its budgets in the Redis at `redis_url`.
fn shared_gateway(redis_url: &str, group: &str, limit: &str) -> Router {
    let mut config = config();
    config.redis_url = Some(redis_url.to_owned());
    config.gateway_rate_limits = format!("{group}={limit}");
    gateway(
        &config,
        vec![in_process(&THINGS, &Fake::new("things"), "things")],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateways_sharing_redis_share_one_budget_per_client() {
    let Some(redis_url) = test_redis().await else {
        return;
    };
    let group = unique_group();
    let uri = format!("/api/v1/{group}/x");
    // Two gateways built apart: each has its own memory, only Redis is common.
    let apps = [
        shared_gateway(&redis_url, &group, "1/10"),
        shared_gateway(&redis_url, &group, "1/10"),
    ];
    // One request each from another client, so that the burst below meets ready connections.
    for app in &apps {
        assert_ne!(send(app, from("10.1.0.250", &uri)).await.status, 429);
    }

    let calls = (0..40).map(|i| send(&apps[i % 2], from("10.1.0.1", &uri)));
    let answers = futures::future::join_all(calls).await;
    let (refused, passed): (Vec<_>, Vec<_>) = answers.iter().partition(|a| a.status == 429);
    assert_eq!(passed.len(), 10, "a burst of 10 across both gateways");
    for answer in &passed {
        assert!(!answer.status.is_server_error(), "{}", answer.status);
        assert_eq!(answer.header("ratelimit-limit"), "10");
    }
    let mut remaining: Vec<u32> = passed
        .iter()
        .map(|a| a.header("ratelimit-remaining").parse().expect("a number"))
        .collect();
    remaining.sort_unstable();
    assert_eq!(remaining, (0..10).collect::<Vec<u32>>(), "each count once");
    for answer in &refused {
        answer.assert_problem(429, "rate_limited");
        assert_eq!(answer.header("retry-after"), "1");
        assert_eq!(answer.header("ratelimit-remaining"), "0");
        assert_eq!(answer.header("ratelimit-reset"), "1");
    }

    let other = send(&apps[1], from("10.1.0.2", &uri)).await;
    assert_ne!(other.status, 429, "another client has its own budget");
    assert_eq!(other.header("ratelimit-remaining"), "9");
}

#[tokio::test]
async fn an_unreachable_redis_leaves_each_gateway_its_own_limits() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a local port");
    let port = listener.local_addr().expect("local address").port();
    drop(listener);
    let group = unique_group();
    let uri = format!("/api/v1/{group}/x");
    let app = shared_gateway(&format!("redis://127.0.0.1:{port}"), &group, "1/3");

    let mut statuses = BTreeMap::<u16, usize>::new();
    let mut remaining = Vec::new();
    for _ in 0..5 {
        let answer = send(&app, from("10.1.0.3", &uri)).await;
        assert!(!answer.status.is_server_error(), "{}", answer.status);
        *statuses.entry(answer.status.as_u16()).or_default() += 1;
        if answer.status != 429 {
            remaining.push(answer.header("ratelimit-remaining").to_owned());
        }
    }
    assert_eq!(remaining, ["2", "1", "0"], "the burst is kept in memory");
    assert_eq!(statuses.get(&429), Some(&2), "{statuses:?}");
}
