//! Promotions: the list, create (percentage or amount off, for everything, some categories or
//! some products, with or without a coupon), switch on and off, delete.

use axum::extract::{Path, State};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Pairs, Staff, field, fields, flat_categories, list, parse_amount, submit};
use crate::api::Call;
use crate::session::{Form, Visitor};
use crate::shop::segment;
use crate::{Page, WebState, status_for};

/// Templates of these pages.
pub(crate) const TEMPLATES: &[(&str, &str)] = &[(
    "admin/catalog/promotions.html",
    include_str!("../../templates/admin/catalog/promotions.html"),
)];

/// Routes of these pages.
pub(crate) fn routes() -> axum::Router<WebState> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/admin/promotions", get(promotions).post(create))
        .route("/admin/promotions/{id}/active", post(set_active))
        .route("/admin/promotions/{id}/delete", post(delete))
}

/// A `datetime-local` value (`2026-12-01T08:00`, seconds optional), read as UTC, in RFC 3339.
/// Anything else is passed on for the catalog to refuse with its own explanation.
fn instant(text: &str) -> Value {
    match text.len() {
        0 => Value::Null,
        16 => format!("{text}:00Z").into(),
        19 => format!("{text}Z").into(),
        _ => text.into(),
    }
}

fn count(text: &str, what: &str) -> Result<Value, String> {
    if text.is_empty() {
        return Ok(Value::Null);
    }
    text.parse::<i64>()
        .ok()
        .filter(|n| *n >= 1)
        .map(Value::from)
        .ok_or_else(|| format!("The {what} is a whole number of at least 1."))
}

/// The create form as a catalog promotion.
fn promotion(pairs: &Pairs) -> Result<Value, String> {
    let currency = field(pairs, "currency").to_ascii_uppercase();
    let kind = field(pairs, "kind");
    let value = field(pairs, "value");
    let mut body = json!({
        "name": field(pairs, "name"),
        "kind": kind,
        "target": field(pairs, "target"),
        "stackable": field(pairs, "stackable") == "on",
        "active": field(pairs, "active") == "on",
        "starts_at": instant(field(pairs, "starts_at")),
        "ends_at": instant(field(pairs, "ends_at")),
        "usage_limit": count(field(pairs, "usage_limit"), "usage limit")?,
        "usage_limit_per_customer":
            count(field(pairs, "usage_limit_per_customer"), "limit per customer")?,
    });
    // `12.5` % is 1250 basis points: the same two-decimal reading as an amount.
    let amount = parse_amount(value);
    match kind {
        "percentage" => {
            body["basis_points"] = amount
                .ok_or("Enter the percentage off, e.g. 15 or 12.5.")?
                .into();
        }
        _ => {
            let amount = amount.ok_or("Enter the amount off, e.g. 5.00.")?;
            body["amounts"] = json!([{ "amount": amount, "currency": currency }]);
        }
    }
    let target = field(pairs, "target");
    let picker = match target {
        "categories" => "category_ids",
        "products" => "product_ids",
        _ => "",
    };
    if !picker.is_empty() {
        let ids: Vec<&str> = fields(pairs, picker).collect();
        body["target_ids"] = json!(ids);
    }
    let coupon = field(pairs, "coupon_code");
    if !coupon.is_empty() {
        body["coupon_code"] = Value::from(coupon);
    }
    let minimum = field(pairs, "minimum_subtotal");
    if !minimum.is_empty() {
        let minimum = parse_amount(minimum).ok_or("The minimum subtotal is an amount, e.g. 50.")?;
        body["minimum_subtotal"] = json!({ "amount": minimum, "currency": currency });
    }
    Ok(body)
}

async fn promotions_page(
    state: &WebState,
    visitor: &Visitor,
    me: &Value,
    error: Option<String>,
) -> Response {
    let answer = Call::get("/api/v1/promotions?limit=100")
        .for_visitor(visitor)
        .send(&state.api)
        .await;
    let tree = Call::get("/api/v1/categories")
        .for_visitor(visitor)
        .send(&state.api)
        .await;
    let products = Call::get("/api/v1/products?limit=100")
        .for_visitor(visitor)
        .send(&state.api)
        .await;
    let error = error.or_else(|| (!answer.ok()).then(|| answer.message()));
    let status = status_for(&error);
    Page::render(
        state,
        visitor,
        "admin/catalog/promotions.html",
        json!({
            "me": me,
            "promotions": list(&answer.body),
            "categories": flat_categories(&tree.body),
            "products": list(&products.body),
            "error": error,
        }),
    )
    .with_status(status)
    .into_response()
}

