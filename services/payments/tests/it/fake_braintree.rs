//! A local fake of Braintree's GraphQL API (`POST /graphql`), enough for the adapter's tests:
//! it checks Basic auth and `Braintree-Version`, dispatches on the operation named in the
//! query text, validates the input shapes the real API requires, and keeps transactions and
//! refunds in memory so that searches by `orderId` find them.
//!
//! | card | outcome |
//! |---|---|
//! | `4242424242424242` (and any other number) | succeeds |
//! | `4000000000000002` | `PROCESSOR_DECLINED`, code 2000, reported in the transaction |
//! | `4000000000009995` | `PROCESSOR_DECLINED`, code 2001, reported as a GraphQL error |

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use hmac::{KeyInit, Mac};
use mercato_payments::providers::braintree::Braintree;
use serde_json::{Value, json};
use sha1::{Digest, Sha1};

/// The key pair the fake accepts.
pub const PUBLIC_KEY: &str = "pk_fake_braintree";
/// The key pair the fake accepts.
pub const PRIVATE_KEY: &str = "sk_fake_braintree_secret";

/// How long a stalled call sleeps: well past the clients' timeout in these tests.
const STALL: Duration = Duration::from_secs(2);

/// A transaction as the fake keeps it.
#[derive(Debug, Clone)]
pub struct FakeTransaction {
    pub id: String,
    pub legacy_id: String,
    pub order_id: Option<String>,
    pub merchant_account_id: Option<String>,
    /// The decimal string last sent (authorized, then captured amount).
    pub amount: String,
    pub currency: String,
    pub status: String,
}

/// A refund as the fake keeps it.
#[derive(Debug, Clone)]
pub struct FakeRefund {
    pub id: String,
    pub transaction_id: String,
    pub order_id: Option<String>,
    pub amount: String,
    pub status: String,
}

#[derive(Default)]
struct Inner {
    /// Payment method id → (card number, used).
    tokens: HashMap<String, (String, bool)>,
    transactions: Vec<FakeTransaction>,
    refunds: Vec<FakeRefund>,
    charges: u64,
    fail_next: u32,
    stall_next_charge: bool,
    operations: Vec<String>,
}

/// A running fake; dropped with the test's runtime.
#[derive(Clone)]
pub struct FakeBraintree {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    inner: Arc<Mutex<Inner>>,
}

impl FakeBraintree {
    /// Binds `127.0.0.1:0` and serves on the current runtime.
    pub async fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = Router::new()
            .route("/graphql", post(graphql))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, inner }
    }

    /// A client with the right keys, charging through `merchant_account` (`mercato_JPY`
    /// makes the fake keep JPY transactions) and giving up after 500 ms.
    pub fn client(&self, merchant_account: Option<&str>) -> Braintree {
        self.client_with(PUBLIC_KEY, PRIVATE_KEY, merchant_account)
    }

    /// A client with the given keys.
    pub fn client_with(
        &self,
        public_key: &str,
        private_key: &str,
        merchant_account: Option<&str>,
    ) -> Braintree {
        Braintree::new(
            &self.url,
            public_key,
            private_key,
            merchant_account.map(str::to_owned),
            Duration::from_millis(500),
        )
        .unwrap()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap()
    }

    /// Charges and authorizations that moved money.
    pub fn charges(&self) -> u64 {
        self.lock().charges
    }

    /// The next `n` calls answer HTTP 500 without doing anything.
    pub fn fail_next(&self, n: u32) {
        self.lock().fail_next = n;
    }

    /// The next charge or authorization happens, but its answer comes only after the client
    /// has given up.
    pub fn stall_next_charge(&self) {
        self.lock().stall_next_charge = true;
    }

    /// The transaction with this GraphQL id.
    pub fn transaction(&self, id: &str) -> FakeTransaction {
        let inner = self.lock();
        let found = inner.transactions.iter().find(|t| t.id == id).cloned();
        found.unwrap_or_else(|| panic!("no fake transaction {id}"))
    }

    /// Every transaction, oldest first.
    pub fn transactions(&self) -> Vec<FakeTransaction> {
        self.lock().transactions.clone()
    }

    /// Every refund, oldest first.
    pub fn refunds(&self) -> Vec<FakeRefund> {
        self.lock().refunds.clone()
    }

    /// The operations called, in order (`search`, `chargePaymentMethod`, …).
    pub fn operations(&self) -> Vec<String> {
        self.lock().operations.clone()
    }

    /// Settles a transaction or refund (Braintree's nightly batch, at once).
    pub fn settle(&self, id: &str) {
        let mut inner = self.lock();
        for t in inner.transactions.iter_mut().filter(|t| t.id == id) {
            t.status = "SETTLED".into();
        }
        for r in inner.refunds.iter_mut().filter(|r| r.id == id) {
            r.status = "SETTLED".into();
        }
    }
}

