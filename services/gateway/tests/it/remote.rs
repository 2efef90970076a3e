//! Distributed mode: the gateway reaches services over HTTP.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use mercato_kernel::auth::Authenticator;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_util::sync::CancellationToken;

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

/// Serves `router` on a local port, counting the connections it accepts.
async fn serve_counting(router: axum::Router) -> (String, Arc<AtomicUsize>) {
    use axum::serve::ListenerExt as _;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a local port");
    let addr = listener.local_addr().expect("local address");
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    let listener = listener.tap_io(move |_| {
        count.fetch_add(1, Ordering::SeqCst);
    });
    tokio::spawn(async move { axum::serve(listener, router).await });
    (format!("http://{addr}"), accepted)
}

#[tokio::test]
async fn upstream_connections_are_kept_up_to_the_free_socket_limit() {
    for (max_free, expected) in [(256, 1), (0, 5)] {
        let fake = Fake::new("things");
        let (url, accepted) = serve_counting(fake.router("things")).await;
        let mut cfg = config();
        cfg.gateway_max_free_sockets = max_free;
        // Only the requests below open connections.
        cfg.gateway_health_interval_ms = 0;
        let app = gateway(&cfg, vec![remote(&THINGS, vec![url])]);

        for _ in 0..5 {
            assert_eq!(get(&app, "/api/v1/things").await.status, 200);
        }

        assert_eq!(fake.hits(), 5);
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            expected,
            "GATEWAY_MAX_FREE_SOCKETS={max_free}"
        );
    }
}

#[tokio::test]
async fn a_write_after_the_upstream_closed_an_idle_connection_goes_on_a_new_one() {
    // Answers one request per connection, then closes it without saying so beforehand, as a
    // server does when its keep-alive timeout runs out.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let received = Arc::new(AtomicUsize::new(0));
    let count = received.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                count.fetch_add(1, Ordering::SeqCst);
                let answer = "HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok";
                let _ = socket.write_all(answer.as_bytes()).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            });
        }
    });
    let mut cfg = config();
    // Only the writes below reach the upstream.
    cfg.gateway_health_interval_ms = 0;
    let app = gateway(&cfg, vec![remote(&THINGS, vec![url])]);

    for _ in 0..3 {
        let post = Request::post("/api/v1/things").body(Body::empty()).unwrap();
        let answer = send(&app, post).await;
        assert_eq!(answer.status, 201);
        assert_eq!(answer.body, "ok");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    assert_eq!(
        received.load(Ordering::SeqCst),
        3,
        "each write reached the upstream once"
    );
}

#[tokio::test]
async fn the_gateway_serves_on_threads_and_stops_gracefully() {
    let fake = Fake::new("things");
    let upstream = serve(fake.router("things")).await;
    let built = mercato_gateway::build(
        &config(),
        vec![remote(&THINGS, vec![upstream])],
        Arc::new(Authenticator::default()),
        None,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(mercato_gateway::serve(
        listener,
        built.front,
        2,
        shutdown.clone(),
        Duration::from_secs(5),
    ));

    let client = reqwest::Client::new();
    let calls = (0..100).map(|i| {
        let client = client.clone();
        let url = format!("{base}/api/things?i={i}");
        async move {
            let answer = client.get(url).send().await.unwrap();
            let status = answer.status().as_u16();
            let headers = answer.headers().clone();
            let body: serde_json::Value = answer.json().await.unwrap();
            (status, headers, body, i)
        }
    });
    for (status, headers, body, i) in futures::future::join_all(calls).await {
        assert_eq!(status, 200);
        assert_eq!(body["query"], format!("i={i}"));
        assert_eq!(body["forwarded_for"], "127.0.0.1");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["x-request-id"].len(), 32);
    }
    // Pages and the gateway's own routes are served beside the API.
    let health = client.get(format!("{base}/health")).send().await.unwrap();
    assert!(health.status().is_success(), "{}", health.status());
    assert_eq!(fake.hits(), 100);

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the server stops once its connections are done")
        .unwrap()
        .unwrap();
    assert!(
        client.get(format!("{base}/health")).send().await.is_err(),
        "nothing listens after the shutdown"
    );
}
