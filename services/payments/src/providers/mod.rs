//! Payment providers behind one trait. Each adapter speaks its provider's real HTTP API; the
//! built-in `test` provider answers from test card numbers, without a network.
//!
//! Every call carries an idempotency key derived from the payment (and the operation), so a
//! call repeated after a timeout is recognised by the provider and never charges twice.

pub mod braintree;
pub mod http;
pub mod paypal;
pub mod stripe;
pub mod test;

use std::time::Duration;

use async_trait::async_trait;

/// The card as the platform holds it after tokenization: never the number or the CVC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardRef {
    /// The platform token (`tok_…`).
    pub token: String,
    /// `visa`, `mastercard`, `amex`, `discover` or `unknown`.
    pub brand: String,
    /// Last four digits.
    pub last4: String,
    /// 1–12.
    pub exp_month: u32,
    /// Four digits.
    pub exp_year: u32,
}

/// Raw card details, alive only while a create request is handled. `Debug` never shows the
/// number or the CVC.
#[derive(Clone)]
pub struct CardDetails {
    /// Digits only, Luhn-valid.
    pub number: String,
    /// 1–12.
    pub exp_month: u32,
    /// Four digits.
    pub exp_year: u32,
    /// 3 or 4 digits.
    pub cvc: String,
}

impl std::fmt::Debug for CardDetails {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let last4 = self
            .number
            .get(self.number.len().saturating_sub(4)..)
            .unwrap_or("");
        f.debug_struct("CardDetails")
            .field("number", &format_args!("…{last4}"))
            .field("exp_month", &self.exp_month)
            .field("exp_year", &self.exp_year)
            .field("cvc", &"***")
            .finish()
    }
}

/// What a provider is asked to charge.
#[derive(Debug, Clone)]
pub struct ChargeRequest {
    /// The platform's payment id (`pay_…`), sent as metadata.
    pub payment_id: String,
    /// Minor units, > 0.
    pub amount: i64,
    /// ISO 4217, upper case.
    pub currency: String,
    /// `true`: capture at once; `false`: authorize only (capture later).
    pub capture: bool,
    /// The card.
    pub card: CardRef,
    /// What the provider itself holds for this card (e.g. a Stripe PaymentMethod id), when
    /// the adapter tokenized it with the provider at creation.
    pub provider_method: Option<String>,
    /// Buyer's email, when known.
    pub customer_email: Option<String>,
    /// Sent as the provider's idempotency key: the same key always means the same charge.
    pub idempotency_key: String,
}

/// A provider's answer to a charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    /// The provider's id for the charge (PaymentIntent id, PayPal order id, …).
    pub reference: String,
    /// Whether money was captured (else it is only authorized).
    pub captured: bool,
}

/// A provider's answer to a refund.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundReceipt {
    /// The provider's id for the refund.
    pub reference: String,
    /// `true` when final, `false` when the provider will confirm later (webhook).
    pub settled: bool,
}

/// Why a provider call did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The card or account was refused; final, retrying elsewhere does not help.
    #[error("declined ({code}): {message}")]
    Declined {
        /// Stable code: `card_declined`, `insufficient_funds`, `expired_card`, …
        code: String,
        /// The provider's words.
        message: String,
    },
    /// The provider could not be reached or failed (timeout, connection refused, 5xx, 429).
    /// The charge may or may not have happened; repeating the call with the same idempotency
    /// key finds out. Another provider may be tried.
    #[error("provider unavailable: {0}")]
    Unavailable(String),
    /// The request never reached the provider (connection refused, DNS, TLS handshake, or
    /// its circuit is open): nothing was charged, so another provider may be tried at once.
    #[error("provider unreachable: {0}")]
    Unreachable(String),
    /// The provider refused the request as malformed or not allowed (4xx other than a
    /// decline): a bug or a configuration error, not the customer's fault.
    #[error("provider rejected the request: {0}")]
    Rejected(String),
}

