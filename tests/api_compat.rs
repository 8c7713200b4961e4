//! The compat download (`/api/compat`, `/api/download`) over HTTP against a real
//! Postgres: held open until the build finishes, woken by NOTIFY.

mod support;

use std::time::Duration;

use support::api::{error_message, TestApi};
use futures::future::join_all;

const COMPAT: &str = "/api/compat?os=linux&arch=amd64&p=github.com/caddy-dns/cloudflare";

#[tokio::test]
async fn waiting_request_is_released_by_completion() {
    let api = TestApi::start().await;
    let (pending, key) = api.waiting_get(COMPAT).await;
    assert!(!pending.is_finished(), "the request must wait for the build");
    let build = api.queue().get(&key).await.unwrap().unwrap();
    assert_eq!(build.spec.caddy_version, "v2.10.2", "latest release, no pre-release");
    assert_eq!(build.spec.plugins[0].version, "v0.2.1");

    let artifact = api.succeed(&key, b"caddy binary bytes").await;
    let resp = tokio::time::timeout(Duration::from_secs(5), pending).await.expect("released").unwrap();
    assert_eq!(resp.status(), 200);
    let h = resp.headers();
    assert_eq!(h["content-type"], "application/octet-stream");
    assert_eq!(h["content-length"], "18");
    assert_eq!(h["content-disposition"], "attachment; filename=\"caddy\"");
    assert_eq!(h["etag"].to_str().unwrap(), format!("\"{}\"", artifact.sha256));
    assert_eq!(h["x-build-key"].to_str().unwrap(), key);
    assert_eq!(&resp.bytes().await.unwrap()[..], b"caddy binary bytes");
    api.wait_for_waiters(0).await;
    assert!(api.metric("cbs_api_wakeup_latency_seconds_count").await >= 1.0);
}

#[tokio::test]
async fn cached_build_streams_at_once_with_head_range_and_etag() {
    let api = TestApi::start().await;
    let url = "/api/download?os=windows&arch=amd64&version=v2.9&p=github.com/caddy-dns/cloudflare@v0.1.0";
    let first = api.spawn(api.http.get(api.url(url)));
    let key = api.only_build_key().await;
    let artifact = api.succeed(&key, b"0123456789").await;
    assert_eq!(first.await.unwrap().status(), 200);
    assert_eq!(artifact.file_name, "caddy.exe");

    let started = std::time::Instant::now();
    let resp = api.get(url).await;
    assert_eq!(resp.status(), 200);
    // At once, not held like a build in progress (the wait limit is 30 s);
    // the bound is that loose because the machine may be loaded.
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(resp.headers()["content-disposition"], "attachment; filename=\"caddy.exe\"");
    assert_eq!(&resp.bytes().await.unwrap()[..], b"0123456789");
    assert_eq!(api.build_count().await, 1, "the same spec is one build");

    let head = api.http.head(api.url(url)).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-length"], "10");
    assert_eq!(head.headers()["x-build-key"].to_str().unwrap(), key);

    let etag = format!("\"{}\"", artifact.sha256);
    let not_modified = api.http.get(api.url(url)).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(not_modified.status(), 304);

    let part = api.http.get(api.url(url)).header("range", "bytes=2-5").send().await.unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.headers()["content-range"], "bytes 2-5/10");
    assert_eq!(&part.bytes().await.unwrap()[..], b"2345");
    let tail = api.http.get(api.url(url)).header("range", "bytes=-3").send().await.unwrap();
    assert_eq!(&tail.bytes().await.unwrap()[..], b"789");
    let bad = api.http.get(api.url(url)).header("range", "bytes=50-60").send().await.unwrap();
    assert_eq!(bad.headers()["content-range"], "bytes */10");
    error_message(bad, 416).await;
    let stale = api.http.get(api.url(url)).header("range", "bytes=2-5").header("if-range", "\"other\"").send().await.unwrap();
    assert_eq!(stale.status(), 200, "a stale If-Range gets the whole file");
    assert_eq!(&stale.bytes().await.unwrap()[..], b"0123456789");

    let by_key = api.get(&format!("/api/builds/{key}/download")).await;
    assert_eq!(&by_key.bytes().await.unwrap()[..], b"0123456789");
    let sum = api.get(&format!("/api/builds/{key}/sha256")).await.text().await.unwrap();
    assert_eq!(sum, format!("{}  caddy.exe\n", artifact.sha256));
}

