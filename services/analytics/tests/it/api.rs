use axum::body::Body;
use axum::http::{Request, StatusCode};
use mercato_bus::{DLQ_SUBJECT, Event};
use serde_json::json;

use mercato_kernel::testing::PROBLEM;

use crate::{TRACK, apps};

#[tokio::test]
async fn a_tracked_event_is_recorded_and_counted() {
    for app in apps().await {
        let body =
            json!({"event": "product_viewed", "properties": {"sku": "A-1"}, "message_id": "m-1"});
        let accepted = app.track(&body.to_string()).await;
        assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", app.label);
        assert_eq!(accepted.body["duplicate"], false);
        app.wait_for_rows("events", 1).await;

        let page = app
            .get_as("/api/v1/analytics/events?name=product_viewed", &["staff"])
            .await;
        assert_eq!(page.status, StatusCode::OK);
        let page = page.body;
        assert_eq!(page["data"][0]["event_id"], accepted.body["id"]);
        assert_eq!(page["data"][0]["kind"], "track");
        assert_eq!(page["data"][0]["data"], r#"{"sku":"A-1"}"#);
        let counts = app
            .get_as("/api/v1/analytics/metrics?name=product_viewed", &["admin"])
            .await
            .body;
        assert_eq!(counts[0]["count"], 1, "{counts}");
    }
}

#[tokio::test]
async fn a_retried_message_is_accepted_once() {
    for app in apps().await {
        let body = json!({"event": "checkout_started", "message_id": "retry-1"}).to_string();
        let first = app.track(&body).await.body;
        let second = app.track(&body).await;
        assert_eq!(second.status, StatusCode::ACCEPTED);
        assert_eq!(second.body["duplicate"], true);
        assert_eq!(first["id"], second.body["id"]);
        app.wait_for_rows("events", 1).await;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(app.count("events").await, 1, "{}", app.label);
    }
}

#[tokio::test]
async fn bad_input_is_a_problem_and_stores_nothing() {
    for app in apps().await {
        let cases = [
            (
                r#"{"event": "Bad Name!"}"#,
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
            ),
            (
                r#"{"event": "ok", "properties": [1, 2]}"#,
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
            ),
            (
                r#"{"event": "ok", "timestamp": "yesterday"}"#,
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
            ),
            (
                r#"{"event": "ok", "message_id": ""}"#,
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
            ),
            (
                r#"{"event": 42}"#,
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
            ),
            (
                r#"{"event": "ok", "extra": 1}"#,
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
            ),
            (
                r#"{"event": "ok""#,
                StatusCode::BAD_REQUEST,
                "malformed_json",
            ),
            ("", StatusCode::BAD_REQUEST, "malformed_json"),
            (
                r#"{"event": "\u0000"}"#,
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
            ),
        ];
        for (body, expected, code) in cases {
            let reply = app.track(body).await;
            let problem = &reply.body;
            assert_eq!(reply.status, expected, "{} {body}: {problem}", app.label);
            assert_eq!(reply.content_type, PROBLEM, "{body}");
            assert_eq!(problem["code"], code, "{body}: {problem}");
        }
        let problem = app
            .track(r#"{"event": "Bad", "properties": 1, "timestamp": "x"}"#)
            .await
            .body;
        let fields: Vec<_> = problem["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].clone())
            .collect();
        assert_eq!(fields, ["event", "properties", "timestamp"]);

        let huge = format!(
            r#"{{"event": "ok", "properties": {{"k": "{}"}}}}"#,
            "x".repeat(2 << 20)
        );
        let reply = app.track(&huge).await;
        assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(reply.content_type, PROBLEM);

        let text = Request::post(TRACK)
            .header("content-type", "text/plain")
            .body(Body::from(r#"{"event": "ok"}"#))
            .unwrap();
        let reply = app.call(text).await;
        assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(reply.content_type, PROBLEM);

        assert_eq!(app.count("accepted_messages").await, 0, "{}", app.label);
        assert_eq!(app.count("outbox").await, 0, "{}", app.label);
    }
}

#[tokio::test]
async fn reads_need_a_staff_token() {
    for app in apps().await {
        for path in [
            "/api/v1/analytics/events",
            "/api/v1/analytics/metrics",
            "/api/v1/analytics/dead-letters",
        ] {
            let anonymous = app.get_public(path).await;
            assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED, "{path}");
            assert_eq!(anonymous.content_type, PROBLEM);
            let customer = app.get_as(path, &["customer"]).await;
            assert_eq!(customer.status, StatusCode::FORBIDDEN, "{path}");
            let staff = app.get_as(path, &["staff"]).await;
            assert_eq!(staff.status, StatusCode::OK, "{path}");
        }
    }
}

#[tokio::test]
async fn invalid_report_parameters_are_problems() {
    for app in apps().await {
        for query in [
            "metrics?from=2026-13-01",
            "metrics?from=2026-11-02&to=2026-11-01",
            "metrics?from=2020-01-01&to=2026-01-01",
            "events?limit=0",
            "events?limit=abc",
            "dead-letters?limit=1000",
        ] {
            let reply = app
                .get_as(&format!("/api/v1/analytics/{query}"), &["staff"])
                .await;
            assert!(reply.status.is_client_error(), "{query}: {}", reply.status);
            assert_eq!(reply.content_type, PROBLEM, "{query}: {}", reply.body);
        }
    }
}

#[tokio::test]
async fn audit_entries_and_dead_letters_from_the_bus_are_kept() {
    for app in apps().await {
        let audit = Event::new(
            "mercato/identity",
            "analytics.audit",
            json!({"action": "user.role_changed", "actor": "usr_1"}),
        )
        .unwrap()
        .with_subject("usr_2");
        app.bus.publish(&audit).await.unwrap();
        let failed = Event::new("mercato/orders", "order.created", json!({"id": "ord_1"})).unwrap();
        let dead = Event::new(
            "mercato/notifications",
            DLQ_SUBJECT,
            json!({"consumer": "notifications", "error": "smtp refused", "attempts": 5, "event": failed}),
        )
        .unwrap();
        app.bus.publish(&dead).await.unwrap();
        app.wait_for_rows("events", 1).await;
        app.wait_for_rows("dead_letters", 1).await;

        let page = app
            .get_as(
                "/api/v1/analytics/events?name=user.role_changed",
                &["staff"],
            )
            .await
            .body;
        assert_eq!(page["data"][0]["kind"], "audit");
        assert_eq!(page["data"][0]["subject"], "usr_2");
        let letters = app
            .get_as("/api/v1/analytics/dead-letters", &["staff"])
            .await
            .body;
        assert_eq!(letters["data"][0]["event_id"], failed.id, "{letters}");
        assert_eq!(letters["data"][0]["consumer"], "notifications");
        assert_eq!(letters["data"][0]["error"], "smtp refused");
    }
}

#[tokio::test]
async fn the_service_reports_ready_and_publishes_its_openapi() {
    for app in apps().await {
        let ready = app.get_public("/ready").await;
        assert_eq!(ready.status, StatusCode::OK, "{}", ready.body);
        assert_eq!(ready.body["status"], "ready");
        let doc = app.get_public("/openapi.json").await;
        assert_eq!(doc.status, StatusCode::OK);
        let doc = doc.body;
        assert!(doc["paths"]["/api/v1/analytics/track"]["post"].is_object());
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
    }
}
