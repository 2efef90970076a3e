//! A started service and HTTP helpers for the integration tests of every service.
//!
//! Each service's `tests/it/main.rs` starts its app once per database engine and calls it
//! in-process through `Router::oneshot`, so no socket or port is involved:
//!
//! ```ignore
//! for app in TestService::start_all(&MIGRATOR, Config::default(), mercato_catalog::start).await {
//!     let reply = app.post_json("/api/v1/products", json!({"title": "Socks"})).await;
//!     assert_eq!(reply.status, StatusCode::CREATED, "{}: {}", app.label, reply.body);
//! }
//! ```
//!
//! Helpers panic instead of returning errors: a failure to start or call the app is a failed
//! test, and the panic message names the engine (`label`) it happened on.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use mercato_bus::Bus;
use mercato_store::testing::TestDb;
use mercato_store::{Db, Migrator};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::auth::Authenticator;
use crate::auth::testing::TestKeys;
use crate::client::Services;
use crate::{Config, Context, Service};

/// Media type of error bodies (RFC 9457 problem details).
pub const PROBLEM: &str = "application/problem+json";

/// How long [`TestService::eventually`] waits; background consumers on a loaded 2-core CI
/// machine can take seconds, a hung one should still fail the test.
const EVENTUALLY_TIMEOUT: Duration = Duration::from_secs(20);

/// A response as tests look at it.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: StatusCode,
    /// All response headers.
    pub headers: HeaderMap,
    /// The `Content-Type` header, empty when missing.
    pub content_type: String,
    /// The body parsed as JSON, `Null` when it is not JSON (or empty).
    pub body: Value,
}

impl Reply {
    /// The value of header `name`, when present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A started service with its own fresh database, embedded bus and data directory.
///
/// Dropping it cancels `shutdown`, which stops the service's background loops; the database
/// and directory go away with it.
pub struct TestService {
    /// The started service; requests go to `service.router`.
    pub service: Service,
    /// The service's database, migrated.
    pub db: Db,
    /// The embedded bus, in the data directory.
    pub bus: Bus,
    /// Signs tokens the service accepts (unless started with another authenticator).
    pub keys: TestKeys,
    /// The verifier in the service's context, shared with a restarted service.
    pub auth: Arc<Authenticator>,
    /// The configuration the service was started with (`mercato_data_dir` set per service).
    pub config: Arc<Config>,
    /// `sqlite` or `postgres`, to name the engine in assertion messages.
    pub label: &'static str,
    /// A staff member's token signed by `keys`.
    pub staff: String,
    /// Cancelled on drop.
    pub shutdown: CancellationToken,
    /// Background loops of the service.
    pub tasks: TaskTracker,
    /// The service directory of its context.
    pub services: Services,
    _test_db: TestDb,
    _dir: tempfile::TempDir,
}

impl Drop for TestService {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl TestService {
    /// One started service per engine of [`mercato_store::testing::databases`] (SQLite, plus
    /// PostgreSQL when `TEST_DATABASE_URL` is set), verifying tokens signed by its `keys`.
    ///
    /// The kernel's tables (outbox, idempotency keys) are migrated before `migrator`, as
    /// [`crate::service::migrate`] does at a real start.
    pub async fn start_all<F, Fut>(
        migrator: &'static Migrator,
        config: Config,
        start: F,
    ) -> Vec<TestService>
    where
        F: Fn(Context) -> Fut,
        Fut: Future<Output = anyhow::Result<Service>>,
    {
        Self::start_all_with_auth(migrator, config, TestKeys::authenticator, start).await
    }

