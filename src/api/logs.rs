//! `GET /api/builds/{key}/log`: Server-Sent Events of a build's output. Stored
//! lines are replayed first (after `Last-Event-ID` when a client reconnects),
//! then new ones follow as the listener reports them; an `end` event with the
//! final status closes the stream once the build is finished.
//!
//! [`follow`] does the replaying and following for any rendering of the lines
//! ([`Render`]): the official service's build events are another one.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::builds::load;
use super::client::Client;
use super::held::Held;
use super::error::ApiResult;
use super::state::AppState;
use crate::db::{Build, DbError, StoredLogLine};

/// Lines read per query while replaying.
const BATCH: i64 = 500;
/// Events buffered per client before the follower waits for it.
const CHANNEL_CAPACITY: usize = 64;
/// Pause before re-reading after a database error.
const RETRY_AFTER_ERROR: Duration = Duration::from_secs(1);

/// How a stream shows a build's stored lines and its end.
pub trait Render: Send + 'static {
    /// The event for a line, if it shows one.
    fn line(&mut self, line: &StoredLogLine) -> Option<Event>;
    /// The last event, once the build is finished (`None`: it no longer exists).
    fn end(&mut self, build: Option<&Build>) -> Event;
}

/// Our own log stream: every line as JSON, then `end` with the final status.
struct Lines;

impl Render for Lines {
    fn line(&mut self, l: &StoredLogLine) -> Option<Event> {
        Some(Event::default().id(l.id.to_string()).event("log").json_data(l).expect("log lines serialize"))
    }

    fn end(&mut self, build: Option<&Build>) -> Event {
        match build {
            None => Event::default().event("end").data(r#"{"status":"deleted"}"#),
            Some(b) => Event::default()
                .event("end")
                .json_data(serde_json::json!({"status": b.status.as_str(), "error": b.error}))
                .expect("json serializes"),
        }
    }
}

/// The `Last-Event-ID` a reconnecting client sends (0 without one).
pub fn last_event_id(headers: &HeaderMap) -> i64 {
    headers.get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<i64>().ok()).unwrap_or(0)
}

pub async fn log(State(state): State<AppState>, client: Client, Path(key): Path<String>, headers: HeaderMap) -> ApiResult<impl IntoResponse> {
    load(&state, &key).await?;
    let held = state.held.hold(&client)?;
    Ok(Sse::new(follow(state, key, last_event_id(&headers), held, Lines)).keep_alive(KeepAlive::default()))
}

/// The build's lines after id `after` as `render` shows them, live until the
/// build is finished; the stream counts as held (`held`) until it ends.
pub fn follow(state: AppState, key: String, after: i64, held: Held, render: impl Render) -> impl Stream<Item = Result<Event, Infallible>> {
    let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
    tokio::spawn(async move {
        let _held = held;
        let span = tracing::debug_span!("log_follow", build_key = %key);
        let _ = tracing::Instrument::instrument(pump(&state, &key, after, &tx, render), span).await;
    });
    ReceiverStream::new(rx)
}

/// Sends events until the build is finished and every line was sent, or the client left.
async fn pump(
    state: &AppState,
    key: &str,
    mut after: i64,
    tx: &mpsc::Sender<Result<Event, Infallible>>,
    mut render: impl Render,
) -> Result<(), ()> {
    let wake = state.listener.watch_build(key, crate::db::WatchOn::Log);
    loop {
        let notified = wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        match read_batch(state, key, after).await {
            Ok((lines, finished)) => {
                let full = lines.len() as i64 == BATCH;
                for ev in lines.iter().filter_map(|l| render.line(l)) {
                    tx.send(Ok(ev)).await.map_err(|_| ())?;
                }
                after = lines.last().map_or(after, |l| l.id);
                if full {
                    continue;
                }
                if let Some(build) = finished {
                    let _ = tx.send(Ok(render.end(build.as_ref()))).await;
                    return Ok(());
                }
                tokio::select! {
                    _ = notified => {}
                    _ = tx.closed() => return Err(()),
                    _ = state.shutdown.cancelled() => return Err(()),
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read build log; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(RETRY_AFTER_ERROR) => {}
                    _ = tx.closed() => return Err(()),
                    _ = state.shutdown.cancelled() => return Err(()),
                }
            }
        }
    }
}

/// Lines after `after`, and the build when it was already finished (or gone:
/// `Some(None)`) before the lines were read, so that none can follow.
async fn read_batch(state: &AppState, key: &str, after: i64) -> Result<(Vec<StoredLogLine>, Option<Option<Build>>), DbError> {
    let build = state.queue.get(key).await?;
    let lines = state.queue.logs_after(key, after, BATCH).await?;
    let finished = match build {
        None => Some(None),
        Some(b) if b.status.is_terminal() => Some(Some(b)),
        Some(_) => None,
    };
    Ok((lines, finished))
}
