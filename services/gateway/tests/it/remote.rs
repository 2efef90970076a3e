//! Distributed mode: the gateway reaches services over HTTP.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;

use crate::support::{Fake, THINGS, config, gateway, get, refusing_url, remote, send, serve};

#[tokio::test]
async fn requests_are_spread_over_the_replicas() {
    let (a, b) = (Fake::new("a"), Fake::new("b"));
    let urls = vec![
        serve(a.router("things")).await,
        serve(b.router("things")).await,
    ];
    let mut config = config();
    config.gateway_lb_strategy = "round_robin".to_owned();
    let app = gateway(&config, vec![remote(&THINGS, urls)]);

    for _ in 0..6 {
        let answer = get(&app, "/api/things?x=1").await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.json()["query"], "x=1");
    }

    assert_eq!((a.hits(), b.hits()), (3, 3));
}

#[tokio::test]
async fn bodies_and_request_ids_cross_the_network() {
    let fake = Fake::new("things");
    let app = gateway(
        &config(),
        vec![remote(&THINGS, vec![serve(fake.router("things")).await])],
    );

    let request = Request::post("/api/v1/things")
        .header("x-request-id", "net-1")
        .header("connection", "keep-alive")
        .body(Body::from("x".repeat(600)))
        .unwrap();
    let answer = send(&app, request).await;

    assert_eq!(answer.status, 201);
    assert_eq!(answer.body.len(), 600);
    assert_eq!(answer.header("x-request-id"), "net-1");
    assert_eq!(*fake.request_ids.lock().unwrap(), ["net-1"]);
}

#[tokio::test]
async fn a_gateway_on_a_socket_forwards_the_client_address() {
    let fake = Fake::new("things");
    let upstream = serve(fake.router("things")).await;
    let base = serve(gateway(&config(), vec![remote(&THINGS, vec![upstream])])).await;

    let answer: serde_json::Value = reqwest::Client::new()
        .get(format!("{base}/api/things?y=2"))
        .header("x-request-id", "sock-1")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    assert_eq!(answer["forwarded_for"], "127.0.0.1");
    assert_eq!(answer["forwarded_host"], base.trim_start_matches("http://"));
    assert_eq!(
        answer["forwarded"],
        format!(
            "for=127.0.0.1;proto=http;host=\"{}\"",
            base.trim_start_matches("http://")
        )
    );
    assert_eq!(answer["request_id"], "sock-1");
    assert_eq!(answer["query"], "y=2");
    assert_eq!(
        answer["connection"], "",
        "hop-by-hop headers are not forwarded"
    );
}

#[tokio::test]
async fn a_refusing_replica_is_a_bad_gateway() {
    let app = gateway(&config(), vec![remote(&THINGS, vec![refusing_url().await])]);

    let started = Instant::now();
    get(&app, "/api/v1/things")
        .await
        .assert_problem(502, "bad_gateway");
    let post = Request::post("/api/v1/things")
        .body(Body::from("x"))
        .unwrap();
    send(&app, post).await.assert_problem(502, "bad_gateway");

    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_refusing_replica_is_skipped_for_safe_requests() {
    let fake = Fake::new("things");
    let urls = vec![refusing_url().await, serve(fake.router("things")).await];
    let app = gateway(&config(), vec![remote(&THINGS, urls)]);

    for _ in 0..4 {
        assert_eq!(get(&app, "/api/v1/things").await.status, 200);
    }
    assert_eq!(fake.hits(), 4);
}

#[tokio::test]
async fn a_slow_replica_times_out() {
    let fake = Fake::new("things");
    let mut cfg = config();
    cfg.gateway_request_timeout_ms = 200;
    let app = gateway(
        &cfg,
        vec![remote(&THINGS, vec![serve(fake.router("things")).await])],
    );

    get(&app, "/api/v1/things/slow")
        .await
        .assert_problem(504, "upstream_timeout");
}

#[tokio::test]
async fn request_bodies_over_the_limit_are_refused() {
    let fake = Fake::new("things");
    let mut cfg = config();
    cfg.mercato_body_limit_bytes = 100;
    let app = gateway(
        &cfg,
        vec![remote(&THINGS, vec![serve(fake.router("things")).await])],
    );

    // A streamed body (no content-length) is cut at the limit on its way upstream.
    let chunks = futures::stream::iter(
        (0..20).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from_static(&[b'x'; 10]))),
    );
    let request = Request::post("/api/v1/things")
        .body(Body::from_stream(chunks))
        .unwrap();
    send(&app, request)
        .await
        .assert_problem(413, "payload_too_large");
}

#[tokio::test]
async fn invalid_replica_urls_are_left_out() {
    let app = gateway(
        &config(),
        vec![remote(&THINGS, vec!["ftp://nowhere".to_owned()])],
    );

    get(&app, "/api/v1/things")
        .await
        .assert_problem(503, "service_unavailable");
}