    /// [`TestService::start_all`] with the verifier `auth` makes from each service's keys;
    /// identity passes an empty one, because it fills the verifier with its own signing keys.
    pub async fn start_all_with_auth<A, F, Fut>(
        migrator: &'static Migrator,
        config: Config,
        auth: A,
        start: F,
    ) -> Vec<TestService>
    where
        A: Fn(&TestKeys) -> Authenticator,
        F: Fn(Context) -> Fut,
        Fut: Future<Output = anyhow::Result<Service>>,
    {
        let mut services = Vec::new();
        for test_db in mercato_store::testing::databases(migrator).await {
            let label = test_db.label();
            crate::service::migrate(&test_db.db, migrator)
                .await
                .unwrap_or_else(|e| panic!("{label}: migrate: {e:#}"));
            let dir = tempfile::tempdir().expect("create the service's data dir");
            let bus = Bus::embedded(dir.path())
                .await
                .unwrap_or_else(|e| panic!("{label}: start the embedded bus: {e:#}"));
            let keys = TestKeys::generate();
            let mut config = config.clone();
            // Services keep files (search indexes) here; a shared one would leak between tests.
            config.mercato_data_dir = dir.path().to_path_buf();
            let config = Arc::new(config);
            let auth = Arc::new(auth(&keys));
            crate::auth::random_service_secret()
                .and_then(|secret| auth.set_service_secret(&secret))
                .expect("install a service secret");
            let ctx = Context {
                services: Services::new(config.clone(), auth.clone()),
                config,
                db: test_db.db.clone(),
                bus,
                auth,
                shutdown: CancellationToken::new(),
                tasks: TaskTracker::new(),
            };
            let service = start(ctx.clone())
                .await
                .unwrap_or_else(|e| panic!("{label}: start the service: {e:#}"));
            let app = TestService {
                service,
                db: ctx.db,
                bus: ctx.bus,
                staff: keys.token_for("usr_staff", &["staff"], None),
                keys,
                auth: ctx.auth,
                config: ctx.config,
                label,
                shutdown: ctx.shutdown,
                tasks: ctx.tasks,
                services: ctx.services,
                _test_db: test_db,
                _dir: dir,
            };
            services.push(app);
        }
        services
    }

    /// The context the service was started with, to start it again on the same database and
    /// bus (a restart, or a second replica).
    pub fn context(&self) -> Context {
        Context {
            config: self.config.clone(),
            db: self.db.clone(),
            bus: self.bus.clone(),
            auth: self.auth.clone(),
            shutdown: self.shutdown.clone(),
            tasks: self.tasks.clone(),
            services: self.services.clone(),
        }
    }

    /// Sends `request` to the service's router.
    pub async fn call(&self, request: Request<Body>) -> Reply {
        let response = self
            .service
            .router
            .clone()
            .oneshot(request)
            .await
            .unwrap_or_else(|e| match e {});
        let status = response.status();
        let headers = response.headers().clone();
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap_or_else(|e| panic!("{}: read the response body: {e}", self.label));
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            content_type,
            body,
        }
    }

    /// `method path` with an optional bearer token and an optional JSON text, sent as is so
    /// tests can send malformed JSON too.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<String>,
    ) -> Reply {
        self.request_with(method, path, token, body, &[]).await
    }

