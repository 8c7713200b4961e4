//! Heartbeat pings: after a successful run a job requests its configured URL
//! (like Checkly or healthchecks.io heartbeats), so an outside monitor notices
//! when the janitor stops working. A failing ping is logged, never fatal, and
//! never delays the job's schedule.

use std::time::Duration;

use tracing::{debug, warn};

#[derive(Clone)]
pub struct Pinger {
    http: reqwest::Client,
}

#[derive(Debug, thiserror::Error)]
pub enum PingError {
    #[error("ping request failed: {0}")]
    Request(#[from] reqwest::Error),
    #[error("ping answered HTTP {0}")]
    Status(u16),
}

impl Pinger {
    pub fn new(timeout: Duration) -> Pinger {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("caddy-build-server/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("TLS backend available");
        Pinger { http }
    }

    /// Requests `url` once; any 2xx answer counts as success.
    pub async fn ping(&self, url: &str) -> Result<(), PingError> {
        let resp = self.http.get(url).send().await?;
        if resp.status().is_success() { Ok(()) } else { Err(PingError::Status(resp.status().as_u16())) }
    }

    /// Pings without making the caller wait; failures are logged.
    pub fn ping_in_background(&self, job: &'static str, url: &str) {
        let this = self.clone();
        let url = url.to_string();
        tokio::spawn(async move {
            match this.ping(&url).await {
                Ok(()) => debug!(job, "heartbeat ping sent"),
                Err(e) => warn!(job, url = %url, error = %e, "heartbeat ping failed"),
            }
        });
    }
}
