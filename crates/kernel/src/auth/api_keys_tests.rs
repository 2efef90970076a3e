//! Tests of API key resolution: the scope vocabulary, the extractors with a fake resolver,
//! and [`HttpApiKeyResolver`] against a small identity stand-in.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use axum::body::Body;
use axum::http::{Request, header};
use axum::routing::{get, post};
use axum::{Extension, Router};
use tower::ServiceExt;

use super::*;
use crate::auth::testing::{TestKeys, claims};
use crate::auth::{Authenticator, RequireRole, Staff};

const GOOD: &str = "mk_live_good";
const STAFF: &str = "mk_live_staff";

/// Knows two keys: a read-only customer key and an admin-scoped key of a staff member.
struct FakeResolver;

impl ApiKeyResolver for FakeResolver {
    fn resolve<'a>(&'a self, secret: &'a str) -> ResolveFuture<'a> {
        Box::pin(async move {
            let found = match secret {
                GOOD => Some(key_claims("usr_key", &[], &["read"])),
                STAFF => Some(key_claims("usr_staff", &["staff"], &["admin"])),
                _ => None,
            };
            Ok(found)
        })
    }
}

fn key_claims(sub: &str, roles: &[&str], scopes: &[&str]) -> Claims {
    Claims {
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        jti: Some("key_1".to_owned()),
        ..claims(sub, roles, None)
    }
}

fn app(auth: Authenticator) -> Router {
    Router::new()
        .route(
            "/me",
            get(|c: Claims| async move { c.sub }).post(|c: Claims| async move { c.sub }),
        )
        .route(
            "/staff",
            get(|c: RequireRole<Staff>| async move { c.0.sub }),
        )
        .layer(Extension(Arc::new(auth)))
}

async fn call(app: &Router, method: &str, path: &str, token: &str) -> (StatusCode, String) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn with_fake() -> Router {
    let auth = TestKeys::generate().authenticator();
    auth.set_api_key_resolver(Arc::new(FakeResolver));
    app(auth)
}

#[test]
fn stronger_scopes_imply_weaker_ones() {
    assert!(Scope::Admin.implies(Scope::Write) && Scope::Write.implies(Scope::Read));
    assert!(!Scope::Read.implies(Scope::Write));
    assert_eq!(Scope::for_method(&Method::GET), Scope::Read);
    assert_eq!(Scope::for_method(&Method::DELETE), Scope::Write);
    for scope in Scope::ALL {
        assert_eq!(Scope::parse(scope.as_str()), Some(scope));
    }
    assert_eq!(Scope::parse("orders:read"), None);
}

#[test]
fn user_tokens_allow_every_scope_and_keys_only_theirs() {
    assert!(claims("usr_1", &[], None).allows(Scope::Admin));
    let read = key_claims("usr_1", &[], &["read"]);
    assert!(read.allows(Scope::Read) && !read.allows(Scope::Write));
    let unknown = key_claims("usr_1", &[], &["everything"]);
    assert!(!unknown.allows(Scope::Read));
}

#[test]
fn keys_hash_to_hex_sha256() {
    assert_eq!(hash_api_key("mk_x").len(), 64);
    assert_ne!(hash_api_key("mk_x"), hash_api_key("mk_y"));
}

#[tokio::test]
async fn a_valid_key_authenticates_with_its_scopes() {
    let app = with_fake();
    assert_eq!(
        call(&app, "GET", "/me", GOOD).await,
        (StatusCode::OK, "usr_key".into())
    );
}

#[tokio::test]
async fn an_unknown_key_is_401() {
    let (status, body) = call(&with_fake(), "GET", "/me", "mk_live_nope").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("invalid_token"), "{body}");
}

