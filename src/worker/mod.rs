//! The worker component (to be written).

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::config::Config;

/// Runs the worker until `shutdown` is cancelled.
pub async fn run(config: Arc<Config>, shutdown: CancellationToken) -> anyhow::Result<()> {
    let _ = config;
    shutdown.cancelled().await;
    anyhow::bail!("the worker component is not implemented yet")
}
