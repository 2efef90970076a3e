//! HTTP handlers of the payments service.
//!
//! Any signed-in caller creates and processes their own payments and sees only those; staff
//! see all, and capture and refund. Every POST honours `Idempotency-Key`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use chrono::Datelike;
use mercato_kernel::auth::{Claims, RequireRole, Role, Staff};
use mercato_kernel::error::Problem;
use mercato_kernel::id::parse_id;
use mercato_kernel::idempotency::{self, Idempotency};
use mercato_kernel::money::Currency;
use mercato_kernel::openapi::BearerAuth;
use mercato_kernel::time::rfc3339;
use mercato_kernel::{ApiError, Config, FieldError, Json, Path};
use serde::{Deserialize, Serialize};

use crate::domain::{self, CaptureMethod, CardProblem, MAX_AMOUNT, Status};
use crate::engine::{
    Caller, Engine, MethodInput, NewPayment, Payment, PaymentError, WebhookFailure, WebhookOutcome,
};
use crate::providers::WebhookError;
use crate::providers::{CardDetails, CardRef};
use crate::risk::{Decision, Reason};
use crate::store::{self, AttemptRow, BlockRow, CardRow, RefundRow};

/// State every handler gets.
#[derive(Clone)]
pub struct AppState {
    /// The payment operations.
    pub engine: Engine,
    /// Platform configuration.
    pub config: Arc<Config>,
}

/// Every payments route.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/payments", post(create_payment).get(list_payments))
        .route("/api/v1/payments/{id}", get(get_payment))
        .route("/api/v1/payments/{id}/process", post(process_payment))
        .route("/api/v1/payments/{id}/capture", post(capture_payment))
        .route("/api/v1/payments/{id}/cancel", post(cancel_payment))
        .route("/api/v1/payments/{id}/refund", post(refund_payment))
        .route("/api/v1/payments/{id}/review", post(review_payment))
        .route("/api/v1/payment-methods", post(create_payment_method))
        .route("/api/v1/payment-methods/{token}", get(get_payment_method))
        .route(
            "/api/v1/payments/risk/blocklist",
            get(list_blocklist).post(add_to_blocklist),
        )
        .route(
            "/api/v1/payments/risk/blocklist/{kind}/{value}",
            axum::routing::delete(remove_from_blocklist),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            Idempotency::new(state.engine.db().clone()),
            idempotency::layer,
        ))
        // Providers retry webhooks themselves and dedupe by event id; they send no key.
        .route("/api/v1/webhooks/{provider}", post(receive_webhook))
        .route(
            "/api/v1/payments/webhooks/{provider}",
            post(receive_webhook),
        )
        .route("/api/v1/analytics", get(analytics))
        .route("/api/v1/payments/analytics", get(analytics))
        .with_state(state)
}

/// The service's OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        create_payment,
        list_payments,
        get_payment,
        process_payment,
        capture_payment,
        cancel_payment,
        refund_payment,
        review_payment,
        create_payment_method,
        get_payment_method,
        list_blocklist,
        add_to_blocklist,
        remove_from_blocklist,
        receive_webhook,
        analytics
    ),
    components(schemas(
        Problem,
        PaymentRequest,
        MethodRequest,
        CardRequest,
        PaymentResponse,
        CardResponse,
        StoredCardResponse,
        AttemptResponse,
        RefundResponse,
        ProcessRequest,
        PaymentMethodRequest,
        CaptureRequest,
        RefundRequest,
        Status,
        CaptureMethod,
        RiskResponse,
        Reason,
        Decision,
        ReviewRequest,
        BlockRequest,
        BlockResponse,
        crate::reports::Report,
        crate::reports::Bucket,
        crate::reports::CurrencyFigures
    )),
    modifiers(&BearerAuth),
    tags((name = "payments", description = "Payment intents, captures and refunds"))
)]
pub struct ApiDoc;

