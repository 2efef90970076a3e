use axum::http::StatusCode;
use mercato_kernel::Config;
use serde_json::{Value, json};

use crate::{PROBLEM, apps, apps_with, assert_ledger_holds, levels, receive, reserve, warehouse};

fn allocations(body: &Value) -> Vec<(String, String, i64)> {
    body["allocations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["sku"].as_str().unwrap().to_owned(),
                a["warehouse_id"].as_str().unwrap().to_owned(),
                a["quantity"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn lines_go_to_the_first_warehouse_that_ships_them_whole_else_split_by_priority() {
    for app in apps().await {
        let first = warehouse(&app, "FIRST", 1).await;
        let second = warehouse(&app, "SECOND", 2).await;
        receive(&app, "A", &first, 2).await;
        receive(&app, "A", &second, 5).await;
        receive(&app, "B", &first, 4).await;

        let whole = reserve(&app, "ord_1", &[("B", 1), ("A", 3)]).await;
        assert_eq!(
            whole.status,
            StatusCode::CREATED,
            "{}: {}",
            app.label,
            whole.body
        );
        assert_eq!(whole.body["status"], "active");
        assert_eq!(
            allocations(&whole.body),
            [
                ("B".into(), first.clone(), 1),
                ("A".into(), second.clone(), 3)
            ],
            "{}: request order, A whole from SECOND",
            app.label
        );
        let split = reserve(&app, "ord_2", &[("A", 4)]).await;
        assert_eq!(
            allocations(&split.body),
            [
                ("A".into(), first.clone(), 2),
                ("A".into(), second.clone(), 2)
            ],
            "{}",
            app.label
        );
        assert_eq!(levels(&app, "A").await, (7, 7, 0));

        // An inactive warehouse gives nothing new.
        receive(&app, "C", &first, 3).await;
        app.patch(
            &format!("/api/v1/warehouses/{first}"),
            json!({"active": false}),
        )
        .await;
        let short = reserve(&app, "ord_3", &[("C", 1)]).await;
        assert_eq!(short.status, StatusCode::CONFLICT);
        // Catalog hears that C can no longer be sold.
        let updates = app.outbox("inventory.stock.updated").await;
        let last_c = updates.iter().rev().find(|e| e["subject"] == "C").unwrap();
        assert_eq!(last_c["data"]["available"], 0, "{}", app.label);
        assert_eq!(last_c["data"]["on_hand"], 3);
        assert_ledger_holds(&app).await;
    }
}

#[tokio::test]
async fn a_short_line_reserves_nothing_and_names_every_short_sku() {
    for app in apps().await {
        let a = warehouse(&app, "A", 1).await;
        receive(&app, "X", &a, 5).await;
        receive(&app, "Y", &a, 1).await;
        receive(&app, "Z", &a, 1).await;
        let reply = reserve(&app, "ord_1", &[("X", 2), ("Y", 2), ("Z", 3)]).await;
        assert_eq!(
            reply.status,
            StatusCode::CONFLICT,
            "{}: {}",
            app.label,
            reply.body
        );
        assert_eq!(reply.content_type, PROBLEM);
        assert_eq!(reply.body["code"], "insufficient_stock");
        assert_eq!(
            reply.body["shortages"],
            json!([{"sku": "Y", "requested": 2, "available": 1}, {"sku": "Z", "requested": 3, "available": 1}])
        );
        assert_eq!(
            levels(&app, "X").await,
            (5, 0, 5),
            "{}: X untouched",
            app.label
        );
        assert_eq!(app.count("reservations").await, 0);
        assert_eq!(app.count("movements").await, 3);
    }
}

#[tokio::test]
async fn commit_takes_stock_out_and_release_gives_it_back_each_once() {
    for app in apps().await {
        let a = warehouse(&app, "A", 1).await;
        receive(&app, "X", &a, 10).await;
        let r1 = reserve(&app, "ord_1", &[("X", 3)]).await.body["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let r2 = reserve(&app, "ord_2", &[("X", 2)]).await.body["id"]
            .as_str()
            .unwrap()
            .to_owned();

        let committed = app
            .post_json(&format!("/api/v1/reservations/{r1}/commit"), json!({}))
            .await;
        assert_eq!(
            committed.status,
            StatusCode::OK,
            "{}: {}",
            app.label,
            committed.body
        );
        assert_eq!(committed.body["status"], "committed");
        let again = app
            .post_json(&format!("/api/v1/reservations/{r1}/commit"), json!({}))
            .await;
        assert_eq!(
            again.status,
            StatusCode::OK,
            "committing twice answers the same"
        );
        assert_eq!(levels(&app, "X").await, (7, 2, 5));

        let released = app
            .post_json(&format!("/api/v1/reservations/{r2}/release"), json!({}))
            .await;
        assert_eq!(released.body["status"], "released");
        assert_eq!(
            app.post_json(&format!("/api/v1/reservations/{r2}/release"), json!({}))
                .await
                .status,
            StatusCode::OK
        );
        assert_eq!(levels(&app, "X").await, (7, 0, 7));

        let wrong = app
            .post_json(&format!("/api/v1/reservations/{r2}/commit"), json!({}))
            .await;
        assert_eq!(wrong.status, StatusCode::CONFLICT);
        assert_eq!(wrong.body["code"], "reservation_released");
        let wrong = app
            .post_json(&format!("/api/v1/reservations/{r1}/release"), json!({}))
            .await;
        assert_eq!(wrong.body["code"], "reservation_committed");
        assert_eq!(levels(&app, "X").await, (7, 0, 7));

        let got = app.get(&format!("/api/v1/reservations/{r1}")).await;
        assert_eq!(got.body["reference"], "ord_1");
        let by_reference = app.get("/api/v1/reservations?reference=ord_2").await;
        assert_eq!(by_reference.body[0]["id"], r2.as_str());
        let missing = app
            .post_json(
                "/api/v1/reservations/res_0192f0c4aaaaaaaaaaaaaaaaaaaaaaaa/commit",
                json!({}),
            )
            .await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
        let kinds: Vec<String> = app.get("/api/v1/stock/X/movements").await.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["reason"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            kinds,
            ["release", "commit", "reservation", "reservation", "receipt"]
        );
        assert_ledger_holds(&app).await;
    }
}

#[tokio::test]
async fn a_retried_reservation_with_the_same_key_holds_stock_once() {
    for app in apps().await {
        let a = warehouse(&app, "A", 1).await;
        receive(&app, "X", &a, 10).await;
        let body =
            json!({"reference": "ord_1", "lines": [{"sku": "X", "quantity": 4}]}).to_string();
        let headers = [("idempotency-key", "checkout-ord_1-reserve")];
        let first = app
            .request_with(
                "POST",
                "/api/v1/reservations",
                Some(&app.staff),
                Some(body.clone()),
                &headers,
            )
            .await;
        let second = app
            .request_with(
                "POST",
                "/api/v1/reservations",
                Some(&app.staff),
                Some(body),
                &headers,
            )
            .await;
        assert_eq!(first.status, StatusCode::CREATED);
        assert_eq!(second.status, StatusCode::CREATED);
        assert_eq!(first.body["id"], second.body["id"]);
        assert_eq!(second.header("idempotent-replayed"), Some("true"));
        assert_eq!(levels(&app, "X").await, (10, 4, 6), "{}", app.label);
        assert_eq!(app.count("reservations").await, 1);
    }
}

#[tokio::test]
async fn bad_reservations_are_refused_and_change_nothing() {
    for app in apps().await {
        let a = warehouse(&app, "A", 1).await;
        receive(&app, "X", &a, 10).await;
        let many: Vec<Value> = (0..10_001)
            .map(|i| json!({"sku": format!("S{i}"), "quantity": 1}))
            .collect();
        let cases = [
            (
                json!({"reference": "o", "lines": [{"sku": "NOPE", "quantity": 1}]}),
                "sku",
            ),
            (
                json!({"reference": "o", "lines": [{"sku": "X", "quantity": 0}]}),
                "lines[0].quantity",
            ),
            (
                json!({"reference": "o", "lines": [{"sku": "X", "quantity": -2}]}),
                "lines[0].quantity",
            ),
            (json!({"reference": "o", "lines": many}), "lines"),
            (json!({"reference": "o", "lines": []}), "lines"),
            (
                json!({"reference": "o", "lines": [{"sku": "X", "quantity": 1}, {"sku": "X", "quantity": 2}]}),
                "lines[1].sku",
            ),
            (
                json!({"reference": "", "lines": [{"sku": "X", "quantity": 1}]}),
                "reference",
            ),
            (
                json!({"reference": "o", "lines": [{"sku": "X", "quantity": 1}], "ttl_seconds": 0}),
                "ttl_seconds",
            ),
            (
                json!({"reference": "o", "lines": [{"sku": "bad sku", "quantity": 1}]}),
                "lines[0].sku",
            ),
        ];
        for (body, field) in cases {
            let reply = app.post_json("/api/v1/reservations", body).await;
            assert_eq!(
                reply.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{}: {field}: {}",
                app.label,
                reply.body
            );
            assert_eq!(reply.content_type, PROBLEM);
            assert_eq!(reply.body["errors"][0]["field"], field, "{}", reply.body);
        }
        let wrong_type = app
            .post_json(
                "/api/v1/reservations",
                json!({"reference": "o", "lines": [{"sku": "X", "quantity": "1"}]}),
            )
            .await;
        assert_eq!(wrong_type.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(levels(&app, "X").await, (10, 0, 10));
        assert_eq!(app.count("reservations").await, 0);
        assert_eq!(app.count("movements").await, 1);
        let customer = app.keys.token_for("usr_c", &["customer"], None);
        let forbidden = app
            .request(
                "POST",
                "/api/v1/reservations",
                Some(&customer),
                Some(json!({"reference": "o", "lines": [{"sku": "X", "quantity": 1}]}).to_string()),
            )
            .await;
        assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
    }
}

#[tokio::test]
async fn reservations_not_committed_in_time_are_released_by_the_sweeper() {
    let mut config = Config::default();
    config.inventory_sweep_interval_ms = 50;
    for app in apps_with(config).await {
        let a = warehouse(&app, "A", 1).await;
        receive(&app, "X", &a, 10).await;
        let short = app.post_json("/api/v1/reservations", json!({"reference": "ord_1", "ttl_seconds": 1, "lines": [{"sku": "X", "quantity": 4}]})).await;
        let long = reserve(&app, "ord_2", &[("X", 3)]).await;
        assert_eq!(levels(&app, "X").await, (10, 7, 3));
        let id = short.body["id"].as_str().unwrap().to_owned();
        app.eventually("the short reservation expires", || async {
            app.get(&format!("/api/v1/reservations/{id}")).await.body["status"] == "expired"
        })
        .await;
        assert_eq!(levels(&app, "X").await, (10, 3, 7), "{}", app.label);
        let late = app
            .post_json(&format!("/api/v1/reservations/{id}/commit"), json!({}))
            .await;
        assert_eq!(late.status, StatusCode::CONFLICT);
        assert_eq!(late.body["code"], "reservation_expired");
        let released = app
            .post_json(&format!("/api/v1/reservations/{id}/release"), json!({}))
            .await;
        assert_eq!(
            released.status,
            StatusCode::OK,
            "releasing an expired hold is a no-op"
        );
        let long_id = long.body["id"].as_str().unwrap();
        assert_eq!(
            app.get(&format!("/api/v1/reservations/{long_id}"))
                .await
                .body["status"],
            "active"
        );
        let notes: Vec<Value> = app.get("/api/v1/stock/X/movements").await.body["data"]
            .as_array()
            .unwrap()
            .clone();
        assert_eq!(notes[0]["reason"], "release");
        assert_eq!(notes[0]["note"], "expired");
        assert_eq!(notes[0]["actor"], "system");
        assert_ledger_holds(&app).await;
    }
}