#[tokio::test]
async fn concurrent_identical_requests_share_one_build() {
    let api = TestApi::start().await;
    let url = api.url("/api/compat?os=linux&arch=arm64&p=github.com/mholt/caddy-l4&p=github.com/caddy-dns/cloudflare");
    let requests: Vec<_> = (0..200)
        .map(|_| {
            let (http, url) = (api.http.clone(), url.clone());
            tokio::spawn(async move {
                let r = http.get(url).send().await.unwrap();
                (r.status().as_u16(), r.bytes().await.unwrap())
            })
        })
        .collect();
    let key = api.only_build_key().await;
    api.wait_for_waiters(200).await;
    assert_eq!(api.build_count().await, 1);
    let binary: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    api.succeed(&key, &binary).await;
    for r in join_all(requests).await {
        let (status, body) = r.unwrap();
        assert_eq!(status, 200);
        assert_eq!(&body[..], &binary[..]);
    }
    assert_eq!(api.build_count().await, 1);
}

/// Waiters of one build, released together: plain GETs, a HEAD, a range and a
/// conditional request each get what they would get from a cached build.
async fn mixed_waiters_get_their_answers(api: &TestApi, binary: &[u8]) {
    const GETS: usize = 50;
    let url = api.url(COMPAT);
    let spawn = |req: reqwest::RequestBuilder| {
        tokio::spawn(async move {
            let r = req.send().await.unwrap();
            let headers = r.headers().clone();
            (r.status().as_u16(), headers, r.bytes().await.unwrap())
        })
    };
    let gets: Vec<_> = (0..GETS).map(|_| spawn(api.http.get(&url))).collect();
    let key = api.only_build_key().await;
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(binary));
    let etag = format!("\"{sha}\"");
    let head = spawn(api.http.head(&url));
    let range = spawn(api.http.get(&url).header("range", "bytes=3-9"));
    let conditional = spawn(api.http.get(&url).header("if-none-match", &etag));
    api.wait_for_waiters(GETS + 3).await;
    api.succeed(&key, binary).await;

    for r in join_all(gets).await {
        let (status, headers, body) = r.unwrap();
        assert_eq!(status, 200);
        assert_eq!(headers["content-length"].to_str().unwrap(), binary.len().to_string());
        assert_eq!(headers["etag"].to_str().unwrap(), etag);
        assert_eq!(headers["x-build-key"].to_str().unwrap(), key);
        assert_eq!(headers["content-disposition"], "attachment; filename=\"caddy\"");
        assert_eq!(headers["accept-ranges"], "bytes");
        assert_eq!(&body[..], binary);
    }
    let (status, headers, body) = head.await.unwrap();
    assert_eq!((status, body.len()), (200, 0));
    assert_eq!(headers["content-length"].to_str().unwrap(), binary.len().to_string());
    let (status, headers, body) = range.await.unwrap();
    assert_eq!(status, 206);
    assert_eq!(headers["content-range"].to_str().unwrap(), format!("bytes 3-9/{}", binary.len()));
    assert_eq!(&body[..], &binary[3..10]);
    let (status, headers, body) = conditional.await.unwrap();
    assert_eq!((status, body.len()), (304, 0));
    assert_eq!(headers["etag"].to_str().unwrap(), etag);
    assert_eq!(api.server_errors().await, 0.0);
}

#[tokio::test]
async fn waiters_share_one_prepared_download() {
    let api = TestApi::start().await;
    let binary: Vec<u8> = (0..300_000u32).map(|i| (i % 241) as u8).collect();
    mixed_waiters_get_their_answers(&api, &binary).await;
}

#[tokio::test]
async fn artifact_over_the_shared_size_streams_to_each_waiter() {
    let api = TestApi::start_with(|c| c.api.shared_download_max_bytes = 1000).await;
    let binary: Vec<u8> = (0..300_000u32).map(|i| (i % 239) as u8).collect();
    mixed_waiters_get_their_answers(&api, &binary).await;
}

#[tokio::test]
async fn failed_build_answers_with_its_error() {
    let api = TestApi::start().await;
    let (pending, key) = api.waiting_get(COMPAT).await;
    let error = "go: github.com/caddy-dns/cloudflare@v0.2.1: missing go.sum entry";
    api.fail(&key, error).await;
    let resp = tokio::time::timeout(Duration::from_secs(5), pending).await.unwrap().unwrap();
    assert_eq!(error_message(resp, 422).await, error);
    // A later request for the same spec gets the same answer at once.
    assert_eq!(error_message(api.get(COMPAT).await, 422).await, error);
}

