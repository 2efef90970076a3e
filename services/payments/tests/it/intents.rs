use axum::http::StatusCode;
use serde_json::json;

use crate::{PROBLEM, apps, card};

#[tokio::test]
async fn a_good_card_pays_and_is_stored_only_as_token_brand_last4_and_expiry() {
    for app in apps().await {
        let created = app
            .create(json!({"amount": 1999, "currency": "EUR", "payment_method": card("4242 4242 4242 4242"),
                           "customer_email": "Buyer@Example.com", "metadata": {"order_id": "ord_1"}}))
            .await;
        assert_eq!(created["status"], "requires_confirmation");
        assert_eq!(created["payment_method"]["brand"], "visa");
        assert_eq!(created["payment_method"]["last4"], "4242");
        assert!(
            created["payment_method"]["token"]
                .as_str()
                .unwrap()
                .starts_with("tok_")
        );
        let id = created["id"].as_str().unwrap();
        let paid = app.process(id).await;
        assert_eq!(paid.status, StatusCode::OK, "{}: {}", app.label, paid.body);
        assert_eq!(paid.body["status"], "succeeded");
        assert_eq!(paid.body["amount_captured"], 1999);
        assert_eq!(paid.body["customer_email"], "buyer@example.com");
        assert_eq!(paid.body["attempts"][0]["operation"], "charge");
        assert_eq!(paid.body["attempts"][0]["outcome"], "succeeded");
        let events = app.outbox("payment.succeeded").await;
        assert_eq!(events.len(), 1);
        assert_eq!(events[0]["data"]["metadata"]["order_id"], "ord_1");
        assert_eq!(events[0]["data"]["amount_captured"], 1999);
        assert_eq!(app.provider.charges(), 1);

        let again = app.process(id).await;
        assert_eq!(again.status, StatusCode::CONFLICT);
        assert_eq!(again.body["code"], "illegal_transition");
        assert_eq!(app.provider.charges(), 1);
    }
}

#[tokio::test]
async fn declined_cards_fail_the_payment_with_the_reason() {
    for app in apps().await {
        for (number, code) in [
            ("4000000000000002", "card_declined"),
            ("4000000000009995", "insufficient_funds"),
        ] {
            let created = app
                .create(json!({"amount": 500, "currency": "USD", "payment_method": card(number)}))
                .await;
            let id = created["id"].as_str().unwrap();
            let reply = app.process(id).await;
            assert_eq!(
                reply.status,
                StatusCode::PAYMENT_REQUIRED,
                "{}: {}",
                app.label,
                reply.body
            );
            assert_eq!(reply.content_type, PROBLEM);
            assert_eq!(reply.body["decline_code"], code);
            let got = app.get(&format!("/api/v1/payments/{id}")).await;
            assert_eq!(got.body["status"], "failed");
            assert_eq!(got.body["failure_code"], code);
            assert_eq!(got.body["attempts"][0]["outcome"], "declined");
        }
        assert_eq!(app.outbox("payment.failed").await.len(), 2);
        assert_eq!(app.provider.charges(), 0);
    }
}

#[tokio::test]
async fn manual_capture_authorizes_then_captures_part_and_releases_the_rest() {
    for app in apps().await {
        let created = app
            .create(json!({"amount": 1000, "currency": "EUR", "capture_method": "manual", "payment_method": card("5555555555554444")}))
            .await;
        let id = created["id"].as_str().unwrap();
        let authorized = app.process(id).await;
        assert_eq!(
            authorized.body["status"], "requires_capture",
            "{}: {}",
            app.label, authorized.body
        );
        assert_eq!(authorized.body["amount_capturable"], 1000);
        assert!(app.outbox("payment.succeeded").await.is_empty());

        let customer = app.customer("usr_buyer");
        let forbidden = app
            .post_as(
                &customer,
                &format!("/api/v1/payments/{id}/capture"),
                json!({"amount": 600}),
            )
            .await;
        assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
        let too_much = app
            .post_json(
                &format!("/api/v1/payments/{id}/capture"),
                json!({"amount": 1001}),
            )
            .await;
        assert_eq!(too_much.status, StatusCode::CONFLICT);
        assert_eq!(too_much.body["code"], "amount_too_large");
        let captured = app
            .post_json(
                &format!("/api/v1/payments/{id}/capture"),
                json!({"amount": 600}),
            )
            .await;
        assert_eq!(captured.status, StatusCode::OK, "{}", captured.body);
        assert_eq!(captured.body["status"], "succeeded");
        assert_eq!(captured.body["amount_captured"], 600);
        assert_eq!(captured.body["amount_capturable"], 0);
        let twice = app
            .post_json(&format!("/api/v1/payments/{id}/capture"), json!({}))
            .await;
        assert_eq!(twice.status, StatusCode::CONFLICT);
        assert_eq!(app.outbox("payment.succeeded").await.len(), 1);
    }
}

