//! The middleware stack every service and the gateway share: request ids, a span per request,
//! RED metrics per route, body limit, panic guard, problem+json fallbacks.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use metrics::{Counter, Histogram, SharedString};
use tower_http::catch_panic::CatchPanicLayer;
use tracing::Instrument;

use crate::auth::Authenticator;
use crate::error::{self, ApiError};

/// Header carrying the request id, generated when absent and echoed on the response.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request's id, in request extensions for handlers that pass it on.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// What the stack needs to know about the app it wraps.
#[derive(Clone)]
pub struct Stack {
    /// Service name, as the `service` label of metrics and in logs.
    pub service: &'static str,
    /// Largest accepted request body.
    pub body_limit: usize,
    /// Token verifier the auth extractors find in request extensions.
    pub auth: Arc<Authenticator>,
}

impl Stack {
    /// Wraps `router` with the shared middleware and problem+json fallbacks.
    pub fn apply(self, router: Router) -> Router {
        self.wrap(
            router
                .fallback(error::not_found)
                .method_not_allowed_fallback(error::method_not_allowed),
        )
    }

    /// Wraps `router` with the shared middleware, keeping its own fallback (the gateway's is
    /// its proxy).
    pub fn wrap(self, router: Router) -> Router {
        let observed = Observed {
            service: self.service,
            body_limit: self.body_limit,
        };
        router
            .route_layer(middleware::from_fn(tag_route))
            .layer(DefaultBodyLimit::max(self.body_limit))
            .layer(axum::Extension(self.auth))
            .layer(CatchPanicLayer::custom(panic_response))
            .layer(middleware::from_fn_with_state(observed, observe))
    }
}

#[derive(Clone, Copy)]
struct Observed {
    service: &'static str,
    body_limit: usize,
}

/// The matched route template, carried out on the response for the metrics label.
#[derive(Clone)]
struct Route(MatchedPath);

async fn tag_route(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().cloned();
    let mut response = next.run(request).await;
    if let Some(route) = route {
        response.extensions_mut().insert(Route(route));
    }
    response
}

fn request_id(request: &Request) -> String {
    request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(new_request_id, str::to_owned)
}

/// A fresh request id: 32 hex digits ordered by time (milliseconds), then a random number
/// drawn once per process, then a counter. Unique across processes like a UUIDv7, without
/// asking the system for randomness on every request.
fn new_request_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static PROCESS: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let process = *PROCESS.get_or_init(|| {
        let mut bytes = [0; 4];
        // Without system randomness the process part is zero; the time and counter remain.
        let _ = aws_lc_rs::rand::fill(&mut bytes);
        u32::from_le_bytes(bytes)
    });
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut id = [0u8; 16];
    id[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
    id[6..10].copy_from_slice(&process.to_be_bytes());
    id[10..].copy_from_slice(&count.to_be_bytes()[2..]);
    // Every request gets one: a table lookup per digit rather than the formatting machinery,
    // and one allocation.
    let mut text = [0u8; 32];
    let _ = hex::encode_to_slice(id, &mut text);
    String::from_utf8_lossy(&text).into_owned()
}

/// Keeps the in-flight gauge right even when a request future is dropped midway.
struct InFlight(metrics::Gauge);

impl InFlight {
    fn start(service: &'static str) -> Self {
        let gauge = HANDLES.with_borrow_mut(|handles| {
            handles
                .in_flight
                .entry(service)
                .or_insert_with(|| metrics::gauge!("http_requests_in_flight", "service" => service))
                .clone()
        });
        gauge.increment(1.0);
        Self(gauge)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// Metric handles by their labels, kept per thread: registering a handle builds and hashes
/// its key, which every request would otherwise pay for. Handles are taken from the
/// recorder installed at the time, which the processes install before serving.
#[derive(Default)]
struct Handles {
    in_flight: HashMap<&'static str, metrics::Gauge>,
    /// By route, then service, method and status.
    requests: HashMap<String, HashMap<RequestLabels, (Counter, Histogram)>>,
}

type RequestLabels = (&'static str, &'static str, u16);

thread_local! {
    static HANDLES: RefCell<Handles> = RefCell::default();
}

/// One request as the stack sees it: its id, its span, its start and its place among the
/// requests in flight, from [`Observation::start`] to [`Observation::finish`]. A server that
/// answers some requests without the router (the gateway's proxy) observes them alike.
pub struct Observation {
    service: &'static str,
    id: String,
    method: axum::http::Method,
    span: tracing::Span,
    started: Instant,
    _in_flight: InFlight,
}

impl Observation {
    /// Gives `request` its id (the caller's when well-formed) and starts the clock.
    pub fn start(service: &'static str, request: &mut Request) -> Self {
        let id = request_id(request);
        let method = request.method().clone();
        let span = tracing::info_span!(
            "request",
            service,
            request_id = %id,
            method = %method,
            path = %request.uri().path(),
        );
        if let Ok(value) = HeaderValue::from_str(&id) {
            request.headers_mut().insert(REQUEST_ID, value);
        }
        request.extensions_mut().insert(RequestId(id.clone()));
        Self {
            service,
            id,
            method,
            span,
            started: Instant::now(),
            _in_flight: InFlight::start(service),
        }
    }

    /// The request's span, for the work done on it.
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// Records the answer (metrics, log line), echoes the request id and turns a plain-text
    /// error into a problem.
    pub async fn finish(self, mut response: Response) -> Response {
        let elapsed = self.started.elapsed();
        let status = response.status();
        let route = response
            .extensions()
            .get::<Route>()
            .map_or("unmatched", |r| r.0.as_str());
        record(self.service, self.method.as_str(), route, status, elapsed);
        self.span.in_scope(|| {
            tracing::info!(
                status = status.as_u16(),
                latency_ms = elapsed.as_millis() as u64,
                "served"
            )
        });
        if let Ok(value) = HeaderValue::from_str(&self.id) {
            response.headers_mut().insert(REQUEST_ID, value);
        }
        as_problem(response).await
    }
}

/// The 413 problem for a request whose declared body is larger than `limit`, before any of
/// it is read.
pub fn refuse_too_large(request: &Request, limit: usize) -> Option<Response> {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())?;
    (declared > limit).then(|| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request body is larger than {limit} bytes"),
        )
        .into_response()
    })
}

