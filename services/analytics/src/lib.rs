//! Analytics: event tracking, the audit trail and the dead-letter store.
//!
//! `POST /api/v1/analytics/track` accepts an event in one transaction with its outbox row; the
//! relay publishes it as `analytics.metric` and this service's own consumer records and counts
//! it, exactly once, whatever crashes in between. Audit entries (`analytics.audit`) from any
//! service and dead letters (`analytics.dlq`) land here too.

pub mod api;
pub mod domain;
pub mod events;
pub mod store;

use mercato_bus::{Consumer, DLQ_SUBJECT, Relay};
use mercato_kernel::{Context, Service, ServiceInfo};
use mercato_store::Migrator;
use utoipa::OpenApi;

/// Schema of the analytics database.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// CloudEvents `source` of what this service publishes.
pub const SOURCE: &str = "mercato/analytics";

/// Starts the relay and the consumers and returns the service's HTTP app.
pub async fn start(ctx: Context) -> anyhow::Result<Service> {
    let info = ServiceInfo::find("analytics")
        .ok_or_else(|| anyhow::anyhow!("analytics not in catalog"))?;
    Relay::new(ctx.db.clone(), ctx.bus.clone()).spawn(ctx.shutdown.clone(), &ctx.tasks);
    Consumer::new(
        "analytics",
        &[events::METRIC, events::AUDIT],
        ctx.db.clone(),
        events::Recorder,
    )
    .spawn(&ctx.bus, ctx.shutdown.clone(), &ctx.tasks);
    Consumer::new(
        "analytics-dlq",
        &[DLQ_SUBJECT],
        ctx.db.clone(),
        events::DeadLetters,
    )
    .spawn(&ctx.bus, ctx.shutdown.clone(), &ctx.tasks);
    let api = api::router(api::AppState { db: ctx.db.clone() });
    Ok(Service::new(info, api, api::ApiDoc::openapi(), &ctx))
}
