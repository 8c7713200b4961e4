//! The HTTP service a user reaches: the api's endpoints and the pages on one
//! listener. Composed here, above both, so that the pages depend on the api and
//! the api knows nothing of the pages.
//!
//! [`run`] binds the configured address; [`serve`] takes a bound listener (tests
//! bind port 0).

use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::{self, AppState};
use crate::config::Config;
use crate::ui;

/// Runs the service on `api.listen` until `shutdown` is cancelled.
pub async fn run(config: Arc<Config>, shutdown: CancellationToken) -> anyhow::Result<()> {
    match crate::db::wait_for_schema(&config.database, "api", &shutdown).await {
        Err(crate::db::SchemaWaitError::Cancelled) => return Ok(()),
        other => other?,
    }
    let addr = config.api.listen_addr()?;
    let listener = TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
    serve(config, listener, shutdown).await
}

/// Serves on an already-bound listener with its own pool, notification
/// listener and storage; in-flight requests are let finish on shutdown
/// (waiting ones are answered 503 at once).
pub async fn serve(config: Arc<Config>, listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    let state = AppState::new(config.clone(), shutdown.clone()).await?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "api listening");
    let app = api::finish(api::router().merge(ui::router()), state);
    api::serve_router(listener, app, &config.api, shutdown).await;
    tracing::info!("api stopped");
    Ok(())
}
