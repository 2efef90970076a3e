//! Events catalog publishes (`product.*`, through the outbox) and consumes
//! (`inventory.stock.updated`, which sets `variants.available` and `products.in_stock`).

use mercato_bus::{Consumer, Event, Handler};
use mercato_contracts::inventory::StockUpdated;
use mercato_kernel::Context;
use mercato_store::{Tx, now_micros};

use crate::api::AppState;
use crate::domain::product::Product;
use crate::store::products as store;

pub use mercato_contracts::subjects::{
    PRODUCT_ARCHIVED, PRODUCT_CREATED, PRODUCT_UPDATED, STOCK_UPDATED,
};

/// Writes a `product.*` event carrying the full product to the outbox, inside `tx`.
pub async fn publish_product(tx: &mut Tx, kind: &str, product: &Product) -> anyhow::Result<()> {
    let event = Event::new(crate::SOURCE, kind, product)?.with_subject(product.id.clone());
    mercato_bus::enqueue(tx, &event).await?;
    Ok(())
}

/// Starts the consumers.
pub fn spawn_consumers(ctx: &Context, state: &AppState) {
    Consumer::new(
        "catalog-stock",
        &[STOCK_UPDATED],
        state.db.clone(),
        StockFollower,
    )
    .spawn(&ctx.bus, ctx.shutdown.clone(), &ctx.tasks);
}

/// Follows inventory: stores a SKU's available units, recomputes the product's `in_stock`
/// and publishes `product.updated` so the search read model follows. Runs in the inbox
/// transaction, so a redelivered event has no second effect.
pub struct StockFollower;

#[async_trait::async_trait]
impl Handler for StockFollower {
    async fn handle(&self, event: &Event, tx: &mut Tx) -> anyhow::Result<()> {
        let stock: StockUpdated = serde_json::from_value(event.data.clone())?;
        let now = now_micros();
        let available = stock.available.max(0);
        let Some(product_id) = store::set_available(tx, &stock.sku, available, now).await? else {
            tracing::debug!(sku = %stock.sku, "stock of an unknown sku ignored");
            return Ok(());
        };
        store::refresh_in_stock(tx, &product_id, now).await?;
        if let Some(product) = store::find(tx, &product_id).await? {
            publish_product(tx, PRODUCT_UPDATED, &product).await?;
        }
        Ok(())
    }
}
