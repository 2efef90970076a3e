//! Braintree adapter over Braintree's GraphQL API (`POST {base}/graphql`, version
//! `2019-01-01`), plus verification of Braintree's signed webhooks.
//!
//! Cards are tokenized with `tokenizeCreditCard` into a single-use payment method, charged with
//! `chargePaymentMethod` (capture at once) or `authorizePaymentMethod` (capture later with
//! `captureTransaction`), voided with `reverseTransaction` and refunded with
//! `refundTransaction`.
//!
//! # Idempotency
//!
//! Braintree's GraphQL API takes no idempotency key, so a charge repeated after a timeout
//! could charge twice. Every charge therefore carries the platform's payment id as the
//! transaction's `orderId`, and *before* charging the adapter searches for a transaction with
//! that `orderId`: if one exists and has not failed (declined, rejected, voided, expired), it is
//! the outcome of an earlier attempt and is returned instead of charging again. Searching on
//! every charge costs one extra request but needs no memory of which attempts timed out.
//! Refunds do the same with the refund's `orderId` set to the idempotency key. Captures and
//! voids are idempotent by state: when Braintree refuses one as invalid, the transaction is
//! read back and a transaction already captured (or voided) counts as success.
//!
//! # References
//!
//! Charge references are GraphQL ids (`dHJhbnNhY3Rpb25f…`, the base64 of
//! `transaction_<legacy id>`). Webhooks carry legacy ids, which are converted to GraphQL ids
//! the same way so that both name a charge alike.

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use hmac::{KeyInit, Mac};
use mercato_kernel::config::Secret;
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use sha1::{Digest, Sha1};

use super::{
    CardDetails, Charge, ChargeRequest, Provider, ProviderError, RefundReceipt, WebhookError,
    WebhookEvent, WebhookKind, decimal_amount,
};

/// Braintree's production API root.
pub const BRAINTREE_API_URL: &str = "https://payments.braintree-api.com";

/// Braintree's sandbox API root.
pub const BRAINTREE_SANDBOX_URL: &str = "https://payments.sandbox.braintree-api.com";

/// The API version sent as `Braintree-Version`: it fixes the schema the queries below target.
pub const BRAINTREE_VERSION: &str = "2019-01-01";

type HmacSha1 = hmac::Hmac<Sha1>;

/// The fields read from every transaction: its status, and why it failed when it did (the
/// most recent status event comes first).
const TRANSACTION_FIELDS: &str = "id status statusHistory { __typename \
    ... on ProcessorDeclinedEvent { processorResponse { legacyCode message } } \
    ... on GatewayRejectedEvent { gatewayRejectionReason } }";

/// The Braintree provider: one HTTP client with the account's API key pair.
pub struct Braintree {
    client: reqwest::Client,
    endpoint: String,
    public_key: String,
    private_key: Secret,
    merchant_account_id: Option<String>,
}

pub use super::http::SetupError;

impl std::fmt::Debug for Braintree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Braintree")
            .field("endpoint", &self.endpoint)
            .field("public_key", &self.public_key)
            .field("private_key", &self.private_key)
            .field("merchant_account_id", &self.merchant_account_id)
            .finish_non_exhaustive()
    }
}

impl Braintree {
    /// A client for the API at `base_url` ([`BRAINTREE_API_URL`], [`BRAINTREE_SANDBOX_URL`] or
    /// a fake in tests) with the account's key pair; charges go to `merchant_account_id` when
    /// given (it fixes the currency), else to the account's default. Each call gives up after
    /// `timeout`, and is then reported as [`ProviderError::Unavailable`].
    pub fn new(
        base_url: &str,
        public_key: impl Into<String>,
        private_key: impl Into<Secret>,
        merchant_account_id: Option<String>,
        timeout: Duration,
    ) -> Result<Self, SetupError> {
        let (client, base_url) = super::http::client("braintree", base_url, timeout)?;
        Ok(Self {
            client,
            endpoint: format!("{base_url}/graphql"),
            public_key: public_key.into(),
            private_key: private_key.into(),
            merchant_account_id,
        })
    }

