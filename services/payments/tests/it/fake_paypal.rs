//! A local PayPal that speaks the REST endpoints the adapter uses: OAuth2 client credentials,
//! vault payment tokens, Orders v2, Payments v2 (authorizations, captures, refunds) and
//! webhook signature verification. Behaviour follows the test card numbers:
//!
//! | card | outcome |
//! |---|---|
//! | `4242424242424242` (any other) | succeeds |
//! | `4000000000000002` | 422 `INSTRUMENT_DECLINED` |
//! | `4000000000009995` | 422 `INSUFFICIENT_FUNDS` |
//! | `4000000000000127` | 201, but the capture is `DECLINED` |
//!
//! Switches make the next calls fail (500) or stall past the client's timeout after the
//! work is done, as a network would lose an answer.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use mercato_payments::providers::paypal::PayPal;
use serde_json::{Value, json};

/// The fake's REST app credentials.
pub const CLIENT_ID: &str = "fake-client-id";
pub const CLIENT_SECRET: &str = "fake-client-secret";
/// The webhook id the fake verifies deliveries for.
pub const WEBHOOK_ID: &str = "WH-FAKE-1";
/// The client timeout of [`FakePayPal::client`]; a stall lasts longer.
pub const TIMEOUT: Duration = Duration::from_millis(1_000);
const STALL: Duration = Duration::from_millis(2_500);

/// A running fake; stops with the test's runtime.
pub struct FakePayPal {
    pub url: String,
    state: Arc<State>,
}

#[derive(Default)]
struct State {
    inner: Mutex<Inner>,
    fail_next: AtomicU32,
    stall_next: AtomicBool,
    pend_refunds: AtomicBool,
    charges: AtomicU64,
    token_requests: AtomicU64,
    next_id: AtomicU64,
}

#[derive(Default)]
struct Inner {
    tokens: HashSet<String>,
    /// Vault token id → card number.
    vault: HashMap<String, String>,
    orders: HashMap<String, Value>,
    authorizations: HashMap<String, Value>,
    captures: HashMap<String, Value>,
    /// `(path, PayPal-Request-Id)` → the first answer.
    replies: HashMap<(String, String), (StatusCode, Value)>,
    /// Transmission id → the signature the fake accepts for it.
    signatures: HashMap<String, String>,
    /// Bodies of the create-order requests, in order.
    order_requests: Vec<Value>,
    /// Request ids seen, per path.
    request_ids: Vec<(String, Option<String>)>,
}

type Reply = (StatusCode, Value);

fn error(status: StatusCode, name: &str, issue: &str, description: &str) -> Reply {
    (
        status,
        json!({"name": name, "message": description, "debug_id": "fake0debug",
               "details": [{"issue": issue, "description": description}]}),
    )
}

fn unprocessable(issue: &str, description: &str) -> Reply {
    error(
        StatusCode::UNPROCESSABLE_ENTITY,
        "UNPROCESSABLE_ENTITY",
        issue,
        description,
    )
}

fn not_found() -> Reply {
    error(
        StatusCode::NOT_FOUND,
        "RESOURCE_NOT_FOUND",
        "INVALID_RESOURCE_ID",
        "no such resource",
    )
}

/// Minor units of a decimal string, checking the currency's number of decimals.
fn minor(amount: &Value) -> Result<i64, Reply> {
    let currency = amount["currency_code"].as_str().unwrap_or_default();
    let value = amount["value"].as_str().unwrap_or_default();
    let decimals = match currency {
        "JPY" | "KRW" | "HUF" | "TWD" => 0,
        "BHD" | "KWD" | "JOD" | "OMR" | "TND" => 3,
        _ => 2,
    };
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    if fraction.len() != decimals || (decimals == 0 && value.contains('.')) {
        return Err(unprocessable(
            "DECIMAL_PRECISION",
            &format!("{currency} takes {decimals} decimals, got {value}"),
        ));
    }
    format!("{whole}{fraction}")
        .parse()
        .map_err(|_| unprocessable("INVALID_PARAMETER_VALUE", "amount value is not a number"))
}

