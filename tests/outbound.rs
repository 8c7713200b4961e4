//! callback_url reaches public addresses only: the api refuses other addresses
//! at submit (400, in the error shape), the janitor checks again when it
//! connects (a URL stored past the api, as a DNS answer that changed since
//! submit amounts to, reaches nothing) and follows no redirect, and an operator's
//! allow list lets an internal receiver through.
//!
//! Every address used here is on this machine's loopback: the allowed receiver
//! listens on 127.0.0.2 (the tests' `janitor.webhooks.allow`), the forbidden
//! ones on 127.0.0.1. The other forbidden addresses are only submitted, never
//! connected to: refusing them needs no packet (IP literals resolve locally).

mod support;

use std::io::ErrorKind;
use std::sync::Arc;
use std::time::Duration;

use support::api::{error_message, TestApi};
use caddy_build_server::janitor;
use caddy_build_server::outbound::AllowList;
use support::db::{nth_spec, TestDb};
use support::http_recorder::{Answer, Recorder};
use support::janitor::janitor_config;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

/// The address the tests allow; 127.0.0.1 stays forbidden.
const ALLOWED_IP: &str = "127.0.0.2";

/// A listener that never answers and counts the TCP connections made to it,
/// including those still waiting in the kernel's backlog: any connection at all
/// is seen, not only a completed HTTP request.
struct Tripwire {
    listener: std::net::TcpListener,
    port: u16,
}

impl Tripwire {
    fn start() -> Tripwire {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        Tripwire { listener, port }
    }

    /// Connections made so far (accepted now from the backlog, without waiting).
    fn connections(&self) -> usize {
        let mut n = 0;
        loop {
            match self.listener.accept() {
                Ok(_) => n += 1,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return n,
                Err(e) => panic!("accept: {e}"),
            }
        }
    }
}

/// A janitor config that delivers once per URL (no retries: the first recorded
/// attempt is final) and allows [`ALLOWED_IP`].
fn janitor_yaml() -> String {
    format!("  webhooks:\n    max_attempts: 1\n    timeout: 3s\n    allow: [{ALLOWED_IP}]\n")
}

/// A finished build (succeeded through the SQL API) to hang deliveries on.
async fn finished_build(db: &TestDb, n: usize) -> String {
    let q = &db.queue;
    let key = q.submit(&nth_spec(n), false).await.unwrap().build_key;
    let attempt = q.claim("w1", 10, Duration::from_secs(60)).await.unwrap().iter().find(|b| b.build_key == key).unwrap().attempt;
    let artifact = json!({"path": "builds/x/caddy", "file_name": "caddy", "size": 1, "sha256": "ab".repeat(32)});
    assert!(q.complete(&key, attempt, "w1", &artifact).await.unwrap());
    key
}

#[derive(Debug)]
struct Outcome {
    delivered: bool,
    gave_up: bool,
    status_code: Option<i32>,
    error: String,
}

/// Waits until the janitor recorded an attempt for `url`, and returns it. Nothing
/// signals that moment outside the table, so this polls the row, bounded.
async fn recorded(db: &TestDb, url: &str) -> Outcome {
    let client = db.client().await;
    support::wait::until_some(&format!("no attempt at {url} was recorded"), Duration::from_secs(30), || async {
        let row = client
            .query_one(
                "SELECT attempts, delivered_at IS NOT NULL, gave_up_at IS NOT NULL, last_status_code, coalesce(last_error, '')
                   FROM cbs.webhook_deliveries WHERE url = $1",
                &[&url],
            )
            .await
            .unwrap();
        (row.get::<_, i32>(0) > 0 && (row.get::<_, bool>(1) || row.get::<_, bool>(2)))
            .then(|| Outcome { delivered: row.get(1), gave_up: row.get(2), status_code: row.get(3), error: row.get(4) })
    })
    .await
}

