//! Security headers on every answer, and CORS for the configured origins.

use axum::body::Body;
use axum::http::Request;

use crate::support::{Fake, THINGS, config, gateway, get, in_process, send};

fn preflight(origin: &str) -> Request<Body> {
    Request::options("/api/v1/things")
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, idempotency-key",
        )
        .body(Body::empty())
        .expect("a valid request")
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let fake = Fake::new("things");
    let app = gateway(&config(), vec![in_process(&THINGS, &fake, "things")]);
    for path in ["/health", "/api/v1/things"] {
        let answer = get(&app, path).await;
        assert_eq!(answer.header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(answer.header("x-frame-options"), "DENY");
        assert_eq!(
            answer.header("content-security-policy"),
            "frame-ancestors 'none'"
        );
        assert_eq!(
            answer.header("referrer-policy"),
            "strict-origin-when-cross-origin"
        );
        assert!(
            answer
                .header("strict-transport-security")
                .starts_with("max-age=")
        );
    }
}

#[tokio::test]
async fn browsers_of_the_configured_origins_may_call_the_api_and_others_not() {
    let fake = Fake::new("things");
    let mut config = config();
    config.gateway_cors_origins = "https://shop.example.com, https://admin.example.com".into();
    let app = gateway(&config, vec![in_process(&THINGS, &fake, "things")]);

    let allowed = send(&app, preflight("https://shop.example.com")).await;
    assert_eq!(allowed.status, 200);
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        "https://shop.example.com"
    );
    assert!(
        allowed
            .header("access-control-allow-headers")
            .contains("idempotency-key")
    );
    let refused = send(&app, preflight("https://evil.example.net")).await;
    assert_eq!(refused.header("access-control-allow-origin"), "");

    let mut request = Request::get("/api/v1/things")
        .header("origin", "https://admin.example.com")
        .body(Body::empty())
        .expect("a valid request");
    request
        .headers_mut()
        .insert("x-request-id", "cors-1".parse().expect("a header value"));
    let simple = send(&app, request).await;
    assert_eq!(
        simple.header("access-control-allow-origin"),
        "https://admin.example.com"
    );
    assert!(
        simple
            .header("access-control-expose-headers")
            .contains("ratelimit-remaining")
    );

    let no_cors = gateway(
        &crate::support::config(),
        vec![in_process(&THINGS, &fake, "things")],
    );
    let answer = send(&no_cors, preflight("https://shop.example.com")).await;
    assert_eq!(answer.header("access-control-allow-origin"), "");

    let mut bad = crate::support::config();
    bad.gateway_cors_origins = "shop.example.com/".into();
    assert!(mercato_gateway::validate(&bad).is_err());
}

#[tokio::test]
async fn text_answers_are_compressed_for_clients_that_accept_it() {
    let fake = Fake::new("things");
    let app = gateway(&config(), vec![in_process(&THINGS, &fake, "things")]);
    let plain = get(&app, "/openapi.json").await;
    assert_eq!(plain.header("content-encoding"), "");
    for encoding in ["gzip", "br"] {
        let request = Request::get("/openapi.json")
            .header("accept-encoding", encoding)
            .body(Body::empty())
            .expect("a valid request");
        let answer = send(&app, request).await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.header("content-encoding"), encoding);
        assert!(
            answer.body.len() < plain.body.len(),
            "{encoding} is smaller"
        );
    }
}