/// A webhook form body as Braintree posts it, signed with the fake's private key.
pub fn webhook_body(kind: &str, transaction_legacy_id: &str) -> String {
    signed_body(PRIVATE_KEY, &notification(kind, transaction_legacy_id))
}

/// A form body for `xml`, signed with `private_key`.
pub fn signed_body(private_key: &str, xml: &str) -> String {
    // Braintree's payload is base64 with a line break every 60 characters, signed as sent.
    let encoded = STANDARD.encode(xml);
    let payload: String = encoded
        .as_bytes()
        .chunks(60)
        .map(|line| format!("{}\n", String::from_utf8_lossy(line)))
        .collect();
    form(&signature(private_key, &payload), &payload)
}

/// `bt_signature=…&bt_payload=…`, form-encoded.
pub fn form(signature: &str, payload: &str) -> String {
    serde_urlencoded::to_string([("bt_signature", signature), ("bt_payload", payload)]).unwrap()
}

/// `public_key|hex(HMAC-SHA1(SHA1(private_key), payload))`.
pub fn signature(private_key: &str, payload: &str) -> String {
    let key = Sha1::digest(private_key.as_bytes());
    let mut mac = hmac::Hmac::<Sha1>::new_from_slice(&key).unwrap();
    mac.update(payload.as_bytes());
    format!("{PUBLIC_KEY}|{}", hex::encode(mac.finalize().into_bytes()))
}

/// A notification document of `kind` about a transaction (or its dispute).
pub fn notification(kind: &str, transaction_legacy_id: &str) -> String {
    let transaction = format!(
        "<transaction><customer><id>cus_1</id></customer><id>{transaction_legacy_id}</id>\
         <status>settled</status><amount>12.34</amount></transaction>"
    );
    let subject = if kind.starts_with("dispute") {
        format!(
            "<dispute><id>dp_{transaction_legacy_id}</id><kind>chargeback</kind>{transaction}</dispute>"
        )
    } else {
        transaction
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<notification>\
         <timestamp type=\"datetime\">2026-03-01T10:00:00Z</timestamp>\
         <kind>{kind}</kind><subject>{subject}</subject></notification>"
    )
}

fn new_id(kind: &str) -> (String, String) {
    let legacy = uuid::Uuid::now_v7().simple().to_string()[24..].to_owned();
    (STANDARD_NO_PAD.encode(format!("{kind}_{legacy}")), legacy)
}

fn error(class: &str, message: &str, legacy_code: Option<&str>) -> Value {
    json!({"message": message, "extensions": {"errorClass": class, "legacyCode": legacy_code}})
}

fn reply(data: Value, errors: Vec<Value>) -> Response {
    if errors.is_empty() {
        axum::Json(json!({"data": data})).into_response()
    } else {
        axum::Json(json!({"data": data, "errors": errors})).into_response()
    }
}

fn validation(message: &str, code: &str) -> Response {
    reply(Value::Null, vec![error("VALIDATION", message, Some(code))])
}

/// Minor units of a decimal string, whatever its exponent (the adapter sends fixed decimals).
fn minor(amount: &str) -> Option<i64> {
    let valid = !amount.is_empty()
        && amount.chars().all(|c| c.is_ascii_digit() || c == '.')
        && amount.matches('.').count() <= 1;
    valid
        .then(|| amount.replace('.', "").parse().ok())
        .flatten()
}

fn transaction_json(t: &FakeTransaction, history: Value) -> Value {
    json!({"id": t.id, "status": t.status, "statusHistory": history,
           "amount": {"value": t.amount, "currencyCode": t.currency}})
}

