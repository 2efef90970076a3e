//! Catalog through its HTTP app, on SQLite and (with `TEST_DATABASE_URL`) PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns panic on purpose

mod categories;
mod products;
mod promotions;
mod quote;
mod search;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use mercato_bus::Bus;
use mercato_kernel::auth::testing::TestKeys;
use mercato_kernel::{Config, Context, Service};
use mercato_store::Db;
use mercato_store::testing::{self, TestDb};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// Media type of error bodies.
pub const PROBLEM: &str = "application/problem+json";

/// A started catalog service with its database, bus and token keys.
pub struct TestApp {
    pub service: Service,
    pub db: Db,
    pub bus: Bus,
    pub keys: TestKeys,
    pub label: &'static str,
    /// A staff member's token.
    pub staff: String,
    shutdown: CancellationToken,
    _test_db: TestDb,
    _dir: tempfile::TempDir,
}

/// One started service per database engine.
pub async fn apps() -> Vec<TestApp> {
    let mut apps = Vec::new();
    for test_db in testing::databases(&mercato_catalog::MIGRATOR).await {
        mercato_kernel::service::migrate(&test_db.db, &mercato_catalog::MIGRATOR)
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let bus = Bus::embedded(dir.path()).await.unwrap();
        let keys = TestKeys::generate();
        let shutdown = CancellationToken::new();
        let mut config = Config::default();
        config.mercato_data_dir = dir.path().to_path_buf();
        let ctx = Context {
            config: Arc::new(config),
            db: test_db.db.clone(),
            bus: bus.clone(),
            auth: Arc::new(keys.authenticator()),
            shutdown: shutdown.clone(),
            tasks: TaskTracker::new(),
        };
        let service = mercato_catalog::start(ctx).await.unwrap();
        let staff = keys.token_for("usr_staff", &["staff"], None);
        apps.push(TestApp {
            service,
            db: test_db.db.clone(),
            bus,
            keys,
            label: test_db.label(),
            staff,
            shutdown,
            _test_db: test_db,
            _dir: dir,
        });
    }
    apps
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A response: status, content type and JSON body (or Null).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub content_type: String,
    pub body: Value,
}

impl TestApp {
    /// Sends a request to the app.
    pub async fn call(&self, request: Request<Body>) -> Reply {
        let response = self.service.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            content_type,
            body,
        }
    }

    /// `method path` with an optional bearer token and an optional raw JSON body.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<String>,
    ) -> Reply {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let body = match body {
            Some(text) => {
                request = request.header("content-type", "application/json");
                Body::from(text)
            }
            None => Body::empty(),
        };
        self.call(request.body(body).unwrap()).await
    }

    /// POSTs JSON as staff.
    pub async fn post_json(&self, path: &str, body: Value) -> Reply {
        self.request("POST", path, Some(&self.staff), Some(body.to_string()))
            .await
    }

    /// PATCHes JSON as staff.
    pub async fn patch(&self, path: &str, body: Value) -> Reply {
        self.request("PATCH", path, Some(&self.staff), Some(body.to_string()))
            .await
    }

    /// DELETEs as staff.
    pub async fn delete(&self, path: &str) -> Reply {
        self.request("DELETE", path, Some(&self.staff), None).await
    }

    /// GETs as staff.
    pub async fn get(&self, path: &str) -> Reply {
        self.request("GET", path, Some(&self.staff), None).await
    }

    /// GETs without a token.
    pub async fn get_public(&self, path: &str) -> Reply {
        self.request("GET", path, None, None).await
    }

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

    /// Rows in `table`.
    pub async fn count(&self, table: &str) -> i64 {
        mercato_store::testing::count_rows(&self.db, table).await
    }

    /// Envelopes of outbox rows of `subject`, oldest first.
    pub async fn outbox(&self, subject: &str) -> Vec<Value> {
        mercato_bus::testing::outbox_envelopes(&self.db, subject).await
    }

    /// Polls `check` until it holds (consumers run in the background).
    pub async fn eventually<F, Fut>(&self, what: &str, check: F)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !check().await {
            assert!(Instant::now() < deadline, "{}: never {what}", self.label);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
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