#[tokio::test]
async fn cancelled_build_answers_conflict() {
    let api = TestApi::start().await;
    let (pending, key) = api.waiting_get(COMPAT).await;
    api.queue().cancel(&key, "stopped by the operator").await.unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(5), pending).await.unwrap().unwrap();
    let message = error_message(resp, 409).await;
    assert!(message.contains("cancelled") && message.contains("stopped by the operator"), "{message}");
}

#[tokio::test]
async fn wait_limit_answers_504() {
    let api = TestApi::start_with(|c| c.api.compat_wait_limit = Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    let message = error_message(api.get(COMPAT).await, 504).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(message.contains("did not finish"), "{message}");
    api.wait_for_waiters(0).await;
}

#[tokio::test]
async fn disconnected_client_frees_its_waiter() {
    let api = TestApi::start().await;
    let client = reqwest::Client::new();
    let url = api.url(COMPAT);
    let pending = tokio::spawn(async move { client.get(url).send().await });
    api.only_build_key().await;
    api.wait_for_waiters(1).await;
    pending.abort();
    let _ = pending.await;
    api.wait_for_waiters(0).await;
}

#[tokio::test]
async fn waiter_survives_listener_backend_being_killed() {
    let api = TestApi::start().await;
    let (pending, key) = api.waiting_get(COMPAT).await;
    let admin = support::db::admin_client().await;
    let killed: i64 = admin
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'cbs-listener'",
            &[&api.db.name],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(killed, 1, "the api's listener session");
    // Completed while the listener may still be reconnecting: the re-read after reconnect finds it.
    api.succeed(&key, b"survivor").await;
    let resp = tokio::time::timeout(Duration::from_secs(10), pending).await.expect("released").unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(&resp.bytes().await.unwrap()[..], b"survivor");
}

#[tokio::test]
async fn every_compat_parameter_reaches_the_spec() {
    let api = TestApi::start().await;
    let query = "/api/compat?os=linux&arch=arm&arm=6&version=v2.9&idempotency=abc&go=1.26.7\
                 &p=github.com/caddy-dns/cloudflare@v0.1.0&p=github.com/mholt/caddy-l4\
                 &r=github.com/old/lib%3Dgithub.com/BurntSushi/toml@v1.3.2&tags=nomysql,nobadger";
    let pending = api.spawn(api.http.head(api.url(query)));
    let key = api.only_build_key().await;
    let spec = serde_json::to_value(api.queue().get(&key).await.unwrap().unwrap().spec).unwrap();
    assert_eq!(
        spec,
        serde_json::json!({
            "caddy_version": "v2.9.1", "os": "linux", "arch": "arm", "arm": "6", "go_version": "1.26.7",
            "plugins": [{"module": "github.com/caddy-dns/cloudflare", "version": "v0.1.0"},
                        {"module": "github.com/mholt/caddy-l4", "version": "v0.0.1"}],
            "replacements": [{"old": "github.com/old/lib", "new": "github.com/BurntSushi/toml", "version": "v1.3.2"}],
            "tags": ["nobadger", "nomysql"],
        })
    );
    api.succeed(&key, b"arm6").await;
    let head = tokio::time::timeout(Duration::from_secs(5), pending).await.unwrap().unwrap();
    assert_eq!(head.status(), 200, "HEAD waits like GET");
    assert_eq!(head.headers()["content-length"], "4");
}

/// A request naming only exact versions (Go's too) is cached for good; one
/// resolved from `latest`, a partial version or the configured Go must be revalidated (the same build, reached
/// by both, answers each as it asked). Content-addressed URLs are immutable,
/// conditional requests answer 304 with the same headers, errors are not stored.
#[tokio::test]
async fn cache_headers_follow_what_the_request_named() {
    const IMMUTABLE: &str = "public, max-age=31536000, immutable";
    const REVALIDATE: &str = "public, no-cache";
    let api = TestApi::start().await;
    // COMPAT resolves to exactly this spec: one build, two ways of naming it.
    let go = caddy_build_server::config::DEFAULT_GO_VERSION;
    let pinned = format!("/api/compat?os=linux&arch=amd64&version=v2.10.2&p=github.com/caddy-dns/cloudflare@v0.2.1&go={go}");
    let spawn = |path: &str| api.spawn(api.http.get(api.url(path)));
    let (unpinned_waiter, pinned_waiter) = (spawn(COMPAT), spawn(&pinned));
    let key = api.only_build_key().await;
    api.wait_for_waiters(2).await;
    let artifact = api.succeed(&key, b"cacheable").await;
    let etag = format!("\"{}\"", artifact.sha256);
    for (waiter, expected) in [(unpinned_waiter, REVALIDATE), (pinned_waiter, IMMUTABLE)] {
        let resp = waiter.await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["cache-control"], expected, "a waiter of the shared download");
        assert_eq!(resp.headers()["etag"].to_str().unwrap(), etag);
    }

    let unpinned = [
        COMPAT,
        "/api/compat?os=linux&arch=amd64&version=latest&p=github.com/caddy-dns/cloudflare@v0.2.1",
        "/api/compat?os=linux&arch=amd64&version=v2.10&p=github.com/caddy-dns/cloudflare@v0.2.1",
        "/api/download?os=linux&arch=amd64&version=v2.10.2&p=github.com/caddy-dns/cloudflare@latest",
        "/api/download?os=linux&arch=amd64&version=v2.10.2&p=github.com/caddy-dns/cloudflare",
        // Every module exact, but the Go is the operator's to change.
        "/api/compat?os=linux&arch=amd64&version=v2.10.2&p=github.com/caddy-dns/cloudflare@v0.2.1",
    ];
    let by_key = format!("/api/builds/{key}/download");
    let cases = unpinned.iter().map(|p| (p.to_string(), REVALIDATE)).chain([(pinned.clone(), IMMUTABLE), (by_key, IMMUTABLE)]);
    for (path, expected) in cases {
        for method in [reqwest::Method::GET, reqwest::Method::HEAD] {
            let resp = api.http.request(method.clone(), api.url(&path)).send().await.unwrap();
            assert_eq!(resp.status(), 200, "{method} {path}");
            assert_eq!(resp.headers()["cache-control"], expected, "{method} {path}");
            assert_eq!(resp.headers()["etag"].to_str().unwrap(), etag, "{method} {path}");
            // The binary itself (200), not a redirect; a compat answer names the build's own
            // download URL in Location, where the official live page navigates.
            let location = resp.headers().get("location").map(|v| v.to_str().unwrap().to_string());
            let own_url = (!path.starts_with("/api/builds/")).then(|| format!("/api/builds/{key}/download"));
            assert_eq!(location, own_url, "{method} {path}");
            assert_eq!(resp.headers()["x-build-key"].to_str().unwrap(), key);
            let revalidated = api.http.request(method.clone(), api.url(&path)).header("if-none-match", &etag).send().await.unwrap();
            assert_eq!(revalidated.status(), 304, "{method} {path}");
            assert_eq!(revalidated.headers()["cache-control"], expected, "{method} {path}");
            assert_eq!(revalidated.headers()["etag"].to_str().unwrap(), etag);
        }
        assert_eq!(&api.get(&path).await.bytes().await.unwrap()[..], b"cacheable");
    }
    for suffix in ["sha256", "signature"] {
        let resp = api.get(&format!("/api/builds/{key}/{suffix}")).await;
        let status = resp.status();
        let cache_control = resp.headers()["cache-control"].to_str().unwrap().to_string();
        match status.as_u16() {
            200 => assert_eq!(cache_control, IMMUTABLE, "{suffix}"),
            // This build has no signature: errors are never stored.
            _ => assert_eq!((status.as_u16(), cache_control.as_str()), (404, "no-store"), "{suffix}"),
        }
    }
    let status = api.get(&format!("/api/builds/{key}")).await;
    assert_eq!(status.headers()["cache-control"], "no-cache", "a build's status changes");
    let error = api.get("/api/compat?os=linux&arch=amd64&p=github.com/nobody/nothing").await;
    assert_eq!(error.headers()["cache-control"], "no-store");
    assert_eq!(api.build_count().await, 1, "every request above named the same build");
}

/// The compat query without `tags` builds with xcaddy's default tags, so every
/// URL the Caddy CLI and the official pages send means what it always did;
/// `tags=` (empty) asks for none.
#[tokio::test]
async fn compat_without_tags_means_xcaddys_defaults() {
    let api = TestApi::start().await;
    let base = "os=linux&arch=amd64&version=v2.9.1&p=github.com/caddy-dns/cloudflare@v0.2.1";
    for (extra, tags) in [("", serde_json::json!(["nobadger", "nomysql", "nopgx"])), ("&tags=", serde_json::json!([]))] {
        let resp = api.http.post(api.url(&format!("/api/build?{base}{extra}"))).send().await.unwrap();
        let body: serde_json::Value = resp.json().await.unwrap();
        let key = body["result"]["key"].as_str().unwrap();
        let spec = serde_json::to_value(api.queue().get(key).await.unwrap().unwrap().spec).unwrap();
        assert_eq!(spec["tags"], tags, "{extra:?}");
    }
    assert_eq!(api.build_count().await, 2, "other tags, another build");
}
