//! The oversell test of the issue: 1,000 concurrent one-unit reservations for 100 units.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::json;
use tower::ServiceExt;

use crate::{apps, assert_ledger_holds, levels, receive, warehouse};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_reservations_of_a_hundred_units_never_oversell() {
    for app in apps().await {
        let a = warehouse(&app, "A", 1).await;
        let b = warehouse(&app, "B", 2).await;
        receive(&app, "HOT", &a, 60).await;
        receive(&app, "HOT", &b, 40).await;

        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..1000 {
            let router = app.service.router.clone();
            let body =
                json!({"reference": format!("ord_{i}"), "lines": [{"sku": "HOT", "quantity": 1}]});
            let request = Request::post("/api/v1/reservations")
                .header("authorization", format!("Bearer {}", app.staff))
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))
                .unwrap();
            tasks.spawn(async move {
                let response = router.oneshot(request).await.unwrap();
                let status = response.status();
                let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                    .await
                    .unwrap();
                let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                (status, body)
            });
        }
        let mut held = Vec::new();
        let mut refused = 0;
        while let Some(joined) = tasks.join_next().await {
            let (status, body) = joined.unwrap();
            match status {
                StatusCode::CREATED => held.push(body["id"].as_str().unwrap().to_owned()),
                StatusCode::CONFLICT => {
                    assert_eq!(body["code"], "insufficient_stock");
                    refused += 1;
                }
                other => panic!("{}: unexpected {other}: {body}", app.label),
            }
        }
        assert_eq!((held.len(), refused), (100, 900), "{}", app.label);
        assert_eq!(
            levels(&app, "HOT").await,
            (100, 100, 0),
            "{}: on_hand, reserved, available",
            app.label
        );

        let mut settle = tokio::task::JoinSet::new();
        for (i, id) in held.into_iter().enumerate() {
            let router = app.service.router.clone();
            let action = if i % 2 == 0 { "release" } else { "commit" };
            let request = Request::post(format!("/api/v1/reservations/{id}/{action}"))
                .header("authorization", format!("Bearer {}", app.staff))
                .body(Body::empty())
                .unwrap();
            settle.spawn(async move { router.oneshot(request).await.unwrap().status() });
        }
        while let Some(status) = settle.join_next().await {
            assert_eq!(status.unwrap(), StatusCode::OK, "{}", app.label);
        }
        let (on_hand, reserved, available) = levels(&app, "HOT").await;
        assert_eq!((on_hand, reserved, available), (50, 0, 50), "{}", app.label);
        assert_ledger_holds(&app).await;
    }
}