impl FakePayPal {
    /// Starts the fake on `127.0.0.1:0`.
    pub async fn start() -> Self {
        let state = Arc::new(State::default());
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, state }
    }

    /// An adapter with the right credentials, the webhook id and [`TIMEOUT`].
    pub fn client(&self) -> PayPal {
        PayPal::new(
            &self.url,
            CLIENT_ID,
            CLIENT_SECRET,
            Some(WEBHOOK_ID.to_owned()),
            TIMEOUT,
        )
        .unwrap()
    }

    /// An adapter with another secret.
    pub fn client_with_secret(&self, secret: &str) -> PayPal {
        PayPal::new(&self.url, CLIENT_ID, secret, None, TIMEOUT).unwrap()
    }

    /// Orders and captures that moved money (authorizations included).
    pub fn charges(&self) -> u64 {
        self.state.charges.load(Ordering::SeqCst)
    }

    /// Tokens handed out.
    pub fn token_requests(&self) -> u64 {
        self.state.token_requests.load(Ordering::SeqCst)
    }

    /// Every token handed out so far stops working (401), as when PayPal expires one early.
    pub fn expire_tokens(&self) {
        self.state.inner.lock().unwrap().tokens.clear();
    }

    /// The next `n` API calls answer 500.
    pub fn fail_next(&self, n: u32) {
        self.state.fail_next.store(n, Ordering::SeqCst);
    }

    /// The next API call does its work, then answers only after the client gave up.
    pub fn stall_next(&self) {
        self.state.stall_next.store(true, Ordering::SeqCst);
    }

    /// Refunds from now on answer `PENDING` instead of `COMPLETED`.
    pub fn pend_refunds(&self) {
        self.state.pend_refunds.store(true, Ordering::SeqCst);
    }

    /// The bodies of create-order requests so far.
    pub fn order_requests(&self) -> Vec<Value> {
        self.state.inner.lock().unwrap().order_requests.clone()
    }

    /// `PayPal-Request-Id` of each API call to a path starting with `prefix`.
    pub fn request_ids(&self, prefix: &str) -> Vec<Option<String>> {
        let inner = self.state.inner.lock().unwrap();
        inner
            .request_ids
            .iter()
            .filter(|(path, _)| path.starts_with(prefix))
            .map(|(_, id)| id.clone())
            .collect()
    }

    /// The status of an authorization.
    pub fn authorization_status(&self, id: &str) -> String {
        let inner = self.state.inner.lock().unwrap();
        inner.authorizations[id]["status"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Headers of a delivery PayPal signed; the fake's verification API accepts them.
    pub fn signed_headers(&self, transmission_id: &str) -> HeaderMap {
        let signature = format!("sig-{}", self.state.id("S"));
        self.state
            .inner
            .lock()
            .unwrap()
            .signatures
            .insert(transmission_id.to_owned(), signature.clone());
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("paypal-auth-algo", "SHA256withRSA"),
            (
                "paypal-cert-url",
                "https://api-m.paypal.com/v1/notifications/certs/CERT-1",
            ),
            ("paypal-transmission-id", transmission_id),
            ("paypal-transmission-sig", &signature),
            ("paypal-transmission-time", "2026-05-01T10:00:00Z"),
        ] {
            headers.insert(name, HeaderValue::from_str(value).unwrap());
        }
        headers
    }
}

impl State {
    fn id(&self, prefix: &str) -> String {
        let n = self.next_id.fetch_add(1, Ordering::SeqCst);
        format!("{prefix}{n:016}")
    }

    fn amount_of(&self, amount: &Value) -> Value {
        json!({"currency_code": amount["currency_code"], "value": amount["value"]})
    }
}

