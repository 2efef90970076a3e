//! Products and variants: CRUD, validation, visibility, pagination, events, stock, seeding.

use std::collections::HashSet;

use axum::http::StatusCode;
use mercato_bus::Event;
use mercato_contracts::inventory::StockUpdated;
use serde_json::json;

use crate::{PROBLEM, apps, product_body};

#[tokio::test]
async fn products_are_created_read_updated_and_archived() {
    for app in apps().await {
        let body = json!({
            "title": "Vintage Leather Backpack",
            "description": "A *sturdy* bag.",
            "status": "active",
            "brand": "Alder Works",
            "tags": ["bags", "leather"],
            "attributes": {"material": "leather"},
            "images": ["https://cdn.example.com/a.jpg"],
            "seo_title": "Backpack",
            "variants": [{
                "sku": "VLB-1", "options": {"colour": "brown"}, "weight_grams": 900,
                "barcode": "4006381333931",
                "prices": [{"amount": 1999, "currency": "EUR", "compare_at_amount": 2499},
                           {"amount": 2199, "currency": "USD"}]
            }]
        });
        let created = app.create_product(body).await;
        let id = created["id"].as_str().unwrap();
        assert!(id.starts_with("prd_"));
        assert_eq!(created["slug"], "vintage-leather-backpack");
        assert_eq!(
            created["variants"][0]["prices"][0]["compare_at_amount"],
            2499
        );
        assert!(created["created_at"].as_str().unwrap().contains('T'));

        let path = format!("/api/v1/products/{id}");
        let read = app.get_public(&path).await;
        assert_eq!(read.status, StatusCode::OK, "{}", app.label);
        assert_eq!(read.body, created);

        let patched = app
            .patch(
                &path,
                json!({"title": "Old Leather Backpack", "brand": null}),
            )
            .await;
        assert_eq!(
            patched.status,
            StatusCode::OK,
            "{}: {}",
            app.label,
            patched.body
        );
        assert_eq!(patched.body["title"], "Old Leather Backpack");
        assert_eq!(patched.body["brand"], json!(null));
        assert_eq!(
            patched.body["slug"], "vintage-leather-backpack",
            "slugs stay stable"
        );

        assert_eq!(app.delete(&path).await.status, StatusCode::NO_CONTENT);
        assert_eq!(app.get_public(&path).await.status, StatusCode::NOT_FOUND);
        assert_eq!(app.get(&path).await.body["status"], "archived");
        assert_eq!(app.count("products").await, 1, "archived, not deleted");
    }
}

#[tokio::test]
async fn drafts_are_deleted_for_good_and_slugs_get_suffixes() {
    for app in apps().await {
        let a = app.create_product(json!({"title": "Linen Shirt"})).await;
        let b = app.create_product(json!({"title": "Linen Shirt"})).await;
        let c = app.create_product(json!({"title": "Linen Shirt"})).await;
        assert_eq!(a["status"], "draft");
        assert_eq!(
            (b["slug"].as_str(), c["slug"].as_str()),
            (Some("linen-shirt-2"), Some("linen-shirt-3"))
        );
        let taken = app
            .post_json(
                "/api/v1/products",
                json!({"title": "X", "slug": "linen-shirt"}),
            )
            .await;
        assert_eq!(
            (taken.status, taken.body["code"].as_str()),
            (StatusCode::CONFLICT, Some("duplicate_slug"))
        );
        let path = format!("/api/v1/products/{}", a["id"].as_str().unwrap());
        assert_eq!(app.delete(&path).await.status, StatusCode::NO_CONTENT);
        assert_eq!(app.get(&path).await.status, StatusCode::NOT_FOUND);
        assert_eq!(app.count("products").await, 2);
    }
}

#[tokio::test]
async fn drafts_are_invisible_to_the_public_but_visible_to_staff() {
    for app in apps().await {
        let mut body = product_body("Secret Lamp", "LAMP-1");
        body["status"] = json!("draft");
        let draft = app.create_product(body).await;
        let path = format!("/api/v1/products/{}", draft["id"].as_str().unwrap());
        let public = app.get_public(&path).await;
        assert_eq!(public.status, StatusCode::NOT_FOUND, "{}", app.label);
        assert_eq!(public.content_type, PROBLEM);
        assert_eq!(app.get(&path).await.status, StatusCode::OK);
        let customer = app.keys.token_for("usr_c", &["customer"], None);
        let as_customer = app.request("GET", &path, Some(&customer), None).await;
        assert_eq!(as_customer.status, StatusCode::NOT_FOUND);
        let listed = app.get_public("/api/v1/products").await;
        assert_eq!(listed.body["data"].as_array().unwrap().len(), 0);
        let drafts = app.get("/api/v1/products?status=draft").await;
        assert_eq!(drafts.body["data"].as_array().unwrap().len(), 1);
        let sneaky = app.get_public("/api/v1/products?status=draft").await;
        assert_eq!(sneaky.status, StatusCode::FORBIDDEN);
    }
}

