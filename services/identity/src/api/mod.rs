//! HTTP handlers of the identity service.

mod addresses;
mod api_keys;
mod auth;
mod jwks;
mod orgs;
mod recovery;
mod users;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use mercato_kernel::auth::Authenticator;
use mercato_kernel::openapi::BearerAuth;
use mercato_kernel::{Config, Context};
use mercato_store::Db;
use utoipa::OpenApi;

use crate::domain::throttle::ThrottlePolicy;
use crate::tokens::TokenIssuer;

pub use auth::TokenResponse;
pub use users::UserResponse;

/// State every handler gets.
#[derive(Clone)]
pub struct AppState {
    /// The identity database.
    pub db: Db,
    /// Platform configuration.
    pub config: Arc<Config>,
    /// The process's token verifier (also resolves API keys).
    pub auth: Arc<Authenticator>,
    /// Signs access tokens and keeps the signing keys.
    pub tokens: Arc<TokenIssuer>,
    /// Login throttling limits.
    pub throttle: ThrottlePolicy,
}

impl AppState {
    /// Loads or creates the signing keys and shares them with the verifier, then creates the
    /// bootstrap admin when configured.
    pub async fn start(ctx: &Context) -> anyhow::Result<Self> {
        let issuer = ctx.config.mercato_jwt_issuer.clone();
        let tokens = Arc::new(TokenIssuer::load_or_create(&ctx.db, issuer).await?);
        ctx.auth.set_local_keys(tokens.jwks());
        ctx.auth
            .set_api_key_resolver(Arc::new(crate::store::api_keys::DbApiKeyResolver::new(
                ctx.db.clone(),
            )));
        let state = Self {
            db: ctx.db.clone(),
            config: ctx.config.clone(),
            auth: ctx.auth.clone(),
            tokens,
            throttle: ThrottlePolicy::default(),
        };
        crate::domain::bootstrap::ensure_admin(&state).await?;
        crate::domain::password::prepare().await;
        Ok(state)
    }
}

/// The client's IP: the socket peer when served with connect info, else the first hop of
/// `X-Forwarded-For` (set by the gateway); `None` when neither is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIp(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if let Some(ConnectInfo(addr)) = parts.extensions.get::<ConnectInfo<SocketAddr>>() {
            return Ok(Self(Some(addr.ip().to_string())));
        }
        let forwarded = parts
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|first| first.trim().parse::<IpAddr>().ok())
            .map(|ip| ip.to_string());
        Ok(Self(forwarded))
    }
}

/// Every identity route.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(jwks::routes())
        .merge(auth::routes())
        .merge(recovery::routes())
        .merge(users::routes())
        .merge(api_keys::routes())
        .merge(addresses::routes())
        .merge(orgs::routes())
        .with_state(state)
}

/// The service's OpenAPI document, assembled from each resource's.
pub struct ApiDoc;

impl ApiDoc {
    /// The merged document.
    pub fn openapi() -> utoipa::openapi::OpenApi {
        let mut doc = Base::openapi();
        doc.merge(auth::Doc::openapi());
        doc.merge(recovery::Doc::openapi());
        doc.merge(users::Doc::openapi());
        doc.merge(jwks::Doc::openapi());
        doc.merge(api_keys::Doc::openapi());
        doc.merge(addresses::Doc::openapi());
        doc.merge(orgs::Doc::openapi());
        doc
    }
}

#[derive(utoipa::OpenApi)]
#[openapi(
    components(schemas(mercato_kernel::error::Problem)),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Registration, login, tokens"),
        (name = "users", description = "Accounts and roles"),
        (name = "api-keys", description = "API keys"),
        (name = "organizations", description = "Organizations, teams, members, invitations"),
    )
)]
struct Base;