impl From<PaymentError> for ApiError {
    fn from(err: PaymentError) -> Self {
        match err {
            PaymentError::NotFound => ApiError::not_found("payment"),
            PaymentError::UnknownToken => ApiError::invalid_field(
                "payment_method.token",
                "unknown_token",
                "no such payment method",
            ),
            PaymentError::UnknownProvider(name) => ApiError::invalid_field(
                "provider",
                "unknown_provider",
                format!("`{name}` is not a configured provider"),
            ),
            e @ PaymentError::IllegalTransition { .. } => {
                ApiError::conflict("illegal_transition", e.to_string())
            }
            e @ PaymentError::InFlight => {
                ApiError::conflict("payment_in_flight", e.to_string()).with_retry_after(1)
            }
            PaymentError::AmountTooLarge(detail) => ApiError::conflict("amount_too_large", detail),
            PaymentError::Declined { code, message } => {
                ApiError::new(StatusCode::PAYMENT_REQUIRED, "payment_declined", message)
                    .with_extension("decline_code", code)
            }
            e @ PaymentError::Unavailable => ApiError::new(
                StatusCode::BAD_GATEWAY,
                "provider_unavailable",
                format!("{e}; repeat the request (with the same Idempotency-Key) to retry"),
            )
            .with_retry_after(2),
            PaymentError::Rejected(message) => {
                ApiError::new(StatusCode::BAD_GATEWAY, "provider_rejected", message)
            }
            e @ PaymentError::Unreachable => ApiError::new(
                StatusCode::BAD_GATEWAY,
                "provider_unavailable",
                e.to_string(),
            )
            .with_retry_after(2),
            e @ PaymentError::Blocked => ApiError::new(
                StatusCode::PAYMENT_REQUIRED,
                "payment_blocked",
                e.to_string(),
            ),
            PaymentError::Db(e) => e.into(),
            PaymentError::Store(e) => e.into(),
            PaymentError::Bus(e) => ApiError::internal(e),
        }
    }
}

fn caller(claims: &Claims) -> Caller {
    Caller {
        id: claims.sub.clone(),
        staff: claims.has_role(Role::Staff),
    }
}

/// A card as typed by the buyer. Never stored, logged or sent in an event.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CardRequest {
    /// 12 to 19 digits (spaces and dashes allowed), Luhn-valid.
    pub number: String,
    /// 1–12.
    pub exp_month: u32,
    /// Four digits (two are read as 20xx).
    pub exp_year: u32,
    /// 3 digits (4 for American Express).
    pub cvc: String,
}

/// How to pay: `{"type": "card", "card": {…}}` or `{"type": "token", "token": "tok_…"}`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum MethodRequest {
    /// Raw card details, tokenized at once.
    Card {
        /// The card.
        card: CardRequest,
    },
    /// A token from `POST /api/v1/payment-methods`.
    Token {
        /// `tok_…`.
        token: String,
    },
}

fn parse_method(method: MethodRequest, errors: &mut Vec<FieldError>) -> Option<MethodInput> {
    match method {
        MethodRequest::Token { token } => {
            if parse_id("tok", &token, "payment_method.token").is_err() {
                errors.push(FieldError::new(
                    "payment_method.token",
                    "invalid_id",
                    "expected an id starting with `tok_`",
                ));
                return None;
            }
            Some(MethodInput::Token(token))
        }
        MethodRequest::Card { card } => {
            let field = |name: &str| format!("payment_method.card.{name}");
            let Some(number) = domain::card_digits(&card.number) else {
                errors.push(FieldError::new(
                    field("number"),
                    "invalid_card_number",
                    "not a valid card number",
                ));
                return None;
            };
            let brand = domain::brand(&number);
            let today = chrono::Utc::now();
            let now = (u32::try_from(today.year()).unwrap_or(0), today.month());
            match domain::check_card(brand, card.exp_month, card.exp_year, &card.cvc, now) {
                Ok(exp_year) => {
                    let last4 = number
                        .get(number.len() - 4..)
                        .unwrap_or_default()
                        .to_owned();
                    let reference = CardRef {
                        token: String::new(),
                        brand: brand.to_owned(),
                        last4,
                        exp_month: card.exp_month,
                        exp_year,
                    };
                    let details = CardDetails {
                        number,
                        exp_month: card.exp_month,
                        exp_year,
                        cvc: card.cvc,
                    };
                    Some(MethodInput::Card(details, reference))
                }
                Err(problem) => {
                    let (name, code, message) = match problem {
                        CardProblem::Expired => {
                            ("exp_year", "expired_card", "the card has expired")
                        }
                        CardProblem::Expiry => {
                            ("exp_month", "invalid_expiry", "not a valid expiry")
                        }
                        CardProblem::Cvc => ("cvc", "invalid_cvc", "not a valid security code"),
                        CardProblem::Number => {
                            ("number", "invalid_card_number", "not a valid card number")
                        }
                    };
                    errors.push(FieldError::new(field(name), code, message));
                    None
                }
            }
        }
    }
}

