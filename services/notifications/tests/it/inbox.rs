//! In-app: the inbox, unread counts, marking read, the live stream, and what the events put
//! there (a welcome on sign-up, low-stock alerts in the staff inbox).

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use futures::StreamExt;
use mercato_bus::{Event, enqueue};
use mercato_contracts::subjects::{NOTIFICATION_EMAIL, STOCK_LOW, USER_REGISTERED};
use serde_json::json;
use tower::ServiceExt;

use crate::{apps, config, send, settled};

#[tokio::test]
async fn the_inbox_lists_counts_streams_and_marks_read() {
    for app in apps(config()).await {
        let label = app.label;
        let ada = app.keys.token_for("usr_ada", &["customer"], None);
        // Open the stream first, then send.
        let request = Request::get("/api/v1/notifications/inbox/stream")
            .header(header::AUTHORIZATION, format!("Bearer {ada}"))
            .body(Body::empty())
            .unwrap();
        let response = app.service.router.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{label}");
        let mut stream = response.into_body().into_data_stream();
        for n in 0..3 {
            let reply = send(
                &app,
                json!({"channel": "in_app", "user_id": "usr_ada",
                                         "subject": format!("Note {n}"), "body": "hello"}),
            )
            .await;
            assert_eq!(
                reply.status,
                StatusCode::ACCEPTED,
                "{label}: {}",
                reply.body
            );
            let done = settled(&app, reply.body["id"].as_str().unwrap()).await;
            assert_eq!(done["status"], "delivered", "{label}: {done}");
        }
        let first = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("an event within 10 s")
            .unwrap()
            .unwrap();
        let text = String::from_utf8_lossy(&first).to_string();
        assert!(
            text.contains("event: notification") && text.contains("Note 0"),
            "{label}: {text}"
        );

        let inbox = app
            .request("GET", "/api/v1/notifications/inbox", Some(&ada), None)
            .await;
        assert_eq!(inbox.body["unread"], 3, "{label}: {}", inbox.body);
        assert_eq!(
            inbox.body["data"][0]["subject"], "Note 2",
            "{label}: newest first"
        );
        let id = inbox.body["data"][0]["id"].as_str().unwrap();
        let read = app
            .request(
                "POST",
                "/api/v1/notifications/inbox/read",
                Some(&ada),
                Some(json!({"id": id}).to_string()),
            )
            .await;
        assert_eq!(
            (read.body["marked"].as_u64(), read.body["unread"].as_i64()),
            (Some(1), Some(2)),
            "{label}"
        );
        let bob = app.keys.token_for("usr_bob", &["customer"], None);
        let theirs = app
            .request("GET", "/api/v1/notifications/inbox", Some(&bob), None)
            .await;
        assert_eq!(theirs.body["data"], json!([]), "{label}: only one's own");
    }
}

#[tokio::test]
async fn events_queue_emails_welcomes_and_staff_alerts_once() {
    for app in apps(config()).await {
        let label = app.label;
        let registered = Event::new(
            "test",
            USER_REGISTERED,
            json!({"user_id": "usr_new", "email": "new@example.com", "name": "Nia"}),
        )
        .unwrap();
        let low = Event::new(
            "test",
            STOCK_LOW,
            json!({"sku": "TEE-M", "available": 2, "threshold": 5}),
        )
        .unwrap();
        let mail = Event::new("test", NOTIFICATION_EMAIL,
            json!({"to": "new@example.com", "template": "verify_email",
                   "variables": {"name": "Nia", "token": "123456", "user_id": "usr_new", "expires_in_seconds": 3600}})).unwrap();
        for _ in 0..2 {
            let mut tx = app.db.begin().await.unwrap();
            for event in [&registered, &low, &mail] {
                enqueue(&mut tx, event).await.unwrap();
            }
            tx.commit().await.unwrap();
        }
        // The relay of the service under test publishes its own outbox.
        let outbox_relay = mercato_bus::Relay::new(app.db.clone(), app.bus.clone());
        outbox_relay.run_once().await.unwrap();
        app.eventually("three notifications delivered", || async {
            let delivered: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM notifications WHERE status = 'delivered'")
                    .fetch_one(app.db.pool())
                    .await
                    .unwrap();
            delivered == 3
        })
        .await;
        assert_eq!(
            app.count("notifications").await,
            3,
            "{label}: each event once"
        );
        let nia = app.keys.token_for("usr_new", &["customer"], None);
        let inbox = app
            .request("GET", "/api/v1/notifications/inbox", Some(&nia), None)
            .await;
        assert_eq!(
            inbox.body["data"][0]["subject"], "Welcome, Nia",
            "{label}: {}",
            inbox.body
        );
        let staff = app
            .request("GET", "/api/v1/notifications/inbox", Some(&app.staff), None)
            .await;
        assert_eq!(
            staff.body["data"][0]["subject"], "Low stock: TEE-M",
            "{label}: {}",
            staff.body
        );
        let mailbox = app.get("/api/v1/notifications/mailbox").await;
        assert!(
            mailbox.body[0]["text"].as_str().unwrap().contains("123456"),
            "{label}"
        );
        // The address learned from the sign-up serves sends by user id.
        let reply = send(
            &app,
            json!({"channel": "email", "user_id": "usr_new", "subject": "s", "body": "b"}),
        )
        .await;
        assert_eq!(
            reply.body["to"], "new@example.com",
            "{label}: {}",
            reply.body
        );
    }
}
