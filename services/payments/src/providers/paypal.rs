//! PayPal adapter: Payment Method Tokens (vault v3), Orders v2 and Payments v2 over PayPal's
//! REST API (`https://api-m.paypal.com`), plus webhook verification through PayPal's
//! `verify-webhook-signature` API.
//!
//! Authentication is OAuth2 client credentials: the access token is cached until shortly
//! before it expires, and a 401 from an API call (PayPal may revoke a token early) drops it
//! and repeats the call once with a fresh one.
//!
//! Every money-moving POST carries `PayPal-Request-Id` = the platform's idempotency key:
//! PayPal stores the first answer for an id and replays it, which makes a retry after a
//! timeout safe.
//!
//! References: a captured charge is referenced by its PayPal **capture id** (what refunds,
//! capture webhooks and disputes name). An authorization is referenced as
//! `auth:{authorization_id}`, because [`Provider::capture`] returns nothing and the reference
//! cannot change after it: capturing reads the authorization's currency first, and refunding
//! an `auth:` reference finds its capture through the authorization's order (two extra
//! GETs, no state kept here, so any instance can serve any call).

use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::http::HeaderMap;
use mercato_kernel::config::Secret;
use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::{
    CardDetails, Charge, ChargeRequest, Provider, ProviderError, RefundReceipt, WebhookError,
    WebhookEvent, WebhookKind,
};

/// PayPal's production API root.
pub const PAYPAL_API_URL: &str = "https://api-m.paypal.com";

/// PayPal's sandbox API root.
pub const PAYPAL_SANDBOX_URL: &str = "https://api-m.sandbox.paypal.com";

/// Prefix of the reference of an authorized, not yet captured charge.
const AUTH_PREFIX: &str = "auth:";

/// How long before its announced expiry a token is replaced, so a call never starts with a
/// token that dies in flight.
const TOKEN_MARGIN: Duration = Duration::from_secs(60);

/// The PayPal provider: one HTTP client, the REST app's credentials and the cached token.
pub struct PayPal {
    client: reqwest::Client,
    base_url: String,
    client_id: String,
    client_secret: Secret,
    webhook_id: Option<String>,
    /// Held across a token request so that concurrent calls wait for one fetch instead of
    /// each asking PayPal for a token.
    token: Mutex<Option<AccessToken>>,
}

/// A bearer token and when to stop using it.
struct AccessToken {
    value: String,
    refresh_at: Instant,
}

pub use super::http::SetupError;

impl std::fmt::Debug for PayPal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PayPal")
            .field("base_url", &self.base_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("webhook_id", &self.webhook_id)
            .finish_non_exhaustive()
    }
}

impl PayPal {
    /// A client for the API at `base_url` ([`PAYPAL_API_URL`], [`PAYPAL_SANDBOX_URL`] or a
    /// fake in tests) with a REST app's credentials. `webhook_id` is the id PayPal gave the
    /// webhook subscription; without it webhooks are refused as unsupported. Each HTTP call
    /// gives up after `timeout` and is then reported as [`ProviderError::Unavailable`].
    pub fn new(
        base_url: &str,
        client_id: impl Into<String>,
        client_secret: impl Into<Secret>,
        webhook_id: Option<String>,
        timeout: Duration,
    ) -> Result<Self, SetupError> {
        let (client, base_url) = super::http::client("paypal", base_url, timeout)?;
        Ok(Self {
            client,
            base_url,
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            webhook_id,
            token: Mutex::new(None),
        })
    }

