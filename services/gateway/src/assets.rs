//! `/assets/*`: the web bundle's static files, or a redirect to the CDN holding them.

use axum::extract::{Request, State};
use axum::http::uri::PathAndQuery;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mercato_kernel::ApiError;

use crate::routes::route_not_found;

/// One file of the web bundle, compiled into the binary.
#[derive(Debug, Clone, Copy)]
pub struct StaticAsset {
    /// Its bytes.
    pub body: &'static [u8],
    /// Its media type.
    pub content_type: &'static str,
    /// A strong validator of its bytes, quoted (`"…"`).
    pub etag: &'static str,
}

/// Finds a file of the bundle by its path below `/assets/`.
pub type AssetLookup = fn(&str) -> Option<StaticAsset>;

/// Where `/assets/*` answers come from.
#[derive(Debug, Clone, Default)]
pub(crate) struct Assets {
    /// `CDN_BASE_URL`: every asset request is redirected there.
    pub(crate) cdn_base_url: Option<String>,
    /// The bundle compiled in.
    pub(crate) bundle: Option<AssetLookup>,
}

/// Revalidated on each use, so a new release is picked up without renamed files.
const CACHE_CONTROL: &str = "public, max-age=300, must-revalidate";

pub(crate) async fn serve(
    State(assets): State<std::sync::Arc<Assets>>,
    request: Request,
) -> Response {
    let uri = request.uri();
    if let Some(base) = &assets.cdn_base_url {
        let tail = uri
            .path_and_query()
            .map_or(uri.path(), PathAndQuery::as_str);
        let location = format!("{}{tail}", base.trim_end_matches('/'));
        return match HeaderValue::from_str(&location) {
            Ok(location) => (StatusCode::FOUND, [(header::LOCATION, location)]).into_response(),
            Err(_) => {
                tracing::warn!(cdn_base_url = %base, "CDN_BASE_URL does not make a valid Location");
                ApiError::unavailable("assets are not available").into_response()
            }
        };
    }
    let path = uri.path().strip_prefix("/assets/").unwrap_or_default();
    let found = assets
        .bundle
        .filter(|_| {
            !path
                .split('/')
                .any(|s| s.is_empty() || s == ".." || s == ".")
        })
        .and_then(|lookup| lookup(path));
    let Some(asset) = found else {
        return route_not_found(uri.path()).into_response();
    };
    let etag = HeaderValue::from_static(asset.etag);
    let fresh = request
        .headers()
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| {
            let tag = tag.trim();
            tag == "*" || tag.trim_start_matches("W/") == asset.etag
        });
    let headers = [
        (header::ETAG, etag),
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static(CACHE_CONTROL),
        ),
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        ),
    ];
    if fresh {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    // axum drops the body of a HEAD answer itself.
    (StatusCode::OK, headers, asset.body).into_response()
}
