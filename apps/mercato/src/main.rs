//! `mercato`: the one binary that runs the platform, a single service, migrations and load.

mod bench;
mod bench_gateway;
mod platform;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

// Many small allocations per proxied request from every core: glibc's malloc serializes
// them on its arena locks, mimalloc keeps them per thread.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Mercato, a commerce platform: catalog, orders, payments, billing, notifications and more.
#[derive(Debug, Parser)]
#[command(name = "mercato", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the gateway and every service in one process (embedded SQLite and event log unless
    /// DATABASE_URL / NATS_URL say otherwise), listening only on the gateway port.
    Up {
        #[command(flatten)]
        run: RunArgs,
        /// Starts with a demo shop: seeds 200 products when the catalog is empty.
        #[arg(long)]
        demo: bool,
    },
    /// Runs one service alone (or the gateway, proxying to `<NAME>_SERVICE_URL` upstreams).
    Serve {
        /// Service to run: `gateway`, `analytics`, …
        service: String,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Applies database migrations and exits.
    Migrate {
        /// Only this service (default: every service).
        #[arg(long)]
        service: Option<String>,
        /// Where embedded databases live.
        #[arg(long, env = "MERCATO_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Rebuilds the catalog search index from the catalog database (stop the server first:
    /// the index has one writer).
    Reindex {
        /// Where embedded databases and the index live.
        #[arg(long, env = "MERCATO_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Generates a realistic catalog (categories, brands, products, variants, prices, stock)
    /// straight into the catalog database; run `mercato reindex` afterwards if a search index
    /// already exists.
    Seed {
        /// How many products to generate.
        #[arg(long, default_value_t = 1000)]
        products: usize,
        /// Where embedded databases live.
        #[arg(long, env = "MERCATO_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Inventory maintenance.
    Inventory {
        #[command(subcommand)]
        command: InventoryCommand,
        /// Where embedded databases live.
        #[arg(long, env = "MERCATO_DATA_DIR", global = true)]
        data_dir: Option<PathBuf>,
    },
    /// Drives HTTP load against a running platform and prints requests/s and latencies.
    Bench(bench::BenchArgs),
}

#[derive(Debug, Subcommand)]
enum InventoryCommand {
    /// Proves that on-hand and reserved units equal the sums of the movements ledger (and of
    /// the active reservations); exits non-zero on any mismatch. Read-only.
    Verify,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Port to listen on (default: the service's port variable, e.g. API_GATEWAY_PORT or 3000).
    #[arg(long)]
    port: Option<u16>,
    /// Address to listen on.
    #[arg(long, env = "MERCATO_HOST", default_value = "127.0.0.1")]
    host: IpAddr,
    /// Where embedded databases and the event log live (default ./data).
    #[arg(long, env = "MERCATO_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Directory of templates replacing the storefront's and admin's shipped ones (same
    /// names, e.g. `shop/home.html`), read at each render: no recompiling.
    #[arg(long, env = "MERCATO_THEME_DIR")]
    theme: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Up { run, demo } => {
            let mut config = platform::load_config(run.data_dir)?;
            config.mercato_theme_dir = run.theme.or(config.mercato_theme_dir);
            let port = run.port.unwrap_or(config.api_gateway_port);
            platform::up(config, SocketAddr::new(run.host, port), demo).await
        }
        Command::Serve { service, run } => {
            let mut config = platform::load_config(run.data_dir)?;
            config.mercato_theme_dir = run.theme.or(config.mercato_theme_dir);
            platform::serve(config, &service, run.host, run.port).await
        }
        Command::Migrate { service, data_dir } => {
            let config = platform::load_config(data_dir)?;
            platform::migrate(config, service.as_deref()).await
        }
        Command::Inventory {
            command: InventoryCommand::Verify,
            data_dir,
        } => {
            let config = platform::load_config(data_dir)?;
            platform::verify_inventory(config).await
        }
        Command::Reindex { data_dir } => {
            let config = platform::load_config(data_dir)?;
            platform::reindex(config).await
        }
        Command::Seed { products, data_dir } => {
            let config = platform::load_config(data_dir)?;
            platform::seed(config, products).await
        }
        Command::Bench(args) => bench::run(args).await,
    }
}
