//! What every answer of the gateway carries for browsers: security headers, CORS for the
//! origins the configuration names, and gzip or brotli compression of text bodies when the
//! client accepts it (event streams and small bodies are left alone).

use std::convert::Infallible;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{self, HeaderName};
use axum::http::{HeaderValue, Method};
use axum::response::Response;
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceBuilder};
use tower_http::compression::{CompressionBody, CompressionLayer};
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
    app.layer(axum::middleware::map_response(secure_headers_async))
}

async fn secure_headers_async(response: Response) -> Response {
    secure_headers(response)
}

/// A service answering `request` through `inner` with what [`apply`] gives a router.
pub(crate) fn wrap<S>(inner: S, cors: Option<CorsLayer>) -> Edge
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
{
    let compressed = ServiceBuilder::new()
        .map_response(|response: http::Response<CompressionBody<Body>>| response.map(Body::new))
        .layer(CompressionLayer::new())
        .service(inner);
    let secured = ServiceBuilder::new().map_response(secure_headers);
    match cors {
        Some(cors) => Edge::new(secured.layer(cors).service(compressed)),
        None => Edge::new(secured.service(compressed)),
    }
}

/// A request's way through the edge to its handler.
pub(crate) type Edge = BoxCloneSyncService<Request, Response, Infallible>;

fn secure_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.reserve(SECURITY_HEADERS.len());
    for (name, value) in SECURITY_HEADERS {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    response
}
