//! Our binaries are xcaddy's, byte for byte: a real api and worker build a spec
//! (real Docker, Go, module proxy, Caddy), and xcaddy v0.4.5, installed from
//! the module proxy and run on this host with the builder image's Go (copied
//! out of the image: the host needs no Go), runs the command
//! the build's status JSON names. Both must give the same sha256, for
//! linux/amd64 and for windows/amd64 (whose binary carries xcaddy's version
//! resource). A spec with other tags is another build whose binary records them,
//! and xcaddy given them through `XCADDY_GO_BUILD_FLAGS` makes the same bytes.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::api::TestApi;
use serde_json::{json, Value};
use support::worker::{log_lines, scratch, CADDY, PLUGIN, PLUGIN_VERSION};

/// A cold build on two shared cores takes minutes; this bounds a stuck test only.
const BUILD_LIMIT: Duration = Duration::from_secs(40 * 60);

fn go(goroot: &Path) -> Command {
    let mut c = Command::new(goroot.join("bin/go"));
    clean_env(&mut c);
    c
}

/// Nothing of this process's Go or xcaddy settings reaches the commands run here.
fn clean_env(c: &mut Command) {
    for (k, _) in std::env::vars() {
        if k.starts_with("GO") || k.starts_with("XCADDY_") || k.starts_with("CGO_") || k == "CADDY_VERSION" {
            c.env_remove(&k);
        }
    }
    c.env("GOPROXY", caddy_build_server::config::Config::default().go_proxy);
}

