//! Inventory through its HTTP app, on SQLite and (with `TEST_DATABASE_URL`) PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns panic on purpose

mod events;
mod oversell;
mod props;
mod reservations;
mod stock;
mod warehouses;

use axum::http::StatusCode;
use mercato_kernel::Config;
use mercato_kernel::testing::{Reply, TestService};
use serde_json::{Value, json};

pub use mercato_kernel::testing::PROBLEM;

/// One started inventory per database engine.
pub async fn apps() -> Vec<TestService> {
    apps_with(Config::default()).await
}

/// One started inventory per database engine, with `config`.
pub async fn apps_with(config: Config) -> Vec<TestService> {
    TestService::start_all(
        &mercato_inventory::MIGRATOR,
        config,
        mercato_inventory::start,
    )
    .await
}

/// Creates a warehouse and returns its id (asserts 201).
pub async fn warehouse(app: &TestService, code: &str, priority: i64) -> String {
    let reply = app
        .post_json(
            "/api/v1/warehouses",
            json!({"code": code, "name": format!("Warehouse {code}"), "country": "DE", "priority": priority}),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::CREATED,
        "{}: {}",
        app.label,
        reply.body
    );
    reply.body["id"].as_str().unwrap().to_owned()
}

/// Receives `units` of `sku` into `warehouse_id` (asserts 201).
pub async fn receive(app: &TestService, sku: &str, warehouse_id: &str, units: i64) {
    let reply = adjust(
        app,
        json!({"sku": sku, "warehouse_id": warehouse_id, "delta": units, "reason": "receipt"}),
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::CREATED,
        "{}: {}",
        app.label,
        reply.body
    );
}

/// POSTs an adjustment.
pub async fn adjust(app: &TestService, body: Value) -> Reply {
    app.post_json("/api/v1/stock/adjustments", body).await
}

/// The stock view of `sku` (asserts 200).
pub async fn stock(app: &TestService, sku: &str) -> Value {
    let reply = app.get(&format!("/api/v1/stock/{sku}")).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "{}: {}",
        app.label,
        reply.body
    );
    reply.body
}

/// `(on_hand, reserved, available)` of `sku`.
pub async fn levels(app: &TestService, sku: &str) -> (i64, i64, i64) {
    let s = stock(app, sku).await;
    (
        s["on_hand"].as_i64().unwrap(),
        s["reserved"].as_i64().unwrap(),
        s["available"].as_i64().unwrap(),
    )
}

/// POSTs a reservation of `lines` (`(sku, quantity)`).
pub async fn reserve(app: &TestService, reference: &str, lines: &[(&str, i64)]) -> Reply {
    let lines: Vec<Value> = lines
        .iter()
        .map(|(sku, quantity)| json!({"sku": sku, "quantity": quantity}))
        .collect();
    app.post_json(
        "/api/v1/reservations",
        json!({"reference": reference, "lines": lines}),
    )
    .await
}

/// Asserts the ledger of the whole database agrees with stock.
pub async fn assert_ledger_holds(app: &TestService) {
    let report = mercato_inventory::verify::verify(&app.db).await.unwrap();
    assert!(report.is_ok(), "{}: {:?}", app.label, report.problems);
}
