//! Queue statistics: one log line per run with the builds per status, how many
//! queued ones may run now, the oldest queued build's age and the webhook
//! backlog, so an operator reading the logs sees the queue's health over time.
//! Logging is this job's work, but an idle queue is not news: it logs when the
//! numbers changed since its last line, or while builds are queued or running.

use std::sync::Mutex;

use async_trait::async_trait;
use tracing::info;

use super::job::{Counts, Job, JobError};
use crate::db::Queue;

pub struct Stats {
    queue: Queue,
    /// Counts of the last line logged.
    last: Mutex<Option<Vec<i64>>>,
}

impl Stats {
    pub fn new(queue: Queue) -> Stats {
        Stats { queue, last: Mutex::new(None) }
    }
}

#[async_trait]
impl Job for Stats {
    fn name(&self) -> &'static str {
        "stats"
    }

    async fn run_once(&self) -> Result<Counts, JobError> {
        let overview = self.queue.queue_overview().await?;
        let webhooks = self.queue.webhook_backlog().await?;
        let count = |s: &str| overview.iter().find(|c| c.status == s).map_or(0, |c| c.builds);
        let queued = overview.iter().find(|c| c.status == "queued");
        let now: Vec<i64> = overview.iter().map(|c| c.builds).chain([webhooks]).collect();
        let busy = count("queued") > 0 || count("building") > 0 || webhooks > 0;
        let changed = self.last.lock().unwrap().replace(now.clone()) != Some(now);
        if !busy && !changed {
            return Ok(Counts::default());
        }
        info!(
            queued = count("queued"),
            runnable = queued.map_or(0, |c| c.runnable),
            oldest_queued_secs = queued.and_then(|c| c.oldest_age_secs).unwrap_or(0.0).round() as u64,
            building = count("building"),
            succeeded = count("succeeded"),
            failed = count("failed"),
            cancelled = count("cancelled"),
            webhooks_pending = webhooks,
            "queue statistics"
        );
        // Already logged above: report nothing more to the scheduler.
        Ok(Counts::default())
    }
}
