//! `GET /openapi.json`: the gateway's own endpoints merged with every upstream's document.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};
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
///
/// Documents are handled as JSON: utoipa's types do not read back everything they write
/// (`additionalProperties: false`, for one), and a service may be built by another version.
struct Source {
    backend: Arc<Backend>,
    /// Given at start (in-process services).
    fixed: Option<Value>,
    /// Fetched from a remote service: when, and what (`None` when the fetch failed).
    cached: Mutex<Option<(Instant, Option<Value>)>>,
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
                fixed: fixed.and_then(|doc| serde_json::to_value(doc).ok()),
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
    pub(crate) async fn merged(&self) -> Value {
        let docs =
            futures::future::join_all(self.sources.iter().map(|s| self.document_of(s))).await;
        merge(own_document(), docs.into_iter().flatten())
    }

    async fn document_of(&self, source: &Source) -> Option<Value> {
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

    async fn fetch(&self, backend: &Backend) -> Option<Value> {
        let service = backend.info.name;
        let probe = backend
            .probe_one("/openapi.json", MAX_DOCUMENT_BYTES, self.timeout)
            .await;
        let failure = match probe.outcome {
            Ok((status, body)) if status.is_success() => {
                match serde_json::from_slice::<Value>(&body) {
                    Ok(doc) if is_openapi_3(&doc) => return Some(doc),
                    Ok(_) => "not an OpenAPI 3 document".to_owned(),
                    Err(e) => format!("not JSON: {e}"),
                }
            }
            Ok((status, _)) => format!("answered {status}"),
            Err(e) => e,
        };
        tracing::warn!(service, target = %probe.target, error = %failure, "openapi document left out");
        None
    }
}

fn is_openapi_3(doc: &Value) -> bool {
    doc.get("openapi")
        .and_then(Value::as_str)
        .is_some_and(|v| v.starts_with("3."))
        && doc.get("paths").is_some_and(Value::is_object)
}

/// Merges upstream documents into the gateway's own: only their `/api/…` paths (their
/// `/health`, `/ready` and the like are not reachable through the gateway), components and
/// tags; their `servers` are dropped since clients talk to the gateway. What the gateway
/// already has wins over an upstream's entry of the same name.
pub(crate) fn merge(base: OpenApi, upstreams: impl IntoIterator<Item = Value>) -> Value {
    let mut merged = serde_json::to_value(base).unwrap_or_else(|_| Value::Object(Map::new()));
    for doc in upstreams {
        if let Some(paths) = doc.get("paths").and_then(Value::as_object) {
            let api = paths.iter().filter(|(path, _)| path.starts_with("/api/"));
            extend(&mut merged, &["paths"], api);
        }
        if let Some(components) = doc.get("components").and_then(Value::as_object) {
            for (section, entries) in components {
                if let Some(entries) = entries.as_object() {
                    extend(&mut merged, &["components", section], entries.iter());
                }
            }
        }
        if let (Some(tags), Some(root)) = (
            doc.get("tags").and_then(Value::as_array),
            merged.as_object_mut(),
        ) {
            let known = root
                .entry("tags")
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Some(known) = known.as_array_mut() {
                for tag in tags {
                    if !known.iter().any(|k| k.get("name") == tag.get("name")) {
                        known.push(tag.clone());
                    }
                }
            }
        }
    }
    merged
}

/// The object at `path` in `doc`, creating missing levels; `None` where a level is not an
/// object.
fn object_at<'a>(doc: &'a mut Value, path: &[&str]) -> Option<&'a mut Map<String, Value>> {
    let mut node = doc;
    for key in path {
        node = node
            .as_object_mut()?
            .entry((*key).to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    node.as_object_mut()
}

fn extend<'a>(
    doc: &mut Value,
    path: &[&str],
    entries: impl Iterator<Item = (&'a String, &'a Value)>,
) {
    if let Some(target) = object_at(doc, path) {
        for (key, value) in entries {
            target.entry(key.clone()).or_insert_with(|| value.clone());
        }
    }
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

    fn doc_with(paths: &[&str]) -> Value {
        let mut builder = PathsBuilder::new();
        for path in paths {
            builder = builder.path(
                *path,
                PathItem::new(HttpMethod::Get, OperationBuilder::new().build()),
            );
        }
        let doc = OpenApiBuilder::new()
            .info(Info::new("svc", "1"))
            .paths(builder)
            .build();
        serde_json::to_value(doc).unwrap()
    }

    #[test]
    fn only_api_paths_of_upstreams_are_merged() {
        let merged = merge(own_document(), [doc_with(&["/api/v1/products", "/health"])]);
        let json = merged;
        assert_eq!(json["info"]["title"], TITLE);
        assert!(json["openapi"].as_str().unwrap().starts_with("3."));
        assert!(json["paths"]["/api/v1/products"]["get"].is_object());
        assert_eq!(
            json["paths"]["/health"]["get"]["tags"][0], "gateway",
            "{json}"
        );
        assert!(json["paths"]["/metrics/prometheus"].is_object());
    }

    #[test]
    fn documents_utoipa_cannot_read_back_are_merged_too() {
        let upstream = serde_json::json!({
            "openapi": "3.1.0",
            "info": {"title": "svc", "version": "1"},
            "paths": {"/api/v1/things": {"post": {"responses": {}}}},
            "components": {"schemas": {"Thing": {"type": "object", "additionalProperties": false}}},
            "tags": [{"name": "things"}]
        });
        let merged = merge(own_document(), [upstream]);
        assert!(merged["paths"]["/api/v1/things"]["post"].is_object());
        assert_eq!(
            merged["components"]["schemas"]["Thing"]["additionalProperties"],
            false
        );
        let tags: Vec<_> = merged["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].clone())
            .collect();
        assert_eq!(tags, ["gateway", "things"]);
    }
}
