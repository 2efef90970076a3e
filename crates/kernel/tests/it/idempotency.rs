//! The Idempotency-Key middleware, on SQLite and (with `TEST_DATABASE_URL`) PostgreSQL.
#![allow(clippy::unwrap_used)] // test helpers panic on failure, like the tests

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Request, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Extension, Router};
use mercato_kernel::auth::testing::TestKeys;
use mercato_kernel::idempotency::{self, Idempotency};
use mercato_store::Db;
use mercato_store::testing::{self, TestDb};
use serde_json::Value;
use tokio::sync::Notify;
use tower::ServiceExt;

/// A test app: counts handler calls; `/slow` blocks its first call until `release`.
#[derive(Clone)]
struct App {
    router: Router,
    calls: Arc<AtomicUsize>,
    entered: Arc<Notify>,
    release: Arc<Notify>,
}

fn app(
    db: &Db,
    configure: impl FnOnce(Idempotency) -> Idempotency,
    keys: Option<&TestKeys>,
) -> App {
    let calls = Arc::new(AtomicUsize::new(0));
    let (entered, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let create = {
        let calls = calls.clone();
        move |body: Bytes| async move {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            let id = uuid::Uuid::now_v7();
            let body = format!("{{\"id\":\"ord_{id}\",\"n\":{n},\"len\":{}}}", body.len());
            let location = format!("/orders/ord_{id}");
            (
                StatusCode::CREATED,
                [
                    (header::CONTENT_TYPE, "application/json"),
                    (header::LOCATION, location.as_str()),
                ],
                body,
            )
                .into_response()
        }
    };
    let flaky = {
        let calls = calls.clone();
        move || async move {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 => (StatusCode::SERVICE_UNAVAILABLE, "try again").into_response(),
                n => (StatusCode::CREATED, format!("created on call {n}")).into_response(),
            }
        }
    };
    let slow = {
        let (calls, entered, release) = (calls.clone(), entered.clone(), release.clone());
        move || async move {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            if n == 0 {
                entered.notify_one();
                release.notified().await;
            }
            (StatusCode::CREATED, format!("slow call {n}"))
        }
    };
    let state = configure(Idempotency::new(db.clone()));
    let mut router = Router::new()
        .route(
            "/orders",
            post(create.clone()).get(create.clone()).put(create),
        )
        .route("/flaky", post(flaky))
        .route("/slow", post(slow))
        .route_layer(axum::middleware::from_fn_with_state(
            state,
            idempotency::layer,
        ));
    if let Some(keys) = keys {
        router = router.layer(Extension(Arc::new(keys.authenticator())));
    }
    App {
        router,
        calls,
        entered,
        release,
    }
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn code(&self) -> String {
        assert_eq!(
            self.headers[header::CONTENT_TYPE],
            "application/problem+json"
        );
        let problem: Value = serde_json::from_slice(&self.body).unwrap();
        problem["code"].as_str().unwrap().to_owned()
    }

    fn replayed(&self) -> bool {
        self.headers
            .get("idempotent-replayed")
            .is_some_and(|v| v == "true")
    }
}

