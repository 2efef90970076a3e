//! Stripe adapter: PaymentMethods, PaymentIntents and Refunds over Stripe's REST API
//! (`https://api.stripe.com`), plus verification of the `Stripe-Signature` webhook header.
//!
//! Stripe takes `application/x-www-form-urlencoded` bodies with bracketed keys
//! (`card[number]`, `metadata[payment_id]`), so bodies are encoded here rather than with
//! reqwest's `form` feature. Every POST carries an `Idempotency-Key`: Stripe stores the first
//! answer for a key and replays it, which is what makes a retry after a timeout safe.

mod webhook;

use std::time::Duration;

use async_trait::async_trait;
use mercato_kernel::config::Secret;
use reqwest::StatusCode;
use serde::Deserialize;

use super::{
    CardDetails, Charge, ChargeRequest, Provider, ProviderError, RefundReceipt, WebhookError,
    WebhookEvent,
};

pub use webhook::{DEFAULT_WEBHOOK_TOLERANCE_SECS, verify_webhook};

/// Stripe's production API root.
pub const STRIPE_API_URL: &str = "https://api.stripe.com";

/// The Stripe provider: one HTTP client with the account's secret key.
pub struct Stripe {
    client: reqwest::Client,
    base_url: String,
    secret_key: Secret,
    webhook_secret: Option<Secret>,
}

pub use super::http::SetupError;

impl std::fmt::Debug for Stripe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stripe")
            .field("base_url", &self.base_url)
            .field("secret_key", &self.secret_key)
            .field("webhook_secret", &self.webhook_secret)
            .finish_non_exhaustive()
    }
}

impl Stripe {
    /// A client for the API at `base_url` ([`STRIPE_API_URL`], or a fake in tests), sending
    /// `secret_key` (`sk_live_…`/`sk_test_…`) as a bearer token; each call gives up after
    /// `timeout`: [`ProviderError::Unreachable`] if it could not even connect, else
    /// [`ProviderError::Unavailable`].
    pub fn new(
        base_url: &str,
        secret_key: impl Into<Secret>,
        timeout: Duration,
    ) -> Result<Self, SetupError> {
        let (client, base_url) = super::http::client("stripe", base_url, timeout)?;
        Ok(Self {
            client,
            base_url,
            secret_key: secret_key.into(),
            webhook_secret: None,
        })
    }

    /// Accepts webhooks signed with the endpoint's signing secret (`whsec_…`, one per
    /// webhook endpoint in the Stripe dashboard); without it [`Provider::webhook`] answers
    /// [`WebhookError::Unsupported`].
    pub fn with_webhook_secret(mut self, secret: impl Into<Secret>) -> Self {
        self.webhook_secret = Some(secret.into());
        self
    }

    /// POSTs `form` to `path` and decodes a 2xx answer as `T`; `what` names the operation in
    /// error messages ("creating a payment intent").
    async fn post<T: for<'de> Deserialize<'de>>(
        &self,
        what: &str,
        path: &str,
        form: &[(&str, String)],
        idempotency_key: &str,
    ) -> Result<T, ProviderError> {
        let body = serde_urlencoded::to_string(form)
            .map_err(|e| ProviderError::Rejected(format!("{what}: cannot encode the form: {e}")))?;
        let response = self
            .client
            .post(format!("{}{path}", self.base_url))
            .bearer_auth(self.secret_key.expose())
            .header("Idempotency-Key", idempotency_key)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body)
            .send()
            .await
            .map_err(|e| super::http::network_error("stripe", what, &e))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| super::http::network_error("stripe", what, &e))?;
        if !status.is_success() {
            return Err(status_error(what, status, &bytes));
        }
        // A 2xx we cannot read may still mean the operation happened: report it as
        // unavailable, so the caller repeats it with the same key and gets the answer again.
        serde_json::from_slice(&bytes).map_err(|e| {
            ProviderError::Unavailable(format!("{what}: unreadable stripe response: {e}"))
        })
    }
}

