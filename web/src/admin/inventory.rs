//! One SKU's stock: its levels per warehouse (on hand, reserved, available) and its ledger of
//! movements, beside the stock list of `stock.rs`.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Staff;
use crate::api::Call;
use crate::session::Visitor;
use crate::shop::{query_string, segment};
use crate::{Page, WebState};

/// Templates of these pages.
pub(crate) const TEMPLATES: &[(&str, &str)] = &[(
    "admin/ops/sku.html",
    include_str!("../../templates/admin/ops/sku.html"),
)];

/// Routes of these pages.
pub(crate) fn routes() -> axum::Router<WebState> {
    axum::Router::new().route("/admin/inventory/sku", axum::routing::get(sku))
}

/// Query of the SKU page.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct SkuQuery {
    sku: String,
    starting_after: String,
}

pub(crate) async fn sku(
    State(state): State<WebState>,
    Staff(me): Staff,
    visitor: Visitor,
    Query(query): Query<SkuQuery>,
) -> Response {
    let sku = query.sku.trim();
    let warehouses = Call::get("/api/v1/warehouses")
        .for_visitor(&visitor)
        .send(&state.api)
        .await;
    let warehouses = warehouses
        .body
        .as_array()
        .or_else(|| warehouses.body["data"].as_array())
        .cloned()
        .unwrap_or_default();
    let mut error = None;
    let (mut stock, mut movements, mut next) = (Value::Null, json!([]), Value::Null);
    if !sku.is_empty() {
        let level = Call::get(format!("/api/v1/stock/{}", segment(sku)))
            .for_visitor(&visitor)
            .send(&state.api)
            .await;
        if level.ok() {
            stock = level.body;
            let ledger = Call::get(format!(
                "/api/v1/stock/{}/movements?{}",
                segment(sku),
                query_string(&[("limit", "50"), ("starting_after", &query.starting_after)])
            ))
            .for_visitor(&visitor)
            .send(&state.api)
            .await;
            if ledger.ok() {
                movements = ledger.body["data"].clone();
                next = ledger.body["next_cursor"].clone();
            } else {
                error = Some(ledger.message());
            }
        } else {
            error = Some(level.message());
        }
    }
    let code = |id: &Value| {
        warehouses
            .iter()
            .find(|w| w["id"] == *id)
            .and_then(|w| w["code"].as_str())
            .unwrap_or_default()
            .to_owned()
    };
    if let Some(rows) = movements.as_array_mut() {
        for row in rows {
            row["warehouse_code"] = json!(code(&row["warehouse_id"]));
        }
    }
    Page::render(
        &state,
        &visitor,
        "admin/ops/sku.html",
        json!({
            "me": me, "sku": sku, "stock": stock, "movements": movements,
            "next": next, "warehouses": warehouses, "error": error,
        }),
    )
    .into_response()
}
