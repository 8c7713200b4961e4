//! Errors that name the culprit, with real Go in the builder container: a module
//! that does not exist, a plugin that does not compile against the requested
//! Caddy, and two plugins whose requirements conflict. The plugins are tiny
//! modules served by a module proxy the test controls (ahead of the real one,
//! which still serves Caddy and its dependencies; the checksum database is not
//! asked about the test's own modules).

mod support;

use std::time::Duration;

use caddy_build_server::db::BuildStatus;
use support::db::TestDb;
use support::goproxy::{Module, ModuleProxy};
use serde_json::json;
use support::worker::*;

/// Failing builds stop at resolve or at the first package that does not compile.
const LIMIT: Duration = Duration::from_secs(15 * 60);

const BROKEN_GO_MOD: &str = "module cbs.test/broken\n\ngo 1.21\n\nrequire github.com/caddyserver/caddy/v2 v2.11.9\n";
/// Uses a Caddy API that the requested release does not have.
const BROKEN_GO: &str = "package broken\n\nimport \"github.com/caddyserver/caddy/v2\"\n\nvar _ = caddy.AFunctionCaddyV2119DoesNotHave\n";

fn module<'a>(path: &'a str, version: &'a str, files: &'a [(&'a str, &'a str)]) -> Module<'a> {
    Module { path, version, files }
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_name_the_module_to_blame_first() {
    let dep_old = [("go.mod", "module cbs.test/dep\n\ngo 1.21\n"), ("dep.go", "package dep\n\nfunc Old() int { return 1 }\n")];
    let dep_new = [("go.mod", "module cbs.test/dep\n\ngo 1.21\n"), ("dep.go", "package dep\n\nfunc New() int { return 2 }\n")];
    let a = [
        ("go.mod", "module cbs.test/plugina\n\ngo 1.21\n\nrequire cbs.test/dep v1.1.0\n"),
        ("a.go", "package plugina\n\nimport \"cbs.test/dep\"\n\nvar X = dep.New()\n"),
    ];
    let b = [
        ("go.mod", "module cbs.test/pluginb\n\ngo 1.21\n\nrequire cbs.test/dep v1.0.0\n"),
        ("b.go", "package pluginb\n\nimport \"cbs.test/dep\"\n\nvar X = dep.Old()\n"),
    ];
    let broken = [("go.mod", BROKEN_GO_MOD), ("broken.go", BROKEN_GO)];
    let proxy = ModuleProxy::start(&[
        module("cbs.test/dep", "v1.0.0", &dep_old),
        module("cbs.test/dep", "v1.1.0", &dep_new),
        module("cbs.test/plugina", "v1.0.0", &a),
        module("cbs.test/pluginb", "v1.0.0", &b),
        module("cbs.test/broken", "v1.0.0", &broken),
    ])
    .await;

    let db = TestDb::new().await;
    let mut config = worker_config(&db, "w-culprit");
    config.go_proxy = format!("{},https://proxy.golang.org", proxy.url);
    config.go_nosumdb = "cbs.test".into();
    // The test's proxy listens on the host's loopback.
    config.worker.resolve_network = "host".into();
    let worker = start_worker(config);

    let spec = |plugins: &[&str]| {
        let plugins: Vec<_> = plugins.iter().map(|m| json!({"module": m, "version": "v1.0.0"})).collect();
        json!({"caddy_version": CADDY, "os": "linux", "arch": "amd64", "plugins": plugins})
    };
    let cases = [
        (spec(&["cbs.test/nonexistent"]), "cbs.test/nonexistent@v1.0.0: resolve step failed"),
        (spec(&["cbs.test/broken"]), "cbs.test/broken@v1.0.0: build step failed"),
        (
            spec(&["cbs.test/plugina", "cbs.test/pluginb"]),
            "cbs.test/pluginb@v1.0.0 and cbs.test/plugina@v1.0.0: their requirements conflict \
             (cbs.test/pluginb@v1.0.0 requires cbs.test/dep@v1.0.0, cbs.test/plugina@v1.0.0 needs cbs.test/dep@v1.1.0, \
             and the build gets v1.1.0): build step failed",
        ),
    ];
    let mut keys = Vec::new();
    for (spec, _) in &cases {
        keys.push(db.queue.submit(spec, false).await.unwrap().build_key);
    }
    for ((_, expected), key) in cases.iter().zip(&keys) {
        let done = wait_terminal(&db.queue, key, LIMIT).await;
        let error = done.error.clone().unwrap_or_default();
        assert_eq!(done.status, BuildStatus::Failed, "{error}");
        assert!(error.starts_with(expected), "expected {expected:?} first:\n{error}\nlog:\n{}", log_lines(&db.queue, key).await.join("\n"));
        assert_eq!(done.attempt, 1, "deterministic: {error}");
    }
    // Go's own words follow.
    let broken = db.queue.get(&keys[1]).await.unwrap().unwrap().error.unwrap();
    assert!(broken.contains("broken.go:5:") && broken.contains("AFunctionCaddyV2119DoesNotHave"), "{broken}");
    let pair = db.queue.get(&keys[2]).await.unwrap().unwrap().error.unwrap();
    assert!(pair.contains("undefined: dep.Old"), "{pair}");

    // The package listing marks the plugin a failure was blamed on, and only that one.
    let rows = db
        .client()
        .await
        .query("SELECT path FROM cbs.packages WHERE last_failed_at IS NOT NULL ORDER BY path", &[])
        .await
        .unwrap();
    let blamed: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(blamed, ["cbs.test/broken", "cbs.test/nonexistent"]);
    worker.stop().await;
}

/// The module zips the test's proxy serves carry this checksum.
#[test]
fn crc32_of_a_known_string() {
    assert_eq!(support::goproxy::crc32(b"123456789"), 0xCBF4_3926);
}
