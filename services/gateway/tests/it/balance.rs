//! Load balancing over real upstream listeners: the strategies spread requests, a dead
//! replica is ejected after its failures and readmitted after the window.

use std::net::SocketAddr;

use axum::body::Body;
use axum::http::Request;

use crate::support::{Fake, THINGS, config, gateway, get, refusing_url, remote, send, serve};

fn balanced(strategy: &str) -> mercato_kernel::Config {
    let mut config = config();
    config.gateway_lb_strategy = strategy.to_owned();
    config
}

#[tokio::test]
async fn every_strategy_spreads_requests_over_the_replicas() {
    for strategy in ["round_robin", "least_outstanding", "p2c"] {
        let (a, b) = (Fake::new("a"), Fake::new("b"));
        let urls = vec![
            serve(a.router("things")).await,
            serve(b.router("things")).await,
        ];
        let app = gateway(&balanced(strategy), vec![remote(&THINGS, urls)]);
        for _ in 0..100 {
            assert_eq!(get(&app, "/api/v1/things").await.status, 200);
        }
        let (ha, hb) = (a.hits(), b.hits());
        assert_eq!(ha + hb, 100, "{strategy}");
        if strategy == "p2c" {
            assert!(ha >= 20 && hb >= 20, "{strategy}: {ha} / {hb}");
        } else {
            assert_eq!((ha, hb), (50, 50), "{strategy}");
        }
    }
}

#[tokio::test]
async fn a_dead_replica_is_ejected_then_readmitted_when_it_is_back() {
    let live = Fake::new("live");
    let dead_url = refusing_url().await;
    let urls = vec![dead_url.clone(), serve(live.router("things")).await];
    let mut config = balanced("round_robin");
    config.gateway_eject_after = 2;
    config.gateway_eject_ms = 500;
    // Passive ejection alone: no health checks.
    config.gateway_health_interval_ms = 0;
    let app = gateway(&config, vec![remote(&THINGS, urls)]);
    let post = || {
        Request::post("/api/v1/things")
            .body(Body::from("x"))
            .unwrap()
    };
    // POSTs are never retried on another replica: the dead one fails them until it is
    // ejected, after `GATEWAY_EJECT_AFTER` failures.
    let mut failed = 0;
    for _ in 0..20 {
        let answer = send(&app, post()).await;
        if answer.status != 201 {
            assert_eq!(
                answer.status,
                502,
                "{}",
                String::from_utf8_lossy(&answer.body)
            );
            failed += 1;
        }
    }
    assert!(failed <= 2, "{failed} failed POSTs: ejection after 2");
    // GETs go on to the live replica at once.
    for _ in 0..10 {
        assert_eq!(get(&app, "/api/v1/things").await.status, 200);
    }
    // The dead replica comes back on its address; after the window it gets traffic again.
    let revived = Fake::new("revived");
    let addr: SocketAddr = dead_url.trim_start_matches("http://").parse().unwrap();
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let router = revived.router("things");
    tokio::spawn(async move { axum::serve(listener, router).await });
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    for _ in 0..10 {
        assert_eq!(send(&app, post()).await.status, 201);
    }
    assert!(revived.hits() > 0, "readmitted after the ejection window");
}

#[tokio::test]
async fn the_breaker_opens_on_failures_half_opens_and_closes_when_the_service_recovers() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
    let status = Arc::new(AtomicU16::new(500));
    let calls = Arc::new(AtomicUsize::new(0));
    let (s, c) = (status.clone(), calls.clone());
    let router = axum::Router::new().route(
        "/api/v1/things",
        axum::routing::get(move || {
            let (s, c) = (s.clone(), c.clone());
            async move {
                c.fetch_add(1, Ordering::SeqCst);
                axum::http::StatusCode::from_u16(s.load(Ordering::SeqCst)).unwrap()
            }
        }),
    );
    let url = serve(router).await;
    let mut config = config();
    config.gateway_breaker_failures = 3;
    config.gateway_breaker_cooldown_ms = 300;
    config.gateway_eject_after = 100;
    let app = gateway(&config, vec![remote(&THINGS, vec![url])]);
    for _ in 0..3 {
        assert_eq!(get(&app, "/api/v1/things").await.status, 500);
    }
    // Open: answered by the gateway at once, the service is not called.
    for _ in 0..5 {
        get(&app, "/api/v1/things")
            .await
            .assert_problem(503, "circuit_open");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(
        get(&app, "/metrics").await.json()["upstreams"]["things"]["breaker"],
        "open"
    );
    // After the cooldown one probe goes through; it fails: open again.
    tokio::time::sleep(std::time::Duration::from_millis(350)).await;
    assert_eq!(get(&app, "/api/v1/things").await.status, 500);
    get(&app, "/api/v1/things")
        .await
        .assert_problem(503, "circuit_open");
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    // The service recovers: the next probe closes the breaker.
    status.store(200, Ordering::SeqCst);
    tokio::time::sleep(std::time::Duration::from_millis(350)).await;
    for _ in 0..5 {
        assert_eq!(get(&app, "/api/v1/things").await.status, 200);
    }
    assert_eq!(
        get(&app, "/metrics").await.json()["upstreams"]["things"]["breaker"],
        "closed"
    );
}

