use axum::http::StatusCode;
use serde_json::json;

use crate::{PROBLEM, apps, warehouse};

#[tokio::test]
async fn staff_create_list_and_change_warehouses() {
    for app in apps().await {
        let reply = app
            .post_json(
                "/api/v1/warehouses",
                json!({"code": "ber-1", "name": "Berlin", "country": "de", "priority": 2,
                       "address": {"line1": "Hauptstr. 1", "city": "Berlin", "postal_code": "10115"}}),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "{}: {}",
            app.label,
            reply.body
        );
        let ber = reply.body["id"].as_str().unwrap().to_owned();
        assert_eq!(reply.body["code"], "BER-1");
        assert_eq!(reply.body["country"], "DE");
        assert_eq!(reply.body["active"], true);
        assert_eq!(reply.body["address"]["city"], "Berlin");
        let ham = warehouse(&app, "HAM", 1).await;

        let list = app.get("/api/v1/warehouses").await;
        let codes: Vec<&str> = list
            .body
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["code"].as_str().unwrap())
            .collect();
        assert_eq!(codes, ["HAM", "BER-1"], "{}: allocation order", app.label);

        let changed = app
            .patch(
                &format!("/api/v1/warehouses/{ber}"),
                json!({"active": false, "priority": 0}),
            )
            .await;
        assert_eq!(
            changed.status,
            StatusCode::OK,
            "{}: {}",
            app.label,
            changed.body
        );
        assert_eq!(changed.body["active"], false);
        assert_eq!(changed.body["name"], "Berlin", "untouched fields stay");

        let got = app.get(&format!("/api/v1/warehouses/{ham}")).await;
        assert_eq!(got.body["code"], "HAM");
    }
}

#[tokio::test]
async fn bad_warehouses_are_refused_and_change_nothing() {
    for app in apps().await {
        let ham = warehouse(&app, "HAM", 1).await;
        for (body, field) in [
            (json!({"name": "No code", "country": "DE"}), "code"),
            (
                json!({"code": "a b", "name": "Bad", "country": "DE"}),
                "code",
            ),
            (json!({"code": "X", "name": "", "country": "DE"}), "name"),
            (
                json!({"code": "X", "name": "Bad", "country": "Germany"}),
                "country",
            ),
            (
                json!({"code": "X", "name": "Bad", "country": "DE", "priority": -1}),
                "priority",
            ),
        ] {
            let reply = app.post_json("/api/v1/warehouses", body).await;
            assert_eq!(
                reply.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{}: {}",
                app.label,
                reply.body
            );
            assert_eq!(reply.content_type, PROBLEM);
            assert_eq!(reply.body["errors"][0]["field"], field, "{}", reply.body);
        }
        let taken = app
            .post_json(
                "/api/v1/warehouses",
                json!({"code": "ham", "name": "Again", "country": "DE"}),
            )
            .await;
        assert_eq!(taken.status, StatusCode::CONFLICT);
        assert_eq!(taken.body["code"], "code_taken");
        let unknown_field = app
            .post_json(
                "/api/v1/warehouses",
                json!({"code": "Y", "name": "Y", "country": "DE", "colour": "red"}),
            )
            .await;
        assert_eq!(unknown_field.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(app.count("warehouses").await, 1, "{}", app.label);

        let bad_patch = app
            .patch(
                &format!("/api/v1/warehouses/{ham}"),
                json!({"priority": 9_999_999}),
            )
            .await;
        assert_eq!(bad_patch.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            app.get(&format!("/api/v1/warehouses/{ham}")).await.body["priority"],
            1
        );

        let missing = app
            .get("/api/v1/warehouses/wh_0192f0c4aaaaaaaaaaaaaaaaaaaaaaaa")
            .await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
        let malformed = app.get("/api/v1/warehouses/nope").await;
        assert_eq!(malformed.status, StatusCode::UNPROCESSABLE_ENTITY);
    }
}

#[tokio::test]
async fn warehouses_need_the_staff_role() {
    for app in apps().await {
        let anonymous = app.get_public("/api/v1/warehouses").await;
        assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
        let customer = app.keys.token_for("usr_c", &["customer"], None);
        let reply = app
            .request(
                "POST",
                "/api/v1/warehouses",
                Some(&customer),
                Some(json!({"code": "A", "name": "A", "country": "DE"}).to_string()),
            )
            .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN);
        assert_eq!(app.count("warehouses").await, 0);
    }
}
