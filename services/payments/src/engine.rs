//! Where money moves: creating intents, charging, capturing, canceling and refunding.
//!
//! A provider call is never made inside a database transaction. Instead the payment is
//! *claimed* first by a conditional update (right status, no call in flight), the call is
//! made with an idempotency key derived from the payment, and its outcome is written with the
//! attempt and the event in one transaction. Two requests can therefore never call the
//! provider at once for one payment, and a call repeated after a timeout carries the same key,
//! so the provider answers it without charging again.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mercato_bus::Event;
use mercato_contracts::payments::PaymentSummary;
use mercato_contracts::subjects::{
    PAYMENT_FAILED, PAYMENT_REFUNDED, PAYMENT_REVIEW_REQUIRED, PAYMENT_SUCCEEDED,
};
use mercato_kernel::id::new_id;
use mercato_store::{Db, StoreError, Tx, now_micros};

use crate::domain::{CaptureMethod, Status};
use crate::providers::{
    CardDetails, CardRef, ChargeRequest, Provider, ProviderError, WebhookEvent, WebhookKind,
};
use crate::risk::{self, Decision, Thresholds};
use crate::routing::{Breakers, Routes};
use crate::store::{self, AttemptRow, CardRow, PaymentRow, RefundRow, RiskRow, Settle};

/// Why an operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    /// No such payment (or not the caller's).
    #[error("payment not found")]
    NotFound,
    /// No such card token (or not the caller's).
    #[error("payment method not found")]
    UnknownToken,
    /// The provider is not configured.
    #[error("unknown provider `{0}`")]
    UnknownProvider(String),
    /// The state machine forbids it.
    #[error("a {status} payment cannot {action}")]
    IllegalTransition {
        /// The current status.
        status: &'static str,
        /// What was asked.
        action: &'static str,
    },
    /// Another request is calling the provider for this payment right now.
    #[error("the payment is being processed by another request")]
    InFlight,
    /// More than can be captured or refunded.
    #[error("{0}")]
    AmountTooLarge(String),
    /// The card was declined; the payment failed.
    #[error("declined: {message}")]
    Declined {
        /// `card_declined`, `insufficient_funds`, …
        code: String,
        /// The provider's words.
        message: String,
    },
    /// The provider could not be reached; the request may be repeated.
    #[error("the payment provider is unavailable")]
    Unavailable,
    /// The provider refused the request as malformed.
    #[error("the payment provider refused the request: {0}")]
    Rejected(String),
    /// The provider could not be reached at all (internal: the next provider is tried).
    #[error("the payment provider could not be reached")]
    Unreachable,
    /// The risk rules refused the payment; it failed.
    #[error("the payment was refused by risk checks")]
    Blocked,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    /// Opening a transaction failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Encoding an event failed.
    #[error(transparent)]
    Bus(#[from] mercato_bus::BusError),
}

/// How a payment is to be paid, as the request gave it.
#[derive(Debug, Clone)]
pub enum MethodInput {
    /// Raw details; tokenized at once and dropped.
    Card(CardDetails, CardRef),
    /// A token from `POST /api/v1/payment-methods`.
    Token(String),
}

/// A payment to create; fields are validated.
#[derive(Debug, Clone)]
pub struct NewPayment {
    /// Minor units, 1 to 10^12.
    pub amount: i64,
    /// ISO 4217.
    pub currency: String,
    /// The card, if given now.
    pub method: Option<MethodInput>,
    /// Buyer's email.
    pub customer_email: Option<String>,
    /// When the money is taken.
    pub capture_method: CaptureMethod,
    /// Provider name; the default when absent.
    pub provider: Option<String>,
    /// Free key-value pairs.
    pub metadata: BTreeMap<String, String>,
    /// The buyer's IP (from `X-Forwarded-For`), for velocity checks.
    pub ip: Option<String>,
    /// Billing country (ISO 3166-1 alpha-2).
    pub billing_country: Option<String>,
    /// Shipping country.
    pub shipping_country: Option<String>,
}

/// Who asks: their id, and whether they may act on anyone's payments.
#[derive(Debug, Clone)]
pub struct Caller {
    /// `usr_…` or an API key id.
    pub id: String,
    /// Staff see and manage every payment.
    pub staff: bool,
}

/// A payment with what happened to it.
#[derive(Debug, Clone)]
pub struct Payment {
    /// The stored payment.
    pub row: PaymentRow,
    /// Its card.
    pub card: Option<CardRow>,
    /// Every provider call.
    pub attempts: Vec<AttemptRow>,
    /// Its refunds.
    pub refunds: Vec<RefundRow>,
    /// Its risk inputs and assessment.
    pub risk: RiskRow,
}

impl Payment {
    /// Its status.
    pub fn status(&self) -> Status {
        Status::parse(&self.row.status).unwrap_or(Status::Failed)
    }
}

