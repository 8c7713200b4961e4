//! The worker reaper: forgets registry rows (`cbs.workers`) of workers that have
//! not been seen for `janitor.reaper.forget_after` and hold no build, so the
//! registry shows the fleet that exists rather than every process that ever ran.

use std::time::Duration;

use async_trait::async_trait;

use super::job::{Counts, Job, JobError};
use crate::db::Queue;

pub struct Reaper {
    queue: Queue,
    forget_after: Duration,
}

impl Reaper {
    pub fn new(queue: Queue, forget_after: Duration) -> Reaper {
        Reaper { queue, forget_after }
    }
}

#[async_trait]
impl Job for Reaper {
    fn name(&self) -> &'static str {
        "reaper"
    }

    async fn run_once(&self) -> Result<Counts, JobError> {
        let n = self.queue.forget_workers(self.forget_after).await?;
        Ok(Counts::of(&[("workers_forgotten", n as u64)]))
    }
}
