//! A real HTTP server on a free local port that records every request it gets
//! (heartbeat pings, webhook POSTs) and answers as the test tells it: a status
//! per request number, a redirect, or no answer at all (hang) to simulate a
//! slow receiver.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use tokio::sync::Notify;

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Bytes,
}

impl Request {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

/// How to answer the n-th request (0-based) to a path.
#[derive(Debug, Clone)]
pub enum Answer {
    Status(u16),
    /// A 3xx status with this `Location`.
    Redirect(u16, String),
    /// Never answer (until the client gives up or dies).
    Hang,
}

#[derive(Default)]
struct Inner {
    requests: Mutex<Vec<Request>>,
    /// path → answers by request number; past the end: 200.
    script: Mutex<HashMap<String, Vec<Answer>>>,
    arrived: Notify,
}

#[derive(Clone)]
pub struct Recorder {
    inner: Arc<Inner>,
    pub base: String,
}

impl Recorder {
    pub async fn start() -> Recorder {
        Self::start_on("127.0.0.1").await
    }

    /// Listens on `ip` (a loopback address: any of 127.0.0.0/8 works on Linux).
    pub async fn start_on(ip: &str) -> Recorder {
        let inner = Arc::new(Inner::default());
        let app = axum::Router::new().fallback(record).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Recorder { inner, base }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn script(&self, path: &str, answers: &[Answer]) {
        self.inner.script.lock().unwrap().insert(path.to_string(), answers.to_vec());
    }

    pub fn requests(&self, path: &str) -> Vec<Request> {
        self.inner.requests.lock().unwrap().iter().filter(|r| r.path == path).cloned().collect()
    }

    /// Waits until `path` got at least `n` requests; panics after `limit`.
    pub async fn wait_for(&self, path: &str, n: usize, limit: Duration) -> Vec<Request> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let arrived = self.inner.arrived.notified();
            let got = self.requests(path);
            if got.len() >= n {
                return got;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                panic!("{path}: expected {n} requests within {limit:?}, got {}", self.requests(path).len());
            }
        }
    }
}

async fn record(State(inner): State<Arc<Inner>>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path = uri.path().to_string();
    let n = {
        let mut reqs = inner.requests.lock().unwrap();
        let n = reqs.iter().filter(|r| r.path == path).count();
        reqs.push(Request {
            method: method.to_string(),
            path: path.clone(),
            headers: headers.iter().map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string())).collect(),
            body,
        });
        n
    };
    inner.arrived.notify_waiters();
    let answer = inner.script.lock().unwrap().get(&path).and_then(|s| s.get(n).cloned()).unwrap_or(Answer::Status(200));
    match answer {
        Answer::Status(code) => StatusCode::from_u16(code).unwrap().into_response(),
        Answer::Redirect(code, location) => (StatusCode::from_u16(code).unwrap(), [(header::LOCATION, location)]).into_response(),
        Answer::Hang => {
            std::future::pending::<()>().await;
            unreachable!()
        }
    }
}