    /// The cached token, or a new one when none is cached or it is about to expire.
    async fn access_token(&self) -> Result<String, ProviderError> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref().filter(|t| Instant::now() < t.refresh_at) {
            return Ok(token.value.clone());
        }
        let fresh = self.fetch_token().await?;
        let value = fresh.value.clone();
        *cached = Some(fresh);
        Ok(value)
    }

    /// Drops `used` from the cache, unless another call already replaced it.
    async fn forget_token(&self, used: &str) {
        let mut cached = self.token.lock().await;
        if cached.as_ref().is_some_and(|t| t.value == used) {
            *cached = None;
        }
    }

    /// `POST /v1/oauth2/token` with the app's credentials.
    async fn fetch_token(&self) -> Result<AccessToken, ProviderError> {
        const WHAT: &str = "getting an access token";
        let response = self
            .client
            .post(format!("{}/v1/oauth2/token", self.base_url))
            .basic_auth(&self.client_id, Some(self.client_secret.expose()))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials")
            .send()
            .await
            .map_err(|e| super::http::network_error("paypal", WHAT, &e))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| super::http::network_error("paypal", WHAT, &e))?;
        if !status.is_success() {
            return Err(api_error(WHAT, status, &body));
        }
        let token: TokenResponse = serde_json::from_slice(&body).map_err(|e| {
            ProviderError::Unavailable(format!("{WHAT}: unreadable answer from paypal: {e}"))
        })?;
        let lifetime = Duration::from_secs(token.expires_in);
        // Short-lived tokens (tests, unusual configurations) are used for half their life.
        let margin = TOKEN_MARGIN.min(lifetime / 2);
        Ok(AccessToken {
            value: token.access_token,
            refresh_at: Instant::now() + (lifetime - margin),
        })
    }

    /// One API call with a bearer token; a 401 drops the token and repeats the call once.
    /// `body` is JSON text; `request_id` goes out as `PayPal-Request-Id`. An empty 2xx body
    /// decodes as JSON `null`.
    async fn call<T: DeserializeOwned>(
        &self,
        what: &str,
        method: Method,
        path: &str,
        body: Option<String>,
        request_id: Option<&str>,
    ) -> Result<T, ProviderError> {
        let url = format!("{}{path}", self.base_url);
        let mut refreshed = false;
        loop {
            let token = self.access_token().await?;
            let mut request = self
                .client
                .request(method.clone(), &url)
                .bearer_auth(&token)
                // Without it PayPal may answer a minimal order without its captures.
                .header("Prefer", "return=representation");
            if let Some(id) = request_id {
                request = request.header("PayPal-Request-Id", id);
            }
            if let Some(body) = &body {
                request = request
                    .header(CONTENT_TYPE, "application/json")
                    .body(body.clone());
            }
            let response = request
                .send()
                .await
                .map_err(|e| super::http::network_error("paypal", what, &e))?;
            let status = response.status();
            let bytes = response
                .bytes()
                .await
                .map_err(|e| super::http::network_error("paypal", what, &e))?;
            if status == StatusCode::UNAUTHORIZED && !refreshed {
                tracing::debug!(what, "paypal refused the access token, getting a new one");
                refreshed = true;
                self.forget_token(&token).await;
                continue;
            }
            if !status.is_success() {
                return Err(api_error(what, status, &bytes));
            }
            let bytes: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
            // A 2xx we cannot read may still have moved money: a retry with the same
            // request id finds out, so this is "unavailable", not "rejected".
            return serde_json::from_slice(bytes).map_err(|e| {
                ProviderError::Unavailable(format!("{what}: unreadable answer from paypal: {e}"))
            });
        }
    }

    /// The capture of an authorization (found through its order) and its currency.
    async fn capture_of(&self, authorization_id: &str) -> Result<(String, String), ProviderError> {
        let authorization: Authorization = self
            .call(
                "reading an authorization",
                Method::GET,
                &format!("/v2/payments/authorizations/{authorization_id}"),
                None,
                None,
            )
            .await?;
        let order_id = authorization
            .supplementary_data
            .and_then(|d| d.related_ids.order_id)
            .ok_or_else(|| {
                ProviderError::Rejected(format!(
                    "authorization {authorization_id} names no order to find its capture in"
                ))
            })?;
        let order: Order = self
            .call(
                "reading an order",
                Method::GET,
                &format!("/v2/checkout/orders/{}", path_id(&order_id)?),
                None,
                None,
            )
            .await?;
        order
            .purchase_units
            .into_iter()
            .filter_map(|unit| unit.payments)
            .flat_map(|payments| payments.captures)
            .find(|capture| !matches!(capture.status.as_str(), "DECLINED" | "FAILED"))
            .map(|capture| (capture.id, authorization.amount.currency_code))
            .ok_or_else(|| {
                ProviderError::Rejected(format!(
                    "authorization {authorization_id} has no capture to refund"
                ))
            })
    }
}

