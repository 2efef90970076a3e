//! The Stripe adapter against the local fake: no network, no database.

use std::time::Duration;

use mercato_payments::providers::stripe::Stripe;
use mercato_payments::providers::{CardDetails, CardRef, ChargeRequest, Provider, ProviderError};

use crate::fake_stripe::{
    CARD_DECLINED, CARD_INSUFFICIENT_FUNDS, CARD_OK, CARD_REFUND_PENDING, FakeStripe,
};

const TIMEOUT: Duration = Duration::from_secs(5);
/// Well below [`crate::fake_stripe::STALL`].
const SHORT_TIMEOUT: Duration = Duration::from_millis(300);

fn stripe(fake: &FakeStripe) -> Stripe {
    Stripe::new(&fake.url, fake.key.as_str(), TIMEOUT).unwrap()
}

fn card(number: &str) -> CardDetails {
    CardDetails {
        number: number.to_owned(),
        exp_month: 12,
        exp_year: 2034,
        cvc: "123".to_owned(),
    }
}

fn request(method: Option<String>, amount: i64, capture: bool, key: &str) -> ChargeRequest {
    ChargeRequest {
        payment_id: "pay_0192f0c4a1b2c3d4e5f60718293a4b5c".to_owned(),
        amount,
        currency: "EUR".to_owned(),
        capture,
        card: CardRef {
            token: "tok_1".to_owned(),
            brand: "visa".to_owned(),
            last4: "4242".to_owned(),
            exp_month: 12,
            exp_year: 2034,
        },
        provider_method: method,
        customer_email: Some("buyer@example.com".to_owned()),
        idempotency_key: key.to_owned(),
    }
}

/// Tokenizes `number` with the fake, then charges it.
async fn charge(
    stripe: &Stripe,
    number: &str,
    amount: i64,
    capture: bool,
    key: &str,
) -> Result<mercato_payments::providers::Charge, ProviderError> {
    let method = stripe.tokenize(&card(number)).await.unwrap();
    assert!(method.as_deref().unwrap().starts_with("pm_"));
    stripe.charge(&request(method, amount, capture, key)).await
}

#[tokio::test]
async fn charges_and_captures_at_once() {
    let fake = FakeStripe::start().await;
    let stripe = stripe(&fake);

    let charge = charge(&stripe, CARD_OK, 1250, true, "pay_1:charge")
        .await
        .unwrap();

    assert!(charge.captured);
    assert!(charge.reference.starts_with("pi_"));
    let intent = fake.intent(&charge.reference).unwrap();
    assert_eq!(
        (intent.status.as_str(), intent.amount_received),
        ("succeeded", 1250)
    );
    assert_eq!(fake.charges(), 1);

    let requests = fake.requests();
    let form = Some("application/x-www-form-urlencoded");
    assert!(requests.iter().all(|r| r.content_type.as_deref() == form));
    assert!(
        requests.iter().all(|r| r.idempotency_key.is_some()),
        "every POST has a key"
    );
    let method = &requests[0];
    assert_eq!(method.path, "/v1/payment_methods");
    assert_eq!(method.form["type"], "card");
    assert_eq!(method.form["card[number]"], CARD_OK);
    assert_eq!(method.form["card[exp_month]"], "12");
    assert_eq!(method.form["card[exp_year]"], "2034");
    assert_eq!(method.form["card[cvc]"], "123");
    let intent = &requests[1];
    assert_eq!(intent.path, "/v1/payment_intents");
    assert_eq!(intent.idempotency_key.as_deref(), Some("pay_1:charge"));
    assert_eq!(intent.form["amount"], "1250");
    assert_eq!(intent.form["currency"], "eur");
    assert_eq!(intent.form["confirm"], "true");
    assert_eq!(intent.form["capture_method"], "automatic");
    assert_eq!(
        intent.form["metadata[payment_id]"],
        "pay_0192f0c4a1b2c3d4e5f60718293a4b5c"
    );
    assert_eq!(intent.form["receipt_email"], "buyer@example.com");
}

