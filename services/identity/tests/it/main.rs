//! Identity through its HTTP app, on SQLite and (with `TEST_DATABASE_URL`) PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns panic on purpose

mod addresses;
mod api_keys;
mod auth;
mod orgs;
mod recovery;
mod tokens;
mod users;

use std::ops::Deref;

use axum::http::StatusCode;
use mercato_kernel::Config;
use mercato_kernel::auth::Authenticator;
use mercato_kernel::service::Service;
use mercato_kernel::testing::TestService;
pub use mercato_kernel::testing::{PROBLEM, Reply};
use serde_json::{Value, json};

/// A password that passes every rule.
pub const PASSWORD: &str = "correct-horse-battery";

/// A started identity service: the kernel's [`TestService`] plus identity's own helpers.
///
/// Tokens come from identity itself (`register`, `login`), not from the kernel's test keys:
/// identity puts its own signing keys into the verifier, so `staff` and the `TestService`
/// helpers that send it are of no use here.
pub struct TestApp(TestService);

impl Deref for TestApp {
    type Target = TestService;

    fn deref(&self) -> &TestService {
        &self.0
    }
}

/// One started service per database engine, with the default configuration.
pub async fn apps() -> Vec<TestApp> {
    apps_with(Config::default()).await
}

/// One started service per database engine, with `config`.
pub async fn apps_with(config: Config) -> Vec<TestApp> {
    // An empty verifier, as in production: identity's start fills it with its signing keys.
    TestService::start_all_with_auth(
        &mercato_identity::MIGRATOR,
        config,
        |_| Authenticator::default(),
        mercato_identity::start,
    )
    .await
    .into_iter()
    .map(TestApp)
    .collect()
}

impl TestApp {
    /// Starts the service again on the same database (a restart, or a second replica).
    pub async fn restart(&self) -> Service {
        mercato_identity::start(self.context()).await.unwrap()
    }

    /// POSTs a JSON text without a token; raw so tests can send malformed bodies.
    pub async fn post_raw(&self, path: &str, body: &str) -> (StatusCode, Value) {
        let reply = self
            .request("POST", path, None, Some(body.to_owned()))
            .await;
        (reply.status, reply.body)
    }

    /// POSTs JSON with a bearer token.
    pub async fn post_as(&self, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
        let reply = self
            .request("POST", path, Some(token), Some(body.to_string()))
            .await;
        (reply.status, reply.body)
    }

    /// PATCHes JSON with a bearer token.
    pub async fn patch_as(&self, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
        let reply = self
            .request("PATCH", path, Some(token), Some(body.to_string()))
            .await;
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
            .post_raw("/api/v1/auth/register", &body.to_string())
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
        self.request("POST", "/api/v1/auth/login", None, Some(body.to_string()))
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
