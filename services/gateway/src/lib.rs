//! The API gateway: one HTTP entry point in front of every Mercato service.
//!
//! `/api/v1/<segment>/…` goes to the service owning `<segment>` (`/api/<segment>/…` is an alias
//! of the latest version), called in process (embedded mode) or over an HTTP/1.1 keep-alive
//! pool with round robin over its replicas (distributed mode). Beside the proxy the gateway
//! answers `/health` (aggregated), `/metrics` (JSON), `/metrics/prometheus`, `/openapi.json`
//! (merged), `/docs` (Swagger UI), `/` and `/assets/*`.

mod breaker;
mod cache;
mod edge;
mod health;
mod latency;
mod metrics;
mod openapi;
mod proxy;
mod ratelimit;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{FromRef, Request, State};
use axum::http::uri::PathAndQuery;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router, middleware};
use mercato_kernel::auth::Authenticator;
use mercato_kernel::http::Stack;
use mercato_kernel::{ApiError, Config, ServiceInfo};
use serde::Serialize;
use utoipa_swagger_ui::SwaggerUi;

use crate::metrics::GatewayMetrics;
use crate::openapi::Docs;
use crate::proxy::{Backend, Pool};

/// Where a service's requests go.
pub enum Target {
    /// The service's full router, middleware included, called in process without a socket.
    InProcess(Router),
    /// Base URLs of the service's replicas (`http://host:port`), used in turn.
    Remote(Vec<String>),
}

/// A running service the gateway routes to.
pub struct Upstream {
    /// Which service it is; its `prefixes` are the path segments routed to it.
    pub info: &'static ServiceInfo,
    /// How to reach it.
    pub target: Target,
    /// Its OpenAPI document; when `None` it is fetched from `GET {url}/openapi.json`.
    pub openapi: Option<utoipa::openapi::OpenApi>,
}

/// What the proxy and health handlers share.
pub(crate) struct Gateway {
    /// Every backend, in the order given.
    pub(crate) backends: Vec<Arc<Backend>>,
    /// Backend by the first path segment after `/api/v1/`.
    by_segment: HashMap<&'static str, Arc<Backend>>,
    /// How long an upstream has to answer.
    pub(crate) timeout: Duration,
    /// Requests slower than this are logged.
    slow: Duration,
    /// Redirect target for `/assets/*`.
    cdn_base_url: Option<String>,
    /// Public GET answers, when caching is on.
    cache: Option<Arc<cache::ResponseCache>>,
}

#[derive(Clone, FromRef)]
struct AppState {
    gateway: Arc<Gateway>,
    metrics: Arc<GatewayMetrics>,
    docs: Arc<Docs>,
}

/// Checks the gateway's settings before anything starts, so a typo fails fast rather than
/// leaving a route unlimited.
pub fn validate(config: &Config) -> anyhow::Result<()> {
    ratelimit::RateLimits::new(
        config.gateway_rate_limit_rps,
        config.gateway_rate_limit_burst,
        &config.gateway_rate_limits,
        Arc::new(Authenticator::default()),
    )
    .map_err(|e| anyhow::anyhow!("GATEWAY_RATE_LIMITS: {e}"))?;
    edge::cors(&config.gateway_cors_origins)
        .map_err(|e| anyhow::anyhow!("GATEWAY_CORS_ORIGINS: {e}"))?;
    if proxy::Strategy::parse(&config.gateway_lb_strategy).is_none() {
        anyhow::bail!(
            "GATEWAY_LB_STRATEGY `{}` is not round_robin, least_outstanding or p2c",
            config.gateway_lb_strategy
        );
    }
    Ok(())
}

/// The complete gateway app, with the kernel's middleware stack applied.
pub fn router(config: &Config, upstreams: Vec<Upstream>, auth: Arc<Authenticator>) -> Router {
    build(config, upstreams, auth).router
}

/// The gateway app and the handle that empties its response cache.
pub struct Built {
    /// The app.
    pub router: Router,
    /// Empties the response cache (on catalog changes); `None` when caching is off.
    pub cache: Option<CacheInvalidator>,
}

/// Empties the gateway's response cache.
#[derive(Clone, Debug)]
pub struct CacheInvalidator(Arc<cache::ResponseCache>);

