//! Command line: parses arguments, loads the config, wires components. Nothing else.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use caddy_build_server::{config::Config, db, janitor, shutdown, supervise, telemetry, toolchain, web, worker};
use clap::{Parser, Subcommand};

/// glibc's allocator was a fifth of the api's CPU when ten thousand held
/// requests were answered at once (its bins coalescing hyper's per-connection
/// buffers) and it fragments under that churn; mimalloc's thread-local pages do neither.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "caddy-build-server", version, about = "Builds custom Caddy binaries on demand")]
struct Cli {
    /// Config file (default: $CONFIG_PATH, else ./config.yml if present).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply schema migrations and (re)install the SQL procedures, then exit.
    Migrate,
    /// Serve the HTTP API (REST, compat download, metrics).
    Api,
    /// Claim queued builds and run them in Docker.
    Worker,
    /// Apply migrations, then run the scheduled policy jobs.
    Janitor,
    /// Api, worker and janitor in one process: the single-machine setup.
    All,
    /// Make the builder image of a Go version from the module proxy's toolchain
    /// (as workers do on demand), unless the Docker daemon has it; prints its name.
    BuilderImage {
        /// Go version, e.g. 1.26.8 (default: worker.go_version).
        #[arg(long)]
        go: Option<String>,
    },
}

/// Scheduler ticks between looks at the runtime's global run queue (tokio's
/// default is tuned per workload and grows to dozens). When ten thousand requests
/// wait on one build, its completion wakes them all at once; most overflow into
/// the global queue, and while the first answered connections keep the local
/// queues busy (their clients' next reads and closes) the rest would wait behind
/// them. Looking at the global queue often serves the woken requests in about
/// the order they were woken.
const GLOBAL_QUEUE_INTERVAL: u32 = 4;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .global_queue_interval(GLOBAL_QUEUE_INTERVAL)
        .build()
        .expect("cannot start the async runtime");
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Arc::new(Config::load(cli.config.as_deref()).context("invalid configuration")?);
    telemetry::init(&config.log);
    let stop = shutdown::on_signals();
    match cli.command {
        Command::Migrate => {
            let report = db::migrate(&config.database).await?;
            tracing::info!(
                applied = report.applied.len(),
                already_applied = report.already_applied,
                procedures = report.procedures,
                "schema is current"
            );
        }
        Command::Api => web::run(config, stop).await?,
        Command::BuilderImage { go } => {
            let version = toolchain::GoVersion::parse(go.as_deref().unwrap_or(&config.worker.go_version))?;
            let started = std::time::Instant::now();
            let image = toolchain::ImageMaker::new(&config)?.ensure(version).await?;
            tracing::info!(image = %image.name, id = %image.id, toolchain = %image.toolchain, h1 = %image.toolchain_h1, elapsed = ?started.elapsed(), "builder image ready");
            println!("{}", image.name);
        }
        Command::Worker => worker::run(config, stop).await?,
        Command::Janitor => janitor::run(config, stop).await?,
        Command::All => {
            // Migrate before anything starts, so api and worker find the schema current.
            if !janitor::migrate_when_reachable(&config, &stop).await? {
                return Ok(());
            }
            let components: Vec<(&'static str, supervise::Component)> = vec![
                ("api", Box::pin(web::run(config.clone(), stop.clone()))),
                ("worker", Box::pin(worker::run(config.clone(), stop.clone()))),
                ("janitor", Box::pin(janitor::run_migrated(config, stop.clone()))),
            ];
            supervise::supervise(components, stop).await?;
        }
    }
    Ok(())
}
