//! Who is visiting: the cookies of a browser (session token, cart, CSRF token) and its
//! address; and forms, accepted only with the visitor's CSRF token.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::api::Call;
use crate::{Page, WebState};

/// The access token of a signed-in visitor.
pub(crate) const SESSION: &str = "mercato_session";
/// The refresh token that renews it.
pub(crate) const REFRESH: &str = "mercato_refresh";
/// The id of the visitor's open cart.
pub(crate) const CART: &str = "mercato_cart";
/// The token every form must echo.
const CSRF: &str = "mercato_csrf";
/// The form field carrying it.
const CSRF_FIELD: &str = "_csrf";
/// Largest form body.
const MAX_FORM: usize = 64 * 1024;

/// A browser's state, read from its cookies.
#[derive(Debug, Clone)]
pub(crate) struct Visitor {
    pub(crate) token: Option<String>,
    pub(crate) refresh: Option<String>,
    pub(crate) cart: Option<String>,
    pub(crate) csrf: String,
    /// Whether `csrf` was just made and must be set as a cookie.
    fresh_csrf: bool,
    pub(crate) peer: Option<SocketAddr>,
}

impl Visitor {
    pub(crate) fn from_parts(parts: &Parts) -> Self {
        let cookie = |name: &str| cookie(&parts.headers, name).filter(|v| !v.is_empty());
        let csrf =
            cookie(CSRF).filter(|v| v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit()));
        Self {
            token: cookie(SESSION),
            refresh: cookie(REFRESH),
            cart: cookie(CART).filter(|c| c.starts_with("cart_") && c.len() < 80),
            fresh_csrf: csrf.is_none(),
            csrf: csrf.unwrap_or_else(|| hex::encode(rand::random::<[u8; 16]>())),
            peer: parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0),
        }
    }

    /// The `Set-Cookie` headers a page must send for this visitor (a new CSRF token).
    pub(crate) fn cookies(&self, state: &WebState) -> Vec<HeaderValue> {
        if self.fresh_csrf {
            set_cookie(state, CSRF, &self.csrf, None)
                .into_iter()
                .collect()
        } else {
            Vec::new()
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Visitor {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::from_parts(parts))
    }
}

/// The value of cookie `name`.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim_matches('"').to_owned())
}

