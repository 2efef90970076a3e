//! A/B tests with sticky assignment and per-variant counts; the open pixel, signed click
//! links and signed unsubscribe links.

use axum::http::StatusCode;
use serde_json::json;

use crate::{apps, config, send, settled};

/// The path of a link the service made (its base is `MERCATO_PUBLIC_URL`), as a browser
/// reads it from HTML.
fn path_of(link: &str) -> String {
    let decoded = link
        .replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&amp;", "&");
    decoded
        .strip_prefix("http://127.0.0.1:3000")
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn variants_stick_to_recipients_and_count_opens_and_clicks() {
    for app in apps(config()).await {
        let label = app.label;
        let html = |tag: &str| {
            format!(
                r#"<p>{tag} {{{{ name }}}}</p><a href="{{{{ click('https://shop.example.com/sale') }}}}">Sale</a> <a href="{{{{ unsubscribe_url }}}}">Unsubscribe</a>"#
            )
        };
        let template = json!({
            "name": "promo", "channel": "email", "category": "marketing", "variables": ["name"],
            "subject": "Sale", "body": "Sale {{ name }}: {{ unsubscribe_url }}",
            "variants": [
                {"name": "a", "weight": 80, "subject": "A sale", "body": "A {{ name }} {{ unsubscribe_url }}", "html": html("A")},
                {"name": "b", "weight": 20, "subject": "B sale", "body": "B {{ name }} {{ unsubscribe_url }}", "html": html("B")},
            ],
        });
        let reply = app.post_json("/api/v1/templates", template).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{label}: {}", reply.body);

        let mut first = Vec::new();
        for n in 0..40 {
            let reply = send(&app, json!({"channel": "email", "to": format!("u{n}@example.com"),
                "user_id": format!("usr_{n}"), "template": "promo", "data": {"name": format!("U{n}")}})).await;
            assert_eq!(
                reply.status,
                StatusCode::ACCEPTED,
                "{label}: {}",
                reply.body
            );
            let done = settled(&app, reply.body["id"].as_str().unwrap()).await;
            assert_eq!(done["status"], "delivered", "{label}: {done}");
            first.push((
                done["id"].as_str().unwrap().to_owned(),
                done["variant"].as_str().unwrap().to_owned(),
            ));
        }
        // Sticky: the same recipient gets the same variant again.
        for (n, (_, variant)) in first.iter().enumerate().take(5) {
            let reply = send(
                &app,
                json!({"channel": "email", "to": format!("u{n}@example.com"),
                "user_id": format!("usr_{n}"), "template": "promo", "data": {"name": "again"}}),
            )
            .await;
            assert_eq!(
                reply.body["variant"],
                variant.as_str(),
                "{label}: recipient {n}"
            );
            settled(&app, reply.body["id"].as_str().unwrap()).await;
        }
        let (a, b): (Vec<_>, Vec<_>) = first.iter().partition(|(_, v)| v == "a");
        assert!(
            !a.is_empty() && !b.is_empty() && a.len() > b.len(),
            "{label}: {} a, {} b",
            a.len(),
            b.len()
        );

        // Open one of variant a, click one of variant b.
        let pixel = app
            .get_public(&format!("/api/v1/notifications/{}/open.gif", a[0].0))
            .await;
        assert_eq!(pixel.status, StatusCode::OK, "{label}");
        assert_eq!(pixel.header("content-type"), Some("image/gif"));
        let mails = app.get("/api/v1/notifications/mailbox").await.body;
        let mail = mails
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["notification_id"] == b[0].0.as_str())
            .unwrap();
        let html = mail["html"].as_str().unwrap();
        assert!(
            html.contains(&format!("/api/v1/notifications/{}/open.gif", b[0].0)),
            "{label}: pixel in {html}"
        );
        let click = html
            .split("href=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let reply = app.get_public(&path_of(click)).await;
        assert_eq!(
            reply.status,
            StatusCode::SEE_OTHER,
            "{label}: {}",
            reply.body
        );
        assert_eq!(
            reply.header("location"),
            Some("https://shop.example.com/sale")
        );
        let forged = path_of(click).replace("shop.example.com", "evil.example.com");
        assert_eq!(
            app.get_public(&forged).await.status,
            StatusCode::NOT_FOUND,
            "{label}"
        );

        let results = app.get("/api/v1/templates/promo/ab").await.body;
        let row = |name: &str| {
            results
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["variant"] == name)
                .unwrap()
                .clone()
        };
        assert_eq!(row("a")["opened"], 1, "{label}: {results}");
        assert_eq!(
            (row("b")["opened"].as_i64(), row("b")["clicked"].as_i64()),
            (Some(1), Some(1)),
            "{label}"
        );
        assert_eq!(
            row("a")["sent"].as_i64().unwrap() + row("b")["sent"].as_i64().unwrap(),
            45,
            "{label}"
        );

        // The unsubscribe link turns marketing off for that user only.
        let text = mail["text"].as_str().unwrap();
        let link = text
            .split_whitespace()
            .find(|w| w.contains("/unsubscribe?token="))
            .unwrap();
        let reply = app.get_public(&path_of(link)).await;
        assert_eq!(reply.status, StatusCode::OK, "{label}");
        let tampered = format!("{}0", path_of(link));
        assert_eq!(
            app.get_public(&tampered).await.status,
            StatusCode::NOT_FOUND,
            "{label}"
        );
        let user = b[0].0.clone();
        let row = app.get(&format!("/api/v1/notifications/{user}")).await.body;
        let reply = send(
            &app,
            json!({"channel": "email", "to": row["to"], "user_id": row["user_id"],
            "template": "promo", "data": {"name": "x"}}),
        )
        .await;
        let done = settled(&app, reply.body["id"].as_str().unwrap()).await;
        assert_eq!(done["status"], "suppressed", "{label}: {done}");
    }
}
