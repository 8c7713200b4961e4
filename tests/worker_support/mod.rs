//! Test support for the worker: a config wired to a test database, private
//! work and artifact directories, the shared warm Go cache volumes, and ways to
//! run workers in-process or as real processes (for SIGKILL and SIGUSR1).
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use caddy_build_server::config::Config;
use caddy_build_server::db::{Build, Queue};
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::common::TestDb;

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
    use caddy_build_server::toolchain::{GoVersion, ImageMaker};
    let c = Config::default();
    let maker = ImageMaker::new(&c).unwrap();
    maker.ensure(GoVersion::parse(&c.worker.go_version).unwrap()).await.expect("the default builder image").name
}

pub fn caddy_spec(os: &str, arch: &str) -> Value {
    json!({
        "caddy_version": CADDY,
        "os": os,
        "arch": arch,
        "plugins": [{"module": PLUGIN, "version": PLUGIN_VERSION}],
    })
}

/// A scratch directory for one test, under the system temp dir.
pub fn scratch(db: &TestDb, what: &str) -> PathBuf {
    let p = std::env::temp_dir().join("cbs-worker-tests").join(&db.name).join(what);
    std::fs::create_dir_all(&p).unwrap();
    p
}

/// Removes a test's scratch directories (artifacts are tens of MB each).
pub fn remove_scratch(db: &TestDb) {
    let _ = std::fs::remove_dir_all(std::env::temp_dir().join("cbs-worker-tests").join(&db.name));
}

pub fn worker_config(db: &TestDb, worker_id: &str) -> Config {
    let mut c = Config { database: db.config.clone(), ..Config::default() };
    c.database.pool_size = 4;
    c.worker.id = worker_id.into();
    c.worker.max_jobs = 2;
    c.worker.work_dir = scratch(db, "work").display().to_string();
    c.worker.gomod_cache_volume = GOMOD_VOLUME.into();
    c.worker.gobuild_cache_volume = GOBUILD_VOLUME.into();
    c.worker.lease = Duration::from_secs(20);
    c.worker.heartbeat_interval = Duration::from_secs(3);
    c.worker.poll_interval = Duration::from_secs(30);
    c.worker.stop_timeout = Duration::from_secs(10);
    // Off unless a test turns it on (tests/gocache.rs): each test has a store of
    // its own, into which a warm host's first build would upload its whole build
    // cache (hundreds of MB) while the test goes on.
    c.gocache.enabled = false;
    c.gocache.share_modules = false;
    c.storage.path = scratch(db, "artifacts").display().to_string();
    c.signing.secret_key_path = scratch(db, "keys").join("minisign.key").display().to_string();
    c.signing.public_key_path = scratch(db, "keys").join("minisign.pub").display().to_string();
    c
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
pub fn spawn_worker_process(db: &TestDb, config: &Config) -> Child {
    let dir = scratch(db, "config");
    let path = dir.join(format!("{}.yml", config.worker.id));
    let yaml = format!(
        "database:\n  url: {url:?}\n  pool_size: 4\nworker:\n  id: {id:?}\n  max_jobs: {jobs}\n  work_dir: {work:?}\n  gomod_cache_volume: {gomod:?}\n  gobuild_cache_volume: {gobuild:?}\n  lease: {lease}s\n  heartbeat_interval: {hb}s\n  stop_timeout: 10s\nstorage:\n  path: {store:?}\ngocache:\n  enabled: {gocache}\n  share_modules: {share_modules}\nlog:\n  level: info\n",
        url = config.database.url,
        id = config.worker.id,
        jobs = config.worker.max_jobs,
        work = config.worker.work_dir,
        gomod = config.worker.gomod_cache_volume,
        gobuild = config.worker.gobuild_cache_volume,
        lease = config.worker.lease.as_secs(),
        hb = config.worker.heartbeat_interval.as_secs(),
        store = config.storage.path,
        gocache = config.gocache.enabled,
        share_modules = config.gocache.share_modules,
    );
    std::fs::write(&path, yaml).unwrap();
    Command::new(env!("CARGO_BIN_EXE_caddy-build-server"))
        .arg("--config")
        .arg(&path)
        .arg("worker")
        .stdin(Stdio::null())
        .spawn()
        .expect("start worker process")
}

/// Polls the build (every 200 ms) until `done` holds or `limit` passes.
pub async fn wait_for(queue: &Queue, key: &str, limit: Duration, done: impl Fn(&Build) -> bool) -> Build {
    let start = Instant::now();
    loop {
        let b = queue.get(key).await.unwrap().expect("build exists");
        if done(&b) {
            return b;
        }
        assert!(start.elapsed() < limit, "build {key} still {:?} (attempt {}, error {:?}) after {limit:?}", b.status, b.attempt, b.error);
        tokio::time::sleep(Duration::from_millis(200)).await;
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

/// Polls `done` until it holds; fails the test with "`what` after `limit`" otherwise.
async fn wait_until<F: std::future::Future<Output = bool>>(what: &str, limit: Duration, mut done: impl FnMut() -> F) {
    let start = Instant::now();
    while !done().await {
        assert!(start.elapsed() < limit, "{what} after {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until no container of the build runs any more.
pub async fn wait_not_running(queue: &Queue, key: &str, limit: Duration) {
    let what = format!("a container of {key} still runs");
    wait_until(&what, limit, || async { running_build_containers(queue, key).await.is_empty() }).await;
}

/// Waits until the build has no container at all (removal may trail the kill).
pub async fn wait_no_containers(queue: &Queue, key: &str, limit: Duration) {
    let what = format!("containers of {key} still there");
    wait_until(&what, limit, || async { build_containers(queue, key).await.is_empty() }).await;
}

/// Waits until the build's containers are gone and the worker's spare sandbox
/// (one container per step) runs: the worker is idle, with no Docker work under way.
pub async fn wait_idle_with_spare(queue: &Queue, key: &str, limit: Duration) {
    wait_no_containers(queue, key, limit).await;
    let steps = caddy_build_server::worker::recipe::STEPS.len();
    wait_until("no running spare sandbox", limit, || async { running_spare_containers(queue).await.len() >= steps }).await;
}

/// Waits until a container of the build runs (a step is under way).
pub async fn wait_for_container(queue: &Queue, key: &str, limit: Duration) {
    let what = format!("no container for build {key}");
    wait_until(&what, limit, || async { !build_containers(queue, key).await.is_empty() }).await;
}

/// Stored log lines of a build, as `step: line`.
pub async fn log_lines(queue: &Queue, key: &str) -> Vec<String> {
    queue.logs_after(key, 0, 100_000).await.unwrap().into_iter().map(|l| format!("{}: {}", l.step, l.line)).collect()
}
