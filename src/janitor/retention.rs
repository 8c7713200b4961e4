//! Retention: builds that nobody requested for `janitor.retention.max_age` are
//! deleted, their files first (through the `Storage` trait), then their rows
//! (`cbs.delete_builds`). Never the other way: a crash between the two leaves a
//! row whose files are gone, which the next request rebuilds and the next run
//! deletes again, but never files that no row points to. Queued and building
//! builds, and builds requested or downloaded recently, are never candidates.

use std::time::Duration;

use async_trait::async_trait;
use tracing::warn;

use super::job::{Counts, Job, JobError};
use crate::db::Queue;
use crate::storage::{ArtifactPaths, DynStorage};

/// Upper bound of batches per run, so one run cannot go on forever.
const MAX_BATCHES_PER_RUN: usize = 100;
/// How long per-client usage (admissions, refusals) and idle clients are kept.
const CLIENT_HISTORY: Duration = Duration::from_secs(7 * 24 * 3600);

pub struct Retention {
    queue: Queue,
    storage: DynStorage,
    max_age: Duration,
    batch_size: i32,
}

impl Retention {
    pub fn new(queue: Queue, storage: DynStorage, max_age: Duration, batch_size: i32) -> Retention {
        Retention { queue, storage, max_age, batch_size }
    }

    /// One batch, passing over builds whose files could not be deleted earlier in
    /// this run (added to `failed`): returns (rows deleted, files deleted, candidates seen).
    async fn batch(&self, failed: &mut Vec<String>) -> Result<(u64, u64, usize), JobError> {
        let candidates = self.queue.retention_candidates(self.max_age, self.batch_size, failed).await?;
        let mut removed_from_storage = Vec::with_capacity(candidates.len());
        let mut files = 0;
        for c in &candidates {
            let paths = ArtifactPaths::new(&c.build_key, &c.os)?;
            match self.storage.delete_prefix(&paths.dir).await {
                Ok(n) => {
                    files += n;
                    removed_from_storage.push(c.build_key.clone());
                }
                Err(e) => {
                    // Its row stays, so the next run tries again.
                    warn!(build_key = %c.build_key, error = %e, "retention could not delete the build's files; keeping its row");
                    failed.push(c.build_key.clone());
                }
            }
        }
        let rows = if removed_from_storage.is_empty() { 0 } else { self.queue.delete_builds(&removed_from_storage).await? };
        Ok((rows as u64, files, candidates.len()))
    }
}

#[async_trait]
impl Job for Retention {
    fn name(&self) -> &'static str {
        "retention"
    }

    async fn run_once(&self) -> Result<Counts, JobError> {
        let (mut rows, mut files) = (0, 0);
        let mut failed = Vec::new();
        for _ in 0..MAX_BATCHES_PER_RUN {
            let (r, f, seen) = self.batch(&mut failed).await?;
            rows += r;
            files += f;
            // A short batch was the last one.
            if seen < self.batch_size as usize {
                break;
            }
        }
        let clients = self.queue.prune_clients(CLIENT_HISTORY).await?;
        Ok(Counts::of(&[
            ("builds_deleted", rows),
            ("files_deleted", files),
            ("storage_errors", failed.len() as u64),
            ("client_rows_deleted", clients as u64),
        ]))
    }
}
