//! What admission control costs (run with `make bench`), on a real Postgres, in
//! alternating rounds of one run (off, on, off, on, …) so that drift of the
//! machine's speed cancels out in the ratio:
//! - through the HTTP API: `POST /api/builds` of new builds to an api with
//!   admission off and to one with it on (every check runs: token bucket, open
//!   builds per client, the queue's total), many clients at once (addresses
//!   forwarded by a trusted proxy, a few builds each, as on a public service);
//! - the SQL function alone: `cbs.submit_build` with and without a charge.
//!
//! The queue is emptied between rounds (cancelled), so it stays as long as a
//! real one can be under `max_queued_total`. Target: the charge costs under 10%.

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use support::api::{default_answers, FakeProxy};
use caddy_build_server::config::AdmissionConfig;
use caddy_build_server::db::{Priority, Queue, Submitter};
use support::db::TestDb;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

const CONCURRENCY: usize = 8;
/// Builds each client starts before the next address takes over.
const PER_CLIENT: usize = 4;
const TARGETS: [(&str, &str); 5] = [("linux", "amd64"), ("linux", "arm64"), ("darwin", "arm64"), ("windows", "amd64"), ("freebsd", "amd64")];
const CADDY: [&str; 3] = ["v2.9.1", "v2.10.0", "v2.10.2"];

/// Limits no submit in the bench reaches, on the checks that cost something.
fn admission(enabled: bool) -> AdmissionConfig {
    AdmissionConfig {
        enabled,
        burst: 1_000,
        per_hour: 1e6,
        max_queued_per_client: 10,
        max_queued_total: 5_000,
        max_held_per_client: 100,
    }
}

/// The `n`th distinct build request (1,000 plugins × 3 Caddy versions × 5 targets).
fn request(n: usize) -> Value {
    let (os, arch) = TARGETS[(n / 1000) % TARGETS.len()];
    json!({"os": os, "arch": arch, "caddy_version": CADDY[n / 5000 % CADDY.len()],
           "plugins": [{"module": format!("example.com/p{}", n % 1000), "version": ""}]})
}

fn client_address(n: usize) -> String {
    let c = n / PER_CLIENT;
    format!("198.51.{}.{}", (c / 250) % 250, c % 250 + 1)
}

async fn start_api(db: &TestDb, proxy: &FakeProxy, enabled: bool, shutdown: &CancellationToken) -> String {
    // Each api its own artifact directory (both on the test's database), and the
    // default pool: many clients at once, as in production.
    let dir = db.dir.subdir(if enabled { "on" } else { "off" });
    let mut config = db.yaml().set("storage.path", dir).set("database.pool_size", 16).set("log.level", "warn").config();
    config.go_proxy = proxy.url.clone();
    config.api.trusted_proxies = vec!["127.0.0.0/8".into()];
    config.api.admission = admission(enabled);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(caddy_build_server::web::serve(Arc::new(config), listener, shutdown.clone()));
    let http = reqwest::Client::new();
    support::wait::until("the api never became ready", Duration::from_secs(10), || async {
        http.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status() == 200)
    })
    .await;
    base
}

/// POSTs requests `first..first+count` with `CONCURRENCY` in flight; submits per second.
async fn http_round(http: &reqwest::Client, base: &str, first: usize, count: usize) -> f64 {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(first));
    let start = Instant::now();
    let tasks = (0..CONCURRENCY).map(|_| {
        let (http, base, next) = (http.clone(), base.to_string(), next.clone());
        tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n >= first + count {
                    return;
                }
                let r = http
                    .post(format!("{base}/api/builds"))
                    .header("x-forwarded-for", client_address(n))
                    .json(&request(n))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
            }
        })
    });
    for t in futures::future::join_all(tasks).await {
        t.unwrap();
    }
    count as f64 / start.elapsed().as_secs_f64()
}

