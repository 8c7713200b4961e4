//! Api benchmarks (run with `make bench`) against the real binary in its own
//! process, a real Postgres and local storage:
//! - 10,000 concurrent compat waiters released by one completion: wake-up
//!   latency (the api's own histogram, completion → waiter, and end to end,
//!   completion committed → response headers at the client) and the api's
//!   resident memory while they wait;
//! - cache-hit downloads: requests per second for a small artifact, MB/s for a
//!   40 MB one;
//! - a cached 57.8 MB download against nginx with `sendfile` serving the same
//!   file on loopback, one and four clients, from local storage and from the
//!   in-memory download shared by waiters: a ratio per pair of alternating runs
//!   (target ≥ 0.8×).

#[path = "../tests/support/mod.rs"]
mod support;

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::api::{default_answers, FakeProxy, WORKER};
use support::spawn::Service;
use bytes::Bytes;
use caddy_build_server::db::Queue;
use caddy_build_server::storage::{Artifact, ArtifactPaths, LocalStorage, Storage};
use support::db::TestDb;
use futures::StreamExt;
use tokio::sync::Semaphore;

/// `cargo bench` passes `--bench`; `cargo test --all-targets` runs this file as a
/// quick smoke test (a debug build, fewer waiters, shorter runs) instead.
fn full_run() -> bool {
    std::env::args().any(|a| a == "--bench")
}

const WAITERS: usize = 10_000;
const SMOKE_WAITERS: usize = 200;
/// Waiters connecting at once while they line up (keeps the accept backlog sane).
const CONNECT_CONCURRENCY: usize = 500;
const SMALL: usize = 64 * 1024;
const LARGE: usize = 40 * 1024 * 1024;
const RPS_CLIENTS: usize = 32;
const RPS_DURATION: Duration = Duration::from_secs(5);
const SMOKE_RPS_DURATION: Duration = Duration::from_millis(500);
const LARGE_DOWNLOADS: usize = 12;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

struct Api {
    process: Service,
    base: String,
    storage: LocalStorage,
    /// The artifacts directory (local storage), which nginx serves too.
    artifacts: std::path::PathBuf,
}

impl Api {
    async fn start(db: &TestDb, proxy: &FakeProxy) -> Api {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let config = db
            .yaml()
            .set("database.pool_size", 16)
            .set("go_proxy", proxy.url.as_str())
            .set("api.listen", format!("127.0.0.1:{port}"))
            .set("api.compat_wait_limit", "10m")
            .set("api.admission.max_held_per_client", 100_000)
            .set("api.admission.burst", 100_000)
            .set("api.admission.max_queued_per_client", 100_000)
            .set("log.level", "warn");
        let artifacts = db.dir.subdir("artifacts");
        let mut process = Service::spawn("api", "api-bench", &config);
        let base = format!("http://127.0.0.1:{port}");
        process.wait_ready(&base, Duration::from_secs(60)).await;
        Api { process, base, storage: LocalStorage::new(&artifacts).unwrap(), artifacts }
    }

    fn rss_mb(&self) -> f64 {
        let pid = self.process.pid();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let kb: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .map(|v| v.trim().trim_end_matches("kB").trim().parse().unwrap())
            .unwrap();
        kb / 1024.0
    }

    async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.base)).await.unwrap().text().await.unwrap()
    }

    async fn open_waiters(&self) -> usize {
        let text = self.metrics().await;
        text.lines().find_map(|l| l.strip_prefix("cbs_api_open_waiters ")).map_or(0, |v| v.trim().parse().unwrap())
    }

    /// Claims, stores and completes the build as a worker does; returns when committed.
    async fn finish(&self, queue: &Queue, key: &str, binary: &[u8]) -> Instant {
        let attempt = loop {
            if let Some(b) = queue.claim(WORKER, 10, Duration::from_secs(600)).await.unwrap().into_iter().find(|b| b.build_key == key) {
                break b.attempt;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let paths = ArtifactPaths::new(key, "linux").unwrap();
        self.storage.put_bytes(&paths.binary, Bytes::copy_from_slice(binary)).await.unwrap();
        let artifact = Artifact {
            path: paths.binary.clone(),
            file_name: "caddy".into(),
            size: binary.len() as u64,
            sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(binary)),
            signature: None,
        };
        let artifact = serde_json::to_value(&artifact).unwrap();
        let started = Instant::now();
        assert!(queue.complete(key, attempt, WORKER, &artifact).await.unwrap());
        started
    }
}

