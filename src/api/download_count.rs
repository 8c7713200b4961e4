//! Downloads of binaries, counted per build in memory and written to Postgres
//! in batches (`cbs.count_downloads`, which also adds them to the plugins'
//! packages for `/api/packages`): ten thousand waiters released by one build
//! cost one statement, not ten thousand updates of one row.
//!
//! A download is a `GET` answered with the whole binary (200) or with a
//! redirect to it (302); ranges (resumed downloads), `HEAD` and 304 are not.
//! The flusher runs from the api's start until shutdown, when it writes what is
//! left; a batch the database refused is kept and written with the next one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{Method, StatusCode};
use axum::response::Response;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::db::Queue;

/// How long the first download of a batch waits for others to join it.
const BATCH_WINDOW: Duration = Duration::from_millis(250);
/// Pause after a batch the database refused.
const RETRY_AFTER_ERROR: Duration = Duration::from_secs(5);

#[derive(Default)]
pub struct DownloadCounter {
    counts: Mutex<HashMap<String, i64>>,
    wake: Notify,
}

impl DownloadCounter {
    /// Starts the flusher; it runs until `shutdown`.
    pub fn start(queue: Queue, shutdown: CancellationToken) -> Arc<DownloadCounter> {
        let counter = Arc::new(DownloadCounter::default());
        tokio::spawn(counter.clone().run(queue, shutdown));
        counter
    }

    /// Counts `response` when it hands out the binary of build `build_key`.
    pub fn note(&self, build_key: &str, method: &Method, response: &Response) {
        let whole = matches!(response.status(), StatusCode::OK | StatusCode::FOUND);
        if method == Method::GET && whole {
            *self.counts.lock().unwrap().entry(build_key.to_string()).or_default() += 1;
            self.wake.notify_one();
        }
    }

    async fn run(self: Arc<Self>, queue: Queue, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = shutdown.cancelled() => break,
            }
            tokio::select! {
                _ = tokio::time::sleep(BATCH_WINDOW) => {}
                _ = shutdown.cancelled() => break,
            }
            if !self.flush(&queue).await {
                tokio::select! {
                    _ = tokio::time::sleep(RETRY_AFTER_ERROR) => self.wake.notify_one(),
                    _ = shutdown.cancelled() => break,
                }
            }
        }
        self.flush(&queue).await;
    }

    /// Writes the counts so far; on failure keeps them for the next batch.
    async fn flush(&self, queue: &Queue) -> bool {
        let batch = std::mem::take(&mut *self.counts.lock().unwrap());
        if batch.is_empty() {
            return true;
        }
        match queue.count_downloads(&batch).await {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(error = %e, builds = batch.len(), "cannot count downloads yet; keeping them for the next batch");
                let mut counts = self.counts.lock().unwrap();
                for (key, n) in batch {
                    *counts.entry(key).or_default() += n;
                }
                false
            }
        }
    }
}