    /// [`TestService::request`] with extra headers (`Idempotency-Key`, `If-Match`, …).
    pub async fn request_with(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<String>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let body = match body {
            Some(text) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(text)
            }
            None => Body::empty(),
        };
        let request = request
            .body(body)
            .unwrap_or_else(|e| panic!("build {method} {path}: {e}"));
        self.call(request).await
    }

    /// GETs as staff.
    pub async fn get(&self, path: &str) -> Reply {
        self.request("GET", path, Some(&self.staff), None).await
    }

    /// GETs without a token.
    pub async fn get_public(&self, path: &str) -> Reply {
        self.request("GET", path, None, None).await
    }

    /// POSTs JSON as staff.
    pub async fn post_json(&self, path: &str, body: Value) -> Reply {
        self.request("POST", path, Some(&self.staff), Some(body.to_string()))
            .await
    }

    /// PUTs JSON as staff.
    pub async fn put_json(&self, path: &str, body: Value) -> Reply {
        self.request("PUT", path, Some(&self.staff), Some(body.to_string()))
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

    /// Rows in `table`.
    pub async fn count(&self, table: &str) -> i64 {
        mercato_store::testing::count_rows(&self.db, table).await
    }

    /// Envelopes of the outbox rows of `subject`, oldest first.
    pub async fn outbox(&self, subject: &str) -> Vec<Value> {
        mercato_bus::testing::outbox_envelopes(&self.db, subject).await
    }

    /// Polls `check` until it holds, because consumers and relays run in the background;
    /// panics with "`label`: never `what`" after 20 seconds.
    pub async fn eventually<F, Fut>(&self, what: &str, check: F)
    where
        F: Fn() -> Fut,
        Fut: Future<Output = bool>,
    {
        let deadline = Instant::now() + EVENTUALLY_TIMEOUT;
        while !check().await {
            assert!(Instant::now() < deadline, "{}: never {what}", self.label);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Several services of one process on one database engine, as `mercato up` runs them: one
/// bus, one verifier (with a service secret) and one directory, so they call each other
/// in-process; each has its own fresh database.
pub struct TestPlatform {
    /// `sqlite` or `postgres`.
    pub label: &'static str,
    /// The shared bus.
    pub bus: Bus,
    /// Signs tokens every service accepts.
    pub keys: TestKeys,
    /// The shared verifier.
    pub auth: Arc<Authenticator>,
    /// The shared directory: started services are registered in it.
    pub services: Services,
    /// The configuration every service gets (with its own data dir).
    pub config: Config,
    /// A staff member's token.
    pub staff: String,
    postgres: Option<String>,
    _dir: tempfile::TempDir,
}

impl TestPlatform {
    /// One platform per engine: SQLite, plus PostgreSQL when `TEST_DATABASE_URL` is set.
    pub async fn all(config: Config) -> Vec<TestPlatform> {
        let mut engines = vec![None];
        if let Some(url) = mercato_store::testing::postgres_url() {
            engines.push(Some(url));
        }
        let mut platforms = Vec::new();
        for postgres in engines {
            let dir = tempfile::tempdir().expect("create the platform's data dir");
            let bus = Bus::embedded(dir.path())
                .await
                .expect("start the embedded bus");
            let keys = TestKeys::generate();
            let auth = Arc::new(keys.authenticator());
            crate::auth::random_service_secret()
                .and_then(|secret| auth.set_service_secret(&secret))
                .expect("install a service secret");
            let shared = Arc::new(config.clone());
            platforms.push(TestPlatform {
                label: if postgres.is_some() {
                    "postgres"
                } else {
                    "sqlite"
                },
                services: Services::new(shared, auth.clone()),
                staff: keys.token_for("usr_staff", &["staff"], None),
                bus,
                keys,
                auth,
                config: config.clone(),
                postgres,
                _dir: dir,
            });
        }
        platforms
    }

    /// Starts a service with a fresh database of this engine and registers it.
    pub async fn start<F, Fut>(
        &self,
        name: &'static str,
        migrator: &'static Migrator,
        start: F,
    ) -> TestService
    where
        F: FnOnce(Context) -> Fut,
        Fut: Future<Output = anyhow::Result<Service>>,
    {
        self.start_with(name, migrator, self.config.clone(), start)
            .await
    }

    /// [`TestPlatform::start`] with a configuration of its own.
    pub async fn start_with<F, Fut>(
        &self,
        name: &'static str,
        migrator: &'static Migrator,
        config: Config,
        start: F,
    ) -> TestService
    where
        F: FnOnce(Context) -> Fut,
        Fut: Future<Output = anyhow::Result<Service>>,
    {
        let label = self.label;
        let test_db = match &self.postgres {
            None => TestDb::sqlite(migrator).await,
            Some(url) => TestDb::postgres(url, migrator).await,
        };
        crate::service::migrate(&test_db.db, migrator)
            .await
            .unwrap_or_else(|e| panic!("{label}: migrate {name}: {e:#}"));
        let dir = tempfile::tempdir().expect("create the service's data dir");
        let mut config = config;
        config.mercato_data_dir = dir.path().to_path_buf();
        let ctx = Context {
            config: Arc::new(config),
            db: test_db.db.clone(),
            bus: self.bus.clone(),
            auth: self.auth.clone(),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            services: self.services.clone(),
        };
        let service = start(ctx.clone())
            .await
            .unwrap_or_else(|e| panic!("{label}: start {name}: {e:#}"));
        self.services.register(name, service.router.clone());
        TestService {
            service,
            db: ctx.db,
            bus: ctx.bus,
            staff: self.staff.clone(),
            keys: self.keys.clone(),
            auth: ctx.auth,
            config: ctx.config,
            label,
            shutdown: ctx.shutdown,
            tasks: ctx.tasks,
            services: ctx.services,
            _test_db: test_db,
            _dir: dir,
        }
    }
}
