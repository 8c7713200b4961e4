//! Per-build webhooks end to end: a real janitor (in-process, or the real binary
//! killed mid-delivery) POSTs to a real local HTTP server; deliveries are
//! retried with backoff, given up after the configured attempts, and survive a
//! restart without being lost or acknowledged twice.

mod support;

use std::sync::Arc;
use std::time::Duration;

use caddy_build_server::db::{DbError, Queue};
use caddy_build_server::janitor;
use support::db::{nth_spec, TestDb};
use support::http_recorder::{Answer, Recorder};
use support::janitor::{janitor_config, janitor_yaml, wait_for_single_leader, JanitorProcess};
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// Submits and claims build `n` (as worker w1); returns its key and attempt.
async fn start_build(q: &Queue, n: usize) -> (String, i32) {
    let key = q.submit(&nth_spec(n), false).await.unwrap().build_key;
    let claimed = q.claim("w1", 10, Duration::from_secs(60)).await.unwrap();
    let b = claimed.iter().find(|b| b.build_key == key).expect("claimed");
    (key, b.attempt)
}

async fn succeed(q: &Queue, key: &str, attempt: i32) {
    let artifact = json!({"path": "builds/x/caddy", "file_name": "caddy", "size": 42, "sha256": "cd".repeat(32)});
    assert!(q.complete(key, attempt, "w1", &artifact).await.unwrap());
}

/// Makes the janitor run a delivery pass after this call and waits for it: a
/// finished build (number `n`) gets a callback to `path`, sent at once. What an
/// earlier pass would have sent is sent by then: proof that something was not.
async fn later_pass(q: &Queue, hooks: &Recorder, n: usize, path: &str) {
    let (key, attempt) = start_build(q, n).await;
    succeed(q, &key, attempt).await;
    q.add_callback(&key, &hooks.url(path)).await.unwrap();
    hooks.wait_for(path, 1, DELIVERY).await;
}

/// How long a delivery the janitor was woken for may take; bounds a hang only.
const DELIVERY: Duration = Duration::from_secs(30);

/// (delivered, gave up, attempts) of the delivery of `key` to `url`.
async fn delivery_row(db: &tokio_postgres::Client, key: &str, url: &str) -> (bool, bool, i32) {
    let r = db
        .query_one(
            "SELECT delivered_at IS NOT NULL, gave_up_at IS NOT NULL, attempts FROM cbs.webhook_deliveries WHERE build_key = $1 AND url = $2",
            &[&key, &url],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1), r.get(2))
}

/// Quick retries; the receivers listen on 127.0.0.1, which callbacks may reach only when allowed.
fn webhook_yaml(extra: &str) -> String {
    format!("  webhooks:\n    backoff_min: 200ms\n    backoff_max: 1s\n    allow: [127.0.0.1]\n{extra}")
}