#[async_trait]
impl Provider for PayPal {
    fn name(&self) -> &'static str {
        "paypal"
    }

    /// Vaults the card (`POST /v3/vault/payment-tokens`): the platform keeps no card number,
    /// and PayPal charges a vaulted card by its token id.
    async fn tokenize(&self, card: &CardDetails) -> Result<Option<String>, ProviderError> {
        let body = json!({"payment_source": {"card": {
            "number": card.number,
            "expiry": format!("{:04}-{:02}", card.exp_year, card.exp_month),
            "security_code": card.cvc,
        }}});
        // The trait gives no key here; a fresh one still satisfies PayPal and a repeated
        // tokenization only creates a second, unused vault entry.
        let request_id = format!("vault-{}", uuid::Uuid::now_v7().simple());
        let token: VaultToken = self
            .call(
                "vaulting a card",
                Method::POST,
                "/v3/vault/payment-tokens",
                Some(body.to_string()),
                Some(&request_id),
            )
            .await?;
        Ok(Some(token.id))
    }

    async fn charge(&self, request: &ChargeRequest) -> Result<Charge, ProviderError> {
        let vault_id = request.provider_method.as_deref().ok_or_else(|| {
            ProviderError::Rejected(
                "the card was not vaulted with paypal when it was created".into(),
            )
        })?;
        let body = json!({
            "intent": if request.capture { "CAPTURE" } else { "AUTHORIZE" },
            "purchase_units": [{
                "custom_id": request.payment_id,
                "amount": {
                    "currency_code": request.currency,
                    "value": decimal_amount(request.amount, &request.currency)?,
                },
            }],
            "payment_source": {"card": {"vault_id": vault_id}},
        });
        let order: Order = self
            .call(
                "creating an order",
                Method::POST,
                "/v2/checkout/orders",
                Some(body.to_string()),
                Some(&request.idempotency_key),
            )
            .await?;
        order_outcome(order, request.capture)
    }

    async fn capture(
        &self,
        reference: &str,
        amount: i64,
        idempotency_key: &str,
    ) -> Result<(), ProviderError> {
        let id = authorization_id(reference)?;
        // The trait passes no currency: the authorization knows it.
        let authorization: Authorization = self
            .call(
                "reading an authorization",
                Method::GET,
                &format!("/v2/payments/authorizations/{id}"),
                None,
                None,
            )
            .await?;
        let currency = authorization.amount.currency_code;
        let body = json!({
            "amount": {"currency_code": currency, "value": decimal_amount(amount, &currency)?},
            "final_capture": true,
        });
        let capture: Payment = self
            .call(
                "capturing an authorization",
                Method::POST,
                &format!("/v2/payments/authorizations/{id}/capture"),
                Some(body.to_string()),
                Some(idempotency_key),
            )
            .await?;
        match capture.status.as_str() {
            "DECLINED" | "FAILED" => Err(declined_capture(&capture)),
            _ => Ok(()),
        }
    }

    async fn cancel(&self, reference: &str, idempotency_key: &str) -> Result<(), ProviderError> {
        let id = authorization_id(reference)?;
        let _: IgnoredAny = self
            .call(
                "voiding an authorization",
                Method::POST,
                &format!("/v2/payments/authorizations/{id}/void"),
                None,
                Some(idempotency_key),
            )
            .await?;
        Ok(())
    }

    async fn refund(
        &self,
        reference: &str,
        amount: i64,
        idempotency_key: &str,
    ) -> Result<RefundReceipt, ProviderError> {
        let (capture_id, currency) = match reference.strip_prefix(AUTH_PREFIX) {
            Some(authorization) => self.capture_of(path_id(authorization)?).await?,
            None => {
                let id = path_id(reference)?;
                let capture: Payment = self
                    .call(
                        "reading a capture",
                        Method::GET,
                        &format!("/v2/payments/captures/{id}"),
                        None,
                        None,
                    )
                    .await?;
                let currency = capture.amount.map(|a| a.currency_code).ok_or_else(|| {
                    ProviderError::Unavailable(format!("capture {id} came without its amount"))
                })?;
                (id.to_owned(), currency)
            }
        };
        let body = json!({
            "amount": {"currency_code": currency, "value": decimal_amount(amount, &currency)?},
        });
        let refund: Payment = self
            .call(
                "refunding a capture",
                Method::POST,
                &format!("/v2/payments/captures/{}/refund", path_id(&capture_id)?),
                Some(body.to_string()),
                Some(idempotency_key),
            )
            .await?;
        match refund.status.as_str() {
            "CANCELLED" | "FAILED" => Err(ProviderError::Declined {
                code: "refund_failed".into(),
                message: format!("paypal answered the refund with status {}", refund.status),
            }),
            status => Ok(RefundReceipt {
                reference: refund.id,
                settled: status == "COMPLETED",
            }),
        }
    }

    /// PayPal signs deliveries with a certificate and offers an API that checks them; asking
    /// it avoids fetching and pinning certificates here.
    async fn webhook(
        &self,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<WebhookEvent, WebhookError> {
        let Some(webhook_id) = &self.webhook_id else {
            return Err(WebhookError::Unsupported);
        };
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| WebhookError::Signature(format!("missing {name} header")))
        };
        let verification = json!({
            "auth_algo": header("paypal-auth-algo")?,
            "cert_url": header("paypal-cert-url")?,
            "transmission_id": header("paypal-transmission-id")?,
            "transmission_sig": header("paypal-transmission-sig")?,
            "transmission_time": header("paypal-transmission-time")?,
            "webhook_id": webhook_id,
        });
        let event: Value = serde_json::from_slice(body)
            .map_err(|e| WebhookError::Malformed(format!("the body is not json: {e}")))?;
        if !event.is_object() {
            return Err(WebhookError::Malformed(
                "the body is not a json object".into(),
            ));
        }
        // The signature covers the delivered bytes: the event is passed on verbatim rather
        // than re-serialized, which could reorder keys or reformat numbers.
        let mut request = verification.to_string();
        request.pop();
        request.push_str(",\"webhook_event\":");
        request.push_str(
            std::str::from_utf8(body)
                .map_err(|e| WebhookError::Malformed(format!("the body is not utf-8: {e}")))?,
        );
        request.push('}');
        // A token failure is our configuration, not the sender's: answer "try later".
        self.access_token()
            .await
            .map_err(|e| WebhookError::Unavailable(e.to_string()))?;
        // No PayPal-Request-Id: a replayed verification answer must never vouch for another
        // signature sent under the same transmission id.
        let answer: Verification = self
            .call(
                "verifying a webhook signature",
                Method::POST,
                "/v1/notifications/verify-webhook-signature",
                Some(request),
                None,
            )
            .await
            .map_err(|e| match e {
                ProviderError::Unavailable(message) | ProviderError::Unreachable(message) => {
                    WebhookError::Unavailable(message)
                }
                other => WebhookError::Signature(other.to_string()),
            })?;
        if answer.verification_status != "SUCCESS" {
            return Err(WebhookError::Signature(format!(
                "paypal answered {}",
                answer.verification_status
            )));
        }
        read_event(&event)
    }
}

