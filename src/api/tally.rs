//! Counts kept in memory per key and sent to Postgres about once a second in
//! one statement, so that bookkeeping costs the requests nothing: client usage
//! ([`super::usage`]) and downloads ([`super::download_count`]). A batch the
//! database refused is kept for the next try; a crash loses at most the last
//! second's counts. The sending task runs until shutdown, then sends once more.

use std::collections::HashMap;
use std::future::Future;
use std::ops::AddAssign;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::db::{DbError, Queue};

const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Where a batch of counts goes.
pub trait Sink<V>: Send + Sync + 'static {
    /// What is counted, for the log.
    const WHAT: &'static str;
    fn write(&self, queue: &Queue, batch: &HashMap<String, V>) -> impl Future<Output = Result<(), DbError>> + Send;
}

pub struct Tally<V> {
    pending: Mutex<HashMap<String, V>>,
}

impl<V: Default + AddAssign + Send + Sync + 'static> Tally<V> {
    /// Starts the task that sends the counts to `sink`.
    pub fn start(queue: Queue, shutdown: CancellationToken, sink: impl Sink<V>) -> Arc<Tally<V>> {
        let tally = Arc::new(Tally { pending: Mutex::new(HashMap::new()) });
        let flusher = tally.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(FLUSH_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let stopping = tokio::select! {
                    _ = tick.tick() => false,
                    _ = shutdown.cancelled() => true,
                };
                flusher.flush(&queue, &sink).await;
                if stopping {
                    return;
                }
            }
        });
        tally
    }

    pub fn add(&self, key: &str, n: V) {
        *self.pending.lock().unwrap().entry(key.to_string()).or_default() += n;
    }

    async fn flush<S: Sink<V>>(&self, queue: &Queue, sink: &S) {
        let batch = std::mem::take(&mut *self.pending.lock().unwrap());
        if batch.is_empty() {
            return;
        }
        if let Err(e) = sink.write(queue, &batch).await {
            tracing::warn!(error = %e, keys = batch.len(), "cannot record {} yet; they are kept for the next try", S::WHAT);
            let mut pending = self.pending.lock().unwrap();
            for (key, n) in batch {
                *pending.entry(key).or_default() += n;
            }
        }
    }
}
