//! Payments: payment intents with a Stripe-like state machine, card tokenization, provider
//! adapters behind one trait, captures, cancellations and refunds that never exceed what was
//! captured. Money only moves through [`engine::Engine`].

pub mod api;
pub mod domain;
pub mod engine;
pub mod providers;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use mercato_kernel::{Context, Service, ServiceInfo};
use mercato_store::Migrator;

/// Schema of the payments database.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// CloudEvents `source` of what this service publishes.
pub const SOURCE: &str = "mercato/payments";

/// The providers the configuration enables: always `test`; Stripe when `STRIPE_SECRET_KEY`
/// is set.
pub fn providers(_ctx: &Context) -> engine::Providers {
    engine::Providers::default().with(Arc::new(providers::test::TestProvider::new()))
}

/// Starts payments with the providers the configuration enables.
pub async fn start(ctx: Context) -> anyhow::Result<Service> {
    let providers = providers(&ctx);
    start_with(ctx, providers).await
}

/// Starts payments with the given providers (tests pass fakes of real providers' servers).
pub async fn start_with(ctx: Context, providers: engine::Providers) -> anyhow::Result<Service> {
    let info = ServiceInfo::find("payments")
        .ok_or_else(|| anyhow::anyhow!("payments not in the service catalog"))?;
    let timeout = Duration::from_millis(ctx.config.payments_provider_timeout_ms);
    let default = ctx.config.payments_default_provider.clone();
    anyhow::ensure!(
        providers.get(&default).is_some(),
        "PAYMENTS_DEFAULT_PROVIDER is `{default}`, which is not configured"
    );
    let engine = engine::Engine::new(ctx.db.clone(), providers, &default, timeout);
    mercato_bus::Relay::new(ctx.db.clone(), ctx.bus.clone())
        .spawn(ctx.shutdown.clone(), &ctx.tasks);
    let state = api::AppState {
        engine,
        config: ctx.config.clone(),
    };
    use utoipa::OpenApi;
    Ok(Service::new(
        info,
        api::router(state),
        api::ApiDoc::openapi(),
        &ctx,
    ))
}
