//! Test support for the api: a running api on port 0 over a test database and a
//! temporary local storage, a small Go module proxy server with fixed answers
//! (and, per path, a chosen error status or no answer at all),
//! and the worker's side of a build (claim, store the artifact, complete or fail)
//! done through the real SQL functions.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use bytes::Bytes;
use caddy_build_server::config::{AdmissionConfig, Config};
use caddy_build_server::db::Queue;
use caddy_build_server::storage::{Artifact, ArtifactPaths, LocalStorage, Storage};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::db::TestDb;
use super::wait;

/// How long an api may take to start: it connects to Postgres and checks the
/// schema; generous because the machine may be loaded. Bounds a hang only.
const READY_LIMIT: Duration = Duration::from_secs(60);
/// How long something the test set off may take to show (a build row, a waiter,
/// a claimable build); bounds a hang only.
const EVENT_LIMIT: Duration = Duration::from_secs(30);

pub const WORKER: &str = "test-worker";

/// Caddy versions the fake proxy knows; the newest release is v2.10.2.
pub const CADDY_LIST: &str = "v2.9.1\nv2.10.0\nv2.10.2\nv2.11.0-beta.1\nv2.2.0\n";

/// A module proxy answering from a fixed table, counting the requests per path.
pub struct FakeProxy {
    pub url: String,
    pub hits: Arc<Mutex<HashMap<String, usize>>>,
    overrides: Arc<Mutex<HashMap<String, ProxyAnswer>>>,
    shutdown: CancellationToken,
}

/// An answer for one path that the table does not give.
#[derive(Clone, Debug)]
pub enum ProxyAnswer {
    /// This status, with this body.
    Status(u16, String),
    /// The request is accepted and never answered.
    Silent,
}

#[derive(Clone)]
struct ProxyState {
    answers: Arc<HashMap<String, String>>,
    overrides: Arc<Mutex<HashMap<String, ProxyAnswer>>>,
    hits: Arc<Mutex<HashMap<String, usize>>>,
    delay: Duration,
}

