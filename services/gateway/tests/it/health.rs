//! `GET /health` aggregates every upstream's `/ready`.

use std::sync::atomic::Ordering;

use crate::support::{
    Fake, THINGS, WIDGETS, config, gateway, get, in_process, refusing_url, remote, serve,
};

#[tokio::test]
async fn all_up_is_ok_with_every_service_listed() {
    let (things, widgets) = (Fake::new("things"), Fake::new("widgets"));
    let widgets_url = serve(widgets.router("widgets")).await;
    let app = gateway(
        &config(),
        vec![
            in_process(&THINGS, &things, "things"),
            remote(&WIDGETS, vec![widgets_url]),
        ],
    );

    let answer = get(&app, "/health").await;

    assert_eq!(answer.status, 200);
    let body = answer.json();
    assert_eq!(body["status"], "ok");
    for name in ["things", "widgets"] {
        assert_eq!(body["services"][name]["status"], "up", "{body}");
        assert!(body["services"][name]["latency_ms"].is_u64(), "{body}");
        assert_eq!(
            body["services"][name]["detail"]["status"], "ready",
            "{body}"
        );
    }
}

#[tokio::test]
async fn a_not_ready_service_degrades_health() {
    let (things, widgets) = (Fake::new("things"), Fake::new("widgets"));
    widgets.ready_status.store(503, Ordering::SeqCst);
    let app = gateway(
        &config(),
        vec![
            in_process(&THINGS, &things, "things"),
            in_process(&WIDGETS, &widgets, "widgets"),
        ],
    );

    let answer = get(&app, "/health").await;

    assert_eq!(answer.status, 503);
    let body = answer.json();
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["services"]["things"]["status"], "up");
    assert_eq!(body["services"]["widgets"]["status"], "down");
    assert_eq!(body["services"]["widgets"]["detail"]["status"], "not_ready");
}

#[tokio::test]
async fn an_unreachable_service_degrades_health() {
    let app = gateway(
        &config(),
        vec![remote(&WIDGETS, vec![refusing_url().await])],
    );

    let answer = get(&app, "/health").await;

    assert_eq!(answer.status, 503);
    let widgets = &answer.json()["services"]["widgets"];
    assert_eq!(widgets["status"], "down");
    assert!(
        widgets["detail"].as_str().unwrap().contains("connect"),
        "{widgets}"
    );
}

#[tokio::test]
async fn each_replica_is_checked() {
    let fake = Fake::new("widgets");
    let urls = vec![serve(fake.router("widgets")).await, refusing_url().await];
    let app = gateway(&config(), vec![remote(&WIDGETS, urls.clone())]);

    let answer = get(&app, "/health").await;

    assert_eq!(answer.status, 503);
    let detail = &answer.json()["services"]["widgets"]["detail"];
    assert_eq!(detail[&urls[0]]["status"], "up", "{detail}");
    assert_eq!(detail[&urls[1]]["status"], "down", "{detail}");
}

#[tokio::test]
async fn no_upstreams_is_ok() {
    let app = gateway(&config(), Vec::new());

    let answer = get(&app, "/health").await;

    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.json(),
        serde_json::json!({ "status": "ok", "services": {} })
    );
    let ready = get(&app, "/ready").await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["status"], "ready");
}
