//! Access tokens: claims, every rejected token, JWKS and key rotation.

use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mercato_kernel::auth::testing::TestKeys;
use serde_json::{Value, json};

use crate::{PASSWORD, TestApp, apps, email};

fn decode_part(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// Signs `claims` with identity's own active key, read from its table.
async fn sign_with_identity_key(app: &TestApp, claims: &Value) -> String {
    let (kid, pkcs8): (String, String) = mercato_store::sqlx::query_as(
        "SELECT kid, private_pkcs8 FROM signing_keys WHERE retired_at IS NULL",
    )
    .fetch_one(app.db.pool())
    .await
    .unwrap();
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid);
    let key = EncodingKey::from_ed_der(&STANDARD.decode(pkcs8).unwrap());
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

#[tokio::test]
async fn access_tokens_carry_the_documented_claims() {
    for app in apps().await {
        let (user, access, _) = app.register(&email("claims"), PASSWORD).await;
        let header = decode_part(&access, 0);
        let claims = decode_part(&access, 1);
        assert_eq!(header["alg"], "EdDSA");
        let jwks = app.get_public("/.well-known/jwks.json").await.body;
        assert_eq!(header["kid"], jwks["keys"][0]["kid"], "{}", app.label);
        assert_eq!(claims["sub"], user["id"]);
        assert_eq!(claims["roles"], json!(["customer"]));
        assert_eq!(claims["iss"], "mercato");
        assert!(claims.get("org").is_none());
        assert!(claims["jti"].is_string());
        assert_eq!(
            claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
            900
        );
    }
}

#[tokio::test]
async fn every_bad_token_is_rejected_on_a_protected_route() {
    for app in apps().await {
        let (user, good, _) = app.register(&email("bad-tokens"), PASSWORD).await;
        let now = chrono::Utc::now().timestamp();
        let sub = user["id"].as_str().unwrap();
        let claims = |exp: i64, nbf: Option<i64>| {
            let mut c = json!({"sub": sub, "roles": ["admin"], "iat": now - 10, "exp": exp, "iss": "mercato"});
            if let Some(nbf) = nbf {
                c["nbf"] = json!(nbf);
            }
            c
        };
        let kid = decode_part(&good, 0)["kid"].as_str().unwrap().to_owned();
        let expired = sign_with_identity_key(&app, &claims(now - 3600, None)).await;
        let not_yet = sign_with_identity_key(&app, &claims(now + 3600, Some(now + 1800))).await;
        let valid_forged = sign_with_identity_key(&app, &claims(now + 600, None)).await;
        let (status, _) = app.get_as(&valid_forged, "/api/v1/users/me").await;
        assert_eq!(status, StatusCode::OK, "the by-hand signer works");

        let parts: Vec<&str> = good.split('.').collect();
        let mut payload = decode_part(&good, 1);
        payload["roles"] = json!(["customer", "admin"]);
        let tampered = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(payload.to_string()),
            parts[2]
        );
        let none_header =
            URL_SAFE_NO_PAD.encode(json!({"alg": "none", "typ": "JWT", "kid": kid}).to_string());
        let alg_none = format!("{none_header}.{}.", parts[1]);
        let mut hs = Header::new(Algorithm::HS256);
        hs.kid = Some(kid.clone());
        let hmac = jsonwebtoken::encode(
            &hs,
            &claims(now + 600, None),
            &EncodingKey::from_secret(b"secret"),
        )
        .unwrap();
        let other = TestKeys::generate();
        let mut wrong_key_header = Header::new(Algorithm::EdDSA);
        wrong_key_header.kid = Some(kid.clone());
        let wrong_key = other.sign(&wrong_key_header, &claims(now + 600, None));
        let unknown_kid = other.token(&serde_json::from_value(claims(now + 600, None)).unwrap());
        let mut no_kid_header = Header::new(Algorithm::EdDSA);
        no_kid_header.kid = None;
        let no_kid = other.sign(&no_kid_header, &claims(now + 600, None));

        let cases = [
            ("expired", expired.as_str(), "token_expired"),
            ("not yet valid", not_yet.as_str(), "invalid_token"),
            ("tampered", tampered.as_str(), "invalid_token"),
            ("alg none", alg_none.as_str(), "invalid_token"),
            ("hmac", hmac.as_str(), "invalid_token"),
            ("wrong key", wrong_key.as_str(), "invalid_token"),
            ("unknown kid", unknown_kid.as_str(), "invalid_token"),
            ("no kid", no_kid.as_str(), "invalid_token"),
            ("garbage", "not.a.jwt", "invalid_token"),
        ];
        for (what, token, code) in cases {
            let reply = app
                .request("GET", "/api/v1/users/me", Some(token), None)
                .await;
            assert_eq!(
                reply.status,
                StatusCode::UNAUTHORIZED,
                "{}: {what}",
                app.label
            );
            assert_eq!(reply.body["code"], code, "{what}: {}", reply.body);
            let admin = app.request("GET", "/api/v1/users", Some(token), None).await;
            assert_eq!(
                admin.status,
                StatusCode::UNAUTHORIZED,
                "{what} on an admin route"
            );
        }
        let missing = app.request("GET", "/api/v1/users/me", None, None).await;
        assert_eq!(
            (missing.status, missing.body["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("unauthorized"))
        );
    }
}

#[tokio::test]
async fn the_jwks_publishes_public_ed25519_keys_only() {
    for app in apps().await {
        let reply = app.get_public("/.well-known/jwks.json").await;
        assert_eq!(reply.status, StatusCode::OK, "{}", app.label);
        let keys = reply.body["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 1);
        let key = &keys[0];
        assert_eq!(
            (key["kty"].as_str(), key["crv"].as_str()),
            (Some("OKP"), Some("Ed25519"))
        );
        assert_eq!(
            (key["alg"].as_str(), key["use"].as_str()),
            (Some("EdDSA"), Some("sig"))
        );
        assert_eq!(
            URL_SAFE_NO_PAD
                .decode(key["x"].as_str().unwrap())
                .unwrap()
                .len(),
            32
        );
        assert!(key.get("d").is_none(), "no private part");
        // A restart reuses the stored key.
        app.restart().await;
        let again = app.get_public("/.well-known/jwks.json").await.body;
        assert_eq!(again, reply.body);
    }
}

#[tokio::test]
async fn rotation_keeps_old_tokens_valid_and_publishes_both_keys() {
    for app in apps().await {
        let admin = app.admin_token().await;
        let (_, old_token, _) = app.register(&email("old"), PASSWORD).await;
        let old_kid = decode_part(&old_token, 0)["kid"].clone();

        let (status, _) = app
            .post_as(&old_token, "/api/v1/auth/keys/rotate", json!({}))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "customers cannot rotate");
        let (status, rotated) = app
            .post_as(&admin, "/api/v1/auth/keys/rotate", json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{}: {rotated}", app.label);
        assert_ne!(rotated["active_kid"], old_kid);

        let jwks = app.get_public("/.well-known/jwks.json").await.body;
        let kids: Vec<&Value> = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| &k["kid"])
            .collect();
        assert_eq!(kids.len(), 2, "{jwks}");
        assert!(kids.contains(&&old_kid) && kids.contains(&&rotated["active_kid"]));

        assert_eq!(
            app.get_as(&old_token, "/api/v1/users/me").await.0,
            StatusCode::OK
        );
        let (_, new_token, _) = app.register(&email("new"), PASSWORD).await;
        assert_eq!(decode_part(&new_token, 0)["kid"], rotated["active_kid"]);
        assert_eq!(
            app.get_as(&new_token, "/api/v1/users/me").await.0,
            StatusCode::OK
        );
        let mut ids = app.auth.key_ids();
        ids.sort();
        assert_eq!(ids.len(), 2, "the in-process verifier follows the rotation");

        // Once a retired key is older than a token's life, it leaves the set.
        mercato_store::sqlx::query(
            "UPDATE signing_keys SET retired_at = 1 WHERE retired_at IS NOT NULL",
        )
        .execute(app.db.pool())
        .await
        .unwrap();
        let jwks = app.get_public("/.well-known/jwks.json").await.body;
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
        assert_eq!(jwks["keys"][0]["kid"], rotated["active_kid"]);
    }
}
