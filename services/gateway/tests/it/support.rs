//! A fake service, a way to serve it on a socket, and helpers to call the gateway.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing;
use axum::{Json, Router};
use http_body_util::BodyExt;
use mercato_gateway::{Target, Upstream};
use mercato_kernel::auth::Authenticator;
use mercato_kernel::http::Stack;
use mercato_kernel::{Config, ServiceInfo};
use serde_json::{Value, json};
use tower::ServiceExt;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathItem, PathsBuilder};
use utoipa::openapi::{Info, OpenApi, OpenApiBuilder};

/// A service owning `/api/v1/things`.
pub static THINGS: ServiceInfo = ServiceInfo {
    name: "things",
    port_var: "THINGS_SERVICE_PORT",
    default_port: 0,
    env_stem: "THINGS",
    prefixes: &["things", "gadgets"],
};

/// A second service owning `/api/v1/widgets`.
pub static WIDGETS: ServiceInfo = ServiceInfo {
    name: "widgets",
    port_var: "WIDGETS_SERVICE_PORT",
    default_port: 0,
    env_stem: "WIDGETS",
    prefixes: &["widgets"],
};

/// What a fake service saw, and how its `/ready` answers.
#[derive(Clone, Default)]
pub struct Fake {
    pub name: &'static str,
    pub hits: Arc<AtomicUsize>,
    pub request_ids: Arc<Mutex<Vec<String>>>,
    pub ready_status: Arc<AtomicU16>,
}

impl Fake {
    pub fn new(name: &'static str) -> Self {
        let fake = Self {
            name,
            ..Self::default()
        };
        fake.ready_status.store(200, Ordering::SeqCst);
        fake
    }

    /// The fake's whole app with the kernel's stack, as a real service has it.
    pub fn router(&self, prefix: &'static str) -> Router {
        let api = Router::new()
            .route(
                &format!("/api/v1/{prefix}"),
                routing::get(list).post(create),
            )
            .route(&format!("/api/v1/{prefix}/slow"), routing::get(slow))
            .route("/ready", routing::get(ready))
            .route("/health", routing::get(|| async { "ok" }))
            .route("/openapi.json", routing::get(|| async { Json(doc()) }))
            .with_state(self.clone());
        Stack {
            service: "fake",
            body_limit: 1024,
            auth: Arc::new(Authenticator::default()),
        }
        .apply(api)
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    fn saw(&self, headers: &HeaderMap) -> String {
        self.hits.fetch_add(1, Ordering::SeqCst);
        let id = header(headers, "x-request-id");
        self.request_ids
            .lock()
            .expect("request id list poisoned")
            .push(id.clone());
        id
    }
}

fn header(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

async fn list(
    State(fake): State<Fake>,
    connect: Option<axum::extract::Extension<ConnectInfo<SocketAddr>>>,
    request: Request<Body>,
) -> Json<Value> {
    let headers = request.headers();
    let request_id = fake.saw(headers);
    Json(json!({
        "service": fake.name,
        "path": request.uri().path(),
        "query": request.uri().query(),
        "request_id": request_id,
        "forwarded_for": header(headers, "x-forwarded-for"),
        "forwarded_proto": header(headers, "x-forwarded-proto"),
        "forwarded_host": header(headers, "x-forwarded-host"),
        "forwarded": header(headers, "forwarded"),
        "connection": header(headers, "connection"),
        "peer": connect.map(|c| c.0.0.to_string()),
    }))
}

async fn create(State(fake): State<Fake>, headers: HeaderMap, body: Bytes) -> Response {
    fake.saw(&headers);
    (StatusCode::CREATED, [("content-type", "text/plain")], body).into_response()
}

async fn slow(State(fake): State<Fake>, headers: HeaderMap) -> &'static str {
    fake.saw(&headers);
    tokio::time::sleep(Duration::from_secs(3)).await;
    "finally"
}

async fn ready(State(fake): State<Fake>) -> Response {
    let status = StatusCode::from_u16(fake.ready_status.load(Ordering::SeqCst))
        .expect("ready status is a valid code");
    let word = if status.is_success() {
        "ready"
    } else {
        "not_ready"
    };
    (
        status,
        Json(json!({ "service": fake.name, "status": word, "checks": [] })),
    )
        .into_response()
}

/// The fake's OpenAPI document: one path.
pub fn doc() -> OpenApi {
    let item = PathItem::new(
        HttpMethod::Get,
        OperationBuilder::new()
            .operation_id(Some("list_things"))
            .build(),
    );
    OpenApiBuilder::new()
        .info(Info::new("things", "1"))
        .paths(
            PathsBuilder::new()
                .path("/api/v1/things", item)
                .path("/health", PathItem::default()),
        )
        .build()
}

/// Serves `router` on `127.0.0.1:0` and returns its base URL.
pub async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a local port");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .expect("serve the app");
    });
    format!("http://{addr}")
}

/// A URL nothing listens on.
pub async fn refusing_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a local port");
    let addr = listener.local_addr().expect("local address");
    drop(listener);
    format!("http://{addr}")
}

pub fn config() -> Config {
    let mut config = Config::default();
    config.gateway_request_timeout_ms = 2000;
    config
}

pub fn in_process(info: &'static ServiceInfo, fake: &Fake, prefix: &'static str) -> Upstream {
    Upstream {
        info,
        target: Target::InProcess(fake.router(prefix)),
        openapi: Some(doc()),
    }
}

pub fn remote(info: &'static ServiceInfo, urls: Vec<String>) -> Upstream {
    Upstream {
        info,
        target: Target::Remote(urls),
        openapi: None,
    }
}

pub fn gateway(config: &Config, upstreams: Vec<Upstream>) -> Router {
    mercato_gateway::router(config, upstreams, Arc::new(Authenticator::default()))
}

/// A response with its body read.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("header is ASCII"))
            .unwrap_or_default()
    }

    /// Asserts a problem+json body with this status and code.
    pub fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!(
            self.status.as_u16(),
            status,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(self.header("content-type"), "application/problem+json");
        assert_eq!(self.json()["code"], code);
    }
}

pub async fn send(app: &Router, request: Request<Body>) -> Answer {
    let response = app
        .clone()
        .oneshot(request)
        .await
        .expect("the router is infallible");
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .expect("read the response body")
        .to_bytes();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

pub async fn get(app: &Router, uri: &str) -> Answer {
    send(
        app,
        Request::get(uri)
            .body(Body::empty())
            .expect("a valid request"),
    )
    .await
}

/// A URL whose listener reads each request's head and closes the connection without an
/// answer, counting the requests it received.
pub async fn dropping_url() -> (String, Arc<AtomicUsize>) {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a local port");
    let addr = listener.local_addr().expect("local address");
    let received = Arc::new(AtomicUsize::new(0));
    let count = received.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while let Ok(n) = socket.read(&mut buf).await {
                    if n == 0 {
                        return;
                    }
                    head.extend_from_slice(&buf[..n]);
                    if head.windows(4).any(|w| w == b"\r\n\r\n") {
                        count.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                }
            });
        }
    });
    (format!("http://{addr}"), received)
}
