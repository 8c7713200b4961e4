//! What every scheduled janitor job shares: the `Job` trait (`run_once` returns
//! counts), and the loop that runs a job while this janitor leads: once when it
//! becomes leader, then at every time its cron schedule fires (or every interval). A run that did
//! nothing logs nothing; a successful run is followed by the job's heartbeat ping.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn, Instrument};

use super::leader::Leadership;
use super::ping::Pinger;
use crate::config::CronSchedule;
use crate::db::DbError;
use crate::storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Named counts of what one run did, e.g. `rescued=3`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counts(pub Vec<(&'static str, u64)>);

impl Counts {
    pub fn of(items: &[(&'static str, u64)]) -> Counts {
        Counts(items.to_vec())
    }

    /// Whether the run changed anything (then it is not logged).
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|(_, n)| *n == 0)
    }

    pub fn get(&self, name: &str) -> u64 {
        self.0.iter().find(|(k, _)| *k == name).map_or(0, |(_, n)| *n)
    }
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (k, n) in self.0.iter().filter(|(_, n)| *n > 0) {
            if !first {
                f.write_str(" ")?;
            }
            write!(f, "{k}={n}")?;
            first = false;
        }
        Ok(())
    }
}

#[async_trait]
pub trait Job: Send + Sync {
    fn name(&self) -> &'static str;
    /// One bounded pass of the job's policy.
    async fn run_once(&self) -> Result<Counts, JobError>;
}

/// When and with which heartbeat a job runs.
#[derive(Debug, Clone)]
pub struct JobSchedule {
    pub schedule: CronSchedule,
    pub ping_url: String,
}

/// Runs `job` on its schedule whenever this janitor leads, until `shutdown`.
pub async fn run_scheduled(
    job: Arc<dyn Job>,
    plan: JobSchedule,
    leadership: Leadership,
    pinger: Pinger,
    shutdown: CancellationToken,
) {
    let schedule = plan.schedule.clone();
    let next = move |now: &DateTime<Utc>| {
        let n = schedule.next_after(now);
        if n.is_none() {
            warn!(schedule = schedule.source(), "schedule fires no more; the job stops");
        }
        n
    };
    run_while_leading(job, next, plan.ping_url, leadership, pinger, shutdown).await
}

/// Runs `job` every `interval` (from the end of one run to the start of the
/// next) whenever this janitor leads, until `shutdown`: for jobs whose period is
/// a setting in minutes rather than a time of day (polling the module proxy).
pub async fn run_every(job: Arc<dyn Job>, interval: Duration, leadership: Leadership, pinger: Pinger, shutdown: CancellationToken) {
    let step = chrono::Duration::from_std(interval).unwrap_or(chrono::Duration::MAX);
    let next = move |now: &DateTime<Utc>| now.checked_add_signed(step);
    run_while_leading(job, next, String::new(), leadership, pinger, shutdown).await
}

/// The loop both share: run at once on taking over, then at each `next` time.
async fn run_while_leading(
    job: Arc<dyn Job>,
    next_after: impl Fn(&DateTime<Utc>) -> Option<DateTime<Utc>>,
    ping_url: String,
    mut leadership: Leadership,
    pinger: Pinger,
    shutdown: CancellationToken,
) {
    let span = tracing::info_span!("janitor_job", job = job.name());
    async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = leadership.acquired() => {}
            }
            // Run at once on taking over: the previous leader may have been gone a while.
            let mut next = Utc::now();
            loop {
                let wait = (next - Utc::now()).to_std().unwrap_or_default();
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = leadership.lost() => break,
                    _ = tokio::time::sleep(wait) => {}
                }
                match job.run_once().await {
                    Ok(counts) => {
                        if !counts.is_empty() {
                            info!(result = %counts, "janitor job did work");
                        }
                        if !ping_url.is_empty() {
                            pinger.ping_in_background(job.name(), &ping_url);
                        }
                    }
                    Err(e) => warn!(error = %e, "janitor job failed; it runs again at its next scheduled time"),
                }
                let Some(n) = next_after(&Utc::now()) else { return };
                next = n;
            }
        }
    }
    .instrument(span)
    .await
}

#[cfg(test)]
mod tests {
    use super::Counts;

    #[test]
    fn counts_show_only_what_happened() {
        let c = Counts::of(&[("builds_deleted", 2), ("storage_errors", 0), ("files_deleted", 6)]);
        assert_eq!(c.to_string(), "builds_deleted=2 files_deleted=6");
        assert!(!c.is_empty());
        assert_eq!(c.get("files_deleted"), 6);
        assert!(Counts::of(&[("rescued", 0)]).is_empty());
    }
}
