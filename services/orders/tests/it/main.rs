//! Orders integration tests: orders with the real catalog, inventory and payments services
//! in one process, on SQLite and (with `TEST_DATABASE_URL`) PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns panic on purpose

mod carts;
mod checkout;
mod crash;
mod lifecycle;
mod race;

use std::sync::Arc;

use axum::http::StatusCode;
use mercato_kernel::Config;
use mercato_kernel::testing::{Reply, TestPlatform, TestService};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A card the test provider charges.
pub const GOOD_CARD: &str = "4242424242424242";
/// A card the test provider declines.
pub const DECLINED_CARD: &str = "4000000000000002";

/// The four services a checkout touches, on one engine.
pub struct Shop {
    pub platform: TestPlatform,
    pub catalog: TestService,
    pub inventory: TestService,
    pub payments: TestService,
    pub orders: TestService,
    pub warehouse: String,
}

/// What tests run with: quick retries and resumes, risk checks that never hold a payment
/// (tests pay with the same card many times in a row).
pub fn config() -> Config {
    let mut config = Config::default();
    config.orders_saga_retry_ms = 20;
    config.orders_resume_interval_ms = 50;
    config.payments_risk_review_threshold = 1_000;
    config.payments_risk_block_threshold = 1_000;
    config
}

impl Shop {
    /// One shop per engine.
    pub async fn all(config: Config) -> Vec<Shop> {
        let mut shops = Vec::new();
        for platform in TestPlatform::all(config).await {
            let catalog = platform
                .start(
                    "catalog",
                    &mercato_catalog::MIGRATOR,
                    mercato_catalog::start,
                )
                .await;
            let inventory = platform
                .start(
                    "inventory",
                    &mercato_inventory::MIGRATOR,
                    mercato_inventory::start,
                )
                .await;
            let payments = platform
                .start(
                    "payments",
                    &mercato_payments::MIGRATOR,
                    mercato_payments::start,
                )
                .await;
            let orders = platform
                .start("orders", &mercato_orders::MIGRATOR, mercato_orders::start)
                .await;
            let reply = inventory
                .post_json(
                    "/api/v1/warehouses",
                    json!({"code": "MAIN", "name": "Main", "country": "DE", "priority": 1}),
                )
                .await;
            assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
            let warehouse = reply.body["id"].as_str().unwrap().to_owned();
            shops.push(Shop {
                platform,
                catalog,
                inventory,
                payments,
                orders,
                warehouse,
            });
        }
        shops
    }

