//! Per-client usage for `cbs.heaviest_clients`: admissions and refusals are
//! counted in memory and sent to Postgres about once a second in one statement,
//! so that the figures admins read cost the requests nothing. A crash loses at
//! most the last second's counts, which only the admin view reads.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::db::Queue;

const FLUSH_EVERY: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct Usage {
    /// client → (admitted, refused) since the last flush.
    pending: Mutex<HashMap<String, (i32, i32)>>,
}

impl Usage {
    /// Starts the task that sends the counts; it flushes once more when `shutdown` fires.
    pub fn start(queue: Queue, shutdown: CancellationToken) -> Arc<Usage> {
        let usage = Arc::new(Usage::default());
        let flusher = usage.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(FLUSH_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let stopping = tokio::select! {
                    _ = tick.tick() => false,
                    _ = shutdown.cancelled() => true,
                };
                flusher.flush(&queue).await;
                if stopping {
                    return;
                }
            }
        });
        usage
    }

    pub fn admitted(&self, client: &str) {
        self.count(client, 1, 0);
    }

    pub fn refused(&self, client: &str) {
        self.count(client, 0, 1);
    }

    fn count(&self, client: &str, admitted: i32, refused: i32) {
        let mut pending = self.pending.lock().unwrap();
        let entry = pending.entry(client.to_string()).or_default();
        entry.0 += admitted;
        entry.1 += refused;
    }

    async fn flush(&self, queue: &Queue) {
        let batch = std::mem::take(&mut *self.pending.lock().unwrap());
        if batch.is_empty() {
            return;
        }
        let now: DateTime<Utc> = Utc::now();
        let (mut clients, mut admitted, mut refused) = (Vec::new(), Vec::new(), Vec::new());
        for (client, (a, r)) in &batch {
            clients.push(client.as_str());
            admitted.push(*a);
            refused.push(*r);
        }
        if let Err(e) = queue.record_usage(now, &clients, &admitted, &refused).await {
            tracing::warn!(error = %e, clients = batch.len(), "cannot record client usage; it is kept for the next try");
            let mut pending = self.pending.lock().unwrap();
            for (client, (a, r)) in batch {
                let entry = pending.entry(client).or_default();
                entry.0 += a;
                entry.1 += r;
            }
        }
    }
}
