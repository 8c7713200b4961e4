//! One Caddy build end to end through the worker (submit → artifact ready), run
//! with `make bench` against a real Docker engine and Go module proxy:
//! - cold: fresh, empty Go cache volumes, against the same go commands run
//!   straight on the host with empty caches (the cold overhead ratio, target
//!   ≤ 1.10);
//! - warm: the same spec rebuilt (`cbs.requeue`) with those caches now warm;
//! - direct: the same go commands run straight on the host with the same warm
//!   caches (the volumes' directories), the baseline of the overhead ratio;
//! - cached: a second request for a finished build (submit + read the artifact);
//! - attestations: the time each build spent making, signing and storing its
//!   SBOMs and provenance (the worker's own log line), against the warm build.

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use caddy_build_server::db::BuildStatus;
use caddy_build_server::spec::BuildSpec;
use caddy_build_server::storage::{LocalStorage, Storage};
use caddy_build_server::worker::recipe;
use support::db::TestDb;
use support::worker::*;

const LIMIT: Duration = Duration::from_secs(30 * 60);
/// Warm builds alternate service and direct runs this many times (medians reported):
/// the machine is shared, single runs are noisy.
const WARM_ROUNDS: usize = 5;

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// Submit (or requeue) → artifact ready, read off the build's own `finished_at`
/// (stamped by `cbs.complete_build` once the artifact is stored) rather than
/// off a polling loop's wake-up.
async fn build_once(db: &TestDb, spec: &serde_json::Value, requeue: bool) -> Duration {
    let t = chrono::Utc::now();
    let key = if requeue {
        let key = db.queue.build_key(spec).await.unwrap();
        db.queue.requeue(&key).await.unwrap();
        key
    } else {
        db.queue.submit(spec, false).await.unwrap().build_key
    };
    let done = wait_terminal(&db.queue, &key, LIMIT).await;
    assert_eq!(done.status, BuildStatus::Succeeded, "{:?}", done.error);
    let since = |at: Option<chrono::DateTime<chrono::Utc>>| (at.expect("a finished build was started and finished") - t).to_std().unwrap();
    let (claimed, finished) = (since(done.started_at), since(done.finished_at));
    println!("  service run: claimed after {:.0} ms, ready after {}", claimed.as_secs_f64() * 1e3, secs(finished));
    finished
}

fn volume_dir(name: &str) -> String {
    let out = Command::new("docker").args(["volume", "inspect", "-f", "{{.Mountpoint}}", name]).output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// The worker's resolve and build commands, run on the host by the builder image's
/// `go` (copied out of it: the host runs the very toolchain the service builds
/// with, and needs no Go of its own) with the given caches; the total and a line
/// with each step's time.
fn direct_build(goroot: &Path, spec: &BuildSpec, gomod: &str, gobuild: &str) -> (Duration, String) {
    let go_bin = goroot.join("bin");
    let config = caddy_build_server::config::Config::default();
    let dir = support::tempdir::TempDir::new("bench-direct");
    std::fs::write(dir.join("main.go"), recipe::main_go(spec).unwrap()).unwrap();
    let resolve = recipe::resolve_step(&config, spec, LIMIT).unwrap();
    let build = recipe::build_step(&config, spec, LIMIT).unwrap();
    let t = Instant::now();
    let mut split = Vec::new();
    for step in [&resolve, &build] {
        let started = Instant::now();
        let go = go_bin.join("go");
        let mut cmd = Command::new(if step.cmd[0] == "go" { go.as_os_str() } else { std::ffi::OsStr::new(&step.cmd[0]) });
        cmd.args(&step.cmd[1..]).current_dir(&dir).env_clear();
        for (k, v) in &step.env {
            cmd.env(k, v);
        }
        cmd.env("GOMODCACHE", gomod).env("GOCACHE", gobuild).env("HOME", dir.path()).env("GOPATH", dir.join("gopath"));
        cmd.env("PATH", format!("{}:/usr/bin:/bin", go_bin.display()));
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}: {}", step.name, String::from_utf8_lossy(&out.stderr));
        split.push(format!("{} {}", step.name, secs(started.elapsed())));
    }
    let elapsed = t.elapsed();
    let _ = Command::new("chmod").args(["-R", "u+w"]).arg(dir.path()).status();
    (elapsed, split.join(", "))
}

/// The time SBOMs and provenance took in each build of `key` (from the worker's
/// log line), their median and its share of the warm build's median.
async fn report_attestations(db: &TestDb, key: &str, warm: Duration) {
    let marker = caddy_build_server::worker::ATTEST_LINE;
    let mut ms: Vec<f64> = log_lines(&db.queue, key)
        .await
        .iter()
        .filter_map(|l| l.split_once(marker)?.1.trim().strip_suffix(" ms")?.parse().ok())
        .collect();
    assert!(!ms.is_empty(), "no build logged its SBOM and provenance time");
    ms.sort_by(f64::total_cmp);
    let median = ms[ms.len() / 2];
    println!(
        "SBOMs + provenance per build (median of {}):        {median:.1} ms = {:.2}% of the warm build  (runs: {:?} ms)",
        ms.len(),
        median / 1e3 / warm.as_secs_f64() * 100.0,
        ms.iter().map(|m| format!("{m:.1}")).collect::<Vec<_>>()
    );
}