impl CacheInvalidator {
    /// Drops every cached answer: the next request of each key goes upstream.
    pub fn invalidate_all(&self) {
        self.0.invalidate_all();
    }
}

/// [`router`], with the cache's invalidation handle.
pub fn build(config: &Config, upstreams: Vec<Upstream>, auth: Arc<Authenticator>) -> Built {
    let cache = cache::ResponseCache::from_config(config).map(Arc::new);
    let invalidator = cache.clone().map(CacheInvalidator);
    let metrics = Arc::new(GatewayMetrics::new(
        upstreams.iter().map(|u| u.info.name),
        cache.clone(),
    ));
    let pool = Pool::new(config);
    let mut backends = Vec::with_capacity(upstreams.len());
    let mut documents = Vec::with_capacity(upstreams.len());
    let mut by_segment = HashMap::new();
    for upstream in upstreams {
        let info = upstream.info;
        let stats = metrics.upstream(info.name);
        stats.breaker.configure(
            config.gateway_breaker_failures,
            Duration::from_millis(config.gateway_breaker_cooldown_ms),
        );
        let backend = Arc::new(match upstream.target {
            Target::InProcess(router) => Backend::in_process(info, router, stats),
            Target::Remote(urls) => Backend::remote(info, &urls, pool.clone(), stats),
        });
        for &prefix in info.prefixes {
            if let Some(previous) = by_segment.insert(prefix, backend.clone()) {
                tracing::warn!(
                    prefix,
                    previous = previous.info.name,
                    now = info.name,
                    "prefix routed twice; the last wins"
                );
            }
        }
        documents.push((backend.clone(), upstream.openapi));
        backends.push(backend);
    }
    let timeout = config.gateway_request_timeout();
    let docs = Docs::new(
        documents,
        Duration::from_millis(config.gateway_cache_ttl_ms),
        timeout,
    );
    let gateway = Gateway {
        backends,
        by_segment,
        timeout,
        slow: Duration::from_millis(config.gateway_slow_request_threshold_ms),
        cdn_base_url: config.cdn_base_url.clone().filter(|u| !u.trim().is_empty()),
        cache,
    };
    let state = AppState {
        gateway: Arc::new(gateway),
        metrics: metrics.clone(),
        docs: Arc::new(docs),
    };

    let app = Router::new()
        .route("/", get(get_index))
        .route("/health", get(health::get_health))
        .route("/ready", get(health::get_ready))
        .route("/metrics", get(metrics::get_metrics))
        .route("/metrics/prometheus", get(metrics::get_prometheus))
        .route("/openapi.json", get(openapi::get_openapi))
        .route("/assets/{*path}", get(redirect_asset))
        .route("/api/{*path}", any(proxy_request))
        .route("/.well-known/{*path}", get(proxy_well_known))
        .route("/admin/mail", get(proxy_admin_mail))
        .with_state(state)
        .merge(SwaggerUi::new("/docs").config(utoipa_swagger_ui::Config::from("/openapi.json")));
    let limits = ratelimit::RateLimits::new(
        config.gateway_rate_limit_rps,
        config.gateway_rate_limit_burst,
        &config.gateway_rate_limits,
        auth.clone(),
    )
    .unwrap_or_else(|e| {
        tracing::error!(error = %e, "GATEWAY_RATE_LIMITS is malformed; only the default budget applies");
        ratelimit::RateLimits::new(
            config.gateway_rate_limit_rps,
            config.gateway_rate_limit_burst,
            "",
            auth.clone(),
        )
        .unwrap_or_else(|_| unreachable!("an empty group list parses"))
    });
    let limits = Arc::new(limits);
    ratelimit::spawn_pruning(&limits);
    let app = app.layer(middleware::from_fn_with_state(limits, ratelimit::limit));
    let cors = edge::cors(&config.gateway_cors_origins).unwrap_or_else(|e| {
        tracing::error!(error = %e, "GATEWAY_CORS_ORIGINS is malformed; no cross-origin access");
        None
    });
    let app = edge::apply(app, cors);
    let stack = Stack {
        service: "gateway",
        body_limit: config.mercato_body_limit_bytes,
        auth,
    };
    let router = stack.apply(app).layer(middleware::from_fn_with_state(
        metrics,
        metrics::count_requests,
    ));
    Built {
        router,
        cache: invalidator,
    }
}

