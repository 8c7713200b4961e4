//! Queue benchmarks on a real Postgres (run with `make bench`):
//! - submit → claim wake-up latency through NOTIFY (a claimer that sleeps on the
//!   listener, never polls), p50/p99 over 1,000 submits;
//! - claim + complete cycles per second with 4 concurrent workers, the queue
//!   held by one client and spread over 100;
//! - fair claiming: one client queues 500 builds, then ten clients one each; the
//!   longest any of the ten waits, in build slots (claims before its own).
//!
//! `cargo bench` passes `--bench`; under `cargo test --all-targets` this runs as
//! a quick smoke test (fewer submits and builds) instead.

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use caddy_build_server::db::{connect_pool, Channel, Listener, ListenerEvent, Queue};
use support::db::{nth_spec, TestDb};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const WAKEUPS: usize = 1_000;
const SMOKE_WAKEUPS: usize = 50;
const CYCLE_BUILDS: usize = 20_000;
const SMOKE_CYCLE_BUILDS: usize = 400;
const CYCLE_WORKERS: usize = 4;
/// Clients the second throughput run spreads its builds over.
const CYCLE_CLIENTS: usize = 100;
const LEASE: Duration = Duration::from_secs(60);
/// The fairness scenario of the "safe to expose" issue.
const HEAVY_BUILDS: i32 = 500;
const LIGHT_CLIENTS: usize = 10;
const HEAVY_CLIENT: &str = "addr:10.0.0.1";

fn full_run() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

async fn wakeup_latency(db: &TestDb, wakeups: usize) -> Vec<Duration> {
    let shutdown = CancellationToken::new();
    let listener = Listener::start(&db.config, shutdown.clone());
    listener.wait_connected().await;
    let mut events = listener.subscribe();
    let claimer_queue = Queue::new(connect_pool(&db.config, "bench-claimer").unwrap());
    let (claimed_tx, mut claimed_rx) = mpsc::unbounded_channel::<Instant>();
    let claimer = tokio::spawn(async move {
        while let Ok(ev) = events.recv().await {
            if let ListenerEvent::Notification { channel: Channel::Queued, .. } = ev {
                let got = claimer_queue.claim("bench", 16, LEASE).await.unwrap();
                if !got.is_empty() {
                    let _ = claimed_tx.send(Instant::now());
                }
            }
        }
    });
    let mut latencies = Vec::with_capacity(wakeups);
    for i in 0..wakeups {
        let spec = nth_spec(1_000_000 + i);
        let start = Instant::now();
        db.queue.submit(&spec, false).await.unwrap();
        let claimed_at = claimed_rx.recv().await.unwrap();
        latencies.push(claimed_at - start);
    }
    shutdown.cancel();
    claimer.abort();
    latencies.sort();
    latencies
}

/// Queues `builds` builds, of no client when `clients` is 0, else round-robin
/// over that many clients, then claims and completes them all with
/// CYCLE_WORKERS workers, one build per claim.
async fn claim_complete_rate(db: &TestDb, builds: usize, clients: usize) -> (usize, Duration) {
    let client = if clients == 0 { "NULL".to_string() } else { format!("'addr:10.1.' || (i % {clients})") };
    db.client()
        .await
        .batch_execute(&format!(
            "SELECT cbs.submit_build(jsonb_build_object(
                 'caddy_version', 'v2.11.9', 'os', 'linux', 'arch', 'amd64',
                 'plugins', jsonb_build_array(jsonb_build_object('module', 'github.com/x/p' || i, 'version', 'v1.0.0'))),
                 false, {client})
               FROM generate_series(1, {builds}) i;
             ANALYZE cbs.builds"
        ))
        .await
        .unwrap();
    let queue = Queue::new(connect_pool(&db.config, "bench-workers").unwrap());
    let barrier = Arc::new(tokio::sync::Barrier::new(CYCLE_WORKERS + 1));
    let mut tasks = Vec::new();
    for w in 0..CYCLE_WORKERS {
        let (queue, barrier) = (queue.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            let id = format!("w{w}");
            let artifact = json!({"path": "x", "file_name": "caddy", "sha256": "y", "size": 1});
            barrier.wait().await;
            let mut done = 0;
            loop {
                let got = queue.claim(&id, 1, LEASE).await.unwrap();
                let Some(b) = got.into_iter().next() else { return done };
                assert!(queue.complete(&b.build_key, b.attempt, &id, &artifact).await.unwrap());
                done += 1;
            }
        }));
    }
    barrier.wait().await;
    let start = Instant::now();
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    (total, start.elapsed())
}

