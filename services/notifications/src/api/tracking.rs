//! Public links inside messages: the open pixel, signed click redirects, and signed
//! unsubscribe links. None needs an account; the signatures make them unforgeable.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use mercato_kernel::error::Problem;
use mercato_kernel::{ApiError, Path, Query};
use mercato_store::now_micros;
use serde::Deserialize;

use super::AppState;
use crate::domain::Channel;
use crate::store;

/// Routes of this resource.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/notifications/{id}/open.gif", get(open_pixel))
        .route("/api/v1/notifications/{id}/click", get(click))
        .route("/api/v1/notifications/unsubscribe", get(unsubscribe))
}

/// OpenAPI of this resource.
#[derive(utoipa::OpenApi)]
#[openapi(paths(open_pixel, click, unsubscribe))]
pub struct Doc;

/// A transparent 1×1 GIF.
const PIXEL: &[u8] = &[
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

/// Records the first open of an email; always answers the pixel (unknown ids too, so the
/// answer reveals nothing).
#[utoipa::path(
    get, path = "/api/v1/notifications/{id}/open.gif", tag = "notifications",
    params(("id" = String, Path)),
    responses((status = 200, content_type = "image/gif", description = "A 1×1 transparent GIF"))
)]
async fn open_pixel(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    if id.starts_with("ntf_")
        && id.len() <= 64
        && let Ok(mut conn) = state.db.pool().acquire().await
        && let Err(e) = store::mark_engaged(&mut conn, &id, false, now_micros()).await
    {
        tracing::warn!(notification = %id, error = %e, "recording an open failed");
    }
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("image/gif")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        PIXEL,
    )
        .into_response()
}

/// `?url=&sig=` of a click link.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ClickQuery {
    /// Where the link goes.
    pub url: String,
    /// The link's signature.
    pub sig: String,
}

/// Records a click and redirects to the link's target; a link not made by this service is
/// 404, so it cannot be used to redirect anywhere else.
#[utoipa::path(
    get, path = "/api/v1/notifications/{id}/click", tag = "notifications",
    params(("id" = String, Path), ClickQuery),
    responses((status = 302, description = "To the link's target"), (status = 404, body = Problem))
)]
async fn click(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<ClickQuery>,
) -> Result<Redirect, ApiError> {
    if !state.links.verify_click(&id, &query.url, &query.sig) || !crate::domain::is_url(&query.url)
    {
        return Err(ApiError::not_found("link"));
    }
    store::mark_engaged(
        &mut *state.db.pool().acquire().await?,
        &id,
        true,
        now_micros(),
    )
    .await?;
    Ok(Redirect::to(&query.url))
}

/// `?token=` of an unsubscribe link.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct UnsubscribeQuery {
    /// The signed token of the link.
    pub token: String,
}

/// Turns the link's category off for its user on every channel, and says so.
#[utoipa::path(
    get, path = "/api/v1/notifications/unsubscribe", tag = "preferences",
    params(UnsubscribeQuery),
    responses((status = 200, content_type = "text/html"), (status = 404, body = Problem))
)]
async fn unsubscribe(
    State(state): State<AppState>,
    Query(query): Query<UnsubscribeQuery>,
) -> Result<(StatusCode, Html<String>), ApiError> {
    let (user, category) = state
        .links
        .read_unsubscribe(&query.token)
        .ok_or_else(|| ApiError::not_found("unsubscribe link"))?;
    let now = now_micros();
    let mut tx = state.db.begin().await?;
    for channel in Channel::ALL {
        store::set_preference(&mut tx, &user, &category, channel.as_str(), false, now).await?;
    }
    tx.commit().await?;
    let category = category.replace(['<', '>', '&', '"'], "");
    Ok((
        StatusCode::OK,
        Html(format!(
            "<!doctype html><meta charset=utf-8><title>Unsubscribed</title>\
             <p>You will no longer receive {category} messages.</p>"
        )),
    ))
}