    /// Sends one GraphQL document; `what` names the operation in error messages ("charging a
    /// card"). Connection failures are `Unreachable`; timeouts, 5xx and 429 are `Unavailable`;
    /// 401/403 and other 4xx are `Rejected`; GraphQL `errors` are returned with the data for
    /// the caller to judge.
    async fn graphql(
        &self,
        what: &str,
        query: &str,
        variables: Value,
    ) -> Result<Reply, ProviderError> {
        let response = self
            .client
            .post(&self.endpoint)
            .basic_auth(&self.public_key, Some(self.private_key.expose()))
            .header("Braintree-Version", BRAINTREE_VERSION)
            .json(&json!({"query": query, "variables": variables}))
            .send()
            .await
            .map_err(|e| super::http::network_error("braintree", what, &e))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| super::http::network_error("braintree", what, &e))?;
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(ProviderError::Rejected(format!(
                "{what}: braintree refused the api keys (http {})",
                status.as_u16()
            )));
        }
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            return Err(ProviderError::Unavailable(format!(
                "{what}: braintree answered http {}",
                status.as_u16()
            )));
        }
        if !status.is_success() {
            return Err(ProviderError::Rejected(format!(
                "{what}: braintree answered http {}: {}",
                status.as_u16(),
                String::from_utf8_lossy(&bytes)
                    .chars()
                    .take(300)
                    .collect::<String>()
            )));
        }
        // A 2xx we cannot read may still mean the operation happened: report it as
        // unavailable, so the caller repeats it and the orderId search finds the outcome.
        serde_json::from_slice(&bytes).map_err(|e| {
            ProviderError::Unavailable(format!("{what}: unreadable braintree response: {e}"))
        })
    }

    /// The live transaction of an earlier attempt at this payment, if any.
    async fn find_charge(&self, payment_id: &str) -> Result<Option<Transaction>, ProviderError> {
        const QUERY: &str = "query FindTransaction($orderId: String!) { search { \
            transactions(input: {orderId: {is: $orderId}}) { edges { node { id status } } } } }";
        let what = "searching for an earlier charge";
        let reply = self
            .graphql(what, QUERY, json!({"orderId": payment_id}))
            .await?;
        let edges: Vec<Edge<Transaction>> =
            reply.field(what, &["search", "transactions", "edges"])?;
        Ok(edges
            .into_iter()
            .map(|edge| edge.node)
            .find(|transaction| !transaction.status.is_failed()))
    }

    /// The refund an earlier attempt with this idempotency key created, if any.
    async fn find_refund(&self, key: &str) -> Result<Option<Refund>, ProviderError> {
        const QUERY: &str = "query FindRefund($orderId: String!) { search { \
            refunds(input: {orderId: {is: $orderId}}) { edges { node { id status } } } } }";
        let what = "searching for an earlier refund";
        let reply = self.graphql(what, QUERY, json!({"orderId": key})).await?;
        let edges: Vec<Edge<Refund>> = reply.field(what, &["search", "refunds", "edges"])?;
        Ok(edges
            .into_iter()
            .map(|edge| edge.node)
            .find(|refund| !refund.status.is_failed()))
    }

    /// The transaction's status and currency: to tell a repeated capture or void from a real
    /// error, and to format amounts (the trait passes captures and refunds no currency).
    async fn lookup(&self, reference: &str) -> Result<Lookup, ProviderError> {
        const QUERY: &str = "query Transaction($id: ID!) { node(id: $id) { \
            ... on Transaction { id status amount { currencyCode } } } }";
        let what = "reading a transaction";
        let reply = self.graphql(what, QUERY, json!({"id": reference})).await?;
        reply.field(what, &["node"])
    }

    /// Runs a capture or void; when Braintree refuses it as invalid and the transaction is
    /// already where the operation would take it (`done`), an earlier attempt succeeded.
    async fn transition(
        &self,
        what: &str,
        query: &str,
        variables: Value,
        reference: &str,
        done: fn(PaymentStatus) -> bool,
    ) -> Result<(), ProviderError> {
        let reply = self.graphql(what, query, variables).await?;
        if reply.errors.is_empty() {
            return Ok(());
        }
        let error = reply.error(what);
        if matches!(error, ProviderError::Rejected(_)) && done(self.lookup(reference).await?.status)
        {
            return Ok(());
        }
        Err(error)
    }
}

