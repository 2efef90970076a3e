//! Email verification and password reset: tokens read from the outbox, single use, expiry.

use axum::http::StatusCode;
use serde_json::json;

use crate::{PASSWORD, apps, email};

#[tokio::test]
async fn email_verification_tokens_are_single_use_and_expire() {
    for app in apps().await {
        let address = email("verify");
        let (_, token, _) = app.register(&address, PASSWORD).await;
        let first = app.emailed_token(&address, "verify_email").await;
        let events = app.outbox("notification.email").await;
        assert_eq!(
            events[0]["data"]["variables"]["name"], "Test User",
            "{}",
            app.label
        );
        let stored: i64 = mercato_store::sqlx::query_scalar(
            "SELECT COUNT(*) FROM email_tokens WHERE token_hash = $1",
        )
        .bind(&first)
        .fetch_one(app.db.pool())
        .await
        .unwrap();
        assert_eq!(stored, 0, "only the hash is stored");

        // A new request replaces the first token.
        let (status, _) = app
            .post_as(&token, "/api/v1/auth/verify-email/request", json!({}))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        let second = app.emailed_token(&address, "verify_email").await;
        assert_ne!(first, second);
        let verify = |t: &str| {
            app.request(
                "POST",
                "/api/v1/auth/verify-email",
                None,
                Some(json!({"token": t}).to_string()),
            )
        };
        assert_eq!(verify(&first).await.status, StatusCode::BAD_REQUEST);

        mercato_store::sqlx::query("UPDATE email_tokens SET expires_at = 1 WHERE used_at IS NULL")
            .execute(app.db.pool())
            .await
            .unwrap();
        let expired = verify(&second).await;
        assert_eq!(
            (expired.status, expired.body["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_token"))
        );

        app.post_as(&token, "/api/v1/auth/verify-email/request", json!({}))
            .await;
        let third = app.emailed_token(&address, "verify_email").await;
        let verified = verify(&third).await;
        assert_eq!(verified.status, StatusCode::OK, "{}", verified.body);
        assert_eq!(verified.body["email_verified"], true);
        assert_eq!(
            verify(&third).await.status,
            StatusCode::BAD_REQUEST,
            "single use"
        );
        let (status, _) = app
            .post_as(&token, "/api/v1/auth/verify-email/request", json!({}))
            .await;
        assert_eq!(status, StatusCode::CONFLICT);
        let anonymous = app
            .request("POST", "/api/v1/auth/verify-email/request", None, None)
            .await;
        assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn password_reset_answers_the_same_and_resets_once() {
    for app in apps().await {
        let address = email("reset");
        let (_, _, refresh) = app.register(&address, PASSWORD).await;
        let request = |e: &str| {
            app.request(
                "POST",
                "/api/v1/auth/password-reset/request",
                None,
                Some(json!({"email": e}).to_string()),
            )
        };
        let known = request(&address.to_uppercase()).await;
        let unknown = request(&email("ghost")).await;
        assert_eq!(known.status, StatusCode::ACCEPTED, "{}", app.label);
        assert_eq!((unknown.status, &unknown.body), (known.status, &known.body));
        assert_eq!(
            request("nope").await.status,
            StatusCode::UNPROCESSABLE_ENTITY
        );
        let requested = app.outbox("user.password_reset_requested").await;
        assert_eq!(requested.len(), 1);
        assert!(requested[0]["data"].get("token").is_none());
        let token = app.emailed_token(&address, "password_reset").await;

        let reset = |t: &str, p: &str| {
            app.request(
                "POST",
                "/api/v1/auth/password-reset",
                None,
                Some(json!({"token": t, "new_password": p}).to_string()),
            )
        };
        assert_eq!(
            reset(&token, "short").await.status,
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(
            reset("forged", "another-long-secret").await.status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            reset(&token, "another-long-secret").await.status,
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            reset(&token, "yet-another-secret").await.status,
            StatusCode::BAD_REQUEST,
            "single use"
        );
        assert_eq!(
            app.login(&address, PASSWORD).await.status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            app.login(&address, "another-long-secret").await.status,
            StatusCode::OK
        );
        let refreshed = app
            .request(
                "POST",
                "/api/v1/auth/refresh",
                None,
                Some(json!({"refresh_token": refresh}).to_string()),
            )
            .await;
        assert_eq!(
            refreshed.status,
            StatusCode::UNAUTHORIZED,
            "a reset ends every session"
        );

        request(&address).await;
        let late = app.emailed_token(&address, "password_reset").await;
        mercato_store::sqlx::query("UPDATE email_tokens SET expires_at = 1 WHERE used_at IS NULL")
            .execute(app.db.pool())
            .await
            .unwrap();
        assert_eq!(
            reset(&late, "one-more-secret").await.status,
            StatusCode::BAD_REQUEST,
            "expired"
        );
    }
}