async fn only_key(db: &TestDb, expect: i64) -> String {
    let client = db.client().await;
    loop {
        let rows = client.query("SELECT build_key FROM cbs.builds ORDER BY created_at DESC", &[]).await.unwrap();
        if rows.len() as i64 == expect {
            return rows[0].get(0);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Percentile from a Prometheus histogram's cumulative buckets (upper bound of the bucket).
fn histogram_percentile(metrics: &str, name: &str, p: f64) -> f64 {
    let buckets: Vec<(f64, f64)> = metrics
        .lines()
        .filter_map(|l| l.strip_prefix(&format!("{name}_bucket{{le=\"")))
        .filter_map(|rest| {
            let (le, count) = rest.split_once("\"} ")?;
            Some((le.parse().unwrap_or(f64::INFINITY), count.trim().parse().ok()?))
        })
        .collect();
    let total = buckets.last().map_or(0.0, |b| b.1);
    buckets.iter().find(|(_, c)| *c >= total * p).map_or(f64::NAN, |b| b.0)
}

/// One compat request on its own connection, through a bare hyper client: a
/// waiter costs the bench process one task and one connection, so that the
/// client competes as little as possible with the api for the cores while ten
/// thousand responses arrive at once. Returns when the response head arrived,
/// and the body's length.
async fn wait_once(addr: std::net::SocketAddr, path: String, gate: Arc<Semaphore>) -> (Instant, usize) {
    use http_body_util::BodyExt;
    let permit = gate.acquire_owned().await.unwrap();
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.unwrap();
    let request = http::Request::get(path)
        .header(http::header::HOST, addr.to_string())
        .body(http_body_util::Empty::<Bytes>::new())
        .unwrap();
    let exchange = async move {
        let resp = sender.send_request(request);
        tokio::pin!(resp);
        // Hold the permit until the request was sent and is waiting.
        let resp = tokio::select! {
            r = &mut resp => r,
            _ = tokio::time::sleep(Duration::from_millis(200)) => { drop(permit); resp.await }
        };
        let resp = resp.unwrap();
        let at = Instant::now();
        assert_eq!(resp.status(), 200);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (at, body.len())
    };
    tokio::pin!(exchange);
    tokio::select! {
        biased;
        out = &mut exchange => out,
        end = conn => panic!("connection ended before the response: {end:?}"),
    }
}

async fn waiters(db: &TestDb, api: &Api, waiters: usize) {
    let addr: std::net::SocketAddr = api.base.trim_start_matches("http://").parse().unwrap();
    let path = "/api/compat?os=linux&arch=amd64&p=github.com/caddy-dns/cloudflare".to_string();
    let gate = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
    let rss_idle = api.rss_mb();
    let tasks: Vec<_> = (0..waiters).map(|_| tokio::spawn(wait_once(addr, path.clone(), gate.clone()))).collect();
    let key = only_key(db, 1).await;
    let lined_up = Instant::now();
    while api.open_waiters().await < waiters {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let line_up = lined_up.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_waiting = api.rss_mb();
    let binary = vec![7u8; 1024];
    let completed = api.finish(&db.queue, &key, &binary).await;
    let mut latencies = Vec::with_capacity(waiters);
    for t in futures::future::join_all(tasks).await {
        let (at, len) = t.unwrap();
        assert_eq!(len, binary.len());
        latencies.push(at.saturating_duration_since(completed));
    }
    latencies.sort();
    let metrics = api.metrics().await;
    let h = "cbs_api_wakeup_latency_seconds";
    let hp = |p| format!("≤ {:.2} ms", histogram_percentile(&metrics, h, p) * 1e3);
    println!("| {waiters} compat waiters: api wake-up (completion → waiter), p50 | {} | ≤ 5 ms |", hp(0.50));
    println!("| {waiters} compat waiters: api wake-up, p99 | {} | ≤ 50 ms |", hp(0.99));
    println!("| {waiters} compat waiters: end to end (commit → headers at client), p50 | {} | |", ms(percentile(&latencies, 0.50)));
    println!("| {waiters} compat waiters: end to end, p99 | {} | |", ms(percentile(&latencies, 0.99)));
    println!("| {waiters} compat waiters: end to end, last | {} | |", ms(*latencies.last().unwrap()));
    println!("| api resident memory: idle / {waiters} waiting | {rss_idle:.0} MB / {rss_waiting:.0} MB | ≤ 200 MB |");
    println!("| time to line up {waiters} waiters | {:.1} s | |", line_up.as_secs_f64());
}

async fn cache_hits(db: &TestDb, api: &Api, rps_duration: Duration, large_downloads: usize) {
    let http = reqwest::Client::new();
    let small_url = format!("{}/api/compat?os=linux&arch=amd64", api.base);
    let first = tokio::spawn({
        let (http, url) = (http.clone(), small_url.clone());
        async move { http.get(url).send().await.unwrap().bytes().await.unwrap() }
    });
    let key = only_key(db, 2).await;
    api.finish(&db.queue, &key, &vec![1u8; SMALL]).await;
    assert_eq!(first.await.unwrap().len(), SMALL);
    for (label, url) in [
        ("compat", small_url.clone()),
        ("by key", format!("{}/api/builds/{key}/download", api.base)),
    ] {
        let deadline = Instant::now() + rps_duration;
        let started = Instant::now();
        let counts = futures::future::join_all((0..RPS_CLIENTS).map(|_| {
            let (http, url) = (http.clone(), url.clone());
            tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let body = http.get(&url).send().await.unwrap().bytes().await.unwrap();
                    assert_eq!(body.len(), SMALL);
                    n += 1;
                }
                n
            })
        }))
        .await;
        let total: u64 = counts.into_iter().map(|c| c.unwrap()).sum();
        let rps = total as f64 / started.elapsed().as_secs_f64();
        println!("| cache-hit download of a 64 KiB artifact ({label}), {RPS_CLIENTS} clients | {rps:.0} req/s | |");
    }

    let large_url = format!("{}/api/compat?os=linux&arch=arm64", api.base);
    let first = tokio::spawn({
        let (http, url) = (http.clone(), large_url.clone());
        async move { http.get(url).send().await.unwrap().bytes().await.unwrap().len() }
    });
    let key = only_key(db, 3).await;
    let large: Vec<u8> = (0..LARGE).map(|i| (i % 253) as u8).collect();
    api.finish(&db.queue, &key, &large).await;
    assert_eq!(first.await.unwrap(), LARGE);
    let started = Instant::now();
    let mut bytes = 0usize;
    for _ in 0..large_downloads {
        let mut stream = http.get(&large_url).send().await.unwrap().bytes_stream();
        while let Some(chunk) = stream.next().await {
            bytes += chunk.unwrap().len();
        }
    }
    assert_eq!(bytes, LARGE * large_downloads);
    let mbps = bytes as f64 / 1e6 / started.elapsed().as_secs_f64();
    println!("| cache-hit download of a 40 MiB artifact, one client | {mbps:.0} MB/s | |");
}

/// The file of the comparison with nginx: the size of a Caddy with a few plugins.
const SAME_FILE: usize = 57_800_000;
/// Alternating pairs (api, nginx) per comparison; the median ratio is reported.
const PAIRS: usize = 12;
const SHARED_PAIRS: usize = 6;

/// nginx serving `root` on loopback with `sendfile on`, as a download service
/// would: the yardstick for the api's cache-hit downloads.
struct Nginx {
    child: std::process::Child,
    base: String,
    dir: support::tempdir::TempDir,
}

impl Nginx {
    /// `None` when nginx is not installed (`scripts/ensure-deps.sh --test` installs it).
    async fn start(root: &std::path::Path) -> Option<Nginx> {
        let bin = ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"].into_iter().find(|p| std::path::Path::new(p).exists())?;
        let dir = support::tempdir::TempDir::new("nginx-bench");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let d = dir.display();
        let conf = format!(
            "daemon off;\nworker_processes 2;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  access_log off;\n  sendfile on;\n  tcp_nopush on;\n  tcp_nodelay on;\n\
               default_type application/octet-stream;\n\
               client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n\
               uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
               server {{ listen 127.0.0.1:{port}; root {}; }}\n}}\n",
            root.display()
        );
        std::fs::write(dir.join("nginx.conf"), conf).unwrap();
        let child = std::process::Command::new(bin)
            .args(["-p"]).arg(dir.path()).args(["-e"]).arg(dir.join("error.log")).args(["-c"]).arg(dir.join("nginx.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let nginx = Nginx { child, base: format!("http://127.0.0.1:{port}"), dir };
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return Some(nginx);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("nginx did not start: {}", std::fs::read_to_string(nginx.dir.join("error.log")).unwrap_or_default());
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // TERM, not KILL: the master stops its workers.
        let _ = std::process::Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

/// When one download was sent, when its response head arrived, when its body ended.
struct Timing {
    sent: Instant,
    head: Instant,
    end: Instant,
}

async fn fetch_timed(http: reqwest::Client, url: String, expect: usize) -> Timing {
    let sent = Instant::now();
    let resp = http.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{url}");
    let head = Instant::now();
    let mut stream = resp.bytes_stream();
    let mut n = 0;
    while let Some(chunk) = stream.next().await {
        n += chunk.unwrap().len();
    }
    assert_eq!(n, expect, "{url}");
    Timing { sent, head, end: Instant::now() }
}

/// Bytes per second of `timings` together: from the first request sent (or,
/// `from_head`, the first head received) to the last body's end.
fn rate(timings: &[Timing], from_head: bool, bytes_each: usize) -> f64 {
    let start = timings.iter().map(|t| if from_head { t.head } else { t.sent }).min().unwrap();
    let end = timings.iter().map(|t| t.end).max().unwrap();
    (bytes_each * timings.len()) as f64 / (end - start).as_secs_f64()
}

/// `clients` downloads of `url` at once, each on its own task (started at once).
fn start_parallel(http: &reqwest::Client, url: &str, clients: usize, expect: usize) -> Vec<tokio::task::JoinHandle<Timing>> {
    (0..clients).map(|_| tokio::spawn(fetch_timed(http.clone(), url.to_string(), expect))).collect()
}

async fn joined(tasks: Vec<tokio::task::JoinHandle<Timing>>) -> Vec<Timing> {
    futures::future::join_all(tasks).await.into_iter().map(|t| t.unwrap()).collect()
}

async fn parallel(http: &reqwest::Client, url: &str, clients: usize, expect: usize) -> Vec<Timing> {
    joined(start_parallel(http, url, clients, expect)).await
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn report(label: &str, pairs: &[(f64, f64)]) {
    let api = median(pairs.iter().map(|p| p.0).collect());
    let nginx = median(pairs.iter().map(|p| p.1).collect());
    let ratio = median(pairs.iter().map(|p| p.0 / p.1).collect());
    println!(
        "| {label}: api / nginx `sendfile`, median of {} pairs | {:.2} / {:.2} GB/s = {ratio:.2}× | ≥ 0.8× |",
        pairs.len(),
        api / 1e9,
        nginx / 1e9
    );
}

/// The same 57.8 MB file from the api (`/api/builds/{key}/download`, local
/// storage; then compat waiters released by its completion, which share one
/// in-memory copy) and from nginx with `sendfile`, with the same client, in
/// alternating runs.
async fn against_nginx(db: &TestDb, api: &Api, builds_so_far: i64, pairs: usize, shared_pairs: usize) {
    let http = reqwest::Client::new();
    let file: Vec<u8> = (0..SAME_FILE).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    let url = format!("{}/api/compat?os=linux&arch=arm&arm=7", api.base);
    let first = tokio::spawn(fetch_timed(http.clone(), url, SAME_FILE));
    let key = only_key(db, builds_so_far + 1).await;
    api.finish(&db.queue, &key, &file).await;
    first.await.unwrap();
    let Some(nginx) = Nginx::start(&api.artifacts).await else {
        println!("| cached 57.8 MB download against nginx | skipped: nginx is not installed | |");
        return;
    };
    let path = ArtifactPaths::new(&key, "linux").unwrap().binary;
    let ours = format!("{}/api/builds/{key}/download", api.base);
    let theirs = format!("{}/{path}", nginx.base);
    parallel(&http, &theirs, 1, SAME_FILE).await;
    for clients in [1, 4] {
        let mut runs = Vec::with_capacity(pairs);
        for _ in 0..pairs {
            let a = rate(&parallel(&http, &ours, clients, SAME_FILE).await, false, SAME_FILE);
            let n = rate(&parallel(&http, &theirs, clients, SAME_FILE).await, false, SAME_FILE);
            runs.push((a, n));
        }
        report(&format!("cached 57.8 MB download, local storage, {clients} client(s)"), &runs);
    }
    // Waiters: each round a new build, completed with the same file while
    // `clients` compat requests wait on it; timed from the first response head,
    // as the in-memory copy is read before the waiters are released.
    let mut builds = builds_so_far + 1;
    for clients in [1, 4] {
        let mut runs = Vec::with_capacity(shared_pairs);
        for _ in 0..shared_pairs {
            let url = format!("{}/api/compat?os=linux&arch=amd64&p=example.com/p{}", api.base, builds);
            let waiting = start_parallel(&http, &url, clients, SAME_FILE);
            builds += 1;
            let key = only_key(db, builds).await;
            while api.open_waiters().await < clients {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            api.finish(&db.queue, &key, &file).await;
            let a = rate(&joined(waiting).await, true, SAME_FILE);
            let n = rate(&parallel(&http, &theirs, clients, SAME_FILE).await, true, SAME_FILE);
            runs.push((a, n));
        }
        report(&format!("57.8 MB download shared by {clients} waiter(s), in memory"), &runs);
    }
}

#[tokio::main]
async fn main() {
    let db = TestDb::new().await;
    let proxy = FakeProxy::start(default_answers(), Duration::ZERO).await;
    let api = Api::start(&db, &proxy).await;
    println!();
    println!("| api benchmark | result | target |");
    println!("|---|---|---|");
    if full_run() {
        waiters(&db, &api, WAITERS).await;
        cache_hits(&db, &api, RPS_DURATION, LARGE_DOWNLOADS).await;
        against_nginx(&db, &api, 3, PAIRS, SHARED_PAIRS).await;
    } else {
        waiters(&db, &api, SMOKE_WAITERS).await;
        cache_hits(&db, &api, SMOKE_RPS_DURATION, 1).await;
        against_nginx(&db, &api, 3, 1, 1).await;
    }
}
