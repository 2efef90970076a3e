//! Register, login, refresh rotation, logout, throttling, bad input.

use axum::http::StatusCode;
use serde_json::json;

use crate::{PASSWORD, PROBLEM, apps, email, tokens_of};

#[tokio::test]
async fn register_signs_in_and_publishes_user_registered() {
    for app in apps().await {
        let address = email("reg");
        let body = json!({"email": format!("  {}", address.to_uppercase()), "password": PASSWORD, "name": " Ann "});
        let reply = app
            .request(
                "POST",
                "/api/v1/auth/register",
                None,
                Some(body.to_string()),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "{}: {}",
            app.label,
            reply.body
        );
        let user = &reply.body["user"];
        assert_eq!(user["email"], address, "email is trimmed and lower-cased");
        assert_eq!(user["name"], "Ann");
        assert_eq!(user["roles"], json!(["customer"]));
        assert_eq!(user["email_verified"], false);
        assert!(user.get("password_hash").is_none());
        assert_eq!(reply.body["expires_in"], 900);
        assert_eq!(reply.body["token_type"], "Bearer");
        assert!(
            reply.body["refresh_token"]
                .as_str()
                .unwrap()
                .starts_with("rt_")
        );
        let (status, me) = app
            .get_as(
                reply.body["access_token"].as_str().unwrap(),
                "/api/v1/users/me",
            )
            .await;
        assert_eq!((status, &me["id"]), (StatusCode::OK, &user["id"]));

        let registered = app.outbox("user.registered").await;
        assert_eq!(registered.len(), 1);
        assert_eq!(registered[0]["data"]["user_id"], user["id"]);
        let stored: String = mercato_store::sqlx::query_scalar("SELECT password_hash FROM users")
            .fetch_one(app.db.pool())
            .await
            .unwrap();
        assert!(
            stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{stored}"
        );
    }
}

#[tokio::test]
async fn a_taken_email_is_409_whatever_its_case() {
    for app in apps().await {
        let address = email("dup");
        app.register(&address, PASSWORD).await;
        let body = json!({"email": address.to_uppercase(), "password": PASSWORD, "name": "B"});
        let reply = app
            .request(
                "POST",
                "/api/v1/auth/register",
                None,
                Some(body.to_string()),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CONFLICT, "{}", app.label);
        assert_eq!(reply.body["code"], "email_taken");
        assert_eq!(app.count("users").await, 1);
    }
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_family() {
    for app in apps().await {
        let (_, _, first) = app.register(&email("rot"), PASSWORD).await;
        let refresh = |token: &str| {
            app.request(
                "POST",
                "/api/v1/auth/refresh",
                None,
                Some(json!({"refresh_token": token}).to_string()),
            )
        };
        let reply = refresh(&first).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "{}: {}",
            app.label,
            reply.body
        );
        let (_, access, second) = tokens_of(reply.body);
        assert_ne!(second, first);
        assert_eq!(
            app.get_as(&access, "/api/v1/users/me").await.0,
            StatusCode::OK
        );

        // The first token again: someone holds a copy. The whole family goes.
        let reuse = refresh(&first).await;
        assert_eq!(reuse.status, StatusCode::UNAUTHORIZED);
        assert_eq!(reuse.body["code"], "refresh_token_reused");
        assert_eq!(reuse.content_type, PROBLEM);
        let newer = refresh(&second).await;
        assert_eq!(
            newer.status,
            StatusCode::UNAUTHORIZED,
            "the newer token is revoked too"
        );
        assert_eq!(newer.body["code"], "invalid_refresh_token");

        for bogus in ["", "rt_nope", &"x".repeat(5000)] {
            assert_eq!(refresh(bogus).await.status, StatusCode::UNAUTHORIZED);
        }
    }
}

#[tokio::test]
async fn other_sessions_survive_a_revoked_family() {
    for app in apps().await {
        let address = email("two");
        let (_, _, phone) = app.register(&address, PASSWORD).await;
        let (_, _, laptop) = tokens_of(app.login(&address, PASSWORD).await.body);
        let logout = app
            .request(
                "POST",
                "/api/v1/auth/logout",
                None,
                Some(json!({"refresh_token": phone}).to_string()),
            )
            .await;
        assert_eq!(logout.status, StatusCode::NO_CONTENT, "{}", app.label);
        let refresh = |token: &str| {
            app.request(
                "POST",
                "/api/v1/auth/refresh",
                None,
                Some(json!({"refresh_token": token}).to_string()),
            )
        };
        assert_eq!(refresh(&phone).await.status, StatusCode::UNAUTHORIZED);
        assert_eq!(refresh(&laptop).await.status, StatusCode::OK);
        let unknown = app
            .request(
                "POST",
                "/api/v1/auth/logout",
                None,
                Some(json!({"refresh_token": "rt_x"}).to_string()),
            )
            .await;
        assert_eq!(unknown.status, StatusCode::NO_CONTENT);
    }
}

