//! Checkout end to end: a good card pays and takes the stock, a declined card cancels and
//! leaves everything as it was, bad input changes nothing, the command event places orders.

use axum::http::StatusCode;
use mercato_bus::{Event, enqueue};
use mercato_contracts::subjects::{
    COMMAND_CHECKOUT, NOTIFICATION_EMAIL, ORDER_CANCELLED, ORDER_PAID,
};
use mercato_kernel::testing::PROBLEM;
use serde_json::json;

use crate::{DECLINED_CARD, GOOD_CARD, Shop, address, checkout_body, config};

#[tokio::test]
async fn a_good_card_pays_and_a_declined_card_cancels_with_stock_and_money_untouched() {
    for shop in Shop::all(config()).await {
        let label = shop.label();
        shop.product("TEE-M", 2500, 10).await;
        let buyer = shop.customer("usr_ada");
        let cart = shop.cart(Some(&buyer), &[("TEE-M", 2)]).await;
        let reply = shop
            .checkout(Some(&buyer), &cart, GOOD_CARD, "k-paid")
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{label}: {}", reply.body);
        let order = &reply.body;
        assert_eq!(order["status"], "paid", "{label}: {order}");
        assert_eq!(order["total"], 5000, "{label}");
        assert!(order["number"].as_str().is_some_and(|n| !n.is_empty()));
        let history: Vec<_> = order["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["to"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(history, ["pending", "paid"], "{label}");
        assert_eq!(shop.on_hand("TEE-M").await, 8, "{label}: stock went down");
        assert_eq!(
            shop.available("TEE-M").await,
            8,
            "{label}: nothing left reserved"
        );
        assert_eq!(shop.succeeded_payments().await, 1, "{label}");
        let id = order["id"].as_str().unwrap();
        let paid = shop.orders.outbox(ORDER_PAID).await;
        assert!(
            paid.iter().any(|e| e["data"]["id"] == id),
            "{label}: order.paid"
        );
        let mails = shop.orders.outbox(NOTIFICATION_EMAIL).await;
        assert!(
            mails
                .iter()
                .any(|e| e["data"]["template"] == "order_receipt"
                    && e["data"]["to"] == "buyer@example.com"),
            "{label}: receipt email"
        );

        // The same key again answers the same order and charges nothing more.
        let again = shop
            .checkout(Some(&buyer), &cart, GOOD_CARD, "k-paid")
            .await;
        assert_eq!(again.body["id"], order["id"], "{label}: {}", again.body);
        assert_eq!(shop.succeeded_payments().await, 1, "{label}");

        let cart = shop.cart(Some(&buyer), &[("TEE-M", 3)]).await;
        let reply = shop
            .checkout(Some(&buyer), &cart, DECLINED_CARD, "k-declined")
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{label}: {}", reply.body);
        assert_eq!(reply.body["status"], "cancelled", "{label}: {}", reply.body);
        let reason = reply.body["cancel_reason"].as_str().unwrap();
        assert!(reason.contains("declined"), "{label}: {reason}");
        assert_eq!(shop.on_hand("TEE-M").await, 8, "{label}: stock unchanged");
        assert_eq!(
            shop.available("TEE-M").await,
            8,
            "{label}: reservation released"
        );
        assert_eq!(shop.succeeded_payments().await, 1, "{label}: no charge");
        let cancelled = shop.orders.outbox(ORDER_CANCELLED).await;
        assert_eq!(cancelled.len(), 1, "{label}");
    }
}

#[tokio::test]
async fn bad_checkouts_answer_problems_and_change_nothing() {
    for shop in Shop::all(config()).await {
        let label = shop.label();
        shop.product("MUG", 900, 5).await;
        let ada = shop.customer("usr_ada");
        let bob = shop.customer("usr_bob");
        let full = shop.cart(Some(&ada), &[("MUG", 1)]).await;
        let empty = shop.cart(None, &[]).await;
        let unknown = format!("cart_{}", "0".repeat(32));
        let mut bad_address = checkout_body(&full, GOOD_CARD);
        bad_address["shipping_address"]["country"] = json!("Germany");
        bad_address["shipping_address"]["postal_code"] = json!("");
        let mut bad_card = checkout_body(&full, GOOD_CARD);
        bad_card["payment_method"]["card"]["number"] = json!("1234");
        let mut bad_email = checkout_body(&full, GOOD_CARD);
        bad_email["email"] = json!("not-an-email");
        let cases = [
            (
                "empty cart",
                None,
                checkout_body(&empty, GOOD_CARD),
                Some("k1"),
                422,
            ),
            (
                "unknown cart",
                None,
                checkout_body(&unknown, GOOD_CARD),
                Some("k2"),
                404,
            ),
            (
                "foreign cart",
                Some(&bob),
                checkout_body(&full, GOOD_CARD),
                Some("k3"),
                404,
            ),
            (
                "guest on a customer's cart",
                None,
                checkout_body(&full, GOOD_CARD),
                Some("k4"),
                404,
            ),
            ("invalid address", Some(&ada), bad_address, Some("k5"), 422),
            ("invalid card", Some(&ada), bad_card, Some("k6"), 422),
            ("invalid email", Some(&ada), bad_email, Some("k7"), 422),
            (
                "no idempotency key",
                Some(&ada),
                checkout_body(&full, GOOD_CARD),
                None,
                428,
            ),
            (
                "malformed cart id",
                Some(&ada),
                checkout_body("cart_x", GOOD_CARD),
                Some("k8"),
                422,
            ),
        ];
        for (what, token, body, key, status) in cases {
            let reply = shop
                .call(
                    "POST",
                    "/api/v1/checkout",
                    token.map(String::as_str),
                    Some(body),
                    key,
                )
                .await;
            assert_eq!(
                reply.status.as_u16(),
                status,
                "{label}: {what}: {}",
                reply.body
            );
            assert_eq!(reply.content_type, PROBLEM, "{label}: {what}");
        }
        assert_eq!(shop.orders.count("orders").await, 0, "{label}");
        assert_eq!(shop.payments_count().await, 0, "{label}");
        assert_eq!(shop.available("MUG").await, 5, "{label}");

        // Items: quantity 0, 10^9, unknown SKUs, more than in stock.
        let cart = shop.cart(Some(&ada), &[]).await;
        let path = format!("/api/v1/carts/{cart}/items");
        for (what, body, status) in [
            ("quantity 0", json!({"sku": "MUG", "quantity": 0}), 422),
            (
                "quantity 10^9",
                json!({"sku": "MUG", "quantity": 1_000_000_000}),
                422,
            ),
            ("unknown sku", json!({"sku": "NOPE", "quantity": 1}), 422),
            ("malformed sku", json!({"sku": "a b", "quantity": 1}), 422),
            (
                "more than in stock",
                json!({"sku": "MUG", "quantity": 6}),
                409,
            ),
        ] {
            let reply = shop.call("POST", &path, Some(&ada), Some(body), None).await;
            assert_eq!(
                reply.status.as_u16(),
                status,
                "{label}: {what}: {}",
                reply.body
            );
            assert_eq!(reply.content_type, PROBLEM, "{label}: {what}");
            if status == 409 {
                assert_eq!(reply.body["available"], 5, "{label}: {}", reply.body);
            }
        }
        assert_eq!(
            shop.orders.count("cart_items").await,
            1,
            "{label}: only the first cart's"
        );
        // Someone else's cart is not found.
        let reply = shop
            .call(
                "GET",
                &format!("/api/v1/carts/{full}"),
                Some(&bob),
                None,
                None,
            )
            .await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{label}");
    }
}

#[tokio::test]
async fn a_checkout_command_on_the_bus_places_and_pays_an_order() {
    for shop in Shop::all(config()).await {
        let label = shop.label();
        shop.product("CAP", 1500, 3).await;
        let ada = shop.customer("usr_ada");
        let cart = shop.cart(Some(&ada), &[("CAP", 1)]).await;
        let card = shop
            .payments
            .request(
                "POST",
                "/api/v1/payment-methods",
                Some(&ada),
                Some(
                    json!({"type": "card", "card": {"number": GOOD_CARD, "exp_month": 1,
                                                   "exp_year": 2041, "cvc": "999"}})
                    .to_string(),
                ),
            )
            .await;
        assert_eq!(card.status, StatusCode::CREATED, "{label}: {}", card.body);
        let command = json!({
            "cart_id": cart,
            "customer_id": "usr_ada",
            "email": "ada@example.com",
            "shipping_address": address(),
            "billing_address": null,
            "payment_token": card.body["token"],
            "idempotency_key": "cmd-1",
        });
        // Published twice: the second has no effect.
        for _ in 0..2 {
            let event = Event::new("test", COMMAND_CHECKOUT, &command).unwrap();
            let mut tx = shop.orders.db.begin().await.unwrap();
            enqueue(&mut tx, &event).await.unwrap();
            tx.commit().await.unwrap();
        }
        shop.orders
            .eventually("the commanded order is paid", || async {
                shop.orders_in("paid").await == 1
            })
            .await;
        assert_eq!(shop.orders.count("orders").await, 1, "{label}");
        assert_eq!(shop.succeeded_payments().await, 1, "{label}");
        assert_eq!(shop.on_hand("CAP").await, 2, "{label}");

        // A guest may not pay with someone's token.
        let guest_cart = shop.cart(None, &[("CAP", 1)]).await;
        let mut body = checkout_body(&guest_cart, GOOD_CARD);
        body["payment_method"] = json!({"type": "token", "token": card.body["token"]});
        let reply = shop
            .call("POST", "/api/v1/checkout", None, Some(body), Some("steal"))
            .await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{label}: {}",
            reply.body
        );
        assert_eq!(shop.orders.count("orders").await, 1, "{label}");
    }
}
