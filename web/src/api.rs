//! The pages' way to the platform: the public API, called in process through the gateway's
//! router (no socket), as the shopper — their token, their address — so rate limits, edge
//! checks and the services' own rules apply exactly as to any API client.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::Value;
use tower::ServiceExt as _;

/// Largest API answer a page reads.
const MAX_ANSWER: usize = 4 << 20;

/// The gateway's router, set once it is built (it serves the pages too, so it comes after).
#[derive(Clone, Default)]
pub struct ApiSlot(Arc<OnceLock<Router>>);

impl ApiSlot {
    /// Makes `router` the API the pages call; later calls are ignored.
    pub fn set(&self, router: Router) {
        let _ = self.0.set(router);
    }
}

/// An API answer: its status and JSON body (`null` when it had none or was not JSON).
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) body: Value,
}

impl Answer {
    pub(crate) fn ok(&self) -> bool {
        self.status.is_success()
    }

    /// The problem's `detail`, else its `title`, else the status.
    pub(crate) fn message(&self) -> String {
        let text = |key: &str| {
            self.body
                .get(key)
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let mut message = text("detail")
            .or_else(|| text("title"))
            .unwrap_or_else(|| format!("the request failed ({})", self.status));
        if let Some(errors) = self.body.get("errors").and_then(Value::as_array) {
            let fields: Vec<String> = errors
                .iter()
                .filter_map(|e| {
                    Some(format!(
                        "{}: {}",
                        e.get("field")?.as_str()?,
                        e.get("message")?.as_str()?
                    ))
                })
                .collect();
            if !fields.is_empty() {
                message = format!("{message} ({})", fields.join("; "));
            }
        }
        message
    }

    pub(crate) fn code(&self) -> &str {
        self.body
            .get("code")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
}

/// One call of the API on behalf of a visitor.
pub(crate) struct Call<'a> {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) token: Option<&'a str>,
    pub(crate) body: Option<Value>,
    pub(crate) idempotency_key: Option<String>,
    pub(crate) peer: Option<SocketAddr>,
}

impl<'a> Call<'a> {
    pub(crate) fn get(path: impl Into<String>) -> Self {
        Self::new(Method::GET, path)
    }

    pub(crate) fn new(method: Method, path: impl Into<String>) -> Self {
        Self {
            method,
            path: path.into(),
            token: None,
            body: None,
            idempotency_key: None,
            peer: None,
        }
    }

    pub(crate) fn json(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    pub(crate) fn token(mut self, token: Option<&'a str>) -> Self {
        self.token = token;
        self
    }

    pub(crate) fn peer(mut self, peer: Option<SocketAddr>) -> Self {
        self.peer = peer;
        self
    }

    /// On behalf of `visitor`: their token, when signed in, and their address.
    pub(crate) fn for_visitor(self, visitor: &'a crate::session::Visitor) -> Self {
        self.token(visitor.token.as_deref()).peer(visitor.peer)
    }

    pub(crate) fn idempotency_key(mut self, key: String) -> Self {
        self.idempotency_key = Some(key);
        self
    }

    /// Sends it; an API that is not reachable is a 503 answer, never a panic.
    pub(crate) async fn send(self, api: &ApiSlot) -> Answer {
        let unavailable = |why: &str| Answer {
            status: StatusCode::SERVICE_UNAVAILABLE,
            body: serde_json::json!({ "detail": why }),
        };
        let Some(router) = api.0.get().cloned() else {
            return unavailable("the shop is starting; try again in a moment");
        };
        let mut request = Request::builder()
            .method(self.method)
            .uri(&self.path)
            .header(header::ACCEPT, "application/json");
        if let Some(token) = self.token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if let Some(key) = &self.idempotency_key {
            request = request.header("idempotency-key", key);
        }
        let body = match &self.body {
            Some(value) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(value.to_string())
            }
            None => Body::empty(),
        };
        let Ok(mut request) = request.body(body) else {
            return unavailable("the page built an invalid request");
        };
        if let Some(peer) = self.peer {
            request.extensions_mut().insert(ConnectInfo(peer));
        }
        let response = match router.oneshot(request).await {
            Ok(response) => response,
            Err(infallible) => match infallible {},
        };
        let status = response.status();
        let body = match axum::body::to_bytes(response.into_body(), MAX_ANSWER).await {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            Err(error) => {
                tracing::warn!(%error, "cannot read an API answer");
                Value::Null
            }
        };
        Answer { status, body }
    }
}