#[tokio::test]
async fn unknown_user_and_wrong_password_get_the_same_answer() {
    for app in apps().await {
        let address = email("same");
        app.register(&address, PASSWORD).await;
        let wrong = app.login(&address, "not-the-password").await;
        let unknown = app.login(&email("nobody"), "not-the-password").await;
        let malformed = app.login("not an email", "not-the-password").await;
        for reply in [&wrong, &unknown, &malformed] {
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", app.label);
            assert_eq!(reply.content_type, PROBLEM);
            assert_eq!(reply.body["code"], "invalid_credentials");
        }
        assert_eq!(wrong.body, unknown.body);
        let ok = app.login(&address.to_uppercase(), PASSWORD).await;
        assert_eq!(
            ok.status,
            StatusCode::OK,
            "login is case-insensitive on the email"
        );
    }
}

#[tokio::test]
async fn repeated_failures_lock_the_account_until_the_lock_expires() {
    for app in apps().await {
        let address = email("lock");
        app.register(&address, PASSWORD).await;
        for _ in 0..5 {
            assert_eq!(
                app.login(&address, "wrong-password").await.status,
                StatusCode::UNAUTHORIZED
            );
        }
        let locked = app.login(&address, PASSWORD).await;
        assert_eq!(
            locked.status,
            StatusCode::TOO_MANY_REQUESTS,
            "{}",
            app.label
        );
        assert_eq!(locked.body["code"], "account_locked");
        let retry: u64 = locked.header("retry-after").unwrap().parse().unwrap();
        assert!((800..=900).contains(&retry), "{retry}");

        // Fifteen minutes later (the stored lock ends in the past).
        mercato_store::sqlx::query("UPDATE lockouts SET locked_until = 1")
            .execute(app.db.pool())
            .await
            .unwrap();
        assert_eq!(app.login(&address, PASSWORD).await.status, StatusCode::OK);
        // A success forgets the failures: four more do not lock.
        for _ in 0..4 {
            app.login(&address, "wrong-password").await;
        }
        assert_eq!(app.login(&address, PASSWORD).await.status, StatusCode::OK);
    }
}

#[tokio::test]
async fn an_expired_lock_restarts_the_count() {
    for app in apps().await {
        let address = email("relock");
        app.register(&address, PASSWORD).await;
        for _ in 0..5 {
            app.login(&address, "wrong-password").await;
        }
        mercato_store::sqlx::query("UPDATE lockouts SET locked_until = $1")
            .bind(mercato_store::now_micros() - 1)
            .execute(app.db.pool())
            .await
            .unwrap();
        // One failure after the lock ended is not a sixth strike.
        assert_eq!(
            app.login(&address, "wrong-password").await.status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            app.login(&address, PASSWORD).await.status,
            StatusCode::OK,
            "{}",
            app.label
        );
    }
}

#[tokio::test]
async fn many_failures_from_one_address_lock_that_address() {
    for app in apps().await {
        let login_from = |ip: &'static str, address: String, password: &'static str| {
            let request = axum::http::Request::post("/api/v1/auth/login")
                .header("content-type", "application/json")
                .header("x-forwarded-for", format!("{ip}, 10.0.0.1"))
                .body(axum::body::Body::from(
                    json!({"email": address, "password": password}).to_string(),
                ))
                .unwrap();
            app.call(request)
        };
        let victim = email("victim");
        app.register(&victim, PASSWORD).await;
        for i in 0..20 {
            let reply =
                login_from("203.0.113.9", email(&format!("spray{i}")), "wrong-password").await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        }
        let blocked = login_from("203.0.113.9", victim.clone(), PASSWORD).await;
        assert_eq!(
            blocked.status,
            StatusCode::TOO_MANY_REQUESTS,
            "{}",
            app.label
        );
        assert_eq!(blocked.body["code"], "too_many_attempts");
        assert!(blocked.header("retry-after").is_some());
        let elsewhere = login_from("198.51.100.7", victim.clone(), PASSWORD).await;
        assert_eq!(elsewhere.status, StatusCode::OK);
    }
}

