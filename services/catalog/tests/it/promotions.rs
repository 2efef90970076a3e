//! Promotions CRUD, validation, coupon uniqueness and redemption limits; the fixtures the
//! quote tests share (rows written with SQL, independent of the product API).

use axum::http::StatusCode;
use mercato_store::now_micros;
use mercato_store::sqlx;
use serde_json::{Value, json};

use crate::{PROBLEM, TestApp, apps};

/// Inserts a category under `parent` (its path); returns the new category's path.
pub async fn category(app: &TestApp, id: &str, parent: Option<(&str, &str)>) -> String {
    let path = match parent {
        Some((_, parent_path)) => format!("{parent_path}{id}/"),
        None => format!("/{id}/"),
    };
    sqlx::query(
        "INSERT INTO categories (id, parent_id, name, slug, path, position, created_at, updated_at) \
         VALUES ($1, $2, $1, $1, $3, 0, 0, 0)",
    )
    .bind(id)
    .bind(parent.map(|(p, _)| p.to_owned()))
    .bind(&path)
    .execute(app.db.pool())
    .await
    .unwrap();
    path
}

/// Inserts a product with one variant `sku` priced in each `(currency, amount)`.
pub async fn product(app: &TestApp, id: &str, sku: &str, cats: &[&str], prices: &[(&str, i64)]) {
    product_with_status(app, id, sku, cats, prices, "active").await;
}

/// Like [`product`], with a status.
pub async fn product_with_status(
    app: &TestApp,
    id: &str,
    sku: &str,
    cats: &[&str],
    prices: &[(&str, i64)],
    status: &str,
) {
    let pool = app.db.pool();
    sqlx::query(
        "INSERT INTO products (id, title, slug, description, status, tags, attributes, images, \
         created_at, updated_at) VALUES ($1, $1, $1, '', $2, '[]', '{}', '[]', 0, 0)",
    )
    .bind(id)
    .bind(status)
    .execute(pool)
    .await
    .unwrap();
    for cat in cats {
        sqlx::query("INSERT INTO product_categories (product_id, category_id) VALUES ($1, $2)")
            .bind(id)
            .bind(*cat)
            .execute(pool)
            .await
            .unwrap();
    }
    let variant = format!("var_{sku}");
    sqlx::query(
        "INSERT INTO variants (id, product_id, sku, options, position, created_at, updated_at) \
         VALUES ($1, $2, $3, '{}', 0, 0, 0)",
    )
    .bind(&variant)
    .bind(id)
    .bind(sku)
    .execute(pool)
    .await
    .unwrap();
    for (currency, amount) in prices {
        sqlx::query(
            "INSERT INTO variant_prices (variant_id, currency, amount) VALUES ($1, $2, $3)",
        )
        .bind(&variant)
        .bind(*currency)
        .bind(*amount)
        .execute(pool)
        .await
        .unwrap();
    }
}

/// Creates a promotion from `body` (asserts 201); returns it.
pub async fn promotion(app: &TestApp, body: Value) -> Value {
    let reply = app.post_json("/api/v1/promotions", body).await;
    assert_eq!(
        reply.status,
        StatusCode::CREATED,
        "{}: {}",
        app.label,
        reply.body
    );
    reply.body
}

/// A percentage promotion on everything.
pub fn percent_all(name: &str, basis_points: i64) -> Value {
    json!({"name": name, "kind": "percentage", "basis_points": basis_points, "target": "all"})
}

/// RFC 3339 `seconds` from now.
pub fn from_now(seconds: i64) -> String {
    let t = chrono::DateTime::from_timestamp_micros(now_micros() + seconds * 1_000_000).unwrap();
    t.to_rfc3339()
}

async fn redeem(app: &TestApp, id: &str, order: &str, customer: Option<&str>) -> crate::Reply {
    let path = format!("/api/v1/promotions/{id}/redemptions");
    app.post_json(&path, json!({"order_id": order, "customer_id": customer}))
        .await
}

