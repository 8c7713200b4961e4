//! Test support for the worker: a config wired to a test database, private
//! work and artifact directories, the shared warm Go cache volumes, and ways to
//! run workers in-process or as real processes (for SIGKILL and SIGUSR1).

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use caddy_build_server::config::Config;
use caddy_build_server::db::{Build, Queue};
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::config::ConfigYaml;
use super::db::TestDb;
use super::spawn::Service;
use super::wait;

/// The Caddy release and plugin every real build uses: one spec shared by the
/// tests keeps the Go caches warm after the first build.
pub const CADDY: &str = "v2.11.9";
pub const PLUGIN: &str = "github.com/caddy-dns/cloudflare";
pub const PLUGIN_VERSION: &str = "v0.2.1";
/// The module ID the plugin registers, as `list-modules` prints it.
pub const PLUGIN_MODULE_ID: &str = "dns.providers.cloudflare";
/// Cache volumes shared by all worker tests (and kept between runs: a warm cache).
pub const GOMOD_VOLUME: &str = "cbs-test-gomod";
pub const GOBUILD_VOLUME: &str = "cbs-test-gobuild";

/// The default Go's builder image (`worker.images.repository:go<worker.go_version>`).
pub fn default_builder_image_name() -> String {
    let c = Config::default();
    format!("{}:go{}", c.worker.images.repository, c.worker.go_version)
}

/// Makes the default Go's builder image on the shared daemon from the module
/// proxy's toolchain unless it is there (as a worker does at start); its name.
pub async fn default_builder_image() -> String {
    super::go::default_builder_image().await
}

pub fn caddy_spec(os: &str, arch: &str) -> Value {
    json!({
        "caddy_version": CADDY,
        "os": os,
        "arch": arch,
        "plugins": [{"module": PLUGIN, "version": PLUGIN_VERSION}],
    })
}

/// A scratch directory `what` in the test's own directory (removed with the `TestDb`).
pub fn scratch(db: &TestDb, what: &str) -> PathBuf {
    db.dir.subdir(what)
}

/// A worker's config for a test: its database and directories, the warm Go
/// caches, two build slots, a 20 s lease renewed every 3 s, a 10 s stop timeout.
/// The shared Go cache is off unless a test turns it on (tests/gocache.rs): each
/// test has a store of its own, into which a warm host's first build would
/// upload its whole build cache (hundreds of MB) while the test goes on.
pub fn worker_yaml(db: &TestDb, worker_id: &str) -> ConfigYaml {
    db.yaml()
        .set("worker.id", worker_id)
        .set("worker.max_jobs", 2)
        .set("worker.lease", "20s")
        .set("worker.heartbeat_interval", "3s")
        .set("worker.poll_interval", "30s")
        .set("worker.stop_timeout", "10s")
        .set("gocache.enabled", false)
        .set("gocache.share_modules", false)
}

/// [`worker_yaml`] as the worker loads it, for a worker in this process.
pub fn worker_config(db: &TestDb, worker_id: &str) -> Config {
    worker_yaml(db, worker_id).config()
}

/// A worker running in this process.
pub struct InProcessWorker {
    pub shutdown: CancellationToken,
    pub preempt: CancellationToken,
    pub handle: JoinHandle<anyhow::Result<()>>,
}

pub fn start_worker(config: Config) -> InProcessWorker {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(std::env::var("CBS_TEST_LOG").unwrap_or_else(|_| "caddy_build_server=info".into()))
        .try_init();
    let shutdown = CancellationToken::new();
    let preempt = CancellationToken::new();
    let handle = tokio::spawn(caddy_build_server::worker::run_with(Arc::new(config), shutdown.clone(), preempt.clone()));
    InProcessWorker { shutdown, preempt, handle }
}

impl InProcessWorker {
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(60), self.handle).await.expect("worker stops").unwrap().unwrap();
    }
}

/// A worker as a real process of the service's binary (`caddy-build-server worker`).
pub fn spawn_worker_process(config: &ConfigYaml) -> Service {
    let id = config.config().worker.id;
    Service::spawn("worker", &id, config)
}

/// Polls the build until `done` holds; fails the test after `limit` with the build's state.
pub async fn wait_for(queue: &Queue, key: &str, limit: Duration, done: impl Fn(&Build) -> bool) -> Build {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let b = queue.get(key).await.unwrap().expect("build exists");
        if done(&b) {
            return b;
        }
        assert!(tokio::time::Instant::now() < deadline, "build {key} still {:?} (attempt {}, error {:?}) after {limit:?}", b.status, b.attempt, b.error);
        tokio::time::sleep(wait::POLL_MAX).await;
    }
}

