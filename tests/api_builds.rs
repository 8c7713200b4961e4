//! The REST endpoints: submit, status with long-polling, download, checksum and
//! signature, the SSE log, health, readiness, metrics and the OpenAPI document.

mod support;

use std::time::{Duration, Instant};

use support::api::{error_message, TestApi, WORKER};
use caddy_build_server::db::{BuildStatus, LogLine};
use caddy_build_server::outbound::AllowList;
use serde_json::{json, Value};
use support::sse::{read_events, Until};

fn line(text: &str) -> LogLine {
    LogLine { step: "build".into(), stream: "stdout".into(), line: text.into() }
}

#[tokio::test]
async fn submit_poll_download_and_log() {
    let api = TestApi::start().await;
    let body = json!({"os": "linux", "arch": "arm", "caddy_version": "v2.10",
                      "plugins": [{"module": "github.com/caddy-dns/cloudflare", "version": "v0.1"}]});
    let resp = api.http.post(api.url("/api/builds")).json(&body).send().await.unwrap();
    assert_eq!(resp.status(), 202);
    let b: Value = resp.json().await.unwrap();
    let key = b["build_key"].as_str().unwrap().to_string();
    assert_eq!(key.len(), 64);
    assert_eq!(b["status"], "queued");
    assert_eq!(b["spec"]["caddy_version"], "v2.10.2");
    assert_eq!(b["spec"]["plugins"][0]["version"], "v0.1.0");
    assert_eq!(b["spec"]["arm"], "7", "arch=arm defaults to GOARM 7");
    assert_eq!(b["links"]["download"], format!("/api/builds/{key}/download"));

    let started = Instant::now();
    let polled: Value = api.get(&format!("/api/builds/{key}?wait=300ms")).await.json().await.unwrap();
    assert_eq!(polled["status"], "queued");
    assert!(started.elapsed() >= Duration::from_millis(300));
    error_message(api.get(&format!("/api/builds/{key}?wait=soon")).await, 400).await;
    error_message(api.get(&format!("/api/builds/{key}/download")).await, 409).await;

    let long_poll = tokio::spawn({
        let (http, url) = (api.http.clone(), api.url(&format!("/api/builds/{key}?wait=30s")));
        async move { http.get(url).send().await.unwrap().json::<Value>().await.unwrap() }
    });
    let attempt = api.claim(&key).await;
    api.queue().append_logs(&key, attempt, WORKER, &[line("one"), line("two")]).await.unwrap();
    let log = api.get(&format!("/api/builds/{key}/log")).await;
    assert_eq!(log.headers()["content-type"], "text/event-stream");
    let follower = tokio::spawn(read_events(log, Until::Event("end")));
    // Most likely lets "three" arrive live rather than from the backlog; the
    // stream holds every line either way, so no event is needed here.
    tokio::time::sleep(Duration::from_millis(200)).await;
    api.queue().append_logs(&key, attempt, WORKER, &[line("three")]).await.unwrap();
    api.wait_for_waiters(1).await;
    assert!(!long_poll.is_finished(), "the long poll waits for the build");
    let artifact = api.publish(&key, attempt, b"arm binary", Some(b"untrusted comment: sig\nRWQ...")).await;

    let done = tokio::time::timeout(Duration::from_secs(5), long_poll).await.unwrap().unwrap();
    assert_eq!(done["status"], "succeeded");
    assert_eq!(done["artifact"]["sha256"], artifact.sha256);
    assert_eq!(done["artifact"]["signed"], true);
    let events = follower.await.unwrap();
    let lines: Vec<_> = events.iter().filter(|(n, _)| n == "log").map(|(_, d)| d["line"].as_str().unwrap()).collect();
    assert_eq!(lines, ["one", "two", "three"]);
    assert_eq!(events.last().unwrap().0, "end");
    assert_eq!(events.last().unwrap().1["status"], "succeeded");

    // Replay after the end, and resumption after Last-Event-ID.
    let replay = read_events(api.get(&format!("/api/builds/{key}/log")).await, Until::Event("end")).await;
    assert_eq!(replay.len(), 4);
    let first_id = replay[0].1["id"].as_i64().unwrap();
    let resumed = api.http.get(api.url(&format!("/api/builds/{key}/log"))).header("last-event-id", first_id.to_string()).send().await.unwrap();
    assert_eq!(read_events(resumed, Until::Event("end")).await.len(), 3);

    let again = api.http.post(api.url("/api/builds")).json(&body).send().await.unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(again.json::<Value>().await.unwrap()["build_key"], key.as_str());
    let sig = api.get(&format!("/api/builds/{key}/signature")).await;
    assert_eq!(sig.status(), 200);
    assert_eq!(&sig.bytes().await.unwrap()[..], b"untrusted comment: sig\nRWQ...");
    let bin = api.get(&format!("/api/builds/{key}/download")).await;
    assert_eq!(&bin.bytes().await.unwrap()[..], b"arm binary");
}

