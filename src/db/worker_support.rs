//! Read-only queries the worker needs besides the queue functions: its
//! namespace on a shared Docker daemon, which workers are alive, and when the
//! next delayed build becomes runnable.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{query, DbError, Queue};

impl Queue {
    /// `<system identifier>/<database>`: unique per queue, stable across restarts.
    pub async fn namespace(&self) -> Result<String, DbError> {
        self.scalar(query!("namespace"), &[]).await
    }

    /// Ids of workers seen within `silence` and not stopped.
    pub async fn live_workers(&self, silence: Duration) -> Result<Vec<String>, DbError> {
        let rows = self.query(query!("live_workers"), &[&silence.as_secs_f64()]).await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// When the earliest queued build may be claimed (`None`: nothing is queued).
    pub async fn next_run_after(&self) -> Result<Option<DateTime<Utc>>, DbError> {
        self.scalar(query!("next_run_after"), &[]).await
    }
}
