//! `/health` (liveness) and `/ready` (the database and the bus answer).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

type CheckFn = dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync;

/// The dependencies `/ready` checks, each with a name.
#[derive(Clone, Default)]
pub struct Readiness {
    service: &'static str,
    checks: Vec<(&'static str, Arc<CheckFn>)>,
}

/// Result of one readiness check.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CheckReport {
    /// What was checked: `database`, `bus`.
    pub name: &'static str,
    /// `up` or `down`.
    pub status: &'static str,
    /// How long the check took.
    pub latency_ms: u64,
    /// Why it is down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Body of `/ready`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReadyReport {
    /// Service name.
    pub service: &'static str,
    /// `ready` when every check is up, else `not_ready`.
    pub status: &'static str,
    /// One entry per dependency.
    pub checks: Vec<CheckReport>,
}

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

impl Readiness {
    /// No checks yet, for the service of this name.
    pub fn new(service: &'static str) -> Self {
        Self {
            service,
            checks: Vec::new(),
        }
    }

    /// Adds a check; it fails when it errs or takes longer than two seconds.
    pub fn with_check<F, Fut>(mut self, name: &'static str, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.checks
            .push((name, Arc::new(move || Box::pin(check()))));
        self
    }

    /// Adds the standard checks of a service: its database and the bus.
    pub fn with_db_and_bus(self, db: mercato_store::Db, bus: mercato_bus::Bus) -> Self {
        self.with_check("database", move || {
            let db = db.clone();
            async move { db.ping().await.map_err(|e| e.to_string()) }
        })
        .with_check("bus", move || {
            let bus = bus.clone();
            async move { bus.ping().await.map_err(|e| e.to_string()) }
        })
    }

    /// Runs every check concurrently.
    pub async fn report(&self) -> ReadyReport {
        let runs = self.checks.iter().map(|(name, check)| async move {
            let started = Instant::now();
            let outcome = tokio::time::timeout(CHECK_TIMEOUT, check()).await;
            let error = match outcome {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e),
                Err(_) => Some(format!("no answer within {CHECK_TIMEOUT:?}")),
            };
            CheckReport {
                name,
                status: if error.is_none() { "up" } else { "down" },
                latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                error,
            }
        });
        let checks = futures::future::join_all(runs).await;
        let ready = checks.iter().all(|c| c.error.is_none());
        ReadyReport {
            service: self.service,
            status: if ready { "ready" } else { "not_ready" },
            checks,
        }
    }

    /// `/health` and `/ready` routes for this service.
    pub fn routes<S: Clone + Send + Sync + 'static>(self) -> Router<S> {
        let service = self.service;
        Router::new()
            .route("/health", get(move || async move { health(service) }))
            .route("/ready", get(move || async move { ready(&self).await }))
    }
}

fn health(service: &'static str) -> Response {
    axum::Json(serde_json::json!({ "service": service, "status": "ok" })).into_response()
}

async fn ready(readiness: &Readiness) -> Response {
    let report = readiness.report().await;
    let status = if report.status == "ready" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(report)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ready_only_when_every_check_is_up() {
        let readiness = Readiness::new("svc")
            .with_check("database", || async { Ok(()) })
            .with_check("bus", || async { Err("connection refused".to_owned()) });
        let report = readiness.report().await;
        assert_eq!(report.status, "not_ready");
        assert_eq!(report.checks[0].status, "up");
        assert_eq!(
            report.checks[1].error.as_deref(),
            Some("connection refused")
        );
    }
}
