//! Reading Server-Sent Events in tests: `(event, data as JSON)` pairs, in order.

use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;

/// What ends reading.
pub enum Until<'a> {
    /// An event of this name (kept as the last one).
    Event(&'a str),
    /// This many events.
    Count(usize),
}

/// Reads events until `until`, the end of the stream, or 10 seconds (a panic).
pub async fn read_events(resp: reqwest::Response, until: Until<'_>) -> Vec<(String, Value)> {
    read_events_within(resp, until, Duration::from_secs(10)).await
}

/// Like [`read_events`], for at most `limit`.
pub async fn read_events_within(resp: reqwest::Response, until: Until<'_>, limit: Duration) -> Vec<(String, Value)> {
    let mut stream = resp.bytes_stream();
    let mut buf = String::new();
    let mut events = Vec::new();
    let deadline = tokio::time::sleep(limit);
    tokio::pin!(deadline);
    loop {
        while let Some(pos) = buf.find("\n\n") {
            let block: String = buf.drain(..pos + 2).collect();
            let mut name = String::from("message");
            let mut data = String::new();
            for l in block.lines() {
                if let Some(v) = l.strip_prefix("event:") {
                    name = v.trim().to_string();
                } else if let Some(v) = l.strip_prefix("data:") {
                    data.push_str(v.trim());
                }
            }
            if data.is_empty() {
                continue;
            }
            let done = matches!(until, Until::Event(last) if last == name);
            events.push((name, serde_json::from_str(&data).unwrap()));
            if done || matches!(until, Until::Count(n) if n == events.len()) {
                return events;
            }
        }
        tokio::select! {
            chunk = stream.next() => match chunk {
                Some(c) => buf.push_str(std::str::from_utf8(&c.unwrap()).unwrap()),
                None => return events,
            },
            _ = &mut deadline => panic!("timed out; events so far: {events:?}"),
        }
    }
}