/// The sign-in cookies of `tokens` (an identity token answer): the access token for as long
/// as it is valid, the refresh token for as long as identity keeps it.
pub(crate) fn session_cookies(state: &WebState, tokens: &Value) -> Vec<HeaderValue> {
    let access = tokens["access_token"].as_str().unwrap_or_default();
    let refresh = tokens["refresh_token"].as_str().unwrap_or_default();
    // Dropped by the browser a little before the token lapses: a request then renews it.
    let lifetime = tokens["expires_in"]
        .as_u64()
        .unwrap_or(600)
        .saturating_sub(30)
        .max(1);
    [
        set_cookie(state, SESSION, access, Some(lifetime)),
        set_cookie(state, REFRESH, refresh, Some(REFRESH_SECONDS)),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// How long identity keeps a refresh token.
const REFRESH_SECONDS: u64 = 30 * 24 * 3600;

/// Recent exchanges of refresh tokens, by the token's SHA-256. Identity takes each refresh
/// token once and treats a second use as theft (the whole sign-in ends), while a browser
/// whose session lapsed sends several requests at once with the same refresh cookie (a page
/// and its live stock stream, two tabs): they share one exchange and its answer. The window
/// is short because within it a copied refresh cookie also gets the answer instead of
/// tripping identity's reuse detection.
#[derive(Clone)]
pub(crate) struct Renewals(moka::future::Cache<String, Arc<(StatusCode, Value)>>);

impl Default for Renewals {
    fn default() -> Self {
        Self(
            moka::future::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(10))
                .build(),
        )
    }
}

impl Renewals {
    /// Identity's answer to exchanging `refresh`: one call for all who ask within 10 s. An
    /// answer of identity being unavailable is not kept, so the next request tries again.
    async fn exchange(
        &self,
        state: &WebState,
        refresh: &str,
        peer: Option<SocketAddr>,
    ) -> Arc<(StatusCode, Value)> {
        let key = hex::encode(Sha256::digest(refresh.as_bytes()));
        let call = async {
            let answer = Call::new(axum::http::Method::POST, "/api/v1/auth/refresh")
                .json(json!({ "refresh_token": refresh }))
                .peer(peer)
                .send(&state.api)
                .await;
            let shared = Arc::new((answer.status, answer.body));
            if answer.status.is_server_error() {
                Err(shared)
            } else {
                Ok(shared)
            }
        };
        match self.0.try_get_with(key, call).await {
            Ok(answer) => answer,
            Err(unavailable) => Arc::clone(&unavailable),
        }
    }
}

/// Renews a sign-in whose access token lapsed: with a refresh cookie and no session cookie,
/// the refresh token is exchanged first, the request goes on with the new access token, and
/// the answer sets both cookies. A refresh token identity refuses is forgotten.
pub(crate) async fn renew(
    State(state): State<WebState>,
    mut request: Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    let (None, Some(refresh)) = (cookie(headers, SESSION), cookie(headers, REFRESH)) else {
        return next.run(request).await;
    };
    if refresh.is_empty() {
        return next.run(request).await;
    }
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let answer = state.renewals.exchange(&state, &refresh, peer).await;
    let (status, body) = answer.as_ref();
    let cookies = if status.is_success() {
        let access = body["access_token"].as_str().unwrap_or_default();
        if let Ok(value) = HeaderValue::from_str(&format!("{SESSION}={access}")) {
            request.headers_mut().append(header::COOKIE, value);
        }
        session_cookies(&state, body)
    } else if status.is_client_error() {
        set_cookie(&state, REFRESH, "", Some(0))
            .into_iter()
            .collect()
    } else {
        // Identity is unavailable: try again on the next request.
        Vec::new()
    };
    let mut response = next.run(request).await;
    for value in cookies {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// A `Set-Cookie` for `name`: HttpOnly, SameSite=Lax, Secure when the shop is served over
/// TLS; `max_age` of zero deletes it, `None` lasts the browser session.
pub(crate) fn set_cookie(
    state: &WebState,
    name: &str,
    value: &str,
    max_age: Option<u64>,
) -> Option<HeaderValue> {
    let mut text = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
    if let Some(seconds) = max_age {
        text.push_str(&format!("; Max-Age={seconds}"));
    }
    if state.secure_cookies {
        text.push_str("; Secure");
    }
    HeaderValue::from_str(&text).ok()
}

/// A submitted form whose `_csrf` field matches the visitor's token, with the visitor.
pub(crate) struct Form<T> {
    pub(crate) visitor: Visitor,
    pub(crate) fields: T,
}

impl<T: DeserializeOwned> FromRequest<WebState> for Form<T> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &WebState) -> Result<Self, Self::Rejection> {
        let (parts, body) = request.into_parts();
        let visitor = Visitor::from_parts(&parts);
        let refuse = |status: u16, message: &str| {
            Page::error(state, &visitor, status, message).into_response()
        };
        let bytes = match axum::body::to_bytes(body, MAX_FORM).await {
            Ok(bytes) => bytes,
            Err(_) => return Err(refuse(413, "The form is too large.")),
        };
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes)
            .map_err(|_| refuse(400, "The form could not be read."))?;
        let echoed = pairs
            .iter()
            .find(|(k, _)| k == CSRF_FIELD)
            .map(|(_, v)| v.as_str());
        // A fresh token means the browser sent none: no form of ours was behind this post.
        if visitor.fresh_csrf || echoed != Some(visitor.csrf.as_str()) {
            return Err(refuse(
                403,
                "This form has expired or did not come from this shop. Reload the page and try again.",
            ));
        }
        let fields = serde_urlencoded::from_bytes(&bytes)
            .map_err(|e| refuse(422, &format!("The form is incomplete: {e}.")))?;
        Ok(Self { visitor, fields })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A web state whose API answers `/api/v1/auth/refresh` with `status`, counting calls.
    fn state_with_identity(status: StatusCode) -> (WebState, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let api = axum::Router::new().route(
            "/api/v1/auth/refresh",
            axum::routing::post(move || {
                let n = counted.fetch_add(1, Ordering::SeqCst) + 1;
                async move {
                    // Slow enough that the concurrent callers all arrive while it runs.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    (
                        status,
                        axum::Json(json!({ "access_token": format!("a{n}") })),
                    )
                }
            }),
        );
        let slot = crate::api::ApiSlot::default();
        slot.set(api);
        let state = WebState {
            api: slot,
            templates: Arc::new(crate::render::environment(None)),
            secure_cookies: false,
            renewals: Renewals::default(),
        };
        (state, calls)
    }

    #[tokio::test]
    async fn concurrent_renewals_of_one_refresh_token_make_one_exchange() {
        let (state, calls) = state_with_identity(StatusCode::OK);
        let answers = exchange_concurrently(&state, "r1", 8).await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(answers.iter().all(|a| a.1["access_token"] == "a1"));
        // Another refresh token is exchanged on its own.
        state.renewals.exchange(&state, "r2", None).await;
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_unavailable_identity_is_asked_again() {
        let (state, calls) = state_with_identity(StatusCode::SERVICE_UNAVAILABLE);
        let first = state.renewals.exchange(&state, "r1", None).await;
        assert_eq!(first.0, StatusCode::SERVICE_UNAVAILABLE);
        state.renewals.exchange(&state, "r1", None).await;
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    async fn exchange_concurrently(
        state: &WebState,
        refresh: &str,
        n: usize,
    ) -> Vec<Arc<(StatusCode, Value)>> {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..n {
            let (state, refresh) = (state.clone(), refresh.to_owned());
            tasks.spawn(async move { state.renewals.exchange(&state, &refresh, None).await });
        }
        tasks.join_all().await
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; mercato_cart=cart_9; mercato_cart_x=no"),
        );
        assert_eq!(cookie(&headers, CART).as_deref(), Some("cart_9"));
        assert_eq!(cookie(&headers, "b"), None);
    }
}