pub async fn wait_terminal(queue: &Queue, key: &str, limit: Duration) -> Build {
    wait_for(queue, key, limit, |b| b.status.is_terminal()).await
}

/// Container ids on the default daemon named after this build (running or not), in the
/// database's namespace (other tests may build the same spec at the same time).
pub async fn build_containers(queue: &Queue, key: &str) -> Vec<String> {
    list_containers(queue, key, "-aq").await
}

/// Running containers of this build.
pub async fn running_build_containers(queue: &Queue, key: &str) -> Vec<String> {
    list_containers(queue, key, "-q").await
}

/// Running containers of a worker's spare sandbox (named `cbs-spare-…` until a build takes it).
pub async fn running_spare_containers(queue: &Queue) -> Vec<String> {
    list_containers(queue, "spare", "-q").await
}

/// Running containers of this build's `step` (the one its step runs in).
pub async fn running_step_containers(queue: &Queue, key: &str, step: &str) -> Vec<String> {
    list_containers(queue, key, &format!("-q --filter label=io.caddy-build-server.step={step}")).await
}

async fn list_containers(queue: &Queue, key: &str, flags: &str) -> Vec<String> {
    let ns = queue.namespace().await.unwrap();
    let out = Command::new("docker")
        .arg("ps")
        .args(flags.split(' '))
        .args(["--filter", &format!("name=cbs-{key}-"), "--filter", &format!("label=io.caddy-build-server.namespace={ns}")])
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&out.stdout).split_whitespace().map(String::from).collect()
}

/// Waits until no container of the build runs any more.
pub async fn wait_not_running(queue: &Queue, key: &str, limit: Duration) {
    let what = format!("a container of {key} still runs");
    wait::until(&what, limit, || async { running_build_containers(queue, key).await.is_empty() }).await;
}

/// Waits until the build has no container at all (removal may trail the kill).
pub async fn wait_no_containers(queue: &Queue, key: &str, limit: Duration) {
    let what = format!("containers of {key} still there");
    wait::until(&what, limit, || async { build_containers(queue, key).await.is_empty() }).await;
}

/// Waits until the build's containers are gone and the worker's spare sandbox
/// (one container per step) runs: the worker is idle, with no Docker work under way.
pub async fn wait_idle_with_spare(queue: &Queue, key: &str, limit: Duration) {
    wait_no_containers(queue, key, limit).await;
    let steps = caddy_build_server::worker::recipe::STEPS.len();
    wait::until("no running spare sandbox", limit, || async { running_spare_containers(queue).await.len() >= steps }).await;
}

/// Waits until a container of the build runs (a step is under way).
pub async fn wait_for_container(queue: &Queue, key: &str, limit: Duration) {
    let what = format!("no container for build {key}");
    wait::until(&what, limit, || async { !build_containers(queue, key).await.is_empty() }).await;
}

/// Stored log lines of a build, as `step: line`.
pub async fn log_lines(queue: &Queue, key: &str) -> Vec<String> {
    queue.logs_after(key, 0, 100_000).await.unwrap().into_iter().map(|l| format!("{}: {}", l.step, l.line)).collect()
}

/// Waits until worker `id` has sent `n` more heartbeats (`cbs.workers.last_seen_at`
/// moved `n` times). Its main loop handles notifications before heartbeats, so
/// heartbeats after an event show the loop went past it: proof that the worker
/// had its chance to act, where a fixed sleep would only hope so.
pub async fn wait_for_heartbeats(db: &TestDb, id: &str, n: usize, limit: Duration) {
    let client = db.client().await;
    let read = || async {
        client
            .query_opt("SELECT last_seen_at FROM cbs.workers WHERE worker_id = $1", &[&id])
            .await
            .unwrap()
            .map(|r| r.get::<_, chrono::DateTime<chrono::Utc>>(0))
    };
    super::wait::changes(&format!("worker {id} heartbeats"), n, Duration::from_millis(100), limit, read).await;
}

/// Waits until the build's log has a line starting with `prefix` (as [`log_lines`] writes them).
pub async fn wait_for_log(queue: &Queue, key: &str, prefix: &str, limit: Duration) {
    let what = format!("build {key} never logged {prefix:?}");
    wait::until(&what, limit, || async { log_lines(queue, key).await.iter().any(|l| l.starts_with(prefix)) }).await;
}
