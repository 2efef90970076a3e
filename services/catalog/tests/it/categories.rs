//! The category tree: listing, moves, cycles, deletion and listing products by category.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::{PROBLEM, apps, product_body};

fn id(v: &Value) -> &str {
    v["id"].as_str().unwrap()
}

#[tokio::test]
async fn the_tree_nests_children_by_position() {
    for app in apps().await {
        let clothing = app.create_category("Clothing", None).await;
        let home = app.create_category("Home", None).await;
        let shirts = app.create_category("Shirts", Some(id(&clothing))).await;
        let jackets = app
            .post_json(
                "/api/v1/categories",
                json!({"name": "Jackets", "parent_id": id(&clothing), "position": -1}),
            )
            .await
            .body;
        assert_eq!(clothing["slug"], "clothing");
        assert_eq!(
            shirts["path"],
            format!("/{}/{}/", id(&clothing), id(&shirts))
        );
        let tree = app.get_public("/api/v1/categories").await;
        assert_eq!(tree.status, StatusCode::OK);
        let roots: Vec<_> = tree
            .body
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].clone())
            .collect();
        assert_eq!(roots, [json!("Clothing"), json!("Home")]);
        let children: Vec<_> = tree.body[0]["children"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].clone())
            .collect();
        assert_eq!(children, [jackets["id"].clone(), shirts["id"].clone()]);
        assert_eq!(tree.body[1]["children"], json!([]));
        let one = app
            .get_public(&format!("/api/v1/categories/{}", id(&home)))
            .await;
        assert_eq!(one.body["name"], "Home");
        let by_slug = app.get_public("/api/v1/categories/clothing").await;
        assert_eq!(by_slug.body["id"], clothing["id"]);
    }
}

#[tokio::test]
async fn moving_a_category_moves_its_subtree_and_refuses_cycles() {
    for app in apps().await {
        let a = app.create_category("A", None).await;
        let b = app.create_category("B", Some(id(&a))).await;
        let c = app.create_category("C", Some(id(&b))).await;
        let other = app.create_category("Other", None).await;
        let cycle = app
            .patch(
                &format!("/api/v1/categories/{}", id(&a)),
                json!({"parent_id": id(&c)}),
            )
            .await;
        assert_eq!(
            cycle.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            app.label
        );
        assert_eq!(cycle.body["errors"][0]["code"], "category_cycle");
        assert_eq!(cycle.content_type, PROBLEM);
        let itself = app
            .patch(
                &format!("/api/v1/categories/{}", id(&a)),
                json!({"parent_id": id(&a)}),
            )
            .await;
        assert_eq!(itself.status, StatusCode::UNPROCESSABLE_ENTITY);

        let moved = app
            .patch(
                &format!("/api/v1/categories/{}", id(&b)),
                json!({"parent_id": id(&other), "name": "Bee"}),
            )
            .await;
        assert_eq!(
            moved.status,
            StatusCode::OK,
            "{}: {}",
            app.label,
            moved.body
        );
        assert_eq!(moved.body["path"], format!("/{}/{}/", id(&other), id(&b)));
        let c_now = app
            .get_public(&format!("/api/v1/categories/{}", id(&c)))
            .await
            .body;
        assert_eq!(
            c_now["path"],
            format!("/{}/{}/{}/", id(&other), id(&b), id(&c))
        );
        let to_root = app
            .patch(
                &format!("/api/v1/categories/{}", id(&b)),
                json!({"parent_id": null}),
            )
            .await;
        assert_eq!(to_root.body["path"], format!("/{}/", id(&b)));
        assert_eq!(to_root.body["parent_id"], json!(null));
        let c_root = app
            .get_public(&format!("/api/v1/categories/{}", id(&c)))
            .await
            .body;
        assert_eq!(c_root["path"], format!("/{}/{}/", id(&b), id(&c)));
    }
}