#[tokio::test]
async fn unsigned_build_has_no_signature_and_failed_build_can_be_forced() {
    let api = TestApi::start().await;
    let body = json!({"os": "darwin", "arch": "arm64"});
    let b: Value = api.http.post(api.url("/api/builds")).json(&body).send().await.unwrap().json().await.unwrap();
    let key = b["build_key"].as_str().unwrap().to_string();
    api.succeed(&key, b"mac").await;
    let message = error_message(api.get(&format!("/api/builds/{key}/signature")).await, 404).await;
    assert!(message.contains("no signature"), "{message}");

    let body = json!({"os": "freebsd", "arch": "amd64"});
    let b: Value = api.http.post(api.url("/api/builds")).json(&body).send().await.unwrap().json().await.unwrap();
    let key = b["build_key"].as_str().unwrap().to_string();
    api.fail(&key, "compile error").await;
    let failed: Value = api.get(&format!("/api/builds/{key}")).await.json().await.unwrap();
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["error"], "compile error");
    let forced = api.http.post(api.url("/api/builds")).json(&json!({"os": "freebsd", "arch": "amd64", "force": true})).send().await.unwrap();
    assert_eq!(forced.status(), 202);
    assert_eq!(forced.json::<Value>().await.unwrap()["status"], "queued");
}

#[tokio::test]
async fn health_readiness_metrics_and_openapi() {
    let api = TestApi::start().await;
    assert_eq!(api.get("/healthz").await.json::<Value>().await.unwrap()["status"], "ok");
    let ready = api.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    assert_eq!(api.get(&format!("/api/builds/{}", "1".repeat(64))).await.status(), 404);
    let metrics = api.get("/metrics").await.text().await.unwrap();
    for name in [
        "cbs_api_http_requests_total{route=\"/api/builds/{key}\",method=\"GET\",status=\"404\"} 1",
        "cbs_api_open_waiters 0",
        "cbs_api_wakeup_latency_seconds_bucket",
        "cbs_api_version_cache_hits_total",
    ] {
        assert!(metrics.contains(name), "{name} missing from:\n{metrics}");
    }
    let doc: Value = api.get("/api/openapi.json").await.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.0.3");
    for path in ["/api/compat", "/api/download", "/api/builds", "/api/builds/{key}", "/api/builds/{key}/download",
                 "/api/builds/{key}/sha256", "/api/builds/{key}/signature", "/api/builds/{key}/log",
                 "/api/builds/{key}/sbom.cdx.json", "/api/builds/{key}/sbom.spdx.json", "/api/builds/{key}/provenance.json",
                 "/api/builds/{key}/sbom.cdx.json.minisig", "/api/builds/{key}/provenance.json.minisig",
                 "/healthz", "/readyz", "/metrics", "/api/openapi.json"] {
        assert!(doc["paths"][path].is_object(), "{path} is not documented");
    }

    // Readiness follows the database: a database that goes away makes it 503.
    let admin = support::db::admin_client().await;
    admin
        .execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", &[&api.db.name])
        .await
        .unwrap();
    admin.batch_execute(&format!("ALTER DATABASE {} ALLOW_CONNECTIONS false", api.db.name)).await.unwrap();
    admin
        .execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", &[&api.db.name])
        .await
        .unwrap();
    let unready = tokio::time::timeout(
        Duration::from_secs(30),
        support::wait::until_some("", Duration::from_secs(3600), || async { Some(api.get("/readyz").await).filter(|r| r.status() == 503) }),
    )
    .await;
    admin.batch_execute(&format!("ALTER DATABASE {} ALLOW_CONNECTIONS true", api.db.name)).await.unwrap();
    error_message(unready.expect("readyz stayed 200 without a database"), 503).await;
}

