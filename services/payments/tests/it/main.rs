//! Payments through its HTTP app, on SQLite and (with `TEST_DATABASE_URL`) PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns panic on purpose

mod card_data;
mod intents;
mod refunds;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;
use mercato_kernel::Config;
use mercato_kernel::testing::{Reply, TestService};
use mercato_payments::engine::Providers;
use mercato_payments::providers::test::TestProvider;
use mercato_payments::providers::{Charge, ChargeRequest, Provider, ProviderError, RefundReceipt};
use serde_json::{Value, json};

pub use mercato_kernel::testing::PROBLEM;

/// A started payments service with its test provider, to count real charges.
pub struct App {
    pub service: TestService,
    pub provider: Arc<Flaky>,
}

impl std::ops::Deref for App {
    type Target = TestService;
    fn deref(&self) -> &TestService {
        &self.service
    }
}

/// The test provider behind a switch that makes the next calls fail as if the provider were
/// unreachable, having (like a timeout after the fact) charged nonetheless when asked to.
#[derive(Default)]
pub struct Flaky {
    inner: TestProvider,
    unavailable: AtomicU32,
    charge_before_failing: std::sync::atomic::AtomicBool,
}

impl Flaky {
    /// The next `n` calls fail with `Unavailable`; with `charged`, the charge happens first.
    pub fn fail_next(&self, n: u32, charged: bool) {
        self.charge_before_failing.store(charged, Ordering::SeqCst);
        self.unavailable.store(n, Ordering::SeqCst);
    }

    /// Charges that moved money.
    pub fn charges(&self) -> u64 {
        self.inner.charges()
    }

    fn failing(&self) -> bool {
        self.unavailable
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

#[async_trait]
impl Provider for Flaky {
    fn name(&self) -> &'static str {
        "test"
    }
    async fn charge(&self, request: &ChargeRequest) -> Result<Charge, ProviderError> {
        if self.failing() {
            if self.charge_before_failing.load(Ordering::SeqCst) {
                let _ = self.inner.charge(request).await;
            }
            return Err(ProviderError::Unavailable("timed out".into()));
        }
        self.inner.charge(request).await
    }
    async fn capture(&self, reference: &str, amount: i64, key: &str) -> Result<(), ProviderError> {
        self.inner.capture(reference, amount, key).await
    }
    async fn cancel(&self, reference: &str, key: &str) -> Result<(), ProviderError> {
        self.inner.cancel(reference, key).await
    }
    async fn refund(
        &self,
        reference: &str,
        amount: i64,
        key: &str,
    ) -> Result<RefundReceipt, ProviderError> {
        if self.failing() {
            return Err(ProviderError::Unavailable("timed out".into()));
        }
        self.inner.refund(reference, amount, key).await
    }
}

/// One started payments service per database engine.
pub async fn apps() -> Vec<App> {
    let providers = std::sync::Mutex::new(Vec::new());
    let services = TestService::start_all(&mercato_payments::MIGRATOR, Config::default(), |ctx| {
        let provider = Arc::new(Flaky::default());
        providers.lock().unwrap().push(provider.clone());
        mercato_payments::start_with(ctx, Providers::default().with(provider))
    })
    .await;
    services
        .into_iter()
        .zip(providers.into_inner().unwrap())
        .map(|(service, provider)| App { service, provider })
        .collect()
}

/// A `{"type": "card"}` payment method.
pub fn card(number: &str) -> Value {
    json!({"type": "card", "card": {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": "937"}})
}

impl App {
    /// A customer's token.
    pub fn customer(&self, id: &str) -> String {
        self.keys.token_for(id, &["customer"], None)
    }

    /// POSTs as `token`.
    pub async fn post_as(&self, token: &str, path: &str, body: Value) -> Reply {
        self.request("POST", path, Some(token), Some(body.to_string()))
            .await
    }

    /// Creates a payment as a customer; asserts 201.
    pub async fn create(&self, body: Value) -> Value {
        let reply = self
            .post_as(&self.customer("usr_buyer"), "/api/v1/payments", body)
            .await;
        assert_eq!(reply.status, 201, "{}: {}", self.label, reply.body);
        reply.body
    }

    /// Processes a payment as its customer.
    pub async fn process(&self, id: &str) -> Reply {
        self.post_as(
            &self.customer("usr_buyer"),
            &format!("/api/v1/payments/{id}/process"),
            json!({}),
        )
        .await
    }

    /// A paid payment of `amount` EUR cents; returns its id.
    pub async fn paid(&self, amount: i64) -> String {
        let created = self.create(json!({"amount": amount, "currency": "EUR", "payment_method": card("4242424242424242")})).await;
        let id = created["id"].as_str().unwrap().to_owned();
        let processed = self.process(&id).await;
        assert_eq!(
            processed.body["status"], "succeeded",
            "{}: {}",
            self.label, processed.body
        );
        id
    }
}
