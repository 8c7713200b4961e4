//! A module proxy serving a directory laid out like a module cache's
//! `cache/download` (which is the GOPROXY protocol's layout: `<module>/@v/list`,
//! `<version>.info`, `.mod`, `.zip`), read at each request: a test changes what
//! the proxy answers by writing files, e.g. appends a release to a version list.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use tokio_util::sync::CancellationToken;

pub struct DirProxy {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    pub root: PathBuf,
    /// Requests answered so far, by path: a test sees its client at work.
    hits: Hits,
    shutdown: CancellationToken,
}

type Hits = Arc<Mutex<HashMap<String, usize>>>;

impl DirProxy {
    /// Serves `root` on a free local port; 404 for anything not there.
    pub async fn start(root: &Path) -> DirProxy {
        std::fs::create_dir_all(root).unwrap();
        let hits = Hits::default();
        let app = axum::Router::new().fallback(serve).with_state((Arc::new(root.to_path_buf()), hits.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move { axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await });
        DirProxy { url, root: root.to_path_buf(), hits, shutdown }
    }

    /// How many requests for `path` (e.g. `github.com/caddyserver/caddy/v2/@v/list`) came so far.
    pub fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    /// Writes `<module>/@v/list` (module path already in the proxy's case encoding).
    pub fn set_versions(&self, module: &str, versions: &[&str]) {
        let dir = self.root.join(module).join("@v");
        std::fs::create_dir_all(&dir).unwrap();
        for v in versions {
            let info = format!(r#"{{"Version":"{v}","Time":"2026-01-01T00:00:00Z"}}"#);
            std::fs::write(dir.join(format!("{v}.info")), info).unwrap();
        }
        let list: String = versions.iter().map(|v| format!("{v}\n")).collect();
        std::fs::write(dir.join("list"), list).unwrap();
    }

    /// Appends a release to `<module>/@v/list`, as a proxy does when one is published.
    pub fn publish(&self, module: &str, version: &str) {
        let path = self.root.join(module).join("@v").join("list");
        let mut list = std::fs::read_to_string(&path).unwrap_or_default();
        list.push_str(&format!("{version}\n"));
        std::fs::write(path, list).unwrap();
    }
}

impl Drop for DirProxy {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn serve(State((root, hits)): State<(Arc<PathBuf>, Hits)>, uri: Uri) -> (StatusCode, Vec<u8>) {
    let rel = uri.path().trim_start_matches('/');
    *hits.lock().unwrap().entry(rel.to_string()).or_default() += 1;
    if rel.split('/').any(|c| c == ".." || c.is_empty()) {
        return (StatusCode::NOT_FOUND, b"not found".to_vec());
    }
    match tokio::fs::read(root.join(rel)).await {
        Ok(body) => (StatusCode::OK, body),
        Err(_) => (StatusCode::NOT_FOUND, b"not found".to_vec()),
    }
}
