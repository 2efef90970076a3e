//! Delivery rules: preferences and quiet hours, retries of transient failures, and rate
//! limits that delay without losing anything.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::http::StatusCode;
use serde_json::json;

use crate::{apps, config, send, settled};

/// A webhook receiver answering 503 to the first `failures` calls, then 200.
async fn flaky_receiver(failures: usize) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let counter = counter.clone();
            async move {
                if counter.fetch_add(1, Ordering::SeqCst) < failures {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, hits)
}

#[tokio::test]
async fn transient_failures_are_retried_and_permanent_ones_are_not() {
    for app in apps(config()).await {
        let label = app.label;
        let (url, hits) = flaky_receiver(2).await;
        let reply = send(
            &app,
            json!({"channel": "webhook", "to": url, "body": "ping"}),
        )
        .await;
        let done = settled(&app, reply.body["id"].as_str().unwrap()).await;
        assert_eq!(done["status"], "sent", "{label}: {done}");
        assert_eq!(done["attempts"], 3, "{label}");
        let outcomes: Vec<_> = done["attempt_log"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["outcome"].clone())
            .collect();
        assert_eq!(
            outcomes,
            [json!("transient"), json!("transient"), json!("sent")],
            "{label}"
        );
        assert_eq!(hits.load(Ordering::SeqCst), 3);

        let (url, _) = flaky_receiver(usize::MAX).await;
        let reply = send(
            &app,
            json!({"channel": "webhook", "to": url, "body": "ping"}),
        )
        .await;
        let done = settled(&app, reply.body["id"].as_str().unwrap()).await;
        assert_eq!(
            done["status"], "failed",
            "{label}: gives up after the last attempt: {done}"
        );
        assert_eq!(
            done["attempts"], app.config.notifications_max_attempts,
            "{label}"
        );
    }
}

