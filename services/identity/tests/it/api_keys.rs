//! API keys: shown once and stored hashed, `Bearer mk_…` authentication with scopes,
//! revocation and expiry, introspection, bad input.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::{PASSWORD, PROBLEM, TestApp, apps, email};

const KEYS: &str = "/api/v1/api-keys";

async fn create_key(app: &TestApp, token: &str, scopes: &[&str]) -> (String, Value) {
    let (status, key) = app
        .post_as(token, KEYS, json!({"name": "ci", "scopes": scopes}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{}: {key}", app.label);
    (key["secret"].as_str().unwrap().to_owned(), key)
}

/// Every column of the key's row, as text.
async fn row_text(app: &TestApp, id: &str) -> String {
    use mercato_store::sqlx::Row;
    let row = mercato_store::sqlx::query(
        "SELECT id, user_id, name, prefix, secret_hash, scopes, \
         COALESCE(CAST(expires_at AS TEXT), ''), COALESCE(CAST(last_used_at AS TEXT), ''), \
         COALESCE(CAST(revoked_at AS TEXT), ''), CAST(created_at AS TEXT) FROM api_keys WHERE id = $1",
    )
    .bind(id)
    .fetch_one(app.db.pool())
    .await
    .unwrap();
    (0..row.len())
        .map(|i| row.get::<String, _>(i))
        .collect::<Vec<_>>()
        .join("|")
}

#[tokio::test]
async fn the_secret_is_shown_once_and_stored_hashed() {
    for app in apps().await {
        let (_, token, _) = app.register(&email("keys"), PASSWORD).await;
        let (secret, key) = create_key(&app, &token, &["read"]).await;
        assert!(
            secret.starts_with("mk_live_") && secret.len() == 8 + 64,
            "{secret}"
        );
        assert_eq!(key["prefix"].as_str(), secret.get(..16));
        let (status, list) = app.get_as(&token, KEYS).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(list["data"].as_array().unwrap().len(), 1);
        assert!(list["data"][0].get("secret").is_none());
        assert!(!list.to_string().contains(&secret));
        let row = row_text(&app, key["id"].as_str().unwrap()).await;
        assert!(!row.contains(&secret), "{row}");
        assert!(!row.contains(&secret[8..]), "{row}");
        assert!(row.contains(&mercato_kernel::auth::hash_api_key(&secret)));
    }
}

#[tokio::test]
async fn a_key_authenticates_with_its_scopes() {
    for app in apps().await {
        let (user, token, _) = app.register(&email("keys"), PASSWORD).await;
        let (read, key) = create_key(&app, &token, &["read"]).await;
        let (status, me) = app.get_as(&read, "/api/v1/users/me").await;
        assert_eq!(status, StatusCode::OK, "{}: {me}", app.label);
        assert_eq!(me["id"], user["id"]);
        assert_eq!(
            app.get_as(&read, "/api/v1/organizations").await.0,
            StatusCode::OK
        );
        let reply = app
            .request(
                "POST",
                "/api/v1/organizations",
                Some(&read),
                Some(json!({"name": "Nope"}).to_string()),
            )
            .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
        assert_eq!(
            (reply.content_type.as_str(), reply.body["code"].as_str()),
            (PROBLEM, Some("insufficient_scope"))
        );
        assert_eq!(app.count("organizations").await, 0);
        let (write, _) = create_key(&app, &token, &["write"]).await;
        let (status, _) = app
            .post_as(&write, "/api/v1/organizations", json!({"name": "Yes"}))
            .await;
        assert_eq!(status, StatusCode::CREATED);
        // A key cannot mint a stronger key.
        let (status, _) = app
            .post_as(&write, KEYS, json!({"name": "x", "scopes": ["admin"]}))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (_, list) = app.get_as(&token, KEYS).await;
        let used = list["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["id"] == key["id"])
            .unwrap();
        assert!(used["last_used_at"].is_string(), "{used}");
    }
}

#[tokio::test]
async fn admin_keys_carry_the_owners_staff_roles_only_with_the_admin_scope() {
    for app in apps().await {
        let (_, customer, _) = app.register(&email("cust"), PASSWORD).await;
        let (status, body) = app
            .post_as(&customer, KEYS, json!({"name": "x", "scopes": ["admin"]}))
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("forbidden"))
        );
        let admin = app.admin_token().await;
        let (admin_key, _) = create_key(&app, &admin, &["admin"]).await;
        let (plain_key, _) = create_key(&app, &admin, &["write"]).await;
        assert_eq!(
            app.get_as(&admin_key, "/api/v1/users").await.0,
            StatusCode::OK
        );
        assert_eq!(
            app.get_as(&plain_key, "/api/v1/users").await.0,
            StatusCode::FORBIDDEN
        );
    }
}

#[tokio::test]
async fn revoked_expired_and_disabled_keys_are_401() {
    for app in apps().await {
        let (user, token, _) = app.register(&email("keys"), PASSWORD).await;
        let (other_user, other, _) = app.register(&email("other"), PASSWORD).await;
        let (secret, key) = create_key(&app, &token, &["read"]).await;
        let path = format!("{KEYS}/{}", key["id"].as_str().unwrap());
        assert_eq!(app.delete_as(&other, &path).await.0, StatusCode::NOT_FOUND);
        assert_eq!(
            app.get_as(&secret, "/api/v1/users/me").await.0,
            StatusCode::OK
        );
        assert_eq!(app.delete_as(&token, &path).await.0, StatusCode::NO_CONTENT);
        assert_eq!(app.delete_as(&token, &path).await.0, StatusCode::NOT_FOUND);
        let reply = app
            .request("GET", "/api/v1/users/me", Some(&secret), None)
            .await;
        assert_eq!(
            (reply.status, reply.content_type.as_str()),
            (StatusCode::UNAUTHORIZED, PROBLEM)
        );
        let (_, list) = app.get_as(&token, KEYS).await;
        assert_eq!(list["data"].as_array().unwrap().len(), 0);

        let (expiring, key) = create_key(&app, &token, &["read"]).await;
        mercato_store::sqlx::query("UPDATE api_keys SET expires_at = 1 WHERE id = $1")
            .bind(key["id"].as_str().unwrap())
            .execute(app.db.pool())
            .await
            .unwrap();
        assert_eq!(
            app.get_as(&expiring, "/api/v1/users/me").await.0,
            StatusCode::UNAUTHORIZED
        );

        let (disabled, _) = create_key(&app, &other, &["read"]).await;
        mercato_store::sqlx::query("UPDATE users SET disabled_at = 1 WHERE id = $1")
            .bind(other_user["id"].as_str().unwrap())
            .execute(app.db.pool())
            .await
            .unwrap();
        assert_eq!(
            app.get_as(&disabled, "/api/v1/users/me").await.0,
            StatusCode::UNAUTHORIZED
        );
        let tampered = format!("{}0", &secret[..secret.len() - 1]);
        for bad in [tampered.as_str(), "mk_live_short", "mk_", "mk_live_ünïcödé"] {
            assert_eq!(
                app.get_as(bad, "/api/v1/users/me").await.0,
                StatusCode::UNAUTHORIZED,
                "{bad}"
            );
        }
        let _ = user;
    }
}

#[tokio::test]
async fn introspection_answers_claims_or_401() {
    for app in apps().await {
        let (user, token, _) = app.register(&email("keys"), PASSWORD).await;
        let (secret, key) = create_key(&app, &token, &["write"]).await;
        let path = format!("{KEYS}/introspect");
        let (status, claims) = app
            .post_raw(&path, &json!({"key": secret}).to_string())
            .await;
        assert_eq!(status, StatusCode::OK, "{claims}");
        assert_eq!(claims["sub"], user["id"]);
        assert_eq!(claims["scopes"], json!(["write"]));
        assert_eq!(claims["jti"], key["id"]);
        for body in [
            json!({"key": "mk_live_unknown"}),
            json!({"key": ""}),
            json!({"key": "x".repeat(5000)}),
        ] {
            let (status, problem) = app.post_raw(&path, &body.to_string()).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{problem}");
        }
        let (status, _) = app.post_raw(&path, r#"{"key": 5}"#).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    }
}

#[tokio::test]
async fn bad_key_requests_are_problems_and_store_nothing() {
    for app in apps().await {
        let (_, token, _) = app.register(&email("keys"), PASSWORD).await;
        let cases = [
            json!({}),
            json!({"name": "x"}),
            json!({"scopes": ["read"]}),
            json!({"name": "x", "scopes": "read"}),
            json!({"name": "x", "scopes": []}),
            json!({"name": "x", "scopes": ["root"]}),
            json!({"name": "x", "scopes": ["READ"]}),
            json!({"name": "x", "scopes": [1]}),
            json!({"name": "", "scopes": ["read"]}),
            json!({"name": "\u{200B}\u{202E}", "scopes": ["read"]}),
            json!({"name": "x".repeat(101), "scopes": ["read"]}),
            json!({"name": "x", "scopes": ["read"], "expires_at": "tomorrow"}),
            json!({"name": "x", "scopes": ["read"], "expires_at": "2001-01-01T00:00:00Z"}),
            json!({"name": "x", "scopes": ["read"], "secret": "mk_live_mine"}),
        ];
        for body in cases {
            let reply = app
                .request("POST", KEYS, Some(&token), Some(body.to_string()))
                .await;
            assert!(
                reply.status.is_client_error(),
                "{}: {body}: {}",
                app.label,
                reply.status
            );
            assert_eq!(reply.content_type, PROBLEM, "{body}");
        }
        assert_eq!(
            app.post_raw(KEYS, r#"{"name": "x", "scopes": ["read"]}"#)
                .await
                .0,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(app.count("api_keys").await, 0);
        let (status, key) = app
            .post_as(&token, KEYS, json!({"name": "ключ 🔑", "scopes": ["read", "read"], "expires_at": "2999-01-01T00:00:00+02:00"}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{key}");
        assert_eq!(
            (key["scopes"].clone(), key["name"].as_str()),
            (json!(["read"]), Some("ключ 🔑"))
        );
        assert_eq!(key["expires_at"], "2998-12-31T22:00:00.000Z");
    }
}