/// What a verified event reports. A capture of an authorization is named `auth:{id}`, the
/// reference the platform holds for it.
fn read_event(event: &Value) -> Result<WebhookEvent, WebhookError> {
    let text = |pointer: &str| {
        event
            .pointer(pointer)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| WebhookError::Malformed(format!("the event has no {pointer}")))
    };
    let id = text("/id")?;
    let event_type = text("/event_type")?;
    let charge_reference =
        || match text("/resource/supplementary_data/related_ids/authorization_id") {
            Ok(authorization) => Ok(format!("{AUTH_PREFIX}{authorization}")),
            Err(_) => text("/resource/id"),
        };
    let kind = match event_type.as_str() {
        "PAYMENT.CAPTURE.COMPLETED" => WebhookKind::ChargeSucceeded {
            reference: charge_reference()?,
        },
        "PAYMENT.CAPTURE.DENIED" | "PAYMENT.CAPTURE.DECLINED" => WebhookKind::ChargeFailed {
            reference: charge_reference()?,
            code: "card_declined".into(),
            message: text("/summary").unwrap_or_else(|_| "paypal denied the capture".into()),
        },
        // The resource of this event is the refund.
        "PAYMENT.CAPTURE.REFUNDED" => WebhookKind::RefundSucceeded {
            reference: text("/resource/id")?,
        },
        // The seller transaction of a dispute is the capture id.
        "CUSTOMER.DISPUTE.CREATED" => WebhookKind::Disputed {
            reference: text("/resource/disputed_transactions/0/seller_transaction_id")?,
        },
        _ => WebhookKind::Other(event_type),
    };
    Ok(WebhookEvent { id, kind })
}

