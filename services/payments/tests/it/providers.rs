//! The payments service with its real provider adapters configured from the environment,
//! talking to local fakes of Stripe and PayPal: charges, refunds, webhooks through the HTTP
//! endpoint, and failover when a provider cannot be reached.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use mercato_kernel::Config;
use mercato_kernel::testing::TestService;
use serde_json::json;

use crate::card;
use crate::fake_paypal::FakePayPal;
use crate::fake_stripe::FakeStripe;

const WHSEC: &str = "whsec_fake_endpoint";

fn stripe_config(fake: &FakeStripe) -> Config {
    let mut config = Config::default();
    config.stripe_secret_key = Some(fake.key.clone().into());
    config.stripe_api_base = fake.url.clone();
    config.stripe_webhook_secret = Some(WHSEC.to_owned().into());
    config.payments_default_provider = "stripe".into();
    config.payments_routes = "*:stripe,test".into();
    config.payments_provider_timeout_ms = 1000;
    config
}

async fn start(config: Config) -> Vec<TestService> {
    TestService::start_all(&mercato_payments::MIGRATOR, config, mercato_payments::start).await
}

#[tokio::test]
async fn stripe_charges_refunds_and_its_signed_webhooks_apply_once() {
    let fake = FakeStripe::start().await;
    for app in start(stripe_config(&fake)).await {
        let before = fake.charges();
        let created = app.post_json("/api/v1/payments", json!({"amount": 2500, "currency": "EUR", "payment_method": card("4242424242424242")})).await;
        assert_eq!(
            created.status,
            StatusCode::CREATED,
            "{}: {}",
            app.label,
            created.body
        );
        let id = created.body["id"].as_str().unwrap().to_owned();
        let paid = app
            .post_json(&format!("/api/v1/payments/{id}/process"), json!({}))
            .await;
        assert_eq!(
            paid.body["status"], "succeeded",
            "{}: {}",
            app.label, paid.body
        );
        assert_eq!(paid.body["provider"], "stripe");
        assert_eq!(fake.charges() - before, 1);
        let intent_id = paid.body["attempts"][0]["reference"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(fake.intent(&intent_id).unwrap().amount, 2500);

        let refund = app
            .post_json(
                &format!("/api/v1/payments/{id}/refund"),
                json!({"amount": 1000}),
            )
            .await;
        assert_eq!(refund.status, StatusCode::CREATED, "{}", refund.body);
        assert_eq!(fake.intent(&intent_id).unwrap().amount_refunded, 1000);

        let declined = app.post_json("/api/v1/payments", json!({"amount": 100, "currency": "EUR", "payment_method": card("4000000000009995")})).await;
        let reply = app
            .post_json(
                &format!(
                    "/api/v1/payments/{}/process",
                    declined.body["id"].as_str().unwrap()
                ),
                json!({}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::PAYMENT_REQUIRED);
        assert_eq!(reply.body["decline_code"], "insufficient_funds");

        let dispute = json!({"id": format!("evt_dp_{}", app.label), "type": "charge.dispute.created",
            "data": {"object": {"id": "dp_1", "object": "dispute", "charge": "ch_1", "payment_intent": intent_id}}})
            .to_string();
        let now = chrono::Utc::now().timestamp();
        let deliver = |signature: String| {
            Request::post("/api/v1/payments/webhooks/stripe")
                .header("content-type", "application/json")
                .header("stripe-signature", signature)
                .body(Body::from(dispute.clone()))
                .unwrap()
        };
        let first = app
            .call(deliver(FakeStripe::sign(dispute.as_bytes(), WHSEC, now)))
            .await;
        assert_eq!(
            first.status,
            StatusCode::OK,
            "{}: {}",
            app.label,
            first.body
        );
        assert_eq!(
            app.get(&format!("/api/v1/payments/{id}")).await.body["disputed"],
            true
        );
        let replay = app
            .call(deliver(FakeStripe::sign(dispute.as_bytes(), WHSEC, now)))
            .await;
        assert_eq!(replay.body["duplicate"], true);
        let forged = app
            .call(deliver(FakeStripe::sign(
                dispute.as_bytes(),
                "whsec_wrong",
                now,
            )))
            .await;
        assert_eq!(forged.status, StatusCode::BAD_REQUEST);
        let stale = app
            .call(deliver(FakeStripe::sign(
                dispute.as_bytes(),
                WHSEC,
                now - 3600,
            )))
            .await;
        assert_eq!(
            stale.status,
            StatusCode::BAD_REQUEST,
            "outside the timestamp tolerance"
        );
        assert_eq!(app.count("webhook_events").await, 1);
    }
}

#[tokio::test]
async fn when_stripe_cannot_be_reached_the_next_provider_of_the_route_charges() {
    let fake = FakeStripe::start().await;
    let mut config = stripe_config(&fake);
    // Nothing listens there: connecting fails, so nothing can have been charged.
    config.stripe_api_base = "http://127.0.0.1:9".into();
    for app in start(config).await {
        let created = app.post_json("/api/v1/payments", json!({"amount": 900, "currency": "EUR", "payment_method": card("4242424242424242")})).await;
        assert_eq!(
            created.status,
            StatusCode::CREATED,
            "{}: vaulting at Stripe failed but the test provider took the card: {}",
            app.label,
            created.body
        );
        let paid = app
            .post_json(
                &format!(
                    "/api/v1/payments/{}/process",
                    created.body["id"].as_str().unwrap()
                ),
                json!({}),
            )
            .await;
        assert_eq!(
            paid.body["status"], "succeeded",
            "{}: {}",
            app.label, paid.body
        );
        assert_eq!(paid.body["provider"], "test");
    }
    assert_eq!(fake.charges(), 0);
}

#[tokio::test]
async fn paypal_serves_the_currencies_routed_to_it() {
    let fake = FakePayPal::start().await;
    let mut config = Config::default();
    config.paypal_client_id = Some(crate::fake_paypal::CLIENT_ID.to_owned());
    config.paypal_client_secret = Some(crate::fake_paypal::CLIENT_SECRET.to_owned().into());
    config.paypal_api_base = fake.url.clone();
    config.payments_routes = "JPY:paypal; *:test".into();
    config.payments_provider_timeout_ms = 1000;
    for app in start(config).await {
        let before = fake.charges();
        let created = app.post_json("/api/v1/payments", json!({"amount": 1500, "currency": "JPY", "payment_method": card("4242424242424242")})).await;
        assert_eq!(
            created.body["provider"], "paypal",
            "{}: {}",
            app.label, created.body
        );
        let paid = app
            .post_json(
                &format!(
                    "/api/v1/payments/{}/process",
                    created.body["id"].as_str().unwrap()
                ),
                json!({}),
            )
            .await;
        assert_eq!(
            paid.body["status"], "succeeded",
            "{}: {}",
            app.label, paid.body
        );
        assert_eq!(fake.charges() - before, 1);
        let euro = app.post_json("/api/v1/payments", json!({"amount": 100, "currency": "EUR", "payment_method": card("4242424242424242")})).await;
        assert_eq!(euro.body["provider"], "test");
    }
}

#[tokio::test]
async fn braintree_serves_large_payments_routed_to_it() {
    let fake = crate::fake_braintree::FakeBraintree::start().await;
    let mut config = Config::default();
    config.braintree_public_key = Some(crate::fake_braintree::PUBLIC_KEY.to_owned());
    config.braintree_private_key = Some(crate::fake_braintree::PRIVATE_KEY.to_owned().into());
    config.braintree_api_base = fake.url.clone();
    config.payments_routes = "amount>=100000:braintree,test; *:test".into();
    config.payments_provider_timeout_ms = 1000;
    for app in start(config).await {
        let before = fake.charges();
        let created = app.post_json("/api/v1/payments", json!({"amount": 150_000, "currency": "USD", "payment_method": card("4242424242424242"), "customer_email": "big@example.com"})).await;
        assert_eq!(
            created.body["provider"], "braintree",
            "{}: {}",
            app.label, created.body
        );
        let paid = app
            .post_json(
                &format!(
                    "/api/v1/payments/{}/process",
                    created.body["id"].as_str().unwrap()
                ),
                json!({}),
            )
            .await;
        assert_eq!(
            paid.body["status"], "succeeded",
            "{}: {}",
            app.label, paid.body
        );
        assert_eq!(paid.body["provider"], "braintree");
        assert_eq!(fake.charges() - before, 1);
    }
}
