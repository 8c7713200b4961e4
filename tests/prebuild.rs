//! Prebuilding against a real database and a module proxy the test controls (a
//! directory in the module cache's `cache/download` layout): request counting
//! and the popular-spec ranking, the configured spec queued once on a fresh
//! start through the real janitor (not again on restart), and a Caddy release
//! appearing at the proxy prebuilt for the popular specs, built for real.

mod support;

use std::sync::Arc;
use std::time::Duration;

use caddy_build_server::config::{host_platform, PrebuildConfig, PrebuildSpec};
use caddy_build_server::db::{BuildStatus, Priority, Submitter};
use caddy_build_server::gomod::Resolver;
use caddy_build_server::janitor::{self, job::Job, prebuild::Prebuilder};
use support::db::{spec, TestDb};
use support::goproxy::dir::DirProxy;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use support::worker::*;

const CADDY_PATH: &str = "github.com/caddyserver/caddy/v2";
const FAKE_PLUGIN: &str = "github.com/example/dns";
const DAY: Duration = Duration::from_secs(24 * 3600);
/// A build on warm shared caches takes well under a minute; a cold one (the first
/// test on a fresh machine) minutes on two shared cores.
const BUILD_LIMIT: Duration = Duration::from_secs(20 * 60);

fn caddy_spec_at(version: &str, plugins: &[(&str, &str)], arch: &str) -> Value {
    let mut s = spec(plugins);
    s["caddy_version"] = json!(version);
    s["arch"] = json!(arch);
    s
}

async fn request(db: &TestDb, spec: &Value, times: usize) -> String {
    let mut key = String::new();
    for _ in 0..times {
        key = db.queue.submit(spec, false).await.unwrap().build_key;
    }
    key
}

/// A proxy under the test's scratch directory.
async fn proxy(db: &TestDb) -> DirProxy {
    DirProxy::start(&scratch(db, "goproxy")).await
}

fn prebuilder(db: &TestDb, proxy: &DirProxy, config: PrebuildConfig) -> Prebuilder {
    Prebuilder::new(db.queue.clone(), Resolver::new(&proxy.url, Duration::ZERO), config, "test-janitor")
}

fn watch_only(top_n: u32) -> PrebuildConfig {
    PrebuildConfig { specs: Vec::new(), top_n, ..PrebuildConfig::default() }
}

async fn prebuilds(db: &TestDb) -> Vec<Value> {
    serde_json::from_value(db.queue.prebuild_overview(100).await.unwrap()).unwrap()
}

/// (priority, client) of a build, as the claim order sees them.
async fn priority_and_client(db: &TestDb, key: &str) -> (String, Option<String>) {
    let row = db.client().await.query_one("SELECT priority, client FROM cbs.builds WHERE build_key = $1", &[&key]).await.unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test]
async fn popular_specs_rank_requests_of_the_window_and_pick_the_top_n() {
    let db = TestDb::new().await;
    let (a, b, c) = (support::db::nth_spec(1), support::db::nth_spec(2), support::db::nth_spec(3));
    let key_a = request(&db, &a, 3).await;
    let key_b = request(&db, &b, 5).await;
    let key_c = request(&db, &c, 1).await;
    // Background submits (prebuilds, reproductions) are not demand.
    let background = Submitter { client: None, limits: None, priority: Priority::Background };
    for _ in 0..10 {
        db.queue.submit_as(&support::db::nth_spec(4), false, background).await.unwrap();
    }
    // Forty days ago c was the most requested spec of all: outside the window.
    db.client()
        .await
        .execute("INSERT INTO cbs.spec_requests (build_key, day, requests) VALUES ($1, current_date - 40, 100)", &[&key_c])
        .await
        .unwrap();

    let top = db.queue.popular_specs(2, 30 * DAY).await.unwrap();
    let ranked: Vec<(&str, i64)> = top.iter().map(|p| (p.build_key.as_str(), p.requests)).collect();
    assert_eq!(ranked, [(key_b.as_str(), 5), (key_a.as_str(), 3)]);
    assert_eq!(json!(top[0].spec.plugins), b["plugins"]);
    let all: Vec<String> = db.queue.popular_specs(10, 30 * DAY).await.unwrap().into_iter().map(|p| p.build_key).collect();
    assert_eq!(all, [key_b.clone(), key_a, key_c.clone()], "the background-only spec is not popular");
    assert_eq!(db.queue.popular_specs(10, 50 * DAY).await.unwrap()[0].build_key, key_c, "a longer window sees the old requests");

    assert_eq!(db.queue.prune_spec_requests(30 * DAY).await.unwrap(), 1, "the day outside the window is forgotten");
    assert_eq!(db.queue.popular_specs(10, 50 * DAY).await.unwrap()[0].build_key, key_b);
}

