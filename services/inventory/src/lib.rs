//! Inventory: warehouses, stock per SKU per warehouse, the movements ledger, reservations
//! that never oversell, low-stock alerts and a live stock stream.
//!
//! Stock only changes through [`ledger::Ledger`], one conditional update per warehouse row,
//! with a ledger row and an outbox event in the same transaction.

pub mod api;
pub mod domain;
pub mod events;
pub mod feed;
pub mod ledger;
pub mod store;
pub mod verify;

use std::time::Duration;

use mercato_kernel::{Context, Service, ServiceInfo};
use mercato_store::{Migrator, now_micros};

/// Schema of the inventory database.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// CloudEvents `source` of what this service publishes.
pub const SOURCE: &str = "mercato/inventory";

/// Starts inventory: the outbox relay, the event consumers, the expiry sweeper and the live
/// feed; returns its HTTP app.
pub async fn start(ctx: Context) -> anyhow::Result<Service> {
    let info = ServiceInfo::find("inventory")
        .ok_or_else(|| anyhow::anyhow!("inventory not in the service catalog"))?;
    let ledger = ledger::Ledger::new(ctx.db.clone(), ctx.config.inventory_low_stock_threshold);
    let feed = feed::Feed::spawn(ctx.db.clone(), ctx.shutdown.clone(), &ctx.tasks);
    mercato_bus::Relay::new(ctx.db.clone(), ctx.bus.clone())
        .spawn(ctx.shutdown.clone(), &ctx.tasks);
    events::spawn_consumers(&ctx, &ledger);
    spawn_sweeper(&ctx, ledger.clone());
    let state = api::AppState {
        ledger,
        feed,
        config: ctx.config.clone(),
    };
    Ok(Service::new(
        info,
        api::router(state),
        api::ApiDoc::openapi(),
        &ctx,
    ))
}

/// Releases expired reservations every `INVENTORY_SWEEP_INTERVAL_MS`. Replicas may all run it:
/// each reservation is settled by a conditional update, so only one of them releases it.
fn spawn_sweeper(ctx: &Context, ledger: ledger::Ledger) {
    let period = Duration::from_millis(ctx.config.inventory_sweep_interval_ms.max(10));
    let shutdown = ctx.shutdown.clone();
    ctx.tasks.spawn(async move {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(period) => {}
            }
            match ledger.expire_due(now_micros()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(released = n, "expired reservations released"),
                Err(e) => tracing::warn!(error = %e, "releasing expired reservations failed"),
            }
        }
    });
}
