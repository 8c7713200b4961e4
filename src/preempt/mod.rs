//! Preemption detectors: ask the cloud's metadata service whether this machine
//! is about to be taken away (a GCE preemptible or spot VM, an AWS spot
//! instance, an Azure spot VM), so the worker can hand its builds back before it
//! dies instead of leaving them to lease expiry. One trait, one implementation
//! per cloud, chosen by `worker.preemption.provider`; [`watch`] polls the chosen
//! one and cancels the worker's `preempt` token on a detection, which the worker
//! treats like SIGUSR1. A metadata service that cannot be reached is logged and
//! asked again at the next poll: it never stops the worker.
//!
//! Wiring in the worker:
//!
//! ```text
//! if let Some(detector) = preempt::from_config(&cfg.worker.preemption) {
//!     tasks.spawn(preempt::watch(detector, cfg.worker.preemption.poll_interval, preempt.clone(), shutdown.clone()));
//! }
//! ```

mod aws;
mod azure;
mod gce;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

pub use aws::AwsSpot;
pub use azure::AzureScheduledEvents;
pub use gce::GcePreempted;

use crate::config::{PreemptionConfig, PreemptionProvider};

/// Longest a single metadata request may take; a poll interval shorter than this
/// bounds it instead, so a hung endpoint cannot delay the next poll.
const MAX_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum PreemptError {
    #[error("metadata request to {url}: {source}")]
    Request { url: String, #[source] source: reqwest::Error },
    #[error("metadata service at {url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("metadata service at {url} sent an answer we cannot read: {message}")]
    Decode { url: String, message: String },
}

/// One cloud's way of announcing that this machine will be reclaimed.
#[async_trait]
pub trait Detector: Send + Sync {
    /// The provider's name, for logs.
    fn name(&self) -> &'static str;
    /// Asks once: `Ok(true)` when this machine is being preempted.
    async fn check(&self) -> Result<bool, PreemptError>;
}

/// The configured detector, or `None` when preemption detection is off.
pub fn from_config(cfg: &PreemptionConfig) -> Option<Arc<dyn Detector>> {
    let client = http_client(cfg.poll_interval);
    let endpoint = |default: &str| {
        let e = if cfg.endpoint.is_empty() { default } else { cfg.endpoint.as_str() };
        e.trim_end_matches('/').to_string()
    };
    match cfg.provider {
        PreemptionProvider::None => None,
        PreemptionProvider::Gce => Some(Arc::new(GcePreempted::new(client, endpoint(gce::DEFAULT_ENDPOINT)))),
        PreemptionProvider::Aws => Some(Arc::new(AwsSpot::new(client, endpoint(aws::DEFAULT_ENDPOINT)))),
        PreemptionProvider::Azure => {
            Some(Arc::new(AzureScheduledEvents::new(client, endpoint(azure::DEFAULT_ENDPOINT))))
        }
    }
}

/// A client for link-local metadata services: never through a proxy, and with a
/// timeout below the poll interval.
pub fn http_client(poll_interval: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(poll_interval.min(MAX_REQUEST_TIMEOUT))
        .connect_timeout(poll_interval.min(MAX_REQUEST_TIMEOUT))
        .build()
        .expect("a plain HTTP client builds")
}

/// Polls `detector` every `poll_interval` (the first time at once) until it
/// reports a preemption, which cancels `preempt`, or until `shutdown`. Errors are
/// logged when they start and when they stop, not at every poll.
pub async fn watch(
    detector: Arc<dyn Detector>,
    poll_interval: Duration,
    preempt: CancellationToken,
    shutdown: CancellationToken,
) {
    let provider = detector.name();
    let mut ticker = tokio::time::interval(poll_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    tracing::info!(provider, ?poll_interval, "watching for preemption");
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = preempt.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let result = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = detector.check() => r,
        };
        match result {
            Ok(true) => {
                tracing::warn!(provider, "this machine is being preempted: releasing builds");
                preempt.cancel();
                return;
            }
            Ok(false) => {
                if failing {
                    tracing::info!(provider, "metadata service reachable again");
                    failing = false;
                }
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(provider, error = %e, "cannot ask the metadata service about preemption; retrying every poll");
                    failing = true;
                } else {
                    tracing::debug!(provider, error = %e, "metadata service still failing");
                }
            }
        }
    }
}

/// Sends a request and returns the response when it is a success, `None` on 404
/// (which the metadata services use for "nothing scheduled").
async fn send(url: &str, request: reqwest::RequestBuilder) -> Result<Option<reqwest::Response>, PreemptError> {
    let response = request.send().await.map_err(|source| PreemptError::Request { url: url.to_string(), source })?;
    match response.status() {
        s if s.is_success() => Ok(Some(response)),
        reqwest::StatusCode::NOT_FOUND => Ok(None),
        s => Err(PreemptError::Status { url: url.to_string(), status: s.as_u16() }),
    }
}

async fn text(url: &str, response: reqwest::Response) -> Result<String, PreemptError> {
    response.text().await.map_err(|source| PreemptError::Request { url: url.to_string(), source })
}
