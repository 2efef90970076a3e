//! The gateway's own counters (`GET /metrics`, JSON) and the Prometheus text
//! (`GET /metrics/prometheus`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::latency::Histogram;

/// Content type of the Prometheus text exposition format.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4";

/// Counters of one upstream service.
#[derive(Debug, Default)]
pub(crate) struct UpstreamStats {
    requests: AtomicU64,
    errors: AtomicU64,
    latency_total_us: AtomicU64,
    latency_max_us: AtomicU64,
    latency: Histogram,
    /// Requests of the last minute: `(second, count)` by `second % 60`.
    window: Mutex<Window>,
    /// Its circuit breaker.
    pub(crate) breaker: crate::breaker::Breaker,
}

#[derive(Debug)]
struct Window([(u64, u64); 60]);

impl Default for Window {
    fn default() -> Self {
        Self([(0, 0); 60])
    }
}

fn epoch_second() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl UpstreamStats {
    /// Records one proxied request: its final status and the time to the response head.
    pub(crate) fn record(&self, upstream: &'static str, status: StatusCode, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.requests.fetch_add(1, Ordering::Relaxed);
        if status.is_server_error() {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        self.latency_total_us.fetch_add(micros, Ordering::Relaxed);
        self.latency_max_us.fetch_max(micros, Ordering::Relaxed);
        self.latency.record(micros);
        let now = epoch_second();
        let mut window = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = &mut window.0[(now % 60) as usize];
        if slot.0 != now {
            *slot = (now, 0);
        }
        slot.1 += 1;
        drop(window);
        let class = status_class(status);
        metrics::counter!("gateway_upstream_requests_total", "upstream" => upstream, "class" => class)
            .increment(1);
        metrics::histogram!("gateway_upstream_duration_seconds", "upstream" => upstream)
            .record(elapsed.as_secs_f64());
    }

    fn snapshot(&self) -> UpstreamMetrics {
        let requests = self.requests.load(Ordering::Relaxed);
        let total = self.latency_total_us.load(Ordering::Relaxed);
        let avg_us = if requests == 0 {
            0.0
        } else {
            total as f64 / requests as f64
        };
        let [p50, p95, p99] = self.latency.quantiles_ms([0.5, 0.95, 0.99]);
        let now = epoch_second();
        let last_minute: u64 = self
            .window
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .0
            .iter()
            .filter(|(second, _)| *second + 60 > now && *second <= now)
            .map(|(_, count)| count)
            .sum();
        UpstreamMetrics {
            requests,
            errors: self.errors.load(Ordering::Relaxed),
            rps_1m: (last_minute as f64 / 60.0 * 100.0).round() / 100.0,
            avg_latency_ms: round_ms(avg_us),
            p50_latency_ms: p50,
            p95_latency_ms: p95,
            p99_latency_ms: p99,
            max_latency_ms: round_ms(self.latency_max_us.load(Ordering::Relaxed) as f64),
            breaker: self.breaker.state_name(),
        }
    }
}

fn round_ms(micros: f64) -> f64 {
    (micros / 10.0).round() / 100.0
}

fn status_class(status: StatusCode) -> &'static str {
    match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// Every counter the gateway keeps in process.
#[derive(Debug)]
pub(crate) struct GatewayMetrics {
    started: Instant,
    requests_total: AtomicU64,
    /// 1xx, 2xx, 3xx, 4xx, 5xx.
    classes: [AtomicU64; 5],
    upstreams: BTreeMap<&'static str, Arc<UpstreamStats>>,
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
            cache,
        }
    }

    /// The counters of one upstream.
    pub(crate) fn upstream(&self, name: &str) -> Arc<UpstreamStats> {
        self.upstreams.get(name).cloned().unwrap_or_default()
    }

    fn count(&self, status: StatusCode) {
        self.requests_total.fetch_add(1, Ordering::Relaxed);
        let index = usize::from(status.as_u16() / 100).clamp(1, 5) - 1;
        self.classes[index].fetch_add(1, Ordering::Relaxed);
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

/// Counters of one upstream service.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UpstreamMetrics {
    /// Requests proxied to it.
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
    /// Circuit breaker: `closed`, `open` or `half_open`.
    pub breaker: &'static str,
    /// Longest time to the response head.
    pub max_latency_ms: f64,
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
        let snapshot = stats.snapshot();
        assert_eq!(snapshot.requests, 2);
        assert_eq!(snapshot.errors, 1);
        assert_eq!(snapshot.avg_latency_ms, 20.0);
        assert_eq!(snapshot.max_latency_ms, 30.0);
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
        assert_eq!(snapshot.upstreams["svc"].requests, 0);
    }
}