pub(crate) async fn promotions(
    State(state): State<WebState>,
    Staff(me): Staff,
    visitor: Visitor,
) -> Response {
    promotions_page(&state, &visitor, &me, None).await
}

/// Sends `call`; back to the list, with the API's complaint if it refused.
async fn apply(
    state: &WebState,
    visitor: &Visitor,
    me: &Value,
    call: Result<Call<'_>, String>,
) -> Response {
    submit(state, visitor, call, "/admin/promotions", async |error| {
        promotions_page(state, visitor, me, Some(error)).await
    })
    .await
}

pub(crate) async fn create(
    State(state): State<WebState>,
    Staff(me): Staff,
    form: Form<Pairs>,
) -> Response {
    let Form { visitor, fields } = form;
    let call =
        promotion(&fields).map(|body| Call::new(Method::POST, "/api/v1/promotions").json(body));
    apply(&state, &visitor, &me, call).await
}

/// Field of the on / off button.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ActiveForm {
    active: String,
}

pub(crate) async fn set_active(
    State(state): State<WebState>,
    Staff(me): Staff,
    Path(id): Path<String>,
    form: Form<ActiveForm>,
) -> Response {
    let Form { visitor, fields } = form;
    let path = format!("/api/v1/promotions/{}", segment(&id));
    let call = Call::new(Method::PATCH, path).json(json!({ "active": fields.active == "true" }));
    apply(&state, &visitor, &me, Ok(call)).await
}

pub(crate) async fn delete(
    State(state): State<WebState>,
    Staff(me): Staff,
    Path(id): Path<String>,
    form: Form<ActiveForm>,
) -> Response {
    let Form { visitor, .. } = form;
    let path = format!("/api/v1/promotions/{}", segment(&id));
    apply(&state, &visitor, &me, Ok(Call::new(Method::DELETE, path))).await
}

#[cfg(test)]
mod tests {
    use super::super::form_pairs as pairs;
    use super::*;

    #[test]
    fn a_percentage_for_some_categories_with_a_coupon() {
        let body = promotion(&pairs(&[
            ("name", "Winter"),
            ("kind", "percentage"),
            ("value", "12.5"),
            ("currency", "eur"),
            ("target", "categories"),
            ("category_ids", "cat_1"),
            ("category_ids", "cat_2"),
            ("product_ids", "prd_9"),
            ("coupon_code", "winter"),
            ("active", "on"),
            ("starts_at", "2026-12-01T08:00"),
            ("usage_limit", "100"),
        ]))
        .unwrap();
        assert_eq!(body["basis_points"], 1250);
        assert_eq!(body["target_ids"], json!(["cat_1", "cat_2"]));
        assert_eq!(body["coupon_code"], "winter");
        assert_eq!(body["active"], true);
        assert_eq!(body["stackable"], false);
        assert_eq!(body["starts_at"], "2026-12-01T08:00:00Z");
        assert_eq!(body["ends_at"], Value::Null);
        assert_eq!(body["usage_limit"], 100);
    }

    #[test]
    fn an_amount_off_everything_above_a_minimum() {
        let body = promotion(&pairs(&[
            ("name", "Five off"),
            ("kind", "fixed_amount"),
            ("value", "5"),
            ("currency", "EUR"),
            ("target", "all"),
            ("minimum_subtotal", "50"),
        ]))
        .unwrap();
        assert_eq!(
            body["amounts"],
            json!([{ "amount": 500, "currency": "EUR" }])
        );
        assert_eq!(
            body["minimum_subtotal"],
            json!({ "amount": 5000, "currency": "EUR" })
        );
        assert!(body.get("target_ids").is_none());
    }

    #[test]
    fn unreadable_fields_are_named() {
        let bad = |field: &str, value: &str| {
            let mut form = pairs(&[("kind", "percentage"), ("value", "10")]);
            form.retain(|(k, _)| k != field);
            form.push((field.to_owned(), value.to_owned()));
            promotion(&form).unwrap_err()
        };
        assert!(bad("value", "lots").contains("percentage"));
        assert!(bad("usage_limit", "0").contains("usage limit"));
        assert_eq!(instant("2026-12-01T08:00:30"), "2026-12-01T08:00:30Z");
        assert_eq!(instant("tomorrow"), "tomorrow");
    }
}
