//! Go's build cache and module downloads, shared between worker hosts through
//! the artifact store (local directory or S3), so that a host with empty cache
//! volumes builds what another host built at warm speed.
//!
//! How: Go's `GOCACHEPROG`. A small program ([`program`], Go source in
//! `gocacheprog/`) runs in the build container as Go's cache; it keeps its
//! entries on the local disk (the cache volume) and, on a local miss or a new
//! entry, talks to the worker over a unix socket in the build's work dir
//! ([`server`]); the worker reads and writes the store under
//! `gocache/<go version>/`. The build step keeps no network. In the resolve
//! step the same program serves as a module proxy on the container's loopback,
//! in front of the configured one: module files another host downloaded come
//! from the store (`gomod/`), new ones go there.
//!
//! Why it cannot change another build's result: entries are keyed by Go's own
//! action IDs (hashes of every input of a compile), an entry's content must
//! hash to its output ID (checked by the worker on write and read, and by the
//! program on read; a mismatch is a miss), and module files are verified by the
//! go command against go.sum and the checksum database, as from any proxy.
//!
//! Lifecycle: one [`GoCache`] per worker; per build, [`GoCache::start`] makes
//! sure the program exists for the builder image (compiling it once), opens the
//! build's socket and adds the program to the resolve and build steps; the
//! returned [`BuildCache`] is finished when the build step is done.

mod blob;
mod program;
mod server;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use tokio::sync::Mutex;

pub use blob::{open as open_blob, seal as seal_blob, sha256_hex, BlobError};
pub use program::Program;
pub use server::{BuildCache, Stats};

use crate::config::GoCacheConfig;
use crate::db::{DbError, Queue};
use crate::sandbox::{shell_quote, Sandbox, SandboxError, StepSpec};
use crate::spec::{BuildSpec, CADDY_MODULE};
use crate::storage::{DynStorage, StorageError};
use crate::worker::recipe::SKIP_OFFLINE_FLAG;

/// The worker's socket, in the build's work dir (`/work` in the containers).
pub const SOCKET_NAME: &str = ".cbs-cache.sock";
/// Where the cache program keeps its local entries, in the build cache volume.
pub const LOCAL_DIR: &str = "/cache/gobuild/cbs";
/// The resolve step's module proxy, on the container's own loopback.
const MODPROXY_ADDR: &str = "127.0.0.1:7070";

#[derive(Debug, thiserror::Error)]
pub enum GoCacheError {
    #[error("cache program: {0}")]
    Program(String),
    #[error("shared cache socket {0}")]
    Socket(String),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// A worker's shared cache: the store, the bookkeeping, and the compiled
/// programs by builder image id.
pub struct GoCache {
    pub(crate) storage: DynStorage,
    pub(crate) queue: Queue,
    config: GoCacheConfig,
    /// The module proxy the resolve step's program fetches missing files from.
    upstream: Option<String>,
    programs: Mutex<HashMap<String, Program>>,
    /// Finished builds' manifests and uploads still under way (see [`GoCache::settle`]).
    pub(crate) finishing: tokio_util::task::TaskTracker,
}

impl GoCache {
    /// `go_proxy` is the configured GOPROXY list; its first proxy URL is the
    /// upstream of the resolve step's module proxy.
    pub fn new(storage: DynStorage, queue: Queue, config: GoCacheConfig, go_proxy: &str) -> Arc<GoCache> {
        let upstream = go_proxy.split([',', '|']).map(str::trim).find(|p| p.starts_with("http://") || p.starts_with("https://"));
        Arc::new(GoCache { storage, queue, upstream: upstream.map(String::from), config, programs: Mutex::default(), finishing: Default::default() })
    }

    /// Waits, at most `limit`, for the manifests and uploads of the builds this
    /// worker finished: a stopping worker hands its entries to the store before
    /// it exits (a host that builds next, or a test, finds them there). Says
    /// whether everything landed. No build may start after this.
    pub async fn settle(&self, limit: std::time::Duration) -> bool {
        self.finishing.close();
        let landed = tokio::time::timeout(limit, self.finishing.wait()).await.is_ok();
        if !landed {
            tracing::warn!(?limit, "shared cache uploads still running as the worker stops; giving them up");
        }
        landed
    }

