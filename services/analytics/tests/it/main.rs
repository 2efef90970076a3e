//! Analytics through its HTTP app, on SQLite and (with `TEST_DATABASE_URL`) PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns panic on purpose

mod api;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use mercato_bus::Bus;
use mercato_kernel::auth::testing::TestKeys;
use mercato_kernel::{Config, Context, Service};
use mercato_store::Db;
use mercato_store::testing::{self, TestDb};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// A started analytics service with its database, bus and token keys.
pub struct TestApp {
    pub service: Service,
    pub db: Db,
    pub bus: Bus,
    pub keys: TestKeys,
    pub label: &'static str,
    shutdown: CancellationToken,
    _test_db: TestDb,
    _bus_dir: tempfile::TempDir,
}

/// One started service per database engine.
pub async fn apps() -> Vec<TestApp> {
    let mut apps = Vec::new();
    for test_db in testing::databases(&mercato_analytics::MIGRATOR).await {
        mercato_kernel::service::migrate(&test_db.db, &mercato_analytics::MIGRATOR)
            .await
            .unwrap();
        let bus_dir = tempfile::tempdir().unwrap();
        let bus = Bus::embedded(bus_dir.path()).await.unwrap();
        let keys = TestKeys::generate();
        let shutdown = CancellationToken::new();
        let ctx = Context {
            config: Arc::new(Config::default()),
            db: test_db.db.clone(),
            bus: bus.clone(),
            auth: Arc::new(keys.authenticator()),
            shutdown: shutdown.clone(),
            tasks: TaskTracker::new(),
        };
        let service = mercato_analytics::start(ctx).await.unwrap();
        apps.push(TestApp {
            service,
            db: test_db.db.clone(),
            bus,
            keys,
            label: test_db.label(),
            shutdown,
            _test_db: test_db,
            _bus_dir: bus_dir,
        });
    }
    apps
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl TestApp {
    /// Sends a request to the app; returns status, content type and JSON body (or Null).
    pub async fn call(&self, request: Request<Body>) -> (StatusCode, String, serde_json::Value) {
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
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        (status, content_type, json)
    }

    pub async fn post_json(
        &self,
        path: &str,
        body: &str,
    ) -> (StatusCode, String, serde_json::Value) {
        let request = Request::post(path)
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .unwrap();
        self.call(request).await
    }

    pub async fn get_as(
        &self,
        path: &str,
        roles: &[&str],
    ) -> (StatusCode, String, serde_json::Value) {
        let token = self.keys.token_for("usr_test", roles, None);
        let request = Request::get(path).header("authorization", format!("Bearer {token}"));
        self.call(request.body(Body::empty()).unwrap()).await
    }

    pub async fn count(&self, table: &str) -> i64 {
        mercato_store::testing::count_rows(&self.db, table).await
    }

    /// Waits until `table` has `n` rows (the consumers run in the background).
    pub async fn wait_for_rows(&self, table: &str, n: i64) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.count(table).await < n {
            assert!(
                Instant::now() < deadline,
                "{}: {table} never reached {n} rows",
                self.label
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
