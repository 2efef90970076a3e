//! The route table from configuration, checks at the edge, retries that never repeat a
//! write, and the web bundle under `/assets/`.

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use mercato_gateway::StaticAsset;
use mercato_kernel::GatewayRoute;
use mercato_kernel::auth::testing::TestKeys;

use crate::support::{
    Fake, THINGS, config, dropping_url, gateway, get, in_process, remote, send, serve,
};

fn route(
    prefix: &str,
    methods: &[&str],
    rewrite: Option<&str>,
    auth: Option<&str>,
) -> GatewayRoute {
    GatewayRoute {
        prefix: prefix.to_owned(),
        service: "things".to_owned(),
        methods: methods.iter().map(|m| (*m).to_owned()).collect(),
        rewrite: rewrite.map(str::to_owned),
        auth: auth.map(str::to_owned),
    }
}

#[tokio::test]
async fn configured_routes_rewrite_paths_and_match_methods() {
    let fake = Fake::new("things");
    let mut config = config();
    config.gateway_routes = vec![route(
        "/api/v1/shop",
        &["GET"],
        Some("/api/v1/things"),
        None,
    )];
    let app = gateway(&config, vec![in_process(&THINGS, &fake, "things")]);

    let shop = get(&app, "/api/shop?limit=3").await;
    assert_eq!(shop.status, 200);
    assert_eq!(shop.json()["path"], "/api/v1/things");
    assert_eq!(shop.json()["query"], "limit=3");
    let versioned = get(&app, "/api/v1/shop").await;
    assert_eq!(versioned.json()["path"], "/api/v1/things");

    let post = send(
        &app,
        Request::post("/api/v1/shop").body(Body::from("x")).unwrap(),
    )
    .await;
    post.assert_problem(404, "route_not_found");
    get(&app, "/api/v1/shopping")
        .await
        .assert_problem(404, "route_not_found");
    assert_eq!(
        get(&app, "/api/v1/things").await.status,
        200,
        "the built-in route still serves"
    );
    assert_eq!(fake.hits(), 3);
}

#[tokio::test]
async fn routes_requiring_a_role_are_checked_at_the_edge() {
    let keys = TestKeys::generate();
    let fake = Fake::new("things");
    let mut config = config();
    config.gateway_routes = vec![route("/api/v1/things", &[], None, Some("staff"))];
    let app = mercato_gateway::router(
        &config,
        vec![in_process(&THINGS, &fake, "things")],
        Arc::new(keys.authenticator()),
    );
    let with = |token: &str| {
        Request::get("/api/v1/things")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap()
    };

    let anonymous = get(&app, "/api/v1/things").await;
    anonymous.assert_problem(401, "unauthorized");
    assert_eq!(anonymous.header("www-authenticate"), "Bearer");
    send(&app, with("not-a-token"))
        .await
        .assert_problem(401, "invalid_token");
    let other_keys = TestKeys::generate();
    send(&app, with(&other_keys.token_for("usr_1", &["staff"], None)))
        .await
        .assert_problem(401, "invalid_token");
    send(&app, with(&keys.token_for("usr_1", &["customer"], None)))
        .await
        .assert_problem(403, "forbidden");
    assert_eq!(fake.hits(), 0, "nothing refused reached the service");

    let staff = send(&app, with(&keys.token_for("usr_2", &["staff"], None))).await;
    assert_eq!(staff.status, 200);
    let admin = send(&app, with(&keys.token_for("usr_3", &["admin"], None))).await;
    assert_eq!(admin.status, 200, "admin holds every staff right");
    assert_eq!(fake.hits(), 2);
}

#[tokio::test]
async fn a_malformed_route_table_is_refused_at_start() {
    let mut config = config();
    config.gateway_routes = vec![GatewayRoute {
        prefix: "/x".to_owned(),
        service: "nowhere".to_owned(),
        ..GatewayRoute::default()
    }];
    let error = mercato_gateway::validate(&config).unwrap_err().to_string();
    assert!(error.contains("no service is named `nowhere`"), "{error}");
}

fn unrepeated_config() -> mercato_kernel::Config {
    let mut config = config();
    config.gateway_lb_strategy = "round_robin".to_owned();
    config.gateway_health_interval_ms = 0;
    config.gateway_eject_after = 1000;
    config.gateway_breaker_failures = 0;
    config
}

#[tokio::test]
async fn reads_lost_after_they_were_sent_go_once_to_another_replica() {
    let live = Fake::new("live");
    let (dropping, received) = dropping_url().await;
    let urls = vec![dropping, serve(live.router("things")).await];
    let app = gateway(&unrepeated_config(), vec![remote(&THINGS, urls)]);

    for _ in 0..10 {
        assert_eq!(get(&app, "/api/v1/things").await.status, 200);
    }
    assert_eq!(live.hits(), 10);
    assert_eq!(
        received.load(std::sync::atomic::Ordering::SeqCst),
        5,
        "every other read first went to the replica that drops connections"
    );
}

#[tokio::test]
async fn writes_that_reached_an_upstream_are_never_sent_again() {
    let live = Fake::new("live");
    let (dropping, received) = dropping_url().await;
    let urls = vec![dropping, serve(live.router("things")).await];
    let app = gateway(&unrepeated_config(), vec![remote(&THINGS, urls)]);

    let mut failed = 0;
    for n in 0..10 {
        // Even with a key: the dropping replica read the request, so it may have acted on it.
        let mut request = Request::post("/api/v1/things");
        if n % 2 == 0 {
            request = request.header("idempotency-key", format!("k{n}"));
        }
        let answer = send(&app, request.body(Body::from(format!("w{n}"))).unwrap()).await;
        match answer.status.as_u16() {
            201 => {}
            502 => {
                answer.assert_problem(502, "bad_gateway");
                failed += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    let dropped = received.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(failed, 5);
    assert_eq!(dropped, 5);
    assert_eq!(
        live.hits() + dropped,
        10,
        "each write reached exactly one upstream once"
    );
}

fn bundle(path: &str) -> Option<StaticAsset> {
    (path == "site.css").then_some(StaticAsset {
        body: b"body { color: #222 }",
        content_type: "text/css; charset=utf-8",
        etag: "\"abc123\"",
    })
}

#[tokio::test]
async fn assets_come_from_the_web_bundle_with_validators() {
    let app = mercato_gateway::build(
        &config(),
        Vec::new(),
        Arc::new(mercato_kernel::auth::Authenticator::default()),
        Some(mercato_gateway::Frontend {
            assets: bundle,
            pages: axum::Router::new(),
        }),
    )
    .router;

    let css = get(&app, "/assets/site.css").await;
    assert_eq!(css.status, 200);
    assert_eq!(css.header("content-type"), "text/css; charset=utf-8");
    assert_eq!(css.header("etag"), "\"abc123\"");
    assert!(css.header("cache-control").contains("public"));
    assert_eq!(&css.body[..], b"body { color: #222 }");

    let again = send(
        &app,
        Request::get("/assets/site.css")
            .header("if-none-match", "\"abc123\"")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());

    get(&app, "/assets/missing.css")
        .await
        .assert_problem(404, "route_not_found");
    get(&app, "/assets/../site.css")
        .await
        .assert_problem(404, "route_not_found");
}