#[tokio::test]
async fn bad_registrations_are_problems_and_store_nothing() {
    for app in apps().await {
        let long_name = "n".repeat(201);
        let long_password = "p".repeat(129);
        let cases: Vec<(String, StatusCode)> = vec![
            ("{}".into(), StatusCode::UNPROCESSABLE_ENTITY),
            (
                r#"{"email": "a@example.com", "password": "correct-horse-battery"}"#.into(),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                r#"{"email": 5, "password": "correct-horse-battery", "name": "A"}"#.into(),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                r#"{"email": "a@example.com", "password": ["x"], "name": "A"}"#.into(),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                r#"{"email": "a@example.com", "password": "correct-horse-battery", "name": null}"#
                    .into(),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                r#"{"email": "a@example.com""#.into(),
                StatusCode::BAD_REQUEST,
            ),
            ("not json".into(), StatusCode::BAD_REQUEST),
            ("[]".into(), StatusCode::UNPROCESSABLE_ENTITY),
        ];
        let fields = [
            json!({"email": "no-at-sign", "password": PASSWORD, "name": "A"}),
            json!({"email": "a@b", "password": PASSWORD, "name": "A"}),
            json!({"email": "a b@example.com", "password": PASSWORD, "name": "A"}),
            json!({"email": "a\u{0}@example.com", "password": PASSWORD, "name": "A"}),
            json!({"email": "jos\u{e9}@example.com", "password": PASSWORD, "name": "A"}),
            json!({"email": "a\u{200B}@example.com", "password": PASSWORD, "name": "A"}),
            json!({"email": format!("{}@example.com", "a".repeat(65)), "password": PASSWORD, "name": "A"}),
            json!({"email": "ok@example.com", "password": "short", "name": "A"}),
            json!({"email": "ok@example.com", "password": long_password, "name": "A"}),
            json!({"email": "ok@example.com", "password": "Password123", "name": "A"}),
            json!({"email": "ok@example.com", "password": PASSWORD, "name": ""}),
            json!({"email": "ok@example.com", "password": PASSWORD, "name": long_name}),
            json!({"email": "ok@example.com", "password": PASSWORD, "name": "a\u{0}b"}),
            json!({"email": "ok@example.com", "password": PASSWORD, "name": "evil\u{202E}txt"}),
            json!({"email": "ok@example.com", "password": PASSWORD, "name": "zero\u{200B}width"}),
            json!({"email": "ok@example.com", "password": PASSWORD, "name": "A", "roles": ["admin"]}),
        ];
        let cases = cases.into_iter().chain(
            fields
                .into_iter()
                .map(|b| (b.to_string(), StatusCode::UNPROCESSABLE_ENTITY)),
        );
        for (body, expected) in cases {
            let (status, problem) = app.post_raw("/api/v1/auth/register", &body).await;
            assert_eq!(status, expected, "{}: {body} -> {problem}", app.label);
            assert!(problem["code"].is_string(), "{body}: {problem}");
        }
        let several = json!({"email": "x", "password": "short", "name": ""});
        let (_, problem) = app
            .post_raw("/api/v1/auth/register", &several.to_string())
            .await;
        assert_eq!(problem["errors"].as_array().unwrap().len(), 3, "{problem}");

        let huge = format!(
            r#"{{"email": "a@example.com", "password": "{}", "name": "A"}}"#,
            "x".repeat(10 << 20)
        );
        let (status, problem) = app.post_raw("/api/v1/auth/register", &huge).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{problem}");
        let request = axum::http::Request::post("/api/v1/auth/register")
            .body(axum::body::Body::from(
                json!({"email": "a@example.com"}).to_string(),
            ))
            .unwrap();
        assert_eq!(
            app.call(request).await.status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        assert_eq!(app.count("users").await, 0, "{}", app.label);
        assert_eq!(app.count("outbox").await, 0);
    }
}

#[tokio::test]
async fn the_openapi_document_lists_the_identity_routes() {
    for app in apps().await {
        let reply = app.get_public("/openapi.json").await;
        assert_eq!(reply.status, StatusCode::OK, "{}", app.label);
        let doc = reply.body;
        for path in [
            "/api/v1/auth/register",
            "/api/v1/auth/login",
            "/api/v1/auth/refresh",
            "/api/v1/auth/logout",
            "/api/v1/auth/keys/rotate",
            "/api/v1/auth/verify-email",
            "/api/v1/auth/password-reset",
            "/api/v1/users/me",
            "/api/v1/users/me/password",
            "/api/v1/users",
            "/api/v1/users/{id}",
            "/.well-known/jwks.json",
        ] {
            assert!(doc["paths"].get(path).is_some(), "{path} missing");
        }
    }
}
