//! The official download service's protocol, as its web pages speak it, against
//! a real api (the worker's side done through the real SQL functions): the live
//! page's `HEAD /api/download` and the `Location` it follows, the streaming API
//! (`POST /api/build`, its events, its download) and the package listing.

mod support;

use std::time::{Duration, Instant};

use support::api::{error_message, TestApi, WORKER};
use caddy_build_server::config::{S3Config, StorageBackend};
use caddy_build_server::db::LogLine;
use caddy_build_server::phase::phases_for;
use caddy_build_server::config::CatalogEntry;
use serde_json::{json, Value};
use support::sse::{read_events, Until};

const CLOUDFLARE: &str = "github.com/caddy-dns/cloudflare";
const BINARY: &[u8] = b"\x7fELF pretend caddy";

/// The live page's download link (it adds a random idempotency key).
fn live_link(plugins: &str) -> String {
    format!("/api/download?os=linux&arch=amd64&{plugins}&idempotency=48151623")
}

fn stdout(step: &str, line: &str) -> LogLine {
    LogLine { step: step.into(), stream: "stdout".into(), line: line.into() }
}

fn phase(step: &str, name: &str) -> LogLine {
    LogLine { step: step.into(), stream: "system".into(), line: name.into() }
}

async fn append(api: &TestApi, key: &str, attempt: i32, lines: &[LogLine]) {
    assert_eq!(api.queue().append_logs(key, attempt, WORKER, lines).await.unwrap() as usize, lines.len());
}

