//! Catalog through its HTTP app, on SQLite and (with `TEST_DATABASE_URL`) PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns panic on purpose

mod categories;
mod products;
mod promotions;
mod quote;
mod search;

use std::ops::Deref;

use axum::http::StatusCode;
use mercato_kernel::Config;
use mercato_kernel::testing::TestService;
pub use mercato_kernel::testing::{PROBLEM, Reply};
use serde_json::{Value, json};

/// A started catalog service: the kernel's [`TestService`] plus catalog's own helpers.
pub struct TestApp(TestService);

impl Deref for TestApp {
    type Target = TestService;

    fn deref(&self) -> &TestService {
        &self.0
    }
}

/// One started service per database engine.
pub async fn apps() -> Vec<TestApp> {
    TestService::start_all(
        &mercato_catalog::MIGRATOR,
        Config::default(),
        mercato_catalog::start,
    )
    .await
    .into_iter()
    .map(TestApp)
    .collect()
}

impl TestApp {
    /// Creates a product as staff and returns it (asserts 201).
    pub async fn create_product(&self, body: Value) -> Value {
        let reply = self.post_json("/api/v1/products", body).await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "{}: {}",
            self.label,
            reply.body
        );
        reply.body
    }

    /// Creates a category as staff and returns it (asserts 201).
    pub async fn create_category(&self, name: &str, parent_id: Option<&str>) -> Value {
        let reply = self
            .post_json(
                "/api/v1/categories",
                json!({"name": name, "parent_id": parent_id}),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "{}: {}",
            self.label,
            reply.body
        );
        reply.body
    }
}

/// A product body with one variant priced in EUR.
pub fn product_body(title: &str, sku: &str) -> Value {
    json!({
        "title": title,
        "status": "active",
        "variants": [{"sku": sku, "prices": [{"amount": 1999, "currency": "EUR"}]}],
    })
}
