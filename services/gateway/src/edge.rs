//! What every answer of the gateway carries for browsers: security headers, CORS for the
//! origins the configuration names, and gzip or brotli compression of text bodies when the
//! client accepts it (event streams and small bodies are left alone).

use axum::Router;
use axum::http::header::{self, HeaderName};
use axum::http::{HeaderValue, Method};
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// Headers that keep browsers from sniffing types, framing pages or leaking paths; a service
/// that sets one itself keeps its own.
const SECURITY_HEADERS: [(HeaderName, &str); 5] = [
    (
        header::STRICT_TRANSPORT_SECURITY,
        "max-age=31536000; includeSubDomains",
    ),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::CONTENT_SECURITY_POLICY, "frame-ancestors 'none'"),
    (header::REFERRER_POLICY, "strict-origin-when-cross-origin"),
];

/// CORS for `origins` (comma-separated, or `*`); `None` when it names none. Malformed
/// origins are an error, not silently dropped.
pub(crate) fn cors(origins: &str) -> Result<Option<CorsLayer>, String> {
    let origins: Vec<&str> = origins
        .split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .collect();
    if origins.is_empty() {
        return Ok(None);
    }
    let allow = if origins == ["*"] {
        AllowOrigin::any()
    } else {
        let mut list = Vec::with_capacity(origins.len());
        for origin in origins {
            let ok = (origin.starts_with("https://") || origin.starts_with("http://"))
                && !origin.ends_with('/');
            let value = HeaderValue::from_str(origin).ok().filter(|_| ok);
            list.push(value.ok_or_else(|| {
                format!("`{origin}` is not an origin like https://shop.example.com")
            })?);
        }
        AllowOrigin::list(list)
    };
    let layer = CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("idempotency-key"),
            HeaderName::from_static("x-request-id"),
        ])
        .expose_headers([
            header::RETRY_AFTER,
            HeaderName::from_static("x-request-id"),
            HeaderName::from_static("ratelimit-limit"),
            HeaderName::from_static("ratelimit-remaining"),
            HeaderName::from_static("ratelimit-reset"),
        ])
        .max_age(std::time::Duration::from_secs(600));
    Ok(Some(layer))
}

/// Applies compression, the security headers and, when configured, CORS.
pub(crate) fn apply(mut app: Router, cors: Option<CorsLayer>) -> Router {
    app = app.layer(CompressionLayer::new());
    if let Some(cors) = cors {
        app = app.layer(cors);
    }
    // One layer for all five headers: each layer costs a boxed service call per request.
    app.layer(axum::middleware::map_response(secure_headers))
}

async fn secure_headers(mut response: axum::response::Response) -> axum::response::Response {
    let headers = response.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    response
}