#[tokio::test]
async fn writes_need_the_staff_role() {
    for app in apps().await {
        let body = product_body("Mug", "MUG-1").to_string();
        let anonymous = app
            .request("POST", "/api/v1/products", None, Some(body.clone()))
            .await;
        assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
        let customer = app.keys.token_for("usr_c", &["customer"], None);
        let denied = app
            .request("POST", "/api/v1/products", Some(&customer), Some(body))
            .await;
        assert_eq!(denied.status, StatusCode::FORBIDDEN);
        assert_eq!(app.count("products").await, 0);
    }
}

#[tokio::test]
async fn duplicate_skus_conflict_and_store_nothing() {
    for app in apps().await {
        app.create_product(product_body("Mug", "MUG-1")).await;
        let again = app
            .post_json("/api/v1/products", product_body("Cup", "MUG-1"))
            .await;
        assert_eq!(
            again.status,
            StatusCode::CONFLICT,
            "{}: {}",
            app.label,
            again.body
        );
        assert_eq!(again.body["code"], "duplicate_sku");
        assert_eq!(again.content_type, PROBLEM);
        let twice = json!({"title": "Pair", "variants": [
            {"sku": "P-1", "prices": []}, {"sku": "P-1", "prices": []}]});
        assert_eq!(
            app.post_json("/api/v1/products", twice).await.status,
            StatusCode::CONFLICT
        );
        assert_eq!(app.count("products").await, 1);
        assert_eq!(app.count("variants").await, 1);
        assert_eq!(app.outbox("product.created").await.len(), 1);
    }
}

#[tokio::test]
async fn bad_input_is_a_problem_and_stores_nothing() {
    let price = |amount: i64, currency: &str| json!({"title": "T", "variants": [{"sku": "S-1", "prices": [{"amount": amount, "currency": currency}]}]});
    let cases = [
        (price(-1, "EUR"), "variants[0].prices[0].amount"),
        (price(100, "XYZ"), "variants[0].prices[0].currency"),
        (price(100, "eur"), "variants[0].prices[0].currency"),
        (
            json!({"title": "T", "variants": [{"sku": "S", "prices": [
            {"amount": 1, "currency": "EUR"}, {"amount": 2, "currency": "EUR"}]}]}),
            "variants[0].prices[1].currency",
        ),
        (json!({"title": "x".repeat(201)}), "title"),
        (json!({"title": ""}), "title"),
        (json!({"description": "no title"}), "title"),
        (
            json!({"title": "T", "description": "x".repeat(100 * 1024 + 1)}),
            "description",
        ),
        (json!({"title": "T", "images": ["ftp://x/y.png"]}), "images"),
        (json!({"title": "T", "tags": vec!["t"; 51]}), "tags"),
        (json!({"title": "T", "slug": "Not A Slug"}), "slug"),
        (
            json!({"title": "T", "variants": [{"sku": "bad sku", "prices": []}]}),
            "variants[0].sku",
        ),
        (
            json!({"title": "T", "variants": [{"sku": "W", "weight_grams": -5}]}),
            "variants[0].weight_grams",
        ),
        (
            json!({"title": "T", "category_ids": ["cat_0192f0c4aaaaaaaaaaaaaaaaaaaaaaaa"]}),
            "category_ids",
        ),
    ];
    for app in apps().await {
        for (body, field) in &cases {
            let reply = app.post_json("/api/v1/products", body.clone()).await;
            assert_eq!(
                reply.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{}: {field}: {}",
                app.label,
                reply.body
            );
            assert_eq!(reply.content_type, PROBLEM);
            assert_eq!(reply.body["errors"][0]["field"], *field, "{}", reply.body);
        }
        let too_many = json!({"title": "T", "variants": (0..101).map(|i| json!({"sku": format!("S-{i}")})).collect::<Vec<_>>()});
        assert_eq!(
            app.post_json("/api/v1/products", too_many).await.status,
            StatusCode::UNPROCESSABLE_ENTITY
        );
        let malformed = app
            .request(
                "POST",
                "/api/v1/products",
                Some(&app.staff),
                Some("{".into()),
            )
            .await;
        assert_eq!(
            (malformed.status, malformed.content_type.as_str()),
            (StatusCode::BAD_REQUEST, PROBLEM)
        );
        let unknown = app
            .post_json("/api/v1/products", json!({"title": "T", "colour": "red"}))
            .await;
        assert!(unknown.status.is_client_error());
        assert_eq!(
            app.get("/api/v1/products/nope").await.status,
            StatusCode::NOT_FOUND
        );
        for table in ["products", "variants", "variant_prices", "outbox"] {
            assert_eq!(app.count(table).await, 0, "{}: {table}", app.label);
        }
    }
}

