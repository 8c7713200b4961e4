//! Runs several components in one process (the `all` mode) as one unit: they
//! share a stop token, and when any of them ends, failed or not, before a stop
//! was asked for, the others are told to stop too, so the process never limps
//! on with, say, an api whose worker died. The first failure is what the
//! process reports.

use std::future::Future;
use std::pin::Pin;

use anyhow::Context;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

pub type Component = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;

/// Runs every `(name, component)` to its end. Each component must watch `stop`
/// (the token it was built with); it is cancelled once any component ends.
pub async fn supervise(components: Vec<(&'static str, Component)>, stop: CancellationToken) -> anyhow::Result<()> {
    let mut set = JoinSet::new();
    for (name, fut) in components {
        set.spawn(async move { (name, fut.await) });
    }
    let mut first_error: Option<anyhow::Error> = None;
    while let Some(joined) = set.join_next().await {
        let (name, result) = match joined {
            Ok(r) => r,
            Err(e) => ("component", Err(anyhow::Error::new(e).context("panicked"))),
        };
        match result {
            Ok(()) if !stop.is_cancelled() => info!(component = name, "component ended; stopping the others"),
            Ok(()) => {}
            Err(e) => {
                error!(component = name, error = %format!("{e:#}"), "component failed; stopping the others");
                first_error.get_or_insert(e.context(name));
            }
        }
        stop.cancel();
    }
    match first_error {
        Some(e) => Err(e).context("a component failed"),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn waits_for(stop: &CancellationToken) -> Component {
        let stop = stop.clone();
        Box::pin(async move {
            stop.cancelled().await;
            Ok(())
        })
    }

    #[tokio::test]
    async fn one_failure_stops_the_others() {
        let stop = CancellationToken::new();
        let failing: Component = Box::pin(async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            anyhow::bail!("boom")
        });
        let all = vec![("api", waits_for(&stop)), ("worker", failing), ("janitor", waits_for(&stop))];
        let r = tokio::time::timeout(Duration::from_secs(5), supervise(all, stop.clone())).await.expect("others stopped");
        let e = format!("{:#}", r.unwrap_err());
        assert!(e.contains("worker") && e.contains("boom"), "{e}");
        assert!(stop.is_cancelled());
    }

    #[tokio::test]
    async fn a_stop_ends_everyone_cleanly() {
        let stop = CancellationToken::new();
        let all = vec![("api", waits_for(&stop)), ("janitor", waits_for(&stop))];
        let s = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            s.cancel();
        });
        tokio::time::timeout(Duration::from_secs(5), supervise(all, stop)).await.unwrap().unwrap();
    }
}
