use axum::http::StatusCode;
use mercato_kernel::Config;
use serde_json::json;

use crate::{apps_with, card};

fn routed() -> Config {
    let mut config = Config::default();
    config.payments_default_provider = "primary".into();
    config.payments_routes = "JPY:backup; *:primary,backup".into();
    config.payments_breaker_failures = 3;
    config
}

#[tokio::test]
async fn an_unreachable_provider_fails_over_to_the_next_and_its_circuit_opens() {
    for app in apps_with(routed(), &["primary", "backup"]).await {
        let (primary, backup) = (&app.providers[0], &app.providers[1]);
        let yen = app.create(json!({"amount": 500, "currency": "JPY", "payment_method": card("4242424242424242")})).await;
        assert_eq!(yen["provider"], "backup", "the JPY route");

        primary.unreachable_next(3);
        for round in 0..3 {
            let p = app.create(json!({"amount": 100, "currency": "EUR", "payment_method": card("4242424242424242")})).await;
            assert_eq!(p["provider"], "primary");
            let paid = app.process(p["id"].as_str().unwrap()).await;
            assert_eq!(
                paid.body["status"], "succeeded",
                "{}: {}",
                app.label, paid.body
            );
            assert_eq!(paid.body["provider"], "backup", "round {round}");
            let attempts: Vec<(String, String)> = paid.body["attempts"]
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
                attempts,
                [
                    ("primary".into(), "unreachable".into()),
                    ("backup".into(), "succeeded".into())
                ]
            );
        }
        // Three failures opened the primary's circuit: it is not even tried.
        let p = app.create(json!({"amount": 100, "currency": "EUR", "payment_method": card("4242424242424242")})).await;
        let paid = app.process(p["id"].as_str().unwrap()).await;
        assert_eq!(
            paid.body["attempts"].as_array().unwrap().len(),
            1,
            "{}",
            paid.body
        );
        assert_eq!(paid.body["provider"], "backup");
        assert_eq!((primary.charges(), backup.charges()), (0, 4));
    }
}

#[tokio::test]
async fn a_timeout_is_never_failed_over_the_same_provider_is_asked_again() {
    for app in apps_with(routed(), &["primary", "backup"]).await {
        let (primary, backup) = (&app.providers[0], &app.providers[1]);
        let p = app.create(json!({"amount": 100, "currency": "EUR", "payment_method": card("4242424242424242")})).await;
        let id = p["id"].as_str().unwrap();
        primary.fail_next(1, true);
        let first = app.process(id).await;
        assert_eq!(
            first.status,
            StatusCode::BAD_GATEWAY,
            "{}: {}",
            app.label,
            first.body
        );
        let retry = app.process(id).await;
        assert_eq!(retry.body["status"], "succeeded", "{}", retry.body);
        assert_eq!(retry.body["provider"], "primary");
        assert_eq!(
            (primary.charges(), backup.charges()),
            (1, 0),
            "{}: one charge, at the primary",
            app.label
        );
    }
}

#[tokio::test]
async fn a_named_provider_is_used_alone_and_unknown_routes_refuse_to_start() {
    for app in apps_with(routed(), &["primary", "backup"]).await {
        let p = app.create(json!({"amount": 100, "currency": "EUR", "provider": "primary", "payment_method": card("4242424242424242")})).await;
        app.providers[0].unreachable_next(1);
        let reply = app.process(p["id"].as_str().unwrap()).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_GATEWAY,
            "{}: pinned to primary: {}",
            app.label,
            reply.body
        );
        assert_eq!(app.providers[1].charges(), 0);
    }
    let mut bad = routed();
    bad.payments_routes = "*:primary,acme".into();
    let started = std::panic::AssertUnwindSafe(apps_with(bad, &["primary", "backup"]));
    let outcome = futures::FutureExt::catch_unwind(started).await;
    assert!(
        outcome.is_err(),
        "a route naming an unconfigured provider is a start-up error"
    );
}