/// `cbs.submit_build` of specs `first..first+count` as the api calls it, charged or not.
async fn sql_round(queue: &Queue, first: usize, count: usize, charge: bool) -> f64 {
    let limits = serde_json::to_value(json!({"burst": 1000, "per_hour": 1e6, "max_queued": 10, "max_queued_total": 5000})).unwrap();
    let start = Instant::now();
    let per_task = count / CONCURRENCY;
    let tasks = (0..CONCURRENCY).map(|t| {
        let (queue, limits) = (queue.clone(), limits.clone());
        tokio::spawn(async move {
            for i in 0..per_task {
                let n = first + t * per_task + i;
                let client = format!("addr:{}", client_address(n));
                let who = Submitter { client: Some(&client), limits: charge.then_some(&limits), priority: Priority::Request };
                assert!(queue.submit_as(&support::db::nth_spec(n), false, who).await.unwrap().created);
            }
        })
    });
    for t in futures::future::join_all(tasks).await {
        t.unwrap();
    }
    (per_task * CONCURRENCY) as f64 / start.elapsed().as_secs_f64()
}

async fn empty_queue(db: &TestDb) {
    db.client().await.batch_execute("SELECT cbs.cancel_build(build_key) FROM cbs.builds WHERE status = 'queued'").await.unwrap();
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Alternating rounds of `off` then `on`; medians of each and of the pairs' ratios.
async fn alternate<F, Fut>(db: &TestDb, rounds: usize, mut run: F) -> (f64, f64, f64)
where
    F: FnMut(bool) -> Fut,
    Fut: std::future::Future<Output = f64>,
{
    let (mut off, mut on) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        off.push(run(false).await);
        empty_queue(db).await;
        on.push(run(true).await);
        empty_queue(db).await;
    }
    let ratios = on.iter().zip(&off).map(|(a, b)| a / b).collect();
    (median(off), median(on), median(ratios))
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; under `cargo test --all-targets` this is a short smoke run.
    let full = std::env::args().any(|a| a == "--bench");
    let (rounds, per_round) = if full { (7, 1000) } else { (1, 40) };
    let db = TestDb::new().await;
    let proxy = FakeProxy::start(default_answers(), Duration::ZERO).await;
    let shutdown = CancellationToken::new();
    let (off_api, on_api) = (start_api(&db, &proxy, false, &shutdown).await, start_api(&db, &proxy, true, &shutdown).await);
    let http = reqwest::Client::new();

    // Warm-up: every plugin's version resolved (and cached) by both apis, connections open.
    for base in [&off_api, &on_api] {
        for m in 0..1000 {
            let r = http.get(format!("{base}/api/modules/check?module=example.com/p{m}&version=")).send().await.unwrap();
            assert_eq!(r.status(), 200);
        }
    }

    // 2 × rounds × per_round distinct requests, fewer than the 15,000 there are.
    let mut next = 0;
    let (h_off, h_on, h_ratio) = alternate(&db, rounds, |on| {
        let first = next;
        next += per_round;
        let (http, base) = (http.clone(), if on { on_api.clone() } else { off_api.clone() });
        async move { http_round(&http, &base, first, per_round).await }
    })
    .await;
    let mut next = 1_000_000;
    let (s_off, s_on, s_ratio) = alternate(&db, rounds, |charge| {
        let first = next;
        next += per_round;
        let queue = db.queue.clone();
        async move { sql_round(&queue, first, per_round, charge).await }
    })
    .await;
    shutdown.cancel();

    println!();
    println!("| new-build submits ({CONCURRENCY} at once, {PER_CLIENT} per client, {rounds} alternating rounds of {per_round}) | off | on | on / off (median of rounds) | target |");
    println!("|---|---|---|---|---|");
    println!("| `POST /api/builds` | {h_off:.0}/s | {h_on:.0}/s | {h_ratio:.3} (charge costs {:.1}%) | ≥ 0.90 |", (1.0 - h_ratio) * 100.0);
    println!("| `cbs.submit_build` alone | {s_off:.0}/s | {s_on:.0}/s | {s_ratio:.3} (charge costs {:.1}%) | |", (1.0 - s_ratio) * 100.0);
}