#[async_trait]
impl Provider for Braintree {
    fn name(&self) -> &'static str {
        "braintree"
    }

    /// Vaults the card as a single-use payment method (valid for three hours, one charge):
    /// Braintree must hold the number to charge it, and the platform keeps only the token.
    async fn tokenize(&self, card: &CardDetails) -> Result<Option<String>, ProviderError> {
        const QUERY: &str = "mutation TokenizeCreditCard($input: TokenizeCreditCardInput!) { \
            tokenizeCreditCard(input: $input) { paymentMethod { id } } }";
        let what = "tokenizing a card";
        let variables = json!({"input": {"creditCard": {
            "number": card.number,
            "expirationMonth": format!("{:02}", card.exp_month),
            "expirationYear": card.exp_year.to_string(),
            "cvv": card.cvc,
        }}});
        let reply = self.graphql(what, QUERY, variables).await?;
        if !reply.errors.is_empty() {
            return Err(reply.error(what));
        }
        let method: Node = reply.field(what, &["tokenizeCreditCard", "paymentMethod"])?;
        Ok(Some(method.id))
    }

    /// Searches for an earlier attempt first (see the module docs), then charges or
    /// authorizes the payment method `tokenize` returned.
    async fn charge(&self, request: &ChargeRequest) -> Result<Charge, ProviderError> {
        let Some(method) = &request.provider_method else {
            return Err(ProviderError::Rejected(
                "charging a card: braintree needs the card tokenized with braintree".into(),
            ));
        };
        let amount = decimal_amount(request.amount, &request.currency)?;
        if let Some(earlier) = self.find_charge(&request.payment_id).await? {
            tracing::info!(payment_id = %request.payment_id, reference = %earlier.id,
                "braintree charge found from an earlier attempt");
            return Ok(Charge {
                captured: earlier.status.is_captured(),
                reference: earlier.id,
            });
        }
        let (what, mutation) = if request.capture {
            ("charging a card", "chargePaymentMethod")
        } else {
            ("authorizing a card", "authorizePaymentMethod")
        };
        let input_type = if request.capture {
            "ChargePaymentMethodInput"
        } else {
            "AuthorizePaymentMethodInput"
        };
        let query = format!(
            "mutation Charge($input: {input_type}!) {{ {mutation}(input: $input) {{ \
             transaction {{ {TRANSACTION_FIELDS} }} }} }}"
        );
        let mut transaction = json!({"amount": amount, "orderId": request.payment_id});
        if let Some(account) = &self.merchant_account_id {
            transaction["merchantAccountId"] = json!(account);
        }
        let variables = json!({"input": {"paymentMethodId": method, "transaction": transaction}});
        let reply = self.graphql(what, &query, variables).await?;
        // A declined transaction may come back as data, errors, or both: data first, as it
        // carries the processor's response.
        let transaction = reply
            .data
            .get(mutation)
            .and_then(|m| m.get("transaction"))
            .filter(|t| !t.is_null())
            .map(|t| Transaction::deserialize(t.clone()));
        match transaction {
            Some(Ok(transaction)) if transaction.status.is_failed() => Err(transaction.decline()),
            Some(Ok(transaction)) => Ok(Charge {
                captured: transaction.status.is_captured(),
                reference: transaction.id,
            }),
            _ if !reply.errors.is_empty() => Err(reply.error(what)),
            Some(Err(e)) => Err(ProviderError::Unavailable(format!(
                "{what}: unreadable braintree transaction: {e}"
            ))),
            None => Err(ProviderError::Unavailable(format!(
                "{what}: braintree answered without a transaction"
            ))),
        }
    }

    /// Submits `amount` of an authorization for settlement.
    async fn capture(
        &self,
        reference: &str,
        amount: i64,
        _idempotency_key: &str,
    ) -> Result<(), ProviderError> {
        const QUERY: &str = "mutation Capture($input: CaptureTransactionInput!) { \
            captureTransaction(input: $input) { transaction { id status } } }";
        let currency = self.lookup(reference).await?.amount.currency_code;
        let amount = decimal_amount(amount, &currency)?;
        let variables = json!({"input": {
            "transactionId": reference,
            "transaction": {"amount": amount},
        }});
        self.transition(
            "capturing a charge",
            QUERY,
            variables,
            reference,
            PaymentStatus::is_captured,
        )
        .await
    }

    /// Voids an authorization with `reverseTransaction`.
    async fn cancel(&self, reference: &str, _idempotency_key: &str) -> Result<(), ProviderError> {
        const QUERY: &str = "mutation Reverse($input: ReverseTransactionInput!) { \
            reverseTransaction(input: $input) { reversal { __typename } } }";
        self.transition(
            "voiding a charge",
            QUERY,
            json!({"input": {"transactionId": reference}}),
            reference,
            |status| status == PaymentStatus::Voided,
        )
        .await
    }

    /// Refunds `amount`, labelled with the idempotency key so a repeat finds the first refund.
    async fn refund(
        &self,
        reference: &str,
        amount: i64,
        idempotency_key: &str,
    ) -> Result<RefundReceipt, ProviderError> {
        const QUERY: &str = "mutation Refund($input: RefundTransactionInput!) { \
            refundTransaction(input: $input) { refund { id status } } }";
        let what = "refunding a charge";
        if let Some(earlier) = self.find_refund(idempotency_key).await? {
            return Ok(earlier.receipt());
        }
        let currency = self.lookup(reference).await?.amount.currency_code;
        let amount = decimal_amount(amount, &currency)?;
        let variables = json!({"input": {
            "transactionId": reference,
            "refund": {"amount": amount, "orderId": idempotency_key},
        }});
        let reply = self.graphql(what, QUERY, variables).await?;
        if !reply.errors.is_empty() {
            return Err(reply.error(what));
        }
        let refund: Refund = reply.field(what, &["refundTransaction", "refund"])?;
        if refund.status.is_failed() {
            return Err(ProviderError::Declined {
                code: "refund_failed".into(),
                message: format!("braintree refused the refund ({:?})", refund.status),
            });
        }
        Ok(refund.receipt())
    }

    /// Verifies `bt_signature` against `bt_payload` and reads the notification's kind and
    /// subject. Braintree sends no event id, so the id is `{kind}:{timestamp}:{subject id}`:
    /// a redelivery carries the same three, and a new event differs in at least one.
    async fn webhook(
        &self,
        _headers: &axum::http::HeaderMap,
        body: &[u8],
    ) -> Result<WebhookEvent, WebhookError> {
        let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
            .map_err(|e| WebhookError::Malformed(format!("body is not a form: {e}")))?;
        let mut signature = None;
        let mut payload = None;
        for (name, value) in fields {
            match name.as_str() {
                "bt_signature" => signature = Some(value),
                "bt_payload" => payload = Some(value),
                _ => {}
            }
        }
        let payload = payload.ok_or_else(|| WebhookError::Malformed("no bt_payload".into()))?;
        let signature =
            signature.ok_or_else(|| WebhookError::Signature("no bt_signature".into()))?;
        verify_signature(
            &self.public_key,
            self.private_key.expose(),
            &signature,
            &payload,
        )?;
        parse_notification(&payload)
    }
}

