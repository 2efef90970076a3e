//! What every service looks like to the binary and the gateway.

use std::sync::Arc;

use axum::Router;
use mercato_bus::Bus;
use mercato_store::Db;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Authenticator;
use crate::client::Services;
use crate::config::Config;
use crate::health::Readiness;

/// Static facts about one service of the platform (DESIGN.md §6).
#[derive(Debug)]
pub struct ServiceInfo {
    /// Short name: `orders`, used in URLs, database names and `<NAME>_…` variables.
    pub name: &'static str,
    /// Variable naming its port, e.g. `ORDER_SERVICE_PORT`.
    pub port_var: &'static str,
    /// Port when the variable is unset.
    pub default_port: u16,
    /// The original deployment's prefix for `<STEM>_SERVICE_URL` / `<STEM>_DATABASE_URL`
    /// (e.g. `USER` for identity), accepted beside the service name.
    pub env_stem: &'static str,
    /// First path segments under `/api/v1/` that the gateway routes to this service.
    pub prefixes: &'static [&'static str],
}

impl ServiceInfo {
    /// The service of this name.
    pub fn find(name: &str) -> Option<&'static ServiceInfo> {
        CATALOG.iter().find(|s| s.name == name)
    }

    /// The service that owns `/api/v1/<segment>/…`.
    pub fn owning(segment: &str) -> Option<&'static ServiceInfo> {
        CATALOG.iter().find(|s| s.prefixes.contains(&segment))
    }
}

macro_rules! service {
    ($name:literal, $var:literal, $port:literal, $stem:literal, [$($prefix:literal),*]) => {
        ServiceInfo {
            name: $name,
            port_var: $var,
            default_port: $port,
            env_stem: $stem,
            prefixes: &[$($prefix),*],
        }
    };
}

/// Every service of the platform; the gateway is first.
pub static CATALOG: &[ServiceInfo] = &[
    service!("gateway", "API_GATEWAY_PORT", 3000, "API_GATEWAY", []),
    service!(
        "identity",
        "USER_SERVICE_PORT",
        3001,
        "USER",
        ["auth", "users", "organizations", "api-keys", ".well-known"]
    ),
    service!(
        "payments",
        "PAYMENT_SERVICE_PORT",
        3002,
        "PAYMENT",
        ["payment-intents", "payments", "refunds", "payment-methods"]
    ),
    service!(
        "billing",
        "BILLING_SERVICE_PORT",
        3003,
        "BILLING",
        ["bills", "invoices", "utility-providers"]
    ),
    service!(
        "notifications",
        "NOTIFICATION_SERVICE_PORT",
        3004,
        "NOTIFICATION",
        ["notifications", "templates", "preferences"]
    ),
    service!(
        "files",
        "DOCUMENT_SERVICE_PORT",
        3005,
        "DOCUMENT",
        ["files", "documents"]
    ),
    service!(
        "analytics",
        "ANALYTICS_SERVICE_PORT",
        3007,
        "ANALYTICS",
        ["analytics"]
    ),
    service!(
        "webhooks",
        "WEBHOOK_SERVICE_PORT",
        3008,
        "WEBHOOK",
        ["webhooks", "webhook-endpoints"]
    ),
    service!(
        "catalog",
        "CATALOG_SERVICE_PORT",
        3009,
        "CATALOG",
        ["products", "categories", "promotions", "prices", "search"]
    ),
    service!(
        "inventory",
        "INVENTORY_SERVICE_PORT",
        3010,
        "INVENTORY",
        ["warehouses", "stock", "reservations"]
    ),
    service!(
        "orders",
        "ORDER_SERVICE_PORT",
        3011,
        "ORDER",
        ["carts", "checkout", "orders", "shipping-rates", "tax-rates"]
    ),
    service!(
        "projects",
        "PROJECT_SERVICE_PORT",
        3012,
        "PROJECT",
        ["projects"]
    ),
    service!(
        "content",
        "CONTENT_SERVICE_PORT",
        3013,
        "CONTENT",
        ["content", "pages"]
    ),
    service!(
        "integrations",
        "INTEGRATION_SERVICE_PORT",
        3014,
        "INTEGRATION",
        ["integrations"]
    ),
];

/// Everything a service needs to start: configuration, its own database, the bus, the token
/// verifier, and the shutdown signal its background loops obey.
#[derive(Clone)]
pub struct Context {
    /// Platform configuration.
    pub config: Arc<Config>,
    /// This service's database, migrated.
    pub db: Db,
    /// The event bus.
    pub bus: Bus,
    /// Verifies access tokens.
    pub auth: Arc<Authenticator>,
    /// Cancelled when the process shuts down.
    pub shutdown: CancellationToken,
    /// Background loops of the service; awaited at shutdown.
    pub tasks: TaskTracker,
    /// How to call the platform's other services.
    pub services: Services,
}

/// A started service.
pub struct Service {
    /// Which service this is.
    pub info: &'static ServiceInfo,
    /// The whole HTTP app (API, `/health`, `/ready`, `/openapi.json`) with the kernel's
    /// middleware; served on a port or called in-process by the gateway.
    pub router: Router,
    /// The service's OpenAPI document.
    pub openapi: utoipa::openapi::OpenApi,
    /// What `/ready` checks.
    pub readiness: Readiness,
}

impl Service {
    /// Assembles a service from its API routes and OpenAPI document: adds `/health`, `/ready`
    /// (database and bus), `/openapi.json` and the kernel's middleware stack.
    pub fn new(
        info: &'static ServiceInfo,
        api: Router,
        openapi: utoipa::openapi::OpenApi,
        ctx: &Context,
    ) -> Self {
        let readiness = Readiness::new(info.name).with_db_and_bus(ctx.db.clone(), ctx.bus.clone());
        let doc = Arc::new(openapi.clone());
        let about = serde_json::json!({
            "service": info.name,
            "version": env!("CARGO_PKG_VERSION"),
            "health": "/health",
            "ready": "/ready",
            "openapi": "/openapi.json",
        });
        let router = api
            .merge(readiness.clone().routes())
            .route(
                "/openapi.json",
                axum::routing::get(move || {
                    let doc = doc.clone();
                    async move { axum::Json(doc.as_ref().clone()) }
                }),
            )
            // What a service served alone answers at its root (behind the gateway, `/` is
            // the gateway's own).
            .route(
                "/",
                axum::routing::get(move || {
                    let about = about.clone();
                    async move { axum::Json(about) }
                }),
            );
        let stack = crate::http::Stack {
            service: info.name,
            body_limit: ctx.config.mercato_body_limit_bytes,
            auth: ctx.auth.clone(),
        };
        Self {
            info,
            router: stack.apply(router),
            openapi,
            readiness,
        }
    }
}

/// Applies the kernel's and the bus's migrations, then the service's own, to its database.
pub async fn migrate(db: &Db, own: &mercato_store::Migrator) -> anyhow::Result<()> {
    mercato_bus::migrate(db).await?;
    crate::idempotency::migrate(db).await?;
    db.migrate(own).await?;
    Ok(())
}