#[tokio::test]
async fn callback_url_is_recorded_for_delivery_and_a_bad_one_stores_nothing() {
    // The receiver is on loopback: allowed explicitly, as an operator would.
    let api = TestApi::start_with(|c| c.janitor.webhooks.allow = AllowList::parse(["127.0.0.1"]).unwrap()).await;
    let bad = json!({"os": "linux", "arch": "amd64", "callback_url": "ftp://hooks.example/x"});
    let message = error_message(api.http.post(api.url("/api/builds")).json(&bad).send().await.unwrap(), 400).await;
    assert!(message.contains("callback_url"), "{message}");
    assert_eq!(api.build_count().await, 0, "a rejected request stores no build");

    let good = json!({"os": "linux", "arch": "amd64", "callback_url": "http://127.0.0.1:9/hook"});
    let b: Value = api.http.post(api.url("/api/builds")).json(&good).send().await.unwrap().json().await.unwrap();
    let key = b["build_key"].as_str().unwrap();
    let row = api.db.client().await
        .query_one("SELECT url FROM cbs.webhook_deliveries WHERE build_key = $1", &[&key])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "http://127.0.0.1:9/hook");
}

/// A succeeded build whose binary is gone from storage is built again: the
/// request that finds it missing queues it (503, retry), the next one waits for it.
#[tokio::test]
async fn a_build_whose_binary_is_gone_is_built_again() {
    let api = TestApi::start().await;
    let compat = "/api/compat?os=linux&arch=amd64&version=v2.10.2&p=example.com/p1";
    let (first, key) = api.waiting_get(compat).await;
    let artifact = api.succeed(&key, b"first binary").await;
    assert_eq!(first.await.unwrap().bytes().await.unwrap().as_ref(), b"first binary");

    std::fs::remove_file(api.storage_dir.join(&artifact.path)).unwrap();
    let lost = api.get(compat).await;
    assert!(lost.headers().contains_key("retry-after"));
    let m = error_message(lost, 503).await;
    assert!(m.contains("missing from storage") && m.contains("built again"), "{m}");
    let b = api.queue().get(&key).await.unwrap().unwrap();
    assert_eq!(b.status, BuildStatus::Queued, "queued again, not 404 for good");

    let again = api.spawn(api.http.get(api.url(compat)));
    api.wait_for_waiters(1).await;
    api.succeed(&key, b"second binary").await;
    assert_eq!(again.await.unwrap().bytes().await.unwrap().as_ref(), b"second binary");
    assert_eq!(api.get(&format!("/api/builds/{key}/download")).await.status(), 200);
}

/// The status JSON names the xcaddy command that makes the same binary: the
/// target, the tags when they are not xcaddy's defaults, and the Go version the
/// build recorded, or the configured one before it ran.
#[tokio::test]
async fn status_shows_the_xcaddy_command() {
    let api = TestApi::start_with(|c| c.worker.go_version = "1.26.7".into()).await;
    let body = json!({"os": "linux", "arch": "arm", "arm": "6", "caddy_version": "v2.10.2", "tags": ["nomysql", "nobadger"],
                      "plugins": [{"module": "github.com/caddy-dns/cloudflare", "version": "v0.2.1"}]});
    let b: Value = api.http.post(api.url("/api/builds")).json(&body).send().await.unwrap().json().await.unwrap();
    let key = b["build_key"].as_str().unwrap().to_string();
    assert_eq!(b["spec"]["tags"], json!(["nobadger", "nomysql"]));
    assert_eq!(
        b["xcaddy_command"],
        "GOTOOLCHAIN=go1.26.7 GOOS=linux GOARCH=arm GOARM=6 XCADDY_GO_BUILD_FLAGS='-ldflags \"-w -s\" -trimpath -tags nobadger,nomysql' \
         xcaddy build v2.10.2 --with github.com/caddy-dns/cloudflare@v0.2.1"
    );
    let attempt = api.claim(&key).await;
    api.publish_with_provenance(&key, attempt, b"binary", None, json!({"go_version": "go1.26.8"})).await;
    let done: Value = api.get(&format!("/api/builds/{key}")).await.json().await.unwrap();
    assert!(done["xcaddy_command"].as_str().unwrap().starts_with("GOTOOLCHAIN=go1.26.8 GOOS=linux GOARCH=arm GOARM=6 "), "{done}");

    // Without tags: xcaddy's defaults, which the command leaves to xcaddy.
    let plain = json!({"os": "windows", "arch": "amd64", "caddy_version": "v2.10.2"});
    let b: Value = api.http.post(api.url("/api/builds")).json(&plain).send().await.unwrap().json().await.unwrap();
    assert_eq!(b["spec"]["tags"], json!(["nobadger", "nomysql", "nopgx"]));
    assert_eq!(b["xcaddy_command"], "GOTOOLCHAIN=go1.26.7 GOOS=windows GOARCH=amd64 xcaddy build v2.10.2");
}
