//! Search through the HTTP app: the index follows product writes (outbox → bus → consumer).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use mercato_catalog::search::{Search, SearchRequest};
use serde_json::{Value, json};

use crate::{PROBLEM, TestApp, apps};

/// Creates a small shop: two categories (bags under gear), five products plus `socks` socks.
async fn shop(app: &TestApp, socks: usize) -> Vec<String> {
    let gear = app.create_category("Gear", None).await;
    let gear = gear["id"].as_str().unwrap().to_owned();
    let bags = app.create_category("Bags", Some(&gear)).await;
    let bags = bags["id"].as_str().unwrap().to_owned();
    let mut specs = vec![
        (
            "Hiking Backpack 30L",
            "A light pack for day hikes.",
            "Trailco",
            vec![bags.clone()],
            7_999,
            "green",
        ),
        (
            "Backpack Rain Cover",
            "Keeps your backpack dry.",
            "Trailco",
            vec![bags.clone()],
            1_499,
            "yellow",
        ),
        (
            "Leather Wallet",
            "Slim wallet for any backpack pocket.",
            "Alder",
            vec![],
            3_500,
            "brown",
        ),
        (
            "Running Shoes",
            "Cushioned shoes for road running.",
            "Fleet",
            vec![gear.clone()],
            11_000,
            "blue",
        ),
        (
            "Trail Running Shoes",
            "Grip for muddy trails.",
            "Fleet",
            vec![gear.clone()],
            12_500,
            "green",
        ),
    ];
    let titles: Vec<String> = (0..socks).map(|i| format!("Wool Socks {i}")).collect();
    for (i, title) in titles.iter().enumerate() {
        specs.push((
            title.as_str(),
            "Warm socks.",
            "Knit",
            vec![],
            500 + 100 * i as i64,
            "grey",
        ));
    }
    let mut ids = Vec::new();
    for (i, (title, description, brand, categories, price, colour)) in specs.into_iter().enumerate()
    {
        let product = app
            .create_product(json!({
                "title": title, "description": description, "status": "active", "brand": brand,
                "category_ids": categories, "attributes": {"colour": colour}, "tags": ["shop"],
                "variants": [{"sku": format!("SKU-{i}"),
                              "prices": [{"amount": price, "currency": "EUR"}]}],
            }))
            .await;
        ids.push(product["id"].as_str().unwrap().to_owned());
    }
    let expected = ids.len() as u64;
    app.eventually("indexed the shop", || async {
        app.get_public("/api/v1/search?limit=1").await.body["total"] == json!(expected)
    })
    .await;
    ids
}