async fn graphql(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let expected = format!(
        "Basic {}",
        STANDARD.encode(format!("{PUBLIC_KEY}:{PRIVATE_KEY}"))
    );
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    if auth != Some(expected.as_str()) {
        return (StatusCode::UNAUTHORIZED, "authentication failed").into_response();
    }
    if headers
        .get("braintree-version")
        .and_then(|v| v.to_str().ok())
        != Some("2019-01-01")
    {
        let body = json!({"errors": [error("VALIDATION", "missing Braintree-Version", None)]});
        return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
    }
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok());
    if content_type != Some("application/json") {
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, "json only").into_response();
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "not json").into_response();
    };
    let query = request["query"].as_str().unwrap_or("").to_owned();
    let vars = request["variables"].clone();
    let operation = [
        "tokenizeCreditCard",
        "chargePaymentMethod",
        "authorizePaymentMethod",
        "captureTransaction",
        "reverseTransaction",
        "refundTransaction",
        "transactions(input",
        "refunds(input",
        "node(id",
    ]
    .into_iter()
    .find(|name| query.contains(name))
    .unwrap_or("unknown");

    let stall = {
        let mut state = inner.lock().unwrap();
        state.operations.push(operation.to_owned());
        if state.fail_next > 0 {
            state.fail_next -= 1;
            return (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response();
        }
        let charging = matches!(operation, "chargePaymentMethod" | "authorizePaymentMethod");
        charging && std::mem::take(&mut state.stall_next_charge)
    };
    let response = {
        let mut state = inner.lock().unwrap();
        handle(&mut state, operation, &vars)
    };
    if stall {
        tokio::time::sleep(STALL).await;
    }
    response
}

fn handle(state: &mut Inner, operation: &str, vars: &Value) -> Response {
    let input = &vars["input"];
    match operation {
        "tokenizeCreditCard" => {
            let card = &input["creditCard"];
            let fields = ["number", "expirationMonth", "expirationYear", "cvv"];
            if fields.iter().any(|f| !card[f].is_string()) {
                return validation("creditCard needs number, expiration and cvv", "81714");
            }
            let id = format!("tokencc_{}", new_id("x").1);
            let number = card["number"].as_str().unwrap_or_default().to_owned();
            state.tokens.insert(id.clone(), (number, false));
            reply(
                json!({"tokenizeCreditCard": {"paymentMethod": {"id": id}}}),
                vec![],
            )
        }
        "chargePaymentMethod" | "authorizePaymentMethod" => charge(state, operation, input),
        "captureTransaction" => {
            let id = input["transactionId"].as_str().unwrap_or_default();
            let amount = input["transaction"]["amount"].as_str().unwrap_or_default();
            let Some(t) = state.transactions.iter_mut().find(|t| t.id == id) else {
                return reply(
                    json!({"node": null}),
                    vec![error("NOT_FOUND", "no such transaction", None)],
                );
            };
            if t.status != "AUTHORIZED" {
                return validation(
                    "Cannot submit for settlement unless status is authorized.",
                    "91507",
                );
            }
            match (minor(amount), minor(&t.amount)) {
                (Some(a), Some(max)) if a > 0 && a <= max => {}
                _ => return validation("Settlement amount is too large.", "91522"),
            }
            t.amount = amount.to_owned();
            t.status = "SUBMITTED_FOR_SETTLEMENT".into();
            let data =
                json!({"captureTransaction": {"transaction": transaction_json(t, json!([]))}});
            reply(data, vec![])
        }
        "reverseTransaction" => {
            let id = input["transactionId"].as_str().unwrap_or_default();
            let Some(t) = state.transactions.iter_mut().find(|t| t.id == id) else {
                return reply(
                    Value::Null,
                    vec![error("NOT_FOUND", "no such transaction", None)],
                );
            };
            if !matches!(t.status.as_str(), "AUTHORIZED" | "SUBMITTED_FOR_SETTLEMENT") {
                return validation(
                    "Transaction can only be voided if status is authorized, submitted_for_settlement.",
                    "91504",
                );
            }
            t.status = "VOIDED".into();
            reply(
                json!({"reverseTransaction": {"reversal": {"__typename": "Transaction"}}}),
                vec![],
            )
        }
        "refundTransaction" => refund(state, input),
        "transactions(input" => {
            let order_id = vars["orderId"].as_str();
            let edges: Vec<Value> = state
                .transactions
                .iter()
                .filter(|t| t.order_id.as_deref() == order_id)
                .map(|t| json!({"node": {"id": t.id, "status": t.status}}))
                .collect();
            reply(
                json!({"search": {"transactions": {"edges": edges}}}),
                vec![],
            )
        }
        "refunds(input" => {
            let order_id = vars["orderId"].as_str();
            let edges: Vec<Value> = state
                .refunds
                .iter()
                .filter(|r| r.order_id.as_deref() == order_id)
                .map(|r| json!({"node": {"id": r.id, "status": r.status}}))
                .collect();
            reply(json!({"search": {"refunds": {"edges": edges}}}), vec![])
        }
        "node(id" => {
            let id = vars["id"].as_str().unwrap_or_default();
            match state.transactions.iter().find(|t| t.id == id) {
                Some(t) => reply(json!({"node": transaction_json(t, json!([]))}), vec![]),
                None => reply(
                    json!({"node": null}),
                    vec![error(
                        "NOT_FOUND",
                        "An object with this ID was not found.",
                        None,
                    )],
                ),
            }
        }
        _ => reply(
            Value::Null,
            vec![error("VALIDATION", "unknown operation", None)],
        ),
    }
}