/// Every request: authentication, forced failures, idempotency, then the endpoint.
async fn handle(
    axum::extract::State(state): axum::extract::State<Arc<State>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    if path == "/v1/oauth2/token" {
        let (status, reply) = token(&state, &headers, &body);
        return (status, axum::Json(reply)).into_response();
    }
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let known = bearer.is_some_and(|t| state.inner.lock().unwrap().tokens.contains(t));
    if !known {
        let body = json!({"error": "invalid_token", "error_description": "Token signature verification failed"});
        return (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
    }
    let request_id = headers
        .get("paypal-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    state
        .inner
        .lock()
        .unwrap()
        .request_ids
        .push((path.clone(), request_id.clone()));
    if state
        .fail_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        let reply = error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_SERVER_ERROR",
            "INTERNAL_SERVICE_ERROR",
            "an internal service error has occurred",
        );
        return (reply.0, axum::Json(reply.1)).into_response();
    }
    let body: Value = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(&body) {
            Ok(body) => body,
            Err(_) => {
                let reply = error(
                    StatusCode::BAD_REQUEST,
                    "INVALID_REQUEST",
                    "MALFORMED_REQUEST_JSON",
                    "not json",
                );
                return (reply.0, axum::Json(reply.1)).into_response();
            }
        }
    };
    let replay_key = request_id
        .filter(|_| method == Method::POST)
        .map(|id| (path.clone(), id));
    let stored = replay_key
        .as_ref()
        .and_then(|key| state.inner.lock().unwrap().replies.get(key).cloned());
    let (status, reply) = match stored {
        Some(reply) => reply,
        None => {
            let reply = route(&state, &method, &path, &body);
            if let Some(key) = replay_key {
                state
                    .inner
                    .lock()
                    .unwrap()
                    .replies
                    .insert(key, reply.clone());
            }
            reply
        }
    };
    if state.stall_next.swap(false, Ordering::SeqCst) {
        tokio::time::sleep(STALL).await;
    }
    if status == StatusCode::NO_CONTENT {
        return status.into_response();
    }
    (status, axum::Json(reply)).into_response()
}

fn token(state: &State, headers: &HeaderMap, body: &[u8]) -> Reply {
    let expected =
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"));
    let basic = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "));
    if basic != Some(expected.as_str()) {
        return (
            StatusCode::UNAUTHORIZED,
            json!({"error": "invalid_client", "error_description": "Client Authentication failed"}),
        );
    }
    if body != b"grant_type=client_credentials" {
        return (
            StatusCode::BAD_REQUEST,
            json!({"error": "unsupported_grant_type", "error_description": "Grant Type is NULL"}),
        );
    }
    state.token_requests.fetch_add(1, Ordering::SeqCst);
    let token = format!("A21AA{}", state.id("T"));
    state.inner.lock().unwrap().tokens.insert(token.clone());
    (
        StatusCode::OK,
        json!({"scope": "https://uri.paypal.com/services/payments/payment", "access_token": token,
               "token_type": "Bearer", "app_id": "APP-FAKE", "expires_in": 32400, "nonce": "n"}),
    )
}

fn route(state: &State, method: &Method, path: &str, body: &Value) -> Reply {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method.as_str(), segments.as_slice()) {
        ("POST", ["v3", "vault", "payment-tokens"]) => vault(state, body),
        ("POST", ["v2", "checkout", "orders"]) => create_order(state, body),
        ("GET", ["v2", "checkout", "orders", id]) => {
            let inner = state.inner.lock().unwrap();
            inner
                .orders
                .get(*id)
                .map_or_else(not_found, |o| (StatusCode::OK, o.clone()))
        }
        ("GET", ["v2", "payments", "authorizations", id]) => {
            let inner = state.inner.lock().unwrap();
            inner
                .authorizations
                .get(*id)
                .map_or_else(not_found, |a| (StatusCode::OK, a.clone()))
        }
        ("POST", ["v2", "payments", "authorizations", id, "capture"]) => capture(state, id, body),
        ("POST", ["v2", "payments", "authorizations", id, "void"]) => void(state, id),
        ("GET", ["v2", "payments", "captures", id]) => {
            let inner = state.inner.lock().unwrap();
            inner
                .captures
                .get(*id)
                .map_or_else(not_found, |c| (StatusCode::OK, c.clone()))
        }
        ("POST", ["v2", "payments", "captures", id, "refund"]) => refund(state, id, body),
        ("POST", ["v1", "notifications", "verify-webhook-signature"]) => verify(state, body),
        _ => not_found(),
    }
}