#[tokio::test]
async fn submit_refuses_callback_urls_that_reach_non_public_addresses() {
    let api = TestApi::start().await;
    let cases = [
        ("http://169.254.169.254/latest/meta-data/", "host 169.254.169.254 is a link-local address"),
        ("http://127.0.0.1:5432/", "host 127.0.0.1 is a loopback address"),
        ("http://[::1]:8234/", "host [::1] is a loopback address"),
        ("http://10.0.0.1/", "host 10.0.0.1 is a private address (RFC 1918)"),
        ("http://172.16.0.1/", "host 172.16.0.1 is a private address (RFC 1918)"),
        ("http://192.168.1.1/", "host 192.168.1.1 is a private address (RFC 1918)"),
        ("http://100.64.0.1/", "host 100.64.0.1 is a carrier-grade NAT address"),
        ("http://224.0.0.1/", "host 224.0.0.1 is a multicast address"),
        ("http://0.0.0.0/", "host 0.0.0.0 is the unspecified address"),
        ("http://[fc00::1]/", "host [fc00::1] is a unique local address"),
        ("http://[fe80::1]/", "host [fe80::1] is a link-local address"),
        ("http://[::ffff:127.0.0.1]/", "an IPv4-mapped address of 127.0.0.1, a loopback address"),
        ("http://2130706433/", "host 127.0.0.1 is a loopback address"),
        // `localhost` resolves from /etc/hosts, without a DNS query.
        ("http://localhost:8234/hook", "host localhost resolves to 127.0.0.1, a loopback address"),
        ("https://user:secret@hooks.example.com/", "carries credentials"),
        ("ftp://hooks.example.com/", "is not an http(s) URL"),
    ];
    for (url, reason) in cases {
        let body = json!({"os": "linux", "arch": "amd64", "callback_url": url});
        let message = error_message(api.http.post(api.url("/api/builds")).json(&body).send().await.unwrap(), 400).await;
        assert!(message.starts_with("callback_url "), "{url}: {message}");
        assert!(message.contains(reason), "{url}: {message}");
        if !reason.contains("credentials") && !reason.contains("http(s)") {
            assert!(message.ends_with("; allow it with janitor.webhooks.allow"), "{url}: {message}");
        }
    }
    assert_eq!(api.build_count().await, 0, "a refused callback stores no build");
    let deliveries: i64 = api.db.client().await.query_one("SELECT count(*) FROM cbs.webhook_deliveries", &[]).await.unwrap().get(0);
    assert_eq!(deliveries, 0);
}

