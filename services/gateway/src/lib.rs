//! The API gateway: one HTTP entry point in front of every Mercato service.
//!
//! Requests go where the route table says (see `routes`): by default `/api/v1/<segment>/…` to
//! the service owning `<segment>`, called in process (embedded mode) or over an HTTP/1.1
//! keep-alive pool balanced over its replicas (distributed mode). Beside the proxy the gateway
//! answers `/health` (aggregated), `/metrics` (JSON), `/metrics/prometheus`, `/openapi.json`
//! (merged), `/docs` (Swagger UI), `/` and `/assets/*`.

mod assets;
mod breaker;
mod cache;
mod edge;
mod front;
mod health;
mod latency;
mod metrics;
mod openapi;
mod proxy;
mod ratelimit;
mod routes;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{FromRef, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router, middleware};
use mercato_kernel::auth::{AuthError, Authenticator, bearer_token};
use mercato_kernel::http::Stack;
use mercato_kernel::{ApiError, Config, ServiceInfo};
use serde::Serialize;
use utoipa_swagger_ui::SwaggerUi;

use crate::assets::Assets;
pub use crate::assets::{AssetLookup, StaticAsset};
pub use crate::front::{Front, serve};
use crate::metrics::GatewayMetrics;
use crate::openapi::Docs;
use crate::proxy::{Backend, Pool};
use crate::routes::{EdgeAuth, Resolved, RouteTable};

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
    /// Backend by service name.
    by_service: HashMap<&'static str, Arc<Backend>>,
    /// Where each request goes.
    routes: RouteTable,
    /// Checks credentials on routes that require them at the edge.
    auth: Arc<Authenticator>,
    /// How long an upstream has to answer.
    pub(crate) timeout: Duration,
    /// Requests slower than this are logged.
    slow: Duration,
    /// Public GET answers, when caching is on.
    cache: Option<Arc<cache::ResponseCache>>,
}

#[derive(Clone, FromRef)]
struct AppState {
    gateway: Arc<Gateway>,
    metrics: Arc<GatewayMetrics>,
    docs: Arc<Docs>,
    assets: Arc<Assets>,
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
    ratelimit::check_redis_url(config.redis_url.as_deref())
        .map_err(|e| anyhow::anyhow!("REDIS_URL: {e}"))?;
    edge::cors(&config.gateway_cors_origins)
        .map_err(|e| anyhow::anyhow!("GATEWAY_CORS_ORIGINS: {e}"))?;
    RouteTable::new(&config.gateway_routes, &[])
        .map_err(|e| anyhow::anyhow!("gateway_routes: {e}"))?;
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
    build(config, upstreams, auth, None).router
}

