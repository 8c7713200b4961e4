//! The reproduction sampler: queues a reproduction for the configured share of
//! new succeeded builds (`cbs.sample_reproductions`, which picks by build key, so
//! repeated runs pick the same builds and never queue one twice). A share of 0
//! turns it off. Another worker then rebuilds each and compares hashes.

use async_trait::async_trait;

use super::job::{Counts, Job, JobError};
use crate::config::ReproductionConfig;
use crate::db::Queue;

pub struct Sampler {
    queue: Queue,
    config: ReproductionConfig,
}

impl Sampler {
    pub fn new(queue: Queue, config: ReproductionConfig) -> Sampler {
        Sampler { queue, config }
    }
}

#[async_trait]
impl Job for Sampler {
    fn name(&self) -> &'static str {
        "reproduction"
    }

    async fn run_once(&self) -> Result<Counts, JobError> {
        if self.config.share <= 0.0 {
            return Ok(Counts::default());
        }
        let n = self.queue.sample_reproductions(self.config.share, self.config.recent, self.config.batch_size).await?;
        Ok(Counts::of(&[("reproductions_queued", n as u64)]))
    }
}
