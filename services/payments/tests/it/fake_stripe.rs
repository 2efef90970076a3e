//! A local fake of the Stripe endpoints the adapter uses, served on `127.0.0.1:0` from the
//! test's runtime. It behaves like Stripe's test mode where the adapter can tell the
//! difference: bearer auth, form bodies, idempotency keys replaying the first answer, decline
//! test cards, error envelopes. Failure modes simulate what sits in front of Stripe (errors
//! before the request is handled, a response lost after the charge happened).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};

/// Succeeds.
pub const CARD_OK: &str = "4242424242424242";
/// Declined: `card_declined` / `generic_decline`.
pub const CARD_DECLINED: &str = "4000000000000002";
/// Declined: `card_declined` / `insufficient_funds`.
pub const CARD_INSUFFICIENT_FUNDS: &str = "4000000000009995";
/// Succeeds; its refunds stay `pending` (as in Stripe's test mode).
pub const CARD_REFUND_PENDING: &str = "4000000000007726";

/// How long a stalled call sleeps after doing its work: longer than any client timeout the
/// tests use.
pub const STALL: Duration = Duration::from_secs(2);

/// A running fake; dropped with the test's runtime.
pub struct FakeStripe {
    /// Base URL, `http://127.0.0.1:<port>`.
    pub url: String,
    /// The secret key it accepts.
    pub key: String,
    state: Arc<Mutex<State>>,
}

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `/v1/payment_intents`, …
    pub path: String,
    /// The `Idempotency-Key` header.
    pub idempotency_key: Option<String>,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// The decoded form.
    pub form: BTreeMap<String, String>,
}

/// A PaymentIntent as the fake holds it.
#[derive(Debug, Clone)]
pub struct Intent {
    /// `pi_…`
    pub id: String,
    /// Authorized amount.
    pub amount: i64,
    /// Lower case.
    pub currency: String,
    /// `succeeded`, `requires_capture`, `canceled`.
    pub status: String,
    /// Captured amount.
    pub amount_received: i64,
    /// Refunded so far.
    pub amount_refunded: i64,
    card_number: String,
}

#[derive(Default)]
struct State {
    key: String,
    next_id: u64,
    charges: usize,
    fail_next: usize,
    fail_status: u16,
    stall_next: bool,
    requests: Vec<Recorded>,
    replies: HashMap<String, (String, u16, Value)>,
    methods: HashMap<String, String>,
    intents: HashMap<String, Intent>,
}

type Reply = (u16, Value);

impl FakeStripe {
    /// Starts a fake on a free port.
    pub async fn start() -> Self {
        let key = "sk_test_fake_51Mercato".to_owned();
        let state = Arc::new(Mutex::new(State {
            key: key.clone(),
            ..State::default()
        }));
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, key, state }
    }

    /// PaymentIntents that really charged or authorized money (idempotent replays excluded).
    pub fn charges(&self) -> usize {
        self.state.lock().unwrap().charges
    }

    /// The next `n` calls answer 500 without doing anything.
    pub fn fail_next(&self, n: usize) {
        self.fail_next_with(n, 500);
    }

    /// The next `n` calls answer `status` (e.g. 429, 503) without doing anything.
    pub fn fail_next_with(&self, n: usize, status: u16) {
        let mut state = self.state.lock().unwrap();
        state.fail_next = n;
        state.fail_status = status;
    }

    /// The next call does its work and stores its answer, then sleeps [`STALL`] before
    /// answering: the client times out although the charge happened.
    pub fn stall_next(&self) {
        self.state.lock().unwrap().stall_next = true;
    }

    /// Every request received so far, failed ones included.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    /// The PaymentIntent `id`, if it exists.
    pub fn intent(&self, id: &str) -> Option<Intent> {
        self.state.lock().unwrap().intents.get(id).cloned()
    }

    /// A `Stripe-Signature` header value for `payload`, signed with `secret` at time `t`.
    pub fn sign(payload: &[u8], secret: &str, t: i64) -> String {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{t}.").as_bytes());
        mac.update(payload);
        format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
    }
}

async fn handle(
    axum::extract::State(state): axum::extract::State<Arc<Mutex<State>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let idempotency_key = header("idempotency-key");
    let content_type = header("content-type");
    let form: BTreeMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap();
    let (reply, replayed, stall) = {
        let mut state = state.lock().unwrap();
        state.requests.push(Recorded {
            path: path.clone(),
            idempotency_key: idempotency_key.clone(),
            content_type,
            form: form.clone(),
        });
        let stall = std::mem::take(&mut state.stall_next);
        let (reply, replayed) = answer(&mut state, &method, &path, &headers, idempotency_key, form);
        (reply, replayed, stall)
    };
    if stall {
        tokio::time::sleep(STALL).await;
    }
    let mut response =
        (StatusCode::from_u16(reply.0).unwrap(), axum::Json(reply.1)).into_response();
    if replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", "true".parse().unwrap());
    }
    response
}