/// A payment to create.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentRequest {
    /// Minor units, 1 to 10^12.
    pub amount: i64,
    /// ISO 4217, upper case.
    pub currency: String,
    /// How to pay; can also be given to `process`.
    pub payment_method: Option<MethodRequest>,
    /// Buyer's email, for receipts and risk checks.
    pub customer_email: Option<String>,
    /// `automatic` (default) or `manual`.
    pub capture_method: Option<CaptureMethod>,
    /// Provider name; `PAYMENTS_DEFAULT_PROVIDER` when absent.
    pub provider: Option<String>,
    /// Up to 20 string pairs (keys ≤ 40, values ≤ 500 characters).
    pub metadata: Option<BTreeMap<String, String>>,
    /// Billing country (ISO 3166-1 alpha-2), for risk checks.
    pub billing_country: Option<String>,
    /// Shipping country, for risk checks.
    pub shipping_country: Option<String>,
}

/// A card as stored.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CardResponse {
    /// `tok_…`: pay with it again.
    pub token: String,
    /// Card network.
    pub brand: String,
    /// Last four digits.
    pub last4: String,
    /// Expiry month.
    pub exp_month: i64,
    /// Expiry year.
    pub exp_year: i64,
}

impl From<CardRow> for CardResponse {
    fn from(c: CardRow) -> Self {
        Self {
            token: c.token,
            brand: c.brand,
            last4: c.last4,
            exp_month: c.exp_month,
            exp_year: c.exp_year,
        }
    }
}

/// One call made to a provider.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AttemptResponse {
    /// `att_…`.
    pub id: String,
    /// `charge`, `capture`, `cancel` or `refund`.
    pub operation: String,
    /// Provider called.
    pub provider: String,
    /// `succeeded`, `declined`, `unavailable` or `rejected`.
    pub outcome: String,
    /// Decline code.
    pub code: Option<String>,
    /// The provider's words.
    pub message: Option<String>,
    /// The provider's id for what it did.
    pub reference: Option<String>,
    /// How long the call took.
    pub duration_ms: i64,
    /// RFC 3339.
    pub created_at: String,
}

impl From<AttemptRow> for AttemptResponse {
    fn from(a: AttemptRow) -> Self {
        Self {
            id: a.id,
            operation: a.operation,
            provider: a.provider,
            outcome: a.outcome,
            code: a.code,
            message: a.message,
            reference: a.reference,
            duration_ms: a.duration_ms,
            created_at: rfc3339(a.created_at),
        }
    }
}

/// A refund.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RefundResponse {
    /// `re_…`.
    pub id: String,
    /// Minor units.
    pub amount: i64,
    /// Why.
    pub reason: Option<String>,
    /// `pending`, `succeeded` or `failed`.
    pub status: String,
    /// RFC 3339.
    pub created_at: String,
}

impl From<RefundRow> for RefundResponse {
    fn from(r: RefundRow) -> Self {
        Self {
            id: r.id,
            amount: r.amount,
            reason: r.reason,
            status: r.status,
            created_at: rfc3339(r.created_at),
        }
    }
}

/// A payment intent.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PaymentResponse {
    /// `pay_…`.
    pub id: String,
    /// Minor units.
    pub amount: i64,
    /// ISO 4217.
    pub currency: String,
    /// Where it is in its lifecycle.
    pub status: Status,
    /// `automatic` or `manual`.
    pub capture_method: String,
    /// Provider.
    pub provider: String,
    /// Authorized, not yet captured.
    pub amount_capturable: i64,
    /// Captured.
    pub amount_captured: i64,
    /// Refunded (or being refunded).
    pub amount_refunded: i64,
    /// The card.
    pub payment_method: Option<CardResponse>,
    /// Buyer's email.
    pub customer_email: Option<String>,
    /// Why it failed.
    pub failure_code: Option<String>,
    /// The provider's words.
    pub failure_message: Option<String>,
    /// What the creator attached.
    pub metadata: BTreeMap<String, String>,
    /// Every provider call, oldest first.
    pub attempts: Vec<AttemptResponse>,
    /// Refunds, oldest first.
    pub refunds: Vec<RefundResponse>,
    /// The risk assessment, once processed.
    pub risk: Option<RiskResponse>,
    /// Whether the buyer disputed the charge.
    pub disputed: bool,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

/// How risky the payment looked.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RiskResponse {
    /// 0–100.
    pub score: i64,
    /// `allow`, `review` or `block`.
    pub decision: String,
    /// Every rule that fired.
    pub reasons: Vec<Reason>,
    /// A reviewer's `approved` or `rejected`.
    pub review_decision: Option<String>,
    /// Who reviewed it.
    pub reviewed_by: Option<String>,
}

