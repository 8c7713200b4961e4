//! The real binary end to end, as an operator runs it: `all` on one machine
//! answering `curl` with a working, signed Caddy; and the multi-host shape with
//! S3, where a `worker` process publishes to MinIO and separate `api` processes
//! serve the build (streaming, or redirecting to a presigned URL).

mod common;
mod s3_common;
mod worker_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use caddy_build_server::storage::S3Storage;
use common::free_port;
use worker_support::{CADDY, GOBUILD_VOLUME, GOMOD_VOLUME, PLUGIN, PLUGIN_MODULE_ID, PLUGIN_VERSION};

/// A cold build on two shared cores takes minutes.
const BUILD_LIMIT: Duration = Duration::from_secs(20 * 60);

async fn fresh_database() -> String {
    common::config_for(&common::empty_database("e2e").await).url
}

fn temp_dir(what: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cbs-e2e-{what}-{}", rand::random::<u32>()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The config every process of one deployment shares; `storage` replaces the
/// local directory when given.
fn config(dir: &Path, db_url: &str, port: u16, storage: Option<String>) -> PathBuf {
    let local = format!("storage: {{ path: \"{}\" }}", dir.join("artifacts").display());
    let storage = storage.unwrap_or(local);
    let yaml = format!(
        r#"database: {{ url: "{db_url}" }}
api: {{ listen: "127.0.0.1:{port}" }}
{storage}
signing: {{ secret_key_path: "{dir}/minisign.key", public_key_path: "{dir}/minisign.pub" }}
worker: {{ work_dir: "{dir}/work-{port}", gomod_cache_volume: {GOMOD_VOLUME}, gobuild_cache_volume: {GOBUILD_VOLUME} }}
janitor: {{ leader_retry: 200ms }}
prebuild: {{ enabled: false }}
"#,
        dir = dir.display(),
    );
    let path = dir.join(format!("config-{port}.yml"));
    std::fs::write(&path, yaml).unwrap();
    path
}

struct Process(tokio::process::Child);

impl Process {
    fn start(config: &Path, role: &str, log: &Path) -> Process {
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_caddy-build-server"))
            .arg("--config")
            .arg(config)
            .arg(role)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(log).unwrap())
            .stderr(std::fs::File::create(log.with_extension("err")).unwrap())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        Process(child)
    }

    async fn stop(mut self) {
        let pid = self.0.id().unwrap().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        tokio::time::timeout(Duration::from_secs(30), self.0.wait()).await.expect("stops on SIGTERM").unwrap();
    }
}

async fn wait_ready(port: u16) {
    for _ in 0..600 {
        if reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await.is_ok_and(|r| r.status() == 200) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("api on {port} never became ready");
}

/// `curl` as a user runs it; returns the response headers.
fn curl(url: &str, out: &Path) -> String {
    let headers = out.with_extension("headers");
    let status = Command::new("curl")
        .args(["-fsSL", "--max-time", &BUILD_LIMIT.as_secs().to_string(), "-D"])
        .arg(&headers)
        .arg("-o")
        .arg(out)
        .arg(url)
        .status()
        .unwrap();
    assert!(status.success(), "curl {url} failed: {status}");
    std::fs::read_to_string(headers).unwrap()
}

/// Runs the downloaded binary: it must list the plugin's module.
fn assert_working_caddy(binary: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(binary, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new(binary).args(["list-modules", "--versions"]).output().unwrap();
    let modules = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && modules.contains(PLUGIN_MODULE_ID), "{modules}");
}

fn build_key(headers: &str) -> String {
    headers
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("x-build-key:").map(|v| v.trim().to_string()))
        .expect("X-Build-Key header")
}

#[tokio::test(flavor = "multi_thread")]
async fn all_answers_curl_with_a_working_signed_caddy() {
    let dir = temp_dir("all");
    let port = free_port();
    let cfg = config(&dir, &fresh_database().await, port, None);
    let all = Process::start(&cfg, "all", &dir.join("all.log"));
    wait_ready(port).await;

    let base = format!("http://127.0.0.1:{port}");
    let caddy = dir.join("caddy");
    let headers = curl(&format!("{base}/api/compat?os=linux&arch=amd64&version={CADDY}&p={PLUGIN}@{PLUGIN_VERSION}"), &caddy);
    assert_working_caddy(&caddy);

    // The signature verifies with the real minisign tool and the served public key.
    let key = build_key(&headers);
    curl(&format!("{base}/api/builds/{key}/signature"), &dir.join("caddy.minisig"));
    curl(&format!("{base}/api/signing-key"), &dir.join("server.pub"));
    let verify = Command::new("minisign").arg("-Vm").arg(&caddy).arg("-p").arg(dir.join("server.pub")).output().unwrap();
    assert!(verify.status.success(), "{verify:?}");
    // The web page of the build shows it succeeded.
    let page = reqwest::get(format!("{base}/builds/{key}")).await.unwrap().text().await.unwrap();
    assert!(page.contains("succeeded"), "{page}");
    all.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_publishes_to_s3_and_other_api_processes_serve_it() {
    let s3 = s3_common::config();
    S3Storage::new(&s3).unwrap().create_bucket_if_missing().await.unwrap();
    let storage = |redirect: bool| {
        format!(
            "storage: {{ backend: s3, s3: {{ bucket: {}, region: {}, endpoint: \"{}\", access_key: \"{}\", secret_key: \"{}\", redirect: {redirect} }} }}",
            s3.bucket, s3.region, s3.endpoint, s3.access_key, s3.secret_key
        )
    };
    let dir = temp_dir("s3");
    let db = fresh_database().await;
    let (p_janitor, p_worker, p_stream, p_redirect) = (free_port(), free_port(), free_port(), free_port());
    let janitor = Process::start(&config(&dir, &db, p_janitor, Some(storage(false))), "janitor", &dir.join("janitor.log"));
    let worker = Process::start(&config(&dir, &db, p_worker, Some(storage(false))), "worker", &dir.join("worker.log"));
    let streaming = Process::start(&config(&dir, &db, p_stream, Some(storage(false))), "api", &dir.join("api1.log"));
    let redirecting = Process::start(&config(&dir, &db, p_redirect, Some(storage(true))), "api", &dir.join("api2.log"));
    wait_ready(p_stream).await;
    wait_ready(p_redirect).await;

    let query = format!("api/compat?os=linux&arch=amd64&version={CADDY}&p={PLUGIN}@{PLUGIN_VERSION}");
    let first = dir.join("caddy-streamed");
    let headers = curl(&format!("http://127.0.0.1:{p_stream}/{query}"), &first);
    assert_working_caddy(&first);

    // The other api answers with a redirect to a presigned S3 URL; curl follows it.
    let resp = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("http://127.0.0.1:{p_redirect}/{query}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with(&s3.endpoint) && location.contains("X-Amz-Signature"), "{location}");
    let second = dir.join("caddy-redirected");
    curl(&format!("http://127.0.0.1:{p_redirect}/{query}"), &second);
    assert_eq!(std::fs::read(&first).unwrap(), std::fs::read(&second).unwrap());
    assert_eq!(build_key(&headers).len(), 64);

    for p in [redirecting, streaming, worker, janitor] {
        p.stop().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}
