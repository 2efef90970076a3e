//! Payments through its HTTP app, on SQLite and (with `TEST_DATABASE_URL`) PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns panic on purpose

mod braintree;
mod card_data;
mod fake_braintree;
mod fake_paypal;
mod fake_stripe;
mod intents;
mod paypal;
mod providers;
mod refunds;
mod risk;
mod routing;
mod stripe;
mod stripe_webhook;
mod webhooks;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;
use mercato_kernel::Config;
use mercato_kernel::testing::{Reply, TestService};
use mercato_payments::engine::Providers;
use mercato_payments::providers::test::TestProvider;
use mercato_payments::providers::{
    Charge, ChargeRequest, Provider, ProviderError, RefundReceipt, WebhookError, WebhookEvent,
    WebhookKind,
};
use serde_json::{Value, json};

pub use mercato_kernel::testing::PROBLEM;

/// A started payments service with its providers, to count real charges.
pub struct App {
    pub service: TestService,
    /// The first provider (`test` unless named otherwise).
    pub provider: Arc<Flaky>,
    /// Every provider, in the order given.
    pub providers: Vec<Arc<Flaky>>,
}

impl std::ops::Deref for App {
    type Target = TestService;
    fn deref(&self) -> &TestService {
        &self.service
    }
}

/// The test provider under another name, behind switches that make the next calls time out
/// (having, when asked, charged nonetheless) or fail to connect, and with a webhook scheme of
/// its own: `x-test-signature` = hex HMAC-SHA256 of the body under [`WEBHOOK_SECRET`].
#[derive(Default)]
pub struct Flaky {
    name: &'static str,
    inner: TestProvider,
    unavailable: AtomicU32,
    unreachable: AtomicU32,
    charge_before_failing: std::sync::atomic::AtomicBool,
}

/// Key of the test providers' webhook signatures.
pub const WEBHOOK_SECRET: &[u8] = b"whsec_test";

/// Signs a test webhook body.
pub fn sign(body: &[u8]) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(WEBHOOK_SECRET).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

impl Flaky {
    /// A provider called `name`.
    pub fn named(name: &'static str) -> Self {
        Self {
            name,
            ..Self::default()
        }
    }

    /// The next `n` charges fail to connect (nothing charged).
    pub fn unreachable_next(&self, n: u32) {
        self.unreachable.store(n, Ordering::SeqCst);
    }

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
        if self.name.is_empty() {
            "test"
        } else {
            self.name
        }
    }
    async fn charge(&self, request: &ChargeRequest) -> Result<Charge, ProviderError> {
        if self
            .unreachable
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(ProviderError::Unreachable("connection refused".into()));
        }
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
    async fn webhook(
        &self,
        headers: &axum::http::HeaderMap,
        body: &[u8],
    ) -> Result<WebhookEvent, WebhookError> {
        let signature = headers
            .get("x-test-signature")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| WebhookError::Signature("no signature".into()))?;
        if signature != sign(body) {
            return Err(WebhookError::Signature("signature mismatch".into()));
        }
        let event: Value =
            serde_json::from_slice(body).map_err(|e| WebhookError::Malformed(e.to_string()))?;
        let field = |name: &str| event[name].as_str().unwrap_or_default().to_owned();
        let kind = match field("type").as_str() {
            "charge.succeeded" => WebhookKind::ChargeSucceeded {
                reference: field("reference"),
            },
            "charge.disputed" => WebhookKind::Disputed {
                reference: field("reference"),
            },
            "refund.succeeded" => WebhookKind::RefundSucceeded {
                reference: field("reference"),
            },
            other => WebhookKind::Other(other.to_owned()),
        };
        Ok(WebhookEvent {
            id: field("id"),
            kind,
        })
    }
}

/// One started payments service per database engine, with the `test` provider.
pub async fn apps() -> Vec<App> {
    apps_with(Config::default(), &["test"]).await
}

/// One started payments service per database engine, with `config` and providers of the
/// given names.
pub async fn apps_with(config: Config, names: &[&'static str]) -> Vec<App> {
    let providers = std::sync::Mutex::new(Vec::new());
    let services = TestService::start_all(&mercato_payments::MIGRATOR, config, |ctx| {
        let made: Vec<Arc<Flaky>> = names.iter().map(|n| Arc::new(Flaky::named(n))).collect();
        let mut set = Providers::default();
        for p in &made {
            set = set.with(p.clone());
        }
        providers.lock().unwrap().push(made);
        mercato_payments::start_with(ctx, set)
    })
    .await;
    services
        .into_iter()
        .zip(providers.into_inner().unwrap())
        .map(|(service, providers)| App {
            service,
            provider: providers[0].clone(),
            providers,
        })
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