impl From<Payment> for PaymentResponse {
    fn from(p: Payment) -> Self {
        let status = p.status();
        let risk = p.risk.risk_score.map(|score| RiskResponse {
            score,
            decision: p.risk.risk_decision.clone().unwrap_or_default(),
            reasons: p
                .risk
                .risk_reasons
                .as_deref()
                .and_then(|r| serde_json::from_str(r).ok())
                .unwrap_or_default(),
            review_decision: p.risk.review_decision.clone(),
            reviewed_by: p.risk.reviewed_by.clone(),
        });
        let disputed = p.risk.disputed == 1;
        let r = p.row;
        Self {
            id: r.id,
            amount: r.amount,
            currency: r.currency,
            status,
            capture_method: r.capture_method,
            provider: r.provider,
            amount_capturable: r.amount_capturable,
            amount_captured: r.amount_captured,
            amount_refunded: r.amount_refunded,
            payment_method: p.card.map(Into::into),
            customer_email: r.customer_email,
            failure_code: r.failure_code,
            failure_message: r.failure_message,
            metadata: serde_json::from_str(&r.metadata).unwrap_or_default(),
            attempts: p.attempts.into_iter().map(Into::into).collect(),
            refunds: p.refunds.into_iter().map(Into::into).collect(),
            risk,
            disputed,
            created_at: rfc3339(r.created_at),
            updated_at: rfc3339(r.updated_at),
        }
    }
}

fn country(field: &str, raw: Option<String>, errors: &mut Vec<FieldError>) -> Option<String> {
    let raw = raw?;
    if raw.len() == 2 && raw.chars().all(|c| c.is_ascii_alphabetic()) {
        Some(raw.to_ascii_uppercase())
    } else {
        errors.push(FieldError::new(
            field,
            "invalid",
            "an ISO 3166-1 alpha-2 code",
        ));
        None
    }
}

/// The buyer's address as the gateway saw it: the last `X-Forwarded-For` entry, the one the
/// gateway appended. Earlier entries come from the client and could be anything, which would
/// let a fraudster step around IP velocity checks.
fn client_ip(headers: &HeaderMap) -> Option<String> {
    let last = headers
        .get("x-forwarded-for")?
        .to_str()
        .ok()?
        .rsplit(',')
        .next()?
        .trim();
    last.parse::<std::net::IpAddr>()
        .ok()
        .map(|ip| ip.to_string())
}

fn parse_payment(req: PaymentRequest, ip: Option<String>) -> Result<NewPayment, ApiError> {
    let mut errors = Vec::new();
    let billing_country = country("billing_country", req.billing_country, &mut errors);
    let shipping_country = country("shipping_country", req.shipping_country, &mut errors);
    if !(1..=MAX_AMOUNT).contains(&req.amount) {
        errors.push(FieldError::new(
            "amount",
            "out_of_range",
            format!("1 to {MAX_AMOUNT} minor units"),
        ));
    }
    let currency = Currency::parse(&req.currency)
        .ok()
        .filter(|c| mercato_kernel::money::is_iso4217(c.as_str()));
    if currency.is_none() {
        errors.push(FieldError::new(
            "currency",
            "unknown_currency",
            "an ISO 4217 code in upper case, e.g. EUR",
        ));
    }
    let customer_email = req.customer_email.map(|e| e.trim().to_ascii_lowercase());
    if customer_email.as_ref().is_some_and(|e| {
        e.len() > 254 || !e.contains('@') || e.starts_with('@') || e.ends_with('@')
    }) {
        errors.push(FieldError::new(
            "customer_email",
            "invalid",
            "not an email address",
        ));
    }
    let metadata = req.metadata.unwrap_or_default();
    if metadata.len() > 20
        || metadata
            .iter()
            .any(|(k, v)| k.is_empty() || k.chars().count() > 40 || v.chars().count() > 500)
    {
        errors.push(FieldError::new(
            "metadata",
            "invalid",
            "up to 20 pairs, keys 1–40 and values ≤ 500 characters",
        ));
    }
    let method = req
        .payment_method
        .and_then(|m| parse_method(m, &mut errors));
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    Ok(NewPayment {
        amount: req.amount,
        currency: req.currency,
        method,
        customer_email,
        capture_method: req.capture_method.unwrap_or(CaptureMethod::Automatic),
        provider: req.provider,
        metadata,
        ip,
        billing_country,
        shipping_country,
    })
}

