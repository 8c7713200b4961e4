//! The shared Go cache across worker hosts, run with `make bench` against a real
//! Docker engine and module proxy, all hosts on empty cache volumes:
//! - host A builds Caddy with a plugin (cold: it fills the shared store);
//! - the variant, one more plugin: host D (empty volumes) builds it,
//!   then warm host A: ratio D / A, target ≤ 1.5. Both start from the store as
//!   host A's first build left it (host A's build reads a copy made before D's);
//! - the hardest variant, plain Caddy, which warm host A has wholly cached:
//!   host B (empty volumes) builds it, then host A: ratio B / A;
//! - host C, empty volumes and no shared cache, builds plain Caddy: what a new
//!   host costs without sharing;
//! - the alternative, a snapshot of host A's cache volumes for the target: its size.
//!
//! Under `cargo test` (no `--bench`) it only says so: the full run takes minutes.


#[path = "../tests/support/mod.rs"]
mod support;

use std::process::Command;
use std::time::Duration;

use caddy_build_server::config::Config;
use caddy_build_server::db::BuildStatus;
use support::db::TestDb;
use serde_json::json;
use support::worker::*;

const LIMIT: Duration = Duration::from_secs(30 * 60);
/// The variant adds this plugin to host A's target (the module proxy
/// here serves it at this exact version only).
const EXTRA_PLUGIN: &str = "github.com/mholt/caddy-l4";
const EXTRA_PLUGIN_VERSION: &str = "v0.1.2";

struct Host {
    config: Config,
    volumes: [String; 2],
}

impl Host {
    fn new(db: &TestDb, name: &str, shared: bool) -> Host {
        let mut config = worker_config(db, &format!("w-bench-{name}"));
        config.worker.max_jobs = 1;
        let tag = format!("{}-{name}", std::process::id());
        let volumes = [format!("cbs-bench-gc-gomod-{tag}"), format!("cbs-bench-gc-gobuild-{tag}")];
        config.worker.gomod_cache_volume = volumes[0].clone();
        config.worker.gobuild_cache_volume = volumes[1].clone();
        config.gocache.enabled = shared;
        config.gocache.share_modules = shared;
        Host { config, volumes }
    }

    /// Builds `spec` (requeued when it exists) on this host alone; returns
    /// (claim → ready seconds, resolve seconds, compile seconds).
    async fn build(&self, db: &TestDb, spec: &serde_json::Value) -> (f64, f64, f64) {
        self.build_from(db, spec, None).await
    }

    /// [`Host::build`], with the shared store at `store` instead of the configured one.
    async fn build_from(&self, db: &TestDb, spec: &serde_json::Value, store: Option<&std::path::Path>) -> (f64, f64, f64) {
        let mut config = self.config.clone();
        if let Some(store) = store {
            config.storage.path = store.display().to_string();
        }
        let worker = start_worker(config);
        let key = db.queue.build_key(spec).await.unwrap();
        let requeue = db.queue.get(&key).await.unwrap().is_some();
        if requeue {
            db.queue.requeue(&key).await.unwrap();
        } else {
            db.queue.submit(spec, false).await.unwrap();
        }
        let done = wait_terminal(&db.queue, &key, LIMIT).await;
        assert_eq!(done.status, BuildStatus::Succeeded, "{:?}", done.error);
        worker.stop().await;
        let total = (done.finished_at.unwrap() - done.started_at.unwrap()).to_std().unwrap().as_secs_f64();
        let lines = db.queue.logs_after(&key, 0, 100_000).await.unwrap();
        let step = |name: &str| {
            let prefix = format!("{name} step exited with status 0 after ");
            lines.iter().filter(|l| l.attempt == done.attempt).find_map(|l| l.line.strip_prefix(&prefix)).map_or(0.0, |s| s.trim_end_matches('s').parse().unwrap())
        };
        for l in lines.iter().filter(|l| l.attempt == done.attempt && (l.line.starts_with("cbs-gocacheprog") || l.line.starts_with("not every module is in the cache"))) {
            println!("    {}", l.line);
        }
        (total, step("resolve"), step("build"))
    }

