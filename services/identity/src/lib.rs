//! Identity: users, authentication, roles, API keys, organizations and teams.
//!
//! Identity signs the platform's access tokens (EdDSA JWTs) with keys it generates and stores,
//! publishes them at `/.well-known/jwks.json`, and in embedded mode hands them straight to the
//! process's token verifier.

pub mod accounts;
pub mod api;
pub mod domain;
pub mod events;
pub mod sessions;
pub mod store;
pub mod tokens;

use mercato_kernel::{Context, Service, ServiceInfo};
use mercato_store::Migrator;

/// Schema of the identity database.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// CloudEvents `source` of what this service publishes.
pub const SOURCE: &str = "mercato/identity";

/// Starts identity: loads (or creates) its signing keys, shares them with the process's
/// verifier, creates the bootstrap admin when configured, and returns its HTTP app.
pub async fn start(ctx: Context) -> anyhow::Result<Service> {
    let info =
        ServiceInfo::find("identity").ok_or_else(|| anyhow::anyhow!("identity not in catalog"))?;
    let state = api::AppState::start(&ctx).await?;
    mercato_bus::Relay::new(ctx.db.clone(), ctx.bus.clone())
        .spawn(ctx.shutdown.clone(), &ctx.tasks);
    let api = api::router(state);
    Ok(Service::new(info, api, api::ApiDoc::openapi(), &ctx))
}