/// Create a payment intent.
#[utoipa::path(
    post, path = "/api/v1/payments", tag = "payments",
    request_body = PaymentRequest,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, body = PaymentResponse), (status = 422, body = Problem)),
    security(("bearer" = []))
)]
async fn create_payment(
    State(state): State<AppState>,
    claims: Claims,
    headers: HeaderMap,
    Json(req): Json<PaymentRequest>,
) -> Result<(StatusCode, axum::Json<PaymentResponse>), ApiError> {
    let new = parse_payment(req, client_ip(&headers))?;
    let payment = state.engine.create(new, &caller(&claims)).await?;
    Ok((StatusCode::CREATED, axum::Json(payment.into())))
}

fn payment_id(id: &str) -> Result<(), ApiError> {
    parse_id("pay", id, "id").map(drop)
}

/// A payment with its attempts and refunds.
#[utoipa::path(
    get, path = "/api/v1/payments/{id}", tag = "payments",
    params(("id" = String, Path, description = "`pay_…`")),
    responses((status = 200, body = PaymentResponse), (status = 404, body = Problem)),
    security(("bearer" = []))
)]
async fn get_payment(
    State(state): State<AppState>,
    claims: Claims,
    Path(id): Path<String>,
) -> Result<axum::Json<PaymentResponse>, ApiError> {
    payment_id(&id)?;
    Ok(axum::Json(
        state.engine.get(&id, &caller(&claims)).await?.into(),
    ))
}

/// `?status=&limit=` of the payment list.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    /// Only payments in this status (e.g. `requires_review`).
    pub status: Option<String>,
    /// How many, 1 to 100 (default 50).
    pub limit: Option<i64>,
}

/// The newest payments, optionally in one status (staff).
#[utoipa::path(
    get, path = "/api/v1/payments", tag = "payments",
    params(ListQuery),
    responses((status = 200, body = [PaymentResponse]), (status = 422, body = Problem)),
    security(("bearer" = []))
)]
async fn list_payments(
    State(state): State<AppState>,
    RequireRole(claims, _): RequireRole<Staff>,
    mercato_kernel::Query(query): mercato_kernel::Query<ListQuery>,
) -> Result<axum::Json<Vec<PaymentResponse>>, ApiError> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::invalid_field("limit", "out_of_range", "1 to 100"));
    }
    let status = query
        .status
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let ids = store::recent_payments(
        &mut *state.engine.db().pool().acquire().await?,
        status,
        limit,
    )
    .await?;
    let caller = caller(&claims);
    let mut payments = Vec::with_capacity(ids.len());
    for id in ids {
        payments.push(state.engine.get(&id, &caller).await?.into());
    }
    Ok(axum::Json(payments))
}

/// Body of `process`: a payment method when the intent has none yet.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProcessRequest {
    /// How to pay.
    pub payment_method: Option<MethodRequest>,
}

/// Confirm the payment with its provider. A `502 provider_unavailable` leaves it
/// `processing`: repeat the request to retry; the provider sees the same idempotency key and
/// never charges twice.
#[utoipa::path(
    post, path = "/api/v1/payments/{id}/process", tag = "payments",
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = Option<ProcessRequest>,
    responses(
        (status = 200, body = PaymentResponse),
        (status = 402, description = "Declined; the payment failed", body = Problem),
        (status = 409, description = "Illegal transition, or another request is processing it", body = Problem),
        (status = 502, description = "Provider unavailable; retry", body = Problem),
    ),
    security(("bearer" = []))
)]
async fn process_payment(
    State(state): State<AppState>,
    claims: Claims,
    Path(id): Path<String>,
    body: Option<Json<ProcessRequest>>,
) -> Result<axum::Json<PaymentResponse>, ApiError> {
    payment_id(&id)?;
    let mut errors = Vec::new();
    let method = body
        .and_then(|Json(b)| b.payment_method)
        .and_then(|m| parse_method(m, &mut errors));
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let payment = state.engine.process(&id, method, &caller(&claims)).await?;
    Ok(axum::Json(payment.into()))
}

/// Body of `capture`.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CaptureRequest {
    /// Minor units; everything authorized when absent. The rest is released.
    pub amount: Option<i64>,
}

/// Capture an authorized payment, fully or partly (staff).
#[utoipa::path(
    post, path = "/api/v1/payments/{id}/capture", tag = "payments",
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = Option<CaptureRequest>,
    responses((status = 200, body = PaymentResponse), (status = 409, body = Problem)),
    security(("bearer" = []))
)]
async fn capture_payment(
    State(state): State<AppState>,
    RequireRole(claims, _): RequireRole<Staff>,
    Path(id): Path<String>,
    body: Option<Json<CaptureRequest>>,
) -> Result<axum::Json<PaymentResponse>, ApiError> {
    payment_id(&id)?;
    let amount = body.and_then(|Json(b)| b.amount);
    if amount.is_some_and(|a| a <= 0) {
        return Err(ApiError::invalid_field(
            "amount",
            "out_of_range",
            "a positive amount",
        ));
    }
    let payment = state.engine.capture(&id, amount, &caller(&claims)).await?;
    Ok(axum::Json(payment.into()))
}