#[tokio::test]
async fn authorizes_then_captures_part() {
    let fake = FakeStripe::start().await;
    let stripe = stripe(&fake);

    let charge = charge(&stripe, CARD_OK, 1000, false, "pay_2:charge")
        .await
        .unwrap();
    assert!(!charge.captured);
    assert_eq!(fake.requests()[1].form["capture_method"], "manual");
    assert_eq!(
        fake.intent(&charge.reference).unwrap().status,
        "requires_capture"
    );

    stripe
        .capture(&charge.reference, 600, "pay_2:capture")
        .await
        .unwrap();

    let intent = fake.intent(&charge.reference).unwrap();
    assert_eq!(
        (intent.status.as_str(), intent.amount_received),
        ("succeeded", 600)
    );
    let capture = fake.requests().pop().unwrap();
    assert_eq!(
        capture.path,
        format!("/v1/payment_intents/{}/capture", charge.reference)
    );
    assert_eq!(capture.form["amount_to_capture"], "600");
}

#[tokio::test]
async fn cancels_an_authorization() {
    let fake = FakeStripe::start().await;
    let stripe = stripe(&fake);
    let charge = charge(&stripe, CARD_OK, 1000, false, "pay_3:charge")
        .await
        .unwrap();

    stripe
        .cancel(&charge.reference, "pay_3:cancel")
        .await
        .unwrap();

    assert_eq!(fake.intent(&charge.reference).unwrap().status, "canceled");
    let late = stripe
        .capture(&charge.reference, 1000, "pay_3:capture")
        .await;
    assert!(
        matches!(late, Err(ProviderError::Rejected(m)) if m.contains("payment_intent_unexpected_state"))
    );
}

