//! Both official download pages' request sequences against a real api and a
//! real worker (real Docker, Go, module proxy and Caddy builds): the live page
//! (`/api/packages`, then `HEAD /api/download` and the `Location` it follows)
//! for a new build and a cached one, with the package listing learning the
//! plugin's Caddy modules from the build; and the coming page (`POST
//! /api/build`, the build's events, its download) for a cached and a new spec.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use support::api::TestApi;
use caddy_build_server::phase::phases_for;
use serde_json::Value;
use support::sse::{read_events, read_events_within, Until};
use support::worker::{CADDY, PLUGIN, PLUGIN_MODULE_ID, PLUGIN_VERSION};

/// A cold build on two shared cores takes minutes.
const BUILD_LIMIT: Duration = Duration::from_secs(20 * 60);

async fn packages(api: &TestApi) -> HashMap<String, Value> {
    let body: Value = api.get("/api/packages").await.json().await.unwrap();
    body["result"].as_array().unwrap().iter().map(|p| (p["path"].as_str().unwrap().to_string(), p.clone())).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn official_pages_against_real_builds() {
    let api = TestApi::with_real_proxy().await;
    let worker = api.start_worker("w-official");

    // The live page: packages first (the plugin is in the catalog, its modules unknown yet).
    let listed = packages(&api).await;
    assert_eq!(listed[PLUGIN]["listed"], true);
    assert_eq!(listed[PLUGIN]["modules"], serde_json::json!([]));
    // Then HEAD of the download link, held until the build is done, and the Location it answers.
    let link = format!("/api/download?os=linux&arch=amd64&version={CADDY}&p={PLUGIN}@{PLUGIN_VERSION}&idempotency=7301");
    let head = tokio::time::timeout(BUILD_LIMIT, api.http.head(api.url(&link)).send()).await.unwrap().unwrap();
    assert_eq!(head.status(), 200);
    let location = head.headers()["location"].to_str().unwrap().to_string();
    let key = api.only_build_key().await;
    assert_eq!(location, format!("/api/builds/{key}/download"));
    let binary = api.get(&location).await.bytes().await.unwrap();
    assert!(binary.starts_with(b"\x7fELF") && binary.len() > 10 << 20, "{} bytes", binary.len());
    // Cached now: at once.
    let started = Instant::now();
    let again = api.http.head(api.url(&link.replace("7301", "7302"))).send().await.unwrap();
    assert_eq!(again.headers()["location"].to_str().unwrap(), location);
    // At once, not held like a build in progress; loose for a loaded machine.
    assert!(started.elapsed() < Duration::from_secs(10));

    // The listing learned the plugin's modules from the build, and counts the download.
    // Downloads are counted in batches, off the request's path.
    let listed = support::wait::until_some("the download was never counted", Duration::from_secs(30), || async {
        let listed = packages(&api).await;
        (listed[PLUGIN]["downloads"] == 1).then_some(listed)
    })
    .await;
    let p = &listed[PLUGIN];
    assert_eq!(p["downloads"], 1, "{p}");
    let names: Vec<&str> = p["modules"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(names, [PLUGIN_MODULE_ID], "{p}");
    assert_eq!((p["available"].clone(), p["published"].is_string()), (Value::Bool(true), true), "{p}");

    // The coming page: POST /api/build of the cached spec is complete at once.
    let post = |query: String| {
        let (http, url) = (api.http.clone(), api.url(&format!("/api/build?{query}")));
        async move { http.post(url).send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let cached = post(format!("os=linux&arch=amd64&version={CADDY}&p={PLUGIN}@{PLUGIN_VERSION}")).await;
    assert_eq!((cached["result"]["status"].as_str(), cached["result"]["key"].as_str()), (Some("complete"), Some(key.as_str())));
    // A new spec: the build page follows its events, then downloads.
    let started = post(format!("os=linux&arch=arm64&version={CADDY}&p={PLUGIN}@{PLUGIN_VERSION}")).await;
    assert_eq!(started["result"]["status"], "queued");
    let key = started["result"]["key"].as_str().unwrap().to_string();
    let events = read_events_within(api.get(&format!("/api/build/{key}/events")).await, Until::Event("result"), BUILD_LIMIT).await;
    let steps: Vec<&str> = events.iter().filter(|(n, _)| n == "step").map(|(_, d)| d["step"].as_str().unwrap()).collect();
    assert_eq!(steps, phases_for("linux"), "{events:?}");
    let logs: Vec<&str> = events.iter().filter(|(n, _)| n == "log").map(|(_, d)| d["line"].as_str().unwrap()).collect();
    assert!(logs.iter().any(|l| l.contains("go build")), "{logs:?}");
    assert_eq!(events.last().unwrap().1, serde_json::json!({"success": true, "error": ""}));
    // Someone who comes late gets the result at once.
    let started = Instant::now();
    let late = read_events(api.get(&format!("/api/build/{key}/events")).await, Until::Event("result")).await;
    // At once, not held like a build in progress; loose for a loaded machine.
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(late.last(), events.last());
    let head = api.http.head(api.url(&format!("/api/build/{key}/download"))).send().await.unwrap();
    assert_eq!(head.status(), 200);
    let arm = api.get(&format!("/api/build/{key}/download")).await.bytes().await.unwrap();
    assert_eq!(head.headers()["content-length"].to_str().unwrap(), arm.len().to_string());
    assert!(arm.starts_with(b"\x7fELF"));
    worker.stop().await;
}