#[tokio::test]
async fn only_empty_categories_can_be_deleted() {
    for app in apps().await {
        let parent = app.create_category("Parent", None).await;
        let child = app.create_category("Child", Some(id(&parent))).await;
        let mut body = product_body("Shirt", "SH-1");
        body["category_ids"] = json!([id(&child)]);
        let product = app.create_product(body).await;
        let parent_path = format!("/api/v1/categories/{}", id(&parent));
        let child_path = format!("/api/v1/categories/{}", id(&child));
        assert_eq!(
            app.delete(&parent_path).await.body["code"],
            "category_not_empty"
        );
        assert_eq!(app.delete(&child_path).await.status, StatusCode::CONFLICT);
        app.patch(
            &format!("/api/v1/products/{}", id(&product)),
            json!({"category_ids": []}),
        )
        .await;
        assert_eq!(app.delete(&child_path).await.status, StatusCode::NO_CONTENT);
        assert_eq!(
            app.delete(&parent_path).await.status,
            StatusCode::NO_CONTENT
        );
        assert_eq!(app.count("categories").await, 0);
        assert_eq!(
            app.get_public(&child_path).await.status,
            StatusCode::NOT_FOUND
        );
    }
}

#[tokio::test]
async fn bad_category_input_is_refused() {
    for app in apps().await {
        app.create_category("Shoes", None).await;
        let dup = app
            .post_json("/api/v1/categories", json!({"name": "Shoes"}))
            .await;
        assert_eq!(
            (dup.status, dup.body["code"].as_str()),
            (StatusCode::CONFLICT, Some("duplicate_slug"))
        );
        let cases = [
            json!({}),
            json!({"name": ""}),
            json!({"name": "x".repeat(101)}),
            json!({"name": "X", "slug": "Bad Slug"}),
            json!({"name": "X", "parent_id": "cat_0192f0c4aaaaaaaaaaaaaaaaaaaaaaaa"}),
        ];
        for body in cases {
            let reply = app.post_json("/api/v1/categories", body.clone()).await;
            assert_eq!(
                reply.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{}: {body}: {}",
                app.label,
                reply.body
            );
        }
        let customer = app.keys.token_for("usr_c", &[], None);
        let denied = app
            .request(
                "POST",
                "/api/v1/categories",
                Some(&customer),
                Some(json!({"name": "Y"}).to_string()),
            )
            .await;
        assert_eq!(denied.status, StatusCode::FORBIDDEN);
        assert_eq!(app.count("categories").await, 1);
    }
}

#[tokio::test]
async fn listing_by_category_includes_sub_categories() {
    for app in apps().await {
        let clothing = app.create_category("Clothing", None).await;
        let tops = app.create_category("Tops", Some(id(&clothing))).await;
        let tees = app.create_category("Tees", Some(id(&tops))).await;
        let home = app.create_category("Home", None).await;
        for (i, category) in [&clothing, &tops, &tees, &home].iter().enumerate() {
            let mut body = product_body(&format!("P{i}"), &format!("P-{i}"));
            body["category_ids"] = json!([id(category)]);
            app.create_product(body).await;
        }
        let count = |key: String| {
            let app = &app;
            async move {
                let page = app
                    .get_public(&format!("/api/v1/products?category={key}"))
                    .await;
                assert_eq!(page.status, StatusCode::OK, "{}", page.body);
                page.body["data"].as_array().unwrap().len()
            }
        };
        assert_eq!(count(id(&clothing).to_owned()).await, 3);
        assert_eq!(count(id(&tops).to_owned()).await, 2);
        assert_eq!(count("tees".to_owned()).await, 1);
        assert_eq!(count(id(&home).to_owned()).await, 1);
        // Moving a subtree moves its products with it.
        app.patch(
            &format!("/api/v1/categories/{}", id(&tops)),
            json!({"parent_id": id(&home)}),
        )
        .await;
        assert_eq!(count(id(&clothing).to_owned()).await, 1);
        assert_eq!(count(id(&home).to_owned()).await, 3);
    }
}
