//! Real Caddy builds end to end: a worker, a real Docker engine, the real Go
//! toolchain and module proxy, real Caddy. One worker per test database.

mod support;

use std::time::Duration;

use caddy_build_server::db::BuildStatus;
use caddy_build_server::storage::Artifact;
use support::db::TestDb;
use support::worker::*;

/// The resolve step's line when its attempt from the module cache alone fell short.
const VIA_PROXY: &str = "resolve: not every module is in the cache: resolving through the module proxy";
/// A cold build (empty caches) on two shared cores takes minutes.
const BUILD_LIMIT: Duration = Duration::from_secs(20 * 60);

#[tokio::test(flavor = "multi_thread")]
async fn builds_caddy_with_a_plugin_and_records_provenance() {
    let db = TestDb::new().await;
    let config = worker_config(&db, "w-build");
    let store = std::path::PathBuf::from(&config.storage.path);
    let config_signing_pub = config.signing.public_key_path.clone();
    let worker = start_worker(config);
    let b = db.queue.submit(&caddy_spec("linux", "amd64"), false).await.unwrap();
    let done = wait_terminal(&db.queue, &b.build_key, BUILD_LIMIT).await;
    assert_eq!(done.status, BuildStatus::Succeeded, "error: {:?}\nlog:\n{}", done.error, log_lines(&db.queue, &b.build_key).await.join("\n"));

    let artifact: Artifact = done.artifact.clone().unwrap().binary;
    assert_eq!(artifact.file_name, "caddy");
    let binary = store.join(&artifact.path);
    // The signature beside the binary verifies with the minisign tool and the worker's public key.
    assert_eq!(artifact.signature.as_deref(), Some(format!("builds/{}/{}/caddy.minisig", &b.build_key[..2], b.build_key).as_str()));
    let verify = std::process::Command::new("minisign")
        .arg("-Vm").arg(&binary)
        .arg("-x").arg(store.join(artifact.signature.as_ref().unwrap()))
        .arg("-p").arg(&config_signing_pub)
        .output()
        .unwrap();
    assert!(verify.status.success(), "{verify:?}");
    assert_eq!(artifact.path, format!("builds/{}/{}/caddy", &b.build_key[..2], b.build_key));
    let (sha, size) = caddy_build_server::worker::sha256_file(&binary).await.unwrap();
    assert_eq!((sha.clone(), size), (artifact.sha256.clone(), artifact.size));
    let sum = std::fs::read_to_string(store.join(format!("builds/{}/{}/caddy.sha256", &b.build_key[..2], b.build_key))).unwrap();
    assert_eq!(sum, format!("{sha}  caddy\n"));

    // The binary runs here and lists the plugin's module (a copy: storage keeps no exec bit).
    let binary = {
        use std::os::unix::fs::PermissionsExt;
        let run = scratch(&db, "run").join("caddy");
        std::fs::copy(&binary, &run).unwrap();
        std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o755)).unwrap();
        run
    };
    let out = std::process::Command::new(&binary).args(["list-modules", "--versions"]).output().unwrap();
    let modules = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && modules.contains(PLUGIN_MODULE_ID), "{modules}");
    let version = std::process::Command::new(&binary).arg("version").output().unwrap();
    assert!(String::from_utf8_lossy(&version.stdout).starts_with(CADDY), "{version:?}");

    // Provenance: the resolved go.mod/go.sum, the toolchain and the image.
    let p = serde_json::to_value(done.provenance.clone().expect("provenance recorded")).unwrap();
    assert!(p["go_mod"].as_str().unwrap().contains(&format!("{PLUGIN} {PLUGIN_VERSION}")), "{p}");
    assert!(p["go_mod"].as_str().unwrap().contains(&format!("github.com/caddyserver/caddy/v2 {CADDY}")), "{p}");
    assert!(p["go_sum"].as_str().unwrap().contains(PLUGIN), "{p}");
    assert!(p["go_version"].as_str().unwrap().starts_with("go1."), "{p}");
    assert_eq!(p["image"], default_builder_image_name());
    assert_eq!(p["go_version"], format!("go{}", caddy_build_server::config::DEFAULT_GO_VERSION));
    assert!(p["toolchain"]["h1"].as_str().unwrap().starts_with("h1:"), "{p}");
    assert!(p["image_id"].as_str().unwrap().starts_with("sha256:"), "{p}");
    assert!(serde_json::to_value(done.artifact.unwrap()).unwrap().get("provenance").is_none(), "provenance is kept apart from the artifact");
    // The Caddy modules the plugin adds, as verify's list-modules named them.
    assert_eq!(p["modules"], serde_json::json!({PLUGIN: [PLUGIN_MODULE_ID]}), "{p}");

    // Every phase of the official step names started, in order, as a phase line
    // (resolve through the proxy after the cache alone fell short announces its own again).
    let lines = db.queue.logs_after(&b.build_key, 0, 100_000).await.unwrap();
    let mut progress = caddy_build_server::phase::Progress::default();
    let phases: Vec<&str> =
        lines.iter().filter(|l| l.stream == "system" && progress.starts(l.attempt, &l.line)).map(|l| l.line.as_str()).collect();
    assert_eq!(phases, caddy_build_server::phase::phases_for("linux"), "{phases:?}");
    assert!(!lines.iter().any(|l| l.line.starts_with(caddy_build_server::phase::MARKER)), "markers become phase lines");

    // Output of every step reached the log, and no container is left.
    let log = log_lines(&db.queue, &b.build_key).await;
    for l in log.iter().filter(|l| l.contains("step exited with status")) {
        println!("{l}");
    }
    println!("submit → succeeded: {:?}", done.finished_at.unwrap() - done.created_at);
    for step in ["resolve:", "build:", "verify:", "worker:"] {
        assert!(log.iter().any(|l| l.starts_with(step)), "no {step} lines in\n{}", log.join("\n"));
    }
    assert!(log.iter().any(|l| l.starts_with("verify:") && l.contains(PLUGIN_MODULE_ID)));
    // Rebuilt with every module now in the cache, resolve does without the module proxy.
    let via_proxy = log.iter().filter(|l| *l == VIA_PROXY).count();
    db.queue.requeue(&b.build_key).await.unwrap();
    let again = wait_terminal(&db.queue, &b.build_key, BUILD_LIMIT).await;
    // Attempt numbers only grow: the rebuild is the second attempt.
    assert_eq!((again.status, again.attempt), (BuildStatus::Succeeded, 2), "{:?}", again.error);
    let log = log_lines(&db.queue, &b.build_key).await;
    assert_eq!(log.iter().filter(|l| *l == VIA_PROXY).count(), via_proxy, "{}", log.join("\n"));
    assert!(log.iter().filter(|l| l.starts_with("resolve:") && l.contains("step exited with status 0")).count() >= 2);

    // A spare sandbox (one container per step) waits for the next claim; stopping removes it.
    wait_idle_with_spare(&db.queue, &b.build_key, Duration::from_secs(15)).await;
    assert_eq!(running_spare_containers(&db.queue).await.len(), 3);
    worker.stop().await;
    assert!(running_spare_containers(&db.queue).await.is_empty(), "a stopped worker leaves no spare");
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_plugin_fails_at_once_quoting_go() {
    let db = TestDb::new().await;
    let worker = start_worker(worker_config(&db, "w-unknown"));
    let spec = serde_json::json!({
        "caddy_version": CADDY, "os": "linux", "arch": "amd64",
        "plugins": [{"module": "github.com/caddy-dns/no-such-plugin-cbs", "version": "v1.0.0"}],
    });
    let b = db.queue.submit(&spec, false).await.unwrap();
    let done = wait_terminal(&db.queue, &b.build_key, Duration::from_secs(600)).await;
    assert_eq!(done.status, BuildStatus::Failed);
    assert_eq!(done.attempt, 1, "a deterministic failure is not retried");
    let error = done.error.unwrap();
    assert!(error.starts_with("github.com/caddy-dns/no-such-plugin-cbs@v1.0.0: resolve step failed"), "names the module first: {error}");
    assert!(error.contains("go: ") && error.contains("github.com/caddy-dns/no-such-plugin-cbs"), "Go's own words: {error}");
    // The proxy's answer, not that of the first attempt from the module cache alone.
    assert!(!error.contains("GOPROXY=off"), "{error}");
    let log = log_lines(&db.queue, &b.build_key).await;
    assert!(log.iter().any(|l| l == VIA_PROXY), "{}", log.join("\n"));
    wait_no_containers(&db.queue, &b.build_key, Duration::from_secs(15)).await;
    worker.stop().await;
}

