//! The response cache: hits and misses, ETag and 304, what is never cached, and many
//! concurrent misses of one key making one upstream call.

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use futures::future::join_all;

use crate::support::{Fake, THINGS, config, gateway, get, in_process, remote, send, serve};

fn cached_config() -> mercato_kernel::Config {
    let mut config = config();
    config.gateway_cache_routes = "things".to_owned();
    config
}

#[tokio::test]
async fn public_gets_are_served_from_the_cache_with_etags() {
    let fake = Fake::new("things");
    let app = gateway(&cached_config(), vec![in_process(&THINGS, &fake, "things")]);
    let first = get(&app, "/api/v1/things?page=1").await;
    assert_eq!(first.status, 200);
    assert_eq!(first.header("x-cache"), "MISS");
    let etag = first.header("etag").to_owned();
    assert!(etag.starts_with('"'), "{etag}");
    let second = get(&app, "/api/v1/things?page=1").await;
    assert_eq!(second.header("x-cache"), "HIT");
    assert_eq!(second.body, first.body, "the same answer");
    assert_eq!(fake.hits(), 1, "one upstream call");
    // Another query is another key.
    get(&app, "/api/v1/things?page=2").await;
    assert_eq!(fake.hits(), 2);

    let revalidate = send(
        &app,
        Request::get("/api/v1/things?page=1")
            .header("if-none-match", &etag)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(revalidate.status, 304);
    assert!(revalidate.body.is_empty());
    assert_eq!(revalidate.header("etag"), etag);

    // Credentials bypass the cache; so does a client's no-cache; POSTs are never cached.
    for request in [
        Request::get("/api/v1/things?page=1").header("authorization", "Bearer x"),
        Request::get("/api/v1/things?page=1").header("cache-control", "no-cache"),
    ] {
        send(&app, request.body(Body::empty()).unwrap()).await;
    }
    let post = send(
        &app,
        Request::post("/api/v1/things")
            .body(Body::from("x"))
            .unwrap(),
    )
    .await;
    assert_eq!(post.status, 201);
    assert_eq!(post.header("x-cache"), "");
    let hits_before = fake.hits();
    let metrics = get(&app, "/metrics").await.json();
    assert!(metrics["cache"]["hits"].as_u64().unwrap() >= 2, "{metrics}");
    assert_eq!(fake.hits(), hits_before);
    let route = &metrics["routes"]["/api/v1/things"];
    assert_eq!(route["requests"], 7, "{metrics}");
    let hits = route["cache_hits"].as_f64().unwrap();
    let misses = route["cache_misses"].as_f64().unwrap();
    assert!(hits >= 1.0 && misses >= 2.0, "{metrics}");
    let ratio = route["cache_hit_ratio"].as_f64().unwrap();
    assert!((ratio - hits / (hits + misses)).abs() < 0.001, "{metrics}");
    assert!(route["p99_latency_ms"].as_f64().is_some(), "{metrics}");
}

#[tokio::test]
async fn routes_not_configured_are_never_cached() {
    let fake = Fake::new("things");
    let app = gateway(&config(), vec![in_process(&THINGS, &fake, "things")]);
    for _ in 0..3 {
        let answer = get(&app, "/api/v1/things").await;
        assert_eq!(answer.header("x-cache"), "");
    }
    assert_eq!(fake.hits(), 3);
}

#[tokio::test]
async fn a_hundred_concurrent_misses_make_one_upstream_call() {
    let fake = Fake::new("things");
    let url = serve(fake.router("things")).await;
    let mut config = cached_config();
    config.gateway_request_timeout_ms = 10_000;
    let app = Arc::new(gateway(&config, vec![remote(&THINGS, vec![url])]));
    let answers = join_all((0..100).map(|_| {
        let app = app.clone();
        async move { get(&app, "/api/v1/things/slow").await }
    }))
    .await;
    assert!(
        answers
            .iter()
            .all(|a| a.status == 200 && a.body == "finally")
    );
    assert_eq!(fake.hits(), 1, "the upstream saw one request");
    let misses = answers
        .iter()
        .filter(|a| a.header("x-cache") == "MISS")
        .count();
    assert_eq!(misses, 1, "one caller fetched, the others waited for it");
}

#[tokio::test]
async fn invalidation_sends_the_next_request_upstream() {
    let fake = Fake::new("things");
    let built = mercato_gateway::build(
        &cached_config(),
        vec![in_process(&THINGS, &fake, "things")],
        std::sync::Arc::new(mercato_kernel::auth::Authenticator::default()),
        None,
    );
    let app = built.router;
    get(&app, "/api/v1/things").await;
    assert_eq!(get(&app, "/api/v1/things").await.header("x-cache"), "HIT");
    built.cache.expect("caching is on").invalidate_all();
    assert_eq!(get(&app, "/api/v1/things").await.header("x-cache"), "MISS");
    assert_eq!(fake.hits(), 2);
}