/// The charge an order reports, or why not.
fn order_outcome(order: Order, capture: bool) -> Result<Charge, ProviderError> {
    if order.status == "PAYER_ACTION_REQUIRED" {
        // 3-D Secure: the buyer would have to act in a browser, which a server-side charge
        // cannot offer.
        return Err(ProviderError::Declined {
            code: "authentication_required".into(),
            message: format!("paypal asks the payer to authenticate order {}", order.id),
        });
    }
    let payments = order
        .purchase_units
        .into_iter()
        .find_map(|unit| unit.payments);
    let missing = |what: &str| {
        ProviderError::Unavailable(format!("order {} came back without {what}", order.id))
    };
    if capture {
        let capture = payments
            .and_then(|p| p.captures.into_iter().next())
            .ok_or_else(|| missing("a capture"))?;
        match capture.status.as_str() {
            "DECLINED" | "FAILED" => Err(declined_capture(&capture)),
            // PENDING is captured pending review: PayPal confirms or denies it by webhook.
            _ => Ok(Charge {
                reference: capture.id,
                captured: true,
            }),
        }
    } else {
        let authorization = payments
            .and_then(|p| p.authorizations.into_iter().next())
            .ok_or_else(|| missing("an authorization"))?;
        match authorization.status.as_str() {
            "DENIED" | "VOIDED" | "EXPIRED" => Err(ProviderError::Declined {
                code: "card_declined".into(),
                message: format!("paypal answered the authorization {}", authorization.status),
            }),
            _ => Ok(Charge {
                reference: format!("{AUTH_PREFIX}{}", authorization.id),
                captured: false,
            }),
        }
    }
}

fn declined_capture(capture: &Payment) -> ProviderError {
    let reason = capture
        .status_details
        .as_ref()
        .and_then(|d| d.reason.as_deref())
        .unwrap_or("no reason given");
    ProviderError::Declined {
        code: "card_declined".into(),
        message: format!(
            "paypal {} the capture ({reason})",
            capture.status.to_lowercase()
        ),
    }
}

