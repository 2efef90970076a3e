//! `GET /.well-known/jwks.json`: the public keys that verify identity's access tokens.

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use mercato_kernel::{ApiError, Json};

use super::AppState;
use crate::tokens;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/.well-known/jwks.json", get(jwks))
}

/// The active signing key and the retired keys whose tokens may still be valid, read from
/// the database so every replica answers the same.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "auth",
    responses((status = 200, description = "A JSON Web Key Set of Ed25519 (`OKP`) keys",
        body = serde_json::Value)))]
pub async fn jwks(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let set = tokens::published_jwks(&state.db)
        .await
        .map_err(ApiError::internal)?;
    Ok(([(header::CACHE_CONTROL, "public, max-age=60")], Json(set)))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(jwks))]
pub(super) struct Doc;
