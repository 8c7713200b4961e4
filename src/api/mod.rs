//! The api component: the REST and caddyserver.com-compatible HTTP API (axum).
//! Requests for a build that is not finished are held open on the process's
//! single notification listener, never by polling (see [`waiters`]).
//!
//! [`run`] binds the configured address; [`serve`] takes a bound listener (tests
//! bind port 0) and [`serve_state`] also takes already-running components.

mod admin;
mod admission;
mod builds;
mod client;
mod coalesce;
mod compat;
mod documents;
mod download;
mod download_count;
mod error;
mod health;
mod held;
mod logs;
mod metrics;
mod middleware;
mod modules;
mod official;
mod openapi;
mod refusals;
mod routes;
mod server;
mod signing_key;
mod spec_input;
mod state;
mod tally;
mod targets;
mod usage;
mod wait;
mod waiters;

use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use builds::{check_key, load, xcaddy_command, ReproductionView};
pub use error::{ApiError, ApiResult};
pub use spec_input::split_module_version;
pub use state::AppState;

use crate::config::Config;

/// Runs the api on `api.listen` until `shutdown` is cancelled.
pub async fn run(config: Arc<Config>, shutdown: CancellationToken) -> anyhow::Result<()> {
    match crate::db::wait_for_schema(&config.database, "api", &shutdown).await {
        Err(crate::db::SchemaWaitError::Cancelled) => return Ok(()),
        other => other?,
    }
    let addr = config.api.listen_addr()?;
    let listener = TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
    serve(config, listener, shutdown).await
}

/// Serves on an already-bound listener with its own pool, listener and storage.
pub async fn serve(config: Arc<Config>, listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    let state = AppState::new(config, shutdown.clone()).await?;
    serve_state(state, listener, shutdown).await
}

/// Serves `state` on `listener`; in-flight requests are let finish on shutdown
/// (waiting ones are answered 503 at once).
pub async fn serve_state(state: AppState, listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "api listening");
    let config = state.config.clone();
    let app = routes::router(state);
    server::serve(listener, app, &config.api, shutdown).await;
    tracing::info!("api stopped");
    Ok(())
}
