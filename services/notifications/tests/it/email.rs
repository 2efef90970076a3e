//! Email: through a real SMTP server (both parts, headers), and into the local mailbox when no
//! SMTP server is configured.

use axum::http::StatusCode;
use serde_json::json;

use crate::{SmtpSink, apps, config, send, settled};

#[tokio::test]
async fn an_email_reaches_a_real_smtp_server_with_its_text_and_html_parts() {
    let sink = SmtpSink::start();
    let mut config = config();
    config.smtp_url = Some(format!("smtp://127.0.0.1:{}", sink.port));
    config.smtp_from = "Shop <shop@example.com>".to_owned();
    for app in apps(config).await {
        let before = sink.messages().len();
        let reply = send(
            &app,
            json!({
                "channel": "email", "to": "ada@example.com", "template": "order_receipt",
                "data": {"number": "1042", "total": 4998, "currency": "EUR",
                         "lines": [{"quantity": 2, "title": "Tee <M>", "total": 4998}]},
            }),
        )
        .await;
        assert_eq!(
            reply.status,
            StatusCode::ACCEPTED,
            "{}: {}",
            app.label,
            reply.body
        );
        let id = reply.body["id"].as_str().unwrap();
        let done = settled(&app, id).await;
        assert_eq!(done["status"], "sent", "{}: {done}", app.label);
        assert_eq!(done["provider"], "smtp");
        assert_eq!(done["attempt_log"][0]["outcome"], "sent");
        let messages = sink.messages();
        assert_eq!(messages.len(), before + 1, "{}", app.label);
        let mail = messages.last().unwrap();
        assert!(mail.contains("X-Envelope-To: ada@example.com"), "{mail}");
        assert!(mail.contains("Subject: Your order 1042"), "{mail}");
        assert!(mail.contains("From: Shop <shop@example.com>"), "{mail}");
        assert!(
            mail.contains(&format!("Message-ID: <{id}@mercato>")),
            "{mail}"
        );
        assert!(mail.contains("multipart/alternative"), "{mail}");
        assert!(
            mail.contains("text/plain") && mail.contains("text/html"),
            "{mail}"
        );
        assert!(
            mail.contains("2 × Tee <M>") || mail.contains("Tee <M>"),
            "text part unescaped: {mail}"
        );
        assert!(mail.contains("Tee &lt;M&gt;"), "html part escaped: {mail}");
    }
}

#[tokio::test]
async fn without_smtp_emails_land_in_the_local_mailbox() {
    for app in apps(config()).await {
        let reply = send(
            &app,
            json!({"channel": "email", "to": "bob@example.com", "subject": "Hello", "body": "Hi Bob"}),
        )
        .await;
        assert_eq!(
            reply.status,
            StatusCode::ACCEPTED,
            "{}: {}",
            app.label,
            reply.body
        );
        let done = settled(&app, reply.body["id"].as_str().unwrap()).await;
        assert_eq!(done["status"], "delivered", "{}: {done}", app.label);
        assert_eq!(done["provider"], "mailbox");
        let mailbox = app.get("/api/v1/notifications/mailbox").await;
        assert_eq!(mailbox.body[0]["to"], "bob@example.com", "{}", app.label);
        assert_eq!(mailbox.body[0]["text"], "Hi Bob");
        let page = app
            .request("GET", "/admin/mail", Some(&app.staff), None)
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", app.label);
        let anonymous = app.get_public("/admin/mail").await;
        assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED, "{}", app.label);

        // A user's email also shows in their in-app inbox.
        let reply = send(
            &app,
            json!({"channel": "email", "to": "cy@example.com", "user_id": "usr_cy", "subject": "Your receipt", "body": "Thanks"}),
        )
        .await;
        settled(&app, reply.body["id"].as_str().unwrap()).await;
        let cy = app.keys.token_for("usr_cy", &["customer"], None);
        app.eventually("the copy in the inbox", || async {
            let inbox = app
                .request("GET", "/api/v1/notifications/inbox", Some(&cy), None)
                .await;
            inbox.body["data"][0]["subject"] == "Your receipt"
        })
        .await;
    }
}

#[tokio::test]
async fn when_smtp_is_down_email_fails_over_to_sendgrid() {
    use std::sync::{Arc, Mutex};
    let seen = Arc::new(Mutex::new(Vec::<serde_json::Value>::new()));
    let record = seen.clone();
    let api = axum::Router::new().route(
        "/v3/mail/send",
        axum::routing::post(move |axum::Json(body): axum::Json<serde_json::Value>| {
            let record = record.clone();
            async move {
                record.lock().unwrap().push(body);
                (StatusCode::ACCEPTED, [("x-message-id", "sg-1")])
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, api).await });
    let mut config = config();
    // Nothing listens there: the connection is refused, a transient failure.
    config.smtp_url = Some(format!("smtp://127.0.0.1:{}", crate::smtp::free_port()));
    config.sendgrid_api_key = Some("SG.test".into());
    config.sendgrid_api_base = base;
    for app in apps(config).await {
        let reply = send(
            &app,
            json!({"channel": "email", "to": "ada@example.com", "subject": "Hi", "body": "Hello"}),
        )
        .await;
        let done = settled(&app, reply.body["id"].as_str().unwrap()).await;
        assert_eq!(done["status"], "sent", "{}: {done}", app.label);
        assert_eq!(done["provider"], "sendgrid");
        assert_eq!(done["provider_message_id"], "sg-1");
        let log: Vec<_> = done["attempt_log"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["provider"].as_str().unwrap().to_owned(),
                    a["outcome"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(
            log,
            [
                ("smtp".to_owned(), "transient".to_owned()),
                ("sendgrid".to_owned(), "sent".to_owned())
            ],
            "{}",
            app.label
        );
    }
    assert!(!seen.lock().unwrap().is_empty());
}