/// Links of the gateway index.
#[derive(Serialize)]
struct IndexLinks {
    docs: &'static str,
    openapi: &'static str,
    health: &'static str,
    metrics: &'static str,
}

/// Body of `GET /`.
#[derive(Serialize)]
struct IndexResponse {
    name: &'static str,
    links: IndexLinks,
}

async fn get_index() -> Json<IndexResponse> {
    Json(IndexResponse {
        name: "Mercato",
        links: IndexLinks {
            docs: "/docs",
            openapi: "/openapi.json",
            health: "/health",
            metrics: "/metrics",
        },
    })
}

/// `/assets/x` → 307 to `{CDN_BASE_URL}/assets/x` (query kept), or 404 without a CDN.
async fn redirect_asset(State(gateway): State<Arc<Gateway>>, uri: Uri) -> Response {
    let Some(base) = &gateway.cdn_base_url else {
        return route_not_found(uri.path()).into_response();
    };
    let tail = uri
        .path_and_query()
        .map_or(uri.path(), PathAndQuery::as_str);
    let location = format!("{}{tail}", base.trim_end_matches('/'));
    match HeaderValue::from_str(&location) {
        Ok(location) => (
            StatusCode::TEMPORARY_REDIRECT,
            [(header::LOCATION, location)],
        )
            .into_response(),
        Err(_) => {
            tracing::warn!(cdn_base_url = %base, "CDN_BASE_URL does not make a valid Location");
            ApiError::unavailable("assets are not available").into_response()
        }
    }
}

/// Where an `/api/…` request goes: the owning segment and the path to forward.
#[derive(Debug, PartialEq, Eq)]
struct Resolved {
    segment: String,
    forward: PathAndQuery,
}

/// The latest API version; unversioned paths are its alias.
const LATEST: &str = "v1";

fn resolve(uri: &Uri) -> Result<Resolved, ApiError> {
    let path = uri.path();
    let not_found = || route_not_found(path);
    let rest = path.strip_prefix("/api/").ok_or_else(not_found)?;
    let (first, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let is_version =
        first.len() > 1 && first.starts_with('v') && first[1..].bytes().all(|b| b.is_ascii_digit());
    let (segment, forward) = if is_version {
        if first != LATEST {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "route_not_found",
                format!("API version {first} does not exist; the latest is {LATEST}"),
            ));
        }
        let segment = tail.split('/').next().unwrap_or_default();
        let forward = uri
            .path_and_query()
            .map_or(path, PathAndQuery::as_str)
            .to_owned();
        (segment, forward)
    } else {
        let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
        (first, format!("/api/{LATEST}/{rest}{query}"))
    };
    if segment.is_empty() {
        return Err(not_found());
    }
    let forward = forward.parse().map_err(|_| not_found())?;
    Ok(Resolved {
        segment: segment.to_owned(),
        forward,
    })
}

/// Sends an `/api/…` request to the service owning its segment.
async fn proxy_request(State(gateway): State<Arc<Gateway>>, request: Request) -> Response {
    match resolve(request.uri()) {
        Ok(resolved) => forward_request(&gateway, resolved, request).await,
        Err(problem) => problem.into_response(),
    }
}

/// `/.well-known/…` documents (the JWKS) belong to the service owning `.well-known`.
async fn proxy_well_known(State(gateway): State<Arc<Gateway>>, request: Request) -> Response {
    let path = request.uri().path_and_query().cloned();
    match path {
        Some(forward) => {
            let resolved = Resolved {
                segment: WELL_KNOWN.to_owned(),
                forward,
            };
            forward_request(&gateway, resolved, request).await
        }
        None => route_not_found(request.uri().path()).into_response(),
    }
}

/// `/admin/mail`, the local mailbox page, belongs to notifications.
async fn proxy_admin_mail(State(gateway): State<Arc<Gateway>>, request: Request) -> Response {
    match request.uri().path_and_query().cloned() {
        Some(forward) => {
            let resolved = Resolved {
                segment: "notifications".to_owned(),
                forward,
            };
            forward_request(&gateway, resolved, request).await
        }
        None => route_not_found(request.uri().path()).into_response(),
    }
}

