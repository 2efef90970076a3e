//! `POST /api/v1/prices/quote`: every promotion rule, bad input, and no rounding drift.

use axum::http::StatusCode;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};

use crate::promotions::{category, from_now, percent_all, product, product_with_status, promotion};
use crate::{PROBLEM, Reply, TestApp, apps};

async fn quote(app: &TestApp, body: Value) -> Reply {
    let reply = app
        .request("POST", "/api/v1/prices/quote", None, Some(body.to_string()))
        .await;
    assert!(
        reply.status.is_success() || reply.content_type == PROBLEM,
        "{}",
        reply.body
    );
    reply
}

async fn ok_quote(app: &TestApp, body: Value) -> Value {
    let reply = quote(app, body).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "{}: {}",
        app.label,
        reply.body
    );
    reply.body
}

fn rejected(q: &Value) -> Vec<(String, String)> {
    q["rejected_promotions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap_or("").to_owned(),
                r["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn applied(q: &Value) -> Vec<(String, i64)> {
    q["applied_promotions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap().to_owned(),
                a["amount"]["amount"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// Shoes (10.00) under /gear/shoes/, a hat (5.00) under /gear/, a book (20.00) uncategorized.
async fn shop(app: &TestApp) {
    let gear = category(app, "cat_gear", None).await;
    category(app, "cat_shoes", Some(("cat_gear", &gear))).await;
    product(
        app,
        "prd_shoe",
        "SHOE",
        &["cat_shoes"],
        &[("EUR", 1000), ("USD", 1100)],
    )
    .await;
    product(app, "prd_hat", "HAT", &["cat_gear"], &[("EUR", 500)]).await;
    product(app, "prd_book", "BOOK", &[], &[("EUR", 2000)]).await;
}

fn cart(coupon: Option<&str>) -> Value {
    json!({
        "currency": "EUR", "coupon": coupon,
        "lines": [{"sku": "SHOE", "quantity": 2}, {"sku": "HAT", "quantity": 1}, {"sku": "BOOK", "quantity": 1}]
    })
}

#[tokio::test]
async fn a_quote_without_promotions_adds_up_the_lines() {
    for app in apps().await {
        shop(&app).await;
        let q = ok_quote(&app, cart(None)).await;
        assert_eq!(
            q["lines"][0]["unit_price"],
            json!({"amount": 1000, "currency": "EUR"})
        );
        assert_eq!(q["lines"][0]["subtotal"]["amount"], 2000);
        assert_eq!(q["subtotal"]["amount"], 4500);
        assert_eq!(q["discount_total"]["amount"], 0);
        assert_eq!(q["total"]["amount"], 4500);
    }
}

#[tokio::test]
async fn percentages_and_fixed_amounts_apply_to_their_targets() {
    for app in apps().await {
        shop(&app).await;
        // 10 % on the gear category reaches the shoes through the sub-category.
        let gear = json!({"name": "gear", "kind": "percentage", "basis_points": 1000,
                          "target": "categories", "target_ids": ["cat_gear"], "stackable": true});
        promotion(&app, gear).await;
        let q = ok_quote(&app, cart(None)).await;
        assert_eq!(applied(&q), [("gear".to_owned(), 250)]);
        assert_eq!(q["lines"][0]["discounts"][0]["amount"]["amount"], 200);
        assert_eq!(q["lines"][1]["discounts"][0]["amount"]["amount"], 50);
        assert_eq!(q["lines"][2]["discounts"], json!([]));
        assert!(
            q["lines"][0]["discounts"][0]["reason"]
                .as_str()
                .unwrap()
                .contains("10.00% off")
        );
        // 3.00 off the book only, stacked after the percentage.
        let book = json!({"name": "book", "kind": "fixed_amount", "target": "products", "target_ids": ["prd_book"],
                          "amounts": [{"amount": 300, "currency": "EUR"}], "stackable": true});
        promotion(&app, book).await;
        let q = ok_quote(&app, cart(None)).await;
        assert_eq!(q["lines"][2]["total"]["amount"], 1700);
        assert_eq!(q["discount_total"]["amount"], 550);
        assert_eq!(q["total"]["amount"], 3950);
        // In USD only the shoes have a price; the EUR-only fixed amount does not apply.
        let usd = json!({"currency": "USD", "lines": [{"sku": "SHOE", "quantity": 1}]});
        let q = ok_quote(&app, usd).await;
        assert_eq!(q["discount_total"]["amount"], 110);
    }
}

#[tokio::test]
async fn coupons_match_ignoring_case_and_unknown_ones_are_reported() {
    for app in apps().await {
        shop(&app).await;
        let mut body = percent_all("coupon", 2000);
        body["coupon_code"] = json!("WELCOME");
        promotion(&app, body).await;
        let without = ok_quote(&app, cart(None)).await;
        assert_eq!(without["discount_total"]["amount"], 0);
        let with = ok_quote(&app, cart(Some("welcome"))).await;
        assert_eq!(with["discount_total"]["amount"], 900);
        assert_eq!(with["applied_promotions"][0]["coupon_code"], "WELCOME");
        let unknown = ok_quote(&app, cart(Some("nope-nope"))).await;
        assert_eq!(
            rejected(&unknown),
            [(String::new(), "coupon_unknown".to_owned())]
        );
    }
}

#[tokio::test]
async fn time_windows_limits_and_minimums_are_reasons() {
    for app in apps().await {
        shop(&app).await;
        let mut later = percent_all("later", 100);
        later["starts_at"] = json!(from_now(3600));
        promotion(&app, later).await;
        let mut over = percent_all("over", 100);
        over["starts_at"] = json!(from_now(-7200));
        over["ends_at"] = json!(from_now(-3600));
        promotion(&app, over).await;
        let mut min = percent_all("min", 100);
        min["minimum_subtotal"] = json!({"amount": 4501, "currency": "EUR"});
        min["stackable"] = json!(true);
        promotion(&app, min).await;
        let mut used = percent_all("used", 100);
        used["usage_limit"] = json!(1);
        let used_id = promotion(&app, used).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let mut mine = percent_all("mine", 100);
        mine["usage_limit_per_customer"] = json!(1);
        mine["stackable"] = json!(true);
        let mine_id = promotion(&app, mine).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        for (id, order) in [(&used_id, "ord_1"), (&mine_id, "ord_2")] {
            let path = format!("/api/v1/promotions/{id}/redemptions");
            let r = app
                .post_json(&path, json!({"order_id": order, "customer_id": "usr_a"}))
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        }
        let mut body = cart(None);
        body["customer_id"] = json!("usr_a");
        let q = ok_quote(&app, body).await;
        let expected = [
            ("later", "not_started"),
            ("over", "expired"),
            ("min", "minimum_subtotal_not_met"),
            ("used", "usage_limit_reached"),
            ("mine", "customer_usage_limit_reached"),
        ];
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(rejected(&q), expected, "{}", app.label);
        assert_eq!(q["discount_total"]["amount"], 0);
        // Another customer may still use "mine"; a bigger cart meets the minimum.
        let mut body = cart(None);
        body["customer_id"] = json!("usr_b");
        body["lines"][0]["quantity"] = json!(3);
        let q = ok_quote(&app, body).await;
        let names: Vec<String> = applied(&q).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["min", "mine"]);
    }
}

#[tokio::test]
async fn the_best_of_stacked_and_single_promotions_wins() {
    for app in apps().await {
        shop(&app).await;
        let mut a = percent_all("stack a", 1000);
        a["stackable"] = json!(true);
        promotion(&app, a).await;
        let b = json!({"name": "stack b", "kind": "fixed_amount", "target": "all", "stackable": true,
                       "amounts": [{"amount": 500, "currency": "EUR"}]});
        promotion(&app, b).await;
        promotion(&app, percent_all("solo", 2000)).await;
        // Stack: 4.50 + 5.00 = 9.50 beats 20 % = 9.00.
        let q = ok_quote(&app, cart(None)).await;
        assert_eq!(
            applied(&q),
            [("stack a".to_owned(), 450), ("stack b".to_owned(), 500)]
        );
        assert_eq!(
            rejected(&q),
            [("solo".to_owned(), "not_stackable".to_owned())]
        );
        promotion(&app, percent_all("bigger solo", 2500)).await;
        let q = ok_quote(&app, cart(None)).await;
        assert_eq!(applied(&q), [("bigger solo".to_owned(), 1125)]);
        assert_eq!(rejected(&q).len(), 3);
    }
}

#[tokio::test]
async fn bad_quotes_are_problems_naming_the_line() {
    for app in apps().await {
        shop(&app).await;
        product_with_status(&app, "prd_draft", "DRAFT", &[], &[("EUR", 100)], "draft").await;
        let line = |sku: &str, quantity: i64| json!({"currency": "EUR", "lines": [{"sku": sku, "quantity": quantity}]});
        let many: Vec<Value> = (0..501)
            .map(|i| json!({"sku": format!("S{i}"), "quantity": 1}))
            .collect();
        let cases = [
            (line("NOPE", 1), "lines[0].sku", "unknown_sku"),
            (line("DRAFT", 1), "lines[0].sku", "unknown_sku"),
            (
                json!({"currency": "GBP", "lines": [{"sku": "HAT", "quantity": 1}]}),
                "lines[0].sku",
                "no_price",
            ),
            (
                json!({"currency": "eur", "lines": [{"sku": "HAT", "quantity": 1}]}),
                "currency",
                "invalid_currency",
            ),
            (line("HAT", 0), "lines[0].quantity", "out_of_range"),
            (line("HAT", 10_001), "lines[0].quantity", "out_of_range"),
            (
                json!({"currency": "EUR", "lines": []}),
                "lines",
                "invalid_length",
            ),
            (
                json!({"currency": "EUR", "lines": many}),
                "lines",
                "invalid_length",
            ),
            (
                json!({"currency": "EUR", "lines": [{"sku": "HAT", "quantity": 1}, {"sku": "HAT", "quantity": 2}]}),
                "lines[1].sku",
                "duplicate_sku",
            ),
        ];
        for (body, field, code) in cases {
            let reply = quote(&app, body).await;
            assert_eq!(
                reply.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{}: {field}",
                app.label
            );
            assert_eq!(reply.content_type, PROBLEM);
            assert_eq!(reply.body["errors"][0]["field"], field, "{}", reply.body);
            assert_eq!(reply.body["errors"][0]["code"], code);
        }
        let malformed = quote(&app, json!({"lines": "x"})).await;
        assert_eq!(malformed.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(app.count("promotion_redemptions").await, 0);
    }
}

#[tokio::test]
async fn random_carts_have_no_rounding_drift() {
    for app in apps().await {
        let mut rng = StdRng::seed_from_u64(42);
        let root = category(&app, "cat_r", None).await;
        category(&app, "cat_s", Some(("cat_r", &root))).await;
        for i in 0..20 {
            let cats: &[&str] = if i % 3 == 0 { &["cat_s"] } else { &[] };
            let price = rng.random_range(1..200_000);
            product(
                &app,
                &format!("prd_{i}"),
                &format!("SKU{i}"),
                cats,
                &[("EUR", price)],
            )
            .await;
        }
        let mut odd = percent_all("odd", 333);
        odd["stackable"] = json!(true);
        promotion(&app, odd).await;
        let fixed = json!({"name": "fixed", "kind": "fixed_amount", "target": "categories", "target_ids": ["cat_r"],
                           "stackable": true, "amounts": [{"amount": 777, "currency": "EUR"}]});
        promotion(&app, fixed).await;
        let picks = json!({"name": "picks", "kind": "percentage", "basis_points": 1234, "target": "products",
                           "target_ids": ["prd_1", "prd_2", "prd_5"]});
        promotion(&app, picks).await;
        for _ in 0..40 {
            let n = rng.random_range(1..=20);
            let lines: Vec<Value> = (0..n)
                .map(|i| json!({"sku": format!("SKU{i}"), "quantity": rng.random_range(1..=50)}))
                .collect();
            let q = ok_quote(&app, json!({"currency": "EUR", "lines": lines})).await;
            let amount = |v: &Value| v["amount"].as_i64().unwrap();
            let lines = q["lines"].as_array().unwrap();
            let line_discounts: i64 = lines
                .iter()
                .flat_map(|l| l["discounts"].as_array().unwrap())
                .map(|d| amount(&d["amount"]))
                .sum();
            let applied: i64 = q["applied_promotions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| amount(&a["amount"]))
                .sum();
            assert_eq!(line_discounts, amount(&q["discount_total"]));
            assert_eq!(applied, amount(&q["discount_total"]));
            assert_eq!(
                amount(&q["total"]),
                amount(&q["subtotal"]) - amount(&q["discount_total"])
            );
            for l in lines {
                assert!(amount(&l["total"]) >= 0);
                assert_eq!(
                    amount(&l["subtotal"]),
                    amount(&l["unit_price"]) * l["quantity"].as_i64().unwrap()
                );
                assert_eq!(
                    amount(&l["total"]),
                    amount(&l["subtotal"]) - amount(&l["discount_total"])
                );
            }
        }
    }
}

#[test]
fn the_openapi_document_describes_quotes_and_promotions() {
    let doc = serde_json::to_value(mercato_catalog::api::ApiDoc::openapi()).unwrap();
    for path in [
        "/api/v1/prices/quote",
        "/api/v1/promotions",
        "/api/v1/promotions/{id}",
        "/api/v1/promotions/{id}/redemptions",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing");
    }
    for schema in [
        "Quote",
        "QuoteBody",
        "PromotionInput",
        "PromotionResponse",
        "RejectReason",
    ] {
        assert!(
            doc["components"]["schemas"].get(schema).is_some(),
            "{schema} missing"
        );
    }
}