fn charge(state: &mut Inner, operation: &str, input: &Value) -> Response {
    let method = input["paymentMethodId"].as_str().unwrap_or_default();
    let transaction = &input["transaction"];
    let Some(amount) = transaction["amount"]
        .as_str()
        .filter(|a| minor(a).is_some())
    else {
        return validation("Amount is an invalid format.", "81503");
    };
    let Some((number, used)) = state.tokens.get_mut(method) else {
        return validation("Unknown or expired payment_method_nonce.", "91565");
    };
    if *used {
        return validation("Cannot use a payment_method_nonce more than once.", "93107");
    }
    *used = true;
    let number = number.clone();
    let merchant_account_id = transaction["merchantAccountId"].as_str().map(str::to_owned);
    let currency = merchant_account_id
        .as_deref()
        .and_then(|a| a.rsplit_once('_'))
        .map_or("EUR".to_owned(), |(_, c)| c.to_owned());
    let decline = match number.as_str() {
        "4000000000000002" => Some(("2000", "Do Not Honor")),
        "4000000000009995" => Some(("2001", "Insufficient Funds")),
        _ => None,
    };
    let (id, legacy_id) = new_id("transaction");
    let status = match (decline, operation) {
        (Some(_), _) => "PROCESSOR_DECLINED",
        (None, "chargePaymentMethod") => "SUBMITTED_FOR_SETTLEMENT",
        (None, _) => "AUTHORIZED",
    };
    let t = FakeTransaction {
        id,
        legacy_id,
        order_id: transaction["orderId"].as_str().map(str::to_owned),
        merchant_account_id,
        amount: amount.to_owned(),
        currency,
        status: status.into(),
    };
    state.transactions.push(t.clone());
    match decline {
        // 2000 comes back as a declined transaction, 2001 as an error: the adapter reads both.
        Some((code @ "2000", message)) => {
            let history = json!([{"__typename": "ProcessorDeclinedEvent",
                "processorResponse": {"legacyCode": code, "message": message}}]);
            reply(
                json!({operation: {"transaction": transaction_json(&t, history)}}),
                vec![],
            )
        }
        Some((code, message)) => reply(
            json!({operation: null}),
            vec![error("VALIDATION", message, Some(code))],
        ),
        None => {
            state.charges += 1;
            reply(
                json!({operation: {"transaction": transaction_json(&t, json!([]))}}),
                vec![],
            )
        }
    }
}

fn refund(state: &mut Inner, input: &Value) -> Response {
    let id = input["transactionId"].as_str().unwrap_or_default();
    let Some(t) = state.transactions.iter().find(|t| t.id == id).cloned() else {
        return reply(
            Value::Null,
            vec![error("NOT_FOUND", "no such transaction", None)],
        );
    };
    if !matches!(t.status.as_str(), "SETTLED" | "SETTLING") {
        return validation("Cannot refund a transaction unless it is settled.", "91506");
    }
    let amount = input["refund"]["amount"]
        .as_str()
        .unwrap_or(&t.amount)
        .to_owned();
    let refunded: i64 = state
        .refunds
        .iter()
        .filter(|r| r.transaction_id == id)
        .filter_map(|r| minor(&r.amount))
        .sum();
    match (minor(&amount), minor(&t.amount)) {
        (Some(a), Some(total)) if a > 0 && refunded + a <= total => {}
        _ => return validation("Refund amount is too large.", "91521"),
    }
    let (refund_id, _) = new_id("refund");
    let r = FakeRefund {
        id: refund_id,
        transaction_id: id.to_owned(),
        order_id: input["refund"]["orderId"].as_str().map(str::to_owned),
        amount,
        status: "SUBMITTED_FOR_SETTLEMENT".into(),
    };
    state.refunds.push(r.clone());
    reply(
        json!({"refundTransaction": {"refund": {"id": r.id, "status": r.status}}}),
        vec![],
    )
}