#[tokio::test]
async fn promotions_round_trip_through_create_get_list_patch_and_delete() {
    for app in apps().await {
        category(&app, "cat_shoes", None).await;
        let created = promotion(
            &app,
            json!({
                "name": "Shoe week", "kind": "percentage", "basis_points": 1500,
                "target": "categories", "target_ids": ["cat_shoes"], "coupon_code": "shoes15",
                "starts_at": "2026-01-01T00:00:00Z", "usage_limit": 100, "stackable": true,
                "minimum_subtotal": {"amount": 5000, "currency": "EUR"}
            }),
        )
        .await;
        let id = created["id"].as_str().unwrap().to_owned();
        assert!(id.starts_with("promo_"));
        assert_eq!(created["coupon_code"], "SHOES15");
        assert_eq!(created["starts_at"], "2026-01-01T00:00:00.000Z");
        assert_eq!(created["active"], true);
        let got = app.get(&format!("/api/v1/promotions/{id}")).await;
        assert_eq!(got.body, created);
        let list = app.get("/api/v1/promotions?limit=10").await;
        assert_eq!(list.body["data"][0]["id"], id.as_str());

        let patched = app
            .patch(
                &format!("/api/v1/promotions/{id}"),
                json!({"name": "Shoes!", "coupon_code": null}),
            )
            .await;
        assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
        assert_eq!(patched.body["name"], "Shoes!");
        assert_eq!(patched.body["coupon_code"], Value::Null);
        assert_eq!(patched.body["usage_limit"], 100);

        let deleted = app.delete(&format!("/api/v1/promotions/{id}")).await;
        assert_eq!(deleted.status, StatusCode::NO_CONTENT);
        let gone = app.get(&format!("/api/v1/promotions/{id}")).await;
        assert_eq!(gone.status, StatusCode::NOT_FOUND);
        assert_eq!(app.get("/api/v1/promotions").await.body["data"], json!([]));
    }
}

#[tokio::test]
async fn only_staff_manage_promotions() {
    for app in apps().await {
        let body = percent_all("x", 100).to_string();
        let anonymous = app
            .request("POST", "/api/v1/promotions", None, Some(body.clone()))
            .await;
        assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
        let customer = app.keys.token_for("usr_c", &["customer"], None);
        let reply = app
            .request("POST", "/api/v1/promotions", Some(&customer), Some(body))
            .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN);
        assert_eq!(app.count("promotions").await, 0);
    }
}

