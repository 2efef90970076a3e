//! Assembling services into a process: configuration, databases, bus, gateway, shutdown.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use mercato_bus::{Bus, NatsOptions};
use mercato_contracts::subjects::{PRODUCT_ARCHIVED, PRODUCT_CREATED, PRODUCT_UPDATED};
use mercato_gateway::{Target, Upstream};
use mercato_kernel::auth::{Authenticator, random_service_secret};
use mercato_kernel::client::Services;
use mercato_kernel::{CATALOG, Config, Context, Service, ServiceInfo, server, telemetry};
use mercato_store::{Db, Migrator};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

type StartFn = fn(Context) -> Pin<Box<dyn Future<Output = anyhow::Result<Service>> + Send>>;

/// A service this binary can run.
struct Registration {
    name: &'static str,
    migrator: &'static Migrator,
    start: StartFn,
}

/// Every service that exists so far; `up` runs them all, identity first so that its signing
/// keys are in the shared verifier before anything else serves.
fn registrations() -> [Registration; 7] {
    [
        Registration {
            name: "identity",
            migrator: &mercato_identity::MIGRATOR,
            start: |ctx| Box::pin(mercato_identity::start(ctx)),
        },
        Registration {
            name: "analytics",
            migrator: &mercato_analytics::MIGRATOR,
            start: |ctx| Box::pin(mercato_analytics::start(ctx)),
        },
        Registration {
            name: "catalog",
            migrator: &mercato_catalog::MIGRATOR,
            start: |ctx| Box::pin(mercato_catalog::start(ctx)),
        },
        Registration {
            name: "inventory",
            migrator: &mercato_inventory::MIGRATOR,
            start: |ctx| Box::pin(mercato_inventory::start(ctx)),
        },
        Registration {
            name: "payments",
            migrator: &mercato_payments::MIGRATOR,
            start: |ctx| Box::pin(mercato_payments::start(ctx)),
        },
        Registration {
            name: "orders",
            migrator: &mercato_orders::MIGRATOR,
            start: |ctx| Box::pin(mercato_orders::start(ctx)),
        },
        Registration {
            name: "notifications",
            migrator: &mercato_notifications::MIGRATOR,
            start: |ctx| Box::pin(mercato_notifications::start(ctx)),
        },
    ]
}

fn info(name: &str) -> anyhow::Result<&'static ServiceInfo> {
    ServiceInfo::find(name).ok_or_else(|| {
        let known: Vec<_> = CATALOG.iter().map(|s| s.name).collect();
        anyhow::anyhow!("unknown service `{name}`; services: {}", known.join(", "))
    })
}

/// Loads the configuration, applies `--data-dir` and starts logging.
pub fn load_config(data_dir: Option<PathBuf>) -> anyhow::Result<Config> {
    let mut config = Config::load()?;
    if let Some(dir) = data_dir {
        config.mercato_data_dir = dir;
    }
    telemetry::init_tracing(config.log_format);
    Ok(config)
}

/// Creates the data dir and proves it writable, so a bad one fails at start with its path.
fn ensure_writable(dir: &Path) -> anyhow::Result<()> {
    let fail =
        |e: std::io::Error| anyhow::anyhow!("data dir `{}` is not writable: {e}", dir.display());
    std::fs::create_dir_all(dir).map_err(fail)?;
    let probe = dir.join(".mercato-write-check");
    std::fs::write(&probe, b"ok").map_err(fail)?;
    std::fs::remove_file(&probe).map_err(fail)?;
    Ok(())
}

/// NATS JetStream when `NATS_URL` is set, else the embedded log in the data dir.
async fn open_bus(config: &Config) -> anyhow::Result<Bus> {
    let bus = match config.nats_url.as_deref().filter(|u| !u.trim().is_empty()) {
        Some(url) => {
            let options = NatsOptions {
                stream: config.nats_stream.clone(),
                subject_prefix: config.nats_subject_prefix.clone(),
                ..NatsOptions::default()
            };
            Bus::nats_with(url, options).await
        }
        None => Bus::embedded(&config.mercato_data_dir).await,
    };
    bus.context("connecting the event bus")
}

