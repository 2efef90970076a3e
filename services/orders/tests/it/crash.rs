//! The saga interrupted after each step (the `ORDERS_SAGA_CRASH_AFTER` hook stops every
//! driver of the process right after persisting that step), then orders restarted on the same
//! database: every order ends `paid` or `cancelled`, with at most one charge, stock conserved.

use axum::http::StatusCode;
use mercato_kernel::Config;

use crate::{DECLINED_CARD, GOOD_CARD, Shop, config};

fn crashing_after(step: &str) -> Config {
    let mut config = config();
    config.orders_saga_crash_after = Some(step.to_owned());
    config
}

#[tokio::test]
async fn a_checkout_interrupted_at_any_step_ends_paid_or_cancelled_after_a_restart() {
    let steps = ["created", "reserved", "payment_created", "charged"];
    for (card, outcome) in [(GOOD_CARD, "paid"), (DECLINED_CARD, "cancelled")] {
        for step in steps {
            if card == DECLINED_CARD && step == "charged" {
                continue; // a declined card never gets there
            }
            for mut shop in Shop::all(crashing_after(step)).await {
                let label = format!("{} after {step} with {card}", shop.label());
                shop.product("LAMP", 3000, 4).await;
                let buyer = shop.customer("usr_ada");
                let cart = shop.cart(Some(&buyer), &[("LAMP", 2)]).await;
                let reply = shop.checkout(Some(&buyer), &cart, card, "crash").await;
                assert_eq!(reply.status, StatusCode::CREATED, "{label}: {}", reply.body);
                assert_eq!(reply.body["status"], "pending", "{label}: halted mid-way");
                let id = reply.body["id"].as_str().unwrap().to_owned();

                shop.restart_orders(config()).await;
                shop.orders
                    .eventually("the order is finished", || async {
                        shop.orders_in(outcome).await == 1
                    })
                    .await;
                let order = shop
                    .call(
                        "GET",
                        &format!("/api/v1/orders/{id}"),
                        Some(&buyer),
                        None,
                        None,
                    )
                    .await;
                assert_eq!(order.body["status"], outcome, "{label}: {}", order.body);
                let charged = if outcome == "paid" { 1 } else { 0 };
                assert_eq!(shop.succeeded_payments().await, charged, "{label}");
                assert!(
                    shop.payments_count().await <= 1,
                    "{label}: one intent at most"
                );
                let sold = if outcome == "paid" { 2 } else { 0 };
                assert_eq!(shop.on_hand("LAMP").await, 4 - sold, "{label}");
                assert_eq!(
                    shop.available("LAMP").await,
                    4 - sold,
                    "{label}: nothing held"
                );
                shop.close().await;
            }
        }
    }
}
