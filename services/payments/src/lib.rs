//! Payments: payment intents with a Stripe-like state machine, card tokenization, provider
//! adapters behind one trait, captures, cancellations and refunds that never exceed what was
//! captured. Money only moves through [`engine::Engine`].

pub mod api;
pub mod domain;
pub mod engine;
pub mod providers;
pub mod reports;
pub mod risk;
pub mod routing;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use mercato_kernel::{Context, Service, ServiceInfo};
use mercato_store::Migrator;

/// Schema of the payments database.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// CloudEvents `source` of what this service publishes.
pub const SOURCE: &str = "mercato/payments";

/// The engine's settings from the configuration; refuses routes naming unconfigured
/// providers.
async fn settings(
    ctx: &Context,
    providers: &engine::Providers,
) -> anyhow::Result<engine::Settings> {
    let config = &ctx.config;
    let names = providers.names();
    let default = config.payments_default_provider.clone();
    anyhow::ensure!(
        names.contains(&default.as_str()),
        "PAYMENTS_DEFAULT_PROVIDER is `{default}`, which is not configured (configured: {})",
        names.join(", ")
    );
    let routes = routing::Routes::parse(&config.payments_routes, &names)
        .map_err(|e| anyhow::anyhow!("PAYMENTS_ROUTES: {e}"))?;
    let fingerprint_key = match &config.payments_fingerprint_key {
        Some(key) => key.expose().as_bytes().to_vec(),
        None => {
            let fresh = hex::encode(rand::random::<[u8; 32]>());
            let mut conn = ctx.db.pool().acquire().await?;
            store::service_key(
                &mut conn,
                "card_fingerprint",
                &fresh,
                mercato_store::now_micros(),
            )
            .await?
            .into_bytes()
        }
    };
    Ok(engine::Settings {
        default_provider: default,
        call_timeout: Duration::from_millis(config.payments_provider_timeout_ms),
        routes,
        breakers: Arc::new(routing::Breakers::new(
            config.payments_breaker_failures,
            Duration::from_millis(config.payments_breaker_cooldown_ms),
        )),
        thresholds: risk::Thresholds {
            review: config.payments_risk_review_threshold,
            block: config.payments_risk_block_threshold,
        },
        fingerprint_key,
    })
}

/// Starts payments with the built-in `test` provider and every provider the configuration
/// enables; the test provider's disputes (card `…0259`) arrive like webhooks.
pub async fn start(ctx: Context) -> anyhow::Result<Service> {
    let test = Arc::new(providers::test::TestProvider::new());
    let providers = configured(&ctx.config)?.with(test.clone());
    let (service, engine) = launch(ctx.clone(), providers).await?;
    let shutdown = ctx.shutdown.clone();
    ctx.tasks.spawn(async move {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
            for event in test.due_disputes() {
                if let Err(e) = engine.apply_webhook("test", &event).await {
                    tracing::warn!(error = %e, "recording a test dispute failed");
                }
            }
        }
    });
    Ok(service)
}

/// The real providers whose credentials the configuration holds.
fn configured(config: &mercato_kernel::Config) -> anyhow::Result<engine::Providers> {
    let timeout = Duration::from_millis(config.payments_provider_timeout_ms);
    let mut set = engine::Providers::default();
    if let Some(key) = &config.stripe_secret_key {
        let mut stripe =
            providers::stripe::Stripe::new(&config.stripe_api_base, key.clone(), timeout)
                .map_err(|e| anyhow::anyhow!("STRIPE_*: {e}"))?;
        if let Some(secret) = &config.stripe_webhook_secret {
            stripe = stripe.with_webhook_secret(secret.clone());
        }
        set = set.with(Arc::new(stripe));
    }
    if let (Some(id), Some(secret)) = (&config.paypal_client_id, &config.paypal_client_secret) {
        let paypal = providers::paypal::PayPal::new(
            &config.paypal_api_base,
            id.clone(),
            secret.clone(),
            config.paypal_webhook_id.clone(),
            timeout,
        )
        .map_err(|e| anyhow::anyhow!("PAYPAL_*: {e}"))?;
        set = set.with(Arc::new(paypal));
    }
    if let (Some(public), Some(private)) =
        (&config.braintree_public_key, &config.braintree_private_key)
    {
        let braintree = providers::braintree::Braintree::new(
            &config.braintree_api_base,
            public.clone(),
            private.clone(),
            config.braintree_merchant_account_id.clone(),
            timeout,
        )
        .map_err(|e| anyhow::anyhow!("BRAINTREE_*: {e}"))?;
        set = set.with(Arc::new(braintree));
    }
    Ok(set)
}

/// Starts payments with the given providers (tests pass fakes of real providers' servers).
pub async fn start_with(ctx: Context, providers: engine::Providers) -> anyhow::Result<Service> {
    Ok(launch(ctx, providers).await?.0)
}

async fn launch(
    ctx: Context,
    providers: engine::Providers,
) -> anyhow::Result<(Service, engine::Engine)> {
    let info = ServiceInfo::find("payments")
        .ok_or_else(|| anyhow::anyhow!("payments not in the service catalog"))?;
    let settings = settings(&ctx, &providers).await?;
    let engine = engine::Engine::new(ctx.db.clone(), providers, settings);
    mercato_bus::Relay::new(ctx.db.clone(), ctx.bus.clone())
        .spawn(ctx.shutdown.clone(), &ctx.tasks);
    let state = api::AppState {
        engine: engine.clone(),
        config: ctx.config.clone(),
    };
    use utoipa::OpenApi;
    let service = Service::new(info, api::router(state), api::ApiDoc::openapi(), &ctx);
    Ok((service, engine))
}