/// Opens a service's database (creating it when missing) and applies its migrations.
async fn open_service_db(
    config: &Config,
    info: &ServiceInfo,
    migrator: &Migrator,
) -> anyhow::Result<Db> {
    let url = config.database_url_for(info);
    let db = Db::connect(&url, &config.pool_settings())
        .await
        .with_context(|| {
            format!(
                "opening the {} database {}",
                info.name,
                mercato_store::redact(&url)
            )
        })?;
    mercato_kernel::service::migrate(&db, migrator)
        .await
        .with_context(|| format!("migrating the {} database", info.name))?;
    Ok(db)
}

/// What every service of a process shares.
struct Shared {
    config: Arc<Config>,
    bus: Bus,
    auth: Arc<Authenticator>,
    services: Services,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl Shared {
    /// `one_process`: every service runs here, so a service secret made now serves them all.
    async fn open(config: Config, one_process: bool) -> anyhow::Result<Self> {
        ensure_writable(&config.mercato_data_dir)?;
        let bus = open_bus(&config).await?;
        let auth = Authenticator::from_config(&config)
            .await
            .context("loading token keys")?;
        if !auth.has_service_secret() {
            if one_process {
                auth.set_service_secret(&random_service_secret()?)?;
            } else {
                tracing::warn!(
                    "MERCATO_SERVICE_SECRET is not set: this service cannot call other services \
                     nor accept their calls"
                );
            }
        }
        let config = Arc::new(config);
        let auth = Arc::new(auth);
        Ok(Self {
            services: Services::new(config.clone(), auth.clone()),
            config,
            bus,
            auth,
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        })
    }

    async fn open_db(&self, info: &ServiceInfo, migrator: &Migrator) -> anyhow::Result<Db> {
        open_service_db(&self.config, info, migrator).await
    }

    async fn start(&self, registration: &Registration) -> anyhow::Result<(Service, Db)> {
        let info = info(registration.name)?;
        let db = self.open_db(info, registration.migrator).await?;
        let ctx = Context {
            config: self.config.clone(),
            db: db.clone(),
            bus: self.bus.clone(),
            auth: self.auth.clone(),
            shutdown: self.shutdown.clone(),
            tasks: self.tasks.clone(),
            services: self.services.clone(),
        };
        let service = (registration.start)(ctx)
            .await
            .with_context(|| format!("starting {}", info.name))?;
        self.services.register(info.name, service.router.clone());
        Ok((service, db))
    }

    /// Serves until a signal, then drains requests, stops loops and closes databases.
    async fn run(
        self,
        listener: tokio::net::TcpListener,
        app: App,
        dbs: Vec<Db>,
    ) -> anyhow::Result<()> {
        server::cancel_on_signal(self.shutdown.clone());
        let grace = Duration::from_secs(self.config.mercato_shutdown_grace_seconds);
        let shutdown = self.shutdown.clone();
        match app {
            App::Service(router) => server::serve(listener, router, shutdown, grace).await?,
            App::Gateway { front, threads } => {
                mercato_gateway::serve(listener, front, threads, shutdown, grace).await?;
            }
        }
        self.shutdown.cancel();
        self.tasks.close();
        if tokio::time::timeout(grace, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("background tasks did not stop within the grace period");
        }
        for db in dbs {
            db.close().await;
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// What a process serves on its port.
enum App {
    /// One service's router.
    Service(axum::Router),
    /// The gateway, on `threads` threads (1: on the process's runtime).
    Gateway {
        front: mercato_gateway::Front,
        threads: usize,
    },
}

/// `mercato up`: every service in-process behind the gateway, on one port; with `demo`, an
/// empty catalog is first seeded with a demo shop.
pub async fn up(config: Config, addr: SocketAddr, demo: bool) -> anyhow::Result<()> {
    mercato_gateway::validate(&config)?;
    let listener = server::bind(addr).await?;
    let shared = Shared::open(config, true).await?;
    if demo {
        seed_demo(&shared).await?;
    }
    let mut upstreams = Vec::new();
    let mut dbs = Vec::new();
    let mut catalog_db = None;
    for registration in &registrations() {
        let (service, db) = shared.start(registration).await?;
        if registration.name == "catalog" {
            catalog_db = Some(db.clone());
        }
        upstreams.push(Upstream {
            info: service.info,
            target: Target::InProcess(service.router),
            openapi: Some(service.openapi),
        });
        dbs.push(db);
    }
    let _ = telemetry::prometheus();
    let (frontend, api) = frontend(&shared.config);
    let built = mercato_gateway::build(
        &shared.config,
        upstreams,
        shared.auth.clone(),
        Some(frontend),
    );
    api.set(built.router.clone());
    if let (Some(cache), Some(db)) = (built.cache, catalog_db) {
        // Product changes empty the gateway's cache of catalog answers at once. The
        // consumer's inbox lives in the catalog's database: the gateway has none.
        mercato_bus::Consumer::new(
            "gateway-cache",
            &[PRODUCT_CREATED, PRODUCT_UPDATED, PRODUCT_ARCHIVED],
            db,
            InvalidateCache(cache),
        )
        .spawn(&shared.bus, shared.shutdown.clone(), &shared.tasks);
    }
    let base = format!("http://{}", listener.local_addr()?);
    println!(
        "Mercato is up on {base} (bus: {})",
        shared.bus.backend_name()
    );
    println!("  home        {base}/");
    println!("  API docs    {base}/docs");
    println!("  health      {base}/health");
    // The services run on this runtime; the gateway serves on it too, so that their database
    // connections and tasks all belong to one runtime.
    let app = App::Gateway {
        front: built.front,
        threads: 1,
    };
    shared.run(listener, app, dbs).await
}

/// The storefront and admin the gateway serves, and the slot that gives them the API.
fn frontend(config: &Config) -> (mercato_gateway::Frontend, mercato_web::ApiSlot) {
    let web = mercato_web::web(mercato_web::WebConfig {
        theme_dir: config.mercato_theme_dir.clone(),
        secure_cookies: config.mercato_public_url.starts_with("https://"),
    });
    let frontend = mercato_gateway::Frontend {
        assets: web_asset,
        pages: web.router,
    };
    (frontend, web.api)
}

/// The web bundle's files, as the gateway serves them under `/assets/`.
fn web_asset(path: &str) -> Option<mercato_gateway::StaticAsset> {
    mercato_web::assets::asset(path).map(|a| mercato_gateway::StaticAsset {
        body: a.body,
        content_type: a.content_type,
        etag: a.etag,
    })
}

/// Empties the gateway's response cache on every product event.
struct InvalidateCache(mercato_gateway::CacheInvalidator);

#[async_trait::async_trait]
impl mercato_bus::Handler for InvalidateCache {
    async fn handle(
        &self,
        _event: &mercato_bus::Event,
        _tx: &mut mercato_store::Tx,
    ) -> anyhow::Result<()> {
        self.0.invalidate_all();
        Ok(())
    }
}

/// `mercato serve <service>`: one service on its own port, or the gateway in front of
/// remote services.
pub async fn serve(
    config: Config,
    name: &str,
    host: IpAddr,
    port: Option<u16>,
) -> anyhow::Result<()> {
    let info = info(name)?;
    if name == "gateway" {
        mercato_gateway::validate(&config)?;
    }
    let addr = SocketAddr::new(host, port.unwrap_or_else(|| config.port_of(info)));
    let listener = server::bind(addr).await?;
    let shared = Shared::open(config, false).await?;
    let _ = telemetry::prometheus();
    let (app, dbs) = if name == "gateway" {
        let upstreams: Vec<_> = CATALOG
            .iter()
            .filter_map(|info| {
                let urls = shared.config.service_urls(info);
                (!urls.is_empty()).then(|| Upstream {
                    info,
                    target: Target::Remote(urls),
                    openapi: None,
                })
            })
            .collect();
        if upstreams.is_empty() {
            tracing::warn!("no <NAME>_SERVICE_URL is set: the gateway has no upstream");
        }
        let (frontend, api) = frontend(&shared.config);
        let built = mercato_gateway::build(
            &shared.config,
            upstreams,
            shared.auth.clone(),
            Some(frontend),
        );
        api.set(built.router);
        // A gateway thread per core, each with its own runtime and upstream connections.
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let app = App::Gateway {
            front: built.front,
            threads,
        };
        (app, Vec::new())
    } else {
        let registration = registrations()
            .into_iter()
            .find(|r| r.name == name)
            .ok_or_else(|| anyhow::anyhow!("service `{name}` is not built yet"))?;
        let (service, db) = shared.start(&registration).await?;
        let metrics =
            axum::Router::new().route("/metrics/prometheus", axum::routing::get(prometheus_text));
        (App::Service(service.router.merge(metrics)), vec![db])
    };
    println!("{name} listening on http://{}", listener.local_addr()?);
    shared.run(listener, app, dbs).await
}

async fn prometheus_text() -> String {
    telemetry::prometheus()
        .map(|h| h.render())
        .unwrap_or_default()
}

/// `mercato migrate`: applies every (or one) service's migrations.
pub async fn migrate(config: Config, only: Option<&str>) -> anyhow::Result<()> {
    if let Some(name) = only {
        info(name)?;
    }
    let shared = Shared::open(config, true).await?;
    for registration in registrations()
        .iter()
        .filter(|r| only.is_none_or(|n| n == r.name))
    {
        let info = info(registration.name)?;
        let db = shared.open_db(info, registration.migrator).await?;
        db.close().await;
        println!("{}: migrated", info.name);
    }
    Ok(())
}

/// `mercato reindex`: rebuilds the catalog search index from the catalog database.
pub async fn reindex(config: Config) -> anyhow::Result<()> {
    ensure_writable(&config.mercato_data_dir)?;
    let db = open_service_db(&config, info("catalog")?, &mercato_catalog::MIGRATOR).await?;
    let dir = config.mercato_data_dir.join("catalog-search");
    let started = std::time::Instant::now();
    let count = mercato_catalog::search::Search::reindex_dir(&dir, db.clone())
        .await
        .with_context(|| {
            format!(
                "rebuilding the search index in {} (is a server using it? stop it first)",
                dir.display()
            )
        })?;
    db.close().await;
    println!(
        "catalog search: {count} products indexed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `mercato inventory verify`: checks that every stock level equals the sum of its ledger
/// movements and of the active reservations held there. Fails when anything disagrees.
pub async fn verify_inventory(config: Config) -> anyhow::Result<()> {
    let db = open_service_db(&config, info("inventory")?, &mercato_inventory::MIGRATOR).await?;
    let report = mercato_inventory::verify::verify(&db)
        .await
        .context("reading the inventory ledger")?;
    db.close().await;
    for problem in &report.problems {
        println!("MISMATCH {problem}");
    }
    println!(
        "inventory: {} stock levels, {} movements, {} mismatches",
        report.levels,
        report.movements,
        report.problems.len()
    );
    anyhow::ensure!(report.is_ok(), "the ledger does not sum to stock");
    Ok(())
}

/// Products of the `mercato up --demo` shop.
const DEMO_PRODUCTS: usize = 200;

/// Seeds the demo shop when the catalog has no product yet (before catalog starts, so that
/// its search index is built from the seeded rows).
async fn seed_demo(shared: &Shared) -> anyhow::Result<()> {
    let db = shared
        .open_db(info("catalog")?, &mercato_catalog::MIGRATOR)
        .await?;
    let existing: i64 = mercato_store::sqlx::query_scalar("SELECT COUNT(*) FROM products")
        .fetch_one(db.pool())
        .await
        .context("counting catalog products")?;
    if existing == 0 {
        let report = mercato_catalog::seed::seed(&db, DEMO_PRODUCTS, |_| {}).await?;
        let stock: Vec<(String, i64)> =
            mercato_store::sqlx::query_as("SELECT sku, available FROM variants ORDER BY sku")
                .fetch_all(db.pool())
                .await
                .context("reading the demo variants")?;
        let received = receive_demo_stock(shared, &stock).await?;
        seed_demo_rates(shared).await?;
        println!(
            "demo shop: {} products in {} categories, {received} units in stock",
            report.products, report.categories
        );
    }
    db.close().await;
    Ok(())
}

/// Shipping (a flat rate per currency, free above a subtotal) and VAT for the demo shop.
async fn seed_demo_rates(shared: &Shared) -> anyhow::Result<()> {
    use mercato_orders::store::{self, ShippingRateRow, TaxRateRow};
    let db = shared
        .open_db(info("orders")?, &mercato_orders::MIGRATOR)
        .await?;
    let now = mercato_store::now_micros();
    let mut conn = db.pool().acquire().await?;
    for (currency, amount, free_over) in [("EUR", 490, 5000), ("USD", 599, 7500)] {
        let rate = ShippingRateRow {
            id: mercato_kernel::id::new_id("shr"),
            name: "Standard".to_owned(),
            countries: String::new(),
            currency: currency.to_owned(),
            amount,
            min_weight_grams: 0,
            max_weight_grams: None,
            free_over: Some(free_over),
            active: 1,
            created_at: now,
            updated_at: now,
        };
        store::upsert_shipping_rate(&mut conn, &rate).await?;
    }
    for (country, rate_bps) in [("DE", 1900), ("FR", 2000), ("NL", 2100)] {
        let rate = TaxRateRow {
            id: mercato_kernel::id::new_id("txr"),
            name: "VAT".to_owned(),
            country: country.to_owned(),
            region: String::new(),
            rate_bps,
            inclusive: 1,
            applies_to_shipping: 1,
            created_at: now,
            updated_at: now,
        };
        store::upsert_tax_rate(&mut conn, &rate).await?;
    }
    drop(conn);
    db.close().await;
    Ok(())
}

/// Receives the seeded variants' stock into the demo warehouse, through the inventory ledger
/// (whose events then confirm the same figures to catalog), so the shop can sell them.
async fn receive_demo_stock(shared: &Shared, stock: &[(String, i64)]) -> anyhow::Result<i64> {
    use mercato_inventory::ledger::{Adjustment, Change, Ledger};
    let db = shared
        .open_db(info("inventory")?, &mercato_inventory::MIGRATOR)
        .await?;
    let warehouse = mercato_inventory::store::WarehouseRow::new(
        "MAIN",
        "Main warehouse",
        "DE",
        1,
        mercato_store::now_micros(),
    );
    let mut conn = db.pool().acquire().await?;
    mercato_inventory::store::insert_warehouse(&mut conn, &warehouse)
        .await
        .context("creating the demo warehouse")?;
    drop(conn);
    let ledger = Ledger::new(db.clone(), shared.config.inventory_low_stock_threshold);
    let mut received = 0;
    for (sku, units) in stock.iter().filter(|(_, units)| *units > 0) {
        let adjustment = Adjustment {
            sku: sku.clone(),
            warehouse_id: warehouse.id.clone(),
            change: Change::Delta(*units),
            kind: mercato_inventory::domain::MovementKind::Receipt,
            reference: Some("demo".to_owned()),
            note: None,
        };
        ledger
            .adjust(&adjustment, "system")
            .await
            .with_context(|| format!("receiving demo stock of {sku}"))?;
        received += units;
    }
    db.close().await;
    Ok(received)
}

/// `mercato seed --products N`: generates a catalog straight into the catalog database.
pub async fn seed(config: Config, products: usize) -> anyhow::Result<()> {
    ensure_writable(&config.mercato_data_dir)?;
    let db = open_service_db(&config, info("catalog")?, &mercato_catalog::MIGRATOR).await?;
    let bar = indicatif::ProgressBar::new(products as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} products ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let report = mercato_catalog::seed::seed(&db, products, |done| bar.set_position(done as u64))
        .await
        .context("seeding the catalog")?;
    bar.finish_and_clear();
    db.close().await;
    println!(
        "catalog: {} products, {} variants, {} new categories in {:.1} s",
        report.products,
        report.variants,
        report.categories,
        report.elapsed.as_secs_f64()
    );
    println!("run `mercato reindex` if a search index already exists");
    Ok(())
}
