//! Stripe webhooks: the `Stripe-Signature` check and the events read from verified bodies.

use axum::http::HeaderMap;
use mercato_payments::providers::stripe::{Stripe, verify_webhook};
use mercato_payments::providers::{Provider, WebhookError, WebhookKind};
use serde_json::json;

use crate::fake_stripe::FakeStripe;

const SECRET: &str = "whsec_test_secret";
const EVENT: &[u8] = br#"{"id":"evt_1","type":"payment_intent.succeeded"}"#;
const NOW: i64 = 1_700_000_000;

fn assert_signature_error(result: Result<serde_json::Value, WebhookError>, needle: &str) {
    match result {
        Err(WebhookError::Signature(message)) => {
            assert!(
                message.contains(needle),
                "{message:?} should say {needle:?}"
            )
        }
        other => panic!("expected a signature error saying {needle:?}, got {other:?}"),
    }
}

#[test]
fn accepts_a_good_signature() {
    let header = FakeStripe::sign(EVENT, SECRET, NOW - 10);

    let event = verify_webhook(EVENT, &header, SECRET, NOW, 300).unwrap();

    assert_eq!(event["type"], "payment_intent.succeeded");
}

#[test]
fn matches_a_signature_computed_independently() {
    // printf '%s' '1700000000.{"id":"evt_1","type":"payment_intent.succeeded"}' \
    //   | openssl dgst -sha256 -hmac whsec_test_secret
    let header =
        format!("t={NOW},v1=22d8dc182f5c588077683bd378368e29765bfe5df2560112b4f28fef120f0e31");

    assert!(verify_webhook(EVENT, &header, SECRET, NOW, 300).is_ok());
}

#[test]
fn accepts_any_of_several_signatures_while_a_secret_rolls() {
    let good = FakeStripe::sign(EVENT, SECRET, NOW);
    let old = FakeStripe::sign(EVENT, "whsec_old", NOW);
    let old_v1 = old.split_once(",v1=").unwrap().1;
    let header = format!("{good},v1={old_v1},v0=deadbeef");

    assert!(verify_webhook(EVENT, &header, SECRET, NOW, 300).is_ok());
    assert!(verify_webhook(EVENT, &header, "whsec_old", NOW, 300).is_ok());
}

#[test]
fn rejects_a_signature_made_with_another_secret() {
    let header = FakeStripe::sign(EVENT, "whsec_someone_else", NOW);

    let result = verify_webhook(EVENT, &header, SECRET, NOW, 300);

    assert_signature_error(result, "no stripe signature matches");
}

#[test]
fn rejects_a_tampered_body() {
    let header = FakeStripe::sign(EVENT, SECRET, NOW);
    let tampered = br#"{"id":"evt_1","type":"payment_intent.payment_failed"}"#;

    let result = verify_webhook(tampered, &header, SECRET, NOW, 300);

    assert_signature_error(result, "no stripe signature matches");
}

#[test]
fn rejects_a_webhook_signed_too_long_ago() {
    let header = FakeStripe::sign(EVENT, SECRET, NOW - 301);

    let result = verify_webhook(EVENT, &header, SECRET, NOW, 300);

    assert_signature_error(result, "outside the tolerance");
}

#[test]
fn rejects_an_old_signature_under_a_fresh_timestamp() {
    let header = FakeStripe::sign(EVENT, SECRET, NOW - 1000);
    let v1 = header.split_once(",v1=").unwrap().1;
    let replay = format!("t={NOW},v1={v1}");

    let result = verify_webhook(EVENT, &replay, SECRET, NOW, 300);

    assert_signature_error(result, "no stripe signature matches");
}

#[test]
fn rejects_malformed_signature_headers() {
    for header in ["", "v1=abcd", "t=12", "t=abc,v1=00", "garbage"] {
        let result = verify_webhook(EVENT, header, SECRET, NOW, 300);
        assert_signature_error(result, "malformed stripe-signature header");
    }
}

#[test]
fn rejects_a_signed_body_that_is_not_json() {
    let header = FakeStripe::sign(b"not json", SECRET, NOW);

    let result = verify_webhook(b"not json", &header, SECRET, NOW, 300);

    assert!(
        matches!(result, Err(WebhookError::Malformed(_))),
        "{result:?}"
    );
}

fn now() -> i64 {
    let elapsed = std::time::UNIX_EPOCH.elapsed().unwrap();
    i64::try_from(elapsed.as_secs()).unwrap()
}

