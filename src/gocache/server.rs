//! The worker's side of one build's shared cache: an HTTP server on a unix
//! socket in the build's work dir (mounted into its containers), which the
//! cache program inside reaches while the build step has no network.
//!
//! - `GET /gocache/{action id}`: the entry from the store, checked against its
//!   hash (a corrupt one is deleted and answered 404, a miss);
//! - `PUT /gocache/{action id}?output={output id}`: checked (the content must
//!   hash to the output ID), recorded, then uploaded in the background;
//! - `POST /gocache-used`: action IDs the build found in the host's own cache,
//!   renewed in the store's bookkeeping; answers those the store lacks;
//! - `GET`/`PUT /gomod/{escaped module path}/@v/{file}`: module files, stored by
//!   the hash of their path and checked against their content hash on read;
//! - `DELETE /gomod/...`: a module file the program found not to hash to its
//!   checksum database record, removed (file, then row) so that it is a miss;
//! - `GET /gomod-manifest`: the go.sum of the last resolve of this build's
//!   Caddy version, which the program seeds the module cache from;
//! - `GET /gocache-manifest`: the action IDs the last build of this target
//!   used (a list kept per Go version and target), which the program fetches
//!   ahead of Go's requests: Go asks for entries one action at a time, and a
//!   fresh host would otherwise wait a round trip for each of thousands.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use super::{blob, GoCache, GoCacheError};
use crate::db::GoCacheKind;
use crate::storage::StorageError;

/// Largest entry accepted (Go's biggest package archives are tens of MB).
const MAX_ENTRY: usize = 512 << 20;
/// Fewer action IDs than this make no manifest (a real Caddy build uses thousands).
const MIN_MANIFEST: usize = 100;
/// Uploads to the store under way at once per build.
const UPLOADS: usize = 16;
/// How long a finished build's uploads may still run before they are given up.
const UPLOAD_GRACE: Duration = Duration::from_secs(10 * 60);

/// What a build's shared cache did, for the log.
#[derive(Debug, Default)]
pub struct Stats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub corrupt: AtomicU64,
    pub stored: AtomicU64,
    pub modules_served: AtomicU64,
    pub modules_stored: AtomicU64,
}

struct Shared {
    cache: Arc<GoCache>,
    go_version: String,
    /// The build's target (`linux-amd64`, `linux-arm-7`): names its manifest.
    target: String,
    /// The build's Caddy version: names its module manifest.
    caddy_version: String,
    /// Action IDs this build used (hits, puts, reported local hits), for the
    /// manifest, in the order of first use: the program fetches ahead in that
    /// order, which is close to the order Go asks for them again.
    used: std::sync::Mutex<Used>,
    stats: Stats,
    uploads: TaskTracker,
    upload_slots: Semaphore,
}

/// One build's server; [`BuildCache::finish`] (or dropping it) stops it.
pub struct BuildCache {
    socket: PathBuf,
    stop: CancellationToken,
    shared: Arc<Shared>,
}

