//! Build output → `cbs.append_logs`, in batches: one round trip (and one NOTIFY
//! for the api's live log followers) per batch instead of per line. Output is
//! best effort: a failed append is logged and dropped, never fails the build.
//! Phase markers are stored as phase lines (stream `system`).

use std::time::Duration;

use tokio::sync::mpsc;
use tracing::warn;

use crate::db::{LogLine, Queue};
use crate::sandbox::OutputLine;

/// Longest a line waits before it is written.
const FLUSH_EVERY: Duration = Duration::from_millis(250);
/// Most lines per append.
const MAX_BATCH: usize = 500;

/// Who a batch belongs to; appends are fenced by it.
#[derive(Clone)]
pub struct LogTarget {
    pub queue: Queue,
    pub build_key: String,
    pub attempt: i32,
    pub worker_id: String,
}

impl From<OutputLine> for LogLine {
    /// A phase marker becomes a phase line (see [`crate::phase`]).
    fn from(o: OutputLine) -> LogLine {
        if !o.stderr && let Some(name) = crate::phase::announced(&o.step, &o.line) {
            return LogLine { line: name.to_string(), stream: crate::phase::STREAM.into(), step: o.step };
        }
        LogLine { step: o.step, stream: if o.stderr { "stderr" } else { "stdout" }.into(), line: o.line }
    }
}

/// Forwards lines until every sender is gone, then flushes what is left.
pub async fn forward(target: LogTarget, mut rx: mpsc::Receiver<OutputLine>) {
    let mut batch: Vec<LogLine> = Vec::new();
    while let Some(first) = rx.recv().await {
        batch.push(first.into());
        let deadline = tokio::time::sleep(FLUSH_EVERY);
        tokio::pin!(deadline);
        let mut open = true;
        while batch.len() < MAX_BATCH {
            tokio::select! {
                line = rx.recv() => match line {
                    Some(l) => batch.push(l.into()),
                    None => { open = false; break }
                },
                _ = &mut deadline => break,
            }
        }
        flush(&target, &mut batch).await;
        if !open {
            return;
        }
    }
}

async fn flush(t: &LogTarget, batch: &mut Vec<LogLine>) {
    if let Err(e) = t.queue.append_logs(&t.build_key, t.attempt, &t.worker_id, batch).await {
        warn!(build_key = %t.build_key, lines = batch.len(), error = %e, "could not store build output");
    }
    batch.clear();
}
