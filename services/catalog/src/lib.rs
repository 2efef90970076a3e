//! Catalog: products, variants, categories, pricing, promotions and product search.
//!
//! The database is the source of truth; the search index (tantivy) is a read model that
//! follows product writes and stock events and can be rebuilt from the database.

pub mod api;
pub mod domain;
pub mod events;
pub mod ops;
pub mod search;
pub mod seed;
pub mod store;

use std::sync::Arc;

use mercato_kernel::{Context, Service, ServiceInfo};
use mercato_store::Migrator;

/// Schema of the catalog database.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// CloudEvents `source` of what this service publishes.
pub const SOURCE: &str = "mercato/catalog";

/// Starts catalog: opens (or rebuilds) the search index, starts the outbox relay and the event
/// consumers, and returns its HTTP app.
pub async fn start(ctx: Context) -> anyhow::Result<Service> {
    let info =
        ServiceInfo::find("catalog").ok_or_else(|| anyhow::anyhow!("catalog not in catalog"))?;
    let search = Arc::new(search::Search::open(&ctx).await?);
    let state = api::AppState {
        db: ctx.db.clone(),
        config: ctx.config.clone(),
        search,
    };
    mercato_bus::Relay::new(ctx.db.clone(), ctx.bus.clone())
        .spawn(ctx.shutdown.clone(), &ctx.tasks);
    events::spawn_consumers(&ctx, &state);
    Ok(Service::new(
        info,
        api::router(state),
        api::ApiDoc::openapi(),
        &ctx,
    ))
}