/// The Go version of the builder image's toolchain (the default Go of a build).
fn go_version(goroot: &Path) -> String {
    let out = go(goroot).args(["env", "GOVERSION"]).output().expect("the builder image's go");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// xcaddy v0.4.5 from the module proxy, installed once (per test binary) into a
/// directory shared by runs (Cargo's temp dir for tests).
fn install_xcaddy(goroot: &Path) -> PathBuf {
    static INSTALLED: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    INSTALLED.get_or_init(|| go_install_xcaddy(goroot)).clone()
}

fn go_install_xcaddy(goroot: &Path) -> PathBuf {
    let bin = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cbs-xcaddy-{}", caddy_build_server::xcaddy::VERSION));
    let module = format!("{}/cmd/xcaddy@{}", caddy_build_server::xcaddy::MODULE, caddy_build_server::xcaddy::VERSION);
    let out = go(goroot).args(["install", &module]).env("GOBIN", &bin).output().expect("go install");
    assert!(out.status.success(), "go install {module}: {}", String::from_utf8_lossy(&out.stderr));
    bin
}

/// Runs the status JSON's xcaddy command as a shell would, in a directory of its
/// own; returns the binary it wrote (`./caddy` or `./caddy.exe`, xcaddy's default).
fn run_xcaddy(command: &str, dir: &Path, file_name: &str, goroot: &Path) -> PathBuf {
    let xcaddy_bin = install_xcaddy(goroot);
    std::fs::create_dir_all(dir).unwrap();
    let mut c = Command::new("/bin/sh");
    clean_env(&mut c);
    let path = format!("{}:{}:/usr/bin:/bin", xcaddy_bin.display(), goroot.join("bin").display());
    let out = c.arg("-c").arg(command).current_dir(dir).env("PATH", path).output().expect("run xcaddy");
    assert!(out.status.success(), "{command}:\n{}", String::from_utf8_lossy(&out.stderr));
    dir.join(file_name)
}

fn sha256_of(path: &Path) -> (String, u64) {
    use sha2::Digest;
    let bytes = std::fs::read(path).unwrap();
    (hex::encode(sha2::Sha256::digest(&bytes)), bytes.len() as u64)
}

async fn submit(api: &TestApi, spec: &Value) -> String {
    let resp = api.http.post(api.url("/api/builds")).json(spec).send().await.unwrap();
    assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
    resp.json::<Value>().await.unwrap()["build_key"].as_str().unwrap().to_string()
}

/// The status JSON once the build succeeded (long-polls; fails the test on a failed build).
async fn succeeded(api: &TestApi, key: &str) -> Value {
    let start = Instant::now();
    loop {
        let v: Value = api.get(&format!("/api/builds/{key}?wait=60s")).await.json().await.unwrap();
        match v["status"].as_str().unwrap() {
            "succeeded" => return v,
            "failed" | "cancelled" => {
                panic!("build {key} {}: {}\n{}", v["status"], v["error"], log_lines(api.queue(), key).await.join("\n"))
            }
            _ => assert!(start.elapsed() < BUILD_LIMIT, "build {key} not done after {BUILD_LIMIT:?}"),
        }
    }
}

/// Our stored binary of a succeeded build.
fn artifact_path(api: &TestApi, key: &str, file_name: &str) -> PathBuf {
    Path::new(&api.config.storage.path).join(format!("builds/{}/{key}/{file_name}", &key[..2]))
}

/// How long the build step took, as the build's log recorded it.
async fn build_step_time(api: &TestApi, key: &str) -> String {
    let log = log_lines(api.queue(), key).await;
    log.iter().rfind(|l| l.starts_with("build: build step exited")).cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn binaries_are_byte_identical_to_xcaddys_for_linux_and_windows() {
    let goroot = support::go::goroot().await;
    let go_version = go_version(&goroot);
    let api = TestApi::with_real_proxy().await;
    let worker = api.start_worker("w-xcaddy");
    let targets = [("linux", "caddy"), ("windows", "caddy.exe")];
    let mut keys = Vec::new();
    for (os, _) in targets {
        let spec = json!({"caddy_version": CADDY, "os": os, "arch": "amd64", "plugins": [{"module": PLUGIN, "version": PLUGIN_VERSION}]});
        keys.push(submit(&api, &spec).await);
    }
    // xcaddy builds on the host meanwhile, from the commands the queued builds show.
    let mut commands = Vec::new();
    for ((os, _), key) in targets.iter().zip(&keys) {
        let v: Value = api.get(&format!("/api/builds/{key}")).await.json().await.unwrap();
        let command = v["xcaddy_command"].as_str().unwrap().to_string();
        assert_eq!(
            command,
            format!("GOTOOLCHAIN={go_version} GOOS={os} GOARCH=amd64 xcaddy build {CADDY} --with {PLUGIN}@{PLUGIN_VERSION}")
        );
        commands.push(command);
    }
    let dir = scratch(&api.db, "xcaddy");
    let xcaddy = {
        let (commands, dir, goroot) = (commands.clone(), dir.clone(), goroot.clone());
        tokio::task::spawn_blocking(move || {
            targets.iter().zip(&commands).map(|((os, file), c)| run_xcaddy(c, &dir.join(os), file, &goroot)).collect::<Vec<_>>()
        })
    };
    let mut ours = Vec::new();
    for ((_, file), key) in targets.iter().zip(&keys) {
        let v = succeeded(&api, key).await;
        // Built with the image's Go, so the command still names it (now from the provenance).
        assert_eq!(v["xcaddy_command"], commands[ours.len()].as_str());
        let path = artifact_path(&api, key, file);
        assert_eq!(sha256_of(&path).0, v["artifact"]["sha256"].as_str().unwrap());
        ours.push(path);
    }
    let theirs = xcaddy.await.unwrap();
    for (((os, _), key), (ours, theirs)) in targets.iter().zip(&keys).zip(ours.iter().zip(&theirs)) {
        let (a, b) = (sha256_of(ours), sha256_of(theirs));
        println!("{os}/amd64: ours {} bytes sha256 {}; xcaddy {} bytes sha256 {}; {}", a.1, a.0, b.1, b.0, build_step_time(&api, key).await);
        assert_eq!(a, b, "{os}/amd64: our binary differs from xcaddy's");
    }
    // The Windows binary carries xcaddy's version resource (UTF-16 strings in .rsrc).
    let exe = std::fs::read(&theirs[1]).unwrap();
    let needle: Vec<u8> = "The Caddy Authors".encode_utf16().flat_map(u16::to_le_bytes).collect();
    assert!(memchr::memmem::find(&exe, &needle).is_some(), "no version resource in caddy.exe");
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn other_tags_are_another_build_whose_binary_records_them() {
    let goroot = support::go::goroot().await;
    let go_version = go_version(&goroot);
    let api = TestApi::with_real_proxy().await;
    let worker = api.start_worker("w-tags");
    let default = json!({"caddy_version": CADDY, "os": "linux", "arch": "amd64", "plugins": [{"module": PLUGIN, "version": PLUGIN_VERSION}]});
    let mut tagged = default.clone();
    tagged["tags"] = json!(["nomysql", "nobadger"]);
    let key = submit(&api, &tagged).await;
    assert_ne!(key, api.queue().build_key(&default).await.unwrap(), "other tags, other key");
    let queued: Value = api.get(&format!("/api/builds/{key}")).await.json().await.unwrap();
    let command = queued["xcaddy_command"].as_str().unwrap().to_string();
    assert_eq!(
        command,
        format!(
            "GOTOOLCHAIN={go_version} GOOS=linux GOARCH=amd64 XCADDY_GO_BUILD_FLAGS='-ldflags \"-w -s\" -trimpath -tags nobadger,nomysql' \
             xcaddy build {CADDY} --with {PLUGIN}@{PLUGIN_VERSION}"
        )
    );
    // xcaddy, given those flags instead of its own, makes the same bytes.
    let xcaddy = {
        let (command, dir, goroot) = (command.clone(), scratch(&api.db, "xcaddy-tags"), goroot.clone());
        tokio::task::spawn_blocking(move || run_xcaddy(&command, &dir, "caddy", &goroot))
    };
    let v = succeeded(&api, &key).await;
    assert_eq!(v["spec"]["tags"], json!(["nobadger", "nomysql"]));
    assert_eq!(v["xcaddy_command"], command.as_str());
    // `go version -m` on the binary lists the tags it was built with.
    let ours = artifact_path(&api, &key, "caddy");
    let out = go(&goroot).args(["version", "-m"]).arg(&ours).output().unwrap();
    let info = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && info.lines().any(|l| l.trim() == "build\t-tags=nobadger,nomysql"), "{info}");
    assert!(info.lines().any(|l| l.trim() == "build\t-trimpath=true") && info.contains("CGO_ENABLED=0"), "{info}");
    let (a, b) = (sha256_of(&ours), sha256_of(&xcaddy.await.unwrap()));
    println!("tags nobadger,nomysql: ours {} bytes sha256 {}; xcaddy {} bytes sha256 {}; {}", a.1, a.0, b.1, b.0, build_step_time(&api, &key).await);
    assert_eq!(a, b, "with other tags, our binary differs from xcaddy's");
    worker.stop().await;
}