/// Checks `signature` (`public_key|hex(HMAC-SHA1(SHA1(private_key), payload))`, possibly
/// several pairs joined by `&`) in constant time, against the pair for `public_key`.
pub fn verify_signature(
    public_key: &str,
    private_key: &str,
    signature: &str,
    payload: &str,
) -> Result<(), WebhookError> {
    let key = Sha1::digest(private_key.as_bytes());
    let matches = signature
        .split('&')
        .filter_map(|pair| pair.split_once('|'))
        .filter(|(key_id, _)| *key_id == public_key)
        .filter_map(|(_, hex_mac)| hex::decode(hex_mac.trim()).ok())
        .any(|expected| {
            HmacSha1::new_from_slice(&key)
                .map(|mut mac| {
                    mac.update(payload.as_bytes());
                    mac.verify_slice(&expected).is_ok()
                })
                .unwrap_or(false)
        });
    if matches {
        Ok(())
    } else {
        Err(WebhookError::Signature(
            "no valid signature for this public key".into(),
        ))
    }
}

/// Reads a verified `bt_payload`: base64 of a `<notification>` XML document.
fn parse_notification(payload: &str) -> Result<WebhookEvent, WebhookError> {
    let compact: String = payload.split_whitespace().collect();
    let bytes = STANDARD
        .decode(compact.as_bytes())
        .map_err(|e| WebhookError::Malformed(format!("bt_payload is not base64: {e}")))?;
    let xml = String::from_utf8(bytes)
        .map_err(|_| WebhookError::Malformed("bt_payload is not utf-8".into()))?;
    let malformed = |what: &str| WebhookError::Malformed(format!("notification has no {what}"));
    let kind = element(&xml, "kind")
        .ok_or_else(|| malformed("kind"))?
        .trim();
    let timestamp = element(&xml, "timestamp")
        .ok_or_else(|| malformed("timestamp"))?
        .trim();
    let subject = element(&xml, "subject").ok_or_else(|| malformed("subject"))?;
    let transaction_id = || {
        element(subject, "transaction")
            .and_then(|transaction| child(transaction, "id"))
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| malformed("transaction id"))
    };
    let (subject_id, kind_of) = match kind {
        "transaction_settled" => {
            let id = transaction_id()?;
            let reference = graphql_id("transaction", id);
            (id, WebhookKind::ChargeSucceeded { reference })
        }
        "transaction_settlement_declined" => {
            let id = transaction_id()?;
            let message = element(subject, "processor-settlement-response-text")
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .unwrap_or("the processor declined to settle the transaction");
            let failed = WebhookKind::ChargeFailed {
                reference: graphql_id("transaction", id),
                code: "settlement_declined".into(),
                message: message.to_owned(),
            };
            (id, failed)
        }
        "dispute_opened" => {
            let dispute = element(subject, "dispute").ok_or_else(|| malformed("dispute"))?;
            let dispute_id = child(dispute, "id")
                .map(str::trim)
                .ok_or_else(|| malformed("dispute id"))?;
            let reference = graphql_id("transaction", transaction_id()?);
            (dispute_id, WebhookKind::Disputed { reference })
        }
        other => {
            let id = first_child_id(subject).unwrap_or("");
            (id, WebhookKind::Other(other.to_owned()))
        }
    };
    Ok(WebhookEvent {
        id: format!("{kind}:{timestamp}:{subject_id}"),
        kind: kind_of,
    })
}

