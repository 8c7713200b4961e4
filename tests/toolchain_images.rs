//! Builder images made from the module proxy's Go toolchains: a worker with
//! no Go of its own builds in an image made from the toolchain zip (checked
//! against the checksum database); a request naming another Go gets a binary
//! built by that Go; unused images of other Go versions are trimmed, the
//! default's and those in use never. Real Docker, real proxy, real builds.

mod support;

use std::process::Command;
use std::time::Duration;

use caddy_build_server::config::{Config, DEFAULT_GO_VERSION};
use caddy_build_server::db::BuildStatus;
use caddy_build_server::toolchain::{GoVersion, ImageMaker};
use support::db::TestDb;
use serde_json::{json, Value};
use sha2::Digest;
use support::spawn::ServiceCommand;
use support::worker::*;

/// A cold build (a Go whose build cache is empty) on two shared cores takes minutes.
const BUILD_LIMIT: Duration = Duration::from_secs(25 * 60);
/// Another Go the module proxy serves that Caddy v2.11.9 (go 1.26.0) accepts.
const OTHER_GO: &str = "1.26.7";
const PROXY: &str = "https://proxy.golang.org";

fn docker(args: &[&str]) -> std::process::Output {
    Command::new("docker").args(args).output().expect("docker")
}

fn labels(image: &str) -> Value {
    let out = docker(&["image", "inspect", "-f", "{{json .Config.Labels}}", image]);
    assert!(out.status.success(), "{image}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn image_id(image: &str) -> String {
    String::from_utf8(docker(&["image", "inspect", "-f", "{{.Id}}", image]).stdout).unwrap().trim().to_string()
}

/// Removes this test's images (by repository) however the test ends.
struct RemoveImages(String);
impl Drop for RemoveImages {
    fn drop(&mut self) {
        let out = docker(&["images", "-q", "--no-trunc", &self.0]);
        for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let _ = docker(&["rmi", "-f", id]);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_without_go_builds_in_an_image_made_from_the_proxy_toolchain() {
    // The machine state: no `go` on the worker's PATH, no GOROOT.
    let no_go_path = "/usr/sbin:/usr/bin:/sbin:/bin";
    let found = Command::new("sh").args(["-c", "command -v go"]).env_clear().env("PATH", no_go_path).output().unwrap();
    assert!(!found.status.success(), "this test needs a PATH without go: {}", String::from_utf8_lossy(&found.stdout));

    let db = TestDb::new().await;
    let repo = format!("cbs-test-nogo-{}", std::process::id());
    let _cleanup = RemoveImages(repo.clone());
    let config = worker_yaml(&db, "w-nogo").set("worker.max_jobs", 1).set("worker.images.repository", repo.as_str()).set("go_proxy", PROXY);
    let home = scratch(&db, "home");
    let worker = ServiceCommand::new("worker", "w-nogo", &config)
        .env_clear()
        .env("PATH", no_go_path)
        .env("HOME", home.display().to_string())
        .spawn();

    let b = db.queue.submit(&caddy_spec("linux", "amd64"), false).await.unwrap();
    let done = wait_terminal(&db.queue, &b.build_key, BUILD_LIMIT).await;
    worker.stop(Duration::from_secs(120)).await;
    assert_eq!(done.status, BuildStatus::Succeeded, "error: {:?}\nlog:\n{}", done.error, log_lines(&db.queue, &b.build_key).await.join("\n"));

    // The build ran in the image the worker made, with the Go the spec names.
    let image = format!("{repo}:go{DEFAULT_GO_VERSION}");
    let p = serde_json::to_value(done.provenance.clone().unwrap()).unwrap();
    assert_eq!(p["image"], image.as_str(), "{p}");
    assert_eq!(p["image_id"], image_id(&image).as_str());
    assert_eq!(p["go_version"], format!("go{DEFAULT_GO_VERSION}"));
    assert_eq!(done.spec.go_version.as_deref(), Some(DEFAULT_GO_VERSION));

    // The image was made from the proxy's zip: its labels carry the zip's sha256
    // and h1:, and that h1: is what the checksum database records.
    let module_version = format!("v0.0.1-go{DEFAULT_GO_VERSION}.linux-amd64");
    let l = labels(&image);
    assert_eq!(l["cbs.go_version"], format!("go{DEFAULT_GO_VERSION}"));
    assert_eq!(l["cbs.toolchain"], format!("golang.org/toolchain@{module_version}"));
    let zip = reqwest::get(format!("{PROXY}/golang.org/toolchain/@v/{module_version}.zip")).await.unwrap().bytes().await.unwrap();
    assert_eq!(l["cbs.toolchain.zip_sha256"], hex::encode(sha2::Sha256::digest(&zip)));
    let zip_path = scratch(&db, "zip").join("toolchain.zip");
    std::fs::write(&zip_path, &zip).unwrap();
    let h1 = caddy_build_server::toolchain::hash_zip(&zip_path).unwrap();
    let lookup = reqwest::get(format!("{PROXY}/sumdb/sum.golang.org/lookup/golang.org/toolchain@{module_version}")).await.unwrap().text().await.unwrap();
    assert!(lookup.contains(&format!("golang.org/toolchain {module_version} {h1}\n")), "{lookup}");
    assert_eq!(l["cbs.toolchain.h1"], h1.as_str());
    assert_eq!(p["toolchain"]["h1"], h1.as_str());
    // And the Go in it is that toolchain's.
    let version = docker(&["run", "--rm", "--network", "none", &image, "go", "version"]);
    assert!(String::from_utf8_lossy(&version.stdout).starts_with(&format!("go version go{DEFAULT_GO_VERSION} linux/amd64")), "{version:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_naming_another_go_gets_a_binary_built_by_it() {
    let db = TestDb::new().await;
    let config = worker_config(&db, "w-othergo");
    let store = std::path::PathBuf::from(&config.storage.path);
    let worker = start_worker(config);
    let mut spec = caddy_spec("linux", "amd64");
    spec["go_version"] = json!(OTHER_GO);
    let b = db.queue.submit(&spec, false).await.unwrap();
    let done = wait_terminal(&db.queue, &b.build_key, BUILD_LIMIT).await;
    assert_eq!(done.status, BuildStatus::Succeeded, "error: {:?}\nlog:\n{}", done.error, log_lines(&db.queue, &b.build_key).await.join("\n"));
    let default_key = db.queue.build_key(&caddy_spec("linux", "amd64")).await.unwrap();
    assert_ne!(b.build_key, default_key, "another Go, another build");

    let p = serde_json::to_value(done.provenance.clone().unwrap()).unwrap();
    let image = format!("{}:go{OTHER_GO}", Config::default().worker.images.repository);
    assert_eq!(p["image"], image.as_str());
    assert_eq!(p["go_version"], format!("go{OTHER_GO}"), "the binary's own build information");
    // `go version -m` (the image's own Go, none on the host needed) says so too.
    let artifact = done.artifact.unwrap();
    let binary = store.join(&artifact.binary.path);
    let mount = format!("{}:/caddy:ro", binary.display());
    let out = docker(&["run", "--rm", "--network", "none", "-v", &mount, &image, "go", "version", "-m", "/caddy"]);
    let info = String::from_utf8_lossy(&out.stdout);
    assert!(info.starts_with(&format!("/caddy: go{OTHER_GO}\n")), "{info}{}", String::from_utf8_lossy(&out.stderr));
    assert!(info.contains(PLUGIN), "{info}");
    worker.stop().await;
}

/// A tiny image labelled like a builder image of Go `go` (distinct content: distinct id).
fn fake_builder_image(name: &str, go: &str) {
    let script = format!(
        "d=$(mktemp -d) && echo {name} > $d/name && tar -C $d -c name | docker import --change 'LABEL cbs.go_version=go{go}' - {name} >/dev/null; s=$?; rm -rf $d; exit $s"
    );
    let out = Command::new("sh").arg("-c").arg(&script).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test(flavor = "multi_thread")]
async fn trimming_removes_old_unused_images_and_keeps_the_default_and_those_in_use() {
    let db = TestDb::new().await;
    let repo = format!("cbs-test-trim-{}", std::process::id());
    let _cleanup = RemoveImages(repo.clone());
    let mut config = Config::default();
    config.worker.images.repository = repo.clone();
    let maker = ImageMaker::new(&config).unwrap();
    let default = GoVersion::parse(DEFAULT_GO_VERSION).unwrap();
    let name = |go: &str| format!("{repo}:go{go}");
    for go in [DEFAULT_GO_VERSION, "1.25.0", "1.25.1", "1.24.0"] {
        fake_builder_image(&name(go), go);
    }
    let host = format!("test-host-{}", std::process::id());
    // First pass: every image was made just now, nothing is old.
    let first = maker.trim(&db.queue, &host, default, Duration::from_secs(3600)).await.unwrap();
    assert_eq!((first.present, first.removed.len()), (4, 0), "{first:?}");
    // The default's, one in use and one used recently stay; the old unused one goes.
    let old = "now() - interval '2 days'";
    let client = db.client().await;
    client.execute(&format!("UPDATE cbs.builder_images SET last_used_at = {old} WHERE host = $1"), &[&host]).await.unwrap();
    db.queue.builder_image_used(&host, &name("1.25.1"), "1.25.1").await.unwrap();
    let container = format!("{repo}-in-use");
    let created = docker(&["create", "--name", &container, &name("1.24.0"), "/nothing"]);
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let second = maker.trim(&db.queue, &host, default, Duration::from_secs(3600)).await;
    let _ = docker(&["rm", "-f", &container]);
    let second = second.unwrap();
    assert_eq!(second.removed, vec![name("1.25.0")]);
    assert!(!docker(&["image", "inspect", &name("1.25.0")]).status.success(), "removed from the daemon");
    for kept in [DEFAULT_GO_VERSION, "1.25.1", "1.24.0"] {
        assert!(docker(&["image", "inspect", &name(kept)]).status.success(), "{kept} kept");
    }
    let rows: i64 = client.query_one("SELECT count(*) FROM cbs.builder_images WHERE host = $1", &[&host]).await.unwrap().get(0);
    assert_eq!(rows, 3, "the removed image's row is gone, the others stay");
}
