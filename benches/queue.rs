//! Queue benchmarks on a real Postgres (run with `make bench`):
//! - submit → claim wake-up latency through NOTIFY (a claimer that sleeps on the
//!   listener, never polls), p50/p99 over 1,000 submits;
//! - claim + complete cycles per second with 4 concurrent workers.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use caddy_build_server::db::{connect_pool, Channel, Listener, ListenerEvent, Queue};
use common::{nth_spec, TestDb};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const WAKEUPS: usize = 1_000;
const CYCLE_BUILDS: usize = 20_000;
const CYCLE_WORKERS: usize = 4;
const LEASE: Duration = Duration::from_secs(60);

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

async fn wakeup_latency(db: &TestDb) -> Vec<Duration> {
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
    let mut latencies = Vec::with_capacity(WAKEUPS);
    for i in 0..WAKEUPS {
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

async fn claim_complete_rate(db: &TestDb) -> (usize, Duration) {
    db.client()
        .await
        .batch_execute(&format!(
            "SELECT cbs.submit_build(jsonb_build_object(
                 'caddy_version', 'v2.11.9', 'os', 'linux', 'arch', 'amd64',
                 'plugins', jsonb_build_array(jsonb_build_object('module', 'github.com/x/p' || i, 'version', 'v1.0.0'))))
               FROM generate_series(1, {CYCLE_BUILDS}) i"
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
            let artifact = json!({"path": "x", "sha256": "y", "size": 1});
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

#[tokio::main]
async fn main() {
    let db = TestDb::new().await;
    // Warm up connections and prepared statements.
    for i in 0..50 {
        db.queue.submit(&nth_spec(2_000_000 + i), false).await.unwrap();
    }
    let lat = wakeup_latency(&db).await;
    let db2 = TestDb::new().await;
    let (cycles, elapsed) = claim_complete_rate(&db2).await;
    let rate = cycles as f64 / elapsed.as_secs_f64();

    println!();
    println!("| benchmark | result | target |");
    println!("|---|---|---|");
    println!("| submit → claim wake-up via NOTIFY, p50 ({WAKEUPS} submits) | {} | ≤ 3 ms |", ms(percentile(&lat, 0.50)));
    println!("| submit → claim wake-up via NOTIFY, p99 | {} | ≤ 10 ms |", ms(percentile(&lat, 0.99)));
    println!("| submit → claim wake-up via NOTIFY, max | {} | |", ms(*lat.last().unwrap()));
    println!("| claim + complete cycles/s, {CYCLE_WORKERS} workers ({cycles} builds) | {rate:.0}/s | ≥ 3,000/s |");
}