/// One client queues HEAVY_BUILDS builds, then LIGHT_CLIENTS clients one each;
/// a single claimer takes one build at a time until every light build is out.
/// Returns the longest wait of a light build in build slots (builds claimed
/// before it) and how many of those were the heavy client's.
async fn fairness(db: &TestDb) -> (usize, usize) {
    let c = db.client().await;
    let submit = "SELECT count(cbs.submit_build(jsonb_build_object(
                      'caddy_version', 'v2.11.9', 'os', 'linux', 'arch', 'amd64',
                      'plugins', jsonb_build_array(jsonb_build_object(
                          'module', 'github.com/' || $2::text || '/p' || i, 'version', 'v1.0.0'))),
                      false, $1::text))
                    FROM generate_series(1, $3::int) i";
    c.execute(submit, &[&HEAVY_CLIENT, &"heavy", &HEAVY_BUILDS]).await.unwrap();
    for i in 0..LIGHT_CLIENTS {
        c.execute(submit, &[&format!("addr:10.0.1.{i}"), &format!("light{i}"), &1]).await.unwrap();
    }
    let (mut claimed, mut heavy, mut waiting, mut worst) = (0, 0, LIGHT_CLIENTS, (0, 0));
    while waiting > 0 {
        let row = c
            .query_one("SELECT client FROM cbs.claim_builds('bench', 1, interval '1 minute')", &[])
            .await
            .unwrap();
        if row.get::<_, Option<String>>(0).as_deref() == Some(HEAVY_CLIENT) {
            heavy += 1;
        } else {
            waiting -= 1;
            worst = (claimed, heavy);
        }
        claimed += 1;
    }
    worst
}

#[tokio::main]
async fn main() {
    let full = full_run();
    let (wakeups, cycle_builds) = if full { (WAKEUPS, CYCLE_BUILDS) } else { (SMOKE_WAKEUPS, SMOKE_CYCLE_BUILDS) };
    let db = TestDb::new().await;
    // Warm up connections and prepared statements.
    for i in 0..50 {
        db.queue.submit(&nth_spec(2_000_000 + i), false).await.unwrap();
    }
    let lat = wakeup_latency(&db, wakeups).await;
    let (cycles, elapsed) = claim_complete_rate(&TestDb::new().await, cycle_builds, 0).await;
    let rate = cycles as f64 / elapsed.as_secs_f64();
    let (spread_cycles, spread_elapsed) = claim_complete_rate(&TestDb::new().await, cycle_builds, CYCLE_CLIENTS).await;
    let spread_rate = spread_cycles as f64 / spread_elapsed.as_secs_f64();
    let (fair_wait, fair_heavy) = fairness(&TestDb::new().await).await;

    println!();
    println!("| benchmark | result | target |");
    println!("|---|---|---|");
    println!("| submit → claim wake-up via NOTIFY, p50 ({wakeups} submits) | {} | ≤ 3 ms |", ms(percentile(&lat, 0.50)));
    println!("| submit → claim wake-up via NOTIFY, p99 | {} | ≤ 10 ms |", ms(percentile(&lat, 0.99)));
    println!("| submit → claim wake-up via NOTIFY, max | {} | |", ms(*lat.last().unwrap()));
    println!("| claim + complete cycles/s, {CYCLE_WORKERS} workers ({cycles} builds) | {rate:.0}/s | ≥ 3,000/s |");
    println!(
        "| claim + complete cycles/s, {CYCLE_WORKERS} workers ({spread_cycles} builds of {CYCLE_CLIENTS} clients) | {spread_rate:.0}/s | ≥ 3,000/s |"
    );
    println!(
        "| fairness: {LIGHT_CLIENTS} clients' single builds behind {HEAVY_BUILDS} of another's, longest wait | {fair_wait} build slots, {fair_heavy} of the heavy client's | ≤ {LIGHT_CLIENTS} slots, ≤ 1 heavy |"
    );
}
