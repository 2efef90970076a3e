//! Who is visiting: the cookies of a browser (session token, cart, CSRF token) and its
//! address; and forms, accepted only with the visitor's CSRF token.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

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
    let answer = Call::new(axum::http::Method::POST, "/api/v1/auth/refresh")
        .json(json!({ "refresh_token": refresh }))
        .peer(peer)
        .send(&state.api)
        .await;
    let cookies = if answer.ok() {
        let access = answer.body["access_token"].as_str().unwrap_or_default();
        if let Ok(value) = HeaderValue::from_str(&format!("{SESSION}={access}")) {
            request.headers_mut().append(header::COOKIE, value);
        }
        session_cookies(&state, &answer.body)
    } else if answer.status.is_client_error() {
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
    use super::*;

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
