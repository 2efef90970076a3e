use axum::http::StatusCode;
use serde_json::json;

use crate::{
    PROBLEM, adjust, apps, assert_ledger_holds, levels, receive, reserve, stock, warehouse,
};

#[tokio::test]
async fn adjustments_move_stock_and_every_change_is_in_the_ledger() {
    for app in apps().await {
        let a = warehouse(&app, "A", 1).await;
        let b = warehouse(&app, "B", 2).await;
        receive(&app, "TEE-M", &a, 10).await;
        receive(&app, "TEE-M", &b, 5).await;
        let counted = adjust(&app, json!({"sku": "TEE-M", "warehouse_id": a, "set": 7, "reason": "adjustment", "reference": "COUNT-1"})).await;
        assert_eq!(
            counted.status,
            StatusCode::CREATED,
            "{}: {}",
            app.label,
            counted.body
        );
        assert_eq!(counted.body["movement"]["on_hand_delta"], -3);
        assert_eq!(counted.body["movement"]["on_hand_after"], 7);
        assert_eq!(counted.body["movement"]["actor"], "usr_staff");
        assert_eq!(counted.body["stock"]["on_hand"], 12);
        let returned = adjust(&app, json!({"sku": "TEE-M", "warehouse_id": b, "delta": 1, "reason": "return", "note": "RMA 7"})).await;
        assert_eq!(returned.status, StatusCode::CREATED);

        let view = stock(&app, "TEE-M").await;
        assert_eq!(
            (
                view["on_hand"].as_i64(),
                view["reserved"].as_i64(),
                view["available"].as_i64()
            ),
            (Some(13), Some(0), Some(13))
        );
        let per: Vec<(&str, i64)> = view["by_warehouse"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| (w["code"].as_str().unwrap(), w["on_hand"].as_i64().unwrap()))
            .collect();
        assert_eq!(per, [("A", 7), ("B", 6)]);

        let first = app.get("/api/v1/stock/TEE-M/movements?limit=2").await;
        assert_eq!(first.status, StatusCode::OK, "{}", first.body);
        let reasons: Vec<&str> = first.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["reason"].as_str().unwrap())
            .collect();
        assert_eq!(reasons, ["return", "adjustment"], "newest first");
        assert_eq!(first.body["has_more"], true);
        let cursor = first.body["next_cursor"].as_str().unwrap();
        let rest = app
            .get(&format!(
                "/api/v1/stock/TEE-M/movements?limit=10&starting_after={cursor}"
            ))
            .await;
        let reasons: Vec<&str> = rest.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["reason"].as_str().unwrap())
            .collect();
        assert_eq!(reasons, ["receipt", "receipt"]);
        assert_eq!(rest.body["has_more"], false);
        assert_ledger_holds(&app).await;
    }
}

#[tokio::test]
async fn stock_never_falls_below_what_is_reserved() {
    for app in apps().await {
        let a = warehouse(&app, "A", 1).await;
        receive(&app, "MUG", &a, 5).await;
        assert_eq!(
            reserve(&app, "ord_1", &[("MUG", 3)]).await.status,
            StatusCode::CREATED
        );
        let movements = app.count("movements").await;
        for body in [
            json!({"sku": "MUG", "warehouse_id": a, "delta": -3, "reason": "adjustment"}),
            json!({"sku": "MUG", "warehouse_id": a, "set": 2, "reason": "adjustment"}),
        ] {
            let reply = adjust(&app, body).await;
            assert_eq!(
                reply.status,
                StatusCode::CONFLICT,
                "{}: {}",
                app.label,
                reply.body
            );
            assert_eq!(reply.body["code"], "stock_reserved");
        }
        let ok = adjust(
            &app,
            json!({"sku": "MUG", "warehouse_id": a, "delta": -2, "reason": "adjustment"}),
        )
        .await;
        assert_eq!(ok.status, StatusCode::CREATED);
        assert_eq!(levels(&app, "MUG").await, (3, 3, 0));
        assert_eq!(app.count("movements").await, movements + 1);
        assert_ledger_holds(&app).await;
    }
}