/// ELF e_machine of the file (little-endian ELF only).
fn elf_machine(bytes: &[u8]) -> Option<u16> {
    (bytes.len() > 20 && &bytes[..4] == b"\x7fELF" && bytes[5] == 1).then(|| u16::from_le_bytes([bytes[18], bytes[19]]))
}

/// PE machine field of a Windows executable.
fn pe_machine(bytes: &[u8]) -> Option<u16> {
    if bytes.len() < 0x40 || &bytes[..2] != b"MZ" {
        return None;
    }
    let off = u32::from_le_bytes(bytes[0x3c..0x40].try_into().unwrap()) as usize;
    (bytes.get(off..off + 4)? == b"PE\0\0").then(|| u16::from_le_bytes([bytes[off + 4], bytes[off + 5]]))
}

#[tokio::test(flavor = "multi_thread")]
async fn cross_compiles_linux_arm64_and_windows_amd64() {
    const EM_AARCH64: u16 = 0xb7;
    const IMAGE_FILE_MACHINE_AMD64: u16 = 0x8664;
    let db = TestDb::new().await;
    let config = worker_config(&db, "w-cross");
    let store = std::path::PathBuf::from(&config.storage.path);
    let worker = start_worker(config);
    let arm = db.queue.submit(&caddy_spec("linux", "arm64"), false).await.unwrap();
    let win = db.queue.submit(&caddy_spec("windows", "amd64"), false).await.unwrap();
    for (b, file_name) in [(&arm, "caddy"), (&win, "caddy.exe")] {
        let done = wait_terminal(&db.queue, &b.build_key, BUILD_LIMIT).await;
        assert_eq!(done.status, BuildStatus::Succeeded, "{:?}", done.error);
        let artifact: Artifact = done.artifact.unwrap().binary;
        assert_eq!(artifact.file_name, file_name);
        let bytes = std::fs::read(store.join(&artifact.path)).unwrap();
        if file_name == "caddy" {
            assert_eq!(elf_machine(&bytes), Some(EM_AARCH64), "an aarch64 ELF");
        } else {
            assert_eq!(pe_machine(&bytes), Some(IMAGE_FILE_MACHINE_AMD64), "an x86-64 PE");
        }
        // Not runnable here: no verify step, but the build and resolve ran.
        let log = log_lines(&db.queue, &b.build_key).await;
        assert!(!log.iter().any(|l| l.starts_with("verify:")), "verify only runs binaries this host can run");
    }
    worker.stop().await;
}
