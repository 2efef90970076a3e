//! `GET /openapi.json`: the gateway's own endpoints merged with every upstream's document.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use tokio::sync::Mutex;
use utoipa::OpenApi as _;
use utoipa::openapi::OpenApi;

use crate::proxy::Backend;

/// Largest OpenAPI document read from a remote service.
const MAX_DOCUMENT_BYTES: usize = 16 * 1024 * 1024;

/// Title of the merged document.
pub const TITLE: &str = "Mercato API";

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        crate::health::get_health,
        crate::health::get_ready,
        crate::metrics::get_metrics,
        crate::metrics::get_prometheus,
    ),
    tags((name = "gateway", description = "The API gateway's own endpoints"))
)]
struct GatewayDoc;

/// The gateway's own document: `/health`, `/ready`, `/metrics`, `/metrics/prometheus`.
fn own_document() -> OpenApi {
    let mut doc = GatewayDoc::openapi();
    doc.info.title = TITLE.to_owned();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc.info.description = Some("Every Mercato service behind one gateway.".to_owned());
    doc.info.license = None;
    doc.info.contact = None;
    doc
}

/// Where one upstream's document comes from.
struct Source {
    backend: Arc<Backend>,
    /// Given at start (in-process services).
    fixed: Option<OpenApi>,
    /// Fetched from a remote service: when, and what (`None` when the fetch failed).
    cached: Mutex<Option<(Instant, Option<OpenApi>)>>,
}

/// Every upstream's document, fetched lazily from remote services and kept for a while.
pub(crate) struct Docs {
    sources: Vec<Source>,
    ttl: Duration,
    timeout: Duration,
}

impl Docs {
    /// Sources for each upstream; remote documents are kept for `ttl`, fetched within `timeout`.
    pub(crate) fn new(
        upstreams: impl IntoIterator<Item = (Arc<Backend>, Option<OpenApi>)>,
        ttl: Duration,
        timeout: Duration,
    ) -> Self {
        let sources = upstreams
            .into_iter()
            .map(|(backend, fixed)| Source {
                backend,
                fixed,
                cached: Mutex::new(None),
            })
            .collect();
        Self {
            sources,
            ttl,
            timeout,
        }
    }

    /// The merged document.
    pub(crate) async fn merged(&self) -> OpenApi {
        let docs =
            futures::future::join_all(self.sources.iter().map(|s| self.document_of(s))).await;
        merge(own_document(), docs.into_iter().flatten())
    }

    async fn document_of(&self, source: &Source) -> Option<OpenApi> {
        if let Some(fixed) = &source.fixed {
            return Some(fixed.clone());
        }
        // Holding the lock while fetching makes concurrent callers share one fetch.
        let mut cached = source.cached.lock().await;
        if let Some((at, doc)) = cached.as_ref()
            && at.elapsed() < self.ttl
        {
            return doc.clone();
        }
        let doc = self.fetch(&source.backend).await;
        *cached = Some((Instant::now(), doc.clone()));
        doc
    }

    async fn fetch(&self, backend: &Backend) -> Option<OpenApi> {
        let service = backend.info.name;
        let probe = backend
            .probe_one("/openapi.json", MAX_DOCUMENT_BYTES, self.timeout)
            .await;
        let failure = match probe.outcome {
            Ok((status, body)) if status.is_success() => match serde_json::from_slice(&body) {
                Ok(doc) => return Some(doc),
                Err(e) => format!("not an OpenAPI 3.1 document: {e}"),
            },
            Ok((status, _)) => format!("answered {status}"),
            Err(e) => e,
        };
        tracing::warn!(service, target = %probe.target, error = %failure, "openapi document left out");
        None
    }
}

/// Merges upstream documents into `base`: only their `/api/…` paths (their `/health`, `/ready`
/// and the like are not reachable through the gateway), components, tags and security; their
/// `servers` are dropped since clients talk to the gateway.
pub(crate) fn merge(mut base: OpenApi, upstreams: impl IntoIterator<Item = OpenApi>) -> OpenApi {
    for mut doc in upstreams {
        doc.servers = None;
        doc.paths.paths.retain(|path, _| path.starts_with("/api/"));
        base.merge(doc);
    }
    base
}

/// The merged OpenAPI document of the platform.
pub(crate) async fn get_openapi(State(docs): State<Arc<Docs>>) -> Response {
    axum::Json(docs.merged().await).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathItem, PathsBuilder};
    use utoipa::openapi::{Info, OpenApiBuilder};

    fn doc_with(paths: &[&str]) -> OpenApi {
        let mut builder = PathsBuilder::new();
        for path in paths {
            builder = builder.path(
                *path,
                PathItem::new(HttpMethod::Get, OperationBuilder::new().build()),
            );
        }
        OpenApiBuilder::new()
            .info(Info::new("svc", "1"))
            .paths(builder)
            .build()
    }

    #[test]
    fn only_api_paths_of_upstreams_are_merged() {
        let merged = merge(own_document(), [doc_with(&["/api/v1/products", "/health"])]);
        let json = serde_json::to_value(&merged).unwrap();
        assert_eq!(json["info"]["title"], TITLE);
        assert!(json["openapi"].as_str().unwrap().starts_with("3."));
        assert!(json["paths"]["/api/v1/products"]["get"].is_object());
        assert_eq!(
            json["paths"]["/health"]["get"]["tags"][0], "gateway",
            "{json}"
        );
        assert!(json["paths"]["/metrics/prometheus"].is_object());
    }
}
