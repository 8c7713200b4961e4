//! Command line: parses arguments, loads the config, wires components. Nothing else.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use caddy_build_server::{config::Config, db, telemetry};
use clap::{Parser, Subcommand};

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
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::load(cli.config.as_deref()).context("invalid configuration")?;
    telemetry::init(&config.log);
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
    }
    Ok(())
}
