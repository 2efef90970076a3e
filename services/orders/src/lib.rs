//! Orders: carts priced live, checkout as a saga that never loses money (reserve stock,
//! charge, commit; or undo), the order lifecycle with its history, and public tracking.
//!
//! Orders owns no stock and no money: it asks inventory and payments through
//! [`mercato_kernel::client`], with idempotency keys derived from the order, and keeps the
//! saga's progress in its own database so a restart resumes every unfinished checkout.

pub mod api;
pub mod checkout;
pub mod clients;
pub mod domain;
pub mod events;
pub mod saga;
pub mod store;

use mercato_kernel::{Context, Service, ServiceInfo};
use mercato_store::Migrator;

/// Schema of the orders database.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// CloudEvents `source` of what this service publishes.
pub const SOURCE: &str = "mercato/orders";

/// Starts orders: the outbox relay, the consumers, the saga resumer; returns its HTTP app.
pub async fn start(ctx: Context) -> anyhow::Result<Service> {
    let info = ServiceInfo::find("orders")
        .ok_or_else(|| anyhow::anyhow!("orders not in the service catalog"))?;
    let clients = clients::Clients::new(&ctx.services);
    let saga = saga::Saga::new(ctx.db.clone(), clients.clone(), ctx.config.clone())?;
    let checkout = checkout::Checkout::new(ctx.db.clone(), clients, saga);
    mercato_bus::Relay::new(ctx.db.clone(), ctx.bus.clone())
        .spawn(ctx.shutdown.clone(), &ctx.tasks);
    events::spawn_consumers(&ctx);
    events::spawn_worker(&ctx, &checkout);
    let state = api::AppState { checkout };
    Ok(Service::new(
        info,
        api::router(state),
        api::ApiDoc::openapi(),
        &ctx,
    ))
}
