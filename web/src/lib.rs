//! The storefront and admin of Mercato in the browser: server-rendered pages from templates
//! compiled into the binary, over the platform's public API, so `mercato up` serves a shop
//! with no build step. Pages work without JavaScript; a small script enhances them.

mod account;
mod admin;
mod api;
pub mod assets;
mod render;
mod session;
mod shop;

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::http::header::{self, HeaderValue};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use minijinja::Environment;
use serde::Serialize;

pub use api::ApiSlot;
use session::Visitor;

/// How the web app is set up.
#[derive(Debug, Clone, Default)]
pub struct WebConfig {
    /// Directory whose templates replace the shipped ones (`--theme DIR`).
    pub theme_dir: Option<PathBuf>,
    /// Whether cookies get `Secure` (the shop is served over TLS).
    pub secure_cookies: bool,
}

/// What every page handler shares.
#[derive(Clone)]
pub(crate) struct WebState {
    api: ApiSlot,
    templates: Arc<Environment<'static>>,
    secure_cookies: bool,
    renewals: session::Renewals,
}

/// The web app's pages and the slot to hand it the API router once that is built.
pub struct Web {
    /// Storefront at `/…`, admin at `/admin…`.
    pub router: Router,
    /// Where the gateway's router goes.
    pub api: ApiSlot,
}

/// The storefront and admin.
pub fn web(config: WebConfig) -> Web {
    let api = ApiSlot::default();
    let state = WebState {
        api: api.clone(),
        templates: Arc::new(render::environment(config.theme_dir)),
        secure_cookies: config.secure_cookies,
        renewals: session::Renewals::default(),
    };
    let router = Router::new()
        .route("/", get(shop::home))
        .route("/search", get(shop::search))
        .route("/categories/{slug}", get(shop::category))
        .route("/products/{slug}", get(shop::product))
        .route("/cart", get(shop::cart))
        .route("/cart/items", post(shop::add_item))
        .route("/cart/items/{id}", post(shop::change_item))
        .route("/cart/coupon", post(shop::apply_coupon))
        .route("/checkout", get(shop::checkout_form).post(shop::checkout))
        .route("/orders/{id}", get(shop::order))
        .route("/login", get(account::login_form).post(account::login))
        .route(
            "/register",
            get(account::register_form).post(account::register),
        )
        .route("/logout", post(account::logout))
        .route("/account", get(account::account))
        .route("/account/preferences", post(account::save_preferences))
        .route("/account/addresses", post(account::add_address))
        .route(
            "/account/addresses/{id}/delete",
            post(account::delete_address),
        )
        .route(
            "/password-reset",
            get(account::reset_form).post(account::reset),
        )
        .merge(admin::routes())
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            session::renew,
        ))
        .with_state(state);
    Web { router, api }
}

/// A rendered page: its status, HTML and the cookies it sets.
pub(crate) struct Page {
    status: StatusCode,
    html: String,
    cookies: Vec<HeaderValue>,
}

impl Page {
    /// Renders `template` with `context` plus what every page needs (the visitor's sign-in
    /// state and CSRF token).
    pub(crate) fn render<C: Serialize>(
        state: &WebState,
        visitor: &Visitor,
        template: &str,
        context: C,
    ) -> Self {
        let base = minijinja::context! {
            signed_in => visitor.token.is_some(),
            csrf => visitor.csrf.as_str(),
        };
        let context = minijinja::context! { ..minijinja::Value::from_serialize(&context), ..base };
        let rendered = state
            .templates
            .get_template(template)
            .and_then(|t| t.render(context));
        match rendered {
            Ok(html) => Self {
                status: StatusCode::OK,
                html,
                cookies: visitor.cookies(state),
            },
            Err(error) => {
                tracing::error!(
                    template,
                    error = format!("{error:#}"),
                    "a page failed to render"
                );
                Self {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    html: "<!doctype html><title>Error</title><p>This page could not be shown.</p>"
                        .to_owned(),
                    cookies: Vec::new(),
                }
            }
        }
    }

    /// The error page with `status` and `message`.
    pub(crate) fn error(state: &WebState, visitor: &Visitor, status: u16, message: &str) -> Self {
        Self::render(
            state,
            visitor,
            "error.html",
            minijinja::context! { status, message },
        )
        .with_status(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST))
    }

    /// Answers with `status`, unless the page failed to render: that stays a 500.
    pub(crate) fn with_status(mut self, status: StatusCode) -> Self {
        if self.status != StatusCode::INTERNAL_SERVER_ERROR {
            self.status = status;
        }
        self
    }
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let mut response = (self.status, Html(self.html)).into_response();
        let headers = response.headers_mut();
        for cookie in self.cookies {
            headers.append(header::SET_COOKIE, cookie);
        }
        // Pages carry a visitor's cart and CSRF token: never cached by anyone.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

/// The status of a page that shows `error`, if any.
pub(crate) fn status_for(error: &Option<String>) -> StatusCode {
    if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    }
}

/// A 303 to `location` (after a form), setting `cookies`.
pub(crate) fn see_other(location: &str, cookies: Vec<HeaderValue>) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    for cookie in cookies {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}
