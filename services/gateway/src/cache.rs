//! The response cache of public GETs: responses of the route groups in
//! `GATEWAY_CACHE_ROUTES` (by default the catalog's products, categories and search) to
//! requests without credentials are kept for their `Cache-Control: max-age` (else
//! `GATEWAY_CACHE_TTL_MS`), up to `GATEWAY_CACHE_MAX_ENTRIES`. `no-store`, `no-cache` and
//! `private` answers, answers other than 200 and answers setting cookies are never kept.
//!
//! Every cached answer has an `ETag` (the upstream's, else a hash of the body), so
//! `If-None-Match` gets a 304 without a body. Many concurrent misses of one key make one
//! upstream call: the others wait for its answer (moka's loader deduplication). `X-Cache`
//! says `HIT` or `MISS`.

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use http_body_util::{BodyExt, Limited};
use mercato_kernel::Config;
use moka::Expiry;
use moka::future::Cache;
use sha2::{Digest, Sha256};

/// Largest body kept.
const MAX_CACHED_BODY: usize = 1024 * 1024;

/// `X-Cache`.
pub(crate) static X_CACHE: HeaderName = HeaderName::from_static("x-cache");

/// Response headers kept with a cached answer (the rest is hop-by-hop or per request).
const KEPT: [HeaderName; 6] = [
    header::CONTENT_TYPE,
    header::CONTENT_LANGUAGE,
    header::CACHE_CONTROL,
    header::ETAG,
    header::LAST_MODIFIED,
    header::VARY,
];

/// One cached answer.
pub(crate) struct Entry {
    headers: HeaderMap,
    body: Bytes,
    etag: HeaderValue,
    stored: Instant,
    ttl: Duration,
}

struct ByEntry;

impl Expiry<String, Arc<Entry>> for ByEntry {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Arc<Entry>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// The cache and its counters.
pub(crate) struct ResponseCache {
    entries: Cache<String, Arc<Entry>>,
    segments: HashSet<String>,
    default_ttl: Duration,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl std::fmt::Debug for ResponseCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseCache")
            .field("segments", &self.segments)
            .field("default_ttl", &self.default_ttl)
            .finish_non_exhaustive()
    }
}

/// Counters for `/metrics`.
#[derive(Debug, Clone, Copy, serde::Serialize, utoipa::ToSchema)]
pub struct CacheStats {
    /// Answers served from the cache (304s included).
    pub hits: u64,
    /// Answers fetched from an upstream.
    pub misses: u64,
    /// `hits / (hits + misses)`, 0 before any.
    pub hit_ratio: f64,
    /// Entries held now.
    pub entries: u64,
}

impl ResponseCache {
    /// The cache the configuration asks for; `None` when its TTL or size is 0.
    pub(crate) fn from_config(config: &Config) -> Option<Self> {
        if config.gateway_cache_ttl_ms == 0 || config.gateway_cache_max_entries == 0 {
            return None;
        }
        Some(Self {
            entries: Cache::builder()
                .max_capacity(config.gateway_cache_max_entries)
                .expire_after(ByEntry)
                .build(),
            segments: config
                .gateway_cache_routes
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
            default_ttl: Duration::from_millis(config.gateway_cache_ttl_ms),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        })
    }

    /// Whether a request to `segment` may be answered from the cache: a GET or HEAD without
    /// credentials to a cached route group, not asking to bypass caches.
    pub(crate) fn applies(&self, segment: &str, request: &Request) -> bool {
        let headers = request.headers();
        matches!(*request.method(), Method::GET | Method::HEAD)
            && self.segments.contains(segment)
            && !headers.contains_key(header::AUTHORIZATION)
            && !headers.contains_key(header::COOKIE)
            && !headers
                .get(header::CACHE_CONTROL)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("no-cache") || v.contains("no-store"))
    }

    /// Drops every entry (a catalog change).
    pub(crate) fn invalidate_all(&self) {
        self.entries.invalidate_all();
    }

    /// The counters.
    pub(crate) fn stats(&self) -> CacheStats {
        let hits = self.hits.load(Ordering::Relaxed);
        let misses = self.misses.load(Ordering::Relaxed);
        let total = hits + misses;
        CacheStats {
            hits,
            misses,
            hit_ratio: if total == 0 {
                0.0
            } else {
                hits as f64 / total as f64
            },
            entries: self.entries.entry_count(),
        }
    }

    /// Answers `request` from the cache, or with `fetch` (called at most once per key for
    /// concurrent misses) and keeps the answer when it may.
    pub(crate) async fn serve<F, Fut>(&self, request: Request, fetch: F) -> Response
    where
        F: Fn(Request) -> Fut,
        Fut: Future<Output = Response>,
    {
        let (parts, _) = request.into_parts();
        let key = parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned());
        let conditional = parts.headers.get(header::IF_NONE_MATCH).cloned();
        let head = parts.method == Method::HEAD;
        if let Some(entry) = self.entries.get(&key).await {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return entry.respond(conditional.as_ref(), head, "HIT");
        }
        let ran = AtomicBool::new(false);
        let uncacheable: Mutex<Option<Response>> = Mutex::new(None);
        let loaded = self
            .entries
            .optionally_get_with(key, async {
                ran.store(true, Ordering::SeqCst);
                let response = fetch(upstream_request(&parts)).await;
                match Entry::keep(response, self.default_ttl).await {
                    Ok(entry) => Some(Arc::new(entry)),
                    Err(response) => {
                        *uncacheable.lock().unwrap_or_else(PoisonError::into_inner) =
                            Some(response);
                        None
                    }
                }
            })
            .await;
        let own_call = ran.load(Ordering::SeqCst);
        if own_call {
            self.misses.fetch_add(1, Ordering::Relaxed);
        } else {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
        match loaded {
            Some(entry) => entry.respond(
                conditional.as_ref(),
                head,
                if own_call { "MISS" } else { "HIT" },
            ),
            None => {
                let kept = uncacheable
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take();
                let mut response = match kept {
                    Some(response) => response,
                    // Another request's answer could not be kept: ask for our own.
                    None => fetch(upstream_request(&parts)).await,
                };
                response
                    .headers_mut()
                    .insert(X_CACHE.clone(), HeaderValue::from_static("MISS"));
                response
            }
        }
    }
}

