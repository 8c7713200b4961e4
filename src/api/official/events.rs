//! `GET /api/build/{key}/events`: a build's progress as the official build page
//! follows it. Events, each with the id of the log line it comes from:
//!
//! - `step` `{"step": name}` when a phase starts ([`crate::phase`]: our steps
//!   under the official names, in order, once per attempt);
//! - `log` `{"line": "…"}` for each line of output;
//! - `result` `{"success": true|false, "error": "…"}` once the build is
//!   finished, and the stream ends.
//!
//! Derived from the stored log, so a late subscriber gets the history, then the
//! live events (a finished build's `result` comes right after its history). On
//! reconnect (`Last-Event-ID`) the phases are recounted from the start and only
//! later events are sent.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use serde_json::json;

use crate::api::builds::load;
use crate::api::client::Client;
use crate::api::error::ApiResult;
use crate::api::logs::{follow, last_event_id, Render};
use crate::api::state::AppState;
use crate::db::{Build, BuildStatus, StoredLogLine};
use crate::phase::{Progress, STREAM};

pub async fn events(State(state): State<AppState>, client: Client, Path(key): Path<String>, headers: HeaderMap) -> ApiResult<impl IntoResponse> {
    load(&state, &key).await?;
    let held = state.held.hold(&client)?;
    let render = Official { progress: Progress::default(), resume_after: last_event_id(&headers) };
    Ok(Sse::new(follow(state, key, 0, held, render)).keep_alive(KeepAlive::default()))
}

struct Official {
    progress: Progress,
    /// Events up to this id were sent before the client reconnected.
    resume_after: i64,
}

impl Render for Official {
    fn line(&mut self, l: &StoredLogLine) -> Option<Event> {
        let event = if l.stream == STREAM {
            if !self.progress.starts(l.attempt, &l.line) {
                return None;
            }
            Event::default().event("step").json_data(json!({"step": l.line}))
        } else {
            Event::default().event("log").json_data(json!({"line": l.line}))
        };
        (l.id > self.resume_after).then(|| event.expect("json serializes").id(l.id.to_string()))
    }

    fn end(&mut self, build: Option<&Build>) -> Event {
        let (success, error) = match build {
            None => (false, "the build no longer exists".to_string()),
            Some(b) => match b.status {
                BuildStatus::Succeeded => (true, String::new()),
                BuildStatus::Cancelled => {
                    (false, format!("build {} was cancelled: {}", b.build_key, b.error.as_deref().unwrap_or("no reason given")))
                }
                _ => (false, b.error.clone().unwrap_or_else(|| format!("build {} failed", b.build_key))),
            },
        };
        Event::default().event("result").json_data(json!({"success": success, "error": error})).expect("json serializes")
    }
}