async fn observe(State(cfg): State<Observed>, mut request: Request, next: Next) -> Response {
    let observation = Observation::start(cfg.service, &mut request);
    let response = match refuse_too_large(&request, cfg.body_limit) {
        Some(refused) => refused,
        None => {
            next.run(request)
                .instrument(observation.span().clone())
                .await
        }
    };
    observation.finish(response).await
}

/// Rejections of axum's own extractors (`String`, `Bytes`, `Form`…) answer `text/plain`;
/// rewrapping them keeps every error of the platform in one format.
async fn as_problem(response: Response) -> Response {
    let plain_error = (response.status().is_client_error() || response.status().is_server_error())
        && response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/plain"));
    if !plain_error {
        return response;
    }
    let (parts, body) = response.into_parts();
    let detail = match axum::body::to_bytes(body, 4096).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => String::new(),
    };
    let status = parts.status;
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        s if s.is_server_error() => "internal_error",
        _ => "bad_request",
    };
    let detail = if status.is_server_error() {
        "internal error".to_owned()
    } else {
        detail
    };
    let mut problem = ApiError::new(status, code, detail).into_response();
    for name in [REQUEST_ID, header::RETRY_AFTER, header::WWW_AUTHENTICATE] {
        if let Some(value) = parts.headers.get(&name) {
            problem.headers_mut().insert(name, value.clone());
        }
    }
    problem
}

fn record(service: &'static str, method: &str, route: &str, status: StatusCode, elapsed: Duration) {
    let handles = |route: &str| {
        let labels = [
            ("service", SharedString::const_str(service)),
            ("method", static_method(method)),
            ("route", SharedString::from(route.to_owned())),
            ("status", SharedString::from(status.as_u16().to_string())),
        ];
        (
            metrics::counter!("http_requests_total", &labels),
            metrics::histogram!("http_request_duration_seconds", &labels[..3]),
        )
    };
    let count = |(counter, histogram): &(Counter, Histogram)| {
        counter.increment(1);
        histogram.record(elapsed.as_secs_f64());
    };
    match standard_method(method) {
        Some(method) => HANDLES.with_borrow_mut(|cached| {
            let by_labels = match cached.requests.get_mut(route) {
                Some(by_labels) => by_labels,
                None => cached.requests.entry(route.to_owned()).or_default(),
            };
            count(
                by_labels
                    .entry((service, method, status.as_u16()))
                    .or_insert_with(|| handles(route)),
            );
        }),
        // Any method name may come in: those are not kept.
        None => count(&handles(route)),
    }
}

/// The label of a method without allocating for the standard ones.
fn static_method(method: &str) -> SharedString {
    match standard_method(method) {
        Some(m) => SharedString::const_str(m),
        None => SharedString::from(method.to_owned()),
    }
}

fn standard_method(method: &str) -> Option<&'static str> {
    const STANDARD: [&str; 9] = [
        "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "CONNECT",
    ];
    STANDARD.iter().find(|m| **m == method).copied()
}

/// The 500 problem of a handler that panicked.
pub fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::internal(anyhow::anyhow!("handler panicked")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::{get, post};
    use tower::ServiceExt;

    async fn boom() -> &'static str {
        panic!("boom")
    }

    fn app() -> Router {
        let router = Router::new()
            .route("/ok", get(|| async { "ok" }))
            .route("/echo", post(|body: String| async move { body }))
            .route("/boom", get(boom));
        Stack {
            service: "test",
            body_limit: 16,
            auth: Arc::new(Authenticator::default()),
        }
        .apply(router)
    }

    async fn send(request: Request<Body>) -> Response {
        app().oneshot(request).await.unwrap()
    }

    #[tokio::test]
    async fn request_ids_are_generated_or_echoed() {
        let response = send(Request::get("/ok").body(Body::empty()).unwrap()).await;
        assert_eq!(response.headers()[&REQUEST_ID].len(), 32);
        let response = send(
            Request::get("/ok")
                .header("x-request-id", "abc-1")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(response.headers()[&REQUEST_ID], "abc-1");
    }

    #[tokio::test]
    async fn unknown_routes_and_methods_are_problems() {
        let response = send(Request::get("/nope").body(Body::empty()).unwrap()).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            error::PROBLEM_JSON
        );
        let response = send(Request::delete("/ok").body(Body::empty()).unwrap()).await;
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            error::PROBLEM_JSON
        );
    }

    #[tokio::test]
    async fn bodies_over_the_limit_are_refused() {
        let response = send(
            Request::post("/echo")
                .body(Body::from("x".repeat(17)))
                .unwrap(),
        )
        .await;
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            error::PROBLEM_JSON
        );
        let response = send(Request::post("/echo").body(Body::from("small")).unwrap()).await;
        assert_eq!(response.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn panics_become_500_problems() {
        let response = send(Request::get("/boom").body(Body::empty()).unwrap()).await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            error::PROBLEM_JSON
        );
    }
}