/// The configured providers by name.
#[derive(Clone, Default)]
pub struct Providers(HashMap<&'static str, Arc<dyn Provider>>);

impl Providers {
    /// Adds a provider under its name.
    pub fn with(mut self, provider: Arc<dyn Provider>) -> Self {
        self.0.insert(provider.name(), provider);
        self
    }

    /// The provider called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Provider>> {
        self.0.get(name)
    }

    /// Every provider, by name.
    pub fn all(&self) -> impl Iterator<Item = &Arc<dyn Provider>> {
        let mut all: Vec<_> = self.0.values().collect();
        all.sort_by_key(|p| p.name());
        all.into_iter()
    }

    /// The providers' names.
    pub fn names(&self) -> Vec<&'static str> {
        self.all().map(|p| p.name()).collect()
    }
}

/// How the engine decides: providers, routes, risk thresholds and the fingerprint key.
pub struct Settings {
    /// Serves payments no route matches.
    pub default_provider: String,
    /// Longest a provider call may take.
    pub call_timeout: Duration,
    /// Which providers serve which payments.
    pub routes: Routes,
    /// Circuit breakers of the providers.
    pub breakers: Arc<Breakers>,
    /// Where risk decisions change.
    pub thresholds: Thresholds,
    /// Key of the card fingerprints.
    pub fingerprint_key: Vec<u8>,
}

/// The payment operations over one service database.
#[derive(Clone)]
pub struct Engine {
    db: Db,
    providers: Providers,
    settings: Arc<Settings>,
    /// How long a claim holds: longer than any provider call may take.
    hold: Duration,
}

impl Engine {
    /// Operations over `db` with `providers`.
    pub fn new(db: Db, providers: Providers, settings: Settings) -> Self {
        let hold = settings.call_timeout * 2 + Duration::from_secs(5);
        Self {
            db,
            providers,
            settings: Arc::new(settings),
            hold,
        }
    }

