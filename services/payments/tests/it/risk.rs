use axum::http::StatusCode;
use serde_json::json;

use crate::{apps, card};

#[tokio::test]
async fn a_risky_payment_waits_for_a_reviewer_who_approves_or_rejects_it() {
    for app in apps().await {
        let risky = json!({"amount": 200_000, "currency": "EUR", "payment_method": card("4242424242424242"),
            "customer_email": "someone@mailinator.com", "billing_country": "DE", "shipping_country": "NG"});
        let first = app.create(risky.clone()).await;
        let id = first["id"].as_str().unwrap();
        let held = app.process(id).await;
        assert_eq!(held.status, StatusCode::OK, "{}: {}", app.label, held.body);
        assert_eq!(held.body["status"], "requires_review");
        assert_eq!(held.body["risk"]["score"], 55);
        assert_eq!(held.body["risk"]["decision"], "review");
        let codes: Vec<&str> = held.body["risk"]["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["code"].as_str().unwrap())
            .collect();
        assert_eq!(
            codes,
            [
                "large_first_purchase",
                "country_mismatch",
                "disposable_email"
            ]
        );
        assert_eq!(app.provider.charges(), 0, "nothing charged while held");
        assert_eq!(app.outbox("payment.review_required").await.len(), 1);

        let buyer = app.customer("usr_buyer");
        let path = format!("/api/v1/payments/{id}/review");
        assert_eq!(
            app.post_as(&buyer, &path, json!({"decision": "approve"}))
                .await
                .status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            app.post_json(&path, json!({"decision": "maybe"}))
                .await
                .status,
            StatusCode::UNPROCESSABLE_ENTITY
        );
        let approved = app.post_json(&path, json!({"decision": "approve"})).await;
        assert_eq!(
            approved.body["status"], "succeeded",
            "{}: {}",
            app.label, approved.body
        );
        assert_eq!(approved.body["risk"]["review_decision"], "approved");
        assert_eq!(approved.body["risk"]["reviewed_by"], "usr_staff");
        assert_eq!(app.provider.charges(), 1);
        assert_eq!(
            app.post_json(&path, json!({"decision": "approve"}))
                .await
                .status,
            StatusCode::CONFLICT
        );

        // Five times the buyer's history now adds to the same signals.
        let mut riskier = risky;
        riskier["amount"] = json!(2_000_000);
        let second = app.create(riskier).await;
        let id = second["id"].as_str().unwrap();
        app.process(id).await;
        let rejected = app
            .post_json(
                &format!("/api/v1/payments/{id}/review"),
                json!({"decision": "reject"}),
            )
            .await;
        assert_eq!(rejected.body["status"], "failed");
        assert_eq!(rejected.body["failure_code"], "rejected_in_review");
        assert_eq!(app.provider.charges(), 1);
    }
}

#[tokio::test]
async fn blocklisted_emails_and_cards_are_refused() {
    for app in apps().await {
        let added = app
            .post_json(
                "/api/v1/payments/risk/blocklist",
                json!({"kind": "email", "value": "Fraud@Example.com", "reason": "chargebacks"}),
            )
            .await;
        assert_eq!(added.status, StatusCode::CREATED, "{}", added.body);
        let payment = app.create(json!({"amount": 100, "currency": "EUR", "payment_method": card("4242424242424242"), "customer_email": "fraud@example.com"})).await;
        let refused = app.process(payment["id"].as_str().unwrap()).await;
        assert_eq!(
            refused.status,
            StatusCode::PAYMENT_REQUIRED,
            "{}: {}",
            app.label,
            refused.body
        );
        assert_eq!(refused.body["code"], "payment_blocked");
        let got = app
            .get(&format!(
                "/api/v1/payments/{}",
                payment["id"].as_str().unwrap()
            ))
            .await;
        assert_eq!(got.body["status"], "failed");
        assert_eq!(got.body["failure_code"], "blocked_by_risk");
        assert_eq!(got.body["risk"]["reasons"][0]["code"], "blocklist");

        // A card is blocked by its fingerprint: another token of the same number is refused.
        let buyer = app.customer("usr_buyer");
        let token = app
            .post_as(&buyer, "/api/v1/payment-methods", card("5555555555554444"))
            .await
            .body["token"]
            .as_str()
            .unwrap()
            .to_owned();
        let blocked = app
            .post_json(
                "/api/v1/payments/risk/blocklist",
                json!({"kind": "card", "value": token}),
            )
            .await;
        assert_eq!(blocked.status, StatusCode::CREATED);
        assert_eq!(
            blocked.body["value"].as_str().unwrap().len(),
            64,
            "stored as a fingerprint"
        );
        let again = app.create(json!({"amount": 100, "currency": "EUR", "payment_method": card("5555 5555 5555 4444")})).await;
        assert_eq!(
            app.process(again["id"].as_str().unwrap()).await.body["code"],
            "payment_blocked"
        );

        let list = app.get("/api/v1/payments/risk/blocklist").await;
        assert_eq!(list.body.as_array().unwrap().len(), 2);
        let removed = app
            .delete("/api/v1/payments/risk/blocklist/email/fraud@example.com")
            .await;
        assert_eq!(removed.status, StatusCode::NO_CONTENT);
        let allowed = app.create(json!({"amount": 100, "currency": "EUR", "payment_method": card("4242424242424242"), "customer_email": "fraud@example.com"})).await;
        assert_eq!(
            app.process(allowed["id"].as_str().unwrap()).await.body["status"],
            "succeeded"
        );
        assert_eq!(app.provider.charges(), 1);

        for bad in [
            json!({"kind": "email", "value": "nope"}),
            json!({"kind": "ip", "value": "999.1.1.1"}),
            json!({"kind": "phone", "value": "1"}),
            json!({"kind": "card", "value": "tok_missing"}),
        ] {
            assert_eq!(
                app.post_json("/api/v1/payments/risk/blocklist", bad)
                    .await
                    .status,
                StatusCode::UNPROCESSABLE_ENTITY
            );
        }
        assert_eq!(
            app.post_as(
                &buyer,
                "/api/v1/payments/risk/blocklist",
                json!({"kind": "ip", "value": "1.2.3.4"})
            )
            .await
            .status,
            StatusCode::FORBIDDEN
        );
    }
}

#[tokio::test]
async fn the_same_card_many_times_in_an_hour_raises_the_score() {
    for app in apps().await {
        let mut last = serde_json::Value::Null;
        for _ in 0..4 {
            let p = app.create(json!({"amount": 100, "currency": "EUR", "payment_method": card("4242424242424242")})).await;
            last = app.process(p["id"].as_str().unwrap()).await.body;
        }
        assert_eq!(last["risk"]["score"], 25, "{}: {last}", app.label);
        assert_eq!(last["risk"]["reasons"][0]["code"], "card_velocity");
        assert_eq!(
            last["status"], "succeeded",
            "25 is below the review threshold"
        );
    }
}

#[tokio::test]
async fn staff_list_the_newest_payments_by_status() {
    for app in apps().await {
        let paid = app.paid(1_500).await;
        let risky = json!({"amount": 200_000, "currency": "EUR", "payment_method": card("4242424242424242"),
            "customer_email": "someone@mailinator.com", "billing_country": "DE", "shipping_country": "NG"});
        let held = app.create(risky).await;
        let held = held["id"].as_str().unwrap().to_owned();
        assert_eq!(app.process(&held).await.body["status"], "requires_review");

        let all = app.get("/api/v1/payments").await;
        assert_eq!(all.status, StatusCode::OK, "{}: {}", app.label, all.body);
        let ids: Vec<&str> = all
            .body
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, [held.as_str(), paid.as_str()], "{}", app.label);

        let review = app.get("/api/v1/payments?status=requires_review").await;
        let listed = review.body.as_array().unwrap();
        assert_eq!(listed.len(), 1, "{}: {}", app.label, review.body);
        assert_eq!(listed[0]["risk"]["decision"], "review");

        assert_eq!(
            app.get("/api/v1/payments?limit=0").await.status,
            StatusCode::UNPROCESSABLE_ENTITY
        );
        let buyer = app.customer("usr_buyer");
        let denied = app
            .request("GET", "/api/v1/payments", Some(&buyer), None)
            .await;
        assert_eq!(denied.status, StatusCode::FORBIDDEN);
    }
}