/// Starts a build through the streaming API; its status and key.
async fn post_build(api: &TestApi, query: &str) -> (u16, String, String) {
    let resp = api.http.post(api.url(&format!("/api/build?{query}"))).send().await.unwrap();
    let code = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    let result = &body["result"];
    (code, result["status"].as_str().unwrap().to_string(), result["key"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn live_page_head_then_location_for_a_new_build_and_a_cached_one() {
    let api = TestApi::start().await;
    let link = live_link(&format!("p={CLOUDFLARE}"));
    // A new build: the HEAD waits for it, then says where the binary is.
    let (head, key) = api.waiting(api.http.head(api.url(&link))).await;
    api.succeed(&key, BINARY).await;
    let head = head.await.unwrap();
    assert_eq!(head.status(), 200);
    let location = head.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(location, format!("/api/builds/{key}/download"), "the content-addressed download URL");
    let got = api.get(&location).await;
    assert_eq!(got.status(), 200);
    assert_eq!(got.headers()["content-disposition"], "attachment; filename=\"caddy\"");
    assert_eq!(&got.bytes().await.unwrap()[..], BINARY);

    // A cached build: at once, with another idempotency key, and for GET too.
    let started = Instant::now();
    let again = api.http.head(api.url(&link.replace("48151623", "42"))).send().await.unwrap();
    // At once, not held like a build in progress (the wait limit is 30 s);
    // the bound is that loose because the machine may be loaded.
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!((again.status().as_u16(), again.headers()["location"].to_str().unwrap()), (200, location.as_str()));
    let get = api.get(&link).await;
    assert_eq!(get.headers()["location"].to_str().unwrap(), location);
    assert_eq!(&get.bytes().await.unwrap()[..], BINARY);

    // A failed build answers with its error (what the page reports), without Location.
    let failing = live_link("p=example.com/p7");
    let head = api.spawn(api.http.head(api.url(&failing)));
    let key = wait_for_new_build(&api, &[key]).await;
    api.fail(&key, "example.com/p7@v1.0.0: build step failed (exit status 1):\nx.go:1: undefined: y").await;
    let head = head.await.unwrap();
    assert_eq!(head.status(), 422);
    assert!(head.headers().get("location").is_none());
}

#[tokio::test]
async fn live_page_head_gets_our_location_where_get_redirects_to_presigned_storage() {
    let (_, s3) = support::s3::storage().await;
    let api = TestApi::start_with(|c| {
        c.storage.backend = StorageBackend::S3;
        c.storage.s3 = S3Config { redirect: true, ..s3 };
    })
    .await;
    let link = live_link(&format!("p={CLOUDFLARE}"));
    let (head, key) = api.waiting(api.http.head(api.url(&link))).await;
    // Completed with a record only: presigning needs no object.
    api.succeed(&key, BINARY).await;
    let head = head.await.unwrap();
    // Followed by the page's XMLHttpRequest, a redirect would end at storage, whose
    // answer it may not read; so the HEAD itself answers with our URL.
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["location"].to_str().unwrap(), format!("/api/builds/{key}/download"));
    let get = api.get(&link).await;
    assert_eq!(get.status(), 302);
    assert!(get.headers()["location"].to_str().unwrap().contains("X-Amz-Signature"));
}

/// The key of the one build that is not among `known`.
async fn wait_for_new_build(api: &TestApi, known: &[String]) -> String {
    let client = api.db.client().await;
    support::wait::until_some("no new build", Duration::from_secs(30), || async {
        let rows = client.query("SELECT build_key FROM cbs.builds", &[]).await.unwrap();
        rows.iter().map(|r| r.get::<_, String>(0)).find(|k| !known.contains(k))
    })
    .await
}

#[tokio::test]
async fn streaming_api_from_post_through_events_to_download() {
    let api = TestApi::start().await;
    let query = format!("os=linux&arch=amd64&p={CLOUDFLARE}@v0.2.1");
    let (code, status, key) = post_build(&api, &query).await;
    assert_eq!((code, status.as_str(), key.len()), (202, "queued", 64));
    let (_, status, same) = post_build(&api, &query).await;
    assert_eq!((status.as_str(), same.as_str()), ("queued", key.as_str()), "same spec, same build");
    let ours: Value = api.get(&format!("/api/builds/{key}")).await.json().await.unwrap();
    assert_eq!(ours["spec"]["plugins"][0]["module"], CLOUDFLARE, "the same build our REST API shows");

    let events_url = format!("/api/build/{key}/events");
    let live = api.get(&events_url).await;
    assert_eq!(live.headers()["content-type"], "text/event-stream");
    let live = tokio::spawn(read_events(live, Until::Event("result")));
    let attempt = api.claim(&key).await;
    append(&api, &key, attempt, &[phase("worker", "create_environment"), stdout("worker", "building caddy")]).await;
    append(&api, &key, attempt, &[phase("resolve", "initialize_module"), stdout("resolve", "go: creating new go.mod: module caddy")]).await;
    append(&api, &key, attempt, &[phase("resolve", "pin_versions")]).await;
    // The resolve step's second try (through the module proxy) announces its phases again.
    append(&api, &key, attempt, &[phase("resolve", "initialize_module"), phase("resolve", "pin_versions"), phase("resolve", "tidy_module")]).await;
    append(&api, &key, attempt, &[phase("worker", "compile"), stdout("build", "+ go build")]).await;
    append(&api, &key, attempt, &[phase("worker", "cleanup"), stdout("verify", "dns.providers.cloudflare v0.2.1")]).await;
    api.publish(&key, attempt, BINARY, None).await;

    let events = live.await.unwrap();
    let steps: Vec<&str> = events.iter().filter(|(n, _)| n == "step").map(|(_, d)| d["step"].as_str().unwrap()).collect();
    assert_eq!(steps, phases_for("linux"), "each step once, in order");
    let logs: Vec<&str> = events.iter().filter(|(n, _)| n == "log").map(|(_, d)| d["line"].as_str().unwrap()).collect();
    assert_eq!(logs, ["building caddy", "go: creating new go.mod: module caddy", "+ go build", "dns.providers.cloudflare v0.2.1"]);
    assert_eq!(events.last().unwrap(), &("result".to_string(), json!({"success": true, "error": ""})));
    let position = |name: &str, step: &str| events.iter().position(|(n, d)| n == name && (d["step"] == step || d["line"] == step)).unwrap();
    assert!(position("step", "compile") < position("log", "+ go build"), "a step is sent when it starts");

    // A late subscriber gets the history and the result at once.
    let started = Instant::now();
    let late = read_events(api.get(&events_url).await, Until::Event("result")).await;
    // At once, not held like a build in progress (the wait limit is 30 s);
    // the bound is that loose because the machine may be loaded.
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(late, events);
    // One that reconnects after the first step gets what followed it.
    let resumed = api.http.get(api.url(&events_url)).header("last-event-id", first_id(&api, &key).await.to_string()).send().await.unwrap();
    assert_eq!(read_events(resumed, Until::Event("result")).await, events[1..]);

    let head = api.http.head(api.url(&format!("/api/build/{key}/download"))).send().await.unwrap();
    assert_eq!((head.status().as_u16(), head.headers()["content-length"].to_str().unwrap()), (200, BINARY.len().to_string().as_str()));
    assert_eq!(&api.get(&format!("/api/build/{key}/download")).await.bytes().await.unwrap()[..], BINARY);
    let (code, status, cached) = post_build(&api, &query).await;
    assert_eq!((code, status.as_str(), cached), (200, "complete", key));
}

/// The id of the build's first log line.
async fn first_id(api: &TestApi, key: &str) -> i64 {
    api.queue().logs_after(key, 0, 1).await.unwrap()[0].id
}

#[tokio::test]
async fn a_failure_reaches_every_client_in_the_same_words() {
    let api = TestApi::start().await;
    let query = "os=linux&arch=amd64&p=example.com/p3";
    let (_, _, key) = post_build(&api, query).await;
    let error = "example.com/p3@v1.0.0: build step failed (exit status 1):\n# example.com/p3\n/cache/gomod/example.com/p3@v1.0.0/p.go:3:5: undefined: caddy.Gone";
    let live = tokio::spawn(read_events(api.get(&format!("/api/build/{key}/events")).await, Until::Event("result")));
    api.fail(&key, error).await;
    let events = live.await.unwrap();
    assert_eq!(events.last().unwrap(), &("result".to_string(), json!({"success": false, "error": error})));
    let status: Value = api.get(&format!("/api/builds/{key}")).await.json().await.unwrap();
    assert_eq!(status["error"], error);
    let compat = api.get(&format!("/api/compat?{query}")).await;
    assert_eq!(error_message(compat, 422).await, error, "what caddy add-package prints");
    let (code, status, same) = post_build(&api, query).await;
    assert_eq!((code, status.as_str(), same.as_str()), (200, "failed", key.as_str()));
    let page = api.get(&format!("/builds/{key}")).await.text().await.unwrap();
    assert!(page.contains("p3@v1.0.0: build step failed"), "the build page shows it");

    // Bad input is refused in the official error shape ({"error": {"message"}}).
    let bad = api.http.post(api.url("/api/build?os=plan9&arch=amd64")).send().await.unwrap();
    assert!(error_message(bad, 400).await.contains("plan9"));
    error_message(api.get(&format!("/api/build/{}/events", "0".repeat(64))).await, 404).await;
}

#[tokio::test]
async fn packages_from_the_catalog_and_from_builds_with_modules_downloads_and_availability() {
    let api = TestApi::start_with(|c| {
        c.catalog = vec![
            CatalogEntry { module: CLOUDFLARE.into(), description: "Cloudflare DNS".into() },
            CatalogEntry { module: "example.com/p2".into(), description: "A catalog plugin".into() },
        ];
    })
    .await;
    let listed = packages(&api).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    let cf = &listed[CLOUDFLARE];
    assert_eq!(cf["id"], CLOUDFLARE);
    assert_eq!(cf["repo"], "https://github.com/caddy-dns/cloudflare");
    assert_eq!((cf["listed"].clone(), cf["available"].clone(), cf["downloads"].clone()), (json!(true), json!(true), json!(0)));
    assert_eq!((cf["published"].clone(), cf["modules"].clone()), (Value::Null, json!([])));

    // A build with a catalog plugin and another one; the worker listed their modules.
    let (_, _, key) = post_build(&api, &format!("os=linux&arch=amd64&p={CLOUDFLARE}@v0.2.1&p=example.com/p1")).await;
    let attempt = api.claim(&key).await;
    let modules = json!({"modules": {CLOUDFLARE: ["dns.providers.cloudflare"], "example.com/p1": []}});
    api.publish_with_provenance(&key, attempt, BINARY, None, modules).await;
    // Three downloads; HEAD, ranges and revalidations are not downloads.
    let query = format!("/api/compat?os=linux&arch=amd64&p={CLOUDFLARE}@v0.2.1&p=example.com/p1");
    for path in [query.as_str(), &format!("/api/builds/{key}/download"), &format!("/api/build/{key}/download")] {
        assert_eq!(api.get(path).await.status(), 200);
    }
    api.http.head(api.url(&query)).send().await.unwrap();
    let ranged = api.http.get(api.url(&query)).header("range", "bytes=0-3").send().await.unwrap();
    assert_eq!(ranged.status(), 206);

    let listed = wait_for_downloads(&api, CLOUDFLARE, 3).await;
    let cf = &listed[CLOUDFLARE];
    assert_eq!(cf["modules"], json!([{"name": "dns.providers.cloudflare", "docs": "", "package": CLOUDFLARE,
                                      "repo": "https://github.com/caddy-dns/cloudflare"}]));
    assert!(cf["published"].as_str().unwrap().starts_with("20"), "{cf}");
    let p1 = &listed["example.com/p1"];
    assert_eq!((p1["listed"].clone(), p1["downloads"].clone(), p1["modules"].clone()), (json!(false), json!(3), json!([])));
    assert_eq!(p1["repo"], "https://pkg.go.dev/example.com/p1");
    let downloads: i64 = api.db.client().await.query_one("SELECT download_count FROM cbs.builds WHERE build_key = $1", &[&key]).await.unwrap().get(0);
    assert_eq!(downloads, 3);
    let order: Vec<String> = packages_in_order(&api).await.iter().map(|p| p["path"].as_str().unwrap().to_string()).collect();
    assert_eq!(order[2], "example.com/p2", "most downloaded first: {order:?}");

    // A failure blamed on a plugin makes it unavailable until it builds again;
    // one that blames nobody in particular changes nothing, and a plugin that
    // never built and is not in the catalog is not listed.
    let (_, _, failed) = post_build(&api, "os=linux&arch=amd64&p=example.com/p2").await;
    api.fail(&failed, "example.com/p2@v1.0.0: build step failed (exit status 1):\n...").await;
    let (_, _, other) = post_build(&api, "os=linux&arch=amd64&p=example.com/p4").await;
    api.fail(&other, "resolve step failed (exit status 1):\ngo: dial tcp: i/o timeout").await;
    let listed = packages(&api).await;
    assert_eq!(listed["example.com/p2"]["available"], false);
    assert!(!listed.contains_key("example.com/p4"));
    let (_, _, fixed) = post_build(&api, "os=linux&arch=arm64&p=example.com/p2").await;
    api.succeed(&fixed, BINARY).await;
    assert_eq!(packages(&api).await["example.com/p2"]["available"], true);
    error_message(api.http.post(api.url("/api/packages")).send().await.unwrap(), 405).await;
}

/// `/api/packages`, by path.
async fn packages(api: &TestApi) -> std::collections::HashMap<String, Value> {
    packages_in_order(api).await.into_iter().map(|p| (p["path"].as_str().unwrap().to_string(), p)).collect()
}

async fn packages_in_order(api: &TestApi) -> Vec<Value> {
    let resp = api.get("/api/packages").await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    body["result"].as_array().unwrap().clone()
}

/// The listing once `path` has `n` downloads (they are written in batches).
async fn wait_for_downloads(api: &TestApi, path: &str, n: i64) -> std::collections::HashMap<String, Value> {
    support::wait::until_some(&format!("{path} never had {n} downloads"), Duration::from_secs(30), || async {
        let listed = packages(api).await;
        (listed[path]["downloads"] == n).then_some(listed)
    })
    .await
}