/// Segment under which a service claims `/.well-known/…`.
const WELL_KNOWN: &str = ".well-known";

/// Sends a request to the upstream owning `resolved.segment`, within the gateway timeout.
async fn forward_request(gateway: &Gateway, resolved: Resolved, request: Request) -> Response {
    let Some(backend) = gateway.by_segment.get(resolved.segment.as_str()) else {
        return unrouted(&resolved.segment, request.uri().path()).into_response();
    };
    let cached = gateway
        .cache
        .as_ref()
        .filter(|cache| cache.applies(&resolved.segment, &request));
    let request = proxy::prepare(request, resolved.forward);
    match cached {
        Some(cache) => {
            cache
                .serve(request, |request| fetch(gateway, backend, request))
                .await
        }
        None => fetch(gateway, backend, request).await,
    }
}

/// Sends a prepared request to `backend` within the gateway timeout, counting and logging it.
async fn fetch(gateway: &Gateway, backend: &Backend, request: Request) -> Response {
    let name = backend.info.name;
    if let Err(wait) = backend.stats.breaker.admit() {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "circuit_open",
            format!("the {name} service is failing; not calling it for a moment"),
        )
        .with_retry_after(wait.as_secs().max(1))
        .into_response();
    }
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let started = Instant::now();
    let response = match tokio::time::timeout(gateway.timeout, backend.send(request)).await {
        Ok(Ok(response)) => response,
        Ok(Err(error)) => error.into_api_error(name).into_response(),
        Err(_) => {
            tracing::warn!(upstream = name, %method, path, timeout_ms = gateway.timeout.as_millis() as u64, "upstream timed out");
            ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "upstream_timeout",
                format!("the {name} service did not answer in time"),
            )
            .into_response()
        }
    };
    let elapsed = started.elapsed();
    backend.stats.record(name, response.status(), elapsed);
    backend
        .stats
        .breaker
        .record(response.status().is_server_error());
    tracing::info!(
        target: "mercato::access",
        %method,
        path,
        status = response.status().as_u16(),
        latency_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        upstream = name,
        request_id,
        "proxied"
    );
    if elapsed >= gateway.slow {
        tracing::warn!(
            upstream = name,
            %method,
            path,
            status = response.status().as_u16(),
            latency_ms = elapsed.as_millis() as u64,
            "slow upstream request"
        );
    }
    response
}

/// The 404 problem for a path nothing serves, as the kernel's fallback words it.
fn route_not_found(path: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "route_not_found",
        format!("no route for {path}"),
    )
}

/// No running upstream owns `segment`: 503 when its service exists but is not running here,
/// 404 when no service owns it.
fn unrouted(segment: &str, path: &str) -> ApiError {
    match ServiceInfo::owning(segment) {
        Some(info) => ApiError::unavailable(format!("the {} service is not running", info.name)),
        None => route_not_found(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(uri: &'static str) -> Result<(String, String), u16> {
        resolve(&Uri::from_static(uri))
            .map(|r| (r.segment, r.forward.to_string()))
            .map_err(|e| e.status().as_u16())
    }

    #[test]
    fn versioned_paths_are_forwarded_unchanged() {
        assert_eq!(
            resolved("/api/v1/orders/ord_1?expand=lines"),
            Ok(("orders".into(), "/api/v1/orders/ord_1?expand=lines".into()))
        );
        assert_eq!(
            resolved("/api/v1/orders"),
            Ok(("orders".into(), "/api/v1/orders".into()))
        );
    }

    #[test]
    fn unversioned_paths_alias_the_latest_version() {
        assert_eq!(
            resolved("/api/products/prd_1?limit=2"),
            Ok(("products".into(), "/api/v1/products/prd_1?limit=2".into()))
        );
    }

    #[test]
    fn unknown_versions_and_empty_segments_are_not_found() {
        assert_eq!(resolved("/api/v2/orders"), Err(404));
        assert_eq!(resolved("/api/v1"), Err(404));
        assert_eq!(resolved("/api/v1/"), Err(404));
    }
}
