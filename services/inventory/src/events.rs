//! Events inventory consumes: orders settle their reservations (`order.paid` commits,
//! `order.cancelled` releases) and catalog announces SKUs (`product.created`/`updated`), so a
//! SKU for sale but never received answers "insufficient stock", not "unknown".
//!
//! What inventory publishes is written by [`crate::ledger`].

use mercato_bus::{Consumer, Event, Handler};
use mercato_contracts::orders::OrderRef;
use mercato_contracts::subjects::{ORDER_CANCELLED, ORDER_PAID, PRODUCT_CREATED, PRODUCT_UPDATED};
use mercato_kernel::Context;
use mercato_store::{Tx, now_micros};
use serde::Deserialize;

use crate::domain::ReservationStatus;
use crate::ledger::Ledger;
use crate::store;

/// Starts the consumers.
pub fn spawn_consumers(ctx: &Context, ledger: &Ledger) {
    Consumer::new(
        "inventory-orders",
        &[ORDER_PAID, ORDER_CANCELLED],
        ctx.db.clone(),
        OrderSettler {
            ledger: ledger.clone(),
        },
    )
    .spawn(&ctx.bus, ctx.shutdown.clone(), &ctx.tasks);
    Consumer::new(
        "inventory-catalog",
        &[PRODUCT_CREATED, PRODUCT_UPDATED],
        ctx.db.clone(),
        SkuRegistrar,
    )
    .spawn(&ctx.bus, ctx.shutdown.clone(), &ctx.tasks);
}

/// Commits or releases what is still active for an order. Orders usually settles its
/// reservations itself; then there is nothing left to do here, which is the point: either
/// path settles each reservation exactly once.
pub struct OrderSettler {
    ledger: Ledger,
}

#[async_trait::async_trait]
impl Handler for OrderSettler {
    async fn handle(&self, event: &Event, tx: &mut Tx) -> anyhow::Result<()> {
        let order: OrderRef = serde_json::from_value(event.data.clone())?;
        let to = if event.kind == ORDER_PAID {
            ReservationStatus::Committed
        } else {
            ReservationStatus::Released
        };
        let settled = self.ledger.settle_reference_in(tx, &order.id, to).await?;
        if settled > 0 {
            tracing::info!(order = %order.id, settled, outcome = to.as_str(), "reservations settled by order event");
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct ProductSkus {
    #[serde(default)]
    variants: Vec<VariantSku>,
}

#[derive(Deserialize)]
struct VariantSku {
    sku: String,
}

/// Registers the SKUs of catalog's variants.
pub struct SkuRegistrar;

#[async_trait::async_trait]
impl Handler for SkuRegistrar {
    async fn handle(&self, event: &Event, tx: &mut Tx) -> anyhow::Result<()> {
        let product: ProductSkus = serde_json::from_value(event.data.clone())?;
        let now = now_micros();
        for variant in product.variants {
            if mercato_contracts::sku::is_valid(&variant.sku) {
                store::ensure_sku(tx, &variant.sku, now).await?;
            }
        }
        Ok(())
    }
}