#[tokio::test]
async fn only_payments_where_no_money_moved_can_be_canceled() {
    for app in apps().await {
        let unpaid = app.create(json!({"amount": 100, "currency": "EUR"})).await;
        assert_eq!(unpaid["status"], "requires_payment_method");
        let id = unpaid["id"].as_str().unwrap();
        let canceled = app
            .post_json(&format!("/api/v1/payments/{id}/cancel"), json!({}))
            .await;
        assert_eq!(
            canceled.body["status"], "canceled",
            "{}: {}",
            app.label, canceled.body
        );
        assert_eq!(app.process(id).await.status, StatusCode::CONFLICT);

        let authorized = app.create(json!({"amount": 100, "currency": "EUR", "capture_method": "manual", "payment_method": card("4242424242424242")})).await;
        let id = authorized["id"].as_str().unwrap();
        app.process(id).await;
        let voided = app
            .post_json(&format!("/api/v1/payments/{id}/cancel"), json!({}))
            .await;
        assert_eq!(voided.body["status"], "canceled");
        assert_eq!(voided.body["attempts"][1]["operation"], "cancel");

        let paid = app.paid(100).await;
        let refused = app
            .post_json(&format!("/api/v1/payments/{paid}/cancel"), json!({}))
            .await;
        assert_eq!(refused.status, StatusCode::CONFLICT);
        assert_eq!(refused.body["code"], "illegal_transition");
    }
}

#[tokio::test]
async fn a_card_given_at_process_or_as_a_token_pays_too() {
    for app in apps().await {
        let buyer = app.customer("usr_buyer");
        let unpaid = app.create(json!({"amount": 700, "currency": "GBP"})).await;
        let id = unpaid["id"].as_str().unwrap();
        let bare = app.process(id).await;
        assert_eq!(bare.status, StatusCode::CONFLICT, "no card yet");
        let paid = app.post_as(&buyer, &format!("/api/v1/payments/{id}/process"), json!({"payment_method": {"type": "card", "card": {"number": "378282246310005", "exp_month": 1, "exp_year": 2031, "cvc": "4821"}}})).await;
        assert_eq!(
            paid.body["status"], "succeeded",
            "{}: {}",
            app.label, paid.body
        );
        assert_eq!(paid.body["payment_method"]["brand"], "amex");

        let token = app
            .post_as(&buyer, "/api/v1/payment-methods", card("6011111111111117"))
            .await;
        assert_eq!(token.status, StatusCode::CREATED, "{}", token.body);
        let tok = token.body["token"].as_str().unwrap();
        let with_token = app.create(json!({"amount": 300, "currency": "EUR", "payment_method": {"type": "token", "token": tok}})).await;
        let done = app.process(with_token["id"].as_str().unwrap()).await;
        assert_eq!(done.body["status"], "succeeded");
        assert_eq!(done.body["payment_method"]["last4"], "1117");

        // Someone else's token is nobody's business.
        let thief = app.customer("usr_thief");
        let stolen = app.post_as(&thief, "/api/v1/payments", json!({"amount": 300, "currency": "EUR", "payment_method": {"type": "token", "token": tok}})).await;
        assert_eq!(stolen.status, StatusCode::UNPROCESSABLE_ENTITY);
        let peek = app
            .request("GET", &format!("/api/v1/payments/{id}"), Some(&thief), None)
            .await;
        assert_eq!(peek.status, StatusCode::NOT_FOUND);
        assert_eq!(
            app.get_public(&format!("/api/v1/payments/{id}"))
                .await
                .status,
            StatusCode::UNAUTHORIZED
        );
    }
}

