//! Providers' delivery reports: Twilio status callbacks and SendGrid events move a sent
//! notification to delivered or bounced, only when their signatures verify.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

use crate::{apps, config, send, settled};

/// A fake provider API answering `status` with `body` and header `x-message-id: id-<n>`.
async fn fake_api(path: &'static str, status: StatusCode, body: &'static str) -> String {
    let counter = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let app = axum::Router::new().route(
        path,
        axum::routing::post(move || {
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move {
                let body = body.replace("{n}", &n.to_string());
                (
                    status,
                    [
                        ("x-message-id", format!("id-{n}")),
                        ("content-type", "application/json".to_owned()),
                    ],
                    body,
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

#[tokio::test]
async fn twilio_status_callbacks_settle_sms_when_signed() {
    let base = fake_api(
        "/2010-04-01/Accounts/AC123/Messages.json",
        StatusCode::CREATED,
        r#"{"sid": "SM{n}", "status": "queued"}"#,
    )
    .await;
    let mut config = config();
    config.twilio_account_sid = Some("AC123".into());
    config.twilio_auth_token = Some("token".into());
    config.twilio_from = Some("+15005550006".into());
    config.twilio_api_base = base;
    let url = format!(
        "http://127.0.0.1:3000{}",
        mercato_notifications::api::TWILIO_STATUS_PATH
    );
    for app in apps(config).await {
        let label = app.label;
        let mut ids = Vec::new();
        for _ in 0..2 {
            let reply = send(
                &app,
                json!({"channel": "sms", "to": "+4915112345678", "body": "Your code: 1234"}),
            )
            .await;
            let done = settled(&app, reply.body["id"].as_str().unwrap()).await;
            assert_eq!(done["status"], "sent", "{label}: {done}");
            ids.push((
                done["id"].as_str().unwrap().to_owned(),
                done["provider_message_id"].as_str().unwrap().to_owned(),
            ));
        }
        let report = |sid: &str, status: &str| {
            vec![
                ("MessageSid".to_owned(), sid.to_owned()),
                ("MessageStatus".to_owned(), status.to_owned()),
                ("ErrorCode".to_owned(), "30003".to_owned()),
            ]
        };
        let post = |params: Vec<(String, String)>, signature: String| {
            let body: String = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(params)
                .finish();
            let app = &app;
            async move {
                let request =
                    axum::http::Request::post(mercato_notifications::api::TWILIO_STATUS_PATH)
                        .header("content-type", "application/x-www-form-urlencoded")
                        .header("x-twilio-signature", signature)
                        .body(axum::body::Body::from(body))
                        .unwrap();
                app.call(request).await
            }
        };
        let forged = post(report(&ids[0].1, "delivered"), "AAAA".into()).await;
        assert_eq!(forged.status, StatusCode::UNAUTHORIZED, "{label}");
        let params = report(&ids[0].1, "delivered");
        let signature = mercato_notifications::providers::twilio::signature("token", &url, &params);
        assert_eq!(
            post(params, signature).await.status,
            StatusCode::NO_CONTENT,
            "{label}"
        );
        let params = report(&ids[1].1, "undelivered");
        let signature = mercato_notifications::providers::twilio::signature("token", &url, &params);
        post(params, signature).await;
        let first = app
            .get(&format!("/api/v1/notifications/{}", ids[0].0))
            .await
            .body;
        let second = app
            .get(&format!("/api/v1/notifications/{}", ids[1].0))
            .await
            .body;
        assert_eq!(first["status"], "delivered", "{label}: {first}");
        assert_eq!(second["status"], "bounced", "{label}: {second}");
        assert!(
            second["last_error"].as_str().unwrap().contains("30003"),
            "{label}"
        );
    }
}

#[tokio::test]
async fn sendgrid_events_settle_emails_when_signed() {
    let base = fake_api("/v3/mail/send", StatusCode::ACCEPTED, "").await;
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
    let keys = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap();
    let mut config = config();
    config.sendgrid_api_key = Some("SG.key".into());
    config.sendgrid_api_base = base;
    config.sendgrid_webhook_public_key = Some(STANDARD.encode(keys.public_key().as_ref()));
    for app in apps(config).await {
        let label = app.label;
        let mut ids = Vec::new();
        for _ in 0..2 {
            let reply = send(
                &app,
                json!({"channel": "email", "to": "ada@example.com", "subject": "s", "body": "b"}),
            )
            .await;
            let done = settled(&app, reply.body["id"].as_str().unwrap()).await;
            assert_eq!(
                (done["status"].as_str(), done["provider"].as_str()),
                (Some("sent"), Some("sendgrid")),
                "{label}: {done}"
            );
            ids.push(done["id"].as_str().unwrap().to_owned());
        }
        let events = json!([
            {"event": "delivered", "notification_id": ids[0], "email": "ada@example.com"},
            {"event": "open", "notification_id": ids[0]},
            {"event": "bounce", "notification_id": ids[1], "reason": "550 no such user"},
        ])
        .to_string();
        let timestamp = "1795305600";
        let signature = keys
            .sign(&rng, format!("{timestamp}{events}").as_bytes())
            .unwrap();
        let post = |signature: String| {
            let request =
                axum::http::Request::post(mercato_notifications::api::SENDGRID_EVENTS_PATH)
                    .header("content-type", "application/json")
                    .header("x-twilio-email-event-webhook-timestamp", timestamp)
                    .header("x-twilio-email-event-webhook-signature", signature)
                    .body(axum::body::Body::from(events.clone()))
                    .unwrap();
            app.call(request)
        };
        let forged = post(STANDARD.encode([0u8; 70])).await;
        assert_eq!(forged.status, StatusCode::UNAUTHORIZED, "{label}");
        assert_eq!(
            app.get(&format!("/api/v1/notifications/{}", ids[0]))
                .await
                .body["status"],
            "sent"
        );
        assert_eq!(
            post(STANDARD.encode(signature.as_ref())).await.status,
            StatusCode::NO_CONTENT,
            "{label}"
        );
        let first = app
            .get(&format!("/api/v1/notifications/{}", ids[0]))
            .await
            .body;
        let second = app
            .get(&format!("/api/v1/notifications/{}", ids[1]))
            .await
            .body;
        assert_eq!(first["status"], "delivered", "{label}: {first}");
        assert!(first["opened_at"].is_string(), "{label}");
        assert_eq!(second["status"], "bounced", "{label}: {second}");
        assert_eq!(second["last_error"], "550 no such user");
    }
}
