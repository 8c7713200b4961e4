//! Trimming of the shared Go cache (`gocache.*`): entries unused for `max_age`,
//! and the least recently used beyond `max_bytes` in total, are deleted: their
//! files first (through the `Storage` trait), then their rows. Never the other
//! way: a crash in between leaves rows whose files are gone (a miss for the
//! next build, listed again by the next run), never files that no row names,
//! which nothing would ever trim. A row used again after it was listed is kept.

use std::time::Duration;

use async_trait::async_trait;
use tracing::warn;

use super::job::{Counts, Job, JobError};
use crate::config::GoCacheConfig;
use crate::db::Queue;
use crate::storage::DynStorage;

/// Upper bound of batches per run, so one run cannot go on forever.
const MAX_BATCHES_PER_RUN: usize = 100;

pub struct GoCacheTrim {
    queue: Queue,
    storage: DynStorage,
    max_bytes: u64,
    max_age: Duration,
    batch_size: i32,
}

impl GoCacheTrim {
    pub fn new(queue: Queue, storage: DynStorage, config: &GoCacheConfig) -> GoCacheTrim {
        GoCacheTrim { queue, storage, max_bytes: config.max_bytes, max_age: config.max_age, batch_size: config.batch_size }
    }

    /// One batch: returns (rows deleted, bytes freed, storage errors, candidates seen).
    async fn batch(&self) -> Result<(u64, u64, u64, usize), JobError> {
        let candidates = self.queue.gocache_trim_candidates(self.max_bytes, self.max_age, self.batch_size).await?;
        let (mut gone, mut bytes, mut errors) = (Vec::with_capacity(candidates.len()), 0u64, 0u64);
        let mut listed_at = None;
        for c in &candidates {
            match self.storage.delete_prefix(&c.path).await {
                Ok(_) => {
                    gone.push(c.path.clone());
                    bytes += c.size as u64;
                    listed_at = listed_at.max(Some(c.last_used_at));
                }
                Err(e) => {
                    warn!(path = %c.path, error = %e, "cannot delete a shared cache object; keeping its row");
                    errors += 1;
                }
            }
        }
        let rows = if gone.is_empty() { 0 } else { self.queue.gocache_forget(&gone, listed_at).await? };
        Ok((rows as u64, bytes, errors, candidates.len()))
    }
}

#[async_trait]
impl Job for GoCacheTrim {
    fn name(&self) -> &'static str {
        "gocache_trim"
    }

    async fn run_once(&self) -> Result<Counts, JobError> {
        let (mut rows, mut bytes, mut errors) = (0, 0, 0);
        for _ in 0..MAX_BATCHES_PER_RUN {
            let (r, b, e, seen) = self.batch().await?;
            rows += r;
            bytes += b;
            errors += e;
            // A short batch was the last; one where nothing could go would repeat itself.
            if seen < self.batch_size as usize || r == 0 {
                break;
            }
        }
        Ok(Counts::of(&[("gocache_entries_deleted", rows), ("gocache_bytes_freed", bytes), ("storage_errors", errors)]))
    }
}
