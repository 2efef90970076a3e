//! Identity through its HTTP app, on SQLite and (with `TEST_DATABASE_URL`) PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns panic on purpose

mod api_keys;
mod auth;
mod orgs;
mod recovery;
mod tokens;
mod users;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use mercato_bus::Bus;
use mercato_kernel::auth::Authenticator;
use mercato_kernel::{Config, Context, Service};
use mercato_store::Db;
use mercato_store::testing::{self, TestDb};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// Media type of error bodies.
pub const PROBLEM: &str = "application/problem+json";
/// A password that passes every rule.
pub const PASSWORD: &str = "correct-horse-battery";

/// A started identity service with its database and bus.
pub struct TestApp {
    pub service: Service,
    pub db: Db,
    pub bus: Bus,
    pub auth: Arc<Authenticator>,
    pub config: Arc<Config>,
    pub label: &'static str,
    shutdown: CancellationToken,
    _test_db: TestDb,
    _bus_dir: tempfile::TempDir,
}

/// One started service per database engine, with the default configuration.
pub async fn apps() -> Vec<TestApp> {
    apps_with(Config::default()).await
}

/// One started service per database engine, with `config`.
pub async fn apps_with(config: Config) -> Vec<TestApp> {
    let config = Arc::new(config);
    let mut apps = Vec::new();
    for test_db in testing::databases(&mercato_identity::MIGRATOR).await {
        mercato_kernel::service::migrate(&test_db.db, &mercato_identity::MIGRATOR)
            .await
            .unwrap();
        let bus_dir = tempfile::tempdir().unwrap();
        let bus = Bus::embedded(bus_dir.path()).await.unwrap();
        let shutdown = CancellationToken::new();
        let auth = Arc::new(Authenticator::default());
        let service = start(&test_db.db, &bus, &auth, &config, &shutdown).await;
        apps.push(TestApp {
            service,
            db: test_db.db.clone(),
            bus,
            auth,
            config: config.clone(),
            label: test_db.label(),
            shutdown,
            _test_db: test_db,
            _bus_dir: bus_dir,
        });
    }
    apps
}