fn vault(state: &State, body: &Value) -> Reply {
    let card = &body["payment_source"]["card"];
    let (Some(number), Some(expiry), Some(_cvc)) = (
        card["number"].as_str(),
        card["expiry"].as_str(),
        card["security_code"].as_str(),
    ) else {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
            "MISSING_REQUIRED_PARAMETER",
            "card number, expiry and security_code are required",
        );
    };
    if expiry.len() != 7 || expiry.as_bytes()[4] != b'-' {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
            "INVALID_PARAMETER_SYNTAX",
            "expiry must be YYYY-MM",
        );
    }
    let id = state.id("VT");
    state
        .inner
        .lock()
        .unwrap()
        .vault
        .insert(id.clone(), number.to_owned());
    let last4 = &number[number.len().saturating_sub(4)..];
    (
        StatusCode::OK,
        json!({"id": id, "payment_source": {"card": {"last_digits": last4, "expiry": expiry}}}),
    )
}

fn create_order(state: &State, body: &Value) -> Reply {
    state
        .inner
        .lock()
        .unwrap()
        .order_requests
        .push(body.clone());
    let unit = &body["purchase_units"][0];
    let amount = &unit["amount"];
    if let Err(reply) = minor(amount) {
        return reply;
    }
    // Both ways of naming a vaulted card are accepted.
    let token = body["payment_source"]["card"]["vault_id"]
        .as_str()
        .or_else(|| body["payment_source"]["token"]["id"].as_str());
    let number = token.and_then(|t| state.inner.lock().unwrap().vault.get(t).cloned());
    let Some(number) = number else {
        return unprocessable("TOKEN_NOT_FOUND", "the payment token does not exist");
    };
    match number.as_str() {
        "4000000000000002" => {
            return unprocessable(
                "INSTRUMENT_DECLINED",
                "The instrument presented was either declined by the processor or bank, or it can't be used for this payment.",
            );
        }
        "4000000000009995" => {
            return unprocessable("INSUFFICIENT_FUNDS", "The buyer has insufficient funds.");
        }
        _ => {}
    }
    let order_id = state.id("O");
    let amount = state.amount_of(amount);
    let payments = match body["intent"].as_str() {
        Some("CAPTURE") => {
            let declined = number == "4000000000000127";
            if !declined {
                state.charges.fetch_add(1, Ordering::SeqCst);
            }
            let capture = new_capture(state, &order_id, None, &amount, declined);
            json!({"captures": [capture]})
        }
        Some("AUTHORIZE") => {
            state.charges.fetch_add(1, Ordering::SeqCst);
            let id = state.id("A");
            let authorization = json!({"id": id, "status": "CREATED", "amount": amount,
                "custom_id": unit["custom_id"],
                "supplementary_data": {"related_ids": {"order_id": order_id}}});
            state
                .inner
                .lock()
                .unwrap()
                .authorizations
                .insert(id, authorization.clone());
            json!({"authorizations": [authorization]})
        }
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "INVALID_REQUEST",
                "INVALID_PARAMETER_VALUE",
                "intent must be CAPTURE or AUTHORIZE",
            );
        }
    };
    let order = json!({"id": order_id, "status": "COMPLETED", "intent": body["intent"],
        "purchase_units": [{"custom_id": unit["custom_id"], "amount": amount, "payments": payments}]});
    state
        .inner
        .lock()
        .unwrap()
        .orders
        .insert(order_id, order.clone());
    (StatusCode::CREATED, order)
}

fn new_capture(
    state: &State,
    order_id: &str,
    authorization_id: Option<&str>,
    amount: &Value,
    declined: bool,
) -> Value {
    let id = state.id("C");
    let mut related = json!({"order_id": order_id});
    if let Some(authorization_id) = authorization_id {
        related["authorization_id"] = json!(authorization_id);
    }
    let capture = if declined {
        json!({"id": id, "status": "DECLINED", "amount": amount,
               "status_details": {"reason": "DECLINED_BY_RISK_FRAUD_FILTERS"},
               "supplementary_data": {"related_ids": related}})
    } else {
        json!({"id": id, "status": "COMPLETED", "amount": amount, "refunded_minor": 0,
               "supplementary_data": {"related_ids": related}})
    };
    state
        .inner
        .lock()
        .unwrap()
        .captures
        .insert(id, capture.clone());
    capture
}