    /// The circuit breakers, for health reports.
    pub fn breakers(&self) -> &Breakers {
        &self.settings.breakers
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The configured providers for a payment, in route order.
    fn candidates(&self, currency: &str, amount: i64) -> Vec<String> {
        self.settings
            .routes
            .candidates(currency, amount, &self.settings.default_provider)
    }

    fn provider(&self, name: &str) -> Result<&Arc<dyn Provider>, PaymentError> {
        self.providers
            .get(name)
            .ok_or_else(|| PaymentError::UnknownProvider(name.to_owned()))
    }

    /// Tokenizes a card: the platform keeps a token, brand, last four, expiry and a keyed
    /// fingerprint; every configured provider that vaults cards gets them now, while the
    /// details are in memory, so any of them can charge the card later (failover).
    pub async fn tokenize(
        &self,
        details: &CardDetails,
        card: &CardRef,
        caller: &Caller,
    ) -> Result<CardRow, PaymentError> {
        let mut vaults = Vec::new();
        let mut first_error = None;
        for provider in self.providers.all() {
            match provider.tokenize(details).await {
                Ok(method) => vaults.push((provider.name(), method.unwrap_or_default())),
                Err(e) => {
                    tracing::warn!(provider = provider.name(), error = %e, "vaulting a card failed");
                    first_error.get_or_insert(e);
                }
            }
        }
        if vaults.is_empty() {
            return Err(first_error.map_or(PaymentError::Unavailable, from_provider));
        }
        let row = CardRow {
            token: new_id("tok"),
            brand: card.brand.clone(),
            last4: card.last4.clone(),
            exp_month: i64::from(card.exp_month),
            exp_year: i64::from(card.exp_year),
            fingerprint: self.fingerprint(&details.number),
            owner: caller.id.clone(),
            created_at: now_micros(),
        };
        let mut tx = self.db.begin().await?;
        store::insert_card(&mut tx, &row).await?;
        for (provider, method) in vaults {
            store::insert_vault(&mut tx, &row.token, provider, &method).await?;
        }
        tx.commit().await?;
        Ok(row)
    }

    /// HMAC-SHA256 of the card number under the service's key: recognises a card across
    /// tokens without anything that gives the number back.
    fn fingerprint(&self, number: &str) -> String {
        use hmac::{KeyInit, Mac};
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.settings.fingerprint_key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(number.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// A stored card the caller may use (theirs, or any for staff).
    pub async fn card(&self, token: &str, caller: &Caller) -> Result<CardRow, PaymentError> {
        self.usable_card(token, caller).await
    }

    /// A token the caller may use.
    async fn usable_card(&self, token: &str, caller: &Caller) -> Result<CardRow, PaymentError> {
        let card = store::find_card(&mut *self.db.pool().acquire().await?, token)
            .await?
            .filter(|c| caller.staff || c.owner == caller.id)
            .ok_or(PaymentError::UnknownToken)?;
        Ok(card)
    }

    async fn resolve_method(
        &self,
        method: &MethodInput,
        caller: &Caller,
    ) -> Result<CardRow, PaymentError> {
        match method {
            MethodInput::Card(details, card) => self.tokenize(details, card, caller).await,
            MethodInput::Token(token) => self.usable_card(token, caller).await,
        }
    }

    /// Creates an intent.
    pub async fn create(&self, new: NewPayment, caller: &Caller) -> Result<Payment, PaymentError> {
        let provider = match &new.provider {
            Some(name) => self.provider(name)?.name().to_owned(),
            None => self
                .candidates(&new.currency, new.amount)
                .into_iter()
                .next()
                .unwrap_or_else(|| self.settings.default_provider.clone()),
        };
        let card = match &new.method {
            Some(method) => Some(self.resolve_method(method, caller).await?),
            None => None,
        };
        let now = now_micros();
        let status = if card.is_some() {
            Status::RequiresConfirmation
        } else {
            Status::RequiresPaymentMethod
        };
        let risk_inputs = RiskRow {
            ip: new.ip.clone(),
            billing_country: new.billing_country.clone(),
            shipping_country: new.shipping_country.clone(),
            fingerprint: card.as_ref().map(|c| c.fingerprint.clone()),
            ..RiskRow::default()
        };
        let row = PaymentRow {
            id: new_id("pay"),
            amount: new.amount,
            currency: new.currency,
            status: status.as_str().to_owned(),
            capture_method: new.capture_method.as_str().to_owned(),
            provider,
            provider_pinned: i64::from(new.provider.is_some()),
            provider_reference: None,
            card_token: card.as_ref().map(|c| c.token.clone()),
            amount_capturable: 0,
            amount_captured: 0,
            amount_refunded: 0,
            customer_email: new.customer_email,
            metadata: serde_json::to_string(&new.metadata).unwrap_or_else(|_| "{}".into()),
            failure_code: None,
            failure_message: None,
            owner: caller.id.clone(),
            created_at: now,
            updated_at: now,
        };
        store::insert_payment(&mut *self.db.pool().acquire().await?, &row).await?;
        let mut conn = self.db.pool().acquire().await?;
        store::set_risk_inputs(&mut conn, &row.id, &risk_inputs).await?;
        drop(conn);
        Ok(Payment {
            row,
            card,
            attempts: Vec::new(),
            refunds: Vec::new(),
            risk: risk_inputs,
        })
    }

    /// A payment the caller may see.
    pub async fn get(&self, id: &str, caller: &Caller) -> Result<Payment, PaymentError> {
        let mut conn = self.db.pool().acquire().await?;
        let row = store::find_payment(&mut conn, id)
            .await?
            .filter(|p| caller.staff || p.owner == caller.id)
            .ok_or(PaymentError::NotFound)?;
        let card = match &row.card_token {
            Some(token) => store::find_card(&mut conn, token).await?,
            None => None,
        };
        let attempts = store::attempts_of(&mut conn, id).await?;
        let refunds = store::refunds_of(&mut conn, id).await?;
        let risk = store::risk_of(&mut conn, id).await?;
        Ok(Payment {
            row,
            card,
            attempts,
            refunds,
            risk,
        })
    }

    /// Claims the payment for one provider call, or explains why not.
    async fn claim(
        &self,
        payment: &Payment,
        from: &[Status],
        during: Status,
        action: &'static str,
    ) -> Result<(), PaymentError> {
        let status = payment.status();
        if !from.contains(&status) {
            return Err(PaymentError::IllegalTransition {
                status: status.as_str(),
                action,
            });
        }
        let now = now_micros();
        let hold_until = now + i64::try_from(self.hold.as_micros()).unwrap_or(i64::MAX / 2);
        let names: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
        let mut conn = self.db.pool().acquire().await?;
        if store::claim(
            &mut conn,
            &payment.row.id,
            &names,
            during.as_str(),
            now,
            hold_until,
        )
        .await?
        {
            return Ok(());
        }
        // Lost the race: either a call is in flight or the status moved on.
        let current = store::find_payment(&mut conn, &payment.row.id)
            .await?
            .ok_or(PaymentError::NotFound)?;
        match Status::parse(&current.status) {
            Some(s) if from.contains(&s) => Err(PaymentError::InFlight),
            Some(s) => Err(PaymentError::IllegalTransition {
                status: s.as_str(),
                action,
            }),
            None => Err(PaymentError::InFlight),
        }
    }

    /// Confirms the payment: attaches `method` first when it has none, scores its risk
    /// (block fails it, review holds it for staff), then charges it with the first healthy
    /// provider of its route that holds the card. A provider that cannot be reached is
    /// skipped for the next; one that timed out (the charge may have happened) is asked
    /// again on the next `process` with the same idempotency key, never replaced.
    pub async fn process(
        &self,
        id: &str,
        method: Option<MethodInput>,
        caller: &Caller,
    ) -> Result<Payment, PaymentError> {
        let mut payment = self.get(id, caller).await?;
        if let Some(method) = method {
            if payment.status() != Status::RequiresPaymentMethod {
                return Err(PaymentError::IllegalTransition {
                    status: payment.status().as_str(),
                    action: "take another payment method",
                });
            }
            let card = self.resolve_method(&method, caller).await?;
            let mut conn = self.db.pool().acquire().await?;
            if !store::attach_card(&mut conn, id, &card.token, now_micros()).await? {
                return Err(PaymentError::InFlight);
            }
            let inputs = RiskRow {
                fingerprint: Some(card.fingerprint),
                ..payment.risk.clone()
            };
            store::set_risk_inputs(&mut conn, id, &inputs).await?;
            drop(conn);
            payment = self.get(id, caller).await?;
        }
        let fresh = payment.status() == Status::RequiresConfirmation;
        self.claim(
            &payment,
            &[Status::RequiresConfirmation, Status::Processing],
            Status::Processing,
            "be processed",
        )
        .await?;
        let Some(card) = payment.card.clone() else {
            self.release(id).await?;
            return Err(PaymentError::IllegalTransition {
                status: Status::RequiresPaymentMethod.as_str(),
                action: "be processed",
            });
        };
        if fresh && payment.risk.review_decision.as_deref() != Some("approved") {
            match self.assess(&payment).await? {
                Decision::Allow => {}
                Decision::Review => {
                    let mut tx = self.db.begin().await?;
                    store::settle(
                        &mut tx,
                        id,
                        &Settle {
                            status: Status::RequiresReview.as_str(),
                            ..Settle::default()
                        },
                        now_micros(),
                    )
                    .await?;
                    self.publish(&mut tx, id, PAYMENT_REVIEW_REQUIRED).await?;
                    tx.commit().await?;
                    return self.get(id, caller).await;
                }
                Decision::Block => {
                    let mut tx = self.db.begin().await?;
                    self.fail(
                        &mut tx,
                        id,
                        "blocked_by_risk",
                        "refused by risk checks",
                        now_micros(),
                    )
                    .await?;
                    tx.commit().await?;
                    return Err(PaymentError::Blocked);
                }
            }
        }
        let vaults = store::vaults_of(&mut *self.db.pool().acquire().await?, &card.token).await?;
        // A charge whose outcome is unknown is settled where it was made, with the same key.
        let unknown_at = payment
            .attempts
            .iter()
            .rev()
            .find(|a| a.operation == "charge")
            .filter(|a| a.outcome == "unavailable")
            .map(|a| a.provider.clone());
        let candidates = match unknown_at {
            Some(provider) => vec![provider],
            None if payment.row.provider_explicit() => vec![payment.row.provider.clone()],
            None => self.candidates(&payment.row.currency, payment.row.amount),
        };
        let mut last = PaymentError::Unavailable;
        for name in candidates {
            let Some(provider) = self.providers.get(&name).cloned() else {
                continue;
            };
            let Some((_, provider_method)) = vaults.iter().find(|(p, _)| *p == name) else {
                continue;
            };
            if !self.settings.breakers.allow(&name) {
                tracing::info!(payment = id, provider = %name, "circuit open: provider skipped");
                continue;
            }
            match self
                .charge_with(&payment, &card, provider.as_ref(), provider_method)
                .await
            {
                Ok(()) => return self.get(id, caller).await,
                Err(PaymentError::Unreachable) => {
                    last = PaymentError::Unavailable;
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
        self.release(id).await?;
        Err(last)
    }

    /// Scores the payment and stores the assessment.
    async fn assess(&self, payment: &Payment) -> Result<Decision, PaymentError> {
        let hour_ago = now_micros() - 3_600_000_000;
        let mut conn = self.db.pool().acquire().await?;
        let id = &payment.row.id;
        let r = &payment.risk;
        let mut signals = risk::Signals {
            amount: payment.row.amount,
            email: payment.row.customer_email.clone(),
            billing_country: r.billing_country.clone(),
            shipping_country: r.shipping_country.clone(),
            ..risk::Signals::default()
        };
        let mut candidates = Vec::new();
        if let Some(fp) = &r.fingerprint {
            signals.card_last_hour =
                store::recent_count(&mut conn, "fingerprint", fp, hour_ago, id).await?;
            candidates.push(("card", fp.clone()));
        }
        if let Some(email) = &payment.row.customer_email {
            signals.email_last_hour =
                store::recent_count(&mut conn, "customer_email", email, hour_ago, id).await?;
            signals.history = store::history(&mut conn, email, &payment.row.currency).await?;
            candidates.push(("email", email.clone()));
            if let Some((_, domain)) = email.rsplit_once('@') {
                candidates.push(("email_domain", domain.to_owned()));
            }
        }
        if let Some(ip) = &r.ip {
            signals.ip_last_hour = store::recent_count(&mut conn, "ip", ip, hour_ago, id).await?;
            candidates.push(("ip", ip.clone()));
        }
        signals.blocked = store::blocked(&mut conn, &candidates).await?;
        let assessment = risk::assess(&signals, &self.settings.thresholds);
        let reasons = serde_json::to_string(&assessment.reasons).unwrap_or_else(|_| "[]".into());
        store::set_assessment(
            &mut conn,
            id,
            assessment.score,
            assessment.decision.as_str(),
            &reasons,
        )
        .await?;
        Ok(assessment.decision)
    }

    /// One charge attempt with one provider; `Err(Unreachable)` means try the next.
    async fn charge_with(
        &self,
        payment: &Payment,
        card: &CardRow,
        provider: &dyn Provider,
        provider_method: &str,
    ) -> Result<(), PaymentError> {
        let id = payment.row.id.as_str();
        let capture = payment.row.capture_method == CaptureMethod::Automatic.as_str();
        let request = ChargeRequest {
            payment_id: id.to_owned(),
            amount: payment.row.amount,
            currency: payment.row.currency.clone(),
            capture,
            card: CardRef {
                token: card.token.clone(),
                brand: card.brand.clone(),
                last4: card.last4.clone(),
                exp_month: u32::try_from(card.exp_month).unwrap_or(0),
                exp_year: u32::try_from(card.exp_year).unwrap_or(0),
            },
            provider_method: Some(provider_method.to_owned()).filter(|m| !m.is_empty()),
            customer_email: payment.row.customer_email.clone(),
            // Per provider: a failover to another provider is another charge request there.
            idempotency_key: format!("{id}:charge:{}", provider.name()),
        };
        let started = Instant::now();
        let result = provider.charge(&request).await;
        let mut attempt = attempt(
            &payment.row,
            "charge",
            &request.idempotency_key,
            &result.as_ref().map(|c| c.reference.clone()),
            started,
        );
        attempt.provider = provider.name().to_owned();
        let breakers = &self.settings.breakers;
        let mut tx = self.db.begin().await?;
        store::insert_attempt(&mut tx, &attempt).await?;
        let now = now_micros();
        let outcome = match result {
            Ok(charge) => {
                breakers.success(provider.name());
                store::set_provider(&mut tx, id, provider.name()).await?;
                let (status, capturable, captured) = if charge.captured {
                    (Status::Succeeded, 0, payment.row.amount)
                } else {
                    (Status::RequiresCapture, payment.row.amount, 0)
                };
                let settle = Settle {
                    status: status.as_str(),
                    provider_reference: Some(&charge.reference),
                    amount_capturable: Some(capturable),
                    amount_captured: Some(captured),
                    failure: None,
                };
                store::settle(&mut tx, id, &settle, now).await?;
                if status == Status::Succeeded {
                    self.publish(&mut tx, id, PAYMENT_SUCCEEDED).await?;
                }
                Ok(())
            }
            Err(ProviderError::Unreachable(reason)) => {
                breakers.failure(provider.name());
                tracing::warn!(payment = id, provider = provider.name(), %reason, "provider unreachable; trying the next");
                Err(PaymentError::Unreachable)
            }
            Err(ProviderError::Unavailable(reason)) => {
                breakers.failure(provider.name());
                tracing::warn!(payment = id, provider = provider.name(), %reason, "provider unavailable");
                store::set_provider(&mut tx, id, provider.name()).await?;
                store::release(&mut tx, id, now).await?;
                Err(PaymentError::Unavailable)
            }
            Err(ProviderError::Declined { code, message }) => {
                breakers.success(provider.name());
                store::set_provider(&mut tx, id, provider.name()).await?;
                self.fail(&mut tx, id, &code, &message, now).await?;
                Err(PaymentError::Declined { code, message })
            }
            Err(ProviderError::Rejected(message)) => {
                store::set_provider(&mut tx, id, provider.name()).await?;
                self.fail(&mut tx, id, "provider_rejected", &message, now)
                    .await?;
                Err(PaymentError::Rejected(message))
            }
        };
        tx.commit().await?;
        outcome
    }

    /// A staff decision on a payment held for review: `approve` charges it now, `reject`
    /// fails it.
    pub async fn review(
        &self,
        id: &str,
        approve: bool,
        caller: &Caller,
    ) -> Result<Payment, PaymentError> {
        let payment = self.get(id, caller).await?;
        let now = now_micros();
        let (decision, to) = if approve {
            ("approved", Status::RequiresConfirmation)
        } else {
            ("rejected", Status::Failed)
        };
        let mut tx = self.db.begin().await?;
        if !store::review(&mut tx, id, decision, to.as_str(), &caller.id, now).await? {
            return Err(PaymentError::IllegalTransition {
                status: payment.status().as_str(),
                action: "be reviewed",
            });
        }
        if !approve {
            self.fail(
                &mut tx,
                id,
                "rejected_in_review",
                "rejected by a reviewer",
                now,
            )
            .await?;
        }
        tx.commit().await?;
        if approve {
            // The reviewer acts for the buyer: the charge runs as the payment's owner.
            let owner = Caller {
                id: payment.row.owner.clone(),
                staff: true,
            };
            return self.process(id, None, &owner).await;
        }
        self.get(id, caller).await
    }

    async fn fail(
        &self,
        tx: &mut Tx,
        id: &str,
        code: &str,
        message: &str,
        now: i64,
    ) -> Result<(), PaymentError> {
        let settle = Settle {
            status: Status::Failed.as_str(),
            failure: Some((code, message)),
            ..Settle::default()
        };
        store::settle(tx, id, &settle, now).await?;
        self.publish(tx, id, PAYMENT_FAILED).await
    }

    async fn release(&self, id: &str) -> Result<(), PaymentError> {
        store::release(&mut *self.db.pool().acquire().await?, id, now_micros()).await?;
        Ok(())
    }

    /// Captures `amount` (all when `None`) of an authorized payment; the rest is released.
    pub async fn capture(
        &self,
        id: &str,
        amount: Option<i64>,
        caller: &Caller,
    ) -> Result<Payment, PaymentError> {
        let payment = self.get(id, caller).await?;
        let amount = amount.unwrap_or(payment.row.amount_capturable);
        if payment.status() == Status::RequiresCapture && amount > payment.row.amount_capturable {
            return Err(PaymentError::AmountTooLarge(format!(
                "at most {} can be captured",
                payment.row.amount_capturable
            )));
        }
        self.claim(
            &payment,
            &[Status::RequiresCapture],
            Status::RequiresCapture,
            "be captured",
        )
        .await?;
        let provider = self.provider(&payment.row.provider)?.clone();
        let reference = payment.row.provider_reference.clone().unwrap_or_default();
        let key = format!("{id}:capture");
        let started = Instant::now();
        let result = provider.capture(&reference, amount, &key).await;
        let attempt = attempt(
            &payment.row,
            "capture",
            &key,
            &result.as_ref().map(|()| reference.clone()),
            started,
        );
        let mut tx = self.db.begin().await?;
        store::insert_attempt(&mut tx, &attempt).await?;
        let now = now_micros();
        let outcome = match result {
            Ok(()) => {
                let settle = Settle {
                    status: Status::Succeeded.as_str(),
                    amount_capturable: Some(0),
                    amount_captured: Some(amount),
                    ..Settle::default()
                };
                store::settle(&mut tx, id, &settle, now).await?;
                self.publish(&mut tx, id, PAYMENT_SUCCEEDED).await?;
                Ok(())
            }
            Err(e) => {
                // The authorization stands; capture may be tried again.
                store::release(&mut tx, id, now).await?;
                Err(from_provider(e))
            }
        };
        tx.commit().await?;
        outcome?;
        self.get(id, caller).await
    }

    /// Cancels a payment before money moved (voiding an authorization at the provider).
    pub async fn cancel(&self, id: &str, caller: &Caller) -> Result<Payment, PaymentError> {
        let payment = self.get(id, caller).await?;
        let from = [
            Status::RequiresPaymentMethod,
            Status::RequiresConfirmation,
            Status::RequiresReview,
            Status::RequiresCapture,
        ];
        self.claim(&payment, &from, payment.status(), "be canceled")
            .await?;
        let now = now_micros();
        if payment.status() == Status::RequiresCapture {
            let provider = self.provider(&payment.row.provider)?.clone();
            let reference = payment.row.provider_reference.clone().unwrap_or_default();
            let key = format!("{id}:cancel");
            let started = Instant::now();
            let result = provider.cancel(&reference, &key).await;
            let attempt = attempt(
                &payment.row,
                "cancel",
                &key,
                &result.as_ref().map(|()| reference.clone()),
                started,
            );
            let mut conn = self.db.pool().acquire().await?;
            store::insert_attempt(&mut conn, &attempt).await?;
            if let Err(e) = result {
                store::release(&mut conn, id, now).await?;
                return Err(from_provider(e));
            }
        }
        let settle = Settle {
            status: Status::Canceled.as_str(),
            amount_capturable: Some(0),
            ..Settle::default()
        };
        store::settle(&mut *self.db.pool().acquire().await?, id, &settle, now).await?;
        self.get(id, caller).await
    }

    /// Refunds `amount` (all that is left when `None`) of a succeeded payment. Several
    /// refunds may be made; together they never exceed what was captured.
    pub async fn refund(
        &self,
        id: &str,
        amount: Option<i64>,
        reason: Option<String>,
        caller: &Caller,
    ) -> Result<(Payment, RefundRow), PaymentError> {
        let payment = self.get(id, caller).await?;
        if payment.status() != Status::Succeeded {
            return Err(PaymentError::IllegalTransition {
                status: payment.status().as_str(),
                action: "be refunded",
            });
        }
        let left = payment.row.amount_captured - payment.row.amount_refunded;
        let amount = amount.unwrap_or(left);
        let now = now_micros();
        if amount <= 0
            || !store::reserve_refund(&mut *self.db.pool().acquire().await?, id, amount, now)
                .await?
        {
            return Err(PaymentError::AmountTooLarge(format!(
                "at most {left} is left to refund"
            )));
        }
        let mut refund = RefundRow {
            id: new_id("re"),
            payment_id: id.to_owned(),
            amount,
            reason,
            status: "pending".to_owned(),
            provider_reference: None,
            created_at: now,
            updated_at: now,
        };
        store::insert_refund(&mut *self.db.pool().acquire().await?, &refund).await?;
        let provider = self.provider(&payment.row.provider)?.clone();
        let reference = payment.row.provider_reference.clone().unwrap_or_default();
        let started = Instant::now();
        let result = provider.refund(&reference, amount, &refund.id).await;
        let attempt = attempt(
            &payment.row,
            "refund",
            &refund.id,
            &result.as_ref().map(|r| r.reference.clone()),
            started,
        );
        let mut tx = self.db.begin().await?;
        store::insert_attempt(&mut tx, &attempt).await?;
        let now = now_micros();
        let outcome = match result {
            Ok(receipt) => {
                let status = if receipt.settled {
                    "succeeded"
                } else {
                    "pending"
                };
                store::settle_refund(&mut tx, &refund.id, status, Some(&receipt.reference), now)
                    .await?;
                if receipt.settled {
                    self.publish(&mut tx, id, PAYMENT_REFUNDED).await?;
                }
                refund.status = status.to_owned();
                refund.provider_reference = Some(receipt.reference);
                Ok(())
            }
            // Unknown outcome: the refund stays pending with its amount reserved, and the
            // provider's webhook (or a retry with the same key) settles it.
            Err(ProviderError::Unavailable(_) | ProviderError::Unreachable(_)) => {
                Err(PaymentError::Unavailable)
            }
            Err(e) => {
                store::settle_refund(&mut tx, &refund.id, "failed", None, now).await?;
                store::unreserve_refund(&mut tx, id, amount, now).await?;
                refund.status = "failed".to_owned();
                Err(from_provider(e))
            }
        };
        tx.commit().await?;
        outcome?;
        Ok((self.get(id, caller).await?, refund))
    }

    /// Writes a `payment.*` event with the payment as it now is.
    async fn publish(&self, tx: &mut Tx, id: &str, kind: &str) -> Result<(), PaymentError> {
        let row = store::find_payment(tx, id)
            .await?
            .ok_or(PaymentError::NotFound)?;
        let summary = PaymentSummary {
            id: row.id.clone(),
            amount: row.amount,
            currency: row.currency,
            status: row.status,
            amount_captured: row.amount_captured,
            amount_refunded: row.amount_refunded,
            provider: row.provider,
            failure_code: row.failure_code,
            metadata: serde_json::from_str(&row.metadata).unwrap_or_default(),
        };
        let event = Event::new(crate::SOURCE, kind, &summary)?.with_subject(row.id);
        mercato_bus::enqueue(tx, &event).await?;
        Ok(())
    }
}

/// Maps a provider failure to the operation's error.
fn from_provider(e: ProviderError) -> PaymentError {
    match e {
        ProviderError::Declined { code, message } => PaymentError::Declined { code, message },
        ProviderError::Unavailable(_) | ProviderError::Unreachable(_) => PaymentError::Unavailable,
        ProviderError::Rejected(message) => PaymentError::Rejected(message),
    }
}

/// The record of one provider call.
fn attempt(
    payment: &PaymentRow,
    operation: &str,
    key: &str,
    result: &Result<String, &ProviderError>,
    started: Instant,
) -> AttemptRow {
    let (outcome, code, message, reference) = match result {
        Ok(reference) => ("succeeded", None, None, Some(reference.clone())),
        Err(ProviderError::Declined { code, message }) => {
            ("declined", Some(code.clone()), Some(message.clone()), None)
        }
        Err(ProviderError::Unavailable(m)) => ("unavailable", None, Some(m.clone()), None),
        Err(ProviderError::Unreachable(m)) => ("unreachable", None, Some(m.clone()), None),
        Err(ProviderError::Rejected(m)) => ("rejected", None, Some(m.clone()), None),
    };
    AttemptRow {
        id: new_id("att"),
        payment_id: payment.id.clone(),
        operation: operation.to_owned(),
        provider: payment.provider.clone(),
        idempotency_key: key.to_owned(),
        outcome: outcome.to_owned(),
        code,
        message,
        reference,
        duration_ms: i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX),
        created_at: now_micros(),
    }
}

/// What a webhook delivery did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookOutcome {
    /// Acted on (or acknowledged as irrelevant).
    Handled,
    /// Seen before; nothing done again.
    Duplicate,
}

/// Why a webhook delivery was refused.
#[derive(Debug, thiserror::Error)]
pub enum WebhookFailure {
    /// No such provider.
    #[error("unknown provider")]
    UnknownProvider,
    /// The provider refused it (signature, format, not configured).
    #[error(transparent)]
    Refused(#[from] crate::providers::WebhookError),
    /// Storing its effect failed.
    #[error(transparent)]
    Payment(#[from] PaymentError),
}

impl From<sqlx::Error> for WebhookFailure {
    fn from(e: sqlx::Error) -> Self {
        Self::Payment(e.into())
    }
}

impl From<StoreError> for WebhookFailure {
    fn from(e: StoreError) -> Self {
        Self::Payment(e.into())
    }
}

impl Engine {
    /// Verifies and applies an inbound provider webhook. The delivery is recorded in the
    /// same transaction as its effect, so a replay (same provider event id) does nothing.
    pub async fn webhook(
        &self,
        provider: &str,
        headers: &axum::http::HeaderMap,
        body: &[u8],
    ) -> Result<WebhookOutcome, WebhookFailure> {
        let provider = self
            .providers
            .get(provider)
            .ok_or(WebhookFailure::UnknownProvider)?
            .clone();
        let event: WebhookEvent = provider.webhook(headers, body).await?;
        self.apply_webhook(provider.name(), &event).await
    }

    /// Applies a verified provider event once (by its id).
    pub async fn apply_webhook(
        &self,
        name: &str,
        event: &WebhookEvent,
    ) -> Result<WebhookOutcome, WebhookFailure> {
        let now = now_micros();
        let mut tx = self.db.begin().await?;
        let kind = match &event.kind {
            WebhookKind::ChargeSucceeded { .. } => "charge_succeeded",
            WebhookKind::ChargeFailed { .. } => "charge_failed",
            WebhookKind::RefundSucceeded { .. } => "refund_succeeded",
            WebhookKind::RefundFailed { .. } => "refund_failed",
            WebhookKind::Disputed { .. } => "disputed",
            WebhookKind::Other(_) => "other",
        };
        if !store::record_webhook(&mut tx, name, &event.id, kind, now).await? {
            return Ok(WebhookOutcome::Duplicate);
        }
        match &event.kind {
            WebhookKind::ChargeSucceeded { reference } => {
                if let Some(id) = store::payment_by_reference(&mut tx, name, reference).await? {
                    let row = store::find_payment(&mut tx, &id)
                        .await?
                        .ok_or(PaymentError::NotFound)?;
                    let settle = Settle {
                        status: Status::Succeeded.as_str(),
                        amount_capturable: Some(0),
                        amount_captured: Some(row.amount),
                        ..Settle::default()
                    };
                    if store::resolve_processing(&mut tx, &id, &settle, now).await? {
                        self.publish(&mut tx, &id, PAYMENT_SUCCEEDED).await?;
                    }
                }
            }
            WebhookKind::ChargeFailed {
                reference,
                code,
                message,
            } => {
                if let Some(id) = store::payment_by_reference(&mut tx, name, reference).await? {
                    let settle = Settle {
                        status: Status::Failed.as_str(),
                        failure: Some((code, message)),
                        ..Settle::default()
                    };
                    if store::resolve_processing(&mut tx, &id, &settle, now).await? {
                        self.publish(&mut tx, &id, PAYMENT_FAILED).await?;
                    }
                }
            }
            WebhookKind::RefundSucceeded { reference } => {
                if let Some(refund) = store::refund_by_reference(&mut tx, reference).await?
                    && refund.status == "pending"
                {
                    store::settle_refund(&mut tx, &refund.id, "succeeded", None, now).await?;
                    self.publish(&mut tx, &refund.payment_id, PAYMENT_REFUNDED)
                        .await?;
                }
            }
            WebhookKind::RefundFailed { reference } => {
                if let Some(refund) = store::refund_by_reference(&mut tx, reference).await?
                    && refund.status != "failed"
                {
                    store::settle_refund(&mut tx, &refund.id, "failed", None, now).await?;
                    store::unreserve_refund(&mut tx, &refund.payment_id, refund.amount, now)
                        .await?;
                }
            }
            WebhookKind::Disputed { reference } => {
                if let Some(id) = store::payment_by_reference(&mut tx, name, reference).await? {
                    store::mark_disputed(&mut tx, &id, now).await?;
                }
            }
            WebhookKind::Other(_) => {}
        }
        tx.commit().await?;
        Ok(WebhookOutcome::Handled)
    }
}