#[tokio::main]
async fn main() {
    let db = TestDb::new().await;
    let mut config = worker_config(&db, "w-bench");
    // `cargo bench` measures a cold build on fresh volumes; under `cargo test` this
    // is a smoke run of one warm round on the test suite's shared cache volumes.
    let full = std::env::args().any(|a| a == "--bench");
    if full {
        let tag = format!("{}", std::process::id());
        config.worker.gomod_cache_volume = format!("cbs-bench-gomod-{tag}");
        config.worker.gobuild_cache_volume = format!("cbs-bench-gobuild-{tag}");
    }
    config.worker.max_jobs = 1;
    let store = LocalStorage::new(&config.storage.path).unwrap();
    let worker = start_worker(config.clone());
    let spec_json = caddy_spec("linux", "amd64");
    let spec: BuildSpec = serde_json::from_value(spec_json.clone()).unwrap();

    let first = build_once(&db, &spec_json, false).await;
    if full {
        println!("cold build (empty caches), submit → artifact ready: {}", secs(first));
        let goroot = support::go::goroot().await;
        // The same commands on the host, on caches as empty: Go's module and build caches
        // in a scratch directory (made writable again for its removal: Go keeps modules read-only).
        let scratch = support::tempdir::TempDir::new("bench-cold-direct");
        let (cold_mod, cold_build) = (scratch.subdir("gomod"), scratch.subdir("gobuild"));
        let (cold_direct, split) = direct_build(&goroot, &spec, &cold_mod.display().to_string(), &cold_build.display().to_string());
        let _ = Command::new("chmod").args(["-R", "u+w"]).arg(scratch.path()).status();
        println!("direct go on the host, empty caches:              {}  ({split})", secs(cold_direct));
        println!("overhead ratio cold service / direct:              {:.2}", first.as_secs_f64() / cold_direct.as_secs_f64());
        let (gomod, gobuild) = (volume_dir(&config.worker.gomod_cache_volume), volume_dir(&config.worker.gobuild_cache_volume));
        let (mut service, mut direct) = (Vec::new(), Vec::new());
        let key = db.queue.build_key(&spec_json).await.unwrap();
        for _ in 0..WARM_ROUNDS {
            // Each run starts on a quiet machine: the worker idle, its spare sandbox
            // started and the last build's containers removed.
            wait_idle_with_spare(&db.queue, &key, Duration::from_secs(60)).await;
            service.push(build_once(&db, &spec_json, true).await);
            wait_idle_with_spare(&db.queue, &key, Duration::from_secs(60)).await;
            let (total, split) = direct_build(&goroot, &spec, &gomod, &gobuild);
            println!("  direct run: {split}");
            direct.push(total);
        }
        service.sort();
        direct.sort();
        let (warm, base) = (service[WARM_ROUNDS / 2], direct[WARM_ROUNDS / 2]);
        println!("warm build through the service (median of {WARM_ROUNDS}):    {}  (runs: {:?})", secs(warm), service.iter().map(|d| secs(*d)).collect::<Vec<_>>());
        println!("direct go (resolve + build) on the host, warm:     {}  (runs: {:?})", secs(base), direct.iter().map(|d| secs(*d)).collect::<Vec<_>>());
        println!("overhead ratio warm service / direct:              {:.2}", warm.as_secs_f64() / base.as_secs_f64());
        report_attestations(&db, &key, warm).await;
    } else {
        // The direct baseline would write root-owned files into the shared cache volumes.
        let warm = build_once(&db, &spec_json, true).await;
        println!("warm build through the service (smoke run): {}", secs(warm));
        report_attestations(&db, &db.queue.build_key(&spec_json).await.unwrap(), warm).await;
    }
    let key = db.queue.build_key(&spec_json).await.unwrap();
    for line in log_lines(&db.queue, &key).await.iter().filter(|l| l.contains("step exited")) {
        println!("  last warm build: {line}");
    }

    let t = Instant::now();
    let b = db.queue.submit(&spec_json, false).await.unwrap();
    assert_eq!(b.status, BuildStatus::Succeeded);
    let path = b.artifact.unwrap().binary.path;
    let bytes = store.get_bytes(&path).await.unwrap();
    println!("cached request (submit + read {} MB):            {:.1} ms", bytes.len() / 1_000_000, t.elapsed().as_secs_f64() * 1e3);

    worker.stop().await;
    if full {
        let _ = Command::new("docker").args(["volume", "rm", &config.worker.gomod_cache_volume, &config.worker.gobuild_cache_volume]).status();
    }
}
