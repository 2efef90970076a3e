//! Forwarding a request to a service: in process through its router, or over HTTP to one of
//! its replicas (see `remote`).

mod connections;
mod h1;
mod headers;
mod remote;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use mercato_kernel::{ApiError, ServiceInfo};

use crate::metrics::UpstreamStats;
pub(crate) use headers::prepare;
use remote::Remote;
pub(crate) use remote::{Pool, Strategy};

/// Why a request got no answer from its upstream.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProxyError {
    /// No replica accepted a connection.
    #[error("cannot connect to {0}")]
    Connect(String),
    /// The connection failed after it was made, or the answer was not HTTP.
    #[error("{0}")]
    Upstream(String),
    /// The client sent more than the body limit.
    #[error("request body is too large")]
    BodyTooLarge(usize),
    /// No usable replica is configured.
    #[error("no replica is configured")]
    NoReplica,
}

impl ProxyError {
    /// The problem the client gets; upstream internals stay in the log.
    pub(crate) fn into_api_error(self, service: &str) -> ApiError {
        match self {
            Self::Connect(_) | Self::Upstream(_) => ApiError::new(
                StatusCode::BAD_GATEWAY,
                "bad_gateway",
                format!("the {service} service could not be reached"),
            ),
            Self::BodyTooLarge(limit) => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("request body is larger than {limit} bytes"),
            ),
            Self::NoReplica => {
                ApiError::unavailable(format!("the {service} service has no usable address"))
            }
        }
    }
}

enum Dispatch {
    InProcess(Router),
    // Shared with its health checker, which holds it weakly.
    Remote(Arc<Remote>),
}

/// A running service as the gateway sees it: where its requests go, and its counters.
pub(crate) struct Backend {
    /// Which service this is.
    pub(crate) info: &'static ServiceInfo,
    /// Its request counters.
    pub(crate) stats: Arc<UpstreamStats>,
    dispatch: Dispatch,
}

/// The answer of a probe (`/ready`, `/openapi.json`) from one target.
pub(crate) struct Probe {
    /// `in-process` or the replica's base URL.
    pub(crate) target: String,
    /// Time to the full answer.
    pub(crate) latency: Duration,
    /// Status and body, or why there is none.
    pub(crate) outcome: Result<(StatusCode, Bytes), String>,
}

const IN_PROCESS: &str = "in-process";

impl Backend {
    /// A backend calling `router` in process.
    pub(crate) fn in_process(
        info: &'static ServiceInfo,
        router: Router,
        stats: Arc<UpstreamStats>,
    ) -> Self {
        Self {
            info,
            stats,
            dispatch: Dispatch::InProcess(router),
        }
    }

    /// A backend over HTTP; unusable URLs are logged and left out.
    pub(crate) fn remote(
        info: &'static ServiceInfo,
        urls: &[String],
        pool: Pool,
        stats: Arc<UpstreamStats>,
    ) -> Self {
        Self {
            info,
            stats,
            dispatch: Dispatch::Remote({
                let remote = Arc::new(Remote::new(info.name, urls, pool));
                remote.spawn_health_checks();
                remote
            }),
        }
    }

    /// Sends `request` (origin-form URI, headers prepared) and returns the response head; the
    /// caller bounds the wait.
    pub(crate) async fn send(&self, request: Request) -> Result<Response, ProxyError> {
        match &self.dispatch {
            Dispatch::InProcess(router) => Ok(call_in_process(router, request).await),
            Dispatch::Remote(remote) => remote.send(request).await,
        }
    }

    /// GETs `path` from every target (each replica), concurrently, each within `timeout`.
    pub(crate) async fn probe_each(
        &self,
        path: &'static str,
        limit: usize,
        timeout: Duration,
    ) -> Vec<Probe> {
        match &self.dispatch {
            Dispatch::InProcess(router) => {
                vec![
                    probe(
                        IN_PROCESS.to_owned(),
                        timeout,
                        get_in_process(router, path, limit),
                    )
                    .await,
                ]
            }
            Dispatch::Remote(remote) => remote.probe_each(path, limit, timeout).await,
        }
    }

    /// GETs `path` from one target (the next replica), within `timeout`.
    pub(crate) async fn probe_one(
        &self,
        path: &'static str,
        limit: usize,
        timeout: Duration,
    ) -> Probe {
        match &self.dispatch {
            Dispatch::InProcess(router) => {
                probe(
                    IN_PROCESS.to_owned(),
                    timeout,
                    get_in_process(router, path, limit),
                )
                .await
            }
            Dispatch::Remote(remote) => remote.probe_one(path, limit, timeout).await,
        }
    }
}

/// Runs `get` within `timeout`, timing it.
async fn probe(
    target: String,
    timeout: Duration,
    get: impl Future<Output = Result<(StatusCode, Bytes), String>>,
) -> Probe {
    let started = Instant::now();
    let outcome = match tokio::time::timeout(timeout, get).await {
        Ok(outcome) => outcome,
        Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
    };
    Probe {
        target,
        latency: started.elapsed(),
        outcome,
    }
}

async fn call_in_process(router: &Router, request: Request) -> Response {
    use tower::ServiceExt as _;
    match router.clone().oneshot(request).await {
        Ok(response) => response,
        Err(infallible) => match infallible {},
    }
}

async fn get_in_process(
    router: &Router,
    path: &'static str,
    limit: usize,
) -> Result<(StatusCode, Bytes), String> {
    let request = Request::get(path)
        .body(Body::empty())
        .map_err(|e| e.to_string())?;
    let response = call_in_process(router, request).await;
    read_limited(response.status(), response.into_body(), limit).await
}

/// Reads at most `limit` bytes of `body`.
async fn read_limited<B>(
    status: StatusCode,
    body: B,
    limit: usize,
) -> Result<(StatusCode, Bytes), String>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let collected = Limited::new(body, limit)
        .collect()
        .await
        .map_err(|e| format!("cannot read the answer: {e}"))?;
    Ok((status, collected.to_bytes()))
}