/// Cancel a payment before money moved (voids an authorization).
#[utoipa::path(
    post, path = "/api/v1/payments/{id}/cancel", tag = "payments",
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = PaymentResponse), (status = 409, body = Problem)),
    security(("bearer" = []))
)]
async fn cancel_payment(
    State(state): State<AppState>,
    claims: Claims,
    Path(id): Path<String>,
) -> Result<axum::Json<PaymentResponse>, ApiError> {
    payment_id(&id)?;
    Ok(axum::Json(
        state.engine.cancel(&id, &caller(&claims)).await?.into(),
    ))
}

/// Body of `refund`.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundRequest {
    /// Minor units; everything not yet refunded when absent.
    pub amount: Option<i64>,
    /// Why, ≤ 200 characters.
    pub reason: Option<String>,
}

/// Refund a succeeded payment, fully or partly; several refunds never exceed what was
/// captured (staff).
#[utoipa::path(
    post, path = "/api/v1/payments/{id}/refund", tag = "payments",
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = Option<RefundRequest>,
    responses((status = 201, body = RefundResponse), (status = 409, body = Problem)),
    security(("bearer" = []))
)]
async fn refund_payment(
    State(state): State<AppState>,
    RequireRole(claims, _): RequireRole<Staff>,
    Path(id): Path<String>,
    body: Option<Json<RefundRequest>>,
) -> Result<(StatusCode, axum::Json<RefundResponse>), ApiError> {
    payment_id(&id)?;
    let req = body.map(|Json(b)| b).unwrap_or_default();
    if req.amount.is_some_and(|a| !(1..=MAX_AMOUNT).contains(&a)) {
        return Err(ApiError::invalid_field(
            "amount",
            "out_of_range",
            "a positive amount",
        ));
    }
    if req.reason.as_ref().is_some_and(|r| r.chars().count() > 200) {
        return Err(ApiError::invalid_field(
            "reason",
            "too_long",
            "at most 200 characters",
        ));
    }
    let (_, refund) = state
        .engine
        .refund(&id, req.amount, req.reason, &caller(&claims))
        .await?;
    Ok((StatusCode::CREATED, axum::Json(refund.into())))
}

/// Body of `POST /api/v1/payment-methods`: `{"type": "card", "card": {…}}`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentMethodRequest {
    /// `card`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The card.
    pub card: CardRequest,
}

/// Tokenize a card: answers a `tok_…` to pay with, plus brand, last four and expiry.
#[utoipa::path(
    post, path = "/api/v1/payment-methods", tag = "payments",
    request_body = PaymentMethodRequest,
    responses((status = 201, body = CardResponse), (status = 422, body = Problem)),
    security(("bearer" = []))
)]
async fn create_payment_method(
    State(state): State<AppState>,
    claims: Claims,
    Json(req): Json<PaymentMethodRequest>,
) -> Result<(StatusCode, axum::Json<CardResponse>), ApiError> {
    if req.kind != "card" {
        return Err(ApiError::invalid_field(
            "type",
            "invalid",
            "only `card` can be tokenized",
        ));
    }
    let mut errors = Vec::new();
    let method = parse_method(MethodRequest::Card { card: req.card }, &mut errors);
    let Some(MethodInput::Card(details, card)) = method else {
        return Err(ApiError::validation(errors));
    };
    let row = state
        .engine
        .tokenize(&details, &card, &caller(&claims))
        .await?;
    Ok((StatusCode::CREATED, axum::Json(row.into())))
}

/// A stored card and whose it is.
#[derive(Serialize, utoipa::ToSchema)]
pub struct StoredCardResponse {
    /// The card.
    #[serde(flatten)]
    pub card: CardResponse,
    /// Who tokenized it (`usr_…`, or `svc_…` for a service).
    pub owner: String,
}

/// A card token's details: the owner's own, or any for staff (orders checks with it that a
/// buyer pays with a card of theirs).
#[utoipa::path(
    get, path = "/api/v1/payment-methods/{token}", tag = "payments",
    params(("token" = String, Path)),
    responses((status = 200, body = StoredCardResponse), (status = 404, body = Problem)),
    security(("bearer" = []))
)]
async fn get_payment_method(
    State(state): State<AppState>,
    claims: Claims,
    Path(token): Path<String>,
) -> Result<axum::Json<StoredCardResponse>, ApiError> {
    parse_id("tok", &token, "token")?;
    let row = state
        .engine
        .card(&token, &caller(&claims))
        .await
        .map_err(|e| match e {
            PaymentError::UnknownToken => ApiError::not_found("payment method"),
            other => other.into(),
        })?;
    let owner = row.owner.clone();
    Ok(axum::Json(StoredCardResponse {
        card: row.into(),
        owner,
    }))
}