#[tokio::test]
async fn cannot_cancel_a_captured_charge() {
    let fake = FakeStripe::start().await;
    let stripe = stripe(&fake);
    let charge = charge(&stripe, CARD_OK, 1000, true, "pay_4:charge")
        .await
        .unwrap();

    let result = stripe.cancel(&charge.reference, "pay_4:cancel").await;

    assert!(
        matches!(result, Err(ProviderError::Rejected(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn refunds_in_part_then_the_rest() {
    let fake = FakeStripe::start().await;
    let stripe = stripe(&fake);
    let charge = charge(&stripe, CARD_OK, 1000, true, "pay_5:charge")
        .await
        .unwrap();

    let first = stripe
        .refund(&charge.reference, 400, "pay_5:refund:1")
        .await
        .unwrap();
    let second = stripe
        .refund(&charge.reference, 600, "pay_5:refund:2")
        .await
        .unwrap();

    assert!(first.reference.starts_with("re_") && first.settled);
    assert!(second.settled);
    assert_ne!(first.reference, second.reference);
    assert_eq!(
        fake.intent(&charge.reference).unwrap().amount_refunded,
        1000
    );
    let refund = fake.requests().pop().unwrap();
    assert_eq!(refund.path, "/v1/refunds");
    assert_eq!(refund.form["payment_intent"], charge.reference);
    assert_eq!(refund.form["amount"], "600");

    let more = stripe.refund(&charge.reference, 1, "pay_5:refund:3").await;
    assert!(
        matches!(more, Err(ProviderError::Rejected(m)) if m.contains("charge_already_refunded"))
    );
}

#[tokio::test]
async fn refunds_in_full() {
    let fake = FakeStripe::start().await;
    let stripe = stripe(&fake);
    let charge = charge(&stripe, CARD_OK, 1000, true, "pay_6:charge")
        .await
        .unwrap();

    let refund = stripe
        .refund(&charge.reference, 1000, "pay_6:refund")
        .await
        .unwrap();

    assert!(refund.settled);
    assert_eq!(
        fake.intent(&charge.reference).unwrap().amount_refunded,
        1000
    );
}

#[tokio::test]
async fn a_pending_refund_is_not_settled() {
    let fake = FakeStripe::start().await;
    let stripe = stripe(&fake);
    let charge = charge(&stripe, CARD_REFUND_PENDING, 1000, true, "pay_7:charge")
        .await
        .unwrap();

    let refund = stripe
        .refund(&charge.reference, 1000, "pay_7:refund")
        .await
        .unwrap();

    assert!(!refund.settled);
}

#[tokio::test]
async fn declines_map_to_declined_with_the_decline_code() {
    let fake = FakeStripe::start().await;
    let stripe = stripe(&fake);

    for (number, expected) in [
        (CARD_DECLINED, "card_declined"),
        (CARD_INSUFFICIENT_FUNDS, "insufficient_funds"),
    ] {
        let result = charge(&stripe, number, 1000, true, &format!("decline:{number}")).await;
        match result {
            Err(ProviderError::Declined { code, message }) => {
                assert_eq!(code, expected);
                assert_eq!(message, "Your card was declined.");
            }
            other => panic!("expected a decline for {number}, got {other:?}"),
        }
    }
    assert_eq!(fake.charges(), 0);
}

#[tokio::test]
async fn a_wrong_key_is_rejected() {
    let fake = FakeStripe::start().await;
    let stripe = Stripe::new(&fake.url, "sk_test_wrong", TIMEOUT).unwrap();

    let tokenize = stripe.tokenize(&card(CARD_OK)).await;
    let charge = stripe
        .charge(&request(Some("pm_x".into()), 1000, true, "k"))
        .await;

    for result in [tokenize.map(|_| ()), charge.map(|_| ())] {
        assert!(
            matches!(&result, Err(ProviderError::Rejected(m)) if m.contains("401")),
            "{result:?}"
        );
    }
}

#[tokio::test]
async fn server_errors_and_rate_limits_are_unavailable() {
    let fake = FakeStripe::start().await;
    let stripe = stripe(&fake);
    let method = stripe.tokenize(&card(CARD_OK)).await.unwrap();

    for status in [500, 503, 429] {
        if status == 500 {
            fake.fail_next(1);
        } else {
            fake.fail_next_with(1, status);
        }
        let result = stripe
            .charge(&request(method.clone(), 1000, true, "pay_8:charge"))
            .await;
        assert!(
            matches!(&result, Err(ProviderError::Unavailable(m)) if m.contains(&status.to_string())),
            "{result:?}"
        );
    }
    assert_eq!(fake.charges(), 0);

    // The outage is over: the same key charges, once.
    let charge = stripe
        .charge(&request(method, 1000, true, "pay_8:charge"))
        .await
        .unwrap();
    assert!(charge.captured);
    assert_eq!(fake.charges(), 1);
}

#[tokio::test]
async fn a_refused_connection_is_unreachable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let stripe = Stripe::new(&url, "sk_test_x", TIMEOUT).unwrap();

    let result = stripe
        .charge(&request(Some("pm_x".into()), 1000, true, "k"))
        .await;

    assert!(
        matches!(&result, Err(ProviderError::Unreachable(m)) if m.contains("creating a payment intent")),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_retry_after_a_timeout_does_not_charge_twice() {
    let fake = FakeStripe::start().await;
    let stripe = Stripe::new(&fake.url, fake.key.as_str(), SHORT_TIMEOUT).unwrap();
    let method = stripe.tokenize(&card(CARD_OK)).await.unwrap();
    let request = request(method, 1000, true, "pay_9:charge");

    fake.stall_next();
    let first = stripe.charge(&request).await;
    assert!(
        matches!(&first, Err(ProviderError::Unavailable(m)) if m.contains("in time")),
        "{first:?}"
    );
    assert_eq!(fake.charges(), 1, "the stalled call charged");

    let retry = stripe.charge(&request).await.unwrap();

    assert!(retry.captured);
    assert_eq!(
        fake.charges(),
        1,
        "the retry was answered from the idempotency key"
    );
    assert_eq!(fake.intent(&retry.reference).unwrap().amount_received, 1000);
}

#[tokio::test]
async fn the_same_key_twice_answers_the_same_charge() {
    let fake = FakeStripe::start().await;
    let stripe = stripe(&fake);
    let method = stripe.tokenize(&card(CARD_OK)).await.unwrap();
    let request = request(method, 1000, true, "pay_10:charge");

    let first = stripe.charge(&request).await.unwrap();
    let second = stripe.charge(&request).await.unwrap();

    assert_eq!(first, second);
    assert_eq!(fake.charges(), 1);
}

#[tokio::test]
async fn a_charge_without_a_stripe_payment_method_is_rejected_without_a_call() {
    let fake = FakeStripe::start().await;
    let stripe = stripe(&fake);

    let result = stripe.charge(&request(None, 1000, true, "k")).await;

    assert!(
        matches!(result, Err(ProviderError::Rejected(_))),
        "{result:?}"
    );
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn a_malformed_reference_never_reaches_a_url() {
    let fake = FakeStripe::start().await;
    let stripe = stripe(&fake);

    let capture = stripe.capture("pi_1/../../v1/refunds", 100, "k").await;
    let refund = stripe.refund("ch_123", 100, "k").await;

    assert!(
        matches!(capture, Err(ProviderError::Rejected(_))),
        "{capture:?}"
    );
    assert!(
        matches!(refund, Err(ProviderError::Rejected(_))),
        "{refund:?}"
    );
    assert!(fake.requests().is_empty());
}
