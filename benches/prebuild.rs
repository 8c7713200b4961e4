//! Prebuilding, measured with `make bench` against a real Docker engine, Go and
//! module proxy (Caddy and the plugin of `tests/support/worker.rs`):
//! - the first plugin build after a fresh start (empty cache volumes), with the
//!   janitor's prebuild of plain Caddy done first (on) and without it (off);
//! - a Caddy release appearing at a module proxy the bench controls (a
//!   directory in the `cache/download` layout) → its prebuild for a popular spec
//!   queued by the janitor's watcher → ready, on the caches the "on" run warmed.
//!
//! Under `cargo test` (no `--bench`) it is a smoke run that builds nothing: the
//! release is watched through the whole janitor until its prebuild is queued.

#[path = "../tests/support/mod.rs"]
mod support;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use caddy_build_server::config::{Config, PrebuildSpec};
use caddy_build_server::db::BuildStatus;
use chrono::{DateTime, Utc};
use support::db::TestDb;
use support::goproxy::dir::DirProxy;
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use support::worker::*;

const LIMIT: Duration = Duration::from_secs(40 * 60);
const CADDY_PATH: &str = "github.com/caddyserver/caddy/v2";
/// How often the bench's janitor polls its proxy: the release-to-ready time
/// includes up to one interval (30 min by default in production).
const WATCH_INTERVAL: Duration = Duration::from_secs(1);

fn secs(d: chrono::TimeDelta) -> String {
    format!("{:.1} s", d.num_milliseconds() as f64 / 1e3)
}

/// Fresh, empty cache volumes for one measurement, named after this process.
fn fresh_volumes(config: &mut Config, tag: &str) -> [String; 2] {
    let pid = std::process::id();
    config.worker.gomod_cache_volume = format!("cbs-bench-prebuild-{tag}-{pid}-gomod");
    config.worker.gobuild_cache_volume = format!("cbs-bench-prebuild-{tag}-{pid}-gobuild");
    [config.worker.gomod_cache_volume.clone(), config.worker.gobuild_cache_volume.clone()]
}

fn remove_volumes(names: &[String]) {
    let _ = Command::new("docker").arg("volume").arg("rm").args(names).output();
}

fn start_janitor(db: &TestDb, yaml: &str) -> (CancellationToken, JoinHandle<anyhow::Result<()>>) {
    let config = Arc::new(support::janitor::janitor_config(&db.config, "bench", yaml));
    let stop = CancellationToken::new();
    (stop.clone(), tokio::spawn(caddy_build_server::janitor::run(config, stop)))
}

async fn stop_janitor((stop, task): (CancellationToken, JoinHandle<anyhow::Result<()>>)) {
    stop.cancel();
    task.await.unwrap().unwrap();
}

/// The build's own timestamps: (queued → ready, started → ready).
async fn succeeded(db: &TestDb, key: &str, since: DateTime<Utc>) -> (chrono::TimeDelta, chrono::TimeDelta) {
    let b = wait_terminal(&db.queue, key, LIMIT).await;
    assert_eq!(b.status, BuildStatus::Succeeded, "{:?}", b.error);
    let finished = b.finished_at.unwrap();
    (finished - since, finished - b.started_at.unwrap())
}