/// Failure mode, auth, idempotency, then the endpoint. Returns the reply and whether it was
/// replayed from an earlier request with the same key.
fn answer(
    state: &mut State,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    idempotency_key: Option<String>,
    form: BTreeMap<String, String>,
) -> (Reply, bool) {
    if state.fail_next > 0 {
        state.fail_next -= 1;
        let status = state.fail_status;
        return (error(status, "api_error", None, "simulated outage"), false);
    }
    let expected = format!("Bearer {}", state.key);
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return (
            error(
                401,
                "invalid_request_error",
                None,
                "Invalid API Key provided",
            ),
            false,
        );
    }
    // Stripe replays the first answer for a key, and refuses the key with other parameters.
    let fingerprint = format!("{method} {path} {form:?}");
    if let Some(key) = &idempotency_key
        && let Some((seen, status, body)) = state.replies.get(key)
    {
        if *seen == fingerprint {
            return ((*status, body.clone()), true);
        }
        let message = "Keys for idempotent requests can only be used with the same parameters they were first used with";
        return (error(400, "idempotency_error", None, message), false);
    }
    let reply = route(state, method, path, &form);
    if let Some(key) = idempotency_key {
        state
            .replies
            .insert(key, (fingerprint, reply.0, reply.1.clone()));
    }
    (reply, false)
}

fn route(state: &mut State, method: &Method, path: &str, form: &BTreeMap<String, String>) -> Reply {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    if method != Method::POST {
        return not_found(path);
    }
    match segments.as_slice() {
        ["v1", "payment_methods"] => create_method(state, form),
        ["v1", "payment_intents"] => create_intent(state, form),
        ["v1", "payment_intents", id, "capture"] => capture(state, id, form),
        ["v1", "payment_intents", id, "cancel"] => cancel(state, id),
        ["v1", "refunds"] => create_refund(state, form),
        _ => not_found(path),
    }
}

fn create_method(state: &mut State, form: &BTreeMap<String, String>) -> Reply {
    if form.get("type").map(String::as_str) != Some("card") {
        return invalid(400, "parameter_missing", "Missing required param: type.");
    }
    for param in [
        "card[number]",
        "card[exp_month]",
        "card[exp_year]",
        "card[cvc]",
    ] {
        if !form.contains_key(param) {
            return missing(param);
        }
    }
    let number = form["card[number]"].clone();
    let id = next_id(state, "pm");
    state.methods.insert(id.clone(), number.clone());
    let brand = if number.starts_with('4') {
        "visa"
    } else {
        "unknown"
    };
    (
        200,
        json!({
            "id": id,
            "object": "payment_method",
            "type": "card",
            "card": {
                "brand": brand,
                "last4": &number[number.len().saturating_sub(4)..],
                "exp_month": form["card[exp_month]"].parse::<u32>().unwrap_or(0),
                "exp_year": form["card[exp_year]"].parse::<u32>().unwrap_or(0),
            },
        }),
    )
}

fn create_intent(state: &mut State, form: &BTreeMap<String, String>) -> Reply {
    for param in ["amount", "currency", "payment_method"] {
        if !form.contains_key(param) {
            return missing(param);
        }
    }
    let Some(amount) = form["amount"].parse::<i64>().ok().filter(|a| *a > 0) else {
        return invalid(400, "parameter_invalid_integer", "Invalid positive integer");
    };
    let currency = &form["currency"];
    if currency.len() != 3 || currency.to_ascii_lowercase() != *currency {
        return invalid(400, "parameter_invalid_string", "Invalid currency");
    }
    let Some(card_number) = state.methods.get(&form["payment_method"]).cloned() else {
        return invalid(400, "resource_missing", "No such PaymentMethod");
    };
    if form.get("confirm").map(String::as_str) != Some("true") {
        return invalid(
            400,
            "parameter_invalid",
            "this fake only supports confirm=true",
        );
    }
    let manual = match form.get("capture_method").map(String::as_str) {
        None | Some("automatic") => false,
        Some("manual") => true,
        Some(_) => {
            return invalid(400, "parameter_invalid", "Invalid capture_method");
        }
    };
    let id = next_id(state, "pi");
    let decline = match card_number.as_str() {
        CARD_DECLINED => Some("generic_decline"),
        CARD_INSUFFICIENT_FUNDS => Some("insufficient_funds"),
        _ => None,
    };
    let (status, received) = match (decline, manual) {
        (Some(_), _) => ("requires_payment_method", 0),
        (None, true) => ("requires_capture", 0),
        (None, false) => ("succeeded", amount),
    };
    let intent = Intent {
        id: id.clone(),
        amount,
        currency: currency.clone(),
        status: status.to_owned(),
        amount_received: received,
        amount_refunded: 0,
        card_number,
    };
    state.intents.insert(id.clone(), intent.clone());
    if let Some(decline_code) = decline {
        let mut reply = error(
            402,
            "card_error",
            Some("card_declined"),
            "Your card was declined.",
        );
        reply.1["error"]["decline_code"] = json!(decline_code);
        reply.1["error"]["payment_intent"] = intent_json(&intent);
        return reply;
    }
    state.charges += 1;
    (200, intent_json(&intent))
}

