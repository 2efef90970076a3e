//! 200 buyers race for 50 units: exactly 50 orders are paid, every other one is cancelled
//! (out of stock) or refused, stock is conserved and payments match paid orders.

use std::sync::Arc;

use axum::http::StatusCode;
use futures::future::join_all;

use crate::{GOOD_CARD, Shop, config};

const BUYERS: usize = 200;
const UNITS: i64 = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_buyers_for_fifty_units_make_fifty_paid_orders() {
    for shop in Shop::all(config()).await {
        let shop = Arc::new(shop);
        let label = shop.label();
        shop.product("DROP", 4900, UNITS).await;
        let mut carts = Vec::new();
        for i in 0..BUYERS {
            // Carts are filled before the stock runs out: the race is at checkout.
            let token = shop.customer(&format!("usr_buyer{i:03}"));
            let cart = shop.cart(Some(&token), &[("DROP", 1)]).await;
            carts.push((token, cart));
        }
        let runs = carts.into_iter().enumerate().map(|(i, (token, cart))| {
            let shop = shop.clone();
            tokio::spawn(async move {
                shop.checkout(Some(&token), &cart, GOOD_CARD, &format!("race-{i}"))
                    .await
            })
        });
        let mut paid = 0;
        let mut cancelled = 0;
        let mut refused = 0;
        for reply in join_all(runs).await {
            let reply = reply.unwrap();
            match (reply.status, reply.body["status"].as_str()) {
                (StatusCode::CREATED, Some("paid")) => paid += 1,
                (StatusCode::CREATED, Some("cancelled")) => {
                    let reason = reply.body["cancel_reason"].as_str().unwrap_or_default();
                    assert!(reason.starts_with("out_of_stock"), "{label}: {reason}");
                    cancelled += 1;
                }
                (StatusCode::CONFLICT, _) => refused += 1,
                (status, _) => panic!("{label}: unexpected {status}: {}", reply.body),
            }
        }
        assert_eq!(paid, UNITS, "{label}: paid orders");
        assert_eq!(paid + cancelled + refused, BUYERS as i64, "{label}");
        assert_eq!(shop.orders_in("paid").await, UNITS, "{label}");
        assert_eq!(
            shop.orders_in("pending").await,
            0,
            "{label}: no order left pending"
        );
        assert_eq!(
            shop.succeeded_payments().await,
            UNITS,
            "{label}: one charge per paid order"
        );
        assert_eq!(
            shop.on_hand("DROP").await,
            0,
            "{label}: every unit sold once"
        );
        assert_eq!(shop.available("DROP").await, 0, "{label}");
        let reserved: i64 = sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(reserved), 0) AS BIGINT) FROM stock_levels WHERE sku = 'DROP'",
        )
        .fetch_one(shop.inventory.db.pool())
        .await
        .unwrap();
        assert_eq!(reserved, 0, "{label}: nothing left held");
    }
}
