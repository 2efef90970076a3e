//! Payments: the newest payments by status, and the review of those held by risk checks.

use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Staff;
use crate::api::Call;
use crate::session::{Form, Visitor};
use crate::shop::query_string;
use crate::{Page, WebState, see_other};

/// Templates of these pages.
pub(crate) const TEMPLATES: &[(&str, &str)] = &[(
    "admin/ops/payments.html",
    include_str!("../../templates/admin/ops/payments.html"),
)];

/// Routes of these pages.
pub(crate) fn routes() -> axum::Router<WebState> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/admin/payments", get(payments))
        .route("/admin/payments/{id}/review", post(review))
}

/// Statuses offered by the filter.
const STATUSES: &[&str] = &[
    "",
    "requires_review",
    "requires_payment_method",
    "requires_confirmation",
    "processing",
    "requires_capture",
    "succeeded",
    "failed",
    "canceled",
];

/// Filter of the payment list.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct PaymentFilter {
    status: String,
}

async fn payments_page(
    state: &WebState,
    visitor: &Visitor,
    me: &Value,
    status: &str,
    error: Option<String>,
) -> Response {
    let status = if STATUSES.contains(&status) {
        status
    } else {
        ""
    };
    let answer = Call::get(format!(
        "/api/v1/payments?{}",
        query_string(&[("limit", "50"), ("status", status)])
    ))
    .for_visitor(visitor)
    .send(&state.api)
    .await;
    let listed = answer.ok();
    let error = error.or_else(|| (!listed).then(|| answer.message()));
    let payments = if answer.body.is_array() {
        answer.body
    } else {
        json!([])
    };
    let code = if error.is_some() && listed {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Page::render(
        state,
        visitor,
        "admin/ops/payments.html",
        json!({
            "me": me, "payments": payments, "status": status,
            "statuses": STATUSES, "error": error,
        }),
    )
    .with_status(code)
    .into_response()
}

pub(crate) async fn payments(
    State(state): State<WebState>,
    Staff(me): Staff,
    visitor: Visitor,
    Query(filter): Query<PaymentFilter>,
) -> Response {
    payments_page(&state, &visitor, &me, &filter.status, None).await
}

/// Fields of the review form.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ReviewForm {
    decision: String,
}

pub(crate) async fn review(
    State(state): State<WebState>,
    Staff(me): Staff,
    Path(id): Path<String>,
    form: Form<ReviewForm>,
) -> Response {
    let Form { visitor, fields } = form;
    if !matches!(fields.decision.as_str(), "approve" | "reject") {
        let error = "Choose Approve or Reject.".to_owned();
        return payments_page(&state, &visitor, &me, "requires_review", Some(error)).await;
    }
    let answer = Call::new(
        Method::POST,
        format!("/api/v1/payments/{}/review", crate::shop::segment(&id)),
    )
    .json(json!({ "decision": fields.decision }))
    .for_visitor(&visitor)
    .send(&state.api)
    .await;
    if !answer.ok() {
        let error = format!("Payment {id}: {}", answer.message());
        return payments_page(&state, &visitor, &me, "requires_review", Some(error)).await;
    }
    see_other("/admin/payments?status=requires_review", Vec::new())
}
