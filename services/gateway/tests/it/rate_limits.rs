//! Rate limits at the edge: GCRA budgets per client and route group.

use std::net::SocketAddr;
use std::time::Instant;

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