/// Waits until the janitor has queued a prebuild; returns its key and when it was queued.
async fn prebuild_queued(db: &TestDb, limit: Duration) -> (String, DateTime<Utc>) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let rows = db.queue.prebuild_overview(1).await.unwrap();
        if let Some(row) = rows.as_array().and_then(|r| r.first()) {
            let at: DateTime<Utc> = serde_json::from_value(row["queued_at"].clone()).unwrap();
            return (row["build_key"].as_str().unwrap().to_string(), at);
        }
        assert!(tokio::time::Instant::now() < deadline, "no prebuild queued within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The first plugin build on empty caches, with or without the plain-Caddy
/// prebuild finished first. Returns the volumes (warm afterwards).
async fn first_plugin_build(prebuild: bool) -> [String; 2] {
    let db = TestDb::new().await;
    let mut config = worker_config(&db, if prebuild { "w-on" } else { "w-off" });
    config.worker.max_jobs = 1;
    let volumes = fresh_volumes(&mut config, if prebuild { "on" } else { "off" });
    let fresh_start = Utc::now();
    let worker = start_worker(config);
    if prebuild {
        // The default prebuild (plain Caddy for this host), pinned to the release the proxy serves.
        let spec = PrebuildSpec { caddy_version: CADDY.into(), ..PrebuildSpec::default() };
        let yaml = format!("prebuild:\n  specs: [{}]\n", serde_json::to_string(&json!({"caddy_version": spec.caddy_version, "os": spec.os, "arch": spec.arch})).unwrap());
        let janitor = start_janitor(&db, &yaml);
        let (key, _) = prebuild_queued(&db, Duration::from_secs(60)).await;
        let (ready, run) = succeeded(&db, &key, fresh_start).await;
        println!("  prebuild of plain Caddy {CADDY}: ready {} after the fresh start (build {})", secs(ready), secs(run));
        stop_janitor(janitor).await;
    }
    let submitted = Utc::now();
    let key = db.queue.submit(&caddy_spec("linux", "amd64"), false).await.unwrap().build_key;
    let (ready, run) = succeeded(&db, &key, submitted).await;
    let steps: Vec<String> = log_lines(&db.queue, &key).await.into_iter().filter(|l| l.contains("step exited")).collect();
    println!(
        "first plugin build after a fresh start, prebuilding {}: {} (submit → ready; build {})\n    {}",
        if prebuild { "on " } else { "off" },
        secs(ready),
        secs(run),
        steps.join("\n    ")
    );
    worker.stop().await;
    volumes
}

/// A Caddy release appears at the bench's proxy; the janitor prebuilds the
/// popular spec with it. `warm_volumes`: build it there, else only watch it queued.
async fn release_to_ready(warm_volumes: Option<&[String; 2]>) {
    let db = TestDb::new().await;
    let proxy = DirProxy::start(&scratch(&db, "goproxy")).await;
    proxy.set_versions(CADDY_PATH, &["v2.11.8"]);
    proxy.set_versions(PLUGIN, &[PLUGIN_VERSION]);
    let mut popular: Value = caddy_spec("linux", "amd64");
    popular["caddy_version"] = json!("v2.11.8");
    for _ in 0..3 {
        db.queue.submit(&popular, false).await.unwrap();
    }
    db.queue.cancel(&db.queue.build_key(&popular).await.unwrap(), "bench: only its requests matter").await.unwrap();
    let yaml = format!("go_proxy: {}\nprebuild:\n  specs: []\n  watch_interval: {}ms\n", proxy.url, WATCH_INTERVAL.as_millis());
    let janitor = start_janitor(&db, &yaml);
    let worker = warm_volumes.map(|[gomod, gobuild]| {
        let mut config = worker_config(&db, "w-release");
        config.worker.gomod_cache_volume = gomod.clone();
        config.worker.gobuild_cache_volume = gobuild.clone();
        start_worker(config)
    });
    // The janitor leads and has polled at least once with nothing new.
    tokio::time::sleep(WATCH_INTERVAL * 3).await;
    assert_eq!(db.queue.prebuild_overview(1).await.unwrap(), json!([]));

    let published = Utc::now();
    proxy.publish(CADDY_PATH, CADDY);
    let (key, queued) = prebuild_queued(&db, Duration::from_secs(60)).await;
    println!("release at the proxy → prebuild queued (poll every {WATCH_INTERVAL:?}): {}", secs(queued - published));
    if let Some(worker) = worker {
        let (ready, run) = succeeded(&db, &key, published).await;
        println!("release at the proxy → prebuild ready, warm caches: {} (build {})", secs(ready), secs(run));
        worker.stop().await;
    }
    stop_janitor(janitor).await;
}

#[tokio::main]
async fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    if !full {
        release_to_ready(None).await;
        return;
    }
    let off = first_plugin_build(false).await;
    remove_volumes(&off);
    let on = first_plugin_build(true).await;
    release_to_ready(Some(&on)).await;
    remove_volumes(&on);
}