/// The GraphQL id of a legacy id: unpadded base64 of `{type}_{legacy id}`, which is how
/// Braintree forms them (the `idFromLegacyId` query answers the same, at the cost of a call).
pub fn graphql_id(kind: &str, legacy_id: &str) -> String {
    STANDARD_NO_PAD.encode(format!("{kind}_{legacy_id}"))
}

/// The inner text of the first `<name>` element (attributes allowed; `<name/>` is empty),
/// nested elements of the same name included.
fn element<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let (_, inner_start, self_closing) = find_open(xml, name, 0)?;
    if self_closing {
        return Some("");
    }
    let close = format!("</{name}>");
    let mut depth = 1usize;
    let mut at = inner_start;
    loop {
        let next_close = at + xml[at..].find(&close)?;
        match find_open(xml, name, at) {
            Some((open, end, self_closing)) if open < next_close => {
                if !self_closing {
                    depth += 1;
                }
                at = end;
            }
            _ => {
                depth -= 1;
                if depth == 0 {
                    return Some(&xml[inner_start..next_close]);
                }
                at = next_close + close.len();
            }
        }
    }
}

/// Where the next opening tag `<name …>` at or after `from` starts and ends, and whether it
/// closes itself.
fn find_open(xml: &str, name: &str, from: usize) -> Option<(usize, usize, bool)> {
    let needle = format!("<{name}");
    let mut at = from;
    loop {
        let start = at + xml.get(at..)?.find(&needle)?;
        let after = start + needle.len();
        let next = xml[after..].chars().next()?;
        if next == '>' || next == '/' || next.is_whitespace() {
            let end = after + xml[after..].find('>')? + 1;
            return Some((start, end, xml[..end].ends_with("/>")));
        }
        at = after;
    }
}

