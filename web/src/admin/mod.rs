//! The admin: staff only; anonymous visitors are sent to sign in. Each area (orders, …) has
//! its module with its routes and templates.

mod dashboard;
mod inventory;
mod notifications;
mod orders;
mod payments;
mod stock;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::api::Call;
use crate::session::Visitor;
use crate::{Page, WebState, see_other};

/// Templates of every admin page.
pub(crate) const TEMPLATES: &[&[(&str, &str)]] = &[
    orders::TEMPLATES,
    stock::TEMPLATES,
    dashboard::TEMPLATES,
    inventory::TEMPLATES,
    payments::TEMPLATES,
    notifications::TEMPLATES,
];

/// Routes of every admin page; `/admin` is the dashboard.
pub(crate) fn routes() -> Router<WebState> {
    Router::new()
        .route("/admin", axum::routing::get(dashboard::dashboard))
        .merge(orders::routes())
        .merge(stock::routes())
        .merge(dashboard::routes())
        .merge(inventory::routes())
        .merge(payments::routes())
        .merge(notifications::routes())
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

/// The answer's list: a bare array, or a page's `data`.
pub(crate) fn list(answer: &Value) -> Vec<Value> {
    answer
        .as_array()
        .or_else(|| answer["data"].as_array())
        .cloned()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn lists_come_bare_or_in_a_page() {
        assert_eq!(list(&json!([1, 2])).len(), 2);
        assert_eq!(list(&json!({ "data": [1] })).len(), 1);
        assert!(list(&json!({ "detail": "nope" })).is_empty());
    }
}
