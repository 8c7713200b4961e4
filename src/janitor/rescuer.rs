//! The rescuer: builds whose worker stopped renewing its lease (crashed, killed,
//! partitioned) go back to the queue, or fail for good once their attempts are
//! used up (`cbs.rescue_expired`, which also wakes workers); reproductions
//! likewise (`cbs.rescue_expired_reproductions`).

use async_trait::async_trait;

use super::job::{Counts, Job, JobError};
use crate::db::Queue;

pub struct Rescuer {
    queue: Queue,
}

impl Rescuer {
    pub fn new(queue: Queue) -> Rescuer {
        Rescuer { queue }
    }
}

#[async_trait]
impl Job for Rescuer {
    fn name(&self) -> &'static str {
        "rescue"
    }

    async fn run_once(&self) -> Result<Counts, JobError> {
        let n = self.queue.rescue_expired().await?;
        let r = self.queue.rescue_expired_reproductions().await?;
        Ok(Counts::of(&[("rescued", n as u64), ("reproductions_rescued", r as u64)]))
    }
}