/// The request sent upstream: the same GET, always unconditional (the cache answers
/// `If-None-Match` itself, from a full answer).
fn upstream_request(parts: &Parts) -> Request {
    let mut builder = Request::builder()
        .method(parts.method.clone())
        .uri(parts.uri.clone())
        .version(parts.version);
    for (name, value) in &parts.headers {
        if name != header::IF_NONE_MATCH && name != header::IF_MODIFIED_SINCE {
            builder = builder.header(name, value);
        }
    }
    let mut request = builder.body(Body::empty()).unwrap_or_default();
    *request.extensions_mut() = parts.extensions.clone();
    request
}

/// `max-age` of a `Cache-Control` value; `Err` when the answer must not be kept.
fn freshness(cache_control: Option<&str>, default: Duration) -> Result<Duration, ()> {
    let Some(value) = cache_control else {
        return Ok(default);
    };
    let mut ttl = default;
    for directive in value.split(',').map(|d| d.trim().to_ascii_lowercase()) {
        match directive.as_str() {
            "no-store" | "no-cache" | "private" => return Err(()),
            d => {
                if let Some(seconds) = d
                    .strip_prefix("s-maxage=")
                    .or_else(|| d.strip_prefix("max-age="))
                {
                    let seconds: u64 = seconds.trim_matches('"').parse().map_err(|_| ())?;
                    if seconds == 0 {
                        return Err(());
                    }
                    ttl = Duration::from_secs(seconds);
                }
            }
        }
    }
    Ok(ttl)
}

impl Entry {
    /// The answer as an entry, or the answer back when it must not (or cannot) be kept.
    async fn keep(response: Response, default_ttl: Duration) -> Result<Entry, Response> {
        let headers = response.headers();
        let cache_control = headers
            .get(header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok());
        let too_big = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok())
            .is_none_or(|len| len > MAX_CACHED_BODY);
        let ttl = match freshness(cache_control, default_ttl) {
            Ok(ttl)
                if response.status() == StatusCode::OK
                    && !headers.contains_key(header::SET_COOKIE)
                    && !too_big =>
            {
                ttl
            }
            _ => return Err(response),
        };
        let (parts, body) = response.into_parts();
        let body = match Limited::new(body, MAX_CACHED_BODY).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => {
                // The body promised a length it did not deliver: nothing to keep or forward.
                let mut failed = Response::new(Body::empty());
                *failed.status_mut() = StatusCode::BAD_GATEWAY;
                return Err(failed);
            }
        };
        let mut kept = HeaderMap::new();
        for name in &KEPT {
            if let Some(value) = parts.headers.get(name) {
                kept.insert(name.clone(), value.clone());
            }
        }
        let etag = match kept.get(header::ETAG) {
            Some(etag) => etag.clone(),
            None => {
                let digest = Sha256::digest(&body);
                let etag = format!("\"{}\"", hex::encode(&digest[..16]));
                let value =
                    HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"0\""));
                kept.insert(header::ETAG, value.clone());
                value
            }
        };
        Ok(Entry {
            headers: kept,
            body,
            etag,
            stored: Instant::now(),
            ttl,
        })
    }

    fn matches(&self, if_none_match: &HeaderValue) -> bool {
        let Ok(list) = if_none_match.to_str() else {
            return false;
        };
        let ours = self
            .etag
            .to_str()
            .unwrap_or_default()
            .trim_start_matches("W/");
        list.split(',')
            .map(|tag| tag.trim().trim_start_matches("W/"))
            .any(|tag| tag == "*" || tag == ours)
    }

    fn respond(
        &self,
        if_none_match: Option<&HeaderValue>,
        head: bool,
        outcome: &'static str,
    ) -> Response {
        let not_modified = if_none_match.is_some_and(|tag| self.matches(tag));
        let body = if not_modified || head {
            Body::empty()
        } else {
            Body::from(self.body.clone())
        };
        let mut response = Response::new(body);
        *response.status_mut() = if not_modified {
            StatusCode::NOT_MODIFIED
        } else {
            StatusCode::OK
        };
        let headers = response.headers_mut();
        for (name, value) in &self.headers {
            if !(not_modified && name == header::CONTENT_TYPE) {
                headers.insert(name.clone(), value.clone());
            }
        }
        if !not_modified {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(self.body.len()));
        }
        headers.insert(
            header::AGE,
            HeaderValue::from(self.stored.elapsed().as_secs()),
        );
        headers.insert(X_CACHE.clone(), HeaderValue::from_static(outcome));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_decides_what_is_kept_and_for_how_long() {
        let default = Duration::from_secs(10);
        assert_eq!(freshness(None, default), Ok(default));
        assert_eq!(
            freshness(Some("public, max-age=60"), default),
            Ok(Duration::from_secs(60))
        );
        assert_eq!(
            freshness(Some("max-age=60, s-maxage=5"), default),
            Ok(Duration::from_secs(5))
        );
        for refused in [
            "no-store",
            "private, max-age=60",
            "no-cache",
            "max-age=0",
            "max-age=x",
        ] {
            assert_eq!(freshness(Some(refused), default), Err(()), "{refused}");
        }
    }
}
