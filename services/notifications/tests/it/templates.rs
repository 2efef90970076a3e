//! Templates: variables checked at create time, versions, preview; bad sends refused.

use axum::http::StatusCode;
use mercato_kernel::testing::PROBLEM;
use serde_json::json;

use crate::{apps, config, send};

#[tokio::test]
async fn templates_are_checked_at_create_and_versioned() {
    for app in apps(config()).await {
        let label = app.label;
        let body = json!({"name": "promo", "channel": "email", "subject": "Hi {{ name }}",
                          "body": "{{ name }}, {{ discount }} off", "variables": ["name"],
                          "category": "marketing"});
        let reply = app.post_json("/api/v1/templates", body.clone()).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{label}: {}",
            reply.body
        );
        assert!(
            reply.body["detail"].as_str().unwrap().contains("discount"),
            "{label}"
        );
        let mut ok = body.clone();
        ok["variables"] = json!(["name", "discount"]);
        let v1 = app.post_json("/api/v1/templates", ok.clone()).await;
        assert_eq!(v1.status, StatusCode::CREATED, "{label}: {}", v1.body);
        ok["body"] = json!("{{ name }}: {{ discount }} off today");
        let v2 = app.post_json("/api/v1/templates", ok).await;
        assert_eq!(v2.body["version"], 2, "{label}: {}", v2.body);
        let preview = app
            .post_json(
                "/api/v1/templates/preview",
                json!({"name": "promo", "channel": "email", "data": {"name": "Ada", "discount": "10 %"}}),
            )
            .await;
        assert_eq!(
            preview.body["body"], "Ada: 10 % off today",
            "{label}: {}",
            preview.body
        );
        let list = app.get("/api/v1/templates").await;
        let promos: Vec<_> = list
            .body
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["name"] == "promo")
            .collect();
        assert_eq!(promos.len(), 1, "{label}: the newest version only");
        assert!(
            list.body
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["name"] == "order_receipt"),
            "{label}: built-ins"
        );
    }
}

#[tokio::test]
async fn bad_sends_are_problems_and_queue_nothing() {
    for app in apps(config()).await {
        let label = app.label;
        let huge = "x".repeat(1024 * 1024);
        let cases = [
            (
                "unknown template",
                json!({"channel": "email", "to": "a@b.co", "template": "nope"}),
            ),
            (
                "missing variables",
                json!({"channel": "email", "to": "a@b.co", "template": "order_receipt", "data": {"number": "1"}}),
            ),
            (
                "invalid email",
                json!({"channel": "email", "to": "not-an-email", "subject": "s", "body": "b"}),
            ),
            (
                "invalid phone",
                json!({"channel": "sms", "to": "0151 123", "body": "b"}),
            ),
            (
                "unknown channel",
                json!({"channel": "pigeon", "to": "a@b.co", "body": "b"}),
            ),
            (
                "no body",
                json!({"channel": "email", "to": "a@b.co", "subject": "s"}),
            ),
            (
                "user without address",
                json!({"channel": "email", "user_id": "usr_x", "subject": "s", "body": "b"}),
            ),
        ];
        for (what, body) in cases {
            let reply = send(&app, body).await;
            assert_eq!(
                reply.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{label}: {what}: {}",
                reply.body
            );
            assert_eq!(reply.content_type, PROBLEM, "{label}: {what}");
        }
        let reply = send(
            &app,
            json!({"channel": "email", "to": "a@b.co", "subject": "s", "body": huge}),
        )
        .await;
        assert!(
            reply.status.is_client_error(),
            "{label}: 1 MB body: {}",
            reply.status
        );
        let customer = app.keys.token_for("usr_c", &["customer"], None);
        let reply = app
            .request(
                "POST",
                "/api/v1/notifications",
                Some(&customer),
                Some(json!({"channel": "in_app", "user_id": "usr_c", "body": "b"}).to_string()),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::FORBIDDEN,
            "{label}: customers do not send"
        );
        assert_eq!(app.count("notifications").await, 0, "{label}");
    }
}
