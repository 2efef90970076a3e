//! After checkout: fulfill, deliver, refund (lines with restock), cancel a paid order, the
//! public tracking page, illegal transitions, and a payment held for review.

use axum::http::StatusCode;
use mercato_contracts::subjects::{ORDER_DELIVERED, ORDER_FULFILLED, ORDER_REFUNDED};
use serde_json::json;

use crate::{GOOD_CARD, Shop, config};

#[tokio::test]
async fn a_paid_order_ships_is_delivered_refunded_and_tracked() {
    for shop in Shop::all(config()).await {
        let label = shop.label();
        shop.product("BOOT", 8000, 5).await;
        let ada = shop.customer("usr_ada");
        let staff = shop.platform.staff.clone();
        let cart = shop.cart(Some(&ada), &[("BOOT", 2)]).await;
        let order = shop
            .checkout(Some(&ada), &cart, GOOD_CARD, "life")
            .await
            .body;
        assert_eq!(order["status"], "paid", "{label}: {order}");
        let id = order["id"].as_str().unwrap();
        let number = order["number"].as_str().unwrap();
        let path = |action: &str| format!("/api/v1/orders/{id}/{action}");

        // Customers may not ship, and delivering before shipping is illegal.
        let reply = shop
            .call(
                "POST",
                &path("fulfill"),
                Some(&ada),
                Some(json!({"carrier": "DHL", "tracking_number": "1Z"})),
                None,
            )
            .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{label}");
        let reply = shop
            .call("POST", &path("deliver"), Some(&staff), None, None)
            .await;
        assert_eq!(
            reply.status,
            StatusCode::CONFLICT,
            "{label}: {}",
            reply.body
        );
        assert_eq!(reply.body["code"], "illegal_transition");

        let reply = shop
            .call(
                "POST",
                &path("fulfill"),
                Some(&staff),
                Some(json!({"carrier": "DHL", "tracking_number": "JD0001"})),
                None,
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{label}: {}", reply.body);
        assert_eq!(reply.body["status"], "fulfilled");
        // Shipped orders are refunded, not cancelled.
        let reply = shop
            .call("POST", &path("cancel"), Some(&ada), None, None)
            .await;
        assert_eq!(
            reply.status,
            StatusCode::CONFLICT,
            "{label}: {}",
            reply.body
        );

        let reply = shop
            .call("POST", &path("deliver"), Some(&staff), None, None)
            .await;
        assert_eq!(reply.body["status"], "delivered", "{label}: {}", reply.body);

        // Tracking: public with number and email, 404 with a wrong email.
        let track = format!("/api/v1/orders/{id}/tracking?email=BUYER@example.com&number={number}");
        let reply = shop.call("GET", &track, None, None, None).await;
        assert_eq!(reply.status, StatusCode::OK, "{label}: {}", reply.body);
        assert_eq!(reply.body["carrier"], "DHL");
        assert_eq!(reply.body["tracking_number"], "JD0001");
        let wrong = format!("/api/v1/orders/{id}/tracking?email=eve@example.com&number={number}");
        assert_eq!(
            shop.call("GET", &wrong, None, None, None).await.status,
            StatusCode::NOT_FOUND
        );

        // Refund one boot with restock; a repeat with the same key refunds nothing more.
        let body = json!({"lines": [{"sku": "BOOT", "quantity": 1}], "restock": true});
        let reply = shop
            .call(
                "POST",
                &path("refund"),
                Some(&staff),
                Some(body.clone()),
                None,
            )
            .await;
        assert_eq!(reply.status, StatusCode::PRECONDITION_REQUIRED, "{label}");
        for _ in 0..2 {
            let reply = shop
                .call(
                    "POST",
                    &path("refund"),
                    Some(&staff),
                    Some(body.clone()),
                    Some("r1"),
                )
                .await;
            assert_eq!(reply.status, StatusCode::OK, "{label}: {}", reply.body);
            assert_eq!(reply.body["status"], "partially_refunded");
            assert_eq!(reply.body["amount_refunded"], 8000);
        }
        assert_eq!(shop.on_hand("BOOT").await, 4, "{label}: one boot back");
        // More than is left is refused; the rest refunds it all.
        let reply = shop
            .call(
                "POST",
                &path("refund"),
                Some(&staff),
                Some(json!({"amount": 8001})),
                Some("r2"),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::CONFLICT,
            "{label}: {}",
            reply.body
        );
        let reply = shop
            .call(
                "POST",
                &path("refund"),
                Some(&staff),
                Some(json!({"amount": 8000})),
                Some("r3"),
            )
            .await;
        assert_eq!(reply.body["status"], "refunded", "{label}: {}", reply.body);
        let refunded: i64 = sqlx::query_scalar("SELECT amount_refunded FROM payments")
            .fetch_one(shop.payments.db.pool())
            .await
            .unwrap();
        assert_eq!(refunded, 16000, "{label}: payments refunded it all");
        for subject in [ORDER_FULFILLED, ORDER_DELIVERED] {
            assert_eq!(
                shop.orders.outbox(subject).await.len(),
                1,
                "{label}: {subject}"
            );
        }
        assert_eq!(shop.orders.outbox(ORDER_REFUNDED).await.len(), 2, "{label}");
        let history = shop
            .call(
                "GET",
                &format!("/api/v1/orders/{id}"),
                Some(&ada),
                None,
                None,
            )
            .await
            .body["history"]
            .as_array()
            .unwrap()
            .len();
        assert_eq!(
            history, 6,
            "{label}: pending paid fulfilled delivered partially_refunded refunded"
        );

        // Lists: mine; staff filter by status.
        let mine = shop
            .call("GET", "/api/v1/orders", Some(&ada), None, None)
            .await;
        assert_eq!(mine.body["data"].as_array().unwrap().len(), 1, "{label}");
        let bob = shop.customer("usr_bob");
        let theirs = shop
            .call("GET", "/api/v1/orders", Some(&bob), None, None)
            .await;
        assert_eq!(theirs.body["data"], json!([]), "{label}");
        let reply = shop
            .call(
                "GET",
                &format!("/api/v1/orders/{id}"),
                Some(&bob),
                None,
                None,
            )
            .await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{label}");
        let refunded = shop
            .call(
                "GET",
                "/api/v1/orders?status=refunded",
                Some(&staff),
                None,
                None,
            )
            .await;
        assert_eq!(refunded.body["data"][0]["id"], id, "{label}");
    }
}

#[tokio::test]
async fn cancelling_a_paid_order_refunds_it_and_returns_the_stock() {
    for shop in Shop::all(config()).await {
        let label = shop.label();
        shop.product("VASE", 1200, 3).await;
        let ada = shop.customer("usr_ada");
        let cart = shop.cart(Some(&ada), &[("VASE", 3)]).await;
        let order = shop.checkout(Some(&ada), &cart, GOOD_CARD, "c").await.body;
        assert_eq!(shop.on_hand("VASE").await, 0, "{label}");
        let id = order["id"].as_str().unwrap();
        let reply = shop
            .call(
                "POST",
                &format!("/api/v1/orders/{id}/cancel"),
                Some(&ada),
                None,
                None,
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{label}: {}", reply.body);
        assert_eq!(reply.body["status"], "cancelled");
        assert_eq!(reply.body["amount_refunded"], 3600);
        assert_eq!(shop.on_hand("VASE").await, 3, "{label}: restocked");
        let again = shop
            .call(
                "POST",
                &format!("/api/v1/orders/{id}/cancel"),
                Some(&ada),
                None,
                None,
            )
            .await;
        assert_eq!(again.status, StatusCode::CONFLICT, "{label}");
        assert_eq!(shop.on_hand("VASE").await, 3, "{label}: once");
    }
}

#[tokio::test]
async fn a_payment_held_for_review_holds_the_order_until_staff_decide() {
    let mut config = config();
    // A first purchase above 1,000.00 scores 15: that is a review here.
    config.payments_risk_review_threshold = 10;
    for shop in Shop::all(config.clone()).await {
        let label = shop.label();
        shop.product("SOFA", 150_000, 2).await;
        let ada = shop.customer("usr_ada");
        let cart = shop.cart(Some(&ada), &[("SOFA", 1)]).await;
        let order = shop
            .checkout(Some(&ada), &cart, GOOD_CARD, "hold")
            .await
            .body;
        assert_eq!(order["status"], "on_hold", "{label}: {order}");
        assert_eq!(
            shop.available("SOFA").await,
            1,
            "{label}: held while reviewed"
        );
        let payment = order["payment_id"].as_str().unwrap();
        let reply = shop
            .payments
            .post_json(
                &format!("/api/v1/payments/{payment}/review"),
                json!({"decision": "approve"}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{label}: {}", reply.body);
        shop.orders
            .eventually("the reviewed order is paid", || async {
                shop.orders_in("paid").await == 1
            })
            .await;
        assert_eq!(shop.on_hand("SOFA").await, 1, "{label}");

        // Rejected in review: cancelled, stock back. (Another buyer: a second purchase by
        // the same email is no first purchase.)
        let bob = shop.customer("usr_bob");
        let cart = shop.cart(Some(&bob), &[("SOFA", 1)]).await;
        let mut body = crate::checkout_body(&cart, GOOD_CARD);
        body["email"] = json!("bob@example.com");
        let order = shop
            .call(
                "POST",
                "/api/v1/checkout",
                Some(&bob),
                Some(body),
                Some("hold-2"),
            )
            .await
            .body;
        assert_eq!(order["status"], "on_hold", "{label}: {order}");
        let payment = order["payment_id"].as_str().unwrap();
        shop.payments
            .post_json(
                &format!("/api/v1/payments/{payment}/review"),
                json!({"decision": "reject"}),
            )
            .await;
        shop.orders
            .eventually("the rejected order is cancelled", || async {
                shop.orders_in("cancelled").await == 1
            })
            .await;
        assert_eq!(shop.available("SOFA").await, 1, "{label}");
        assert_eq!(shop.succeeded_payments().await, 1, "{label}");
    }
}