    /// `sqlite` or `postgres`.
    pub fn label(&self) -> &'static str {
        self.platform.label
    }

    /// A product with one variant `sku` at `price` EUR cents, `units` in stock.
    pub async fn product(&self, sku: &str, price: i64, units: i64) {
        let reply = self
            .catalog
            .post_json(
                "/api/v1/products",
                json!({
                    "title": format!("Product {sku}"),
                    "status": "active",
                    "variants": [{"sku": sku, "weight_grams": 400,
                                  "prices": [{"amount": price, "currency": "EUR"}]}],
                }),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "{}: {}",
            self.label(),
            reply.body
        );
        if units > 0 {
            let reply = self
                .inventory
                .post_json(
                    "/api/v1/stock/adjustments",
                    json!({"sku": sku, "warehouse_id": self.warehouse, "delta": units,
                           "reason": "receipt"}),
                )
                .await;
            assert_eq!(
                reply.status,
                StatusCode::CREATED,
                "{}: {}",
                self.label(),
                reply.body
            );
        }
    }

    /// Available units of `sku`.
    pub async fn available(&self, sku: &str) -> i64 {
        let reply = self.inventory.get(&format!("/api/v1/stock/{sku}")).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "{}: {}",
            self.label(),
            reply.body
        );
        reply.body["available"].as_i64().unwrap()
    }

    /// On-hand units of `sku`.
    pub async fn on_hand(&self, sku: &str) -> i64 {
        let reply = self.inventory.get(&format!("/api/v1/stock/{sku}")).await;
        reply.body["on_hand"].as_i64().unwrap()
    }

    /// A token of customer `sub`.
    pub fn customer(&self, sub: &str) -> String {
        self.platform.keys.token_for(sub, &["customer"], None)
    }

    /// `method path` on orders with an optional token, JSON body and Idempotency-Key.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        key: Option<&str>,
    ) -> Reply {
        let headers: Vec<(&str, &str)> = key.map(|k| ("idempotency-key", k)).into_iter().collect();
        self.orders
            .request_with(method, path, token, body.map(|b| b.to_string()), &headers)
            .await
    }

    /// A new cart (as `token`, or a guest) with `items` (SKU, units); returns its id.
    pub async fn cart(&self, token: Option<&str>, items: &[(&str, i64)]) -> String {
        let reply = self
            .call(
                "POST",
                "/api/v1/carts",
                token,
                Some(json!({"currency": "EUR"})),
                None,
            )
            .await;
        assert!(
            reply.status.is_success(),
            "{}: {}",
            self.label(),
            reply.body
        );
        let id = reply.body["id"].as_str().unwrap().to_owned();
        for (sku, quantity) in items {
            let reply = self
                .call(
                    "POST",
                    &format!("/api/v1/carts/{id}/items"),
                    token,
                    Some(json!({"sku": sku, "quantity": quantity})),
                    None,
                )
                .await;
            assert_eq!(
                reply.status,
                StatusCode::CREATED,
                "{}: {}",
                self.label(),
                reply.body
            );
        }
        id
    }

    /// Checks `cart` out with `card` (as `token`, or a guest), key `key`.
    pub async fn checkout(&self, token: Option<&str>, cart: &str, card: &str, key: &str) -> Reply {
        self.call(
            "POST",
            "/api/v1/checkout",
            token,
            Some(checkout_body(cart, card)),
            Some(key),
        )
        .await
    }

    /// Payments in the payments database.
    pub async fn payments_count(&self) -> i64 {
        self.payments.count("payments").await
    }

    /// Payments that took money.
    pub async fn succeeded_payments(&self) -> i64 {
        let sql = "SELECT COUNT(*) FROM payments WHERE status = 'succeeded'";
        sqlx::query_scalar(sql)
            .fetch_one(self.payments.db.pool())
            .await
            .unwrap()
    }

    /// Orders in `status`.
    pub async fn orders_in(&self, status: &str) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM orders WHERE status = $1")
            .bind(status)
            .fetch_one(self.orders.db.pool())
            .await
            .unwrap()
    }

    /// Stops every service and closes its database, so a test that makes many shops does
    /// not run the PostgreSQL server out of connections.
    pub async fn close(self) {
        for service in [&self.catalog, &self.inventory, &self.payments, &self.orders] {
            service.shutdown.cancel();
            service.tasks.close();
            service.tasks.wait().await;
            service.db.close().await;
        }
    }

    /// Stops the orders service and starts it again on the same database with `config`, as a
    /// crash and restart would.
    pub async fn restart_orders(&mut self, config: Config) {
        self.orders.shutdown.cancel();
        self.orders.tasks.close();
        self.orders.tasks.wait().await;
        let mut ctx = self.orders.context();
        let mut config = config;
        config.mercato_data_dir = self.orders.config.mercato_data_dir.clone();
        ctx.config = Arc::new(config);
        ctx.shutdown = CancellationToken::new();
        ctx.tasks = TaskTracker::new();
        let service = mercato_orders::start(ctx.clone()).await.unwrap();
        self.platform
            .services
            .register("orders", service.router.clone());
        self.orders.service = service;
        self.orders.config = ctx.config;
        self.orders.shutdown = ctx.shutdown;
        self.orders.tasks = ctx.tasks;
    }
}

/// A valid checkout body.
pub fn checkout_body(cart: &str, card: &str) -> Value {
    json!({
        "cart_id": cart,
        "email": "buyer@example.com",
        "shipping_address": address(),
        "payment_method": {"type": "card", "card": {"number": card, "exp_month": 12,
                                                     "exp_year": 2040, "cvc": "123"}},
    })
}

/// A valid German address.
pub fn address() -> Value {
    json!({"name": "Ada Buyer", "line1": "Hauptstraße 1", "city": "Berlin",
           "postal_code": "10115", "country": "DE"})
}
