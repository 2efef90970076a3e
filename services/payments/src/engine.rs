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
use mercato_contracts::subjects::{PAYMENT_FAILED, PAYMENT_REFUNDED, PAYMENT_SUCCEEDED};
use mercato_kernel::id::new_id;
use mercato_store::{Db, StoreError, Tx, now_micros};

use crate::domain::{CaptureMethod, Status};
use crate::providers::{CardDetails, CardRef, ChargeRequest, Provider, ProviderError};
use crate::store::{self, AttemptRow, CardRow, PaymentRow, RefundRow, Settle};

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
}

/// The payment operations over one service database.
#[derive(Clone)]
pub struct Engine {
    db: Db,
    providers: Providers,
    default_provider: String,
    /// How long a claim holds: longer than any provider call may take.
    hold: Duration,
}

impl Engine {
    /// Operations over `db` with `providers`; `default_provider` serves payments naming none.
    pub fn new(
        db: Db,
        providers: Providers,
        default_provider: &str,
        call_timeout: Duration,
    ) -> Self {
        Self {
            db,
            providers,
            default_provider: default_provider.to_owned(),
            hold: call_timeout * 2 + Duration::from_secs(5),
        }
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    fn provider(&self, name: &str) -> Result<&Arc<dyn Provider>, PaymentError> {
        self.providers
            .get(name)
            .ok_or_else(|| PaymentError::UnknownProvider(name.to_owned()))
    }

    /// Tokenizes a card with the platform (and with the provider when it vaults cards).
    pub async fn tokenize(
        &self,
        details: &CardDetails,
        card: &CardRef,
        provider: Option<&str>,
        caller: &Caller,
    ) -> Result<CardRow, PaymentError> {
        let provider_name = provider.unwrap_or(&self.default_provider);
        let provider = self.provider(provider_name)?;
        let provider_method = provider.tokenize(details).await.map_err(from_provider)?;
        let row = CardRow {
            token: new_id("tok"),
            brand: card.brand.clone(),
            last4: card.last4.clone(),
            exp_month: i64::from(card.exp_month),
            exp_year: i64::from(card.exp_year),
            provider: provider_method.as_ref().map(|_| provider.name().to_owned()),
            provider_method,
            owner: caller.id.clone(),
            created_at: now_micros(),
        };
        store::insert_card(&mut *self.db.pool().acquire().await?, &row).await?;
        Ok(row)
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
        provider: &str,
        caller: &Caller,
    ) -> Result<CardRow, PaymentError> {
        match method {
            MethodInput::Card(details, card) => {
                self.tokenize(details, card, Some(provider), caller).await
            }
            MethodInput::Token(token) => self.usable_card(token, caller).await,
        }
    }

    /// Creates an intent.
    pub async fn create(&self, new: NewPayment, caller: &Caller) -> Result<Payment, PaymentError> {
        let provider = new
            .provider
            .clone()
            .unwrap_or_else(|| self.default_provider.clone());
        self.provider(&provider)?;
        let card = match &new.method {
            Some(method) => Some(self.resolve_method(method, &provider, caller).await?),
            None => None,
        };
        let now = now_micros();
        let status = if card.is_some() {
            Status::RequiresConfirmation
        } else {
            Status::RequiresPaymentMethod
        };
        let row = PaymentRow {
            id: new_id("pay"),
            amount: new.amount,
            currency: new.currency,
            status: status.as_str().to_owned(),
            capture_method: new.capture_method.as_str().to_owned(),
            provider,
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
        Ok(Payment {
            row,
            card,
            attempts: Vec::new(),
            refunds: Vec::new(),
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
        Ok(Payment {
            row,
            card,
            attempts,
            refunds,
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

    /// Confirms the payment with its provider (attaching `method` first when it has none).
    /// Repeating it after the provider was unreachable re-sends the same idempotency key.
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
            let card = self
                .resolve_method(&method, &payment.row.provider, caller)
                .await?;
            let mut conn = self.db.pool().acquire().await?;
            if !store::attach_card(&mut conn, id, &card.token, now_micros()).await? {
                return Err(PaymentError::InFlight);
            }
            drop(conn);
            payment = self.get(id, caller).await?;
        }
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
        let provider = self.provider(&payment.row.provider)?.clone();
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
            provider_method: card.provider_method.clone(),
            customer_email: payment.row.customer_email.clone(),
            idempotency_key: format!("{id}:charge"),
        };
        let started = Instant::now();
        let result = provider.charge(&request).await;
        let attempt = attempt(
            &payment.row,
            "charge",
            &request.idempotency_key,
            &result.as_ref().map(|c| c.reference.clone()),
            started,
        );
        let mut tx = self.db.begin().await?;
        store::insert_attempt(&mut tx, &attempt).await?;
        let now = now_micros();
        let outcome = match result {
            Ok(charge) => {
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
            Err(ProviderError::Unavailable(reason)) => {
                tracing::warn!(payment = id, provider = provider.name(), %reason, "provider unavailable");
                store::release(&mut tx, id, now).await?;
                Err(PaymentError::Unavailable)
            }
            Err(ProviderError::Declined { code, message }) => {
                self.fail(&mut tx, id, &code, &message, now).await?;
                Err(PaymentError::Declined { code, message })
            }
            Err(ProviderError::Rejected(message)) => {
                self.fail(&mut tx, id, "provider_rejected", &message, now)
                    .await?;
                Err(PaymentError::Rejected(message))
            }
        };
        tx.commit().await?;
        outcome?;
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
            Err(ProviderError::Unavailable(_)) => Err(PaymentError::Unavailable),
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
        ProviderError::Unavailable(_) => PaymentError::Unavailable,
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