#[async_trait]
impl Provider for Stripe {
    fn name(&self) -> &'static str {
        "stripe"
    }

    /// Creates a PaymentMethod (`pm_…`). Its idempotency key is random: the trait gives none,
    /// and a key derived from the card number would leak it; a retried call at worst leaves an
    /// unused, unattached PaymentMethod behind.
    async fn tokenize(&self, card: &CardDetails) -> Result<Option<String>, ProviderError> {
        let form = [
            ("type", "card".to_owned()),
            ("card[number]", card.number.clone()),
            ("card[exp_month]", card.exp_month.to_string()),
            ("card[exp_year]", card.exp_year.to_string()),
            ("card[cvc]", card.cvc.clone()),
        ];
        let key = mercato_kernel::id::new_id("pmkey");
        let method: Object = self
            .post(
                "creating a payment method",
                "/v1/payment_methods",
                &form,
                &key,
            )
            .await?;
        Ok(Some(method.id))
    }

    async fn charge(&self, request: &ChargeRequest) -> Result<Charge, ProviderError> {
        let Some(method) = &request.provider_method else {
            return Err(ProviderError::Rejected(
                "stripe needs a payment method, but the card was not tokenized with stripe".into(),
            ));
        };
        let capture_method = if request.capture {
            "automatic"
        } else {
            "manual"
        };
        let mut form = vec![
            ("amount", request.amount.to_string()),
            ("currency", request.currency.to_ascii_lowercase()),
            ("payment_method", method.clone()),
            // Cards only: with dashboard-enabled methods Stripe would demand a `return_url`
            // for methods that redirect, which a server-side charge cannot follow.
            ("payment_method_types[0]", "card".to_owned()),
            ("confirm", "true".to_owned()),
            // 3-D Secure cannot be completed from here: make Stripe answer with a decline
            // (`authentication_required`) instead of leaving the intent in `requires_action`.
            ("error_on_requires_action", "true".to_owned()),
            ("capture_method", capture_method.to_owned()),
            ("metadata[payment_id]", request.payment_id.clone()),
        ];
        if let Some(email) = &request.customer_email {
            form.push(("receipt_email", email.clone()));
        }
        let intent: Object = self
            .post(
                "creating a payment intent",
                "/v1/payment_intents",
                &form,
                &request.idempotency_key,
            )
            .await?;
        match intent.status.as_deref() {
            Some("succeeded") => Ok(Charge {
                reference: intent.id,
                captured: true,
            }),
            Some("requires_capture") => Ok(Charge {
                reference: intent.id,
                captured: false,
            }),
            // Not final yet: asking again with the same key replays this answer, so the
            // outcome has to come from the `payment_intent.*` webhook.
            Some("processing") => Err(ProviderError::Unavailable(format!(
                "stripe payment intent {} is still processing",
                intent.id
            ))),
            other => Err(ProviderError::Rejected(format!(
                "stripe payment intent {} has unexpected status {}",
                intent.id,
                other.unwrap_or("(none)")
            ))),
        }
    }

    async fn capture(
        &self,
        reference: &str,
        amount: i64,
        idempotency_key: &str,
    ) -> Result<(), ProviderError> {
        let id = intent_id(reference)?;
        let intent: Object = self
            .post(
                &format!("capturing payment intent {id}"),
                &format!("/v1/payment_intents/{id}/capture"),
                &[("amount_to_capture", amount.to_string())],
                idempotency_key,
            )
            .await?;
        expect_status(&intent, "succeeded", "capture")
    }

    async fn cancel(&self, reference: &str, idempotency_key: &str) -> Result<(), ProviderError> {
        let id = intent_id(reference)?;
        let intent: Object = self
            .post(
                &format!("cancelling payment intent {id}"),
                &format!("/v1/payment_intents/{id}/cancel"),
                &[],
                idempotency_key,
            )
            .await?;
        expect_status(&intent, "canceled", "cancel")
    }

    async fn refund(
        &self,
        reference: &str,
        amount: i64,
        idempotency_key: &str,
    ) -> Result<RefundReceipt, ProviderError> {
        let id = intent_id(reference)?;
        let form = [
            ("payment_intent", id.to_owned()),
            ("amount", amount.to_string()),
        ];
        let refund: Object = self
            .post(
                &format!("refunding payment intent {id}"),
                "/v1/refunds",
                &form,
                idempotency_key,
            )
            .await?;
        match refund.status.as_deref() {
            Some("succeeded") => Ok(RefundReceipt {
                reference: refund.id,
                settled: true,
            }),
            // Stripe confirms these later with `refund.updated` / `charge.refund.updated`.
            Some("pending" | "requires_action") => Ok(RefundReceipt {
                reference: refund.id,
                settled: false,
            }),
            Some("failed" | "canceled") => Err(ProviderError::Declined {
                code: refund
                    .failure_reason
                    .unwrap_or_else(|| "refund_failed".to_owned()),
                message: format!("stripe refund {} failed", refund.id),
            }),
            other => Err(ProviderError::Rejected(format!(
                "stripe refund {} has unexpected status {}",
                refund.id,
                other.unwrap_or("(none)")
            ))),
        }
    }

    /// Checks `Stripe-Signature` against the endpoint secret with the default tolerance, then
    /// reads the event.
    async fn webhook(
        &self,
        headers: &axum::http::HeaderMap,
        body: &[u8],
    ) -> Result<WebhookEvent, WebhookError> {
        let Some(secret) = &self.webhook_secret else {
            return Err(WebhookError::Unsupported);
        };
        let signature = headers
            .get("stripe-signature")
            .ok_or_else(|| WebhookError::Signature("no stripe-signature header".into()))?
            .to_str()
            .map_err(|_| WebhookError::Signature("stripe-signature is not ascii".into()))?;
        let event = verify_webhook(
            body,
            signature,
            secret.expose(),
            webhook::now_unix(),
            DEFAULT_WEBHOOK_TOLERANCE_SECS,
        )?;
        webhook::read_event(event)
    }
}

