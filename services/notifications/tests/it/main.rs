//! Notifications integration tests, on SQLite and (with `TEST_DATABASE_URL`) PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns panic on purpose

mod ab;
mod callbacks;
mod delivery;
mod email;
mod inbox;
mod smtp;
mod templates;

use std::time::{Duration, Instant};

use mercato_kernel::Config;
use mercato_kernel::testing::{Reply, TestService};
use serde_json::Value;
pub use smtp::SmtpSink;

/// What tests run with: quick polling and retries.
pub fn config() -> Config {
    let mut config = Config::default();
    config.notifications_poll_ms = 20;
    config.notifications_retry_ms = 20;
    config.notifications_user_rate_per_second = 0;
    config.notifications_api_rate_per_second = 0;
    config
}

/// The service on every engine.
pub async fn apps(config: Config) -> Vec<TestService> {
    TestService::start_all(
        &mercato_notifications::MIGRATOR,
        config,
        mercato_notifications::start,
    )
    .await
}

/// POSTs a send as staff.
pub async fn send(app: &TestService, body: Value) -> Reply {
    app.post_json("/api/v1/notifications", body).await
}

/// Waits until notification `id` reaches a final status; returns the notification.
pub async fn settled(app: &TestService, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let reply = app.get(&format!("/api/v1/notifications/{id}")).await;
        let status = reply.body["status"].as_str().unwrap_or_default().to_owned();
        if !matches!(status.as_str(), "queued" | "sending") {
            return reply.body;
        }
        assert!(
            Instant::now() < deadline,
            "{}: {id} still {status}",
            app.label
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