#[tokio::test]
async fn opted_out_categories_are_suppressed_and_quiet_hours_delay_all_but_urgent() {
    for app in apps(config()).await {
        let label = app.label;
        let ada = app.keys.token_for("usr_ada", &["customer"], None);
        let prefs = json!({"preferences": [{"category": "marketing", "channel": "in_app", "enabled": false}]});
        let reply = app
            .request(
                "PUT",
                "/api/v1/preferences/usr_ada",
                Some(&ada),
                Some(prefs.to_string()),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{label}: {}", reply.body);
        let no = json!({"preferences": [{"category": "transactional", "channel": "email", "enabled": false}]});
        let reply = app
            .request(
                "PUT",
                "/api/v1/preferences/usr_ada",
                Some(&ada),
                Some(no.to_string()),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{label}: transactional stays on"
        );
        let bob = app.keys.token_for("usr_bob", &["customer"], None);
        let reply = app
            .request("GET", "/api/v1/preferences/usr_ada", Some(&bob), None)
            .await;
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "{label}: someone else's"
        );

        let marketing = send(&app, json!({"channel": "in_app", "user_id": "usr_ada", "body": "sale", "category": "marketing"})).await;
        let done = settled(&app, marketing.body["id"].as_str().unwrap()).await;
        assert_eq!(done["status"], "suppressed", "{label}: {done}");
        let receipt = send(
            &app,
            json!({"channel": "in_app", "user_id": "usr_ada", "body": "receipt"}),
        )
        .await;
        assert_eq!(
            settled(&app, receipt.body["id"].as_str().unwrap()).await["status"],
            "delivered"
        );

        // Quiet all day long except the minute before now: everything non-urgent waits.
        let now = chrono::Utc::now();
        let minute = |m: i64| {
            let m = m.rem_euclid(1440);
            format!("{:02}:{:02}", m / 60, m % 60)
        };
        let current = i64::from(chrono::Timelike::hour(&now)) * 60
            + i64::from(chrono::Timelike::minute(&now));
        let quiet = json!({"quiet_hours": {"start": minute(current), "end": minute(current - 1), "utc_offset_minutes": 0}});
        let reply = app
            .request(
                "PUT",
                "/api/v1/preferences/usr_ada",
                Some(&ada),
                Some(quiet.to_string()),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{label}: {}", reply.body);
        let waiting = send(&app, json!({"channel": "in_app", "user_id": "usr_ada", "body": "later", "category": "product_updates"})).await;
        let urgent = send(&app, json!({"channel": "in_app", "user_id": "usr_ada", "body": "now", "urgent": true, "category": "product_updates"})).await;
        assert_eq!(
            settled(&app, urgent.body["id"].as_str().unwrap()).await["status"],
            "delivered",
            "{label}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let later = app
            .get(&format!(
                "/api/v1/notifications/{}",
                waiting.body["id"].as_str().unwrap()
            ))
            .await;
        assert_eq!(later.body["status"], "queued", "{label}: {}", later.body);
        assert!(
            later.body["next_attempt_at"].is_string(),
            "{label}: says when"
        );
    }
}

#[tokio::test]
async fn a_per_user_limit_delays_sends_without_losing_any() {
    const SENDS: usize = 1000;
    const RATE: u32 = 100;
    let mut config = config();
    config.notifications_user_rate_per_second = RATE;
    for app in apps(config).await {
        let label = app.label;
        for n in 0..SENDS {
            let reply = send(
                &app,
                json!({"channel": "in_app", "user_id": "usr_busy", "body": format!("n{n}")}),
            )
            .await;
            assert_eq!(
                reply.status,
                StatusCode::ACCEPTED,
                "{label}: {}",
                reply.body
            );
        }
        app.eventually("every send delivered", || async {
            let delivered: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM notifications WHERE status = 'delivered'")
                    .fetch_one(app.db.pool())
                    .await
                    .unwrap();
            delivered == SENDS as i64
        })
        .await;
        let mut sent_at: Vec<i64> =
            sqlx::query_scalar("SELECT sent_at FROM notifications ORDER BY sent_at")
                .fetch_all(app.db.pool())
                .await
                .unwrap();
        sent_at.sort_unstable();
        // A bucket of RATE tokens refilled at RATE/s: any one-second window holds at most
        // 2 × RATE sends, and the whole run takes at least (SENDS − RATE) / RATE seconds.
        let second = 1_000_000;
        let mut start = 0;
        for end in 0..sent_at.len() {
            while sent_at[end] - sent_at[start] >= second {
                start += 1;
            }
            assert!(
                end - start < 2 * RATE as usize,
                "{label}: {} in one second",
                end - start + 1
            );
        }
        let span = sent_at[sent_at.len() - 1] - sent_at[0];
        let floor = (SENDS as i64 - i64::from(RATE)) * second / i64::from(RATE);
        assert!(
            span >= floor - 50_000,
            "{label}: {SENDS} sends in {span} µs, faster than {RATE}/s"
        );
    }
}

#[tokio::test]
async fn an_api_caller_over_its_budget_gets_429_and_nothing_is_queued() {
    let mut config = config();
    config.notifications_api_rate_per_second = 5;
    for app in apps(config).await {
        let label = app.label;
        let mut accepted = 0;
        let mut limited = 0;
        for n in 0..20 {
            let reply = send(
                &app,
                json!({"channel": "in_app", "user_id": "usr_x", "body": format!("n{n}")}),
            )
            .await;
            match reply.status {
                StatusCode::ACCEPTED => accepted += 1,
                StatusCode::TOO_MANY_REQUESTS => {
                    assert!(reply.header("retry-after").is_some(), "{label}");
                    limited += 1;
                }
                other => panic!("{label}: {other}"),
            }
        }
        assert!(
            limited > 0 && accepted >= 5,
            "{label}: {accepted} accepted, {limited} limited"
        );
        assert_eq!(app.count("notifications").await, accepted, "{label}");
    }
}

#[tokio::test]
async fn staff_read_the_delivery_log_newest_first() {
    for app in apps(config()).await {
        let label = app.label;
        let (url, _) = flaky_receiver(0).await;
        let first = send(
            &app,
            json!({"channel": "webhook", "to": url, "body": "one"}),
        )
        .await;
        let second = send(
            &app,
            json!({"channel": "webhook", "to": url, "body": "two"}),
        )
        .await;
        let second_id = second.body["id"].as_str().unwrap().to_owned();
        settled(&app, &second_id).await;
        settled(&app, first.body["id"].as_str().unwrap()).await;

        let log = app.get("/api/v1/notifications?limit=1").await;
        assert_eq!(log.status, StatusCode::OK, "{label}: {}", log.body);
        let rows = log.body.as_array().unwrap();
        assert_eq!(rows.len(), 1, "{label}");
        assert_eq!(rows[0]["id"], second_id.as_str(), "{label}");
        assert_eq!(rows[0]["status"], "sent", "{label}");
        assert_eq!(rows[0]["attempts"], 1, "{label}");
        assert_eq!(
            app.get("/api/v1/notifications")
                .await
                .body
                .as_array()
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            app.get("/api/v1/notifications?limit=500").await.status,
            StatusCode::UNPROCESSABLE_ENTITY
        );
        let anonymous = app.get_public("/api/v1/notifications").await;
        assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED, "{label}");
    }
}