#[tokio::test]
async fn delivers_the_status_once_to_each_callback_when_the_build_ends() {
    let db = TestDb::new().await;
    let q = &db.queue;
    let hooks = Recorder::start().await;
    let mut config = janitor_config(&db.config, "solo", &webhook_yaml(""));
    config.api.public_url = "https://builds.example.com/".into();
    let stop = CancellationToken::new();
    let task = tokio::spawn(janitor::run(Arc::new(config), stop.clone()));

    let (key, attempt) = start_build(q, 1).await;
    let id = q.add_callback(&key, &hooks.url("/one")).await.unwrap();
    assert_eq!(q.add_callback(&key, &hooks.url("/one")).await.unwrap(), id, "same url twice: one delivery");
    q.add_callback(&key, &hooks.url("/two")).await.unwrap();
    assert!(matches!(q.add_callback(&key, "ftp://example.com/x").await, Err(DbError::BadArgument(_))));
    assert!(matches!(q.add_callback(&"0".repeat(64), &hooks.url("/one")).await, Err(DbError::NotFound(_))));

    wait_for_single_leader(&db.client().await, None, Duration::from_secs(30)).await;
    later_pass(q, &hooks, 90, "/pass-1").await;
    assert!(hooks.requests("/one").is_empty(), "nothing is sent before the build ends");
    let t0 = std::time::Instant::now();
    succeed(q, &key, attempt).await;

    // Woken by cbs_build_finished: within a moment, although the janitor
    // would otherwise sleep for minutes. The bound is the point; it is loose
    // (a loaded machine) and still far below that sleep.
    let got = hooks.wait_for("/one", 1, DELIVERY).await;
    let latency = t0.elapsed();
    eprintln!("webhook delivered {latency:?} after the build completed");
    assert!(latency < Duration::from_secs(15), "{latency:?}");
    hooks.wait_for("/two", 1, DELIVERY).await;
    let r = &got[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.headers["x-cbs-delivery-id"], id.to_string());
    assert_eq!(r.headers["x-cbs-delivery-attempt"], "1");
    assert_eq!(r.headers["content-type"], "application/json");
    let body = r.json();
    assert_eq!(body["build_key"], key);
    assert_eq!(body["status"], "succeeded");
    assert_eq!(body["artifact"]["sha256"], "cd".repeat(32));
    assert_eq!(body["links"]["download"], format!("https://builds.example.com/api/builds/{key}/download"));
    // The status JSON (tests/build_shape.rs compares it with REST's), with the event and delivery beside it.
    assert_eq!((&body["event"], &body["delivery_id"]), (&json!("build.finished"), &json!(id)));
    assert_eq!(body["links"]["self"], format!("https://builds.example.com/api/builds/{key}"));
    assert_eq!(body["artifact"]["file_name"], "caddy");
    assert!(body["xcaddy_command"].as_str().unwrap().contains("xcaddy build"), "{body}");

    // A callback registered after the build ended is sent at once.
    q.add_callback(&key, &hooks.url("/late")).await.unwrap();
    hooks.wait_for("/late", 1, DELIVERY).await;

    // And a failed build reports its error.
    let (failed, a2) = start_build(q, 2).await;
    q.add_callback(&failed, &hooks.url("/failed")).await.unwrap();
    q.fail(&failed, a2, "w1", "go: module not found", false).await.unwrap();
    let body = hooks.wait_for("/failed", 1, DELIVERY).await[0].json();
    assert_eq!(body["status"], "failed");
    assert_eq!(body["error"], "go: module not found");

    later_pass(q, &hooks, 91, "/pass-2").await;
    for path in ["/one", "/two", "/late", "/failed"] {
        assert_eq!(hooks.requests(path).len(), 1, "{path} delivered exactly once");
    }
    let client = db.client().await;
    assert_eq!(delivery_row(&client, &key, &hooks.url("/one")).await, (true, false, 1));
    stop.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn failed_deliveries_are_retried_with_backoff_then_given_up() {
    let db = TestDb::new().await;
    let q = &db.queue;
    let hooks = Recorder::start().await;
    hooks.script("/flaky", &[Answer::Status(500), Answer::Status(503)]);
    hooks.script("/down", &vec![Answer::Status(500); 10]);
    let config = janitor_config(&db.config, "solo", &webhook_yaml("    max_attempts: 3\n"));
    let stop = CancellationToken::new();
    let task = tokio::spawn(janitor::run(Arc::new(config), stop.clone()));

    let (key, attempt) = start_build(q, 1).await;
    let id = q.add_callback(&key, &hooks.url("/flaky")).await.unwrap();
    q.add_callback(&key, &hooks.url("/down")).await.unwrap();
    succeed(q, &key, attempt).await;

    let got = hooks.wait_for("/flaky", 3, Duration::from_secs(10)).await;
    let attempts: Vec<&str> = got.iter().map(|r| r.headers["x-cbs-delivery-attempt"].as_str()).collect();
    assert_eq!(attempts, ["1", "2", "3"]);
    assert!(got.iter().all(|r| r.headers["x-cbs-delivery-id"] == id.to_string()));
    hooks.wait_for("/down", 3, Duration::from_secs(10)).await;
    // A resend would come after a backoff (at most `backoff_max`, 1 s), which no
    // event marks: wait out longer than it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(hooks.requests("/flaky").len(), 3, "no resend after success");
    assert_eq!(hooks.requests("/down").len(), 3, "given up after max_attempts");
    let client = db.client().await;
    assert_eq!(delivery_row(&client, &key, &hooks.url("/flaky")).await, (true, false, 3));
    assert_eq!(delivery_row(&client, &key, &hooks.url("/down")).await, (false, true, 3));
    let err: Option<String> = client
        .query_one("SELECT last_error FROM cbs.webhook_deliveries WHERE url = $1", &[&hooks.url("/down")])
        .await
        .unwrap()
        .get(0);
    assert!(err.unwrap().contains("500"));
    stop.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_janitor_killed_mid_delivery_neither_loses_nor_repeats_deliveries() {
    let db = TestDb::new().await;
    let q = &db.queue;
    let client = db.client().await;
    let hooks = Recorder::start().await;
    // The receiver takes its time with the first request: the janitor dies meanwhile.
    hooks.script("/slow", &[Answer::Hang]);
    let yaml = janitor_yaml(&db.config, "first", &webhook_yaml("    timeout: 2s\n"));
    let mut first = JanitorProcess::spawn(&yaml, "wh-first");
    wait_for_single_leader(&client, None, Duration::from_secs(20)).await;

    let (slow, a1) = start_build(q, 1).await;
    let slow_id = q.add_callback(&slow, &hooks.url("/slow")).await.unwrap();
    succeed(q, &slow, a1).await;
    hooks.wait_for("/slow", 1, Duration::from_secs(10)).await;
    first.signal("KILL");
    first.exited(Duration::from_secs(60)).await;

    // A build ends while no janitor runs: its delivery must not be lost.
    let (quiet, a2) = start_build(q, 2).await;
    q.add_callback(&quiet, &hooks.url("/quiet")).await.unwrap();
    succeed(q, &quiet, a2).await;
    assert!(hooks.requests("/quiet").is_empty(), "no janitor runs: nothing was sent");

    let yaml = janitor_yaml(&db.config, "second", &webhook_yaml("    timeout: 2s\n"));
    let second = JanitorProcess::spawn(&yaml, "wh-second");
    hooks.wait_for("/quiet", 1, Duration::from_secs(10)).await;
    // The interrupted one is sent again once the dead janitor's claim expires (2 × timeout + 5 s).
    let got = hooks.wait_for("/slow", 2, Duration::from_secs(20)).await;
    assert_eq!(got[1].headers["x-cbs-delivery-id"], slow_id.to_string(), "same id: receivers can dedupe");
    assert_eq!(got[1].headers["x-cbs-delivery-attempt"], "2");

    later_pass(q, &hooks, 90, "/pass").await;
    assert_eq!(hooks.requests("/slow").len(), 2, "acknowledged once, never resent after");
    assert_eq!(hooks.requests("/quiet").len(), 1);
    assert_eq!(delivery_row(&client, &slow, &hooks.url("/slow")).await, (true, false, 2));
    assert_eq!(delivery_row(&client, &quiet, &hooks.url("/quiet")).await, (true, false, 1));
    let log = second.log_text();
    assert!(log.contains("webhook delivered"), "{log}");
}

#[tokio::test]
async fn concurrent_claimers_never_share_a_delivery_and_stale_results_are_fenced() {
    use caddy_build_server::db::{WebhookAttempt, WebhookOutcome, WebhookRetry};
    let db = TestDb::new().await;
    let q = &db.queue;
    let mut keys = Vec::new();
    for n in 0..20 {
        let (key, attempt) = start_build(q, n).await;
        succeed(q, &key, attempt).await;
        for u in 0..3 {
            q.add_callback(&key, &format!("http://127.0.0.1:9/{u}")).await.unwrap();
        }
        keys.push(key);
    }
    // Two janitors during a leadership overlap: SKIP LOCKED splits the work.
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let claim = |id: &'static str| {
        let (q, barrier) = (q.clone(), barrier.clone());
        tokio::spawn(async move {
            barrier.wait().await;
            let mut got = Vec::new();
            loop {
                let batch = q.claim_webhook_deliveries(id, 5, Duration::from_secs(60)).await.unwrap();
                if batch.is_empty() {
                    return got;
                }
                got.extend(batch.into_iter().map(|d| d.id));
            }
        })
    };
    let (a, b) = (claim("a"), claim("b"));
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    let mut all: Vec<i64> = a.iter().chain(&b).copied().collect();
    all.sort();
    let n = all.len();
    all.dedup();
    assert_eq!((n, all.len()), (60, 60), "every delivery claimed exactly once ({} + {})", a.len(), b.len());

    // A claim that expired and was taken over cannot record its stale result.
    let (key, attempt) = start_build(q, 100).await;
    succeed(q, &key, attempt).await;
    q.add_callback(&key, "http://127.0.0.1:9/fenced").await.unwrap();
    let old = q.claim_webhook_deliveries("old", 1, Duration::from_millis(100)).await.unwrap().remove(0);
    assert!(q.next_webhook_due().await.unwrap().is_some());
    // Taken over as soon as the 100 ms claim expired.
    let new = support::wait::until_some("the expired claim was never taken over", DELIVERY, || async {
        q.claim_webhook_deliveries("new", 1, Duration::from_secs(60)).await.unwrap().pop()
    })
    .await;
    assert_eq!((new.id, new.attempt), (old.id, old.attempt + 1));
    let retry = WebhookRetry { max_attempts: 5, backoff_min: Duration::from_secs(1), backoff_max: Duration::from_secs(10) };
    let ok = WebhookAttempt { delivered: true, status_code: Some(200), error: None };
    let failed = WebhookAttempt { delivered: false, status_code: None, error: Some("timeout".into()) };
    assert_eq!(q.record_webhook_attempt(&old, &failed, &retry).await.unwrap(), WebhookOutcome::Fenced);
    assert_eq!(q.record_webhook_attempt(&new, &ok, &retry).await.unwrap(), WebhookOutcome::Delivered);
    assert_eq!(q.record_webhook_attempt(&new, &ok, &retry).await.unwrap(), WebhookOutcome::Fenced, "recorded once");
    let client = db.client().await;
    assert_eq!(delivery_row(&client, &key, "http://127.0.0.1:9/fenced").await, (true, false, 2));
}