#[tokio::test]
async fn a_receiver_allowed_by_config_gets_its_delivery() {
    let receiver = Recorder::start_on(ALLOWED_IP).await;
    let api = TestApi::start_with(|c| c.janitor.webhooks.allow = AllowList::parse([ALLOWED_IP]).unwrap()).await;
    let config = janitor_config(&api.db.config, "solo", &janitor_yaml());
    let stop = CancellationToken::new();
    let task = tokio::spawn(janitor::run(Arc::new(config), stop.clone()));

    // Allowed: the address itself, not loopback as a whole.
    let refused = json!({"os": "linux", "arch": "amd64", "callback_url": "http://127.0.0.1:9/hook"});
    error_message(api.http.post(api.url("/api/builds")).json(&refused).send().await.unwrap(), 400).await;

    let url = receiver.url("/hook");
    let body = json!({"os": "linux", "arch": "amd64", "callback_url": url});
    let resp = api.http.post(api.url("/api/builds")).json(&body).send().await.unwrap();
    assert_eq!(resp.status(), 202);
    let key = resp.json::<Value>().await.unwrap()["build_key"].as_str().unwrap().to_string();
    api.succeed(&key, b"binary").await;

    let got = receiver.wait_for("/hook", 1, Duration::from_secs(15)).await;
    assert_eq!(got[0].json()["build_key"], key.as_str());
    let outcome = recorded(&api.db, &url).await;
    assert!(outcome.delivered, "{outcome:?}");
    stop.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn redirects_are_answers_never_followed() {
    let db = TestDb::new().await;
    let receiver = Recorder::start_on(ALLOWED_IP).await;
    let elsewhere = Tripwire::start();
    // One redirect to a forbidden address, one back to the allowed receiver itself:
    // neither may be followed, whatever the target.
    receiver.script("/to-forbidden", &[Answer::Redirect(302, format!("http://127.0.0.1:{}/stolen", elsewhere.port))]);
    receiver.script("/to-allowed", &[Answer::Redirect(307, receiver.url("/followed"))]);
    let config = janitor_config(&db.config, "solo", &janitor_yaml());
    let stop = CancellationToken::new();
    let task = tokio::spawn(janitor::run(Arc::new(config), stop.clone()));

    let key = finished_build(&db, 1).await;
    for path in ["/to-forbidden", "/to-allowed"] {
        db.queue.add_callback(&key, &receiver.url(path)).await.unwrap();
    }
    // The redirect is followed, if ever, inside the request whose outcome is recorded.
    for (path, status) in [("/to-forbidden", 302), ("/to-allowed", 307)] {
        let outcome = recorded(&db, &receiver.url(path)).await;
        assert!(!outcome.delivered && outcome.gave_up, "{path}: {outcome:?}");
        assert_eq!(outcome.status_code, Some(status), "{path}");
        assert!(outcome.error.contains("redirects are not followed"), "{path}: {}", outcome.error);
    }
    assert_eq!(receiver.requests("/to-forbidden").len(), 1);
    assert!(receiver.requests("/followed").is_empty(), "a redirect was followed");
    assert_eq!(elsewhere.connections(), 0, "a redirect to a forbidden address was followed");
    stop.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn the_janitor_checks_the_address_again_when_it_connects() {
    let db = TestDb::new().await;
    let allowed = Recorder::start_on(ALLOWED_IP).await;
    let forbidden = Tripwire::start();
    let config = janitor_config(&db.config, "solo", &janitor_yaml());
    let stop = CancellationToken::new();
    let task = tokio::spawn(janitor::run(Arc::new(config), stop.clone()));

    // Stored through the SQL API, past the api's check: what a name whose DNS
    // answer changed after submit amounts to (`localhost` takes the resolver's
    // path, the literals the pre-request check's).
    let key = finished_build(&db, 1).await;
    let port = forbidden.port;
    let cases = [
        (format!("http://localhost:{port}/name"), "refused: host localhost resolves to 127.0.0.1, a loopback address"),
        (format!("http://127.0.0.1:{port}/literal"), "refused: host 127.0.0.1 is a loopback address"),
        (format!("http://[::ffff:127.0.0.1]:{port}/mapped"), "refused: host [::ffff:7f00:1] is an IPv4-mapped address of 127.0.0.1"),
        (format!("http://2130706433:{port}/decimal"), "refused: host 127.0.0.1 is a loopback address"),
    ];
    for (url, _) in &cases {
        db.queue.add_callback(&key, url).await.unwrap();
    }
    db.queue.add_callback(&key, &allowed.url("/ok")).await.unwrap();

    allowed.wait_for("/ok", 1, Duration::from_secs(15)).await;
    assert!(recorded(&db, &allowed.url("/ok")).await.delivered);
    for (url, reason) in &cases {
        let outcome = recorded(&db, url).await;
        assert!(!outcome.delivered && outcome.gave_up && outcome.status_code.is_none(), "{url}: {outcome:?}");
        assert!(outcome.error.contains(reason), "{url}: {}", outcome.error);
        assert!(outcome.error.contains("allow it with janitor.webhooks.allow"), "{url}: {}", outcome.error);
    }
    assert_eq!(forbidden.connections(), 0, "a refused delivery connected to its receiver");
    stop.cancel();
    task.await.unwrap().unwrap();
}
