use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};

use crate::{apps, card, sign};

async fn deliver(
    app: &crate::App,
    path: &str,
    event: &Value,
    signature: Option<String>,
) -> mercato_kernel::testing::Reply {
    let body = event.to_string();
    let mut request = Request::post(path).header("content-type", "application/json");
    if let Some(sig) = signature {
        request = request.header("x-test-signature", sig);
    }
    app.call(request.body(Body::from(body)).unwrap()).await
}

#[tokio::test]
async fn signed_webhooks_are_applied_once_and_forged_ones_refused() {
    for app in apps().await {
        let id = app.paid(1000).await;
        let payment = app.get(&format!("/api/v1/payments/{id}")).await.body;
        let reference = payment["attempts"][0]["reference"]
            .as_str()
            .unwrap()
            .to_owned();
        let dispute = json!({"id": "evt_1", "type": "charge.disputed", "reference": reference});
        let signed = Some(sign(dispute.to_string().as_bytes()));

        let first = deliver(&app, "/api/v1/webhooks/test", &dispute, signed.clone()).await;
        assert_eq!(
            first.status,
            StatusCode::OK,
            "{}: {}",
            app.label,
            first.body
        );
        assert_eq!(first.body["duplicate"], false);
        assert_eq!(
            app.get(&format!("/api/v1/payments/{id}")).await.body["disputed"],
            true
        );
        let replay = deliver(&app, "/api/v1/payments/webhooks/test", &dispute, signed).await;
        assert_eq!(replay.body["duplicate"], true);
        assert_eq!(app.count("webhook_events").await, 1);

        let forged = deliver(
            &app,
            "/api/v1/webhooks/test",
            &json!({"id": "evt_2", "type": "charge.disputed", "reference": reference}),
            Some("00".repeat(32)),
        )
        .await;
        assert_eq!(forged.status, StatusCode::BAD_REQUEST);
        assert_eq!(forged.body["code"], "invalid_signature");
        let unsigned = deliver(&app, "/api/v1/webhooks/test", &dispute, None).await;
        assert_eq!(unsigned.status, StatusCode::BAD_REQUEST);
        let malformed = app
            .call(
                Request::post("/api/v1/webhooks/test")
                    .header("x-test-signature", sign(b"{not json"))
                    .body(Body::from("{not json"))
                    .unwrap(),
            )
            .await;
        assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
        assert_eq!(malformed.body["code"], "malformed_webhook");
        let unknown = deliver(&app, "/api/v1/webhooks/acme", &dispute, None).await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND);
        assert_eq!(
            app.count("webhook_events").await,
            1,
            "refused deliveries leave no trace"
        );
    }
}

#[tokio::test]
async fn analytics_report_volume_rates_and_risk_decisions() {
    for app in apps().await {
        let paid = app.paid(1000).await;
        app.paid(3000).await;
        let declined = app.create(json!({"amount": 500, "currency": "EUR", "payment_method": card("4000000000000002")})).await;
        app.process(declined["id"].as_str().unwrap()).await;
        app.post_json(
            &format!("/api/v1/payments/{paid}/refund"),
            json!({"amount": 400}),
        )
        .await;

        let report = app.get("/api/v1/payments/analytics?days=7").await;
        assert_eq!(
            report.status,
            StatusCode::OK,
            "{}: {}",
            app.label,
            report.body
        );
        let eur = &report.body["by_currency"]["EUR"];
        assert_eq!(eur["count"], 3);
        assert_eq!(eur["succeeded"], 2);
        assert_eq!(eur["failed"], 1);
        assert_eq!(eur["captured"], 4000);
        assert_eq!(eur["refunded"], 400);
        assert_eq!(eur["average_ticket"], 2000);
        assert!((eur["success_rate"].as_f64().unwrap() - 2.0 / 3.0).abs() < 1e-9);
        assert!((eur["refund_rate"].as_f64().unwrap() - 0.1).abs() < 1e-9);
        assert_eq!(report.body["risk_decisions"]["allow"], 3);
        assert_eq!(
            app.get("/api/v1/analytics?days=0").await.status,
            StatusCode::UNPROCESSABLE_ENTITY
        );
        let buyer = app.customer("usr_buyer");
        assert_eq!(
            app.request("GET", "/api/v1/payments/analytics", Some(&buyer), None)
                .await
                .status,
            StatusCode::FORBIDDEN
        );
    }
}

#[tokio::test]
async fn the_test_card_0259_is_disputed_after_it_succeeds() {
    let services = mercato_kernel::testing::TestService::start_all(
        &mercato_payments::MIGRATOR,
        mercato_kernel::Config::default(),
        mercato_payments::start,
    )
    .await;
    for app in services {
        let created = app
            .post_json("/api/v1/payments", json!({"amount": 100, "currency": "EUR", "payment_method": card("4000000000000259")}))
            .await;
        let id = created.body["id"].as_str().unwrap().to_owned();
        let paid = app
            .post_json(&format!("/api/v1/payments/{id}/process"), json!({}))
            .await;
        assert_eq!(
            paid.body["status"], "succeeded",
            "{}: {}",
            app.label, paid.body
        );
        assert_eq!(paid.body["disputed"], false);
        app.eventually("the dispute arrives", || async {
            app.get(&format!("/api/v1/payments/{id}")).await.body["disputed"] == true
        })
        .await;
        assert_eq!(app.count("webhook_events").await, 1);
    }
}
