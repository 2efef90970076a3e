//! `GET /health`: every upstream's `/ready`, asked concurrently; `GET /ready`: the gateway
//! itself.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use mercato_kernel::health::{Readiness, ReadyReport};
use serde::Serialize;
use serde_json::Value;

use crate::Gateway;
use crate::proxy::{Backend, Probe};

/// Largest `/ready` answer read from a service.
const MAX_REPORT_BYTES: usize = 64 * 1024;

/// Body of `GET /health`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HealthResponse {
    /// `ok` when every service is up, else `degraded`.
    pub status: &'static str,
    /// One entry per running service, by name.
    pub services: BTreeMap<&'static str, ServiceHealth>,
}

/// Health of one service as the gateway sees it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ServiceHealth {
    /// `up` when its `/ready` answered 2xx (every replica's, when it has several), else `down`.
    pub status: &'static str,
    /// Time its `/ready` took (the slowest replica's).
    pub latency_ms: u64,
    /// The service's ready report, the error, or per replica (URL → health) when it has several.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub detail: Option<Value>,
}

impl ServiceHealth {
    fn from_probe(probe: Probe) -> Self {
        let latency_ms = u64::try_from(probe.latency.as_millis()).unwrap_or(u64::MAX);
        let (up, detail) = match probe.outcome {
            Ok((status, body)) => {
                let detail = serde_json::from_slice::<Value>(&body).unwrap_or_else(|_| {
                    Value::String(format!("answered {status} with a body that is not JSON"))
                });
                (status.is_success(), detail)
            }
            Err(error) => (false, Value::String(error)),
        };
        Self {
            status: if up { "up" } else { "down" },
            latency_ms,
            detail: Some(detail),
        }
    }

    fn from_replicas(probes: Vec<Probe>) -> Self {
        if probes.is_empty() {
            return Self {
                status: "down",
                latency_ms: 0,
                detail: Some(Value::String("no replica is configured".to_owned())),
            };
        }
        let probes = match <[Probe; 1]>::try_from(probes) {
            Ok([one]) => return Self::from_probe(one),
            Err(several) => several,
        };
        let mut all_up = true;
        let mut latency_ms = 0;
        let mut replicas = serde_json::Map::new();
        for probe in probes {
            let target = probe.target.clone();
            let health = Self::from_probe(probe);
            all_up &= health.status == "up";
            latency_ms = latency_ms.max(health.latency_ms);
            replicas.insert(target, serde_json::to_value(&health).unwrap_or(Value::Null));
        }
        Self {
            status: if all_up { "up" } else { "down" },
            latency_ms,
            detail: Some(Value::Object(replicas)),
        }
    }
}

/// Asks every backend's `/ready`, each within `timeout`.
pub(crate) async fn check(
    backends: &[Arc<Backend>],
    timeout: Duration,
) -> (StatusCode, HealthResponse) {
    let checks = backends.iter().map(|backend| async move {
        let probes = backend
            .probe_each("/ready", MAX_REPORT_BYTES, timeout)
            .await;
        (backend.info.name, ServiceHealth::from_replicas(probes))
    });
    let services: BTreeMap<_, _> = futures::future::join_all(checks)
        .await
        .into_iter()
        .collect();
    let all_up = services.values().all(|s| s.status == "up");
    let status = if all_up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        HealthResponse {
            status: if all_up { "ok" } else { "degraded" },
            services,
        },
    )
}

/// Health of every running service: 200 when all are up, 503 otherwise.
#[utoipa::path(get, path = "/health", tag = "gateway", responses(
    (status = 200, description = "Every service is up", body = HealthResponse),
    (status = 503, description = "Some service is down", body = HealthResponse)))]
pub(crate) async fn get_health(State(gateway): State<Arc<Gateway>>) -> Response {
    let (status, report) = check(&gateway.backends, gateway.timeout).await;
    if status != StatusCode::OK {
        let down: Vec<_> = report
            .services
            .iter()
            .filter(|(_, s)| s.status != "up")
            .map(|(n, _)| *n)
            .collect();
        tracing::warn!(?down, "some services are not ready");
    }
    (status, axum::Json(report)).into_response()
}

/// Readiness of the gateway itself; it does not depend on its upstreams being up.
#[utoipa::path(get, path = "/ready", tag = "gateway",
    responses((status = 200, description = "The gateway is ready", body = ReadyReport)))]
pub(crate) async fn get_ready() -> Response {
    axum::Json(Readiness::new("gateway").report().await).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn probe(target: &str, outcome: Result<(StatusCode, Bytes), String>) -> Probe {
        Probe {
            target: target.to_owned(),
            latency: Duration::from_millis(3),
            outcome,
        }
    }

    #[test]
    fn a_single_target_reports_its_ready_report() {
        let ok = Ok((StatusCode::OK, Bytes::from_static(br#"{"status":"ready"}"#)));
        let health = ServiceHealth::from_replicas(vec![probe("in-process", ok)]);
        assert_eq!(health.status, "up");
        assert_eq!(health.latency_ms, 3);
        assert_eq!(health.detail.unwrap()["status"], "ready");
    }

    #[test]
    fn one_down_replica_makes_the_service_down() {
        let ok = Ok((StatusCode::OK, Bytes::from_static(b"{}")));
        let health = ServiceHealth::from_replicas(vec![
            probe("http://a:1", ok),
            probe("http://b:2", Err("connection refused".to_owned())),
        ]);
        assert_eq!(health.status, "down");
        let detail = health.detail.unwrap();
        assert_eq!(detail["http://a:1"]["status"], "up");
        assert_eq!(detail["http://b:2"]["detail"], "connection refused");
    }
}