    /// Bytes in this host's cache volumes (what a snapshot of them would hold).
    fn volume_bytes(&self) -> u64 {
        // The default Go's builder image (`worker.image` is empty unless an admin names one).
        let image = default_builder_image_name();
        let out = Command::new("docker")
            .args(["run", "--rm", "--network", "none", "-v", &format!("{}:/m:ro", self.volumes[0]), "-v", &format!("{}:/b:ro", self.volumes[1])])
            .args([image.as_str(), "du", "-sk", "/m", "/b"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok()).sum::<u64>() * 1024
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["volume", "rm", "-f"]).args(&self.volumes).output();
    }
}

fn report(what: &str, (total, resolve, compile): (f64, f64, f64)) {
    println!("{what:<58} {total:6.1} s  (resolve {resolve:.1} s, compile {compile:.1} s)");
}

#[tokio::main]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("gocache bench: runs under `make bench` only (several real builds on empty caches)");
        return;
    }
    let db = TestDb::new().await;
    let target = caddy_spec("linux", "amd64");
    let variant = json!({"caddy_version": CADDY, "os": "linux", "arch": "amd64", "plugins": []});

    let a = Host::new(&db, "a", true);
    report("host A, empty caches: Caddy + plugin (fills the store)", a.build(&db, &target).await);
    // Host A's uploads have landed: a worker's stop waits for them.
    let mut one_more = target.clone();
    one_more["plugins"].as_array_mut().unwrap().push(json!({"module": EXTRA_PLUGIN, "version": EXTRA_PLUGIN_VERSION}));
    // Both builds of it start from the store as host A left it: a copy for host A's.
    let snapshot = std::path::PathBuf::from(format!("{}-before-d", a.config.storage.path));
    let copied = Command::new("cp").arg("-a").arg(&a.config.storage.path).arg(&snapshot).status().unwrap();
    assert!(copied.success());
    let d = Host::new(&db, "d", true);
    let fresh_more = d.build(&db, &one_more).await;
    report("host D, empty caches, shared cache: one more plugin", fresh_more);
    let warm_more = a.build_from(&db, &one_more, Some(&snapshot)).await;
    report("host A, warm: the same (the store as before host D)", warm_more);
    let _ = std::fs::remove_dir_all(&snapshot);

    let b = Host::new(&db, "b", true);
    let fresh = b.build(&db, &variant).await;
    report("host B, empty caches, shared cache: plain Caddy", fresh);
    let warm = a.build(&db, &variant).await;
    report("host A, warm: the same", warm);
    let c = Host::new(&db, "c", false);
    let unshared = c.build(&db, &variant).await;
    report("host C, empty caches, no shared cache: plain Caddy", unshared);
    println!("fresh host / warm host, one more plugin:     {:.2}  (target ≤ 1.5)", fresh_more.0 / warm_more.0);
    println!("fresh host / warm host, plain Caddy:         {:.2}", fresh.0 / warm.0);
    println!("fresh host / warm host, plain Caddy compile: {:.2}", fresh.2 / warm.2);
    println!("no sharing / warm host, plain Caddy:         {:.2}", unshared.0 / warm.0);
    let client = db.client().await;
    for row in client.query("SELECT kind, entries, bytes FROM cbs.gocache_usage ORDER BY kind", &[]).await.unwrap() {
        let (kind, entries, bytes): (String, i64, i64) = (row.get(0), row.get(1), row.get(2));
        println!("shared store, {kind:<6}: {entries} objects, {:.0} MB", bytes as f64 / 1e6);
    }
    println!("snapshot alternative: host A's cache volumes hold {:.0} MB for this target", a.volume_bytes() as f64 / 1e6);
}
