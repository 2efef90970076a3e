//! Login and access-token verification throughput.
//!
//! `cargo bench -p mercato-identity` prints: the argon2id cost per hash and per verification
//! (OWASP parameters: m=19456 KiB, t=2, p=1), end-to-end logins per second through the HTTP
//! app on a SQLite database (sequential and with one task per core), and access tokens
//! verified per second by `Authenticator::verify` (EdDSA signature + claims checks).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark panics on setup failures

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use mercato_identity::domain::password;
use mercato_identity::tokens::TokenIssuer;
use mercato_kernel::auth::Authenticator;
use mercato_kernel::{Config, Context};
use mercato_store::testing::TestDb;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

const PASSWORD: &str = "correct-horse-battery";

fn per_op(elapsed: Duration, n: u32) -> f64 {
    elapsed.as_secs_f64() * 1000.0 / f64::from(n)
}

fn argon2_cost() {
    let n = 10;
    let started = Instant::now();
    let mut phc = String::new();
    for _ in 0..n {
        phc = password::hash(PASSWORD).unwrap();
    }
    let hash_ms = per_op(started.elapsed(), n);
    let started = Instant::now();
    for _ in 0..n {
        assert!(password::verify(PASSWORD, &phc));
    }
    let verify_ms = per_op(started.elapsed(), n);
    println!(
        "argon2id m={} KiB t={} p={}: hash {hash_ms:.1} ms, verify {verify_ms:.1} ms \
         (one core: at most {:.0} logins/s)",
        password::M_COST_KIB,
        password::T_COST,
        password::P_COST,
        1000.0 / verify_ms
    );
}

async fn logins() {
    let test_db = TestDb::sqlite(&mercato_identity::MIGRATOR).await;
    mercato_kernel::service::migrate(&test_db.db, &mercato_identity::MIGRATOR)
        .await
        .unwrap();
    let bus_dir = tempfile::tempdir().unwrap();
    let shutdown = CancellationToken::new();
    let config = Arc::new(Config::default());
    let auth = Arc::new(Authenticator::default());
    let ctx = Context {
        services: mercato_kernel::client::Services::new(config.clone(), auth.clone()),
        config,
        db: test_db.db.clone(),
        bus: mercato_bus::Bus::embedded(bus_dir.path()).await.unwrap(),
        auth,
        shutdown: shutdown.clone(),
        tasks: TaskTracker::new(),
    };
    let router = mercato_identity::start(ctx).await.unwrap().router;
    let post = |path: &str, body: String| {
        Request::post(path)
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap()
    };
    let register =
        format!(r#"{{"email": "bench@example.com", "password": "{PASSWORD}", "name": "Bench"}}"#);
    let response = router
        .clone()
        .oneshot(post("/api/v1/auth/register", register))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let login = format!(r#"{{"email": "bench@example.com", "password": "{PASSWORD}"}}"#);

    let n = 40;
    let started = Instant::now();
    for _ in 0..n {
        let response = router
            .clone()
            .oneshot(post("/api/v1/auth/login", login.clone()))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    let elapsed = started.elapsed();
    println!(
        "login over HTTP (SQLite), sequential: {:.1} logins/s ({:.1} ms each)",
        f64::from(n) / elapsed.as_secs_f64(),
        per_op(elapsed, n)
    );

    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let per_worker = 20;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (router, login) = (router.clone(), login.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..per_worker {
                let request = Request::post("/api/v1/auth/login")
                    .header("content-type", "application/json")
                    .body(Body::from(login.clone()))
                    .unwrap();
                let response = router.clone().oneshot(request).await.unwrap();
                assert_eq!(response.status(), StatusCode::OK);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let total = u32::try_from(workers * per_worker).unwrap_or(u32::MAX);
    println!(
        "login over HTTP (SQLite), {workers} concurrent clients: {:.1} logins/s",
        f64::from(total) / started.elapsed().as_secs_f64()
    );
    shutdown.cancel();
}

async fn verification() {
    let issuer = TokenIssuer::ephemeral("mercato").unwrap();
    let auth = Authenticator::from_jwks(issuer.jwks(), Some("mercato".to_owned()));
    let token = issuer
        .issue("usr_bench", vec!["customer".into()], None)
        .unwrap()
        .token;
    let n = 20_000;
    let started = Instant::now();
    for _ in 0..n {
        auth.verify(&token).await.unwrap();
    }
    let elapsed = started.elapsed();
    println!(
        "Authenticator::verify (EdDSA, one core): {:.0} tokens/s ({:.1} µs each)",
        f64::from(n) / elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / f64::from(n)
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    argon2_cost();
    runtime.block_on(logins());
    runtime.block_on(verification());
}
