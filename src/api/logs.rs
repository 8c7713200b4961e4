//! `GET /api/builds/{key}/log`: Server-Sent Events of a build's output. Stored
//! lines are replayed first (after `Last-Event-ID` when a client reconnects),
//! then new ones follow as the listener reports them; an `end` event with the
//! final status closes the stream once the build is finished.

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
use crate::db::DbError;

/// Lines read per query while replaying.
const BATCH: i64 = 500;
/// Events buffered per client before the follower waits for it.
const CHANNEL_CAPACITY: usize = 64;
/// Pause before re-reading after a database error.
const RETRY_AFTER_ERROR: Duration = Duration::from_secs(1);

pub async fn log(State(state): State<AppState>, client: Client, Path(key): Path<String>, headers: HeaderMap) -> ApiResult<impl IntoResponse> {
    load(&state, &key).await?;
    let held = state.held.hold(&client)?;
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .unwrap_or(0);
    Ok(Sse::new(follow(state, key, after, held)).keep_alive(KeepAlive::default()))
}

/// The stream counts as held (`held`) until the follower ends.
fn follow(state: AppState, key: String, after: i64, held: Held) -> impl Stream<Item = Result<Event, Infallible>> {
    let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
    tokio::spawn(async move {
        let _held = held;
        let span = tracing::debug_span!("log_follow", build_key = %key);
        let _ = tracing::Instrument::instrument(pump(&state, &key, after, &tx), span).await;
    });
    ReceiverStream::new(rx)
}

/// Sends events until the build is finished and every line was sent, or the client left.
async fn pump(state: &AppState, key: &str, mut after: i64, tx: &mpsc::Sender<Result<Event, Infallible>>) -> Result<(), ()> {
    let wake = state.listener.watch_build(key, crate::db::WatchOn::Log);
    loop {
        let notified = wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        match read_batch(state, key, after).await {
            Ok((events, last, finished)) => {
                let full = events.len() as i64 == BATCH;
                for ev in events {
                    tx.send(Ok(ev)).await.map_err(|_| ())?;
                }
                after = last.unwrap_or(after);
                if full {
                    continue;
                }
                if let Some(end) = finished {
                    let _ = tx.send(Ok(end)).await;
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

/// Lines after `after`, the last id sent, and the `end` event when the build was
/// already finished before the lines were read (so none can follow).
async fn read_batch(state: &AppState, key: &str, after: i64) -> Result<(Vec<Event>, Option<i64>, Option<Event>), DbError> {
    let build = state.queue.get(key).await?;
    let lines = state.queue.logs_after(key, after, BATCH).await?;
    let last = lines.last().map(|l| l.id);
    let events = lines
        .iter()
        .map(|l| Event::default().id(l.id.to_string()).event("log").json_data(l).expect("log lines serialize"))
        .collect();
    let end = match build {
        None => Some(Event::default().event("end").data(r#"{"status":"deleted"}"#)),
        Some(b) if b.status.is_terminal() => Some(
            Event::default()
                .event("end")
                .json_data(serde_json::json!({"status": b.status.as_str(), "error": b.error}))
                .expect("json serializes"),
        ),
        Some(_) => None,
    };
    Ok((events, last, end))
}
