//! The Braintree adapter against a local fake of Braintree's GraphQL API (no database).

use axum::http::HeaderMap;
use mercato_payments::providers::braintree::{Braintree, graphql_id};
use mercato_payments::providers::{
    CardDetails, CardRef, ChargeRequest, Provider, ProviderError, WebhookError, WebhookKind,
};

use crate::fake_braintree::{
    FakeBraintree, PRIVATE_KEY, form, notification, signature, signed_body, webhook_body,
};

fn details(number: &str) -> CardDetails {
    CardDetails {
        number: number.into(),
        exp_month: 12,
        exp_year: 2034,
        cvc: "937".into(),
    }
}

/// A charge request for a card tokenized with `provider` (the adapter's own token).
async fn request(
    provider: &Braintree,
    number: &str,
    amount: i64,
    currency: &str,
    capture: bool,
) -> ChargeRequest {
    let method = provider.tokenize(&details(number)).await.unwrap();
    assert!(method.is_some(), "braintree must vault the card");
    ChargeRequest {
        payment_id: format!("pay_{}", uuid::Uuid::now_v7().simple()),
        amount,
        currency: currency.into(),
        capture,
        card: CardRef {
            token: "tok_test".into(),
            brand: "visa".into(),
            last4: number[number.len() - 4..].into(),
            exp_month: 12,
            exp_year: 2034,
        },
        provider_method: method,
        customer_email: None,
        idempotency_key: "charge-key".into(),
    }
}

fn declined_code(error: ProviderError) -> String {
    match error {
        ProviderError::Declined { code, .. } => code,
        other => panic!("expected a decline, got {other:?}"),
    }
}

#[tokio::test]
async fn charges_and_captures_at_once() {
    let fake = FakeBraintree::start().await;
    let provider = fake.client(Some("mercato_EUR"));
    let request = request(&provider, "4242424242424242", 1234, "EUR", true).await;

    let charge = provider.charge(&request).await.unwrap();

    assert!(charge.captured);
    let transaction = fake.transaction(&charge.reference);
    assert_eq!(transaction.amount, "12.34");
    assert_eq!(transaction.status, "SUBMITTED_FOR_SETTLEMENT");
    assert_eq!(
        transaction.order_id.as_deref(),
        Some(request.payment_id.as_str())
    );
    assert_eq!(
        transaction.merchant_account_id.as_deref(),
        Some("mercato_EUR")
    );
    assert_eq!(fake.charges(), 1);
    assert_eq!(
        fake.operations(),
        [
            "tokenizeCreditCard",
            "transactions(input",
            "chargePaymentMethod"
        ],
        "the search for an earlier attempt comes before the charge"
    );
}

#[tokio::test]
async fn authorizes_then_captures_part() {
    let fake = FakeBraintree::start().await;
    let provider = fake.client(None);
    let request = request(&provider, "4242424242424242", 5000, "EUR", false).await;

    let charge = provider.charge(&request).await.unwrap();
    assert!(!charge.captured);
    assert_eq!(fake.transaction(&charge.reference).status, "AUTHORIZED");

    provider
        .capture(&charge.reference, 4000, "cap-1")
        .await
        .unwrap();
    let transaction = fake.transaction(&charge.reference);
    assert_eq!(transaction.status, "SUBMITTED_FOR_SETTLEMENT");
    assert_eq!(transaction.amount, "40.00");

    // A repeat (after a lost answer) finds the capture done and succeeds.
    provider
        .capture(&charge.reference, 4000, "cap-1")
        .await
        .unwrap();
    assert_eq!(fake.charges(), 1);
}

#[tokio::test]
async fn voids_an_authorization() {
    let fake = FakeBraintree::start().await;
    let provider = fake.client(None);
    let request = request(&provider, "4242424242424242", 5000, "EUR", false).await;
    let charge = provider.charge(&request).await.unwrap();

    provider.cancel(&charge.reference, "void-1").await.unwrap();
    assert_eq!(fake.transaction(&charge.reference).status, "VOIDED");

    provider.cancel(&charge.reference, "void-1").await.unwrap();
}

#[tokio::test]
async fn refunds_in_full_and_in_part() {
    let fake = FakeBraintree::start().await;
    let provider = fake.client(None);
    let first = request(&provider, "4242424242424242", 5000, "EUR", true).await;
    let charge = provider.charge(&first).await.unwrap();
    fake.settle(&charge.reference);

    let part = provider
        .refund(&charge.reference, 2000, "ref-1")
        .await
        .unwrap();
    assert!(!part.settled, "a submitted refund settles later");
    assert_eq!(fake.refunds()[0].amount, "20.00");

    // The same key again: the earlier refund, not a second one.
    fake.settle(&part.reference);
    let again = provider
        .refund(&charge.reference, 2000, "ref-1")
        .await
        .unwrap();
    assert_eq!(again.reference, part.reference);
    assert!(again.settled);
    assert_eq!(fake.refunds().len(), 1);

    let rest = provider
        .refund(&charge.reference, 3000, "ref-2")
        .await
        .unwrap();
    assert_ne!(rest.reference, part.reference);
    assert_eq!(fake.refunds()[1].amount, "30.00");

    let too_much = provider.refund(&charge.reference, 1, "ref-3").await;
    assert!(
        matches!(too_much, Err(ProviderError::Rejected(_))),
        "{too_much:?}"
    );

    let whole = request(&provider, "4242424242424242", 999, "EUR", true).await;
    let whole_charge = provider.charge(&whole).await.unwrap();
    fake.settle(&whole_charge.reference);
    provider
        .refund(&whole_charge.reference, 999, "ref-4")
        .await
        .unwrap();
    assert_eq!(fake.refunds()[2].amount, "9.99");
}

