//! Graceful shutdown: in-flight requests finish, new connections are refused.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use mercato_kernel::auth::Authenticator;
use mercato_kernel::http::Stack;
use mercato_kernel::server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

async fn get_over(stream: &mut TcpStream, path: &str) -> String {
    let request = format!("GET {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

#[tokio::test]
async fn shutdown_drains_in_flight_requests_and_refuses_new_ones() {
    let started = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let (s, r) = (started.clone(), release.clone());
    let router = Router::new().route(
        "/slow",
        get(move || {
            let (started, release) = (s.clone(), r.clone());
            async move {
                started.notify_one();
                release.notified().await;
                "finished"
            }
        }),
    );
    let app = Stack {
        service: "test",
        body_limit: 1024,
        auth: Arc::new(Authenticator::default()),
    }
    .apply(router);
    let listener = server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let serving = tokio::spawn(server::serve(
        listener,
        app,
        shutdown.clone(),
        Duration::from_secs(10),
    ));

    let mut in_flight = TcpStream::connect(addr).await.unwrap();
    let request = tokio::spawn(async move { get_over(&mut in_flight, "/slow").await });
    started.notified().await;

    shutdown.cancel();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !serving.is_finished(),
        "the server stopped before its request finished"
    );
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "a new connection was accepted while draining"
    );

    release.notify_one();
    let response = request.await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("finished"), "{response}");
    serving.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_request_outliving_the_grace_period_does_not_hold_shutdown() {
    let router = Router::new().route("/stuck", get(std::future::pending::<&'static str>));
    let listener = server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let serving = tokio::spawn(server::serve(
        listener,
        router,
        shutdown.clone(),
        Duration::from_millis(200),
    ));
    let mut stuck = TcpStream::connect(addr).await.unwrap();
    stuck
        .write_all(b"GET /stuck HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), serving)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_taken_port_is_reported_as_such() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let err = server::bind(holder.local_addr().unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, server::BindError::InUse { .. }), "{err}");
}