    /// The program for the image `image_id`, compiled now if it has not been.
    pub async fn program(&self, sandbox: &Sandbox, image_id: &str, build_key: &str, scratch: &Path) -> Result<Program, GoCacheError> {
        let mut programs = self.programs.lock().await;
        if let Some(p) = programs.get(image_id) {
            return Ok(p.clone());
        }
        let started = std::time::Instant::now();
        let p = program::ensure(sandbox, &self.config.program_volume, image_id, build_key, scratch).await?;
        tracing::info!(image_id, go_version = %p.go_version, elapsed = ?started.elapsed(), "shared Go cache program ready");
        programs.insert(image_id.to_string(), p.clone());
        Ok(p)
    }

    /// Sets up one build: the program for its image, its socket in `work_dir`.
    /// `target` names the build's GOOS/GOARCH(/GOARM), e.g. `linux-amd64`.
    pub async fn start(self: &Arc<Self>, sandbox: &Sandbox, image_id: &str, build_key: &str, target: &str, caddy_version: &str, work_dir: &Path) -> Result<ForBuild, GoCacheError> {
        let scratch = work_dir.parent().unwrap_or(work_dir);
        let program = self.program(sandbox, image_id, build_key, scratch).await?;
        let server = BuildCache::start(self.clone(), &program.go_version, target, caddy_version, work_dir).await?;
        Ok(ForBuild { program, server, share_modules: self.config.share_modules, upstream: self.upstream.clone() })
    }
}

/// One build's shared cache: adds the program to its steps.
pub struct ForBuild {
    pub program: Program,
    pub server: BuildCache,
    share_modules: bool,
    upstream: Option<String>,
}

/// `path@version` of Caddy and of each plugin the resolve step fetches.
fn named_modules(spec: &BuildSpec) -> Vec<String> {
    let plugins = crate::worker::recipe::fetched_plugins(spec).map(|p| format!("{}@{}", p.module, p.version));
    std::iter::once(format!("{CADDY_MODULE}@{}", spec.caddy_version)).chain(plugins).collect()
}

fn set_env(step: &mut StepSpec, key: &str, value: String) {
    step.env.retain(|(k, _)| k != key);
    step.env.push((key.to_string(), value));
}

fn socket_in_container() -> String {
    format!("{}/{SOCKET_NAME}", crate::sandbox::WORK_MOUNT)
}

impl ForBuild {
    /// The build step: Go's cache is the program.
    pub fn build_step(&self, step: &mut StepSpec) {
        set_env(step, "GOCACHEPROG", self.program.path.clone());
        set_env(step, "CBS_GOCACHE_SOCKET", socket_in_container());
        set_env(step, "CBS_GOCACHE_DIR", LOCAL_DIR.to_string());
    }

    /// The resolve step: the program first seeds the module cache with what the
    /// last resolve of the same Caddy version needed (so that the attempt from
    /// the cache alone succeeds on a host whose cache was empty), then runs as a
    /// module proxy in front of the configured ones (`|`: on any failure of it,
    /// the go command goes on to them).
    ///
    /// The seed also says whether every module the spec names (Caddy, the
    /// plugins) is now in the cache; when one is not, the attempt from the cache
    /// alone would fail after doing part of the work, and is skipped.
    pub fn resolve_step(&self, step: &mut StepSpec, spec: &BuildSpec) {
        let Some(upstream) = self.upstream.as_ref().filter(|_| self.share_modules) else { return };
        if step.cmd.len() != 3 || step.cmd[..2] != ["/bin/sh", "-c"] {
            return;
        }
        let proxy = step.env.iter().find(|(k, _)| k == "GOPROXY").map(|(_, v)| v.clone()).unwrap_or_default();
        set_env(step, "GOPROXY", format!("http://{MODPROXY_ADDR}|{proxy}"));
        set_env(step, "CBS_GOCACHE_SOCKET", socket_in_container());
        set_env(step, "CBS_MODPROXY_READY", "/tmp/modproxy.ready".into());
        let start = [
            format!(
                "{} modproxy {MODPROXY_ADDR} {} 2>/tmp/modproxy.log & modproxy=$!",
                shell_quote(&self.program.path),
                shell_quote(upstream)
            ),
            "trap 'kill $modproxy 2>/dev/null; wait $modproxy 2>/dev/null; cat /tmp/modproxy.log' EXIT".into(),
            "for _ in $(seq 100); do [ -e /tmp/modproxy.ready ] && break; sleep 0.05; done".into(),
            format!(
                "{} modseed {} {} || touch {SKIP_OFFLINE_FLAG}",
                shell_quote(&self.program.path),
                shell_quote(upstream),
                named_modules(spec).iter().map(|m| shell_quote(m)).collect::<Vec<_>>().join(" ")
            ),
        ];
        step.cmd[2] = format!("{}\n{}", start.join("\n"), step.cmd[2]);
    }
}
