//! Token verification and the auth extractors, through a tiny axum app.
#![allow(clippy::unwrap_used)] // test helpers panic on failure, like the tests

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use axum::routing::get;
use axum::{Extension, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mercato_kernel::Config;
use mercato_kernel::auth::testing::{TestKeys, claims};
use mercato_kernel::auth::{
    Admin, AuthError, Authenticator, Claims, MaybeClaims, OrgScope, RequireRole, Staff,
};
use serde_json::{Value, json};
use tower::ServiceExt;

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A token with any header and payload and a signature of junk bytes.
fn unsigned(header: Value, payload: &Claims, signature: &str) -> String {
    let header = b64(header.to_string().as_bytes());
    let payload = b64(&serde_json::to_vec(payload).unwrap());
    format!("{header}.{payload}.{signature}")
}

async fn rejected(auth: &Authenticator, token: &str) -> AuthError {
    auth.verify(token)
        .await
        .expect_err("token should be rejected")
}

#[tokio::test]
async fn a_valid_token_round_trips_its_claims() {
    let keys = TestKeys::generate();
    let mut expected = claims("usr_1", &["staff"], Some("org_1"));
    expected.jti = Some("tok_1".into());
    let got = keys
        .authenticator()
        .verify(&keys.token(&expected))
        .await
        .unwrap();
    assert_eq!(got, expected);
    assert!(got.has_role(mercato_kernel::auth::Role::Staff));
}

#[tokio::test]
async fn alg_none_is_rejected() {
    let keys = TestKeys::generate();
    let c = claims("usr_1", &["admin"], None);
    let auth = keys.authenticator();
    for sig in ["", "AAAA"] {
        let token = unsigned(
            json!({"alg": "none", "typ": "JWT", "kid": keys.kid()}),
            &c,
            sig,
        );
        assert_eq!(rejected(&auth, &token).await, AuthError::Malformed);
    }
}

#[tokio::test]
async fn hs256_signed_with_the_public_key_is_rejected() {
    let keys = TestKeys::generate();
    let auth = keys.authenticator();
    let c = claims("usr_1", &["admin"], None);
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(keys.kid().to_owned());
    let x = b64(keys.public_key());
    for secret in [keys.public_key(), x.as_bytes(), keys.jwks_json().as_bytes()] {
        let token = jsonwebtoken::encode(&header, &c, &EncodingKey::from_secret(secret)).unwrap();
        assert_eq!(
            rejected(&auth, &token).await,
            AuthError::UnsupportedAlgorithm
        );
    }
}

#[tokio::test]
async fn other_asymmetric_algorithms_are_rejected_even_with_our_signature() {
    let keys = TestKeys::generate();
    let c = claims("usr_1", &[], None);
    let good = keys.token(&c);
    let signature = good.rsplit('.').next().unwrap();
    for alg in ["RS256", "PS256", "ES256"] {
        let token = unsigned(json!({"alg": alg, "kid": keys.kid()}), &c, signature);
        let err = rejected(&keys.authenticator(), &token).await;
        assert_eq!(err, AuthError::UnsupportedAlgorithm, "{alg}");
    }
}

#[tokio::test]
async fn a_token_signed_by_another_key_is_rejected() {
    let (keys, other) = (TestKeys::generate(), TestKeys::generate());
    let auth = keys.authenticator();
    let c = claims("usr_1", &[], None);
    // Another key claiming our kid: the signature does not verify.
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(keys.kid().to_owned());
    assert_eq!(
        rejected(&auth, &other.sign(&header, &c)).await,
        AuthError::InvalidSignature
    );
    // Another key under its own kid: unknown.
    assert_eq!(
        rejected(&auth, &other.token(&c)).await,
        AuthError::UnknownKey
    );
}

#[tokio::test]
async fn unknown_or_missing_kids_are_rejected() {
    let keys = TestKeys::generate();
    let auth = keys.authenticator();
    let c = claims("usr_1", &[], None);
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some("no-such-key".into());
    assert_eq!(
        rejected(&auth, &keys.sign(&header, &c)).await,
        AuthError::UnknownKey
    );
    header.kid = None;
    assert_eq!(
        rejected(&auth, &keys.sign(&header, &c)).await,
        AuthError::UnknownKey
    );
}

#[tokio::test]
async fn expired_tokens_are_rejected_beyond_the_leeway() {
    let keys = TestKeys::generate();
    let auth = keys.authenticator();
    let mut c = claims("usr_1", &[], None);
    c.exp = now() - 120;
    assert_eq!(rejected(&auth, &keys.token(&c)).await, AuthError::Expired);
    c.exp = now() - 5;
    assert!(
        auth.verify(&keys.token(&c)).await.is_ok(),
        "within the leeway"
    );
}

#[tokio::test]
async fn tokens_not_valid_yet_are_rejected() {
    let keys = TestKeys::generate();
    let auth = keys.authenticator();
    let mut c = claims("usr_1", &[], None);
    c.nbf = Some(now() + 300);
    assert_eq!(
        rejected(&auth, &keys.token(&c)).await,
        AuthError::NotYetValid
    );
    c.nbf = Some(now() - 1);
    assert!(auth.verify(&keys.token(&c)).await.is_ok());
}

#[tokio::test]
async fn a_tampered_payload_is_rejected() {
    let keys = TestKeys::generate();
    let token = keys.token_for("usr_1", &["customer"], None);
    let parts: Vec<&str> = token.split('.').collect();
    let forged = b64(&serde_json::to_vec(&claims("usr_1", &["admin"], None)).unwrap());
    let tampered = format!("{}.{forged}.{}", parts[0], parts[2]);
    let auth = keys.authenticator();
    assert_eq!(
        rejected(&auth, &tampered).await,
        AuthError::InvalidSignature
    );
    // A flipped signature byte fails too.
    let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    sig[0] ^= 1;
    let flipped = format!("{}.{}.{}", parts[0], parts[1], b64(&sig));
    assert_eq!(rejected(&auth, &flipped).await, AuthError::InvalidSignature);
}

#[tokio::test]
async fn garbage_is_rejected() {
    let keys = TestKeys::generate();
    let auth = keys.authenticator();
    for token in ["", "garbage", "a.b.c", "...", "a.b", "😀.😀.😀"] {
        assert_eq!(
            rejected(&auth, token).await,
            AuthError::Malformed,
            "{token:?}"
        );
    }
    // A well-signed token whose payload lacks required claims.
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(keys.kid().to_owned());
    let token = keys.sign(&header, &json!({"sub": "usr_1", "exp": now() + 60}));
    assert_eq!(rejected(&auth, &token).await, AuthError::InvalidClaims);
}

#[tokio::test]
async fn the_configured_issuer_is_required() {
    let keys = TestKeys::generate();
    let auth = Authenticator::from_jwks(keys.jwks(), Some("https://id.mercato".into()));
    let mut c = claims("usr_1", &[], None);
    assert_eq!(
        rejected(&auth, &keys.token(&c)).await,
        AuthError::WrongIssuer
    );
    c.iss = Some("https://evil.example".into());
    assert_eq!(
        rejected(&auth, &keys.token(&c)).await,
        AuthError::WrongIssuer
    );
    c.iss = Some("https://id.mercato".into());
    assert_eq!(auth.verify(&keys.token(&c)).await.unwrap(), c);
}

#[tokio::test]
async fn replacing_keys_rotates_them() {
    let (old, new) = (TestKeys::generate(), TestKeys::generate());
    let auth = old.authenticator();
    let old_token = old.token_for("usr_1", &[], None);
    assert!(auth.verify(&old_token).await.is_ok());
    auth.replace_keys(new.jwks());
    assert!(
        auth.verify(&new.token_for("usr_1", &[], None))
            .await
            .is_ok()
    );
    assert_eq!(rejected(&auth, &old_token).await, AuthError::UnknownKey);
}

#[tokio::test]
async fn config_reads_a_jwks_file_or_starts_empty() {
    let keys = TestKeys::generate();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jwks.json");
    std::fs::write(&file, keys.jwks_json()).unwrap();
    let mut cfg = Config::default();
    cfg.mercato_jwks_file = Some(file);
    let auth = Authenticator::from_config(&cfg).await.unwrap();
    assert_eq!(auth.key_ids(), [keys.kid()]);

    let empty = Authenticator::from_config(&Config::default())
        .await
        .unwrap();
    let err = rejected(&empty, &keys.token_for("usr_1", &[], None)).await;
    assert_eq!(err, AuthError::UnknownKey);

    let mut missing = Config::default();
    missing.mercato_jwks_file = Some(dir.path().join("nope"));
    assert!(matches!(
        Authenticator::from_config(&missing).await,
        Err(AuthError::KeySet(_))
    ));
}

/// Serves a JWKS document that the test can change, counting fetches.
async fn jwks_server(doc: Arc<std::sync::Mutex<String>>, hits: Arc<AtomicUsize>) -> String {
    let app = Router::new().route(
        "/.well-known/jwks.json",
        get(move || async move {
            hits.fetch_add(1, Ordering::SeqCst);
            doc.lock().unwrap().clone()
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/.well-known/jwks.json")
}

#[tokio::test]
async fn a_jwks_url_is_refetched_for_unknown_kids_at_most_every_interval() {
    let (first, second) = (TestKeys::generate(), TestKeys::generate());
    let doc = Arc::new(std::sync::Mutex::new(first.jwks_json()));
    let hits = Arc::new(AtomicUsize::new(0));
    let url = jwks_server(doc.clone(), hits.clone()).await;
    let mut cfg = Config::default();
    cfg.mercato_jwks_url = Some(url.clone());
    let auth = Authenticator::from_config(&cfg).await.unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 1, "fetched at start");
    assert!(
        auth.verify(&first.token_for("usr_1", &[], None))
            .await
            .is_ok()
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1, "known kids need no fetch");

    // Identity rotates: the new kid is unknown, but the last fetch was too recent.
    let mut both = first.jwks();
    both.keys.push(second.jwk());
    *doc.lock().unwrap() = serde_json::to_string(&both).unwrap();
    let token = second.token_for("usr_2", &[], None);
    assert_eq!(rejected(&auth, &token).await, AuthError::UnknownKey);
    assert_eq!(rejected(&auth, &token).await, AuthError::UnknownKey);
    assert_eq!(hits.load(Ordering::SeqCst), 1, "rate limited");

    // With no interval, every unknown kid fetches again.
    *doc.lock().unwrap() = first.jwks_json();
    let eager = Authenticator::from_jwks_url(&url, None)
        .await
        .unwrap()
        .with_refresh_interval(Duration::ZERO);
    let before = hits.load(Ordering::SeqCst);
    assert_eq!(rejected(&eager, &token).await, AuthError::UnknownKey);
    *doc.lock().unwrap() = serde_json::to_string(&both).unwrap();
    assert_eq!(eager.verify(&token).await.unwrap().sub, "usr_2");
    assert_eq!(hits.load(Ordering::SeqCst), before + 2);
}

#[tokio::test]
async fn an_unreachable_jwks_url_starts_with_no_keys() {
    let keys = TestKeys::generate();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    drop(listener);
    let auth = Authenticator::from_jwks_url(&url, None).await.unwrap();
    assert!(auth.key_ids().is_empty());
    let err = rejected(&auth, &keys.token_for("usr_1", &[], None)).await;
    assert_eq!(err, AuthError::UnknownKey);
    assert!(
        Authenticator::from_jwks_url("not a url", None)
            .await
            .is_err()
    );
}

fn app(auth: Option<Authenticator>) -> Router {
    let router = Router::new()
        .route("/me", get(|claims: Claims| async move { claims.sub }))
        .route(
            "/maybe",
            get(|MaybeClaims(claims): MaybeClaims| async move {
                claims.map_or_else(|| "anonymous".to_owned(), |c| c.sub)
            }),
        )
        .route(
            "/staff",
            get(|RequireRole(c, _): RequireRole<Staff>| async move { c.sub }),
        )
        .route(
            "/admin",
            get(|admin: RequireRole<Admin>| async move { admin.sub.clone() }),
        )
        .route("/org", get(|scope: OrgScope| async move { scope.org_id }));
    match auth {
        Some(auth) => router.layer(Extension(Arc::new(auth))),
        None => router,
    }
}

async fn call(
    app: &Router,
    path: &str,
    authorization: Option<&str>,
) -> (StatusCode, HeaderMap, String) {
    let mut req = Request::get(path);
    if let Some(value) = authorization {
        req = req.header(header::AUTHORIZATION, value);
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (parts, body) = res.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    (
        parts.status,
        parts.headers,
        String::from_utf8(bytes.to_vec()).unwrap(),
    )
}

fn code(body: &str) -> String {
    let problem: Value = serde_json::from_str(body).unwrap();
    problem["code"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn claims_answer_401_problems_without_a_valid_token() {
    let keys = TestKeys::generate();
    let app = app(Some(keys.authenticator()));
    let mut expired = claims("usr_1", &[], None);
    expired.exp = now() - 3600;
    let expired = format!("Bearer {}", keys.token(&expired));
    let foreign = format!(
        "Bearer {}",
        TestKeys::generate().token_for("usr_1", &[], None)
    );
    let cases = [
        (None, "unauthorized", "Bearer"),
        (
            Some("Basic dXNlcjpwdw=="),
            "invalid_token",
            "Bearer error=\"invalid_token\"",
        ),
        (
            Some("Bearer garbage"),
            "invalid_token",
            "Bearer error=\"invalid_token\"",
        ),
        (
            Some(foreign.as_str()),
            "invalid_token",
            "Bearer error=\"invalid_token\"",
        ),
        (
            Some(expired.as_str()),
            "token_expired",
            "Bearer error=\"invalid_token\"",
        ),
    ];
    for (authorization, expected, challenge) in cases {
        let (status, headers, body) = call(&app, "/me", authorization).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{authorization:?}");
        assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
        assert_eq!(headers[header::WWW_AUTHENTICATE], challenge);
        assert_eq!(code(&body), expected, "{authorization:?}");
    }
    let token = format!("Bearer {}", keys.token_for("usr_1", &[], None));
    assert_eq!(call(&app, "/me", Some(&token)).await.2, "usr_1");
}

#[tokio::test]
async fn maybe_claims_are_none_without_a_token_and_401_with_a_bad_one() {
    let keys = TestKeys::generate();
    let app = app(Some(keys.authenticator()));
    assert_eq!(call(&app, "/maybe", None).await.2, "anonymous");
    let token = format!("Bearer {}", keys.token_for("usr_7", &[], None));
    assert_eq!(call(&app, "/maybe", Some(&token)).await.2, "usr_7");
    let (status, _, body) = call(&app, "/maybe", Some("Bearer a.b.c")).await;
    assert_eq!(
        (status, code(&body).as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_token")
    );
}

#[tokio::test]
async fn roles_answer_401_then_403_then_200() {
    let keys = TestKeys::generate();
    let app = app(Some(keys.authenticator()));
    let bearer = |roles: &[&str]| format!("Bearer {}", keys.token_for("usr_1", roles, None));
    let (customer, staff, admin) = (
        bearer(&["customer"]),
        bearer(&["staff"]),
        bearer(&["admin"]),
    );
    let cases = [
        ("/staff", None, StatusCode::UNAUTHORIZED),
        ("/staff", Some(&customer), StatusCode::FORBIDDEN),
        ("/staff", Some(&staff), StatusCode::OK),
        ("/staff", Some(&admin), StatusCode::OK),
        ("/admin", Some(&staff), StatusCode::FORBIDDEN),
        ("/admin", Some(&admin), StatusCode::OK),
    ];
    for (path, authorization, expected) in cases {
        let (status, headers, body) = call(&app, path, authorization.map(String::as_str)).await;
        assert_eq!(status, expected, "{path} {authorization:?}");
        if status == StatusCode::FORBIDDEN {
            assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
            assert_eq!(code(&body), "forbidden");
        } else if status == StatusCode::OK {
            assert_eq!(body, "usr_1");
        }
    }
}

#[tokio::test]
async fn org_scope_requires_an_org_claim() {
    let keys = TestKeys::generate();
    let app = app(Some(keys.authenticator()));
    let (status, _, _) = call(&app, "/org", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let no_org = format!("Bearer {}", keys.token_for("usr_1", &["admin"], None));
    let (status, headers, body) = call(&app, "/org", Some(&no_org)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
    assert_eq!(code(&body), "organization_required");
    let with_org = format!("Bearer {}", keys.token_for("usr_1", &[], Some("org_9")));
    let (status, _, body) = call(&app, "/org", Some(&with_org)).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "org_9"));
}

#[tokio::test]
async fn a_missing_authenticator_is_a_500() {
    let keys = TestKeys::generate();
    let token = format!("Bearer {}", keys.token_for("usr_1", &[], None));
    let (status, headers, body) = call(&app(None), "/me", Some(&token)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
    assert_eq!(code(&body), "internal_error");
}

#[tokio::test]
async fn local_keys_add_to_configured_ones() {
    let configured = TestKeys::generate();
    let local = TestKeys::generate();
    let auth = configured.authenticator();
    auth.set_local_keys(local.jwks());
    for keys in [&configured, &local] {
        let token = keys.token_for("usr_1", &["customer"], None);
        auth.verify(&token).await.unwrap();
    }
    // A rotation replaces the local set only.
    let rotated = TestKeys::generate();
    auth.set_local_keys(rotated.jwks());
    let old_local = local.token_for("usr_1", &[], None);
    assert!(auth.verify(&old_local).await.is_err());
    auth.verify(&configured.token_for("usr_1", &[], None))
        .await
        .unwrap();
    auth.verify(&rotated.token_for("usr_1", &[], None))
        .await
        .unwrap();
}
