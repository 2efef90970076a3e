//! The PayPal adapter against the local fake PayPal: no database needed.

use std::time::Duration;

use axum::http::HeaderMap;
use mercato_payments::providers::paypal::PayPal;
use mercato_payments::providers::{
    CardDetails, CardRef, ChargeRequest, Provider, ProviderError, WebhookError, WebhookKind,
};
use serde_json::json;

use crate::fake_paypal::{self, FakePayPal};

fn details(number: &str) -> CardDetails {
    CardDetails {
        number: number.to_owned(),
        exp_month: 3,
        exp_year: 2034,
        cvc: "937".to_owned(),
    }
}

/// Vaults `number` and builds a charge request for it.
async fn request(
    paypal: &PayPal,
    number: &str,
    amount: i64,
    currency: &str,
    capture: bool,
    key: &str,
) -> Result<ChargeRequest, ProviderError> {
    let vault_id = paypal.tokenize(&details(number)).await?;
    Ok(ChargeRequest {
        payment_id: "pay_0001".to_owned(),
        amount,
        currency: currency.to_owned(),
        capture,
        card: CardRef {
            token: "tok_1".to_owned(),
            brand: "visa".to_owned(),
            last4: number[number.len() - 4..].to_owned(),
            exp_month: 3,
            exp_year: 2034,
        },
        provider_method: vault_id,
        customer_email: None,
        idempotency_key: key.to_owned(),
    })
}

async fn charge(
    paypal: &PayPal,
    number: &str,
    amount: i64,
    currency: &str,
    capture: bool,
    key: &str,
) -> Result<mercato_payments::providers::Charge, ProviderError> {
    let request = request(paypal, number, amount, currency, capture, key).await?;
    paypal.charge(&request).await
}

const OK_CARD: &str = "4242424242424242";

#[tokio::test]
async fn captures_a_charge_and_sends_the_idempotency_key() {
    let fake = FakePayPal::start().await;
    let paypal = fake.client();
    let charge = charge(&paypal, OK_CARD, 1234, "EUR", true, "key-1")
        .await
        .unwrap();
    assert!(charge.captured);
    assert!(
        !charge.reference.starts_with("auth:"),
        "{}",
        charge.reference
    );
    assert_eq!(fake.charges(), 1);
    assert_eq!(
        fake.request_ids("/v2/checkout/orders"),
        [Some("key-1".to_owned())]
    );
    let order = &fake.order_requests()[0];
    assert_eq!(order["intent"], "CAPTURE");
    assert_eq!(order["purchase_units"][0]["custom_id"], "pay_0001");
    assert!(order["payment_source"]["card"]["vault_id"].is_string());
    assert!(
        fake.request_ids("/v3/vault").iter().all(Option::is_some),
        "vaulting is a POST and carries a request id too"
    );
}

#[tokio::test]
async fn authorizes_then_captures_then_refunds_through_the_authorization() {
    let fake = FakePayPal::start().await;
    let paypal = fake.client();
    let charge = charge(&paypal, OK_CARD, 5000, "USD", false, "key-a")
        .await
        .unwrap();
    assert!(!charge.captured);
    let authorization = charge.reference.strip_prefix("auth:").unwrap();
    assert_eq!(fake.order_requests()[0]["intent"], "AUTHORIZE");

    paypal
        .capture(&charge.reference, 4000, "key-a-capture")
        .await
        .unwrap();
    assert_eq!(fake.authorization_status(authorization), "CAPTURED");
    // A retry of the capture with its key is answered from PayPal's memory.
    paypal
        .capture(&charge.reference, 4000, "key-a-capture")
        .await
        .unwrap();

    let receipt = paypal
        .refund(&charge.reference, 4000, "key-a-refund")
        .await
        .unwrap();
    assert!(receipt.settled);
    // 4000 of 4000 captured are refunded: one cent more is refused.
    let more = paypal.refund(&charge.reference, 1, "key-a-refund-2").await;
    assert!(matches!(more, Err(ProviderError::Rejected(_))), "{more:?}");
}