#[tokio::test]
async fn invalid_promotions_are_problems_and_store_nothing() {
    for app in apps().await {
        let cases = [
            (
                json!({"kind": "percentage", "basis_points": 0, "target": "all"}),
                vec!["name", "basis_points"],
            ),
            (
                json!({"name": "x", "kind": "percentage", "basis_points": 10001, "target": "all"}),
                vec!["basis_points"],
            ),
            (
                json!({"name": "x", "kind": "bogo", "target": "all"}),
                vec!["kind"],
            ),
            (
                json!({"name": "x", "kind": "fixed_amount", "amounts": [{"amount": -5, "currency": "EUR"}], "target": "all"}),
                vec!["amounts[0].amount"],
            ),
            (
                json!({"name": "x", "kind": "fixed_amount", "amounts": [{"amount": 5, "currency": "eur"}], "target": "all"}),
                vec!["amounts[0].currency"],
            ),
            (
                json!({"name": "x", "kind": "percentage", "basis_points": 5, "target": "products"}),
                vec!["target_ids"],
            ),
            (
                json!({"name": "x", "kind": "percentage", "basis_points": 5, "target": "categories", "target_ids": ["cat_nope"]}),
                vec!["target_ids"],
            ),
            (
                json!({"name": "x", "kind": "percentage", "basis_points": 5, "target": "all",
                       "starts_at": "2026-02-01T00:00:00Z", "ends_at": "2026-01-01T00:00:00Z"}),
                vec!["ends_at"],
            ),
            (
                json!({"name": "x", "kind": "percentage", "basis_points": 5, "target": "all", "starts_at": "tomorrow"}),
                vec!["starts_at"],
            ),
            (
                json!({"name": "x", "kind": "percentage", "basis_points": 5, "target": "all", "coupon_code": "a!"}),
                vec!["coupon_code"],
            ),
            (
                json!({"name": "x", "kind": "percentage", "basis_points": 5, "target": "all", "usage_limit_per_customer": 0}),
                vec!["usage_limit_per_customer"],
            ),
        ];
        for (body, fields) in cases {
            let reply = app.post_json("/api/v1/promotions", body.clone()).await;
            assert_eq!(
                reply.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{}: {body}",
                app.label
            );
            assert_eq!(reply.content_type, PROBLEM);
            assert_eq!(reply.body["code"], "validation_failed");
            let got: Vec<&str> = reply.body["errors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["field"].as_str().unwrap())
                .collect();
            assert_eq!(got, fields, "{body}");
        }
        let unknown = app
            .post_json("/api/v1/promotions", json!({"name": "x", "surprise": 1}))
            .await;
        assert_eq!(unknown.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(app.count("promotions").await, 0);
        // A PATCH that breaks the promotion changes nothing.
        let id = promotion(&app, percent_all("ok", 100)).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let reply = app
            .patch(
                &format!("/api/v1/promotions/{id}"),
                json!({"basis_points": 0}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            app.get(&format!("/api/v1/promotions/{id}")).await.body["basis_points"],
            100
        );
    }
}

#[tokio::test]
async fn coupon_codes_are_unique_among_active_promotions_ignoring_case() {
    for app in apps().await {
        let mut body = percent_all("a", 100);
        body["coupon_code"] = json!("Save10");
        let first = promotion(&app, body.clone()).await;
        body["coupon_code"] = json!("SAVE10");
        let taken = app.post_json("/api/v1/promotions", body.clone()).await;
        assert_eq!(taken.status, StatusCode::CONFLICT, "{}", app.label);
        assert_eq!(taken.body["code"], "coupon_code_taken");
        let path = format!("/api/v1/promotions/{}", first["id"].as_str().unwrap());
        assert_eq!(
            app.patch(&path, json!({"active": false})).await.status,
            StatusCode::OK
        );
        promotion(&app, body).await;
        // Re-activating the first would clash again.
        assert_eq!(
            app.patch(&path, json!({"active": true})).await.status,
            StatusCode::CONFLICT
        );
    }
}

#[tokio::test]
async fn redemptions_enforce_limits_and_are_idempotent_by_order() {
    for app in apps().await {
        let mut body = percent_all("limited", 100);
        body["usage_limit"] = json!(3);
        body["usage_limit_per_customer"] = json!(2);
        let id = promotion(&app, body).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(
            redeem(&app, &id, "ord_1", Some("usr_a")).await.status,
            StatusCode::CREATED
        );
        let again = redeem(&app, &id, "ord_1", Some("usr_a")).await;
        assert_eq!(again.status, StatusCode::OK);
        assert_eq!(
            redeem(&app, &id, "ord_1", Some("usr_b")).await.status,
            StatusCode::CONFLICT
        );
        assert_eq!(
            redeem(&app, &id, "ord_2", Some("usr_a")).await.status,
            StatusCode::CREATED
        );
        let mine = redeem(&app, &id, "ord_3", Some("usr_a")).await;
        assert_eq!(mine.status, StatusCode::CONFLICT);
        assert_eq!(mine.body["code"], "usage_limit_reached");
        let guest = redeem(&app, &id, "ord_3", None).await;
        assert_eq!(guest.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            redeem(&app, &id, "ord_4", Some("usr_b")).await.status,
            StatusCode::CREATED
        );
        let total = redeem(&app, &id, "ord_5", Some("usr_c")).await;
        assert_eq!(
            (total.status, total.body["code"].as_str()),
            (StatusCode::CONFLICT, Some("usage_limit_reached"))
        );
        assert_eq!(app.count("promotion_redemptions").await, 3, "{}", app.label);
        let missing = redeem(&app, "promo_nope", "ord_9", None).await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn concurrent_redemptions_never_exceed_the_limit() {
    for app in apps().await {
        let mut body = percent_all("rush", 100);
        body["usage_limit"] = json!(3);
        let id = promotion(&app, body).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let mut tasks = Vec::new();
        for n in 0..12 {
            let router = app.service.router.clone();
            let request = axum::http::Request::post(format!("/api/v1/promotions/{id}/redemptions"))
                .header("authorization", format!("Bearer {}", app.staff))
                .header("content-type", "application/json")
                .body(axum::body::Body::from(
                    json!({"order_id": format!("ord_{n}")}).to_string(),
                ))
                .unwrap();
            tasks.push(tokio::spawn(async move {
                tower::ServiceExt::oneshot(router, request)
                    .await
                    .unwrap()
                    .status()
            }));
        }
        let mut created = 0;
        for task in tasks {
            let status = task.await.unwrap();
            assert!(
                matches!(status, StatusCode::CREATED | StatusCode::CONFLICT),
                "{status}"
            );
            created += usize::from(status == StatusCode::CREATED);
        }
        assert_eq!(created, 3, "{}", app.label);
        assert_eq!(app.count("promotion_redemptions").await, 3);
    }
}
