//! Wall time of a reproduction relative to the build it checks, run with
//! `make bench` against a real Docker engine and Go module proxy: two workers
//! on one queue; each round rebuilds the spec (`cbs.requeue`, whichever worker
//! claims it) and then has the other worker reproduce it. Both are timed from
//! their claim to their outcome as the database stamped them (`started_at`,
//! `finished_at`), on the same warm module and build caches; medians reported.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Duration;

use caddy_build_server::db::BuildStatus;
use support::db::TestDb;
use support::worker::*;

const LIMIT: Duration = Duration::from_secs(30 * 60);
/// Rounds of build + reproduction under `cargo bench` (the machine is shared:
/// single runs are noisy); one under `cargo test` (a smoke run).
const ROUNDS: usize = 5;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let db = TestDb::new().await;
    let rounds = if std::env::args().any(|a| a == "--bench") { ROUNDS } else { 1 };
    let workers: Vec<_> = ["w-bench-a", "w-bench-b"]
        .into_iter()
        .map(|id| {
            let mut c = worker_config(&db, id);
            c.worker.max_jobs = 1;
            start_worker(c)
        })
        .collect();
    let spec = caddy_spec("linux", "amd64");
    let key = db.queue.submit(&spec, false).await.unwrap().build_key;
    let first = wait_terminal(&db.queue, &key, LIMIT).await;
    assert_eq!(first.status, BuildStatus::Succeeded, "{:?}", first.error);

    let (mut builds, mut reproductions, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        db.queue.requeue(&key).await.unwrap();
        let b = wait_terminal(&db.queue, &key, LIMIT).await;
        assert_eq!(b.status, BuildStatus::Succeeded, "{:?}", b.error);
        let build = (b.finished_at.unwrap() - b.started_at.unwrap()).as_seconds_f64();
        let r = db.queue.request_reproduction(&key, "admin").await.unwrap();
        let done = loop {
            let x = db.queue.latest_reproduction(&key).await.unwrap().unwrap();
            if x.id == r.id && x.finished_at.is_some() {
                break x;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(done.status, "reproduced", "{done:?}");
        let reproduction = (done.finished_at.unwrap() - done.started_at.unwrap()).as_seconds_f64();
        println!(
            "  round {round}: build {build:.1} s on {}, reproduction {reproduction:.1} s on {} (steps {})",
            b.provenance.as_ref().unwrap().worker_id.as_deref().unwrap_or("?"),
            done.worker_id.as_deref().unwrap_or("?"),
            done.detail["timings"]
        );
        builds.push(build);
        reproductions.push(reproduction);
        ratios.push(reproduction / build);
    }
    println!("warm build, claim → succeeded (median of {rounds}):        {:.1} s", median(builds));
    println!("reproduction, claim → outcome (median of {rounds}):        {:.1} s", median(reproductions));
    println!("reproduction / original build (median of the ratios): {:.2}", median(ratios));
    for w in workers {
        w.stop().await;
    }
}