/// What an inbound provider webhook reports, once its signature is verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEvent {
    /// The provider's id for the event: a replayed delivery carries the same one and has no
    /// second effect.
    pub id: String,
    /// What happened.
    pub kind: WebhookKind,
}

/// The webhook events the platform acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookKind {
    /// A charge succeeded (captured), by the provider's charge reference.
    ChargeSucceeded {
        /// The provider's charge id.
        reference: String,
    },
    /// A charge failed.
    ChargeFailed {
        /// The provider's charge id.
        reference: String,
        /// Decline code.
        code: String,
        /// The provider's words.
        message: String,
    },
    /// A refund settled.
    RefundSucceeded {
        /// The provider's refund id.
        reference: String,
    },
    /// A refund failed after being accepted.
    RefundFailed {
        /// The provider's refund id.
        reference: String,
    },
    /// The buyer disputed a charge.
    Disputed {
        /// The provider's charge id.
        reference: String,
    },
    /// Anything else; acknowledged and ignored.
    Other(String),
}

/// Why a webhook was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// Missing or wrong signature, or a timestamp outside the tolerance.
    #[error("webhook signature rejected: {0}")]
    Signature(String),
    /// The body is not what the provider sends.
    #[error("malformed webhook: {0}")]
    Malformed(String),
    /// The provider does not send webhooks, or none is configured.
    #[error("webhooks are not configured for this provider")]
    Unsupported,
    /// Verifying needed the provider and it could not be reached (PayPal verifies by API).
    #[error("could not verify the webhook: {0}")]
    Unavailable(String),
}

/// One payment provider.
#[async_trait]
pub trait Provider: Send + Sync + 'static {
    /// `test`, `stripe`, `paypal`, `braintree`.
    fn name(&self) -> &'static str;

    /// Hands the card to the provider's own vault when the provider must hold it to charge
    /// later (Stripe PaymentMethods, Braintree vault); returns the provider's id for it.
    /// Called once, while the platform still has the details in memory. `None`: the
    /// provider needs nothing beyond the platform's token.
    async fn tokenize(&self, _card: &CardDetails) -> Result<Option<String>, ProviderError> {
        Ok(None)
    }

    /// Charges (or, with `capture: false`, authorizes) a card.
    async fn charge(&self, request: &ChargeRequest) -> Result<Charge, ProviderError>;

    /// Captures `amount` of an authorized charge.
    async fn capture(
        &self,
        reference: &str,
        amount: i64,
        idempotency_key: &str,
    ) -> Result<(), ProviderError>;

    /// Voids an authorized, uncaptured charge.
    async fn cancel(&self, reference: &str, idempotency_key: &str) -> Result<(), ProviderError>;

    /// Refunds `amount` of a captured charge.
    async fn refund(
        &self,
        reference: &str,
        amount: i64,
        idempotency_key: &str,
    ) -> Result<RefundReceipt, ProviderError>;

    /// Verifies an inbound webhook (signature, timestamp) and reads what it reports.
    async fn webhook(
        &self,
        _headers: &axum::http::HeaderMap,
        _body: &[u8],
    ) -> Result<WebhookEvent, WebhookError> {
        Err(WebhookError::Unsupported)
    }
}

/// Minor units as the decimal string most provider APIs take, by the currency's ISO 4217
/// exponent: 1234 EUR → `12.34`, 1234 JPY → `1234`, 1234 KWD → `1.234`.
pub fn decimal_amount(minor: i64, currency: &str) -> Result<String, ProviderError> {
    if minor <= 0 {
        return Err(ProviderError::Rejected(format!(
            "amount {minor} is not positive"
        )));
    }
    let digits = mercato_kernel::money::minor_unit_exponent(currency);
    if digits == 0 {
        return Ok(minor.to_string());
    }
    let unit = 10_i64.pow(digits);
    Ok(format!(
        "{}.{:0width$}",
        minor / unit,
        minor % unit,
        width = digits as usize
    ))
}

/// Timeout of one provider HTTP call unless configured otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
