//! The real binary end to end, as an operator runs it: `all` on one machine
//! answering `curl` with a working, signed Caddy; and the multi-host shape with
//! S3, where a `worker` process publishes to MinIO and separate `api` processes
//! serve the build (streaming, or redirecting to a presigned URL).

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use caddy_build_server::storage::S3Storage;
use support::db::free_port;
use support::config::ConfigYaml;
use support::spawn::Service;
use support::tempdir::TempDir;
use support::worker::{CADDY, PLUGIN, PLUGIN_MODULE_ID, PLUGIN_VERSION};

/// A cold build on two shared cores takes minutes.
const BUILD_LIMIT: Duration = Duration::from_secs(20 * 60);

async fn fresh_database() -> String {
    support::db::config_for(&support::db::empty_database("e2e").await).url
}

/// The config every process of one deployment shares; `storage` (YAML) replaces
/// the local directory when given.
fn config(dir: &Path, db_url: &str, port: u16, storage: Option<String>) -> ConfigYaml {
    let c = ConfigYaml::base(db_url, dir)
        .set("database.pool_size", caddy_build_server::config::DatabaseConfig::default().pool_size)
        .set("api.listen", format!("127.0.0.1:{port}"))
        .set("worker.work_dir", dir.join(format!("work-{port}")).display().to_string())
        .set("janitor.leader_retry", "200ms");
    match storage {
        Some(yaml) => c.merge(&yaml),
        None => c,
    }
}

/// How long a process may take to start answering `/readyz`; bounds a hang only.
const READY_LIMIT: Duration = Duration::from_secs(120);

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

/// SIGTERM; each process stops on it.
async fn stop(p: Service) {
    p.stop(Duration::from_secs(60)).await;
}

fn build_key(headers: &str) -> String {
    headers
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("x-build-key:").map(|v| v.trim().to_string()))
        .expect("X-Build-Key header")
}

#[tokio::test(flavor = "multi_thread")]
async fn all_answers_curl_with_a_working_signed_caddy() {
    let dir = TempDir::new("e2e-all");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut all = Service::spawn("all", "all", &config(dir.path(), &fresh_database().await, port, None));
    all.wait_ready(&base, READY_LIMIT).await;

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
    stop(all).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_publishes_to_s3_and_other_api_processes_serve_it() {
    let s3 = support::s3::config();
    S3Storage::new(&s3).unwrap().create_bucket_if_missing().await.unwrap();
    let storage = |redirect: bool| {
        format!(
            "storage: {{ backend: s3, s3: {{ bucket: {}, region: {}, endpoint: \"{}\", access_key: \"{}\", secret_key: \"{}\", redirect: {redirect} }} }}",
            s3.bucket, s3.region, s3.endpoint, s3.access_key, s3.secret_key
        )
    };
    let tmp = TempDir::new("e2e-s3");
    let dir = tmp.path();
    let db = fresh_database().await;
    let (p_janitor, p_worker, p_stream, p_redirect) = (free_port(), free_port(), free_port(), free_port());
    let janitor = Service::spawn("janitor", "janitor", &config(dir, &db, p_janitor, Some(storage(false))));
    let worker = Service::spawn("worker", "worker", &config(dir, &db, p_worker, Some(storage(false))));
    let mut streaming = Service::spawn("api", "api1", &config(dir, &db, p_stream, Some(storage(false))));
    let mut redirecting = Service::spawn("api", "api2", &config(dir, &db, p_redirect, Some(storage(true))));
    streaming.wait_ready(&format!("http://127.0.0.1:{p_stream}"), READY_LIMIT).await;
    redirecting.wait_ready(&format!("http://127.0.0.1:{p_redirect}"), READY_LIMIT).await;

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
        stop(p).await;
    }
}
