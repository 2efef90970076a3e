//! Carts: totals from the catalog's quote with a coupon, shipping by weight and country, tax
//! inclusive or added, and a guest cart merged into the customer's on sign-in.

use axum::http::StatusCode;
use serde_json::json;

use crate::{Shop, config};

#[tokio::test]
async fn cart_totals_add_promotions_shipping_and_tax_and_say_how() {
    for shop in Shop::all(config()).await {
        let label = shop.label();
        shop.product("SHIRT", 2000, 20).await; // 400 g each
        let promo = shop
            .catalog
            .post_json(
                "/api/v1/promotions",
                json!({"name": "Ten off", "kind": "percentage", "basis_points": 1000,
                       "target": "all", "coupon_code": "TEN"}),
            )
            .await;
        assert_eq!(promo.status, StatusCode::CREATED, "{label}: {}", promo.body);
        let staff = shop.platform.staff.clone();
        for rate in [
            json!({"name": "Parcel", "countries": ["DE"], "currency": "EUR", "amount": 490,
                   "max_weight_grams": 1000}),
            json!({"name": "Heavy parcel", "countries": ["DE"], "currency": "EUR", "amount": 990,
                   "min_weight_grams": 1000}),
        ] {
            let reply = shop
                .call(
                    "POST",
                    "/api/v1/shipping-rates",
                    Some(&staff),
                    Some(rate),
                    None,
                )
                .await;
            assert_eq!(reply.status, StatusCode::CREATED, "{label}: {}", reply.body);
        }
        let reply = shop
            .call(
                "PUT",
                "/api/v1/tax-rates",
                Some(&staff),
                Some(json!({"country": "DE", "name": "MwSt", "rate_bps": 1900})),
                None,
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{label}: {}", reply.body);
        let reply = shop
            .call(
                "PUT",
                "/api/v1/tax-rates",
                Some(&staff),
                Some(json!({"country": "US", "region": "NY", "name": "Sales tax",
                              "rate_bps": 800, "inclusive": false, "applies_to_shipping": false})),
                None,
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{label}: {}", reply.body);

        let cart = shop.cart(None, &[("SHIRT", 3)]).await;
        let path = format!("/api/v1/carts/{cart}");
        let reply = shop
            .call(
                "POST",
                &format!("{path}/coupon"),
                None,
                Some(json!({"code": "ten"})),
                None,
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{label}: {}", reply.body);
        let reply = shop
            .call("PATCH", &path, None, Some(json!({"country": "de"})), None)
            .await;
        let c = &reply.body;
        assert_eq!(c["subtotal"], 6000, "{label}: {c}");
        assert_eq!(c["discount_total"], 600, "{label}");
        assert_eq!(c["shipping"]["name"], "Heavy parcel", "{label}: 1,200 g");
        assert_eq!(c["shipping"]["amount"], 990);
        // 19 % inside 5,400 is 862; inside 990 is 158.
        assert_eq!(c["tax_total"], 862 + 158, "{label}: {c}");
        assert_eq!(
            c["total"],
            5400 + 990,
            "{label}: inclusive tax is not added"
        );
        assert_eq!(c["items"][0]["explanation"]["tax"]["rate_bps"], 1900);
        assert!(
            c["items"][0]["explanation"]["discounts"][0]["reason"].is_string(),
            "{c}"
        );

        // No rate ships to Japan: the cart says why, checkout would refuse.
        let reply = shop
            .call("PATCH", &path, None, Some(json!({"country": "JP"})), None)
            .await;
        assert!(
            reply.body["pricing_error"].as_str().unwrap().contains("JP"),
            "{label}"
        );

        // A coupon that does not exist is refused and not kept.
        let reply = shop
            .call(
                "POST",
                &format!("{path}/coupon"),
                None,
                Some(json!({"code": "NOPE"})),
                None,
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{label}: {}",
            reply.body
        );
        let reply = shop.call("GET", &path, None, None, None).await;
        assert_eq!(reply.body["coupon"], "ten", "{label}");
    }
}

#[tokio::test]
async fn a_guest_cart_merges_into_the_customers_cart_on_sign_in() {
    for shop in Shop::all(config()).await {
        let label = shop.label();
        shop.product("SOCK", 500, 50).await;
        shop.product("HAT", 1500, 50).await;
        let ada = shop.customer("usr_ada");
        let mine = shop.cart(Some(&ada), &[("SOCK", 2)]).await;
        let guest = shop.cart(None, &[("SOCK", 1), ("HAT", 1)]).await;
        let reply = shop
            .call(
                "POST",
                &format!("/api/v1/carts/{guest}/merge"),
                Some(&ada),
                None,
                None,
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{label}: {}", reply.body);
        assert_eq!(reply.body["id"], mine, "{label}");
        let items: Vec<(String, i64)> = reply.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["sku"].as_str().unwrap().to_owned(),
                    i["quantity"].as_i64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            items,
            [("SOCK".to_owned(), 3), ("HAT".to_owned(), 1)],
            "{label}"
        );
        assert_eq!(reply.body["total"], 3000, "{label}");
        let old = shop
            .call("GET", &format!("/api/v1/carts/{guest}"), None, None, None)
            .await;
        assert_eq!(old.body["status"], "merged", "{label}");
        // Another customer cannot take Ada's cart.
        let bob = shop.customer("usr_bob");
        let reply = shop
            .call(
                "POST",
                &format!("/api/v1/carts/{mine}/merge"),
                Some(&bob),
                None,
                None,
            )
            .await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{label}");
    }
}