#[tokio::test]
async fn bad_payments_are_refused_and_nothing_is_stored() {
    for app in apps().await {
        let good = card("4242424242424242");
        let cases = [
            (json!({"amount": 0, "currency": "EUR"}), "amount"),
            (json!({"amount": -5, "currency": "EUR"}), "amount"),
            (
                json!({"amount": 1_000_000_000_001_i64, "currency": "EUR"}),
                "amount",
            ),
            (json!({"amount": 100, "currency": "ABC"}), "currency"),
            (json!({"amount": 100, "currency": "eur"}), "currency"),
            (
                json!({"amount": 100, "currency": "EUR", "payment_method": card("4242424242424241")}),
                "payment_method.card.number",
            ),
            (
                json!({"amount": 100, "currency": "EUR", "payment_method": {"type": "card", "card": {"number": "4242424242424242", "exp_month": 1, "exp_year": 2020, "cvc": "123"}}}),
                "payment_method.card.exp_year",
            ),
            (
                json!({"amount": 100, "currency": "EUR", "payment_method": {"type": "card", "card": {"number": "4242424242424242", "exp_month": 13, "exp_year": 2030, "cvc": "123"}}}),
                "payment_method.card.exp_month",
            ),
            (
                json!({"amount": 100, "currency": "EUR", "payment_method": {"type": "card", "card": {"number": "4242424242424242", "exp_month": 1, "exp_year": 2030, "cvc": "12"}}}),
                "payment_method.card.cvc",
            ),
            (
                json!({"amount": 100, "currency": "EUR", "payment_method": {"type": "token", "token": "tok_nope"}}),
                "payment_method.token",
            ),
            (
                json!({"amount": 100, "currency": "EUR", "payment_method": good, "provider": "acme"}),
                "provider",
            ),
            (
                json!({"amount": 100, "currency": "EUR", "customer_email": "nobody"}),
                "customer_email",
            ),
        ];
        for (body, field) in cases {
            let reply = app
                .post_as(&app.customer("usr_buyer"), "/api/v1/payments", body.clone())
                .await;
            assert_eq!(
                reply.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{}: {body} → {}",
                app.label,
                reply.body
            );
            assert_eq!(reply.content_type, PROBLEM);
            assert_eq!(reply.body["errors"][0]["field"], field, "{}", reply.body);
        }
        let wrong_type = app
            .post_as(
                &app.customer("usr_buyer"),
                "/api/v1/payments",
                json!({"amount": "100", "currency": "EUR"}),
            )
            .await;
        assert_eq!(wrong_type.status, StatusCode::UNPROCESSABLE_ENTITY);
        let method_kind = app
            .post_as(
                &app.customer("usr_buyer"),
                "/api/v1/payments",
                json!({"amount": 100, "currency": "EUR", "payment_method": {"type": "cash"}}),
            )
            .await;
        assert_eq!(method_kind.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(app.count("payments").await, 0, "{}", app.label);
        assert_eq!(app.count("card_tokens").await, 0, "{}", app.label);
        let malformed = app.get("/api/v1/payments/not-an-id").await;
        assert_eq!(malformed.status, StatusCode::UNPROCESSABLE_ENTITY);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_concurrent_process_calls_charge_once() {
    for app in apps().await {
        for with_key in [true, false] {
            let created = app.create(json!({"amount": 4200, "currency": "EUR", "payment_method": card("4242424242424242")})).await;
            let id = created["id"].as_str().unwrap().to_owned();
            let before = app.provider.charges();
            let buyer = app.customer("usr_buyer");
            let calls = (0..100).map(|_| {
                let headers: Vec<(&str, &str)> = if with_key {
                    vec![("idempotency-key", "process-once")]
                } else {
                    vec![]
                };
                let path = format!("/api/v1/payments/{id}/process");
                let buyer = buyer.clone();
                let app = &app;
                async move {
                    let headers = headers;
                    app.request_with("POST", &path, Some(&buyer), Some("{}".into()), &headers)
                        .await
                }
            });
            let replies = futures::future::join_all(calls).await;
            let ok = replies
                .iter()
                .filter(|r| r.status == StatusCode::OK)
                .count();
            assert!(ok >= 1, "{}: someone succeeds", app.label);
            for r in &replies {
                assert!(
                    r.status == StatusCode::OK || r.status == StatusCode::CONFLICT,
                    "{}: {} {}",
                    app.label,
                    r.status,
                    r.body
                );
            }
            assert_eq!(
                app.provider.charges() - before,
                1,
                "{}: with key {with_key}: one charge",
                app.label
            );
            let got = app.get(&format!("/api/v1/payments/{id}")).await;
            assert_eq!(got.body["status"], "succeeded");
            assert_eq!(got.body["attempts"].as_array().unwrap().len(), 1);
        }
    }
}

#[tokio::test]
async fn a_timed_out_charge_is_retried_with_the_same_key_and_charges_once() {
    for app in apps().await {
        let created = app.create(json!({"amount": 900, "currency": "EUR", "payment_method": card("4242424242424242")})).await;
        let id = created["id"].as_str().unwrap();
        app.provider.fail_next(1, true);
        let first = app.process(id).await;
        assert_eq!(
            first.status,
            StatusCode::BAD_GATEWAY,
            "{}: {}",
            app.label,
            first.body
        );
        assert_eq!(first.body["code"], "provider_unavailable");
        assert!(first.header("retry-after").is_some());
        let pending = app.get(&format!("/api/v1/payments/{id}")).await;
        assert_eq!(pending.body["status"], "processing");
        assert_eq!(
            app.provider.charges(),
            1,
            "the provider charged before the timeout"
        );

        let retry = app.process(id).await;
        assert_eq!(retry.status, StatusCode::OK, "{}", retry.body);
        assert_eq!(retry.body["status"], "succeeded");
        assert_eq!(
            app.provider.charges(),
            1,
            "{}: the retry carried the same key",
            app.label
        );
        let attempts = retry.body["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 2);
        assert_eq!(attempts[0]["outcome"], "unavailable");
        assert_eq!(attempts[1]["outcome"], "succeeded");
    }
}

#[tokio::test]
async fn the_root_and_health_describe_the_service() {
    for app in apps().await {
        let root = app.get_public("/").await;
        assert_eq!(root.status, StatusCode::OK);
        assert_eq!(root.body["service"], "payments");
        assert_eq!(root.body["health"], "/health");
        assert_eq!(app.get_public("/health").await.status, StatusCode::OK);
    }
}