impl BuildCache {
    /// Serves the build whose work dir is `work_dir`, at `work_dir/<SOCKET_NAME>`.
    pub async fn start(cache: Arc<GoCache>, go_version: &str, target: &str, caddy_version: &str, work_dir: &Path) -> Result<BuildCache, GoCacheError> {
        let socket = work_dir.join(super::SOCKET_NAME);
        let io = |e: std::io::Error| GoCacheError::Socket(format!("{}: {e}", socket.display()));
        let _ = tokio::fs::remove_file(&socket).await;
        let listener = bind(work_dir, &socket).map_err(io)?;
        // The build runs as another user than the worker: it must be able to connect.
        {
            use std::os::unix::fs::PermissionsExt;
            tokio::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o777)).await.map_err(io)?;
        }
        let shared = Arc::new(Shared {
            cache,
            go_version: go_version.to_string(),
            target: target.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect(),
            caddy_version: caddy_version.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' { c } else { '-' }).collect(),
            used: Default::default(),
            stats: Stats::default(),
            uploads: TaskTracker::new(),
            upload_slots: Semaphore::new(UPLOADS),
        });
        let router = Router::new()
            .route("/gocache/{action}", get(get_entry).put(put_entry))
            .route("/gocache-used", post(used))
            .route("/gocache-manifest", get(manifest))
            .route("/gomod-manifest", get(module_manifest))
            .route("/gomod/{*path}", get(get_module).put(put_module).delete(delete_module))
            .layer(DefaultBodyLimit::max(MAX_ENTRY))
            .with_state(shared.clone());
        let stop = CancellationToken::new();
        let until = stop.clone();
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).with_graceful_shutdown(until.cancelled_owned()).await {
                warn!(error = %e, "shared cache server stopped");
            }
        });
        Ok(BuildCache { socket, stop, shared })
    }

    /// Keeps the go.sum of this build's resolve as its Caddy version's module
    /// manifest: the modules a host with an empty module cache seeds next time.
    pub fn remember_modules(&self, go_sum: &str) {
        if go_sum.lines().count() < MIN_MANIFEST {
            return;
        }
        let shared = self.shared.clone();
        let sealed = blob::seal(go_sum.as_bytes());
        self.shared.uploads.spawn(async move {
            let path = module_manifest_path(&shared);
            if let Err(e) = shared.cache.storage.put_bytes(&path, sealed).await {
                warn!(path, error = %e, "cannot store the module manifest");
            }
        });
    }

    pub fn stats(&self) -> &Stats {
        &self.shared.stats
    }

    /// Stops serving; the uploads under way go on in the background for a while.
    pub fn finish(self) {
        let shared = self.shared.clone();
        drop(self);
        shared.uploads.close();
        let finishing = shared.cache.finishing.clone();
        finishing.spawn(async move {
            write_manifest(&shared).await;
            if tokio::time::timeout(UPLOAD_GRACE, shared.uploads.wait()).await.is_err() {
                warn!("shared cache uploads still running after {UPLOAD_GRACE:?}; no longer waiting for them");
            }
            let s = &shared.stats;
            info!(
                shared_hits = s.hits.load(Ordering::Relaxed),
                misses = s.misses.load(Ordering::Relaxed),
                corrupt = s.corrupt.load(Ordering::Relaxed),
                stored = s.stored.load(Ordering::Relaxed),
                modules_served = s.modules_served.load(Ordering::Relaxed),
                modules_stored = s.modules_stored.load(Ordering::Relaxed),
                "shared Go cache: build done"
            );
        });
    }
}

