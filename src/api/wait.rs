//! Holding a request open until its build reaches a terminal state, a time
//! limit passes, or the server shuts down. The request only reads the shared
//! state its build's watcher publishes ([`super::waiters`]); dropping the
//! future (the client went away) unsubscribes it.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use super::error::{ApiError, ApiResult};
use super::metrics::WaiterGuard;
use super::state::AppState;
use super::waiters::Watched;
use crate::db::Build;

pub enum WaitEnd {
    /// The build finished (succeeded, failed or was cancelled), with the download
    /// its waiters share.
    Terminal(Arc<Watched>),
    /// The limit passed first; the latest state seen.
    TimedOut(Option<Arc<Build>>),
}

/// Waits up to `limit`; `Err(NotFound)` when the build does not exist. A
/// request that will `download` the build is released with the download prepared.
pub async fn until_terminal(state: &AppState, build_key: &str, limit: Duration, download: bool) -> ApiResult<WaitEnd> {
    let _counted = WaiterGuard::new(&state.metrics.open_waiters);
    let deadline = tokio::time::sleep(limit);
    tokio::pin!(deadline);
    let download_with = download.then_some(state);
    let mut rx = state.waiters.subscribe(build_key, download_with);
    let mut waited = false;
    let mut rejoined = false;
    loop {
        let current = rx.borrow_and_update().clone();
        if let Some(watched) = &current
            && watched.build.status.is_terminal()
        {
            if waited && let Some(finished) = watched.build.finished_at {
                let latency = (Utc::now() - finished).to_std().unwrap_or_default();
                state.metrics.wakeup_latency.observe(latency.as_secs_f64());
            }
            return Ok(WaitEnd::Terminal(watched.clone()));
        }
        tokio::select! {
            changed = rx.changed() => {
                waited = true;
                if changed.is_err() {
                    // The watcher ended: either the last state is final (handled above
                    // on the next turn) or it stopped just as we joined; start anew.
                    let last = rx.borrow().clone();
                    match last {
                        None if rejoined => return Err(ApiError::NotFound(format!("build {build_key} not found"))),
                        None => {
                            rejoined = true;
                            rx = state.waiters.subscribe(build_key, download_with);
                        }
                        Some(w) if w.build.status.is_terminal() => continue,
                        Some(_) => rx = state.waiters.subscribe(build_key, download_with),
                    }
                }
            }
            _ = &mut deadline => {
                return Ok(WaitEnd::TimedOut(current.map(|w| w.build.clone())));
            }
            _ = state.shutdown.cancelled() => {
                return Err(ApiError::Unavailable("the server is shutting down; retry".into()));
            }
        }
    }
}
