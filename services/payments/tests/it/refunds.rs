use axum::http::StatusCode;
use serde_json::json;

use crate::apps;

#[tokio::test]
async fn refunds_add_up_to_at_most_what_was_captured() {
    for app in apps().await {
        let id = app.paid(1000).await;
        let path = format!("/api/v1/payments/{id}/refund");
        let first = app
            .post_json(&path, json!({"amount": 300, "reason": "damaged"}))
            .await;
        assert_eq!(
            first.status,
            StatusCode::CREATED,
            "{}: {}",
            app.label,
            first.body
        );
        assert_eq!(first.body["status"], "succeeded");
        let too_much = app.post_json(&path, json!({"amount": 701})).await;
        assert_eq!(too_much.status, StatusCode::CONFLICT);
        assert_eq!(too_much.body["code"], "amount_too_large");
        let rest = app.post_json(&path, json!({})).await;
        assert_eq!(rest.body["amount"], 700, "no amount refunds the rest");
        let nothing_left = app.post_json(&path, json!({"amount": 1})).await;
        assert_eq!(nothing_left.status, StatusCode::CONFLICT);
        let got = app.get(&format!("/api/v1/payments/{id}")).await;
        assert_eq!(got.body["amount_refunded"], 1000);
        assert_eq!(got.body["refunds"].as_array().unwrap().len(), 2);
        assert_eq!(app.outbox("payment.refunded").await.len(), 2);

        for bad in [
            json!({"amount": 0}),
            json!({"amount": -1}),
            json!({"reason": "x".repeat(201)}),
        ] {
            assert_eq!(
                app.post_json(&path, bad).await.status,
                StatusCode::UNPROCESSABLE_ENTITY
            );
        }
        let customer = app.customer("usr_buyer");
        assert_eq!(
            app.post_as(&customer, &path, json!({})).await.status,
            StatusCode::FORBIDDEN
        );
        let unpaid = app.create(json!({"amount": 100, "currency": "EUR"})).await;
        let refused = app
            .post_json(
                &format!("/api/v1/payments/{}/refund", unpaid["id"].as_str().unwrap()),
                json!({}),
            )
            .await;
        assert_eq!(refused.status, StatusCode::CONFLICT);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_refunds_never_exceed_the_captured_amount() {
    for app in apps().await {
        let id = app.paid(1000).await;
        let path = format!("/api/v1/payments/{id}/refund");
        let calls = (0..30).map(|_| app.post_json(&path, json!({"amount": 100})));
        let replies = futures::future::join_all(calls).await;
        let created = replies
            .iter()
            .filter(|r| r.status == StatusCode::CREATED)
            .count();
        assert_eq!(created, 10, "{}", app.label);
        assert!(
            replies
                .iter()
                .all(|r| r.status == StatusCode::CREATED || r.status == StatusCode::CONFLICT)
        );
        let got = app.get(&format!("/api/v1/payments/{id}")).await;
        assert_eq!(got.body["amount_refunded"], 1000, "{}", app.label);
    }
}

#[tokio::test]
async fn a_refund_the_provider_cannot_confirm_stays_pending_and_reserved() {
    for app in apps().await {
        let id = app.paid(1000).await;
        app.provider.fail_next(1, false);
        let reply = app
            .post_json(
                &format!("/api/v1/payments/{id}/refund"),
                json!({"amount": 400}),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_GATEWAY,
            "{}: {}",
            app.label,
            reply.body
        );
        let got = app.get(&format!("/api/v1/payments/{id}")).await;
        assert_eq!(got.body["refunds"][0]["status"], "pending");
        assert_eq!(
            got.body["amount_refunded"], 400,
            "the pending refund keeps its amount"
        );
        let over = app
            .post_json(
                &format!("/api/v1/payments/{id}/refund"),
                json!({"amount": 601}),
            )
            .await;
        assert_eq!(over.status, StatusCode::CONFLICT);
    }
}