#[tokio::test]
async fn a_prebuild_never_runs_ahead_of_a_waiting_request() {
    let db = TestDb::new().await;
    let proxy = proxy(&db).await;
    proxy.set_versions(CADDY_PATH, &["v2.11.9"]);
    let config = PrebuildConfig { specs: vec![PrebuildSpec { arch: "arm64".into(), os: "linux".into(), ..PrebuildSpec::default() }], ..watch_only(10) };
    prebuilder(&db, &proxy, config).run_once().await.unwrap();
    let prebuilt = prebuilds(&db).await[0]["build_key"].as_str().unwrap().to_string();
    // The request comes later, yet is claimed first.
    let requested = request(&db, &support::db::nth_spec(1), 1).await;
    let claimed = db.queue.claim("w", 1, Duration::from_secs(60)).await.unwrap();
    assert_eq!(claimed[0].build_key, requested);
    assert_eq!(db.queue.claim("w", 1, Duration::from_secs(60)).await.unwrap()[0].build_key, prebuilt);
}

#[tokio::test]
async fn a_fresh_start_queues_the_configured_spec_once() {
    let db = TestDb::new().await;
    let proxy = proxy(&db).await;
    proxy.set_versions(CADDY_PATH, &["v2.11.8", "v2.11.9", "v2.12.0-beta.1"]);

    // The real janitor with the default prebuild config: plain newest Caddy for this host.
    let yaml = format!("go_proxy: {}\nprebuild:\n  watch_interval: 1s\n", proxy.url);
    let config = Arc::new(support::janitor::janitor_config(&db.config, "fresh", &yaml));
    assert_eq!(config.prebuild.specs, PrebuildConfig::default().specs);
    let stop = CancellationToken::new();
    let task = tokio::spawn(janitor::run(config.clone(), stop.clone()));
    let rows = support::wait::until_some("no prebuild queued", Duration::from_secs(30), || async {
        Some(prebuilds(&db).await).filter(|rows| !rows.is_empty())
    })
    .await;
    // A few more polls (every second) change nothing.
    let polls = proxy.hits(&format!("{CADDY_PATH}/@v/list"));
    support::wait::until("the janitor stopped polling the proxy", Duration::from_secs(30), || async {
        proxy.hits(&format!("{CADDY_PATH}/@v/list")) >= polls + 2
    })
    .await;
    stop.cancel();
    task.await.unwrap().unwrap();

    assert_eq!(prebuilds(&db).await.len(), 1);
    let p = &rows[0];
    assert_eq!((p["reason"].as_str(), p["status"].as_str()), (Some("configured"), Some("queued")));
    let key = p["build_key"].as_str().unwrap();
    let build = db.queue.get(key).await.unwrap().unwrap();
    let (os, arch) = host_platform();
    let spec = json!({"caddy_version": "v2.11.9", "os": os, "arch": arch, "plugins": [], "replacements": [],
                      "go_version": "1.26.8", "tags": ["nobadger", "nomysql", "nopgx"]});
    assert_eq!(serde_json::to_value(&build.spec).unwrap(), spec, "the newest release, not the beta, with the workers' Go and xcaddy's tags");
    assert_eq!(priority_and_client(&db, key).await, ("background".into(), None), "background work, charged to no client");
    assert_eq!(db.queue.popular_specs(10, 30 * DAY).await.unwrap(), [], "a prebuild is not a request");

    // A restart queues nothing: the spec exists.
    let counts = prebuilder(&db, &proxy, config.prebuild.clone()).run_once().await.unwrap();
    assert!(counts.is_empty(), "{counts}");
    // Nor once it is finished and gone from the queue (cancelled here, to build nothing).
    db.queue.cancel(key, "test").await.unwrap();
    assert!(prebuilder(&db, &proxy, config.prebuild.clone()).run_once().await.unwrap().is_empty());
    assert_eq!(prebuilds(&db).await.len(), 1);
    // The admin page shows it with its reason.
    let overview = db.queue.admin_overview().await.unwrap();
    assert_eq!((overview["prebuilds"][0]["build_key"].as_str(), overview["prebuilds"][0]["reason"].as_str()), (Some(key), Some("configured")));

    // Once retention deleted the build and the window passed, the record goes and the spec is prebuilt again.
    let client = db.client().await;
    client.execute("UPDATE cbs.prebuilds SET queued_at = now() - interval '31 days'", &[]).await.unwrap();
    assert_eq!(db.queue.prune_prebuilds(30 * DAY).await.unwrap(), 0, "its build still exists");
    db.queue.delete_builds(&[key.to_string()]).await.unwrap();
    let counts = prebuilder(&db, &proxy, config.prebuild.clone()).run_once().await.unwrap();
    assert_eq!((counts.get("prebuild_records_pruned"), counts.get("configured_queued")), (1, 1), "{counts}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_caddy_release_at_the_proxy_prebuilds_the_popular_specs() {
    let db = TestDb::new().await;
    let proxy = proxy(&db).await;
    proxy.set_versions(CADDY_PATH, &["v2.11.7", "v2.11.8"]);
    proxy.set_versions(PLUGIN, &[PLUGIN_VERSION]);
    proxy.set_versions(FAKE_PLUGIN, &["v1.0.0"]);
    // Three specs requested on Caddy v2.11.8 (cancelled: nothing builds them here).
    let with_plugin = request(&db, &caddy_spec_at("v2.11.8", &[(PLUGIN, PLUGIN_VERSION)], "amd64"), 3).await;
    let with_fake = request(&db, &caddy_spec_at("v2.11.8", &[(FAKE_PLUGIN, "v1.0.0")], "amd64"), 2).await;
    let third = request(&db, &caddy_spec_at("v2.11.8", &[], "arm64"), 1).await;
    for key in [&with_plugin, &with_fake, &third] {
        db.queue.cancel(key, "test").await.unwrap();
    }
    let watcher = prebuilder(&db, &proxy, watch_only(2));
    assert!(watcher.run_once().await.unwrap().is_empty(), "every popular spec is on the newest release");

    // Caddy v2.11.9 appears (and a pre-release, ignored), and a release of the fake plugin.
    proxy.publish(CADDY_PATH, "v2.11.9");
    proxy.publish(CADDY_PATH, "v2.12.0-rc.1");
    proxy.publish(FAKE_PLUGIN, "v1.1.0");
    let counts = watcher.run_once().await.unwrap();
    assert_eq!(counts.get("caddy_release_queued"), 2, "the top 2 of 3 popular specs: {counts}");

    let rows = prebuilds(&db).await;
    let of = |source: &str| rows.iter().find(|r| r["source_key"] == source).unwrap_or_else(|| panic!("no prebuild from {source}: {rows:?}"));
    assert!(rows.iter().all(|r| r["source_key"] != third.as_str()), "the third spec is not in the top 2");
    let fake = of(&with_fake);
    assert_eq!(fake["detail"], json!({"caddy": {"from": "v2.11.8", "to": "v2.11.9"}, "plugins": [{"module": FAKE_PLUGIN, "from": "v1.0.0", "to": "v1.1.0"}]}));
    // The fake plugin cannot build: out of the worker's way.
    db.queue.cancel(fake["build_key"].as_str().unwrap(), "test").await.unwrap();
    let real = of(&with_plugin);
    assert_eq!((real["reason"].as_str(), real["source_requests"].as_i64()), (Some("caddy_release"), Some(3)));
    assert_eq!(real["detail"], json!({"caddy": {"from": "v2.11.8", "to": "v2.11.9"}}));
    let key = real["build_key"].as_str().unwrap().to_string();
    assert_eq!(key, db.queue.build_key(&caddy_spec("linux", "amd64")).await.unwrap(), "v2.11.9 with the same plugin");
    assert_eq!(priority_and_client(&db, &key).await, ("background".into(), None));

    // It builds for real and the record shows it ready.
    let worker = start_worker(worker_config(&db, "w-prebuild"));
    let done = wait_terminal(&db.queue, &key, BUILD_LIMIT).await;
    worker.stop().await;
    assert_eq!(done.status, BuildStatus::Succeeded, "{:?}\n{}", done.error, log_lines(&db.queue, &key).await.join("\n"));
    let row = prebuilds(&db).await.into_iter().find(|r| r["build_key"] == key.as_str()).unwrap();
    assert_eq!(row["status"], "succeeded");
    assert!(row["ready_after"].is_string(), "{row}");
    assert!(watcher.run_once().await.unwrap().is_empty(), "each release is prebuilt once");
}
