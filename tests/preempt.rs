//! Preemption detectors against a small HTTP server of the test's own that
//! answers like each cloud's metadata endpoint (the real ones are unreachable
//! here): nothing happens while the machine is safe, the `preempt` token is
//! cancelled within one poll interval of the announcement, requests without the
//! provider's required headers are refused, and an endpoint that is down is
//! survived. Polls are counted by the server, so "quiet for several polls" and
//! "detected at the next poll" are seen, not timed.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::Router;
use caddy_build_server::config::{PreemptionConfig, PreemptionProvider};
use caddy_build_server::preempt::{self, Detector};
use tokio_util::sync::CancellationToken;

const POLL: Duration = Duration::from_millis(300);
/// Bounds a hang only: what is asserted is the number of polls.
const LIMIT: Duration = Duration::from_secs(30);
const VM: &str = "cbs-worker-7";
const TOKEN: &str = "imds-token-123";

#[derive(Default)]
struct Meta {
    preempted: AtomicBool,
    /// Azure only: an eviction of another VM of the same scale set.
    other_vm_preempted: AtomicBool,
    token_puts: AtomicUsize,
    refused: AtomicUsize,
    /// Requests for the preemption state (the polls).
    polls: AtomicUsize,
}

impl Meta {
    fn polls(&self) -> usize {
        self.polls.load(Ordering::SeqCst)
    }

    /// Waits until the watch has polled `n` more times.
    async fn polled(&self, n: usize) {
        let want = self.polls() + n;
        support::wait::until(&format!("{n} more polls"), LIMIT, || async { self.polls() >= want }).await;
    }
}

type Shared = State<Arc<Meta>>;

fn refuse(meta: &Meta, status: StatusCode) -> Response {
    meta.refused.fetch_add(1, Ordering::SeqCst);
    status.into_response()
}

async fn gce(State(m): Shared, h: HeaderMap) -> Response {
    m.polls.fetch_add(1, Ordering::SeqCst);
    if h.get("metadata-flavor").map(|v| v.as_bytes()) != Some(b"Google") {
        return refuse(&m, StatusCode::FORBIDDEN);
    }
    (if m.preempted.load(Ordering::SeqCst) { "TRUE" } else { "FALSE" }).into_response()
}

async fn aws_token(State(m): Shared, h: HeaderMap) -> Response {
    let ttl: Option<u64> = h.get("x-aws-ec2-metadata-token-ttl-seconds").and_then(|v| v.to_str().ok()?.parse().ok());
    if !ttl.is_some_and(|t| (1..=21600).contains(&t)) {
        return refuse(&m, StatusCode::BAD_REQUEST);
    }
    m.token_puts.fetch_add(1, Ordering::SeqCst);
    TOKEN.into_response()
}