#[tokio::test]
async fn a_replica_failing_its_health_check_gets_no_traffic_until_it_passes_again() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
    let replica = |health: Arc<AtomicU16>, hits: Arc<AtomicUsize>| {
        axum::Router::new()
            .route(
                "/health",
                axum::routing::get(move || {
                    let health = health.clone();
                    async move {
                        axum::http::StatusCode::from_u16(health.load(Ordering::SeqCst)).unwrap()
                    }
                }),
            )
            .route(
                "/api/v1/things",
                axum::routing::get(move || {
                    let hits = hits.clone();
                    async move {
                        hits.fetch_add(1, Ordering::SeqCst);
                        "ok"
                    }
                }),
            )
    };
    let (health_a, hits_a) = (Arc::new(AtomicU16::new(200)), Arc::new(AtomicUsize::new(0)));
    let (health_b, hits_b) = (Arc::new(AtomicU16::new(503)), Arc::new(AtomicUsize::new(0)));
    let urls = vec![
        serve(replica(health_a.clone(), hits_a.clone())).await,
        serve(replica(health_b.clone(), hits_b.clone())).await,
    ];
    let mut config = balanced("round_robin");
    config.gateway_health_interval_ms = 100;
    let app = gateway(&config, vec![remote(&THINGS, urls)]);
    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    for _ in 0..20 {
        assert_eq!(get(&app, "/api/v1/things").await.status, 200);
    }
    assert_eq!(
        (hits_a.load(Ordering::SeqCst), hits_b.load(Ordering::SeqCst)),
        (20, 0)
    );
    health_b.store(200, Ordering::SeqCst);
    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    for _ in 0..20 {
        get(&app, "/api/v1/things").await;
    }
    assert_eq!(
        hits_b.load(Ordering::SeqCst),
        10,
        "readmitted: round robin again"
    );
}

#[tokio::test]
async fn only_writes_with_an_idempotency_key_go_on_to_another_replica_after_a_refused_connection() {
    let live = Fake::new("live");
    let urls = vec![refusing_url().await, serve(live.router("things")).await];
    let mut config = balanced("round_robin");
    config.gateway_health_interval_ms = 0;
    config.gateway_eject_after = 1000;
    config.gateway_breaker_failures = 0;
    let app = gateway(&config, vec![remote(&THINGS, urls)]);
    for n in 0..10 {
        let keyed = send(
            &app,
            Request::post("/api/v1/things")
                .header("idempotency-key", format!("k{n}"))
                .body(Body::from(format!("order {n}")))
                .unwrap(),
        )
        .await;
        assert_eq!(
            keyed.status, 201,
            "a keyed write never fails on the dead replica"
        );
        assert_eq!(
            keyed.body,
            format!("order {n}"),
            "the same body, sent again"
        );
    }
    let mut unkeyed_failed = 0;
    for _ in 0..10 {
        let unkeyed = send(
            &app,
            Request::post("/api/v1/things")
                .body(Body::from("x"))
                .unwrap(),
        )
        .await;
        if unkeyed.status == 502 {
            unkeyed_failed += 1;
        }
    }
    assert_eq!(
        unkeyed_failed, 5,
        "an unkeyed write is tried once: half go to the dead one"
    );
    assert_eq!(live.hits(), 15);
}