/// The inner text of the direct child `<name>` of an element's inner XML, skipping
/// grandchildren of the same name (a transaction's `<customer><id>` is not its id).
fn child<'a>(inner: &'a str, name: &str) -> Option<&'a str> {
    let mut depth = 0usize;
    let mut at = 0;
    while let Some(offset) = inner[at..].find('<') {
        let start = at + offset;
        let end = start + inner[start..].find('>')? + 1;
        let tag = &inner[start + 1..end - 1];
        if let Some(_closing) = tag.strip_prefix('/') {
            depth = depth.checked_sub(1)?;
        } else if tag.ends_with('/') || tag.starts_with('?') || tag.starts_with('!') {
            // Empty element, declaration or comment: no depth change.
        } else {
            let tag_name = tag.split_whitespace().next().unwrap_or("");
            if depth == 0 && tag_name == name {
                let close = inner[end..].find(&format!("</{name}>"))?;
                return Some(&inner[end..end + close]);
            }
            depth += 1;
        }
        at = end;
    }
    None
}

/// The id of the subject's first element (for kinds the platform ignores).
fn first_child_id(subject: &str) -> Option<&str> {
    let start = subject.find('<')?;
    let end = start + subject[start..].find('>')?;
    let name = subject[start + 1..end].split_whitespace().next()?;
    child(element(subject, name)?, "id").map(str::trim)
}

/// A GraphQL response body.
#[derive(Debug, Deserialize)]
struct Reply {
    #[serde(default)]
    data: Value,
    #[serde(default)]
    errors: Vec<GraphqlError>,
}

impl Reply {
    /// Decodes the value at `path` under `data`; absent or unreadable means the call's outcome
    /// is unknown (errors are reported first when there are any).
    fn field<T: for<'de> Deserialize<'de>>(
        &self,
        what: &str,
        path: &[&str],
    ) -> Result<T, ProviderError> {
        let value = path
            .iter()
            .try_fold(&self.data, |value, key| value.get(key))
            .filter(|value| !value.is_null());
        match value {
            Some(value) => T::deserialize(value).map_err(|e| {
                ProviderError::Unavailable(format!(
                    "{what}: unreadable braintree `{}`: {e}",
                    path.join(".")
                ))
            }),
            None if !self.errors.is_empty() => Err(self.error(what)),
            None => Err(ProviderError::Unavailable(format!(
                "{what}: braintree answered without `{}`",
                path.join(".")
            ))),
        }
    }

    /// The error the GraphQL `errors` stand for: a processor response code (2000–2999) is a
    /// decline; a validation, authentication or not-found class is our fault; a server-side
    /// class means Braintree failed and the call may be repeated.
    fn error(&self, what: &str) -> ProviderError {
        if let Some((code, message)) = self.errors.iter().find_map(|e| {
            let code: u32 = e.extensions.legacy_code.as_deref()?.parse().ok()?;
            (2000..=2999)
                .contains(&code)
                .then(|| (code, e.message.clone()))
        }) {
            return ProviderError::Declined {
                code: decline_code(code).into(),
                message,
            };
        }
        let Some(first) = self.errors.first() else {
            return ProviderError::Unavailable(format!("{what}: braintree answered no data"));
        };
        let class = first.extensions.error_class.as_deref().unwrap_or("UNKNOWN");
        let text = format!("{what}: {} ({class})", first.message);
        match class {
            "INTERNAL" | "SERVICE_AVAILABILITY" | "RESOURCE_LIMIT" | "UNKNOWN" => {
                ProviderError::Unavailable(text)
            }
            _ => ProviderError::Rejected(text),
        }
    }
}

/// One GraphQL error.
#[derive(Debug, Deserialize)]
struct GraphqlError {
    #[serde(default)]
    message: String,
    #[serde(default)]
    extensions: Extensions,
}

/// Braintree's additions to a GraphQL error.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Extensions {
    error_class: Option<String>,
    legacy_code: Option<String>,
}

/// A search result edge.
#[derive(Debug, Deserialize)]
struct Edge<T> {
    node: T,
}

/// Anything with just an id.
#[derive(Debug, Deserialize)]
struct Node {
    id: String,
}

/// A transaction as the queries above select it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Transaction {
    id: String,
    status: PaymentStatus,
    #[serde(default)]
    status_history: Vec<StatusEvent>,
}