/// A staff decision on a payment held by risk checks.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewRequest {
    /// `approve` (charge it now) or `reject` (fail it).
    pub decision: String,
}

/// Approve or reject a payment held for review (staff).
#[utoipa::path(
    post, path = "/api/v1/payments/{id}/review", tag = "payments",
    params(("id" = String, Path)),
    request_body = ReviewRequest,
    responses(
        (status = 200, body = PaymentResponse),
        (status = 409, description = "Not waiting for a review", body = Problem),
    ),
    security(("bearer" = []))
)]
async fn review_payment(
    State(state): State<AppState>,
    RequireRole(claims, _): RequireRole<Staff>,
    Path(id): Path<String>,
    Json(req): Json<ReviewRequest>,
) -> Result<axum::Json<PaymentResponse>, ApiError> {
    payment_id(&id)?;
    let approve = match req.decision.as_str() {
        "approve" => true,
        "reject" => false,
        _ => {
            return Err(ApiError::invalid_field(
                "decision",
                "invalid",
                "`approve` or `reject`",
            ));
        }
    };
    let payment = state.engine.review(&id, approve, &caller(&claims)).await?;
    Ok(axum::Json(payment.into()))
}

/// A blocklist entry to add.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BlockRequest {
    /// `email`, `email_domain`, `ip` or `card` (a card's fingerprint is found by its token).
    pub kind: String,
    /// The email, domain or IP; for `card`, a `tok_…` of that card.
    pub value: String,
    /// Why, ≤ 200 characters.
    pub reason: Option<String>,
}

/// A blocklist entry.
#[derive(Serialize, utoipa::ToSchema)]
pub struct BlockResponse {
    /// `email`, `email_domain`, `ip` or `card`.
    pub kind: String,
    /// What is blocked (a card as its fingerprint).
    pub value: String,
    /// Why.
    pub reason: Option<String>,
    /// Who added it.
    pub created_by: String,
    /// RFC 3339.
    pub created_at: String,
}

impl From<BlockRow> for BlockResponse {
    fn from(b: BlockRow) -> Self {
        Self {
            kind: b.kind,
            value: b.value,
            reason: b.reason,
            created_by: b.created_by,
            created_at: rfc3339(b.created_at),
        }
    }
}

/// The risk blocklist (staff).
#[utoipa::path(
    get, path = "/api/v1/payments/risk/blocklist", tag = "payments",
    responses((status = 200, body = [BlockResponse])),
    security(("bearer" = []))
)]
async fn list_blocklist(
    State(state): State<AppState>,
    _: RequireRole<Staff>,
) -> Result<axum::Json<Vec<BlockResponse>>, ApiError> {
    let rows = store::blocklist(&mut *state.engine.db().pool().acquire().await?).await?;
    Ok(axum::Json(rows.into_iter().map(Into::into).collect()))
}

/// Block an email, a domain, an IP or a card (staff).
#[utoipa::path(
    post, path = "/api/v1/payments/risk/blocklist", tag = "payments",
    request_body = BlockRequest,
    responses((status = 201, body = BlockResponse), (status = 422, body = Problem)),
    security(("bearer" = []))
)]
async fn add_to_blocklist(
    State(state): State<AppState>,
    RequireRole(claims, _): RequireRole<Staff>,
    Json(req): Json<BlockRequest>,
) -> Result<(StatusCode, axum::Json<BlockResponse>), ApiError> {
    let value = req.value.trim().to_ascii_lowercase();
    let mut conn = state.engine.db().pool().acquire().await?;
    let value = match req.kind.as_str() {
        "email" if value.contains('@') && value.len() <= 254 => value,
        "email_domain" if !value.is_empty() && value.len() <= 253 && !value.contains('@') => value,
        "ip" if value.parse::<std::net::IpAddr>().is_ok() => value,
        "card" => store::find_card(&mut conn, req.value.trim())
            .await?
            .map(|card| card.fingerprint)
            .ok_or_else(|| {
                ApiError::invalid_field("value", "unknown_token", "no such card token")
            })?,
        "email" | "email_domain" | "ip" => {
            return Err(ApiError::invalid_field(
                "value",
                "invalid",
                format!("not a valid {}", req.kind),
            ));
        }
        _ => {
            return Err(ApiError::invalid_field(
                "kind",
                "invalid",
                "`email`, `email_domain`, `ip` or `card`",
            ));
        }
    };
    if req.reason.as_ref().is_some_and(|r| r.chars().count() > 200) {
        return Err(ApiError::invalid_field(
            "reason",
            "too_long",
            "at most 200 characters",
        ));
    }
    let row = BlockRow {
        kind: req.kind,
        value,
        reason: req.reason,
        created_by: claims.sub.clone(),
        created_at: mercato_store::now_micros(),
    };
    store::insert_block(&mut conn, &row).await?;
    Ok((StatusCode::CREATED, axum::Json(row.into())))
}