#[tokio::test]
async fn bad_adjustments_are_refused_and_change_nothing() {
    for app in apps().await {
        let a = warehouse(&app, "A", 1).await;
        receive(&app, "MUG", &a, 5).await;
        let cases = [
            json!({"sku": "MUG", "warehouse_id": a, "delta": 0, "reason": "adjustment"}),
            json!({"sku": "MUG", "warehouse_id": a, "delta": 1, "set": 3, "reason": "adjustment"}),
            json!({"sku": "MUG", "warehouse_id": a, "reason": "adjustment"}),
            json!({"sku": "MUG", "warehouse_id": a, "delta": -1, "reason": "receipt"}),
            json!({"sku": "MUG", "warehouse_id": a, "delta": 1, "reason": "commit"}),
            json!({"sku": "MUG", "warehouse_id": a, "set": -1, "reason": "adjustment"}),
            json!({"sku": "bad sku!", "warehouse_id": a, "delta": 1, "reason": "receipt"}),
            json!({"sku": "MUG", "warehouse_id": "wh_nope", "delta": 1, "reason": "receipt"}),
            json!({"sku": "MUG", "warehouse_id": "wh_0192f0c4aaaaaaaaaaaaaaaaaaaaaaaa", "delta": 1, "reason": "receipt"}),
            json!({"sku": "NEVER-SEEN", "warehouse_id": a, "delta": -1, "reason": "adjustment"}),
            json!({"sku": "MUG", "warehouse_id": a, "delta": 2_000_000_000_i64, "reason": "receipt"}),
        ];
        for body in cases {
            let reply = adjust(&app, body.clone()).await;
            assert_eq!(
                reply.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{}: {body} → {}",
                app.label,
                reply.body
            );
            assert_eq!(reply.content_type, PROBLEM);
        }
        let not_json = app
            .request(
                "POST",
                "/api/v1/stock/adjustments",
                Some(&app.staff),
                Some("{".into()),
            )
            .await;
        assert_eq!(not_json.status, StatusCode::BAD_REQUEST);
        assert_eq!(levels(&app, "MUG").await, (5, 0, 5));
        assert_eq!(app.count("movements").await, 1);
        assert_eq!(app.count("skus").await, 1);
        let unknown = app.get("/api/v1/stock/NEVER-SEEN").await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn batch_reads_answer_known_skus() {
    for app in apps().await {
        let a = warehouse(&app, "A", 1).await;
        receive(&app, "A-1", &a, 1).await;
        receive(&app, "A/2", &a, 2).await;
        let reply = app.get("/api/v1/stock?skus=A-1,A%2F2,UNKNOWN,A-1").await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        let got: Vec<(&str, i64)> = reply
            .body
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["sku"].as_str().unwrap(), s["available"].as_i64().unwrap()))
            .collect();
        assert_eq!(got, [("A-1", 1), ("A/2", 2)]);
        let slash = app.get("/api/v1/stock/A%2F2").await;
        assert_eq!(
            slash.status,
            StatusCode::OK,
            "a SKU with / is read percent-encoded"
        );
        let many = (0..201)
            .map(|i| format!("S{i}"))
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(
            app.get(&format!("/api/v1/stock?skus={many}")).await.status,
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(
            app.get("/api/v1/stock?skus=").await.status,
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(
            app.get_public("/api/v1/stock/A-1").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
}

#[tokio::test]
async fn low_stock_alerts_fire_once_per_crossing() {
    for app in apps().await {
        let a = warehouse(&app, "A", 1).await;
        receive(&app, "LAMP", &a, 10).await;
        let set = app
            .put_json("/api/v1/stock/LAMP/threshold", json!({"threshold": 4}))
            .await;
        assert_eq!(set.status, StatusCode::OK, "{}", set.body);
        assert_eq!(set.body["low_stock_threshold"], 4);
        assert!(app.outbox("inventory.stock.low").await.is_empty());

        let first = reserve(&app, "ord_1", &[("LAMP", 6)]).await; // available 4: crosses
        let _second = reserve(&app, "ord_2", &[("LAMP", 1)]).await; // 3: still low
        assert_eq!(
            app.outbox("inventory.stock.low").await.len(),
            1,
            "{}",
            app.label
        );
        let low = app.get("/api/v1/stock/low").await;
        assert_eq!(low.body[0]["sku"], "LAMP");
        assert_eq!(low.body[0]["available"], 3);
        assert_eq!(low.body[0]["threshold"], 4);

        let id = first.body["id"].as_str().unwrap();
        app.post_json(&format!("/api/v1/reservations/{id}/release"), json!({}))
            .await; // 9: re-armed
        assert!(
            app.get("/api/v1/stock/low")
                .await
                .body
                .as_array()
                .unwrap()
                .is_empty()
        );
        reserve(&app, "ord_3", &[("LAMP", 5)]).await; // 4: crosses again
        let alerts = app.outbox("inventory.stock.low").await;
        assert_eq!(alerts.len(), 2, "{}", app.label);
        assert_eq!(
            alerts[1]["data"],
            json!({"sku": "LAMP", "available": 4, "threshold": 4})
        );

        let updates = app.outbox("inventory.stock.updated").await;
        // receipt, threshold, three reservations and one release.
        assert_eq!(updates.len(), 6, "{}", app.label);
        assert_eq!(
            updates[5]["data"],
            json!({"sku": "LAMP", "available": 4, "on_hand": 10, "reserved": 6})
        );
        assert_eq!(updates[5]["subject"], "LAMP");

        let bad = app
            .put_json("/api/v1/stock/LAMP/threshold", json!({"threshold": -1}))
            .await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
        let unknown = app
            .put_json("/api/v1/stock/NOPE/threshold", json!({"threshold": 1}))
            .await;
        assert_eq!(unknown.status, StatusCode::UNPROCESSABLE_ENTITY);
    }
}

#[tokio::test]
async fn verify_finds_stock_that_disagrees_with_its_ledger() {
    for app in apps().await {
        let a = warehouse(&app, "A", 1).await;
        receive(&app, "MUG", &a, 5).await;
        assert_ledger_holds(&app).await;
        sqlx::query("UPDATE stock_levels SET on_hand = 6 WHERE sku = 'MUG'")
            .execute(app.db.pool())
            .await
            .unwrap();
        let report = mercato_inventory::verify::verify(&app.db).await.unwrap();
        assert_eq!(report.levels, 1);
        assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
        assert!(report.problems[0].contains("on_hand 6 but its movements sum to 5"));
    }
}