/// The gateway app and the handle that empties its response cache.
pub struct Built {
    /// The app, for calls in process (the web pages' API calls, tests).
    pub router: Router,
    /// The same app, for [`serve`].
    pub front: Front,
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

/// The browser side the gateway serves beside the API.
pub struct Frontend {
    /// The web bundle's files, under `/assets/`.
    pub assets: AssetLookup,
    /// Pages (storefront, admin); they replace the gateway's JSON index at `/`.
    pub pages: Router,
}

/// [`router`] with the `frontend`, and the cache's invalidation handle.
pub fn build(
    config: &Config,
    upstreams: Vec<Upstream>,
    auth: Arc<Authenticator>,
    frontend: Option<Frontend>,
) -> Built {
    let (assets, pages) = match frontend {
        Some(Frontend { assets, pages }) => (Some(assets), Some(pages)),
        None => (None, None),
    };
    let cache = cache::ResponseCache::from_config(config).map(Arc::new);
    let invalidator = cache.clone().map(CacheInvalidator);
    let metrics = Arc::new(GatewayMetrics::new(
        upstreams.iter().map(|u| u.info.name),
        cache.clone(),
    ));
    let pool = Pool::new(config);
    let mut backends = Vec::with_capacity(upstreams.len());
    let mut documents = Vec::with_capacity(upstreams.len());
    let mut by_service = HashMap::new();
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
        if by_service.insert(info.name, backend.clone()).is_some() {
            tracing::warn!(service = info.name, "service given twice; the last wins");
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
    let infos: Vec<&'static ServiceInfo> = backends.iter().map(|b| b.info).collect();
    let routes = RouteTable::new(&config.gateway_routes, &infos).unwrap_or_else(|e| {
        tracing::error!(error = %e, "gateway_routes is malformed; only the built-in routes apply");
        RouteTable::new(&[], &infos).unwrap_or_default()
    });
    let gateway = Arc::new(Gateway {
        backends,
        by_service,
        routes,
        auth: auth.clone(),
        timeout,
        slow: Duration::from_millis(config.gateway_slow_request_threshold_ms),
        cache,
    });
    let state = AppState {
        gateway: gateway.clone(),
        metrics: metrics.clone(),
        docs: Arc::new(docs),
        assets: Arc::new(Assets {
            cdn_base_url: config.cdn_base_url.clone().filter(|u| !u.trim().is_empty()),
            bundle: assets,
        }),
    };

    let app = match pages {
        Some(pages) => pages,
        None => Router::new().route("/", get(get_index)),
    };
    let app = Router::new()
        .route("/health", get(health::get_health))
        .route("/ready", get(health::get_ready))
        .route("/metrics", get(metrics::get_metrics))
        .route("/metrics/prometheus", get(metrics::get_prometheus))
        .route("/openapi.json", get(openapi::get_openapi))
        .route("/assets/{*path}", get(assets::serve))
        .fallback(proxy_fallback)
        .method_not_allowed_fallback(mercato_kernel::error::method_not_allowed)
        .with_state(state)
        .merge(app)
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
    let limits = Arc::new(limits.shared_through(config.redis_url.as_deref()));
    // Limits turned off cost nothing on any request.
    let limits = (!limits.is_off()).then(|| {
        ratelimit::spawn_pruning(&limits);
        limits
    });
    let app = match &limits {
        Some(limits) => app.layer(middleware::from_fn_with_state(
            limits.clone(),
            ratelimit::limit,
        )),
        None => app,
    };
    let cors = edge::cors(&config.gateway_cors_origins).unwrap_or_else(|e| {
        tracing::error!(error = %e, "GATEWAY_CORS_ORIGINS is malformed; no cross-origin access");
        None
    });
    let app = edge::apply(app, cors.clone());
    let stack = Stack {
        service: "gateway",
        body_limit: config.mercato_body_limit_bytes,
        auth,
    };
    let other = stack.wrap(app).layer(middleware::from_fn_with_state(
        metrics.clone(),
        metrics::count_requests,
    ));
    let proxy = Proxy {
        gateway,
        metrics: metrics.clone(),
        limits,
    };
    let api = edge::wrap(
        tower::service_fn(move |request| {
            let proxy = proxy.clone();
            async move { Ok(proxy.call(request).await) }
        }),
        cors,
    );
    let front = Front::new(api, other, metrics, config.mercato_body_limit_bytes);
    Built {
        router: Router::new().fallback_service(front.clone()),
        front,
        cache: invalidator,
    }
}

/// What an API request meets behind the edge: its client's rate limit, then the proxy.
#[derive(Clone)]
struct Proxy {
    gateway: Arc<Gateway>,
    metrics: Arc<GatewayMetrics>,
    limits: Option<Arc<ratelimit::RateLimits>>,
}

impl Proxy {
    async fn call(&self, request: Request) -> Response {
        let forward = |request| proxy_request(&self.gateway, &self.metrics, request);
        match &self.limits {
            Some(limits) => limits.around(request, forward).await,
            None => forward(request).await,
        }
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

/// Routes outside `/api/` of the table (`/.well-known/…`, configured prefixes).
async fn proxy_fallback(
    State(gateway): State<Arc<Gateway>>,
    State(metrics): State<Arc<GatewayMetrics>>,
    request: Request,
) -> Response {
    proxy_request(&gateway, &metrics, request).await
}

/// Sends a request where the route table says, once the edge lets it pass.
async fn proxy_request(gateway: &Gateway, metrics: &GatewayMetrics, request: Request) -> Response {
    let started = Instant::now();
    let resolved = match gateway.routes.resolve(request.method(), request.uri()) {
        Ok(resolved) => resolved,
        Err(problem) => return problem.into_response(),
    };
    let stats = metrics.route(&resolved.route);
    // Futures that are large and not on every request's way are boxed: the rest of the
    // request's future is moved as it goes through the edge, so its size costs time.
    let admitted = match resolved.auth {
        EdgeAuth::Public => Ok(()),
        required => Box::pin(admit(&gateway.auth, required, request.headers())).await,
    };
    let response = match admitted {
        Ok(()) => forward_request(gateway, resolved, request).await,
        Err(refused) => refused.into_response(),
    };
    stats.record(&response, started.elapsed());
    response
}

/// Checks the caller at the edge on routes that require one; the service checks again.
async fn admit(
    auth: &Authenticator,
    required: EdgeAuth,
    headers: &HeaderMap,
) -> Result<(), AuthError> {
    if required == EdgeAuth::Public {
        return Ok(());
    }
    let token = bearer_token(headers)?.ok_or(AuthError::MissingToken)?;
    let claims = auth.authenticate(token).await?;
    match required {
        EdgeAuth::Role(role) if !claims.has_role(role) => Err(AuthError::MissingRole(role)),
        _ => Ok(()),
    }
}

/// Sends a request to the upstream owning `resolved.service`, from the cache when it may.
async fn forward_request(gateway: &Gateway, resolved: Resolved, request: Request) -> Response {
    let Some(backend) = gateway.by_service.get(resolved.service) else {
        return ApiError::unavailable(format!("the {} service is not running", resolved.service))
            .into_response();
    };
    let cached = gateway
        .cache
        .as_ref()
        .filter(|cache| cache.applies(&resolved.segment, &request));
    let request = proxy::prepare(request, resolved.forward);
    match cached {
        Some(cache) => {
            Box::pin(cache.serve(request, |request| fetch(gateway, backend, request))).await
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
    // Cheap clones (shared bytes), read only if a log line is written.
    let method = request.method().clone();
    let uri = request.uri().clone();
    let request_id = request.headers().get("x-request-id").cloned();
    let started = Instant::now();
    let response = match tokio::time::timeout(gateway.timeout, Box::pin(backend.send(request)))
        .await
    {
        Ok(Ok(response)) => response,
        Ok(Err(error)) => error.into_api_error(name).into_response(),
        Err(_) => {
            tracing::warn!(upstream = name, %method, path = uri.path(), timeout_ms = gateway.timeout.as_millis() as u64, "upstream timed out");
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
    let path = uri.path();
    let request_id = request_id
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
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