async fn aws_action(State(m): Shared, h: HeaderMap) -> Response {
    m.polls.fetch_add(1, Ordering::SeqCst);
    if h.get("x-aws-ec2-metadata-token").map(|v| v.as_bytes()) != Some(TOKEN.as_bytes()) {
        return refuse(&m, StatusCode::UNAUTHORIZED);
    }
    if m.preempted.load(Ordering::SeqCst) {
        r#"{"action": "terminate", "time": "2026-11-25T08:22:00Z"}"#.into_response()
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

fn azure_ok(m: &Meta, h: &HeaderMap, q: &std::collections::HashMap<String, String>) -> bool {
    h.get("metadata").map(|v| v.as_bytes()) == Some(b"true") && q.contains_key("api-version") || {
        m.refused.fetch_add(1, Ordering::SeqCst);
        false
    }
}

async fn azure_events(
    State(m): Shared,
    h: HeaderMap,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    m.polls.fetch_add(1, Ordering::SeqCst);
    if !azure_ok(&m, &h, &q) {
        return StatusCode::BAD_REQUEST.into_response();
    }
    let mut events = vec![serde_json::json!({
        "EventId": "a", "EventType": "Freeze", "ResourceType": "VirtualMachine",
        "Resources": [VM], "EventStatus": "Scheduled", "NotBefore": "Wed, 25 Nov 2026 08:30:00 GMT"
    })];
    if m.other_vm_preempted.load(Ordering::SeqCst) {
        events.push(serde_json::json!({"EventId": "b", "EventType": "Preempt", "Resources": ["cbs-worker-8"], "EventStatus": "Scheduled"}));
    }
    if m.preempted.load(Ordering::SeqCst) {
        events.push(serde_json::json!({"EventId": "c", "EventType": "Preempt", "Resources": [VM], "EventStatus": "Scheduled"}));
    }
    axum::Json(serde_json::json!({"DocumentIncarnation": 3, "Events": events})).into_response()
}

async fn azure_name(
    State(m): Shared,
    h: HeaderMap,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    if !azure_ok(&m, &h, &q) || q.get("format").map(String::as_str) != Some("text") {
        return StatusCode::BAD_REQUEST.into_response();
    }
    VM.into_response()
}

fn router(meta: Arc<Meta>) -> Router {
    Router::new()
        .route("/computeMetadata/v1/instance/preempted", get(gce))
        .route("/latest/api/token", put(aws_token))
        .route("/latest/meta-data/spot/instance-action", get(aws_action))
        .route("/metadata/scheduledevents", get(azure_events))
        .route("/metadata/instance/compute/name", get(azure_name))
        .with_state(meta)
}

/// Serves the fake metadata endpoint on `listener` until the test ends.
fn serve(listener: tokio::net::TcpListener, meta: Arc<Meta>) {
    tokio::spawn(async move { axum::serve(listener, router(meta)).await.unwrap() });
}

async fn start_server() -> (String, Arc<Meta>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let meta = Arc::new(Meta::default());
    serve(listener, meta.clone());
    (url, meta)
}

fn detector(provider: PreemptionProvider, endpoint: &str) -> Arc<dyn Detector> {
    let cfg = PreemptionConfig { provider, poll_interval: POLL, endpoint: endpoint.to_string() };
    preempt::from_config(&cfg).expect("a provider is configured")
}

struct Watching {
    preempt: CancellationToken,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

fn start_watch(d: Arc<dyn Detector>) -> Watching {
    let preempt = CancellationToken::new();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(preempt::watch(d, POLL, preempt.clone(), shutdown.clone()));
    Watching { preempt, shutdown, task }
}

/// Runs the whole story for one provider: quiet for several polls, then
/// detected at the first poll after the announcement (one poll interval).
async fn detects_within_one_interval(provider: PreemptionProvider) -> Arc<Meta> {
    let (url, meta) = start_server().await;
    let w = start_watch(detector(provider, &url));
    meta.polled(4).await;
    assert!(!w.preempt.is_cancelled(), "{provider:?}: no preemption announced yet");
    assert!(!w.task.is_finished(), "{provider:?}: the watch keeps polling");

    let before = meta.polls();
    meta.preempted.store(true, Ordering::SeqCst);
    support::wait::within(&format!("{provider:?}: not detected"), LIMIT, w.preempt.cancelled()).await;
    // The poll under way when it was announced may have missed it; the next one did not.
    let polls = meta.polls() - before;
    assert!(polls <= 2, "{provider:?}: detected after {polls} polls");
    support::wait::within("the watch ends after a detection", LIMIT, w.task).await.unwrap();
    assert_eq!(meta.refused.load(Ordering::SeqCst), 0, "{provider:?}: every request carried the required headers");
    meta
}

#[tokio::test]
async fn gce_detects_instance_preempted() {
    detects_within_one_interval(PreemptionProvider::Gce).await;
}

#[tokio::test]
async fn aws_detects_spot_instance_action_with_an_imdsv2_token() {
    let meta = detects_within_one_interval(PreemptionProvider::Aws).await;
    assert_eq!(meta.token_puts.load(Ordering::SeqCst), 1, "the session token is fetched once and reused");
}

#[tokio::test]
async fn azure_detects_a_preempt_event_for_this_vm_only() {
    let (url, meta) = start_server().await;
    meta.other_vm_preempted.store(true, Ordering::SeqCst);
    let d = detector(PreemptionProvider::Azure, &url);
    assert!(!d.check().await.unwrap(), "another VM's eviction is not ours");
    drop(d);
    let meta = detects_within_one_interval(PreemptionProvider::Azure).await;
    assert_eq!(meta.refused.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn single_checks_answer_false_then_true() {
    for provider in [PreemptionProvider::Gce, PreemptionProvider::Aws, PreemptionProvider::Azure] {
        let (url, meta) = start_server().await;
        let d = detector(provider, &url);
        assert!(!d.check().await.unwrap(), "{provider:?}");
        meta.preempted.store(true, Ordering::SeqCst);
        assert!(d.check().await.unwrap(), "{provider:?}");
    }
}

#[tokio::test]
async fn an_endpoint_that_is_down_is_survived() {
    // A port nobody listens on (bound, then released).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let url = format!("http://{addr}");
    for provider in [PreemptionProvider::Gce, PreemptionProvider::Aws, PreemptionProvider::Azure] {
        assert!(detector(provider, &url).check().await.is_err(), "{provider:?}: a refused connection is an error");
    }

    let w = start_watch(detector(PreemptionProvider::Aws, &url));
    // Nobody answers, so no poll can be seen: a few poll intervals pass.
    tokio::time::sleep(POLL * 4).await;
    assert!(!w.task.is_finished(), "the watch keeps running while the endpoint is down");
    assert!(!w.preempt.is_cancelled(), "an unreachable endpoint is not a preemption");

    // The metadata service comes up on that address and announces an interruption.
    let meta = Arc::new(Meta::default());
    meta.preempted.store(true, Ordering::SeqCst);
    serve(tokio::net::TcpListener::bind(addr).await.unwrap(), meta.clone());
    support::wait::within("not detected once the endpoint answers", LIMIT, w.preempt.cancelled()).await;
    assert_eq!(meta.polls(), 1, "detected at the first poll that was answered");
    assert_eq!(meta.token_puts.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_endpoint_that_hangs_does_not_delay_shutdown() {
    // Accepts connections but never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
            count.fetch_add(1, Ordering::SeqCst);
        }
    });
    // A long poll interval: a request may hang for its 2 s timeout.
    let slow = PreemptionConfig { provider: PreemptionProvider::Gce, poll_interval: Duration::from_secs(60), endpoint: url };
    let preempt = CancellationToken::new();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(preempt::watch(preempt::from_config(&slow).unwrap(), slow.poll_interval, preempt.clone(), shutdown.clone()));
    let w = Watching { preempt, shutdown, task };
    support::wait::until("the watch never asked", LIMIT, || async { accepted.load(Ordering::SeqCst) > 0 }).await;
    assert!(!w.task.is_finished());
    w.shutdown.cancel();
    // Well before the hanging request's 2 s timeout: shutdown cut it short.
    tokio::time::timeout(Duration::from_secs(1), w.task).await.expect("shutdown ends the watch at once").unwrap();
    assert!(!w.preempt.is_cancelled(), "shutdown is not a preemption");
}

#[test]
fn no_provider_means_no_detector() {
    assert!(preempt::from_config(&PreemptionConfig::default()).is_none());
}