#[tokio::test]
async fn voids_an_authorization() {
    let fake = FakePayPal::start().await;
    let paypal = fake.client();
    let charge = charge(&paypal, OK_CARD, 5000, "EUR", false, "key-v")
        .await
        .unwrap();
    paypal
        .cancel(&charge.reference, "key-v-cancel")
        .await
        .unwrap();
    let authorization = charge.reference.strip_prefix("auth:").unwrap();
    assert_eq!(fake.authorization_status(authorization), "VOIDED");

    let capture = paypal
        .capture(&charge.reference, 5000, "key-v-capture")
        .await;
    assert!(
        matches!(capture, Err(ProviderError::Rejected(_))),
        "{capture:?}"
    );
}

#[tokio::test]
async fn cannot_void_or_capture_a_captured_charge() {
    let fake = FakePayPal::start().await;
    let paypal = fake.client();
    let charge = charge(&paypal, OK_CARD, 5000, "EUR", true, "key-c")
        .await
        .unwrap();
    let cancel = paypal.cancel(&charge.reference, "key-c-cancel").await;
    assert!(
        matches!(cancel, Err(ProviderError::Rejected(_))),
        "{cancel:?}"
    );
}

#[tokio::test]
async fn refunds_fully_and_partially() {
    let fake = FakePayPal::start().await;
    let paypal = fake.client();
    let charge = charge(&paypal, OK_CARD, 1234, "EUR", true, "key-r")
        .await
        .unwrap();

    let first = paypal
        .refund(&charge.reference, 500, "key-r-1")
        .await
        .unwrap();
    assert!(first.settled);
    let second = paypal
        .refund(&charge.reference, 734, "key-r-2")
        .await
        .unwrap();
    assert!(second.settled);
    assert_ne!(first.reference, second.reference);
    // The same key is the same refund, not a third one.
    let again = paypal
        .refund(&charge.reference, 734, "key-r-2")
        .await
        .unwrap();
    assert_eq!(again, second);

    let over = paypal.refund(&charge.reference, 1, "key-r-3").await;
    assert!(matches!(over, Err(ProviderError::Rejected(_))), "{over:?}");
}

#[tokio::test]
async fn a_pending_refund_is_not_settled() {
    let fake = FakePayPal::start().await;
    let paypal = fake.client();
    let charge = charge(&paypal, OK_CARD, 1234, "EUR", true, "key-p")
        .await
        .unwrap();
    fake.pend_refunds();
    let receipt = paypal
        .refund(&charge.reference, 1234, "key-p-1")
        .await
        .unwrap();
    assert!(!receipt.settled);
}

#[tokio::test]
async fn formats_amounts_with_the_currency_decimals() {
    let fake = FakePayPal::start().await;
    let paypal = fake.client();
    charge(&paypal, OK_CARD, 1500, "JPY", true, "key-jpy")
        .await
        .unwrap();
    charge(&paypal, OK_CARD, 1234, "EUR", true, "key-eur")
        .await
        .unwrap();
    charge(&paypal, OK_CARD, 1234, "KWD", true, "key-kwd")
        .await
        .unwrap();
    let amounts: Vec<_> = fake
        .order_requests()
        .iter()
        .map(|o| o["purchase_units"][0]["amount"].clone())
        .collect();
    assert_eq!(
        amounts,
        [
            json!({"currency_code": "JPY", "value": "1500"}),
            json!({"currency_code": "EUR", "value": "12.34"}),
            json!({"currency_code": "KWD", "value": "1.234"}),
        ]
    );
}

#[tokio::test]
async fn declines_carry_the_platform_code() {
    let fake = FakePayPal::start().await;
    let paypal = fake.client();
    let code = |result: Result<_, ProviderError>| match result {
        Err(ProviderError::Declined { code, .. }) => code,
        other => panic!("expected a decline, got {other:?}"),
    };
    let declined = charge(&paypal, "4000000000000002", 1000, "EUR", true, "key-d1").await;
    assert_eq!(code(declined), "card_declined");
    let broke = charge(&paypal, "4000000000009995", 1000, "EUR", true, "key-d2").await;
    assert_eq!(code(broke), "insufficient_funds");
    let capture_declined = charge(&paypal, "4000000000000127", 1000, "EUR", true, "key-d3").await;
    assert_eq!(code(capture_declined), "card_declined");
    assert_eq!(fake.charges(), 0);
}