/// The authorization id of an `auth:` reference.
fn authorization_id(reference: &str) -> Result<&str, ProviderError> {
    let id = reference.strip_prefix(AUTH_PREFIX).ok_or_else(|| {
        ProviderError::Rejected(format!(
            "`{reference}` is not an authorization (already captured)"
        ))
    })?;
    path_id(id)
}

/// `id` when it is safe inside a URL path: PayPal ids are letters, digits and dashes.
fn path_id(id: &str) -> Result<&str, ProviderError> {
    if !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(id)
    } else {
        Err(ProviderError::Rejected(format!(
            "`{id}` is not a paypal id"
        )))
    }
}

/// `minor` units of `currency` as PayPal's decimal string: 1234 EUR → `12.34`, 1500 JPY →
/// `1500`, 1234 KWD → `1.234`.
fn decimal_amount(minor: i64, currency: &str) -> Result<String, ProviderError> {
    // PayPal takes whole units only for these, although ISO gives them two decimals.
    if matches!(currency, "HUF" | "TWD") && minor > 0 {
        return if minor % 100 == 0 {
            Ok((minor / 100).to_string())
        } else {
            Err(ProviderError::Rejected(format!(
                "paypal takes whole {currency} only, got {minor} minor units"
            )))
        };
    }
    super::decimal_amount(minor, currency)
}

/// A non-2xx answer. PayPal's error `details` may echo request values (card numbers), so
/// only names, issues and descriptions are kept.
fn api_error(what: &str, status: StatusCode, body: &[u8]) -> ProviderError {
    let error: ErrorBody = serde_json::from_slice(body).unwrap_or_default();
    // 409: a request with the same id still being processed; retrying later is right.
    if status.is_server_error()
        || matches!(
            status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::REQUEST_TIMEOUT | StatusCode::CONFLICT
        )
    {
        return ProviderError::Unavailable(format!("{what}: paypal answered {status}"));
    }
    let detail = error.details.into_iter().next().unwrap_or_default();
    let issue = detail.issue.unwrap_or_default();
    if status == StatusCode::UNPROCESSABLE_ENTITY
        && let Some(code) = decline_code(&issue)
    {
        return ProviderError::Declined {
            code: code.to_owned(),
            message: detail
                .description
                .or(error.message)
                .unwrap_or_else(|| issue.clone()),
        };
    }
    let name = error.name.or(error.error).unwrap_or_default();
    let message = detail
        .description
        .or(error.message)
        .or(error.error_description)
        .unwrap_or_default();
    let debug_id = error.debug_id.unwrap_or_default();
    ProviderError::Rejected(format!(
        "{what}: paypal answered {status} {name} {issue}: {message} (debug id {debug_id})"
    ))
}

/// The platform's code for a PayPal issue that is a refusal of the card, not of the request.
fn decline_code(issue: &str) -> Option<&'static str> {
    Some(match issue {
        "INSTRUMENT_DECLINED" | "TRANSACTION_REFUSED" | "PAYER_CANNOT_PAY" => "card_declined",
        "INSUFFICIENT_FUNDS" => "insufficient_funds",
        "CARD_EXPIRED" => "expired_card",
        _ => return None,
    })
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: u64,
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    name: Option<String>,
    message: Option<String>,
    debug_id: Option<String>,
    #[serde(default)]
    details: Vec<ErrorDetail>,
    /// OAuth errors use `error`/`error_description` instead.
    error: Option<String>,
    error_description: Option<String>,
}

#[derive(Deserialize, Default)]
struct ErrorDetail {
    issue: Option<String>,
    description: Option<String>,
}

#[derive(Deserialize)]
struct VaultToken {
    id: String,
}

#[derive(Deserialize)]
struct Order {
    id: String,
    status: String,
    #[serde(default)]
    purchase_units: Vec<PurchaseUnit>,
}

#[derive(Deserialize)]
struct PurchaseUnit {
    payments: Option<Payments>,
}

