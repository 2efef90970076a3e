use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use futures::StreamExt;
use mercato_bus::Event;
use mercato_contracts::subjects::{ORDER_CANCELLED, ORDER_PAID, PRODUCT_CREATED};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::{apps, levels, receive, reserve, warehouse};

#[tokio::test]
async fn order_events_settle_what_orders_left_active_once() {
    for app in apps().await {
        let a = warehouse(&app, "A", 1).await;
        receive(&app, "X", &a, 10).await;
        let paid = reserve(&app, "ord_paid", &[("X", 3)]).await.body["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let cancelled = reserve(&app, "ord_cancelled", &[("X", 2)]).await.body["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let settled_already = reserve(&app, "ord_done", &[("X", 1)]).await.body["id"]
            .as_str()
            .unwrap()
            .to_owned();
        app.post_json(
            &format!("/api/v1/reservations/{settled_already}/commit"),
            json!({}),
        )
        .await;

        for (kind, order) in [
            (ORDER_PAID, "ord_paid"),
            (ORDER_CANCELLED, "ord_cancelled"),
            (ORDER_CANCELLED, "ord_done"),
        ] {
            let event = Event::new(
                "mercato/orders",
                kind,
                json!({"id": order, "number": "1001"}),
            )
            .unwrap();
            app.bus.publish(&event).await.unwrap();
            // A redelivery (same event id) has no second effect.
            app.bus.publish(&event).await.unwrap();
        }
        for (id, status) in [
            (&paid, "committed"),
            (&cancelled, "released"),
            (&settled_already, "committed"),
        ] {
            app.eventually(&format!("{id} {status}"), || async {
                app.get(&format!("/api/v1/reservations/{id}")).await.body["status"] == status
            })
            .await;
        }
        // Settled by the events: 10 − 3 − 1 committed, nothing held.
        app.eventually("stock settles", || async {
            levels(&app, "X").await == (6, 0, 6)
        })
        .await;
        crate::assert_ledger_holds(&app).await;
    }
}

#[tokio::test]
async fn skus_catalog_announces_are_known_with_no_stock() {
    for app in apps().await {
        warehouse(&app, "A", 1).await;
        let product = json!({"id": "prod_1", "title": "Tee", "variants": [{"sku": "TEE-S"}, {"sku": "TEE-L"}]});
        app.bus
            .publish(&Event::new("mercato/catalog", PRODUCT_CREATED, product).unwrap())
            .await
            .unwrap();
        app.eventually("TEE-L is known", || async {
            app.get("/api/v1/stock/TEE-L").await.status == StatusCode::OK
        })
        .await;
        let reply = reserve(&app, "ord_1", &[("TEE-S", 1)]).await;
        assert_eq!(
            reply.status,
            StatusCode::CONFLICT,
            "{}: {}",
            app.label,
            reply.body
        );
        assert_eq!(reply.body["shortages"][0]["available"], 0);
    }
}

/// Reads SSE `data:` payloads of `stock` events from a response body.
async fn next_tick(
    body: &mut (impl futures::Stream<Item = Result<axum::body::Bytes, axum::Error>> + Unpin),
    buffer: &mut String,
) -> Value {
    loop {
        if let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            if frame.contains("event: stock") {
                let data = frame
                    .lines()
                    .find_map(|l| l.strip_prefix("data: "))
                    .unwrap();
                return serde_json::from_str(data).unwrap();
            }
            continue;
        }
        let chunk = tokio::time::timeout(Duration::from_secs(20), body.next())
            .await
            .expect("a stock event within 20 s")
            .expect("the stream stays open")
            .unwrap();
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

#[tokio::test]
async fn the_stock_stream_sends_the_current_level_then_every_change() {
    for app in apps().await {
        let a = warehouse(&app, "A", 1).await;
        receive(&app, "X", &a, 10).await;
        let request = Request::get("/api/v1/stock/stream?skus=X,NEVER")
            .body(Body::empty())
            .unwrap();
        let response = app.service.router.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        let mut body = response.into_body().into_data_stream();
        let mut buffer = String::new();
        let mut first = [
            next_tick(&mut body, &mut buffer).await,
            next_tick(&mut body, &mut buffer).await,
        ];
        first.sort_by_key(|t| t["sku"].as_str().unwrap().to_owned());
        assert_eq!(
            first[0],
            json!({"sku": "NEVER", "available": 0, "in_stock": false})
        );
        assert_eq!(
            first[1],
            json!({"sku": "X", "available": 10, "in_stock": true})
        );

        receive(&app, "OTHER", &a, 5).await; // not subscribed: never sent
        reserve(&app, "ord_1", &[("X", 4)]).await;
        assert_eq!(
            next_tick(&mut body, &mut buffer).await,
            json!({"sku": "X", "available": 6, "in_stock": true}),
            "{}",
            app.label
        );
        reserve(&app, "ord_2", &[("X", 6)]).await;
        assert_eq!(
            next_tick(&mut body, &mut buffer).await,
            json!({"sku": "X", "available": 0, "in_stock": false}),
            "{}",
            app.label
        );

        let bad = app.get_public("/api/v1/stock/stream?skus=bad%20sku").await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    }
}