#[tokio::test]
async fn wrong_credentials_are_rejected() {
    let fake = FakePayPal::start().await;
    let paypal = fake.client_with_secret("not-the-secret");
    let result = paypal.tokenize(&details(OK_CARD)).await;
    let Err(ProviderError::Rejected(message)) = result else {
        panic!("expected a rejection, got {result:?}");
    };
    assert!(message.contains("invalid_client"), "{message}");
    assert!(!message.contains("not-the-secret"), "{message}");
}

#[tokio::test]
async fn reuses_the_token_and_refreshes_an_expired_one_transparently() {
    let fake = FakePayPal::start().await;
    let paypal = fake.client();
    charge(&paypal, OK_CARD, 1000, "EUR", true, "key-t1")
        .await
        .unwrap();
    assert_eq!(fake.token_requests(), 1, "one token serves every call");

    fake.expire_tokens();
    charge(&paypal, OK_CARD, 1000, "EUR", true, "key-t2")
        .await
        .unwrap();
    assert_eq!(fake.token_requests(), 2);
    assert_eq!(fake.charges(), 2);
}

#[tokio::test]
async fn server_errors_are_unavailable_and_pass() {
    let fake = FakePayPal::start().await;
    let paypal = fake.client();
    let request = request(&paypal, OK_CARD, 1000, "EUR", true, "key-500")
        .await
        .unwrap();
    fake.fail_next(1);
    let failed = paypal.charge(&request).await;
    assert!(
        matches!(failed, Err(ProviderError::Unavailable(_))),
        "{failed:?}"
    );
    paypal.charge(&request).await.unwrap();
    assert_eq!(fake.charges(), 1);
}

#[tokio::test]
async fn a_stalled_charge_retried_with_its_key_charges_once() {
    let fake = FakePayPal::start().await;
    let paypal = fake.client();
    let request = request(&paypal, OK_CARD, 1000, "EUR", true, "key-stall")
        .await
        .unwrap();
    fake.stall_next();
    let timed_out = paypal.charge(&request).await;
    let Err(ProviderError::Unavailable(message)) = &timed_out else {
        panic!("expected unavailable, got {timed_out:?}");
    };
    assert!(message.contains("did not answer in time"), "{message}");
    assert_eq!(fake.charges(), 1, "the stalled call charged");

    let retried = paypal.charge(&request).await.unwrap();
    assert!(retried.captured);
    assert_eq!(fake.charges(), 1, "the retry found the first charge");
}

#[tokio::test]
async fn an_unreachable_paypal_is_unreachable() {
    // Bind and drop a listener to get a port nothing listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let paypal = PayPal::new(
        &url,
        "id",
        "secret",
        Some("WH-1".into()),
        Duration::from_secs(1),
    );
    let paypal = paypal.unwrap();
    let result = paypal.tokenize(&details(OK_CARD)).await;
    assert!(
        matches!(result, Err(ProviderError::Unreachable(_))),
        "{result:?}"
    );

    // Verifying a webhook needs PayPal too: the sender should deliver again later.
    let mut headers = HeaderMap::new();
    for name in [
        "paypal-auth-algo",
        "paypal-cert-url",
        "paypal-transmission-id",
        "paypal-transmission-sig",
        "paypal-transmission-time",
    ] {
        headers.insert(name, "x".parse().unwrap());
    }
    let result = paypal.webhook(&headers, &capture_completed("E")).await;
    assert!(
        matches!(result, Err(WebhookError::Unavailable(_))),
        "{result:?}"
    );
}

fn capture_completed(id: &str) -> Vec<u8> {
    json!({"id": id, "event_type": "PAYMENT.CAPTURE.COMPLETED", "resource_type": "capture",
           "summary": "Payment completed for EUR 12.34",
           "resource": {"id": "CAP-1", "status": "COMPLETED",
                        "supplementary_data": {"related_ids": {"order_id": "O-1"}}}})
    .to_string()
    .into_bytes()
}

#[tokio::test]
async fn accepts_a_correctly_signed_webhook() {
    let fake = FakePayPal::start().await;
    let paypal = fake.client();
    let body = capture_completed("WH-EVT-1");
    let event = paypal
        .webhook(&fake.signed_headers("tx-1"), &body)
        .await
        .unwrap();
    assert_eq!(event.id, "WH-EVT-1");
    assert_eq!(
        event.kind,
        WebhookKind::ChargeSucceeded {
            reference: "CAP-1".to_owned()
        }
    );
}