impl Drop for BuildCache {
    fn drop(&mut self) {
        self.stop.cancel();
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// Longest socket path `bind` takes (`sun_path` holds 108 bytes with its NUL).
const MAX_SOCKET_PATH: usize = 107;

/// Binds `socket` in `dir`. Work dirs can be deep, deeper than a socket path may
/// be; then the socket is bound through the directory's open descriptor
/// (`/proc/self/fd/N/name`, which Linux resolves like the directory itself).
fn bind(dir: &Path, socket: &Path) -> std::io::Result<tokio::net::UnixListener> {
    if socket.as_os_str().len() <= MAX_SOCKET_PATH {
        return tokio::net::UnixListener::bind(socket);
    }
    use std::os::fd::AsRawFd;
    let handle = std::fs::File::open(dir)?;
    let short = format!("/proc/self/fd/{}/{}", handle.as_raw_fd(), super::SOCKET_NAME);
    tokio::net::UnixListener::bind(short)
}

fn is_hex_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Store path of a build cache entry: `gocache/<go version>/<aa>/<action id>`.
pub(super) fn entry_path(go_version: &str, action: &str) -> String {
    let version: String = go_version.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' }).collect();
    format!("gocache/{version}/{}/{action}", &action[..2])
}

/// Store path of a target's manifest: `gocache/<go version>/manifest/<target>`.
fn manifest_path(shared: &Shared) -> String {
    let dir = entry_path(&shared.go_version, &"0".repeat(64));
    let version_dir = dir.rsplitn(3, '/').nth(2).unwrap_or("gocache");
    format!("{version_dir}/manifest/{}", shared.target)
}

/// Store path of a Caddy version's module manifest: `gomod/manifest/<version>`.
fn module_manifest_path(shared: &Shared) -> String {
    format!("gomod/manifest/{}", shared.caddy_version)
}

/// Replaces the target's manifest with what this build used (a build that used
/// almost nothing, e.g. one that failed early, leaves the old one).
async fn write_manifest(shared: &Shared) {
    let list: Vec<String> = shared.used.lock().unwrap().order.clone();
    if list.len() < MIN_MANIFEST {
        return;
    }
    let path = manifest_path(shared);
    if let Err(e) = shared.cache.storage.put_bytes(&path, blob::seal(list.join("\n").as_bytes())).await {
        warn!(path, error = %e, "cannot store the shared cache manifest");
    }
}

/// Action IDs in the order of their first use.
#[derive(Default)]
struct Used {
    order: Vec<String>,
    seen: std::collections::HashSet<String>,
}

fn note_used<'a>(shared: &Shared, actions: impl IntoIterator<Item = &'a str>) {
    let mut used = shared.used.lock().unwrap();
    for a in actions {
        if used.seen.insert(a.to_string()) {
            used.order.push(a.to_string());
        }
    }
}

/// Store path of a module file: `gomod/<aa>/<sha256 of its proxy path>`.
pub(super) fn module_path(proxy_path: &str) -> String {
    let h = blob::sha256_hex(proxy_path.as_bytes());
    format!("gomod/{}/{h}", &h[..2])
}

/// A proxy path the resolve step may share: one exact version's `.info`, `.mod` or `.zip`.
fn shareable_module(path: &str) -> bool {
    let Some((module, file)) = path.split_once("/@v/") else { return false };
    !module.is_empty()
        && path.len() <= 1024
        && !path.split('/').any(|s| s.is_empty() || s == "." || s == "..")
        && !file.contains('/')
        && [".info", ".mod", ".zip"].iter().any(|ext| file.len() > ext.len() && file.ends_with(ext))
}

/// Reads and checks an object; a corrupt one is removed (file, then row) and
/// reads as missing.
async fn read_checked(shared: &Shared, path: &str) -> Option<(String, Bytes)> {
    let storage = &shared.cache.storage;
    let stored = match storage.get_bytes(path).await {
        Ok(b) => b,
        Err(StorageError::NotFound(_)) => return None,
        Err(e) => {
            warn!(path, error = %e, "shared cache read failed; treating it as a miss");
            return None;
        }
    };
    match blob::open(&stored) {
        Ok(found) => Some(found),
        Err(e) => {
            shared.stats.corrupt.fetch_add(1, Ordering::Relaxed);
            warn!(path, error = %e, "corrupt shared cache object: a miss; deleting it");
            if storage.delete_prefix(path).await.is_ok() {
                let _ = shared.cache.queue.gocache_forget(&[path.to_string()], None).await;
            }
            None
        }
    }
}

/// Records, then uploads in the background (row before file: no file nobody knows of).
fn upload(shared: &Arc<Shared>, path: String, kind: GoCacheKind, content: Bytes) {
    let task = shared.clone();
    shared.uploads.spawn(async move {
        let Ok(_slot) = task.upload_slots.acquire().await else { return };
        let sealed = blob::seal(&content);
        if let Err(e) = task.cache.queue.gocache_record(&path, kind, sealed.len() as u64).await {
            return warn!(path, error = %e, "cannot record a shared cache object; not uploading it");
        }
        match task.cache.storage.put_bytes(&path, sealed).await {
            Ok(()) => {
                let counter = if kind == GoCacheKind::Build { &task.stats.stored } else { &task.stats.modules_stored };
                counter.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => warn!(path, error = %e, "shared cache upload failed"),
        }
    });
}

async fn get_entry(State(shared): State<Arc<Shared>>, UrlPath(action): UrlPath<String>) -> Response {
    if !is_hex_id(&action) {
        return StatusCode::BAD_REQUEST.into_response();
    }
    match read_checked(&shared, &entry_path(&shared.go_version, &action)).await {
        Some((output, content)) => {
            shared.stats.hits.fetch_add(1, Ordering::Relaxed);
            note_used(&shared, [action.as_str()]);
            ([("x-output-id", output)], content).into_response()
        }
        None => {
            shared.stats.misses.fetch_add(1, Ordering::Relaxed);
            StatusCode::NOT_FOUND.into_response()
        }
    }
}

#[derive(serde::Deserialize)]
struct PutQuery {
    output: String,
}

async fn put_entry(State(shared): State<Arc<Shared>>, UrlPath(action): UrlPath<String>, Query(q): Query<PutQuery>, body: Bytes) -> StatusCode {
    if !is_hex_id(&action) || !is_hex_id(&q.output) {
        return StatusCode::BAD_REQUEST;
    }
    if blob::sha256_hex(&body) != q.output {
        debug!(action, "refused a shared cache entry that does not hash to its output ID");
        return StatusCode::UNPROCESSABLE_ENTITY;
    }
    note_used(&shared, [action.as_str()]);
    upload(&shared, entry_path(&shared.go_version, &action), GoCacheKind::Build, body);
    StatusCode::ACCEPTED
}

async fn used(State(shared): State<Arc<Shared>>, body: String) -> Response {
    let actions: Vec<&str> = body.split_whitespace().filter(|a| is_hex_id(a)).collect();
    note_used(&shared, actions.iter().copied());
    let paths: Vec<String> = actions.iter().map(|a| entry_path(&shared.go_version, a)).collect();
    match shared.cache.queue.gocache_touch(&paths).await {
        Ok(missing) => {
            let names: Vec<&str> = missing.iter().filter_map(|p| p.rsplit('/').next()).collect();
            names.join("\n").into_response()
        }
        Err(e) => {
            warn!(error = %e, "cannot renew shared cache entries");
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}

/// A manifest, checked like any object; 404 when there is none.
async fn serve_manifest(shared: &Shared, path: &str) -> Response {
    match read_checked(shared, path).await {
        Some((_, list)) => list.into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The target's build cache manifest.
async fn manifest(State(shared): State<Arc<Shared>>) -> Response {
    serve_manifest(&shared, &manifest_path(&shared)).await
}

async fn get_module(State(shared): State<Arc<Shared>>, UrlPath(path): UrlPath<String>) -> Response {
    if !shareable_module(&path) {
        return StatusCode::NOT_FOUND.into_response();
    }
    match read_checked(&shared, &module_path(&path)).await {
        Some((_, content)) => {
            shared.stats.modules_served.fetch_add(1, Ordering::Relaxed);
            content.into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The Caddy version's module manifest.
async fn module_manifest(State(shared): State<Arc<Shared>>) -> Response {
    serve_manifest(&shared, &module_manifest_path(&shared)).await
}

/// The program checks module files against the checksum database; one that
/// does not match goes, so that the next reader fetches a good one.
async fn delete_module(State(shared): State<Arc<Shared>>, UrlPath(path): UrlPath<String>) -> StatusCode {
    if !shareable_module(&path) {
        return StatusCode::BAD_REQUEST;
    }
    let stored = module_path(&path);
    warn!(module_file = path, "a shared module file does not match the checksum database; deleting it");
    shared.stats.corrupt.fetch_add(1, Ordering::Relaxed);
    match shared.cache.storage.delete_prefix(&stored).await {
        Ok(_) => {
            let _ = shared.cache.queue.gocache_forget(&[stored], None).await;
            StatusCode::NO_CONTENT
        }
        Err(e) => {
            warn!(error = %e, "cannot delete a shared module file");
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}

async fn put_module(State(shared): State<Arc<Shared>>, UrlPath(path): UrlPath<String>, body: Bytes) -> StatusCode {
    if !shareable_module(&path) {
        return StatusCode::BAD_REQUEST;
    }
    upload(&shared, module_path(&path), GoCacheKind::Module, body);
    StatusCode::ACCEPTED
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let a = "ab".repeat(32);
        assert_eq!(entry_path("go1.26.8", &a), format!("gocache/go1.26.8/ab/{a}"));
        assert_eq!(entry_path("go1.26.8 X:boring", &a), format!("gocache/go1.26.8_X_boring/ab/{a}"));
        assert!(module_path("github.com/!foo/bar/@v/v1.2.3.zip").starts_with("gomod/"));
        assert!(shareable_module("github.com/!foo/bar/@v/v1.2.3.zip"));
        assert!(shareable_module("golang.org/x/net/@v/v0.0.0-20240101000000-abcdefabcdef.mod"));
        for bad in ["github.com/x/@v/list", "github.com/x/@latest", "github.com/x/@v/.zip", "/@v/v1.zip", "a/../b/@v/v1.zip", "a/@v/v1/x.zip"] {
            assert!(!shareable_module(bad), "{bad}");
        }
        assert!(is_hex_id(&a) && !is_hex_id(&a.to_uppercase()) && !is_hex_id("ab"));
    }

    #[tokio::test]
    async fn binds_in_directories_deeper_than_a_socket_path_may_be() {
        let dir = std::env::temp_dir().join(format!("cbs-sock-{:x}", rand::random::<u64>())).join("d".repeat(120));
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join(crate::gocache::SOCKET_NAME);
        let listener = bind(&dir, &socket).unwrap();
        let accepted = tokio::spawn(async move { listener.accept().await.map(|_| ()) });
        // A client reaches it by the same short route the container's short path takes.
        let handle = std::fs::File::open(&dir).unwrap();
        let short = format!("/proc/self/fd/{}/{}", std::os::fd::AsRawFd::as_raw_fd(&handle), crate::gocache::SOCKET_NAME);
        tokio::net::UnixStream::connect(&short).await.unwrap();
        accepted.await.unwrap().unwrap();
        assert!(socket.exists(), "the socket is in the directory itself");
        std::fs::remove_dir_all(dir.parent().unwrap()).unwrap();
    }
}
