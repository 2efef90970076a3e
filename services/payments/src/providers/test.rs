//! The built-in `test` provider: answers like a card network would for the well-known test
//! card numbers, with no network. It is the default of `mercato up`, so a shop works out of
//! the box and its checkout can be exercised end to end.
//!
//! | card | outcome |
//! |---|---|
//! | `4242424242424242` (and any other valid number) | succeeds |
//! | `4000000000000002` | declined, `card_declined` |
//! | `4000000000009995` | declined, `insufficient_funds` |
//! | `4000000000000259` | succeeds; the buyer disputes it [`DISPUTE_AFTER`] later |
//!
//! Like a real provider it remembers idempotency keys: a repeated key answers the first
//! outcome and moves no money again. It decides by the last four digits, the only part of
//! the number the platform keeps.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{
    Charge, ChargeRequest, Provider, ProviderError, RefundReceipt, WebhookEvent, WebhookKind,
};

/// How long after the charge a `…0259` card is disputed.
pub const DISPUTE_AFTER: Duration = Duration::from_secs(1);

/// The in-process test provider.
#[derive(Debug, Default)]
pub struct TestProvider {
    outcomes: Mutex<HashMap<String, Result<String, ProviderError>>>,
    charges: AtomicU64,
    disputes: Mutex<Vec<(Instant, String)>>,
}

impl TestProvider {
    /// A provider with no history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Charges that moved money (authorizations included), for tests.
    pub fn charges(&self) -> u64 {
        self.charges.load(Ordering::Relaxed)
    }

    /// The disputes that are due, as the provider's webhook would report them; each is
    /// handed out once.
    pub fn due_disputes(&self) -> Vec<WebhookEvent> {
        let mut disputes = self
            .disputes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        let (due, later): (Vec<_>, Vec<_>) = disputes.drain(..).partition(|(at, _)| *at <= now);
        *disputes = later;
        due.into_iter()
            .map(|(_, reference)| WebhookEvent {
                id: format!("test_dp_{}", uuid::Uuid::now_v7().simple()),
                kind: WebhookKind::Disputed { reference },
            })
            .collect()
    }

    /// Runs `op` once per idempotency key and answers its first outcome ever after.
    fn once(
        &self,
        key: &str,
        op: impl FnOnce() -> Result<String, ProviderError>,
    ) -> Result<String, ProviderError> {
        let mut outcomes = self
            .outcomes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        outcomes.entry(key.to_owned()).or_insert_with(op).clone()
    }
}

fn reference(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

#[async_trait]
impl Provider for TestProvider {
    fn name(&self) -> &'static str {
        "test"
    }

    async fn charge(&self, request: &ChargeRequest) -> Result<Charge, ProviderError> {
        let outcome = self.once(&request.idempotency_key, || {
            let decline = |code: &str, message: &str| ProviderError::Declined {
                code: code.to_owned(),
                message: message.to_owned(),
            };
            match request.card.last4.as_str() {
                "0002" => Err(decline("card_declined", "Your card was declined.")),
                "9995" => Err(decline(
                    "insufficient_funds",
                    "Your card has insufficient funds.",
                )),
                last4 => {
                    self.charges.fetch_add(1, Ordering::Relaxed);
                    let charge = reference("test_ch");
                    if last4 == "0259" {
                        self.disputes
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .push((Instant::now() + DISPUTE_AFTER, charge.clone()));
                    }
                    Ok(charge)
                }
            }
        })?;
        Ok(Charge {
            reference: outcome,
            captured: request.capture,
        })
    }

    async fn capture(
        &self,
        _reference: &str,
        _amount: i64,
        idempotency_key: &str,
    ) -> Result<(), ProviderError> {
        self.once(idempotency_key, || Ok(String::new())).map(drop)
    }

    async fn cancel(&self, _reference: &str, idempotency_key: &str) -> Result<(), ProviderError> {
        self.once(idempotency_key, || Ok(String::new())).map(drop)
    }

    async fn refund(
        &self,
        _reference: &str,
        _amount: i64,
        idempotency_key: &str,
    ) -> Result<RefundReceipt, ProviderError> {
        let reference = self.once(idempotency_key, || Ok(reference("test_re")))?;
        Ok(RefundReceipt {
            reference,
            settled: true,
        })
    }
}