/// `body` signed now, as Stripe would deliver it.
fn delivery(body: &serde_json::Value) -> (HeaderMap, Vec<u8>) {
    let body = body.to_string().into_bytes();
    let mut headers = HeaderMap::new();
    let signature = FakeStripe::sign(&body, SECRET, now());
    headers.insert("stripe-signature", signature.parse().unwrap());
    (headers, body)
}

fn stripe() -> Stripe {
    Stripe::new(
        "http://127.0.0.1:9",
        "sk_test_x",
        std::time::Duration::from_secs(1),
    )
    .unwrap()
    .with_webhook_secret(SECRET)
}

async fn read(body: serde_json::Value) -> WebhookKind {
    let (headers, body) = delivery(&body);
    stripe().webhook(&headers, &body).await.unwrap().kind
}

#[tokio::test]
async fn reads_the_events_the_platform_acts_on() {
    let succeeded = json!({"id": "evt_1", "type": "payment_intent.succeeded",
        "data": {"object": {"id": "pi_1", "object": "payment_intent", "status": "succeeded"}}});
    let failed = json!({"id": "evt_2", "type": "payment_intent.payment_failed",
        "data": {"object": {"id": "pi_2", "status": "requires_payment_method",
            "last_payment_error": {"type": "card_error", "code": "card_declined",
                "decline_code": "insufficient_funds", "message": "Your card has insufficient funds."}}}});
    let refunded = json!({"id": "evt_3", "type": "refund.updated",
        "data": {"object": {"id": "re_1", "object": "refund", "status": "succeeded"}}});
    let refund_failed = json!({"id": "evt_4", "type": "refund.failed",
        "data": {"object": {"id": "re_2", "object": "refund", "status": "failed"}}});
    let disputed = json!({"id": "evt_5", "type": "charge.dispute.created",
        "data": {"object": {"id": "dp_1", "object": "dispute", "charge": "ch_1", "payment_intent": "pi_1"}}});
    let other =
        json!({"id": "evt_6", "type": "customer.created", "data": {"object": {"id": "cus_1"}}});

    assert_eq!(
        read(succeeded).await,
        WebhookKind::ChargeSucceeded {
            reference: "pi_1".into()
        }
    );
    assert_eq!(
        read(failed).await,
        WebhookKind::ChargeFailed {
            reference: "pi_2".into(),
            code: "insufficient_funds".into(),
            message: "Your card has insufficient funds.".into(),
        }
    );
    assert_eq!(
        read(refunded).await,
        WebhookKind::RefundSucceeded {
            reference: "re_1".into()
        }
    );
    assert_eq!(
        read(refund_failed).await,
        WebhookKind::RefundFailed {
            reference: "re_2".into()
        }
    );
    assert_eq!(
        read(disputed).await,
        WebhookKind::Disputed {
            reference: "pi_1".into()
        }
    );
    assert_eq!(
        read(other).await,
        WebhookKind::Other("customer.created".into())
    );
}

#[tokio::test]
async fn keeps_the_event_id_for_deduplication() {
    let body = json!({"id": "evt_42", "type": "customer.created", "data": {"object": {}}});
    let (headers, body) = delivery(&body);

    let event = stripe().webhook(&headers, &body).await.unwrap();

    assert_eq!(event.id, "evt_42");
}

#[tokio::test]
async fn refuses_a_delivery_without_a_signature_header() {
    let result = stripe().webhook(&HeaderMap::new(), EVENT).await;

    assert!(
        matches!(&result, Err(WebhookError::Signature(m)) if m.contains("no stripe-signature")),
        "{result:?}"
    );
}

#[tokio::test]
async fn refuses_a_signed_body_that_is_not_an_event() {
    let (headers, body) = delivery(&json!({"hello": "world"}));

    let result = stripe().webhook(&headers, &body).await;

    assert!(
        matches!(result, Err(WebhookError::Malformed(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn without_a_webhook_secret_webhooks_are_unsupported() {
    let stripe = Stripe::new(
        "http://127.0.0.1:9",
        "sk_test_x",
        std::time::Duration::from_secs(1),
    )
    .unwrap();
    let (headers, body) = delivery(&json!({"id": "evt_1"}));

    let result = stripe.webhook(&headers, &body).await;

    assert_eq!(result, Err(WebhookError::Unsupported));
}
