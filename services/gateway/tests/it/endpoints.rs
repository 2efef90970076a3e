//! The gateway's own endpoints: index, 404s, metrics, OpenAPI, docs, assets.

use crate::support::{Fake, THINGS, WIDGETS, config, gateway, get, in_process, remote, serve};

#[tokio::test]
async fn unknown_paths_are_not_found_problems() {
    let fake = Fake::new("things");
    let app = gateway(&config(), vec![in_process(&THINGS, &fake, "things")]);

    get(&app, "/nope")
        .await
        .assert_problem(404, "route_not_found");
    get(&app, "/api/v1/unknown-thing")
        .await
        .assert_problem(404, "route_not_found");
    get(&app, "/api/unknown-thing/1")
        .await
        .assert_problem(404, "route_not_found");
    get(&app, "/api/v2/things")
        .await
        .assert_problem(404, "route_not_found");
    get(&app, "/api")
        .await
        .assert_problem(404, "route_not_found");
    assert_eq!(fake.hits(), 0);
}

#[tokio::test]
async fn a_known_service_that_is_not_running_is_unavailable() {
    let app = gateway(&config(), Vec::new());

    get(&app, "/api/v1/orders")
        .await
        .assert_problem(503, "service_unavailable");
}

#[tokio::test]
async fn the_index_links_the_gateway_endpoints() {
    let app = gateway(&config(), Vec::new());

    let body = get(&app, "/").await.json();

    assert_eq!(body["name"], "Mercato");
    assert_eq!(body["links"]["docs"], "/docs");
    assert_eq!(body["links"]["openapi"], "/openapi.json");
    assert_eq!(body["links"]["health"], "/health");
    assert_eq!(body["links"]["metrics"], "/metrics");
}

#[tokio::test]
async fn prometheus_text_counts_requests() {
    mercato_kernel::telemetry::prometheus().expect("no other recorder in this process");
    let fake = Fake::new("things");
    let app = gateway(&config(), vec![in_process(&THINGS, &fake, "things")]);
    get(&app, "/api/v1/things").await;
    get(&app, "/nope").await;

    let answer = get(&app, "/metrics/prometheus").await;

    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-type"), "text/plain; version=0.0.4");
    let text = String::from_utf8(answer.body.to_vec()).unwrap();
    assert!(text.contains("http_requests_total"), "{text}");
    assert!(text.contains("gateway_upstream_requests_total"), "{text}");
}

#[tokio::test]
async fn json_metrics_count_requests_per_upstream() {
    let fake = Fake::new("things");
    let app = gateway(&config(), vec![in_process(&THINGS, &fake, "things")]);
    for _ in 0..3 {
        get(&app, "/api/things").await;
    }
    get(&app, "/nope").await;

    let body = get(&app, "/metrics").await.json();

    assert_eq!(body["requests_total"], 4, "{body}");
    assert_eq!(body["status"]["2xx"], 3);
    assert_eq!(body["status"]["4xx"], 1);
    assert!(body["uptime_seconds"].is_u64());
    let things = &body["upstreams"]["things"];
    assert_eq!(things["requests"], 3, "{body}");
    assert_eq!(things["errors"], 0);
    assert!(
        things["avg_latency_ms"].as_f64().unwrap() <= things["max_latency_ms"].as_f64().unwrap()
    );
    let p = |name: &str| things[name].as_f64().unwrap();
    assert!(p("p50_latency_ms") > 0.0, "{body}");
    assert!(
        p("p50_latency_ms") <= p("p95_latency_ms") && p("p95_latency_ms") <= p("p99_latency_ms")
    );
    // Within a bucket (~9 %) of the slowest request.
    assert!(
        p("p99_latency_ms") <= p("max_latency_ms") * 1.1 + 0.01,
        "{body}"
    );
    assert!(
        (p("rps_1m") - 0.05).abs() < 0.001,
        "3 requests in the last minute: {body}"
    );
}

#[tokio::test]
async fn openapi_merges_every_upstream_document() {
    let (things, widgets) = (Fake::new("things"), Fake::new("widgets"));
    let widgets_url = serve(widgets.router("widgets")).await;
    // The remote one has no document given: it is fetched from its `/openapi.json`.
    let app = gateway(
        &config(),
        vec![
            in_process(&WIDGETS, &things, "things"),
            remote(&THINGS, vec![widgets_url]),
        ],
    );

    let answer = get(&app, "/openapi.json").await;

    assert_eq!(answer.status, 200);
    let doc = answer.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    assert_eq!(doc["info"]["title"], "Mercato API");
    assert_eq!(
        doc["paths"]["/api/v1/things"]["get"]["operationId"],
        "list_things"
    );
    assert!(doc["paths"]["/health"]["get"].is_object());
    assert!(doc["paths"]["/metrics"]["get"].is_object());
    assert!(doc["paths"]["/metrics/prometheus"]["get"].is_object());
}

#[tokio::test]
async fn openapi_is_valid_without_upstreams() {
    let app = gateway(&config(), Vec::new());

    let doc = get(&app, "/openapi.json").await.json();

    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert!(doc["info"]["version"].is_string());
    assert!(doc["paths"].is_object());
}

#[tokio::test]
async fn docs_serve_swagger_ui() {
    let app = gateway(&config(), Vec::new());

    let first = get(&app, "/docs").await;
    let page = if first.status.is_redirection() {
        get(&app, first.header("location")).await
    } else {
        first
    };

    assert_eq!(page.status, 200);
    assert!(page.header("content-type").starts_with("text/html"));
    assert!(String::from_utf8_lossy(&page.body).contains("swagger"));
}

#[tokio::test]
async fn assets_redirect_to_the_cdn_when_configured() {
    let mut cdn = config();
    cdn.cdn_base_url = Some("https://cdn.example.com/".to_owned());
    let with_cdn = gateway(&cdn, Vec::new());
    let without = gateway(&config(), Vec::new());

    let answer = get(&with_cdn, "/assets/css/site.css?v=3").await;

    assert_eq!(answer.status, 302);
    assert_eq!(
        answer.header("location"),
        "https://cdn.example.com/assets/css/site.css?v=3"
    );
    get(&without, "/assets/css/site.css")
        .await
        .assert_problem(404, "route_not_found");
}
