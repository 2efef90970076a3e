//! The admin: staff only; anonymous visitors are sent to sign in. Each area (orders, …) has
//! its module with its routes and templates.

mod orders;
mod stock;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::api::Call;
use crate::session::Visitor;
use crate::{Page, WebState, see_other};

/// Templates of every admin page.
pub(crate) const TEMPLATES: &[&[(&str, &str)]] = &[orders::TEMPLATES, stock::TEMPLATES];

/// Routes of every admin page; `/admin` is the orders list until the dashboard.
pub(crate) fn routes() -> Router<WebState> {
    Router::new()
        .route("/admin", axum::routing::get(orders::orders))
        .merge(orders::routes())
        .merge(stock::routes())
}

/// The signed-in staff member, or the answer for anyone else.
pub(crate) async fn staff(
    state: &WebState,
    visitor: &Visitor,
    here: &str,
) -> Result<Value, Response> {
    let to_login = || see_other(&format!("/login?next={here}"), Vec::new());
    let Some(token) = visitor.token.as_deref() else {
        return Err(to_login());
    };
    let me = Call::get("/api/v1/users/me")
        .token(Some(token))
        .peer(visitor.peer)
        .send(&state.api)
        .await;
    if me.status == StatusCode::UNAUTHORIZED {
        return Err(to_login());
    }
    let is_staff = me.body["roles"]
        .as_array()
        .is_some_and(|roles| roles.iter().any(|r| r == "staff" || r == "admin"));
    if !is_staff {
        return Err(
            Page::error(state, visitor, 403, "The admin is for staff only.").into_response(),
        );
    }
    Ok(me.body)
}