fn capture(state: &mut State, id: &str, form: &BTreeMap<String, String>) -> Reply {
    let Some(intent) = state.intents.get_mut(id) else {
        return invalid(404, "resource_missing", "No such payment_intent");
    };
    if intent.status != "requires_capture" {
        return unexpected_state(intent);
    }
    let amount = match form.get("amount_to_capture").map(|a| a.parse::<i64>()) {
        None => intent.amount,
        Some(Ok(a)) if a > 0 && a <= intent.amount => a,
        Some(_) => {
            return invalid(400, "amount_too_large", "amount_to_capture is invalid");
        }
    };
    intent.status = "succeeded".to_owned();
    intent.amount_received = amount;
    (200, intent_json(intent))
}

fn cancel(state: &mut State, id: &str) -> Reply {
    let Some(intent) = state.intents.get_mut(id) else {
        return invalid(404, "resource_missing", "No such payment_intent");
    };
    if matches!(intent.status.as_str(), "succeeded" | "canceled") {
        return unexpected_state(intent);
    }
    intent.status = "canceled".to_owned();
    (200, intent_json(intent))
}

fn create_refund(state: &mut State, form: &BTreeMap<String, String>) -> Reply {
    let Some(pi) = form.get("payment_intent") else {
        return missing("payment_intent");
    };
    let id = next_id(state, "re");
    let Some(intent) = state.intents.get_mut(pi) else {
        return invalid(400, "resource_missing", "No such payment_intent");
    };
    if intent.status != "succeeded" {
        return unexpected_state(intent);
    }
    let left = intent.amount_received - intent.amount_refunded;
    if left == 0 {
        return invalid(
            400,
            "charge_already_refunded",
            "Charge has already been refunded.",
        );
    }
    let amount = match form.get("amount").map(|a| a.parse::<i64>()) {
        None => left,
        Some(Ok(a)) if a > 0 && a <= left => a,
        Some(_) => {
            return invalid(
                400,
                "amount_too_large",
                "Refund amount is greater than unrefunded amount on charge",
            );
        }
    };
    intent.amount_refunded += amount;
    let status = if intent.card_number == CARD_REFUND_PENDING {
        "pending"
    } else {
        "succeeded"
    };
    (
        200,
        json!({
            "id": id,
            "object": "refund",
            "amount": amount,
            "currency": intent.currency,
            "payment_intent": intent.id,
            "status": status,
        }),
    )
}

fn intent_json(intent: &Intent) -> Value {
    json!({
        "id": intent.id,
        "object": "payment_intent",
        "amount": intent.amount,
        "amount_received": intent.amount_received,
        "currency": intent.currency,
        "status": intent.status,
    })
}

fn next_id(state: &mut State, prefix: &str) -> String {
    state.next_id += 1;
    format!("{prefix}_fake{:08}", state.next_id)
}

fn unexpected_state(intent: &Intent) -> Reply {
    let message = format!("This PaymentIntent's status is {}", intent.status);
    invalid(400, "payment_intent_unexpected_state", &message)
}

fn missing(param: &str) -> Reply {
    let message = format!("Missing required param: {param}.");
    invalid(400, "parameter_missing", &message)
}

fn not_found(path: &str) -> Reply {
    let message = format!("Unrecognized request URL (POST: {path})");
    error(404, "invalid_request_error", None, &message)
}

fn invalid(status: u16, code: &str, message: &str) -> Reply {
    error(status, "invalid_request_error", Some(code), message)
}

fn error(status: u16, kind: &str, code: Option<&str>, message: &str) -> Reply {
    let mut error = json!({ "type": kind, "message": message });
    if let Some(code) = code {
        error["code"] = json!(code);
    }
    (status, json!({ "error": error }))
}