async fn start(
    db: &Db,
    bus: &Bus,
    auth: &Arc<Authenticator>,
    config: &Arc<Config>,
    shutdown: &CancellationToken,
) -> Service {
    let ctx = Context {
        config: config.clone(),
        db: db.clone(),
        bus: bus.clone(),
        auth: auth.clone(),
        shutdown: shutdown.clone(),
        tasks: TaskTracker::new(),
    };
    mercato_identity::start(ctx).await.unwrap()
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A response: status, content type, JSON body (or Null) and the `Retry-After` header.
pub struct Reply {
    pub status: StatusCode,
    pub content_type: String,
    pub body: Value,
    pub retry_after: Option<String>,
}

impl TestApp {
    /// Starts the service again on the same database (a restart, or a second replica).
    pub async fn restart(&self) -> Service {
        start(
            &self.db,
            &self.bus,
            &self.auth,
            &self.config,
            &self.shutdown,
        )
        .await
    }

    /// Sends a request to the app.
    pub async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.service.router.clone().oneshot(request).await.unwrap();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        let content_type = header("content-type").unwrap_or_default();
        let retry_after = header("retry-after");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            content_type,
            body,
            retry_after,
        }
    }

    /// Sends a request; returns status and JSON body.
    pub async fn call(&self, request: Request<Body>) -> (StatusCode, Value) {
        let reply = self.send(request).await;
        (reply.status, reply.body)
    }

    /// `method path` with an optional bearer token and an optional JSON body.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let body = match body {
            Some(json) => {
                request = request.header("content-type", "application/json");
                Body::from(json.to_string())
            }
            None => Body::empty(),
        };
        self.send(request.body(body).unwrap()).await
    }

    /// POSTs a raw JSON text without a token.
    pub async fn post_json(&self, path: &str, body: &str) -> (StatusCode, Value) {
        let request = Request::post(path)
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .unwrap();
        self.call(request).await
    }

    /// POSTs JSON with a bearer token.
    pub async fn post_as(&self, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
        let reply = self.request("POST", path, Some(token), Some(body)).await;
        (reply.status, reply.body)
    }

    /// PATCHes JSON with a bearer token.
    pub async fn patch_as(&self, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
        let reply = self.request("PATCH", path, Some(token), Some(body)).await;
        (reply.status, reply.body)
    }

    /// GETs with a bearer token.
    pub async fn get_as(&self, token: &str, path: &str) -> (StatusCode, Value) {
        let reply = self.request("GET", path, Some(token), None).await;
        (reply.status, reply.body)
    }

    /// DELETEs with a bearer token.
    pub async fn delete_as(&self, token: &str, path: &str) -> (StatusCode, Value) {
        let reply = self.request("DELETE", path, Some(token), None).await;
        (reply.status, reply.body)
    }

    /// Registers a customer; returns the user JSON, access token and refresh token.
    pub async fn register(&self, email: &str, password: &str) -> (Value, String, String) {
        let body = json!({"email": email, "password": password, "name": "Test User"});
        let (status, reply) = self
            .post_json("/api/v1/auth/register", &body.to_string())
            .await;
        assert_eq!(
            status,
            StatusCode::CREATED,
            "{}: register {email}: {reply}",
            self.label
        );
        tokens_of(reply)
    }

    /// Logs in; returns the status and body.
    pub async fn login(&self, email: &str, password: &str) -> Reply {
        let body = json!({"email": email, "password": password});
        self.request("POST", "/api/v1/auth/login", None, Some(body))
            .await
    }

    /// Registers a user, grants it `roles` directly in the table and logs it in; returns
    /// user JSON, access and refresh tokens whose claims carry the roles.
    pub async fn user_with_roles(&self, email: &str, roles: &[&str]) -> (Value, String, String) {
        let (user, _, _) = self.register(email, PASSWORD).await;
        let mut all = vec!["customer"];
        all.extend_from_slice(roles);
        mercato_store::sqlx::query("UPDATE users SET roles = $1 WHERE id = $2")
            .bind(json!(all).to_string())
            .bind(user["id"].as_str().unwrap())
            .execute(self.db.pool())
            .await
            .unwrap();
        let reply = self.login(email, PASSWORD).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        tokens_of(reply.body)
    }

    /// An admin's access token (a fresh admin account).
    pub async fn admin_token(&self) -> String {
        let email = format!("admin-{}@example.com", mercato_kernel::id::new_id("x"));
        self.user_with_roles(&email, &["admin"]).await.1
    }

    /// Rows in `table`.
    pub async fn count(&self, table: &str) -> i64 {
        mercato_store::testing::count_rows(&self.db, table).await
    }

    /// Envelopes (`payload` JSON) of outbox rows of `subject`, oldest first.
    pub async fn outbox(&self, subject: &str) -> Vec<Value> {
        mercato_bus::testing::outbox_envelopes(&self.db, subject).await
    }

    /// The token of the last `notification.email` with `template` sent to `to`.
    pub async fn emailed_token(&self, to: &str, template: &str) -> String {
        let events = self.outbox("notification.email").await;
        let event = events
            .iter()
            .rev()
            .find(|e| e["data"]["to"] == to && e["data"]["template"] == template)
            .unwrap_or_else(|| panic!("{}: no {template} email to {to}", self.label));
        event["data"]["variables"]["token"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

/// User JSON, access token and refresh token of a token response.
pub fn tokens_of(reply: Value) -> (Value, String, String) {
    let access = reply["access_token"].as_str().unwrap().to_owned();
    let refresh = reply["refresh_token"].as_str().unwrap().to_owned();
    (reply["user"].clone(), access, refresh)
}

/// A unique email address for a test.
pub fn email(name: &str) -> String {
    format!(
        "{name}-{}@example.com",
        &mercato_kernel::id::new_id("t")[20..]
    )
}