fn hit_ids(body: &Value) -> Vec<String> {
    body["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn typos_prefixes_snippets_and_facets() {
    for app in apps().await {
        let ids = shop(&app, 3).await;
        let typo = app.get_public("/api/v1/search?q=backpak").await;
        assert_eq!(typo.status, StatusCode::OK, "{}: {}", app.label, typo.body);
        assert!(
            hit_ids(&typo.body).contains(&ids[0]),
            "{}: {}",
            app.label,
            typo.body
        );

        let exact = app.get_public("/api/v1/search?q=backpack").await.body;
        let top: HashSet<String> = hit_ids(&exact)[..2].iter().cloned().collect();
        assert_eq!(
            top,
            HashSet::from([ids[0].clone(), ids[1].clone()]),
            "title matches first"
        );
        assert!(
            exact["hits"][0]["snippet"]
                .as_str()
                .unwrap()
                .contains("<mark>"),
            "{exact}"
        );
        assert_eq!(exact["hits"][0]["price"]["currency"], "EUR");
        // Hits carry the slug the storefront links with, which the product route accepts.
        let slug = exact["hits"][0]["slug"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(!slug.is_empty(), "{exact}");
        let by_slug = app.get_public(&format!("/api/v1/products/{slug}")).await;
        assert_eq!(
            by_slug.status,
            StatusCode::OK,
            "{}: {}",
            app.label,
            by_slug.body
        );
        assert_eq!(by_slug.body["id"], exact["hits"][0]["id"]);

        let suggest = app.get_public("/api/v1/search/suggest?q=back").await.body;
        let titles = suggest["suggestions"].as_array().unwrap();
        assert!(
            titles.contains(&json!("Hiking Backpack 30L")),
            "{}: {suggest}",
            app.label
        );

        let all = app.get_public("/api/v1/search").await.body;
        let total = all["total"].as_u64().unwrap();
        let sum = |v: &Value| {
            v.as_object()
                .unwrap()
                .values()
                .map(|c| c.as_u64().unwrap())
                .sum::<u64>()
        };
        assert_eq!(sum(&all["facets"]["brand"]), total, "{all}");
        assert_eq!(sum(&all["facets"]["attributes"]["colour"]), total, "{all}");
        let prices: u64 = all["facets"]["price"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["count"].as_u64().unwrap())
            .sum();
        assert_eq!(prices, total, "{all}");
    }
}

#[tokio::test]
async fn filters_combine_and_include_sub_categories() {
    for app in apps().await {
        let ids = shop(&app, 2).await;
        let gear: String =
            mercato_store::sqlx::query_scalar("SELECT id FROM categories WHERE name = 'Gear'")
                .fetch_one(app.db.pool())
                .await
                .unwrap();
        let in_gear = app
            .get_public(&format!("/api/v1/search?category={gear}"))
            .await
            .body;
        assert_eq!(in_gear["total"], 4, "{}: {in_gear}", app.label);
        assert_eq!(
            in_gear["facets"]["category"].as_object().unwrap().len(),
            1,
            "{in_gear}"
        );
        let cheap = app
            .get_public(&format!("/api/v1/search?category={gear}&max_price=2000"))
            .await
            .body;
        assert_eq!(hit_ids(&cheap), [ids[1].clone()]);
        let fleet = app
            .get_public("/api/v1/search?q=shoes&brand=Fleet&min_price=12000")
            .await
            .body;
        assert_eq!(hit_ids(&fleet), [ids[4].clone()]);
        let none = app
            .get_public("/api/v1/search?q=socks&brand=Fleet")
            .await
            .body;
        assert_eq!(none["total"], 0);
    }
}

#[tokio::test]
async fn pages_have_no_duplicates_or_gaps() {
    for app in apps().await {
        shop(&app, 12).await;
        for sort in ["relevance", "price_asc", "price_desc", "newest"] {
            let mut seen = Vec::new();
            let mut path = format!("/api/v1/search?limit=4&sort={sort}");
            loop {
                let page = app.get_public(&path).await.body;
                seen.extend(hit_ids(&page));
                match page["next_cursor"].as_str() {
                    Some(cursor) => {
                        path = format!("/api/v1/search?limit=4&sort={sort}&starting_after={cursor}")
                    }
                    None => {
                        assert_eq!(seen.len() as u64, page["total"].as_u64().unwrap(), "{sort}");
                        break;
                    }
                }
            }
            let unique: HashSet<&String> = seen.iter().collect();
            assert_eq!(unique.len(), seen.len(), "{}: {sort}: {seen:?}", app.label);
        }
    }
}

#[tokio::test]
async fn an_update_is_searchable_within_one_second() {
    for app in apps().await {
        let ids = shop(&app, 0).await;
        let path = format!("/api/v1/products/{}", ids[2]);
        let patched = app
            .patch(&path, json!({"title": "Leather Cardholder"}))
            .await;
        assert_eq!(
            patched.status,
            StatusCode::OK,
            "{}: {}",
            app.label,
            patched.body
        );
        let started = Instant::now();
        loop {
            let found = app.get_public("/api/v1/search?q=cardholder").await.body;
            if hit_ids(&found) == [ids[2].clone()] {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "{}: not searchable in 1 s",
                app.label
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        println!(
            "{}: update searchable after {:?}",
            app.label,
            started.elapsed()
        );
        assert_eq!(app.delete(&path).await.status, StatusCode::NO_CONTENT);
        app.eventually("dropped the archived product", || async {
            app.get_public("/api/v1/search?q=cardholder").await.body["total"] == 0
        })
        .await;
    }
}

#[tokio::test]
async fn a_rebuild_from_the_database_gives_the_same_results() {
    for app in apps().await {
        shop(&app, 5).await;
        let rebuilt = Search::in_ram(app.db.clone()).unwrap();
        assert_eq!(rebuilt.rebuild().await.unwrap(), 10);
        for q in ["", "backpak", "running shoes", "socks"] {
            let served = app
                .get_public(&format!("/api/v1/search?q={}", q.replace(' ', "+")))
                .await
                .body;
            let request = SearchRequest {
                q: q.into(),
                currency: "EUR".into(),
                limit: 20,
                ..SearchRequest::default()
            };
            let fresh = rebuilt.search(request).await.unwrap();
            let fresh_ids: Vec<String> = fresh.hits.iter().map(|h| h.id.clone()).collect();
            assert_eq!(hit_ids(&served), fresh_ids, "{}: {q}", app.label);
            assert_eq!(served["total"].as_u64().unwrap(), fresh.total);
        }
    }
}

#[tokio::test]
async fn bad_parameters_are_problems() {
    for app in apps().await {
        let long = "x".repeat(201);
        for path in [
            format!("/api/v1/search?q={long}"),
            "/api/v1/search?limit=0".to_owned(),
            "/api/v1/search?limit=101".to_owned(),
            "/api/v1/search?sort=cheapest".to_owned(),
            "/api/v1/search?currency=XYZ".to_owned(),
            "/api/v1/search?min_price=10&max_price=5".to_owned(),
            "/api/v1/search?starting_after=garbage".to_owned(),
            format!("/api/v1/search/suggest?q={long}"),
        ] {
            let reply = app.get_public(&path).await;
            assert_eq!(
                reply.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{path}: {}",
                reply.body
            );
            assert_eq!(reply.content_type, PROBLEM);
        }
        let reply = app.get_public("/api/v1/search?min_price=cheap").await;
        assert!(reply.status.is_client_error(), "{}", reply.status);
        assert_eq!(reply.content_type, PROBLEM);
    }
}
