//! Analytics through its HTTP app, on SQLite and (with `TEST_DATABASE_URL`) PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns panic on purpose

mod api;

use std::ops::Deref;

use mercato_kernel::Config;
use mercato_kernel::testing::{Reply, TestService};

/// Where clients send their events.
pub const TRACK: &str = "/api/v1/analytics/track";

/// A started analytics service: the kernel's [`TestService`] plus analytics' own helpers.
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
        &mercato_analytics::MIGRATOR,
        Config::default(),
        mercato_analytics::start,
    )
    .await
    .into_iter()
    .map(TestApp)
    .collect()
}

impl TestApp {
    /// POSTs a JSON text to the track endpoint without a token, as browsers do; raw so tests
    /// can send malformed bodies.
    pub async fn track(&self, body: &str) -> Reply {
        self.request("POST", TRACK, None, Some(body.to_owned()))
            .await
    }

    /// GETs with the token of a user holding `roles`.
    pub async fn get_as(&self, path: &str, roles: &[&str]) -> Reply {
        let token = self.keys.token_for("usr_test", roles, None);
        self.request("GET", path, Some(&token), None).await
    }

    /// Waits until `table` has `n` rows (the consumers run in the background).
    pub async fn wait_for_rows(&self, table: &str, n: i64) {
        self.eventually(&format!("{n} rows in {table}"), || async {
            self.count(table).await >= n
        })
        .await;
    }
}
