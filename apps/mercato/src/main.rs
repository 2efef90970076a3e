//! `mercato`: the one binary that runs the platform, a single service, migrations and load.

mod bench;
mod platform;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

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
    Up(RunArgs),
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
    /// Drives HTTP load against a running platform and prints requests/s and latencies.
    Bench(bench::BenchArgs),
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
        Command::Up(args) => {
            let config = platform::load_config(args.data_dir)?;
            let port = args.port.unwrap_or(config.api_gateway_port);
            platform::up(config, SocketAddr::new(args.host, port)).await
        }
        Command::Serve { service, run } => {
            let config = platform::load_config(run.data_dir)?;
            platform::serve(config, &service, run.host, run.port).await
        }
        Command::Migrate { service, data_dir } => {
            let config = platform::load_config(data_dir)?;
            platform::migrate(config, service.as_deref()).await
        }
        Command::Bench(args) => bench::run(args).await,
    }
}
