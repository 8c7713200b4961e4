//! What admission control costs (run with `make bench`): new-build submits per
//! second through `cbs.submit_build` as the api calls it, with admission off
//! (the client is recorded, nothing is charged) and on (every check runs: token
//! bucket, open builds per client, the queue's total), in alternating rounds in
//! one run, on a real Postgres. Target: the charge costs under 10%.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use caddy_build_server::db::{Priority, Queue, Submitter};
use common::{nth_spec, TestDb};
use serde_json::json;

const CLIENTS: usize = 8;

/// Submits `per_client` new builds from each of `CLIENTS` concurrent clients;
/// returns submits per second.
async fn round(queue: &Queue, first_spec: usize, per_client: usize, charge: bool) -> f64 {
    // Limits no submit reaches, so that every check runs and none refuses.
    let limits = json!({"burst": 1e9, "per_hour": 1e9, "max_queued": 1_000_000_000, "max_queued_total": 1_000_000_000});
    let start = Instant::now();
    let tasks = (0..CLIENTS).map(|c| {
        let (queue, limits) = (queue.clone(), limits.clone());
        tokio::spawn(async move {
            let client = format!("addr:192.0.2.{c}");
            for i in 0..per_client {
                let spec = nth_spec(first_spec + c * per_client + i);
                let who = Submitter { client: Some(&client), limits: charge.then_some(&limits), priority: Priority::Request };
                let s = queue.submit_as(&spec, false, who).await.unwrap();
                assert!(s.created);
            }
        })
    });
    for t in futures::future::join_all(tasks).await {
        t.unwrap();
    }
    (CLIENTS * per_client) as f64 / start.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; under `cargo test --all-targets` this is a short smoke run.
    let full = std::env::args().any(|a| a == "--bench");
    let (rounds, per_client) = if full { (7, 250) } else { (1, 10) };
    let db = TestDb::new().await;
    round(&db.queue, 10_000_000, per_client, true).await; // warm-up: connections, plans
    let (mut off, mut on) = (Vec::new(), Vec::new());
    let mut next = 0;
    for _ in 0..rounds {
        for charge in [false, true] {
            let rate = round(&db.queue, next, per_client, charge).await;
            next += CLIENTS * per_client;
            if charge { on.push(rate) } else { off.push(rate) }
        }
    }
    let ratios: Vec<f64> = on.iter().zip(&off).map(|(a, b)| a / b).collect();
    let (off, on, ratio) = (median(off), median(on), median(ratios));
    println!();
    println!("| benchmark ({CLIENTS} clients at once, {rounds} alternating rounds of {} new builds each) | result | target |", CLIENTS * per_client);
    println!("|---|---|---|");
    println!("| submits/s, admission off (median) | {off:.0}/s | |");
    println!("| submits/s, admission on (median) | {on:.0}/s | |");
    println!("| on / off, median of the rounds' ratios | {ratio:.3} (charge costs {:.1}%) | ≥ 0.90 |", (1.0 - ratio) * 100.0);
}