#[tokio::test]
async fn reads_refund_dispute_and_denial_webhooks() {
    let fake = FakePayPal::start().await;
    let paypal = fake.client();
    let cases = [
        (
            json!({"id": "E1", "event_type": "PAYMENT.CAPTURE.REFUNDED", "resource": {"id": "REF-1"}}),
            WebhookKind::RefundSucceeded {
                reference: "REF-1".to_owned(),
            },
        ),
        (
            json!({"id": "E2", "event_type": "CUSTOMER.DISPUTE.CREATED",
                   "resource": {"dispute_id": "PP-D-1", "disputed_transactions": [{"seller_transaction_id": "CAP-9"}]}}),
            WebhookKind::Disputed {
                reference: "CAP-9".to_owned(),
            },
        ),
        (
            json!({"id": "E3", "event_type": "PAYMENT.CAPTURE.DENIED", "summary": "denied",
                   "resource": {"id": "CAP-2", "supplementary_data": {"related_ids": {"authorization_id": "AUTH-2"}}}}),
            WebhookKind::ChargeFailed {
                reference: "auth:AUTH-2".to_owned(),
                code: "card_declined".to_owned(),
                message: "denied".to_owned(),
            },
        ),
        (
            json!({"id": "E4", "event_type": "BILLING.PLAN.CREATED", "resource": {}}),
            WebhookKind::Other("BILLING.PLAN.CREATED".to_owned()),
        ),
    ];
    for (i, (body, kind)) in cases.into_iter().enumerate() {
        let headers = fake.signed_headers(&format!("tx-{i}"));
        let event = paypal
            .webhook(&headers, body.to_string().as_bytes())
            .await
            .unwrap();
        assert_eq!(event.kind, kind);
    }
}

#[tokio::test]
async fn rejects_a_webhook_with_a_wrong_signature() {
    let fake = FakePayPal::start().await;
    let paypal = fake.client();
    let mut headers = fake.signed_headers("tx-bad");
    headers.insert("paypal-transmission-sig", "forged".parse().unwrap());
    let result = paypal.webhook(&headers, &capture_completed("E")).await;
    assert!(
        matches!(result, Err(WebhookError::Signature(_))),
        "{result:?}"
    );

    // A signature is good for its own transmission only.
    let mut headers = fake.signed_headers("tx-a");
    let other = fake.signed_headers("tx-b");
    headers.insert(
        "paypal-transmission-sig",
        other["paypal-transmission-sig"].clone(),
    );
    let result = paypal.webhook(&headers, &capture_completed("E")).await;
    assert!(
        matches!(result, Err(WebhookError::Signature(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn rejects_a_webhook_without_signature_headers() {
    let fake = FakePayPal::start().await;
    let paypal = fake.client();
    let result = paypal
        .webhook(&HeaderMap::new(), &capture_completed("E"))
        .await;
    assert!(
        matches!(result, Err(WebhookError::Signature(_))),
        "{result:?}"
    );

    let mut headers = fake.signed_headers("tx-partial");
    headers.remove("paypal-cert-url");
    let result = paypal.webhook(&headers, &capture_completed("E")).await;
    assert!(
        matches!(result, Err(WebhookError::Signature(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn rejects_a_malformed_webhook_and_one_nobody_configured() {
    let fake = FakePayPal::start().await;
    let result = fake
        .client()
        .webhook(&fake.signed_headers("tx-m"), b"{not json")
        .await;
    assert!(
        matches!(result, Err(WebhookError::Malformed(_))),
        "{result:?}"
    );

    let unconfigured = fake.client_with_secret(fake_paypal::CLIENT_SECRET);
    let result = unconfigured
        .webhook(&fake.signed_headers("tx-u"), &capture_completed("E"))
        .await;
    assert_eq!(result, Err(WebhookError::Unsupported));
}

#[tokio::test]
async fn a_webhook_that_cannot_be_verified_is_unavailable() {
    let fake = FakePayPal::start().await;
    let paypal = fake.client();
    // Get a token first, so the failure hits the verification call itself.
    paypal.tokenize(&details(OK_CARD)).await.unwrap();
    fake.fail_next(2);
    let result = paypal
        .webhook(&fake.signed_headers("tx-down"), &capture_completed("E"))
        .await;
    assert!(
        matches!(result, Err(WebhookError::Unavailable(_))),
        "{result:?}"
    );
}