#[derive(Deserialize)]
struct Payments {
    #[serde(default)]
    captures: Vec<Payment>,
    #[serde(default)]
    authorizations: Vec<Payment>,
}

/// A capture, an authorization or a refund: the fields read here are common to them.
#[derive(Deserialize)]
struct Payment {
    id: String,
    status: String,
    amount: Option<Amount>,
    status_details: Option<StatusDetails>,
}

#[derive(Deserialize)]
struct StatusDetails {
    reason: Option<String>,
}

#[derive(Deserialize)]
struct Amount {
    currency_code: String,
}

#[derive(Deserialize)]
struct Authorization {
    amount: Amount,
    supplementary_data: Option<SupplementaryData>,
}

#[derive(Deserialize)]
struct SupplementaryData {
    related_ids: RelatedIds,
}

#[derive(Deserialize)]
struct RelatedIds {
    order_id: Option<String>,
}

#[derive(Deserialize)]
struct Verification {
    verification_status: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_amounts_with_the_currency_exponent() {
        assert_eq!(decimal_amount(1234, "EUR").unwrap(), "12.34");
        assert_eq!(decimal_amount(5, "USD").unwrap(), "0.05");
        assert_eq!(decimal_amount(1500, "JPY").unwrap(), "1500");
        assert_eq!(decimal_amount(1234, "KWD").unwrap(), "1.234");
        assert_eq!(decimal_amount(7, "BHD").unwrap(), "0.007");
    }

    #[test]
    fn sends_whole_units_of_currencies_paypal_takes_without_decimals() {
        assert_eq!(decimal_amount(150_000, "HUF").unwrap(), "1500");
        assert!(matches!(
            decimal_amount(150_050, "HUF"),
            Err(ProviderError::Rejected(_))
        ));
    }

    #[test]
    fn refuses_non_positive_amounts() {
        assert!(decimal_amount(0, "EUR").is_err());
        assert!(decimal_amount(-1, "EUR").is_err());
    }

    #[test]
    fn refuses_references_that_would_escape_the_path() {
        assert!(path_id("5O190127TN364715T").is_ok());
        assert!(path_id("../v1/oauth2/token").is_err());
        assert!(path_id("").is_err());
        assert!(authorization_id("3C679366HH908993F").is_err());
    }

    #[test]
    fn maps_declines_and_other_refusals() {
        let body = br#"{"name":"UNPROCESSABLE_ENTITY","details":[{"issue":"INSTRUMENT_DECLINED","description":"declined"}]}"#;
        assert_eq!(
            api_error("x", StatusCode::UNPROCESSABLE_ENTITY, body),
            ProviderError::Declined {
                code: "card_declined".into(),
                message: "declined".into()
            }
        );
        let body = br#"{"name":"UNPROCESSABLE_ENTITY","details":[{"issue":"DECIMAL_PRECISION"}]}"#;
        assert!(matches!(
            api_error("x", StatusCode::UNPROCESSABLE_ENTITY, body),
            ProviderError::Rejected(_)
        ));
        assert!(matches!(
            api_error("x", StatusCode::SERVICE_UNAVAILABLE, b"<html>"),
            ProviderError::Unavailable(_)
        ));
        assert!(matches!(
            api_error("x", StatusCode::TOO_MANY_REQUESTS, b""),
            ProviderError::Unavailable(_)
        ));
    }

    #[test]
    fn names_a_capture_of_an_authorization_by_the_authorization() {
        let event = json!({"id": "WH-1", "event_type": "PAYMENT.CAPTURE.COMPLETED", "resource": {
            "id": "CAP1", "supplementary_data": {"related_ids": {"order_id": "O1", "authorization_id": "AUTH1"}}}});
        assert_eq!(
            read_event(&event).unwrap().kind,
            WebhookKind::ChargeSucceeded {
                reference: "auth:AUTH1".into()
            }
        );
    }
}
