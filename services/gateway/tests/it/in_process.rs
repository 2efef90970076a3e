//! Embedded mode: the gateway calls a service's router in process.

use axum::body::Body;
use axum::http::Request;

use crate::support::{Fake, THINGS, WIDGETS, config, gateway, get, in_process, send};

#[tokio::test]
async fn versioned_and_unversioned_paths_reach_the_same_route() {
    let fake = Fake::new("things");
    let app = gateway(&config(), vec![in_process(&THINGS, &fake, "things")]);

    let versioned = get(&app, "/api/v1/things?limit=2&q=a%20b").await;
    let alias = get(&app, "/api/things?limit=2&q=a%20b").await;

    assert_eq!(versioned.status, 200);
    assert_eq!(alias.status, 200);
    for answer in [&versioned, &alias] {
        let body = answer.json();
        assert_eq!(body["service"], "things");
        assert_eq!(body["path"], "/api/v1/things");
        assert_eq!(body["query"], "limit=2&q=a%20b");
        assert_eq!(body["forwarded_proto"], "http");
    }
    assert_eq!(fake.hits(), 2);
}

#[tokio::test]
async fn post_bodies_pass_through() {
    let fake = Fake::new("things");
    let app = gateway(&config(), vec![in_process(&THINGS, &fake, "things")]);

    let request = Request::post("/api/v1/things")
        .header("content-type", "text/plain")
        .body(Body::from("a new thing"))
        .unwrap();
    let answer = send(&app, request).await;

    assert_eq!(answer.status, 201);
    assert_eq!(answer.body, "a new thing");
}

#[tokio::test]
async fn the_request_id_is_the_same_end_to_end() {
    let fake = Fake::new("things");
    let app = gateway(&config(), vec![in_process(&THINGS, &fake, "things")]);

    let generated = get(&app, "/api/v1/things").await;
    let given = send(
        &app,
        Request::get("/api/things")
            .header("x-request-id", "req-42")
            .body(Body::empty())
            .unwrap(),
    )
    .await;

    let client_id = generated.header("x-request-id").to_owned();
    assert!(!client_id.is_empty());
    assert_eq!(generated.json()["request_id"], client_id.as_str());
    assert_eq!(given.header("x-request-id"), "req-42");
    assert_eq!(
        *fake.request_ids.lock().unwrap(),
        [client_id, "req-42".to_owned()]
    );
}

#[tokio::test]
async fn each_prefix_goes_to_its_own_service() {
    let things = Fake::new("things");
    let widgets = Fake::new("widgets");
    let app = gateway(
        &config(),
        vec![
            in_process(&THINGS, &things, "things"),
            in_process(&WIDGETS, &widgets, "widgets"),
        ],
    );

    assert_eq!(
        get(&app, "/api/v1/widgets").await.json()["service"],
        "widgets"
    );
    assert_eq!(
        get(&app, "/api/v1/things").await.json()["service"],
        "things"
    );
    assert_eq!((things.hits(), widgets.hits()), (1, 1));
}

#[tokio::test]
async fn the_service_answers_its_own_unknown_routes() {
    let fake = Fake::new("things");
    let app = gateway(&config(), vec![in_process(&THINGS, &fake, "things")]);

    // `gadgets` is routed to the service, which has no such route: its own 404 problem.
    get(&app, "/api/v1/gadgets/1")
        .await
        .assert_problem(404, "route_not_found");
    // A method the service does not serve: its 405 problem passes through.
    let delete = Request::delete("/api/v1/things")
        .body(Body::empty())
        .unwrap();
    send(&app, delete)
        .await
        .assert_problem(405, "method_not_allowed");
}

#[tokio::test]
async fn a_slow_in_process_service_times_out() {
    let fake = Fake::new("things");
    let mut cfg = config();
    cfg.gateway_request_timeout_ms = 200;
    let app = gateway(&cfg, vec![in_process(&THINGS, &fake, "things")]);

    get(&app, "/api/v1/things/slow")
        .await
        .assert_problem(504, "upstream_timeout");
}

/// A service owning `.well-known`, like identity with its JWKS.
static KEYS: mercato_kernel::ServiceInfo = mercato_kernel::ServiceInfo {
    name: "keys",
    port_var: "KEYS_SERVICE_PORT",
    default_port: 0,
    env_stem: "KEYS",
    prefixes: &[".well-known"],
};

#[tokio::test]
async fn well_known_documents_go_to_the_service_that_owns_them() {
    let keys = axum::Router::new().route(
        "/.well-known/jwks.json",
        axum::routing::get(|| async { axum::Json(serde_json::json!({"keys": []})) }),
    );
    let upstream = mercato_gateway::Upstream {
        info: &KEYS,
        target: mercato_gateway::Target::InProcess(keys),
        openapi: None,
    };
    let app = gateway(&config(), vec![upstream]);
    let answer = get(&app, "/.well-known/jwks.json").await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["keys"], serde_json::json!([]));
    // Identity owns `.well-known` on the platform; not running here, so unavailable.
    get(&gateway(&config(), Vec::new()), "/.well-known/jwks.json")
        .await
        .assert_problem(503, "service_unavailable");
}