impl Transaction {
    /// The decline a failed transaction stands for, from its latest status event.
    fn decline(&self) -> ProviderError {
        let latest = self.status_history.first();
        let response = latest.and_then(|event| event.processor_response.as_ref());
        let code = response
            .and_then(|r| r.legacy_code.as_deref())
            .and_then(|code| code.parse().ok())
            .map_or("card_declined", decline_code);
        let message = match (
            response,
            latest.and_then(|e| e.gateway_rejection_reason.as_ref()),
        ) {
            (Some(r), _) if r.message.is_some() => r.message.clone().unwrap_or_default(),
            (_, Some(reason)) => format!("rejected by the gateway ({reason})"),
            _ => format!("the transaction {:?}", self.status).to_lowercase(),
        };
        ProviderError::Declined {
            code: code.into(),
            message,
        }
    }
}

/// One entry of a transaction's `statusHistory`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatusEvent {
    processor_response: Option<ProcessorResponse>,
    gateway_rejection_reason: Option<String>,
}

/// The processor's answer to an authorization.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProcessorResponse {
    legacy_code: Option<String>,
    message: Option<String>,
}

/// A transaction's status and currency.
#[derive(Debug, Deserialize)]
struct Lookup {
    status: PaymentStatus,
    amount: Money,
}

/// Braintree's `MonetaryAmount`, as far as it is read.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Money {
    currency_code: String,
}

/// A refund as the queries above select it.
#[derive(Debug, Deserialize)]
struct Refund {
    id: String,
    status: PaymentStatus,
}

impl Refund {
    /// Settled unless Braintree still has to submit it.
    fn receipt(self) -> RefundReceipt {
        RefundReceipt {
            settled: !matches!(
                self.status,
                PaymentStatus::SubmittedForSettlement | PaymentStatus::SettlementPending
            ),
            reference: self.id,
        }
    }
}

/// Braintree's `PaymentStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum PaymentStatus {
    AuthorizationExpired,
    Authorized,
    Authorizing,
    SettlementPending,
    SettlementDeclined,
    Failed,
    GatewayRejected,
    ProcessorDeclined,
    Settled,
    Settling,
    SubmittedForSettlement,
    Voided,
    /// A status added after this adapter was written.
    #[serde(other)]
    Unrecognized,
}

impl PaymentStatus {
    /// The transaction did not and will not move money.
    fn is_failed(self) -> bool {
        matches!(
            self,
            Self::AuthorizationExpired
                | Self::SettlementDeclined
                | Self::Failed
                | Self::GatewayRejected
                | Self::ProcessorDeclined
                | Self::Voided
        )
    }

    /// The money is (being) captured, not only authorized.
    fn is_captured(self) -> bool {
        matches!(
            self,
            Self::SubmittedForSettlement | Self::Settling | Self::SettlementPending | Self::Settled
        )
    }
}

/// The platform's decline code for a Braintree processor response code.
fn decline_code(code: u32) -> &'static str {
    match code {
        2001 => "insufficient_funds",
        2004 => "expired_card",
        _ => "card_declined",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_amounts_by_currency_exponent() {
        assert_eq!(decimal_amount(1234, "EUR").unwrap(), "12.34");
        assert_eq!(decimal_amount(5, "USD").unwrap(), "0.05");
        assert_eq!(decimal_amount(1234, "JPY").unwrap(), "1234");
        assert_eq!(decimal_amount(1234, "KWD").unwrap(), "1.234");
        assert!(decimal_amount(0, "EUR").is_err());
    }

    #[test]
    fn finds_direct_child_ids_only() {
        let xml = "<subject><transaction><customer><id>cus</id></customer><id>tx1</id>\
                   </transaction></subject>";
        let transaction = element(xml, "transaction").unwrap();
        assert_eq!(child(transaction, "id"), Some("tx1"));
    }

    #[test]
    fn reads_elements_with_attributes_and_nesting() {
        let xml = r#"<a><timestamp type="datetime">2024</timestamp><b><b>x</b></b></a>"#;
        assert_eq!(element(xml, "timestamp"), Some("2024"));
        assert_eq!(element(xml, "b"), Some("<b>x</b>"));
        assert_eq!(element(xml, "missing"), None);
    }

    #[test]
    fn forms_graphql_ids_like_braintree() {
        assert_eq!(
            graphql_id("transaction", "kcrtsmf1"),
            "dHJhbnNhY3Rpb25fa2NydHNtZjE"
        );
    }
}