#[tokio::test]
async fn keys_are_rejected_without_a_resolver() {
    let app = app(TestKeys::generate().authenticator());
    assert_eq!(
        call(&app, "GET", "/me", GOOD).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_read_key_cannot_write() {
    let (status, body) = call(&with_fake(), "POST", "/me", GOOD).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("insufficient_scope"), "{body}");
}

#[tokio::test]
async fn require_role_sees_the_key_owners_roles() {
    let app = with_fake();
    assert_eq!(call(&app, "GET", "/staff", STAFF).await.0, StatusCode::OK);
    assert_eq!(
        call(&app, "GET", "/staff", GOOD).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(call(&app, "POST", "/me", STAFF).await.0, StatusCode::OK);
}

#[tokio::test]
async fn jwts_still_verify_beside_keys() {
    let keys = TestKeys::generate();
    let auth = keys.authenticator();
    auth.set_api_key_resolver(Arc::new(FakeResolver));
    let token = keys.token_for("usr_jwt", &[], None);
    assert_eq!(
        call(&app(auth), "POST", "/me", &token).await.0,
        StatusCode::OK
    );
}

/// An identity stand-in serving the introspection endpoint; counts its calls.
async fn identity(fail: bool) -> (String, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let handler = move |axum::Json(body): axum::Json<serde_json::Value>| {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            if fail {
                return (StatusCode::INTERNAL_SERVER_ERROR, String::new());
            }
            match body["key"].as_str() {
                Some(GOOD) => {
                    let claims = key_claims("usr_key", &[], &["read"]);
                    (StatusCode::OK, serde_json::to_string(&claims).unwrap())
                }
                _ => (StatusCode::UNAUTHORIZED, String::new()),
            }
        }
    };
    let router = Router::new().route(INTROSPECT_PATH, post(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, calls)
}

#[tokio::test]
async fn the_http_resolver_asks_identity_and_caches_valid_keys() {
    let (url, calls) = identity(false).await;
    let resolver = HttpApiKeyResolver::new(vec![format!("{url}/")]).unwrap();
    let first = resolver.resolve(GOOD).await.unwrap().unwrap();
    assert_eq!(
        (first.sub.as_str(), first.scopes.as_slice()),
        ("usr_key", &["read".to_owned()][..])
    );
    let again = resolver.resolve(GOOD).await.unwrap();
    assert_eq!(again, Some(first));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(resolver.resolve("mk_live_nope").await.unwrap(), None);
    assert_eq!(resolver.resolve("mk_live_nope").await.unwrap(), None);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "unknown keys are not cached"
    );
}

#[tokio::test]
async fn the_http_resolver_without_a_cache_asks_every_time() {
    let (url, calls) = identity(false).await;
    let resolver = HttpApiKeyResolver::new(vec![url])
        .unwrap()
        .with_cache(Duration::ZERO, 0);
    for _ in 0..2 {
        assert!(resolver.resolve(GOOD).await.unwrap().is_some());
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_unreachable_or_failing_identity_is_503_not_401() {
    let (url, _) = identity(true).await;
    let resolver = HttpApiKeyResolver::new(vec![url]).unwrap();
    assert_eq!(
        resolver.resolve(GOOD).await.unwrap_err(),
        AuthError::IdentityUnavailable
    );
    let auth = Authenticator::default();
    auth.set_api_key_resolver(Arc::new(resolver));
    let (status, _) = call(&app(auth), "GET", "/me", GOOD).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

#[test]
fn the_http_resolver_needs_a_usable_url() {
    assert!(HttpApiKeyResolver::new(vec![]).is_err());
    assert!(HttpApiKeyResolver::new(vec!["not a url".into()]).is_err());
}

#[tokio::test]
async fn from_config_asks_identity_when_its_url_is_set() {
    let (url, calls) = identity(false).await;
    let cfg = crate::Config::from_sources(None, vec![("USER_SERVICE_URL".into(), url)]).unwrap();
    let auth = Authenticator::from_config(&cfg).await.unwrap();
    assert_eq!(auth.authenticate(GOOD).await.unwrap().sub, "usr_key");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let plain = Authenticator::from_config(&crate::Config::default())
        .await
        .unwrap();
    assert_eq!(
        plain.authenticate(GOOD).await,
        Err(AuthError::InvalidApiKey)
    );
}
