//! What the providers' unit tests share: a fake HTTP server that records every request and
//! answers through a closure (HTTP/1 through axum, or HTTP/2 without TLS through hyper for
//! APNs), a URL nothing listens on, and PEM encoding for test keys.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Version};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;

/// One request a fake server got.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) method: Method,
    pub(crate) version: Version,
    pub(crate) path: String,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Received {
    async fn read(request: Request) -> Self {
        let (parts, body) = request.into_parts();
        Self {
            method: parts.method,
            version: parts.version,
            path: parts.uri.path().to_owned(),
            headers: parts.headers,
            body: axum::body::to_bytes(body, usize::MAX).await.unwrap(),
        }
    }

    /// The header `name`, empty when absent.
    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", |v| v.to_str().unwrap())
    }

    /// The body as text.
    pub(crate) fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }

    /// The urlencoded form in the body.
    pub(crate) fn form(&self) -> HashMap<String, String> {
        url::form_urlencoded::parse(&self.body)
            .into_owned()
            .collect()
    }

    /// The JSON body, `null` when it is not JSON.
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// What a fake server received, in order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Log(Arc<Mutex<Vec<Received>>>);

impl Log {
    /// Every request so far.
    pub(crate) fn all(&self) -> Vec<Received> {
        self.0.lock().unwrap().clone()
    }
}

type Answer = Arc<dyn Fn(&Received) -> Response + Send + Sync>;

fn answer_with<R: IntoResponse>(answer: impl Fn(&Received) -> R + Send + Sync + 'static) -> Answer {
    Arc::new(move |received| answer(received).into_response())
}

async fn record(log: Log, answer: Answer, request: Request) -> Response {
    let received = Received::read(request).await;
    log.0.lock().unwrap().push(received.clone());
    answer(&received)
}

async fn bind() -> (tokio::net::TcpListener, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    (listener, base)
}

/// Serves `app` over HTTP/1 on a free local port; returns its base URL (`http://127.0.0.1:…`).
pub(crate) async fn spawn(app: Router) -> String {
    let (listener, base) = bind().await;
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

/// Starts an HTTP/1 server recording every request and answering it with `answer`; returns its
/// base URL and what it received.
pub(crate) async fn serve<R: IntoResponse>(
    answer: impl Fn(&Received) -> R + Send + Sync + 'static,
) -> (String, Log) {
    let log = Log::default();
    let (seen, answer) = (log.clone(), answer_with(answer));
    let app = Router::new()
        .fallback(move |request: Request| record(seen.clone(), answer.clone(), request));
    (spawn(app).await, log)
}

/// Starts a server answering every request with `status`, `headers` and `body`; returns its
/// base URL and what it received.
pub(crate) async fn canned(
    status: StatusCode,
    headers: &'static [(&'static str, &'static str)],
    body: &'static str,
) -> (String, Log) {
    serve(move |_| {
        let mut answer = (status, body).into_response();
        for (name, value) in headers {
            answer
                .headers_mut()
                .insert(*name, HeaderValue::from_static(value));
        }
        answer
    })
    .await
}

/// Like [`serve`], but speaking HTTP/2 without TLS (h2c with prior knowledge) only.
pub(crate) async fn serve_http2<R: IntoResponse>(
    answer: impl Fn(&Received) -> R + Send + Sync + 'static,
) -> (String, Log) {
    let log = Log::default();
    let (seen, answer) = (log.clone(), answer_with(answer));
    let (listener, base) = bind().await;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (seen, answer) = (seen.clone(), answer.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |request: hyper::Request<hyper::body::Incoming>| {
                        let request = request.map(axum::body::Body::new);
                        let response = record(seen.clone(), answer.clone(), request);
                        async move { Ok::<_, Infallible>(response.await) }
                    },
                );
                // A client hanging up ends the connection with an error: nothing to do.
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (base, log)
}

/// `http://127.0.0.1:<port>` with nothing listening on the port.
pub(crate) fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", listener.local_addr().unwrap())
}

/// `der` as PEM under `label` (e.g. `PRIVATE KEY`), 64 base64 characters a line.
pub(crate) fn pem(label: &str, der: &[u8]) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = encoded
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}