#[tokio::test]
async fn variants_are_added_changed_and_removed() {
    for app in apps().await {
        let product = app.create_product(product_body("Tee", "TEE-S")).await;
        let base = format!(
            "/api/v1/products/{}/variants",
            product["id"].as_str().unwrap()
        );
        let added = app
            .post_json(
                &base,
                json!({"sku": "TEE-M", "options": {"size": "M"},
            "prices": [{"amount": 1500, "currency": "EUR"}]}),
            )
            .await;
        assert_eq!(added.status, StatusCode::CREATED, "{}", added.body);
        let variant = &added.body["variants"][1];
        let path = format!("{base}/{}", variant["id"].as_str().unwrap());
        let changed = app
            .patch(
                &path,
                json!({"prices": [{"amount": 1700, "currency": "USD"}]}),
            )
            .await;
        assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
        assert_eq!(
            changed.body["variants"][1]["prices"],
            json!([{"amount": 1700, "currency": "USD"}])
        );
        assert_eq!(changed.body["variants"][1]["sku"], "TEE-M");
        let clash = app.patch(&path, json!({"sku": "TEE-S"})).await;
        assert_eq!(
            (clash.status, clash.body["code"].as_str()),
            (StatusCode::CONFLICT, Some("duplicate_sku"))
        );
        let negative = app
            .post_json(
                &base,
                json!({"sku": "TEE-L", "prices": [{"amount": -5, "currency": "EUR"}]}),
            )
            .await;
        assert_eq!(negative.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(app.delete(&path).await.status, StatusCode::NO_CONTENT);
        assert_eq!(app.delete(&path).await.status, StatusCode::NOT_FOUND);
        assert_eq!(app.count("variants").await, 1);
        assert_eq!(app.outbox("product.updated").await.len(), 3);
    }
}

#[tokio::test]
async fn pages_have_no_duplicates_or_gaps_and_filter_by_brand() {
    for app in apps().await {
        for i in 0..25 {
            let mut body = product_body(&format!("Item {i}"), &format!("IT-{i}"));
            body["brand"] = json!(if i % 5 == 0 { "Fjord Goods" } else { "Other" });
            app.create_product(body).await;
        }
        let mut seen = Vec::new();
        let mut path = "/api/v1/products?limit=7".to_owned();
        loop {
            let page = app.get_public(&path).await;
            assert_eq!(page.status, StatusCode::OK, "{}", page.body);
            seen.extend(
                page.body["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p["id"].as_str().unwrap().to_owned()),
            );
            match page.body["next_cursor"].as_str() {
                Some(cursor) => path = format!("/api/v1/products?limit=7&starting_after={cursor}"),
                None => break,
            }
        }
        assert_eq!(seen.len(), 25);
        assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 25);
        let fjord = app
            .get_public("/api/v1/products?brand=Fjord%20Goods&limit=100")
            .await;
        assert_eq!(fjord.body["data"].as_array().unwrap().len(), 5);
        // Title search ignores case and takes `%` and `_` literally.
        let titles = |path: &'static str| {
            let app = &app;
            async move {
                let page = app.get_public(path).await;
                assert_eq!(page.status, StatusCode::OK, "{}", page.body);
                let mut titles: Vec<String> = page.body["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p["title"].as_str().unwrap().to_owned())
                    .collect();
                titles.sort();
                titles
            }
        };
        assert_eq!(
            titles("/api/v1/products?q=ITEM%202").await,
            [
                "Item 2", "Item 20", "Item 21", "Item 22", "Item 23", "Item 24"
            ]
        );
        assert!(titles("/api/v1/products?q=item%25").await.is_empty());
        assert!(titles("/api/v1/products?q=item_").await.is_empty());
        assert_eq!(
            app.get_public(&format!("/api/v1/products?q={}", "x".repeat(201)))
                .await
                .status,
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(
            app.get_public("/api/v1/products?limit=0").await.status,
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }
}

#[tokio::test]
async fn writes_put_the_full_product_in_the_outbox() {
    for app in apps().await {
        let product = app.create_product(product_body("Vase", "VASE-1")).await;
        let path = format!("/api/v1/products/{}", product["id"].as_str().unwrap());
        app.patch(&path, json!({"tags": ["decor"]})).await;
        app.delete(&path).await;
        let created = app.outbox("product.created").await;
        assert_eq!(created[0]["data"], product);
        assert_eq!(created[0]["subject"], product["id"]);
        let updated = app.outbox("product.updated").await;
        assert_eq!(updated[0]["data"]["tags"], json!(["decor"]));
        assert_eq!(
            updated[0]["data"]["variants"][0]["prices"][0]["amount"],
            1999
        );
        assert_eq!(
            app.outbox("product.archived").await[0]["data"]["status"],
            "archived"
        );
    }
}

#[tokio::test]
async fn stock_events_update_availability_once() {
    for app in apps().await {
        let product = app.create_product(product_body("Lamp", "LAMP-9")).await;
        assert_eq!(product["in_stock"], false);
        let path = format!("/api/v1/products/{}", product["id"].as_str().unwrap());
        let stock = StockUpdated {
            sku: "LAMP-9".into(),
            available: 7,
            on_hand: 9,
            reserved: 2,
        };
        let event = Event::new("mercato/inventory", "inventory.stock.updated", &stock).unwrap();
        app.bus.publish(&event).await.unwrap();
        app.bus.publish(&event).await.unwrap();
        app.eventually("in stock", || async {
            app.get(&path).await.body["in_stock"] == true
        })
        .await;
        let read = app.get(&path).await.body;
        assert_eq!(read["variants"][0]["available"], 7);
        app.eventually("product.updated published", || async {
            !app.outbox("product.updated").await.is_empty()
        })
        .await;
        let out = StockUpdated {
            available: 0,
            ..stock
        };
        app.bus
            .publish(&Event::new("mercato/inventory", "inventory.stock.updated", &out).unwrap())
            .await
            .unwrap();
        app.eventually("out of stock", || async {
            app.get(&path).await.body["in_stock"] == false
        })
        .await;
        assert_eq!(
            app.outbox("product.updated").await.len(),
            2,
            "{}: redelivery had no effect",
            app.label
        );
    }
}

#[tokio::test]
async fn seeding_writes_a_consistent_catalog() {
    let mut runs: Vec<Vec<String>> = Vec::new();
    for app in apps().await {
        let report = mercato_catalog::seed::seed(&app.db, 500, |_| {})
            .await
            .unwrap();
        assert_eq!(report.products, 500);
        assert!(
            (30..=50).contains(&report.categories),
            "{}",
            report.categories
        );
        assert_eq!(app.count("products").await, 500);
        assert_eq!(app.count("variants").await, report.variants as i64);
        assert_eq!(
            app.count("variant_prices").await,
            2 * report.variants as i64
        );
        assert_eq!(app.count("product_categories").await, 500);
        assert_eq!(app.count("outbox").await, 0);
        let orphans = app
            .count("products WHERE id NOT IN (SELECT product_id FROM variants)")
            .await;
        assert_eq!(orphans, 0);
        let wrong_stock = app.count("products p WHERE in_stock <> CASE WHEN EXISTS (SELECT 1 FROM variants v WHERE v.product_id = p.id AND v.available > 0) THEN 1 ELSE 0 END").await;
        assert_eq!(wrong_stock, 0);
        let page = app.get_public("/api/v1/products?limit=100").await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(
            page.body["data"][0]["variants"][0]["prices"]
                .as_array()
                .unwrap()
                .len()
                == 2
        );
        let titles: Vec<String> =
            mercato_store::sqlx::query_scalar("SELECT title FROM products ORDER BY id")
                .fetch_all(app.db.pool())
                .await
                .unwrap();
        assert_eq!(titles.len(), 500);
        runs.push(titles);
        let again = mercato_catalog::seed::seed(&app.db, 10, |_| {})
            .await
            .unwrap();
        assert_eq!(again.categories, 0, "the tree is reused");
        assert_eq!(app.count("products").await, 510);
    }
    assert!(
        runs.windows(2).all(|w| w[0] == w[1]),
        "the same seed gives the same catalog"
    );
}
