//! The gateway's own counters (`GET /metrics`, JSON) and the Prometheus text
//! (`GET /metrics/prometheus`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::latency::Histogram;

/// Content type of the Prometheus text exposition format.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4";

/// Requests, errors and latencies of one upstream or route.
#[derive(Debug, Default)]
struct Traffic {
    requests: AtomicU64,
    errors: AtomicU64,
    latency_total_us: AtomicU64,
    latency_max_us: AtomicU64,
    latency: Histogram,
    /// Requests of the last minute, a slot per second (`second % 60`), each packing the
    /// second (high 32 bits) and its count (low 32 bits) so that no request takes a lock.
    window: Window,
}

#[derive(Debug)]
struct Window([AtomicU64; 60]);

impl Default for Window {
    fn default() -> Self {
        Self(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

impl Window {
    fn count(&self, now: u64) {
        let second = now & 0xffff_ffff;
        let slot = &self.0[(now % 60) as usize];
        let mut current = slot.load(Ordering::Relaxed);
        loop {
            let next = if current >> 32 == second {
                current + 1
            } else {
                (second << 32) | 1
            };
            match slot.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return,
                Err(seen) => current = seen,
            }
        }
    }

    fn last_minute(&self, now: u64) -> u64 {
        let now = now & 0xffff_ffff;
        self.0
            .iter()
            .map(|slot| slot.load(Ordering::Relaxed))
            .filter(|packed| {
                let second = packed >> 32;
                second <= now && second + 60 > now
            })
            .map(|packed| packed & 0xffff_ffff)
            .sum()
    }
}

fn epoch_second() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Traffic {
    fn record(&self, status: StatusCode, micros: u64) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if status.is_server_error() {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        self.latency_total_us.fetch_add(micros, Ordering::Relaxed);
        self.latency_max_us.fetch_max(micros, Ordering::Relaxed);
        self.latency.record(micros);
        self.window.count(epoch_second());
    }

    fn snapshot(&self) -> TrafficMetrics {
        let requests = self.requests.load(Ordering::Relaxed);
        let total = self.latency_total_us.load(Ordering::Relaxed);
        let avg_us = if requests == 0 {
            0.0
        } else {
            total as f64 / requests as f64
        };
        let [p50, p95, p99] = self.latency.quantiles_ms([0.5, 0.95, 0.99]);
        let last_minute = self.window.last_minute(epoch_second());
        TrafficMetrics {
            requests,
            errors: self.errors.load(Ordering::Relaxed),
            rps_1m: (last_minute as f64 / 60.0 * 100.0).round() / 100.0,
            avg_latency_ms: round_ms(avg_us),
            p50_latency_ms: p50,
            p95_latency_ms: p95,
            p99_latency_ms: p99,
            max_latency_ms: round_ms(self.latency_max_us.load(Ordering::Relaxed) as f64),
        }
    }
}

/// Counters of one upstream service.
#[derive(Debug, Default)]
pub(crate) struct UpstreamStats {
    traffic: Traffic,
    /// Its circuit breaker.
    pub(crate) breaker: crate::breaker::Breaker,
    /// Its Prometheus handles, registered at its first request (the recorder is installed
    /// by then) rather than looked up on every one.
    exported: OnceLock<Exported>,
}

#[derive(Debug)]
struct Exported {
    /// Requests by status class, 1xx to 5xx.
    requests: [metrics::Counter; 5],
    duration: metrics::Histogram,
}

impl UpstreamStats {
    /// Records one proxied request: its final status and the time to the response head.
    pub(crate) fn record(&self, upstream: &'static str, status: StatusCode, elapsed: Duration) {
        self.traffic.record(status, micros(elapsed));
        let exported = self.exported.get_or_init(|| Exported {
            requests: ["1xx", "2xx", "3xx", "4xx", "5xx"].map(|class| {
                metrics::counter!("gateway_upstream_requests_total", "upstream" => upstream, "class" => class)
            }),
            duration: metrics::histogram!("gateway_upstream_duration_seconds", "upstream" => upstream),
        });
        exported.requests[status_index(status)].increment(1);
        exported.duration.record(elapsed.as_secs_f64());
    }

    fn snapshot(&self) -> UpstreamMetrics {
        UpstreamMetrics {
            traffic: self.traffic.snapshot(),
            breaker: self.breaker.state_name(),
        }
    }
}

/// Counters of one route of the table.
#[derive(Debug, Default)]
pub(crate) struct RouteStats {
    traffic: Traffic,
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
}

impl RouteStats {
    /// Records one answer of the route, from the cache or not.
    pub(crate) fn record(&self, response: &Response, elapsed: Duration) {
        self.traffic.record(response.status(), micros(elapsed));
        match response.headers().get("x-cache").map(HeaderValue::as_bytes) {
            Some(b"HIT") => self.cache_hits.fetch_add(1, Ordering::Relaxed),
            Some(b"MISS") => self.cache_misses.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
    }

    fn snapshot(&self) -> RouteMetrics {
        let hits = self.cache_hits.load(Ordering::Relaxed);
        let misses = self.cache_misses.load(Ordering::Relaxed);
        RouteMetrics {
            traffic: self.traffic.snapshot(),
            cache_hits: hits,
            cache_misses: misses,
            cache_hit_ratio: if hits + misses == 0 {
                0.0
            } else {
                (hits as f64 / (hits + misses) as f64 * 1000.0).round() / 1000.0
            },
        }
    }
}

fn micros(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX)
}

fn round_ms(micros: f64) -> f64 {
    (micros / 10.0).round() / 100.0
}

/// 0 for 1xx up to 4 for 5xx.
fn status_index(status: StatusCode) -> usize {
    usize::from(status.as_u16() / 100).clamp(1, 5) - 1
}

/// Every counter the gateway keeps in process.
#[derive(Debug)]
pub(crate) struct GatewayMetrics {
    started: Instant,
    requests_total: AtomicU64,
    /// 1xx, 2xx, 3xx, 4xx, 5xx.
    classes: [AtomicU64; 5],
    upstreams: BTreeMap<&'static str, Arc<UpstreamStats>>,
    /// By route label; routes are few (the table's and one per service segment).
    routes: RwLock<BTreeMap<String, Arc<RouteStats>>>,
    cache: Option<Arc<crate::cache::ResponseCache>>,
}

impl GatewayMetrics {
    /// Counters starting now, with one entry per upstream name.
    pub(crate) fn new(
        upstreams: impl IntoIterator<Item = &'static str>,
        cache: Option<Arc<crate::cache::ResponseCache>>,
    ) -> Self {
        Self {
            started: Instant::now(),
            requests_total: AtomicU64::new(0),
            classes: Default::default(),
            upstreams: upstreams.into_iter().map(|n| (n, Arc::default())).collect(),
            routes: RwLock::default(),
            cache,
        }
    }

    /// The counters of one upstream.
    pub(crate) fn upstream(&self, name: &str) -> Arc<UpstreamStats> {
        self.upstreams.get(name).cloned().unwrap_or_default()
    }

    /// The counters of one route, made on its first request.
    pub(crate) fn route(&self, label: &str) -> Arc<RouteStats> {
        if let Some(stats) = self
            .routes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(label)
        {
            return stats.clone();
        }
        self.routes
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(label.to_owned())
            .or_default()
            .clone()
    }

    pub(crate) fn count(&self, status: StatusCode) {
        self.requests_total.fetch_add(1, Ordering::Relaxed);
        self.classes[status_index(status)].fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> MetricsResponse {
        let class = |i: usize| self.classes[i].load(Ordering::Relaxed);
        MetricsResponse {
            uptime_seconds: self.started.elapsed().as_secs(),
            requests_total: self.requests_total.load(Ordering::Relaxed),
            status: StatusClasses {
                informational: class(0),
                success: class(1),
                redirection: class(2),
                client_error: class(3),
                server_error: class(4),
            },
            upstreams: self
                .upstreams
                .iter()
                .map(|(name, stats)| ((*name).to_owned(), stats.snapshot()))
                .collect(),
            routes: self
                .routes
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .map(|(label, stats)| (label.clone(), stats.snapshot()))
                .collect(),
            cache: self.cache.as_ref().map(|c| c.stats()),
        }
    }
}

/// Counts every request the gateway answers, whatever the route.
pub(crate) async fn count_requests(
    State(metrics): State<Arc<GatewayMetrics>>,
    request: Request,
    next: Next,
) -> Response {
    let response = next.run(request).await;
    metrics.count(response.status());
    response
}

/// Body of `GET /metrics`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MetricsResponse {
    /// Seconds since the gateway started.
    pub uptime_seconds: u64,
    /// Requests answered by the gateway, all routes.
    pub requests_total: u64,
    /// Requests answered, by status class.
    pub status: StatusClasses,
    /// Proxied requests per upstream service.
    pub upstreams: BTreeMap<String, UpstreamMetrics>,
    /// Requests per route of the table (`/api/v1/products`, a configured prefix…), cache
    /// hits included.
    pub routes: BTreeMap<String, RouteMetrics>,
    /// The response cache's counters, when caching is on.
    pub cache: Option<crate::cache::CacheStats>,
}

/// Answered requests by status class.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StatusClasses {
    /// 1xx answers.
    #[serde(rename = "1xx")]
    pub informational: u64,
    /// 2xx answers.
    #[serde(rename = "2xx")]
    pub success: u64,
    /// 3xx answers.
    #[serde(rename = "3xx")]
    pub redirection: u64,
    /// 4xx answers.
    #[serde(rename = "4xx")]
    pub client_error: u64,
    /// 5xx answers.
    #[serde(rename = "5xx")]
    pub server_error: u64,
}

/// Requests, errors and latencies.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TrafficMetrics {
    /// Requests counted.
    pub requests: u64,
    /// Of those, answered with a 5xx (including the gateway's own 502 and 504).
    pub errors: u64,
    /// Requests per second over the last minute.
    pub rps_1m: f64,
    /// Mean time to the response head.
    pub avg_latency_ms: f64,
    /// Median time to the response head (within ~9 %).
    pub p50_latency_ms: f64,
    /// 95th percentile.
    pub p95_latency_ms: f64,
    /// 99th percentile.
    pub p99_latency_ms: f64,
    /// Longest time to the response head.
    pub max_latency_ms: f64,
}