/// Remove a blocklist entry (staff).
#[utoipa::path(
    delete, path = "/api/v1/payments/risk/blocklist/{kind}/{value}", tag = "payments",
    params(("kind" = String, Path), ("value" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)),
    security(("bearer" = []))
)]
async fn remove_from_blocklist(
    State(state): State<AppState>,
    _: RequireRole<Staff>,
    Path((kind, value)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let mut conn = state.engine.db().pool().acquire().await?;
    if store::delete_block(&mut conn, &kind, &value.to_ascii_lowercase()).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("blocklist entry"))
    }
}

/// Inbound webhook of a provider (`stripe`, `paypal`, `braintree`): verified by the
/// provider's own signature scheme; a replayed delivery answers 200 and does nothing.
#[utoipa::path(
    post, path = "/api/v1/webhooks/{provider}", tag = "payments",
    params(("provider" = String, Path)),
    request_body(content = String, description = "The provider's payload, verified byte for byte"),
    responses(
        (status = 200, description = "Handled (or a duplicate)"),
        (status = 400, description = "Bad signature or body", body = Problem),
        (status = 404, description = "No such provider or no webhooks for it", body = Problem),
    )
)]
async fn receive_webhook(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    match state.engine.webhook(&provider, &headers, &body).await {
        Ok(outcome) => Ok(axum::Json(
            serde_json::json!({"received": true, "duplicate": outcome == WebhookOutcome::Duplicate}),
        )),
        Err(
            WebhookFailure::UnknownProvider | WebhookFailure::Refused(WebhookError::Unsupported),
        ) => Err(ApiError::not_found("webhook endpoint")),
        Err(WebhookFailure::Refused(e @ WebhookError::Signature(_))) => {
            Err(ApiError::bad_request("invalid_signature", e.to_string()))
        }
        Err(WebhookFailure::Refused(e @ WebhookError::Malformed(_))) => {
            Err(ApiError::bad_request("malformed_webhook", e.to_string()))
        }
        Err(WebhookFailure::Refused(e @ WebhookError::Unavailable(_))) => {
            Err(ApiError::unavailable(e.to_string()).with_retry_after(5))
        }
        Err(WebhookFailure::Payment(e)) => Err(e.into()),
    }
}

/// `?days=`.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct AnalyticsQuery {
    /// Days back from today, 1 to 366 (default 30).
    pub days: Option<i64>,
}

/// Payment analytics (staff): volume and counts by day, currency, provider and status;
/// success and refund rates; average ticket; risk decisions.
#[utoipa::path(
    get, path = "/api/v1/payments/analytics", tag = "payments",
    params(AnalyticsQuery),
    responses((status = 200, body = crate::reports::Report)),
    security(("bearer" = []))
)]
async fn analytics(
    State(state): State<AppState>,
    _: RequireRole<Staff>,
    mercato_kernel::Query(query): mercato_kernel::Query<AnalyticsQuery>,
) -> Result<axum::Json<crate::reports::Report>, ApiError> {
    let days = query.days.unwrap_or(30);
    if !(1..=366).contains(&days) {
        return Err(ApiError::invalid_field("days", "out_of_range", "1 to 366"));
    }
    let report =
        crate::reports::report(state.engine.db(), mercato_store::now_micros(), days).await?;
    Ok(axum::Json(report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_ip_is_the_one_the_gateway_appended() {
        let mut headers = HeaderMap::new();
        assert_eq!(client_ip(&headers), None);
        headers.insert("x-forwarded-for", "6.6.6.6, 203.0.113.7".parse().unwrap());
        assert_eq!(client_ip(&headers).as_deref(), Some("203.0.113.7"));
        headers.insert("x-forwarded-for", "not-an-ip".parse().unwrap());
        assert_eq!(client_ip(&headers), None);
    }
}