/// The fields read from any Stripe object answer (PaymentMethod, PaymentIntent, Refund).
#[derive(Debug, Deserialize)]
struct Object {
    id: String,
    status: Option<String>,
    failure_reason: Option<String>,
}

/// Stripe's error envelope: `{"error": {"type", "code", "decline_code", "message"}}`.
#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error: ErrorDetail,
}

#[derive(Debug, Default, Deserialize)]
struct ErrorDetail {
    #[serde(rename = "type")]
    kind: Option<String>,
    code: Option<String>,
    decline_code: Option<String>,
    message: Option<String>,
}

/// Checks that a reference is a Stripe id before it goes into a URL path, so a corrupted
/// reference cannot address another endpoint.
fn intent_id(reference: &str) -> Result<&str, ProviderError> {
    let valid = reference.starts_with("pi_")
        && reference
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if valid {
        Ok(reference)
    } else {
        Err(ProviderError::Rejected(format!(
            "`{reference}` is not a stripe payment intent id"
        )))
    }
}

fn expect_status(intent: &Object, expected: &str, what: &str) -> Result<(), ProviderError> {
    match intent.status.as_deref() {
        Some(status) if status == expected => Ok(()),
        other => Err(ProviderError::Rejected(format!(
            "stripe {what} left payment intent {} in status {} instead of {expected}",
            intent.id,
            other.unwrap_or("(none)")
        ))),
    }
}

/// Maps a non-2xx answer: 402 is a decline; 429, 409 (a concurrent request holds the same
/// idempotency key; Stripe's own libraries retry it) and 5xx are retryable; any other status
/// means the request itself was wrong.
fn status_error(what: &str, status: StatusCode, body: &[u8]) -> ProviderError {
    let detail = serde_json::from_slice::<ErrorBody>(body)
        .unwrap_or_default()
        .error;
    let message = detail
        .message
        .clone()
        .unwrap_or_else(|| "no error message".to_owned());
    if status == StatusCode::PAYMENT_REQUIRED {
        return ProviderError::Declined {
            code: platform_decline_code(detail.decline_code, detail.code),
            message,
        };
    }
    let kind = detail.kind.as_deref().unwrap_or("unknown_error");
    let code = detail.code.as_deref().unwrap_or("no_code");
    let text = format!("{what}: stripe answered {status} ({kind}/{code}): {message}");
    if status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::CONFLICT
    {
        ProviderError::Unavailable(text)
    } else {
        ProviderError::Rejected(text)
    }
}

/// The platform's decline code for a Stripe error: the issuer's `decline_code`
/// (`insufficient_funds`, …) when there is one, else Stripe's `code`. `generic_decline` is
/// Stripe's "declined, no reason given", which the platform calls `card_declined`.
fn platform_decline_code(decline_code: Option<String>, code: Option<String>) -> String {
    match decline_code.or(code) {
        Some(code) if code != "generic_decline" => code,
        _ => "card_declined".to_owned(),
    }
}