/// Counters of one upstream service.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UpstreamMetrics {
    /// Requests proxied to it.
    #[serde(flatten)]
    pub traffic: TrafficMetrics,
    /// Circuit breaker: `closed`, `open` or `half_open`.
    pub breaker: &'static str,
}

/// Counters of one route.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RouteMetrics {
    /// Requests answered on it.
    #[serde(flatten)]
    pub traffic: TrafficMetrics,
    /// Answers served from the response cache.
    pub cache_hits: u64,
    /// Cacheable requests that went upstream.
    pub cache_misses: u64,
    /// Hits over cacheable requests (0 to 1).
    pub cache_hit_ratio: f64,
}

/// Request counters of the gateway, overall and per upstream.
#[utoipa::path(get, path = "/metrics", tag = "gateway",
    responses((status = 200, description = "Gateway counters", body = MetricsResponse)))]
pub(crate) async fn get_metrics(State(metrics): State<Arc<GatewayMetrics>>) -> Response {
    axum::Json(metrics.snapshot()).into_response()
}

/// Prometheus text of the process-wide recorder; empty when none is installed.
#[utoipa::path(get, path = "/metrics/prometheus", tag = "gateway",
    responses((status = 200, description = "Prometheus text format", body = String,
        content_type = "text/plain")))]