#[tokio::test]
async fn refund_before_settlement_is_rejected() {
    let fake = FakeBraintree::start().await;
    let provider = fake.client(None);
    let request = request(&provider, "4242424242424242", 5000, "EUR", true).await;
    let charge = provider.charge(&request).await.unwrap();

    let refund = provider.refund(&charge.reference, 100, "ref-1").await;

    assert!(
        matches!(refund, Err(ProviderError::Rejected(_))),
        "{refund:?}"
    );
}

#[tokio::test]
async fn formats_amounts_by_currency_exponent() {
    let fake = FakeBraintree::start().await;

    let yen = fake.client(Some("mercato_JPY"));
    let request_yen = request(&yen, "4242424242424242", 1234, "JPY", false).await;
    let charge = yen.charge(&request_yen).await.unwrap();
    assert_eq!(fake.transaction(&charge.reference).amount, "1234");
    yen.capture(&charge.reference, 1000, "cap").await.unwrap();
    assert_eq!(fake.transaction(&charge.reference).amount, "1000");

    let dinar = fake.client(Some("mercato_KWD"));
    let request_kwd = request(&dinar, "4242424242424242", 1234, "KWD", true).await;
    let charge = dinar.charge(&request_kwd).await.unwrap();
    assert_eq!(fake.transaction(&charge.reference).amount, "1.234");

    let cents = fake.client(None);
    let request_eur = request(&cents, "4242424242424242", 5, "EUR", true).await;
    let charge = cents.charge(&request_eur).await.unwrap();
    assert_eq!(fake.transaction(&charge.reference).amount, "0.05");
}

#[tokio::test]
async fn maps_declines_to_codes() {
    let fake = FakeBraintree::start().await;
    let provider = fake.client(None);

    let declined = request(&provider, "4000000000000002", 1000, "EUR", true).await;
    let error = provider.charge(&declined).await.unwrap_err();
    assert_eq!(declined_code(error), "card_declined");

    let poor = request(&provider, "4000000000009995", 1000, "EUR", true).await;
    let error = provider.charge(&poor).await.unwrap_err();
    assert_eq!(declined_code(error), "insufficient_funds");

    assert_eq!(fake.charges(), 0);
}

#[tokio::test]
async fn wrong_keys_are_rejected() {
    let fake = FakeBraintree::start().await;
    let provider = fake.client_with("pk_fake_braintree", "not-the-key", None);

    let error = provider
        .tokenize(&details("4242424242424242"))
        .await
        .unwrap_err();

    assert!(matches!(error, ProviderError::Rejected(_)), "{error:?}");
}

#[tokio::test]
async fn a_charge_without_a_braintree_token_is_rejected() {
    let fake = FakeBraintree::start().await;
    let provider = fake.client(None);
    let mut request = request(&provider, "4242424242424242", 1000, "EUR", true).await;
    request.provider_method = None;

    let error = provider.charge(&request).await.unwrap_err();

    assert!(matches!(error, ProviderError::Rejected(_)), "{error:?}");
    assert_eq!(fake.charges(), 0);
}

#[tokio::test]
async fn server_errors_are_unavailable() {
    let fake = FakeBraintree::start().await;
    let provider = fake.client(None);
    let request = request(&provider, "4242424242424242", 1000, "EUR", true).await;

    fake.fail_next(1);
    let error = provider.charge(&request).await.unwrap_err();
    assert!(matches!(error, ProviderError::Unavailable(_)), "{error:?}");
    assert_eq!(fake.charges(), 0);

    provider.charge(&request).await.unwrap();
    assert_eq!(fake.charges(), 1);
}

#[tokio::test]
async fn an_unreachable_braintree_is_unreachable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let provider = Braintree::new(
        &url,
        "pk",
        "sk",
        None,
        std::time::Duration::from_millis(500),
    )
    .unwrap();

    let error = provider
        .tokenize(&details("4242424242424242"))
        .await
        .unwrap_err();

    assert!(matches!(error, ProviderError::Unreachable(_)), "{error:?}");
}

