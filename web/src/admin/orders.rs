//! Orders (list, detail, fulfil, deliver, cancel, refund) and the local mail outbox.

use axum::extract::{Path, Query, State};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Staff, parse_amount};
use crate::api::Call;
use crate::session::{Form, Visitor};
use crate::{Page, WebState, see_other, status_for};

/// Templates of these pages.
pub(crate) const TEMPLATES: &[(&str, &str)] = &[
    (
        "admin/_nav.html",
        include_str!("../../templates/admin/_nav.html"),
    ),
    (
        "admin/orders.html",
        include_str!("../../templates/admin/orders.html"),
    ),
    (
        "admin/order.html",
        include_str!("../../templates/admin/order.html"),
    ),
    (
        "admin/mail.html",
        include_str!("../../templates/admin/mail.html"),
    ),
];

/// Routes of these pages.
pub(crate) fn routes() -> axum::Router<WebState> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/admin/orders", get(orders))
        .route("/admin/orders/{id}", get(order))
        .route("/admin/orders/{id}/{action}", post(order_action))
        .route("/admin/mail", get(mail))
}

/// Filters of the order list.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct OrderFilter {
    status: String,
    email: String,
}

pub(crate) async fn orders(
    State(state): State<WebState>,
    Staff(me): Staff,
    visitor: Visitor,
    Query(filter): Query<OrderFilter>,
) -> Response {
    let mut pairs = vec![("limit", "50")];
    if !filter.status.is_empty() {
        pairs.push(("status", filter.status.as_str()));
    }
    if !filter.email.trim().is_empty() {
        pairs.push(("email", filter.email.trim()));
    }
    let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
    let answer = Call::get(format!("/api/v1/orders?{query}"))
        .for_visitor(&visitor)
        .send(&state.api)
        .await;
    let error = (!answer.ok()).then(|| answer.message());
    Page::render(
        &state,
        &visitor,
        "admin/orders.html",
        json!({
            "me": me,
            "orders": answer.body.get("data").cloned().unwrap_or(json!([])),
            "status": filter.status, "email": filter.email, "error": error,
        }),
    )
    .into_response()
}

async fn order_page(
    state: &WebState,
    visitor: &Visitor,
    id: &str,
    me: &Value,
    error: Option<String>,
) -> Response {
    let answer = Call::get(format!("/api/v1/orders/{}", crate::shop::segment(id)))
        .for_visitor(visitor)
        .send(&state.api)
        .await;
    if !answer.ok() {
        return Page::error(state, visitor, 404, "There is no such order.").into_response();
    }
    let status = status_for(&error);
    Page::render(
        state,
        visitor,
        "admin/order.html",
        json!({ "me": me, "order": answer.body, "error": error }),
    )
    .with_status(status)
    .into_response()
}

pub(crate) async fn order(
    State(state): State<WebState>,
    Staff(me): Staff,
    visitor: Visitor,
    Path(id): Path<String>,
) -> Response {
    order_page(&state, &visitor, &id, &me, None).await
}

/// Fields of the order actions.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ActionForm {
    carrier: String,
    tracking_number: String,
    amount: String,
    reason: String,
    attempt: String,
}

pub(crate) async fn order_action(
    State(state): State<WebState>,
    Staff(me): Staff,
    Path((id, action)): Path<(String, String)>,
    form: Form<ActionForm>,
) -> Response {
    let Form { visitor, fields } = form;
    let path = format!("/api/v1/orders/{}/{action}", crate::shop::segment(&id));
    let call = match action.as_str() {
        "fulfill" => Call::new(Method::POST, path).json(json!({
            "carrier": fields.carrier.trim(),
            "tracking_number": fields.tracking_number.trim(),
        })),
        "deliver" => Call::new(Method::POST, path).json(json!({})),
        "cancel" => Call::new(Method::POST, path).json(json!({ "reason": fields.reason.trim() })),
        "refund" => {
            let Some(amount) = parse_amount(&fields.amount) else {
                let error = "Enter the amount to refund, e.g. 12.50.".to_owned();
                return order_page(&state, &visitor, &id, &me, Some(error)).await;
            };
            Call::new(Method::POST, path)
                .json(json!({ "amount": amount, "reason": fields.reason.trim() }))
                .idempotency_key(format!("web-refund-{id}-{}", fields.attempt))
        }
        _ => return Page::error(&state, &visitor, 404, "There is no such action.").into_response(),
    };
    let answer = call.for_visitor(&visitor).send(&state.api).await;
    if !answer.ok() {
        return order_page(&state, &visitor, &id, &me, Some(answer.message())).await;
    }
    see_other(
        &format!("/admin/orders/{}", crate::shop::segment(&id)),
        Vec::new(),
    )
}

/// The local mail outbox (emails kept when no SMTP server is configured), newest first.
pub(crate) async fn mail(
    State(state): State<WebState>,
    Staff(me): Staff,
    visitor: Visitor,
) -> Response {
    let answer = Call::get("/api/v1/notifications/mailbox")
        .for_visitor(&visitor)
        .send(&state.api)
        .await;
    let error = (!answer.ok()).then(|| answer.message());
    let mails = if answer.body.is_array() {
        answer.body
    } else {
        json!([])
    };
    Page::render(
        &state,
        &visitor,
        "admin/mail.html",
        json!({ "me": me, "mails": mails, "error": error }),
    )
    .into_response()
}