fn request(
    method: &str,
    uri: &str,
    key: Option<&str>,
    body: &str,
    auth: Option<&str>,
) -> Request<Body> {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(key) = key {
        req = req.header("Idempotency-Key", key);
    }
    if let Some(token) = auth {
        req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    req.body(Body::from(body.to_owned())).unwrap()
}

async fn send(app: &App, req: Request<Body>) -> Reply {
    let res = app.router.clone().oneshot(req).await.unwrap();
    let (parts, body) = res.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

async fn post_order(app: &App, key: &str, body: &str) -> Reply {
    send(app, request("POST", "/orders", Some(key), body, None)).await
}

async fn rows(db: &Db) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM idempotency_keys")
        .fetch_one(db.pool())
        .await
        .unwrap()
}

fn calls(app: &App) -> usize {
    app.calls.load(Ordering::SeqCst)
}

#[tokio::test]
async fn a_retry_replays_the_stored_response_byte_for_byte() {
    for TestDb { db, .. } in testing::databases(idempotency::migrator()).await {
        let app = app(&db, |i| i, None);
        let first = post_order(&app, "key-1", r#"{"cart":"c_1"}"#).await;
        assert_eq!(first.status, StatusCode::CREATED, "{db:?}");
        assert!(!first.replayed());
        let again = post_order(&app, "key-1", r#"{"cart":"c_1"}"#).await;
        assert_eq!(again.status, StatusCode::CREATED);
        assert_eq!(again.body, first.body, "byte-identical body");
        assert_eq!(
            again.headers[header::LOCATION],
            first.headers[header::LOCATION]
        );
        assert_eq!(again.headers[header::CONTENT_TYPE], "application/json");
        assert!(again.replayed());
        assert_eq!(calls(&app), 1, "the handler ran once");
        assert_eq!(rows(&db).await, 1);
    }
}

#[tokio::test]
async fn the_same_key_with_another_request_is_422_and_changes_nothing() {
    for TestDb { db, .. } in testing::databases(idempotency::migrator()).await {
        let app = app(&db, |i| i, None);
        let first = post_order(&app, "key-1", r#"{"amount":100}"#).await;
        let other = post_order(&app, "key-1", r#"{"amount":999}"#).await;
        assert_eq!(other.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(other.code(), "idempotency_key_reused");
        let query = send(
            &app,
            request(
                "POST",
                "/orders?x=1",
                Some("key-1"),
                r#"{"amount":100}"#,
                None,
            ),
        )
        .await;
        assert_eq!(query.code(), "idempotency_key_reused");
        assert_eq!(calls(&app), 1);
        let again = post_order(&app, "key-1", r#"{"amount":100}"#).await;
        assert_eq!((&again.body, again.replayed()), (&first.body, true));
    }
}

#[tokio::test]
async fn a_duplicate_while_the_first_runs_is_409() {
    for TestDb { db, .. } in testing::databases(idempotency::migrator()).await {
        let app = app(&db, |i| i, None);
        let first = tokio::spawn({
            let app = app.clone();
            async move { send(&app, request("POST", "/slow", Some("k"), "{}", None)).await }
        });
        app.entered.notified().await;
        let second = send(&app, request("POST", "/slow", Some("k"), "{}", None)).await;
        assert_eq!(second.status, StatusCode::CONFLICT);
        assert_eq!(second.code(), "idempotency_request_in_progress");
        assert_eq!(second.headers[header::RETRY_AFTER], "1");
        app.release.notify_one();
        let first = first.await.unwrap();
        assert_eq!(
            (first.status, &first.body[..]),
            (StatusCode::CREATED, &b"slow call 0"[..])
        );
        let third = send(&app, request("POST", "/slow", Some("k"), "{}", None)).await;
        assert_eq!((&third.body, third.replayed()), (&first.body, true));
        assert_eq!(calls(&app), 1);
    }
}

#[tokio::test]
async fn a_stale_request_can_be_taken_over() {
    for TestDb { db, .. } in testing::databases(idempotency::migrator()).await {
        let app = app(&db, |i| i.with_stale_after(Duration::from_millis(50)), None);
        let first = tokio::spawn({
            let app = app.clone();
            async move { send(&app, request("POST", "/slow", Some("k"), "{}", None)).await }
        });
        app.entered.notified().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let second = send(&app, request("POST", "/slow", Some("k"), "{}", None)).await;
        assert_eq!(
            (second.status, &second.body[..]),
            (StatusCode::CREATED, &b"slow call 1"[..])
        );
        app.release.notify_one();
        assert_eq!(first.await.unwrap().status, StatusCode::CREATED);
        let third = send(&app, request("POST", "/slow", Some("k"), "{}", None)).await;
        assert_eq!(
            (&third.body, third.replayed()),
            (&second.body, true),
            "the owner's response"
        );
    }
}

#[tokio::test]
async fn server_errors_are_not_stored() {
    for TestDb { db, .. } in testing::databases(idempotency::migrator()).await {
        let app = app(&db, |i| i, None);
        let first = send(&app, request("POST", "/flaky", Some("k"), "{}", None)).await;
        assert_eq!(first.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(rows(&db).await, 0, "the key is released");
        let retry = send(&app, request("POST", "/flaky", Some("k"), "{}", None)).await;
        assert_eq!(
            (retry.status, retry.replayed()),
            (StatusCode::CREATED, false)
        );
        let again = send(&app, request("POST", "/flaky", Some("k"), "{}", None)).await;
        assert_eq!((&again.body, again.replayed()), (&retry.body, true));
        assert_eq!(calls(&app), 2);
    }
}

#[tokio::test]
async fn keys_of_different_principals_are_independent() {
    let keys = TestKeys::generate();
    for TestDb { db, .. } in testing::databases(idempotency::migrator()).await {
        let app = app(&db, |i| i, Some(&keys));
        let alice = keys.token_for("usr_alice", &[], None);
        let alice_again = keys.token_for("usr_alice", &["customer"], None);
        let bob = keys.token_for("usr_bob", &[], None);
        let send_as = |auth: Option<&str>, body: &str| {
            send(&app, request("POST", "/orders", Some("shared"), body, auth))
        };
        let a = send_as(Some(&alice), "{\"a\":1}").await;
        let b = send_as(Some(&bob), "{\"b\":2}").await;
        let anon = send_as(None, "{\"c\":3}").await;
        let junk = send_as(Some("not-a-jwt"), "{\"d\":4}").await;
        for reply in [&a, &b, &anon, &junk] {
            assert_eq!(
                (reply.status, reply.replayed()),
                (StatusCode::CREATED, false)
            );
        }
        assert_eq!(calls(&app), 4);
        // A fresh token of the same user is the same principal.
        let a2 = send_as(Some(&alice_again), "{\"a\":1}").await;
        assert_eq!((&a2.body, a2.replayed()), (&a.body, true));
        // The same key on another path or method is another key too.
        let put = send(
            &app,
            request("PUT", "/orders", Some("shared"), "{}", Some(&alice)),
        )
        .await;
        assert_eq!((put.status, put.replayed()), (StatusCode::CREATED, false));
        assert_eq!(calls(&app), 5);
    }
}

#[tokio::test]
async fn gets_and_requests_without_a_key_pass_through() {
    for TestDb { db, .. } in testing::databases(idempotency::migrator()).await {
        let app = app(&db, |i| i, None);
        for _ in 0..2 {
            let get = send(&app, request("GET", "/orders", Some("k"), "", None)).await;
            assert_eq!((get.status, get.replayed()), (StatusCode::CREATED, false));
            let post = send(&app, request("POST", "/orders", None, "{}", None)).await;
            assert_eq!((post.status, post.replayed()), (StatusCode::CREATED, false));
        }
        assert_eq!(calls(&app), 4);
        assert_eq!(rows(&db).await, 0);
    }
}

#[tokio::test]
async fn bad_keys_and_large_bodies_are_rejected_before_the_handler() {
    for TestDb { db, .. } in testing::databases(idempotency::migrator()).await {
        let app = app(&db, |i| i.with_body_limit(16), None);
        let long = "k".repeat(256);
        for key in [long.as_str(), "", "has space"] {
            let reply = post_order(&app, key, "{}").await;
            assert_eq!(reply.status, StatusCode::BAD_REQUEST);
            assert_eq!(reply.code(), "invalid_idempotency_key");
        }
        let big = post_order(&app, "k", &"x".repeat(17)).await;
        assert_eq!(big.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(big.code(), "payload_too_large");
        assert_eq!(calls(&app), 0);
        assert_eq!(
            post_order(&app, &"k".repeat(255), "{}").await.status,
            StatusCode::CREATED
        );
    }
}

#[tokio::test]
async fn expired_keys_run_again_and_can_be_purged() {
    for TestDb { db, .. } in testing::databases(idempotency::migrator()).await {
        let app = app(&db, |i| i.with_ttl(Duration::ZERO), None);
        let first = post_order(&app, "k", "{}").await;
        tokio::time::sleep(Duration::from_millis(2)).await;
        let second = post_order(&app, "k", "{}").await;
        assert_ne!(first.body, second.body);
        assert!(!second.replayed());
        assert_eq!((calls(&app), rows(&db).await), (2, 1));
        assert_eq!(
            idempotency::purge_expired(&db).await.unwrap(),
            0,
            "younger than 24 h"
        );
        sqlx::query("UPDATE idempotency_keys SET created_at = 0")
            .execute(db.pool())
            .await
            .unwrap();
        assert_eq!(idempotency::purge_expired(&db).await.unwrap(), 1);
    }
}

#[tokio::test]
async fn migrations_keep_their_own_bookkeeping_table() {
    for TestDb { db, .. } in testing::databases(idempotency::migrator()).await {
        idempotency::migrate(&db).await.unwrap();
        let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _kernel_migrations")
            .fetch_one(db.pool())
            .await
            .unwrap();
        assert_eq!(applied, 1);
    }
}