fn info(v: &str) -> String {
    format!(r#"{{"Version":"{v}","Time":"2024-01-01T00:00:00Z"}}"#)
}

/// The default table: Caddy (no `@latest`, like the real proxy for Caddy), a few
/// plugins, a module with a capital letter, one with pseudo-versions only.
pub fn default_answers() -> HashMap<String, String> {
    let mut m = HashMap::new();
    m.insert("github.com/caddyserver/caddy/v2/@v/list".into(), CADDY_LIST.into());
    for v in CADDY_LIST.lines() {
        m.insert(format!("github.com/caddyserver/caddy/v2/@v/{v}.info"), info(v));
    }
    m.insert("github.com/caddy-dns/cloudflare/@v/list".into(), "v0.1.0\nv0.2.1\nv0.3.0-rc.1\n".into());
    m.insert("github.com/caddy-dns/cloudflare/@v/v0.1.0.info".into(), info("v0.1.0"));
    m.insert("github.com/caddy-dns/cloudflare/@v/v0.2.1.info".into(), info("v0.2.1"));
    m.insert("github.com/caddy-dns/cloudflare/@v/v0.3.0-rc.1.info".into(), info("v0.3.0-rc.1"));
    m.insert("github.com/mholt/caddy-l4/@v/list".into(), "v0.0.1\n".into());
    m.insert("github.com/!burnt!sushi/toml/@v/list".into(), "v1.3.2\nv1.4.0\n".into());
    m.insert("github.com/!burnt!sushi/toml/@v/v1.3.2.info".into(), info("v1.3.2"));
    m.insert("github.com/old/lib/@v/list".into(), "v1.0.0\nv2.0.0+incompatible\n".into());
    m.insert("github.com/old/lib/@v/v2.0.0+incompatible.info".into(), info("v2.0.0+incompatible"));
    m.insert("example.com/pseudo/@v/list".into(), String::new());
    m.insert("example.com/pseudo/@latest".into(), info("v0.0.0-20240101000000-abcdefabcdef"));
    m.insert("example.com/pseudo/@v/main.info".into(), info("v0.0.0-20240101000000-abcdefabcdef"));
    for i in 0..1000 {
        m.insert(format!("example.com/p{i}/@v/list"), "v1.0.0\n".into());
    }
    m
}

async fn answer(State(s): State<ProxyState>, uri: Uri) -> (StatusCode, String) {
    let path = uri.path().trim_start_matches('/').to_string();
    *s.hits.lock().unwrap().entry(path.clone()).or_default() += 1;
    if !s.delay.is_zero() {
        tokio::time::sleep(s.delay).await;
    }
    let special = s.overrides.lock().unwrap().get(&path).cloned();
    match special {
        Some(ProxyAnswer::Status(code, body)) => return (StatusCode::from_u16(code).unwrap(), body),
        Some(ProxyAnswer::Silent) => std::future::pending().await,
        None => {}
    }
    match s.answers.get(&path) {
        Some(body) => (StatusCode::OK, body.clone()),
        None => (StatusCode::NOT_FOUND, format!("not found: {path}")),
    }
}

impl FakeProxy {
    pub async fn start(answers: HashMap<String, String>, delay: Duration) -> FakeProxy {
        let hits = Arc::new(Mutex::new(HashMap::new()));
        let overrides = Arc::new(Mutex::new(HashMap::new()));
        let state = ProxyState { answers: Arc::new(answers), overrides: overrides.clone(), hits: hits.clone(), delay };
        let app = axum::Router::new().fallback(answer).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move { axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await });
        FakeProxy { url, hits, overrides, shutdown }
    }

    /// From now on, `path` gets `answer` instead of the table's.
    pub fn answer(&self, path: &str, answer: ProxyAnswer) {
        self.overrides.lock().unwrap().insert(path.to_string(), answer);
    }

    pub fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

impl Drop for FakeProxy {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A running api over a fresh database.
pub struct TestApi {
    pub config: Arc<Config>,
    pub db: TestDb,
    pub addr: SocketAddr,
    pub base: String,
    pub http: reqwest::Client,
    pub storage: LocalStorage,
    pub storage_dir: PathBuf,
    pub proxy: FakeProxy,
    pub shutdown: CancellationToken,
    pub server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl TestApi {
    pub async fn start() -> TestApi {
        Self::start_with(|_| {}).await
    }

    /// An api on the configured module proxy, for tests that run real builds.
    pub async fn with_real_proxy() -> TestApi {
        Self::start_with(|c| c.go_proxy = Config::default().go_proxy).await
    }

    /// A worker in this process on this api's database and artifact store.
    pub fn start_worker(&self, id: &str) -> super::worker::InProcessWorker {
        let mut config = super::worker::worker_config(&self.db, id);
        config.storage.path = self.config.storage.path.clone();
        super::worker::start_worker(config)
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestApi {
        // Warnings of the api show up in a failing test's output.
        let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("caddy_build_server=warn").try_init();
        let db = TestDb::new().await;
        let proxy = FakeProxy::start(default_answers(), Duration::ZERO).await;
        let storage_dir = db.dir.subdir("artifacts");
        let mut config = db.yaml().set("database.pool_size", 12).set("go_proxy", proxy.url.as_str()).set("api.compat_wait_limit", "30s").config();
        // Every test client is 127.0.0.1: limits that only tests of admission reach.
        config.api.admission = AdmissionConfig {
            burst: 100_000,
            per_hour: 1e9,
            max_queued_per_client: 100_000,
            max_queued_total: 100_000,
            max_held_per_client: 100_000,
            ..AdmissionConfig::default()
        };
        tweak(&mut config);
        let config = Arc::new(config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(caddy_build_server::web::serve(config.clone(), listener, shutdown.clone()));
        let api = TestApi {
            config,
            storage: LocalStorage::new(&storage_dir).unwrap(),
            storage_dir,
            db,
            addr,
            base: format!("http://{addr}"),
            http: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap(),
            proxy,
            shutdown,
            server,
        };
        api.wait_ready().await;
        api
    }

    /// A second api process's equivalent over the same database and storage (its
    /// own pool, listener and memory): what another api host sees. Its base URL.
    pub async fn another_host(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(caddy_build_server::web::serve(self.config.clone(), listener, self.shutdown.clone()));
        self.wait_ready_at(&base).await;
        base
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn queue(&self) -> &Queue {
        &self.db.queue
    }

    async fn wait_ready(&self) {
        self.wait_ready_at(&self.base).await
    }

    /// Waits until the api at `base` answers `/readyz` with 200.
    async fn wait_ready_at(&self, base: &str) {
        let url = format!("{base}/readyz");
        wait::until(&format!("the api at {base} never became ready"), READY_LIMIT, || async {
            self.http.get(&url).send().await.is_ok_and(|r| r.status() == 200)
        })
        .await
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.unwrap()
    }

    /// A metric's value from `/metrics` (0 when absent).
    pub async fn metric(&self, name: &str) -> f64 {
        let text = self.get("/metrics").await.text().await.unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')).map(|v| v.trim().parse().unwrap()))
            .unwrap_or(0.0)
    }

    /// Responses with a 5xx status the api counted, other than 504 (a build's wait limit).
    pub async fn server_errors(&self) -> f64 {
        let text = self.get("/metrics").await.text().await.unwrap();
        text.lines()
            .filter(|l| l.starts_with("cbs_api_http_requests_total{") && l.contains("status=\"5"))
            .filter(|l| !l.contains("status=\"504\""))
            // Readiness answers 503 until the listener connects; start-up polls it.
            .filter(|l| !l.contains("\"/readyz\""))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum()
    }

    /// Waits until the api holds `n` requests open.
    pub async fn wait_for_waiters(&self, n: usize) {
        wait::until(&format!("never saw {n} open waiters"), EVENT_LIMIT, || async { self.metric("cbs_api_open_waiters").await as usize == n }).await
    }

    /// Claims the build as a worker would; returns its attempt.
    pub async fn claim(&self, key: &str) -> i32 {
        wait::until_some(&format!("build {key} never became claimable"), EVENT_LIMIT, || async {
            let claimed = self.queue().claim(WORKER, 100, Duration::from_secs(60)).await.unwrap();
            claimed.into_iter().find(|b| b.build_key == key).map(|b| b.attempt)
        })
        .await
    }

    /// Finishes a build the way a worker does: artifact into storage, then `complete_build`.
    pub async fn succeed(&self, key: &str, binary: &[u8]) -> Artifact {
        let attempt = self.claim(key).await;
        self.publish(key, attempt, binary, None).await
    }

    pub async fn publish(&self, key: &str, attempt: i32, binary: &[u8], signature: Option<&[u8]>) -> Artifact {
        self.publish_with_provenance(key, attempt, binary, signature, Value::Null).await
    }

    /// Like [`Self::publish`], with the provenance a worker records (`Null`: none).
    pub async fn publish_with_provenance(&self, key: &str, attempt: i32, binary: &[u8], signature: Option<&[u8]>, provenance: Value) -> Artifact {
        let build = self.queue().get(key).await.unwrap().unwrap();
        let os = build.spec.os.clone();
        let paths = ArtifactPaths::new(key, &os).unwrap();
        self.storage.put_bytes(&paths.binary, Bytes::copy_from_slice(binary)).await.unwrap();
        let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(binary));
        self.storage.put_bytes(&paths.sha256, Bytes::from(sha.clone())).await.unwrap();
        if let Some(sig) = signature {
            self.storage.put_bytes(&paths.signature, Bytes::copy_from_slice(sig)).await.unwrap();
        }
        let artifact = Artifact {
            path: paths.binary.clone(),
            file_name: paths.binary.rsplit('/').next().unwrap().to_string(),
            size: binary.len() as u64,
            sha256: sha,
            signature: signature.map(|_| paths.signature.clone()),
        };
        let mut record = serde_json::to_value(&artifact).unwrap();
        if !provenance.is_null() {
            record["provenance"] = provenance;
        }
        let done = self.queue().complete(key, attempt, WORKER, &record).await.unwrap();
        assert!(done, "complete_build was fenced out");
        artifact
    }

    /// Fails the build for good with `error`.
    pub async fn fail(&self, key: &str, error: &str) {
        let attempt = self.claim(key).await;
        self.queue().fail(key, attempt, WORKER, error, false).await.unwrap();
    }

    /// Sends `req` in the background (it will wait on a build).
    pub fn spawn(&self, req: reqwest::RequestBuilder) -> tokio::task::JoinHandle<reqwest::Response> {
        tokio::spawn(async move { req.send().await.unwrap() })
    }

    /// A GET of `path` that submitted the only build and now waits on it; its key.
    pub async fn waiting_get(&self, path: &str) -> (tokio::task::JoinHandle<reqwest::Response>, String) {
        self.waiting(self.http.get(self.url(path))).await
    }

    /// `req`, sent in the background, submitted the only build and now waits on it; its key.
    pub async fn waiting(&self, req: reqwest::RequestBuilder) -> (tokio::task::JoinHandle<reqwest::Response>, String) {
        let pending = self.spawn(req);
        let key = self.only_build_key().await;
        self.wait_for_waiters(1).await;
        (pending, key)
    }

    /// The key of the only build in the database.
    pub async fn only_build_key(&self) -> String {
        let client = self.db.client().await;
        wait::until_some("no build was created", EVENT_LIMIT, || async {
            let rows = client.query("SELECT build_key FROM cbs.builds", &[]).await.unwrap();
            assert!(rows.len() <= 1, "expected one build, found {}", rows.len());
            rows.first().map(|r| r.get(0))
        })
        .await
    }

    pub async fn build_count(&self) -> i64 {
        self.db.client().await.query_one("SELECT count(*) FROM cbs.builds", &[]).await.unwrap().get(0)
    }
}

impl Drop for TestApi {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Asserts the error envelope and returns its message.
pub async fn error_message(resp: reqwest::Response, status: u16) -> String {
    assert_eq!(resp.status().as_u16(), status, "unexpected status");
    let ct = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    assert!(ct.starts_with("application/json"), "error content type {ct:?}");
    let request_id = resp.headers().get("x-request-id").map(|v| v.to_str().unwrap().to_string());
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status_code"].as_u64(), Some(status as u64), "{body}");
    let id = body["error"]["id"].as_str().expect("error.id");
    assert!(!id.is_empty());
    assert_eq!(Some(id.to_string()), request_id, "error.id is the X-Request-Id");
    body["error"]["message"].as_str().expect("error.message").to_string()
}

/// An answer read off the wire: what a client sees, whatever hyper or the router wrote.
#[derive(Debug)]
pub struct RawAnswer {
    pub status: u16,
    /// Field names lowercased.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl RawAnswer {
    /// Asserts the error envelope (with `Cache-Control: no-store`) and returns its message.
    pub fn error_message(&self, status: u16) -> String {
        assert_eq!(self.status, status, "unexpected status: {self:?}");
        assert_eq!(self.headers.get("content-type").map(String::as_str), Some("application/json"), "{self:?}");
        assert_eq!(self.headers.get("content-length"), Some(&self.body.len().to_string()), "{self:?}");
        assert_eq!(self.headers.get("cache-control").map(String::as_str), Some("no-store"), "{self:?}");
        let body: Value = serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {self:?}"));
        assert_eq!(body["status_code"].as_u64(), Some(status as u64), "{body}");
        let id = body["error"]["id"].as_str().expect("error.id");
        assert!(!id.is_empty());
        assert_eq!(self.headers.get("x-request-id").map(String::as_str), Some(id), "error.id is the X-Request-Id");
        body["error"]["message"].as_str().expect("error.message").to_string()
    }
}

impl TestApi {
    /// Sends `request` as is on a new connection, and reads until the server
    /// closes it (it may close before it has read all of a large request).
    pub async fn raw(&self, request: Vec<u8>) -> RawAnswer {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let stream = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let (mut rd, mut wr) = stream.into_split();
        let writer = tokio::spawn(async move {
            let _ = wr.write_all(&request).await;
            wr
        });
        let mut got = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), async {
            let mut chunk = [0u8; 8192];
            loop {
                match rd.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&chunk[..n]),
                }
            }
        })
        .await;
        read.expect("the server closes the connection after its answer");
        drop(writer.await);
        let split = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or_else(|| panic!("no head in {:?}", String::from_utf8_lossy(&got)));
        let head = String::from_utf8(got[..split].to_vec()).unwrap();
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        RawAnswer { status, headers, body: got[split + 4..].to_vec() }
    }
}