fn capture(state: &State, authorization_id: &str, body: &Value) -> Reply {
    let Some(authorization) = state
        .inner
        .lock()
        .unwrap()
        .authorizations
        .get(authorization_id)
        .cloned()
    else {
        return not_found();
    };
    match authorization["status"].as_str() {
        Some("CREATED") => {}
        Some("VOIDED") => {
            return unprocessable("AUTHORIZATION_VOIDED", "the authorization was voided");
        }
        _ => {
            return unprocessable(
                "AUTHORIZATION_ALREADY_CAPTURED",
                "the authorization was captured",
            );
        }
    }
    let (captured, authorized) = match (minor(&body["amount"]), minor(&authorization["amount"])) {
        (Ok(captured), Ok(authorized)) => (captured, authorized),
        (Err(reply), _) | (_, Err(reply)) => return reply,
    };
    if body["amount"]["currency_code"] != authorization["amount"]["currency_code"] {
        return unprocessable(
            "CURRENCY_MISMATCH",
            "capture currency differs from the authorization",
        );
    }
    if captured > authorized {
        return unprocessable("MAX_CAPTURE_AMOUNT_EXCEEDED", "more than authorized");
    }
    let order_id = authorization["supplementary_data"]["related_ids"]["order_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let capture = new_capture(
        state,
        &order_id,
        Some(authorization_id),
        &state.amount_of(&body["amount"]),
        false,
    );
    let mut inner = state.inner.lock().unwrap();
    if let Some(a) = inner.authorizations.get_mut(authorization_id) {
        a["status"] = json!("CAPTURED");
    }
    if let Some(order) = inner.orders.get_mut(&order_id) {
        order["purchase_units"][0]["payments"]["captures"] = json!([capture.clone()]);
    }
    (StatusCode::CREATED, capture)
}

fn void(state: &State, authorization_id: &str) -> Reply {
    let mut inner = state.inner.lock().unwrap();
    let Some(authorization) = inner.authorizations.get_mut(authorization_id) else {
        return not_found();
    };
    if authorization["status"] != "CREATED" {
        return unprocessable("PREVIOUSLY_CAPTURED", "the authorization cannot be voided");
    }
    authorization["status"] = json!("VOIDED");
    (StatusCode::NO_CONTENT, Value::Null)
}

fn refund(state: &State, capture_id: &str, body: &Value) -> Reply {
    let mut inner = state.inner.lock().unwrap();
    let Some(capture) = inner.captures.get_mut(capture_id) else {
        return not_found();
    };
    if capture["status"] == "DECLINED" {
        return unprocessable("CAPTURE_STATUS_NOT_VALID", "the capture was declined");
    }
    let (asked, captured) = match (minor(&body["amount"]), minor(&capture["amount"])) {
        (Ok(asked), Ok(captured)) => (asked, captured),
        (Err(reply), _) | (_, Err(reply)) => return reply,
    };
    if body["amount"]["currency_code"] != capture["amount"]["currency_code"] {
        return unprocessable(
            "REFUND_CAPTURE_CURRENCY_MISMATCH",
            "refund currency differs from the capture",
        );
    }
    let refunded = capture["refunded_minor"].as_i64().unwrap_or_default() + asked;
    if refunded > captured {
        return unprocessable(
            "REFUND_AMOUNT_EXCEEDED",
            "the refund exceeds the captured amount",
        );
    }
    capture["refunded_minor"] = json!(refunded);
    capture["status"] = json!(if refunded == captured {
        "REFUNDED"
    } else {
        "PARTIALLY_REFUNDED"
    });
    let status = if state.pend_refunds.load(Ordering::SeqCst) {
        "PENDING"
    } else {
        "COMPLETED"
    };
    drop(inner);
    (
        StatusCode::CREATED,
        json!({"id": state.id("R"), "status": status, "amount": state.amount_of(&body["amount"])}),
    )
}

fn verify(state: &State, body: &Value) -> Reply {
    let field = |name: &str| body[name].as_str().unwrap_or_default();
    if field("webhook_id") != WEBHOOK_ID || !body["webhook_event"].is_object() {
        return error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            "INVALID_PARAMETER_VALUE",
            "unknown webhook or no event",
        );
    }
    let inner = state.inner.lock().unwrap();
    let signed = inner
        .signatures
        .get(field("transmission_id"))
        .is_some_and(|sig| sig == field("transmission_sig"));
    let status = if signed { "SUCCESS" } else { "FAILURE" };
    (StatusCode::OK, json!({"verification_status": status}))
}
