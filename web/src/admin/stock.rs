//! Stock per warehouse with adjustments, the low-stock list, and the customers.

use axum::extract::{Query, State};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Staff, list};
use crate::api::Call;
use crate::session::{Form, Visitor};
use crate::shop::query_string;
use crate::{Page, WebState, see_other, status_for};

/// Templates of these pages.
pub(crate) const TEMPLATES: &[(&str, &str)] = &[
    (
        "admin/_adjust_fields.html",
        include_str!("../../templates/admin/_adjust_fields.html"),
    ),
    (
        "admin/inventory.html",
        include_str!("../../templates/admin/inventory.html"),
    ),
    (
        "admin/customers.html",
        include_str!("../../templates/admin/customers.html"),
    ),
];

/// Routes of these pages.
pub(crate) fn routes() -> axum::Router<WebState> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/admin/inventory", get(inventory))
        .route("/admin/inventory/adjust", post(adjust))
        .route("/admin/customers", get(customers))
}

/// Query of the stock page.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct StockQuery {
    starting_after: String,
}

async fn inventory_page(
    state: &WebState,
    visitor: &Visitor,
    me: &Value,
    after: &str,
    error: Option<String>,
) -> Response {
    let products = Call::get(format!(
        "/api/v1/products?{}",
        query_string(&[("limit", "25"), ("starting_after", after)])
    ))
    .for_visitor(visitor)
    .send(&state.api)
    .await;
    // SKU → product title, in the catalog's order.
    let mut skus: Vec<(String, Value)> = Vec::new();
    for product in list(&products.body) {
        for variant in product["variants"].as_array().into_iter().flatten() {
            if let Some(sku) = variant["sku"].as_str() {
                skus.push((sku.to_owned(), product["title"].clone()));
            }
        }
    }
    let levels = if skus.is_empty() {
        Vec::new()
    } else {
        let joined: Vec<&str> = skus.iter().map(|(sku, _)| sku.as_str()).collect();
        let answer = Call::get(format!(
            "/api/v1/stock?{}",
            query_string(&[("skus", &joined.join(","))])
        ))
        .for_visitor(visitor)
        .send(&state.api)
        .await;
        list(&answer.body)
    };
    let rows: Vec<Value> = skus
        .iter()
        .map(|(sku, title)| {
            let level = levels.iter().find(|l| l["sku"] == sku.as_str());
            json!({ "sku": sku, "title": title, "stock": level })
        })
        .collect();
    let low = Call::get("/api/v1/stock/low")
        .for_visitor(visitor)
        .send(&state.api)
        .await;
    let warehouses = Call::get("/api/v1/warehouses")
        .for_visitor(visitor)
        .send(&state.api)
        .await;
    let status = status_for(&error);
    Page::render(
        state,
        visitor,
        "admin/inventory.html",
        json!({
            "me": me,
            "rows": rows,
            "low": list(&low.body),
            "warehouses": list(&warehouses.body),
            "next": products.body["next_cursor"],
            "error": error,
        }),
    )
    .with_status(status)
    .into_response()
}

pub(crate) async fn inventory(
    State(state): State<WebState>,
    Staff(me): Staff,
    visitor: Visitor,
    Query(query): Query<StockQuery>,
) -> Response {
    inventory_page(&state, &visitor, &me, &query.starting_after, None).await
}

/// Fields of the adjustment form.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Adjustment {
    sku: String,
    warehouse_id: String,
    delta: String,
    reason: String,
    note: String,
}

pub(crate) async fn adjust(
    State(state): State<WebState>,
    Staff(me): Staff,
    form: Form<Adjustment>,
) -> Response {
    let Form { visitor, fields } = form;
    let Ok(delta) = fields.delta.trim().parse::<i64>() else {
        let error = "The change must be a whole number of units, e.g. 7 or -2.".to_owned();
        return inventory_page(&state, &visitor, &me, "", Some(error)).await;
    };
    let note = Some(fields.note.trim()).filter(|n| !n.is_empty());
    let answer = Call::new(Method::POST, "/api/v1/stock/adjustments")
        .json(json!({
            "sku": fields.sku.trim(),
            "warehouse_id": fields.warehouse_id,
            "delta": delta,
            "reason": fields.reason,
            "note": note,
        }))
        .for_visitor(&visitor)
        .send(&state.api)
        .await;
    if !answer.ok() {
        return inventory_page(&state, &visitor, &me, "", Some(answer.message())).await;
    }
    see_other("/admin/inventory", Vec::new())
}

/// Query of the customers page.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct CustomersQuery {
    starting_after: String,
}

pub(crate) async fn customers(
    State(state): State<WebState>,
    Staff(me): Staff,
    visitor: Visitor,
    Query(query): Query<CustomersQuery>,
) -> Response {
    let answer = Call::get(format!(
        "/api/v1/users?{}",
        query_string(&[("limit", "50"), ("starting_after", &query.starting_after)])
    ))
    .for_visitor(&visitor)
    .send(&state.api)
    .await;
    let error = (!answer.ok()).then(|| answer.message());
    let users: Vec<Value> = list(&answer.body)
        .into_iter()
        .map(|mut user| {
            let email = user["email"].as_str().unwrap_or_default().to_owned();
            user["orders_link"] = json!(format!(
                "/admin/orders?{}",
                query_string(&[("email", &email)])
            ));
            user
        })
        .collect();
    Page::render(
        &state,
        &visitor,
        "admin/customers.html",
        json!({
            "me": me,
            "users": users,
            "next": answer.body["next_cursor"],
            "error": error,
        }),
    )
    .into_response()
}