#[tokio::test]
async fn a_stalled_charge_retried_charges_once() {
    let fake = FakeBraintree::start().await;
    let provider = fake.client(None);
    let request = request(&provider, "4242424242424242", 1000, "EUR", true).await;

    fake.stall_next_charge();
    let error = provider.charge(&request).await.unwrap_err();
    assert!(matches!(error, ProviderError::Unavailable(_)), "{error:?}");
    assert_eq!(fake.charges(), 1, "the stalled charge happened");

    let charge = provider.charge(&request).await.unwrap();

    assert_eq!(fake.charges(), 1, "the retry found the first charge");
    assert_eq!(charge.reference, fake.transactions()[0].id);
    assert!(charge.captured);
}

#[tokio::test]
async fn a_declined_attempt_does_not_block_a_new_one() {
    let fake = FakeBraintree::start().await;
    let provider = fake.client(None);
    let declined = request(&provider, "4000000000000002", 1000, "EUR", true).await;
    provider.charge(&declined).await.unwrap_err();

    // Same payment, another card: the declined transaction is not an earlier success.
    let mut retry = request(&provider, "4242424242424242", 1000, "EUR", true).await;
    retry.payment_id = declined.payment_id.clone();
    let charge = provider.charge(&retry).await.unwrap();

    assert_eq!(fake.charges(), 1);
    assert_eq!(
        fake.transaction(&charge.reference).status,
        "SUBMITTED_FOR_SETTLEMENT"
    );
}

#[tokio::test]
async fn webhooks_are_read_once_verified() {
    let fake = FakeBraintree::start().await;
    let provider = fake.client(None);
    let request = request(&provider, "4242424242424242", 1000, "EUR", true).await;
    let charge = provider.charge(&request).await.unwrap();
    let legacy = fake.transaction(&charge.reference).legacy_id;
    let headers = HeaderMap::new();

    let settled = provider
        .webhook(
            &headers,
            webhook_body("transaction_settled", &legacy).as_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(
        settled.kind,
        WebhookKind::ChargeSucceeded {
            reference: charge.reference.clone()
        },
        "the webhook's legacy id names the charge's reference"
    );
    assert_eq!(
        settled.id,
        format!("transaction_settled:2026-03-01T10:00:00Z:{legacy}")
    );

    let declined = provider
        .webhook(
            &headers,
            webhook_body("transaction_settlement_declined", &legacy).as_bytes(),
        )
        .await
        .unwrap();
    assert!(
        matches!(&declined.kind, WebhookKind::ChargeFailed { reference, .. } if *reference == charge.reference),
        "{declined:?}"
    );

    let disputed = provider
        .webhook(&headers, webhook_body("dispute_opened", &legacy).as_bytes())
        .await
        .unwrap();
    assert_eq!(
        disputed.kind,
        WebhookKind::Disputed {
            reference: graphql_id("transaction", &legacy)
        }
    );
    assert_eq!(
        disputed.id,
        format!("dispute_opened:2026-03-01T10:00:00Z:dp_{legacy}")
    );

    let other = provider
        .webhook(&headers, webhook_body("check", &legacy).as_bytes())
        .await
        .unwrap();
    assert_eq!(other.kind, WebhookKind::Other("check".into()));
}

#[tokio::test]
async fn webhooks_with_a_bad_signature_are_rejected() {
    let fake = FakeBraintree::start().await;
    let provider = fake.client(None);
    let headers = HeaderMap::new();
    let xml = notification("transaction_settled", "abc123");

    let wrong_key = signed_body("another-private-key", &xml);
    let error = provider
        .webhook(&headers, wrong_key.as_bytes())
        .await
        .unwrap_err();
    assert!(matches!(error, WebhookError::Signature(_)), "{error:?}");

    // A valid signature over another payload.
    let payload = base64_of(&xml);
    let tampered = form(
        &signature(PRIVATE_KEY, &payload),
        &base64_of(&notification("transaction_settled", "other")),
    );
    let error = provider
        .webhook(&headers, tampered.as_bytes())
        .await
        .unwrap_err();
    assert!(matches!(error, WebhookError::Signature(_)), "{error:?}");

    let unsigned = format!("bt_payload={payload}");
    let error = provider
        .webhook(&headers, unsigned.as_bytes())
        .await
        .unwrap_err();
    assert!(matches!(error, WebhookError::Signature(_)), "{error:?}");
}

#[tokio::test]
async fn malformed_webhooks_are_rejected() {
    let fake = FakeBraintree::start().await;
    let provider = fake.client(None);
    let headers = HeaderMap::new();

    let not_base64 = form(&signature(PRIVATE_KEY, "%%%"), "%%%");
    let no_kind = signed_body(PRIVATE_KEY, "<notification><subject/></notification>");
    let no_transaction = signed_body(
        PRIVATE_KEY,
        "<notification><timestamp>t</timestamp><kind>transaction_settled</kind>\
         <subject><transaction></transaction></subject></notification>",
    );
    for body in [not_base64.as_str(), &no_kind, &no_transaction, "garbage"] {
        let error = provider
            .webhook(&headers, body.as_bytes())
            .await
            .unwrap_err();
        assert!(
            matches!(error, WebhookError::Malformed(_)),
            "{body}: {error:?}"
        );
    }
}

fn base64_of(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}