pub(crate) async fn get_prometheus() -> Response {
    let body = mercato_kernel::telemetry::prometheus()
        .map(|h| h.render())
        .unwrap_or_default();
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(PROMETHEUS_TEXT),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_latency_is_averaged_and_maxed() {
        let stats = UpstreamStats::default();
        stats.record("svc", StatusCode::OK, Duration::from_millis(10));
        stats.record("svc", StatusCode::BAD_GATEWAY, Duration::from_millis(30));
        let snapshot = stats.snapshot().traffic;
        assert_eq!(snapshot.requests, 2);
        assert_eq!(snapshot.errors, 1);
        assert_eq!(snapshot.avg_latency_ms, 20.0);
        assert_eq!(snapshot.max_latency_ms, 30.0);
    }

    #[test]
    fn the_window_counts_the_last_sixty_seconds_only() {
        let window = Window::default();
        for second in 1000..1090 {
            window.count(second);
            window.count(second);
        }
        assert_eq!(window.last_minute(1089), 120);
        assert_eq!(window.last_minute(1200), 0);
    }

    #[test]
    fn answers_are_counted_by_class() {
        let metrics = GatewayMetrics::new(["svc"], None);
        metrics.count(StatusCode::OK);
        metrics.count(StatusCode::NOT_FOUND);
        metrics.count(StatusCode::GATEWAY_TIMEOUT);
        let snapshot = metrics.snapshot();
        assert_eq!(snapshot.requests_total, 3);
        assert_eq!(snapshot.status.success, 1);
        assert_eq!(snapshot.status.client_error, 1);
        assert_eq!(snapshot.status.server_error, 1);
        assert_eq!(snapshot.upstreams["svc"].traffic.requests, 0);
    }
}
