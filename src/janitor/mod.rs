//! The janitor component (to be written).

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::config::Config;

/// Runs the janitor until `shutdown` is cancelled.
pub async fn run(config: Arc<Config>, shutdown: CancellationToken) -> anyhow::Result<()> {
    let _ = config;
    shutdown.cancelled().await;
    anyhow::bail!("the janitor component is not implemented yet")
}
