//! Bad input on every endpoint gets a 4xx with the JSON error envelope, never a
//! 5xx, and nothing reaches SQL or the module proxy that should not.

mod api_support;
mod common;

use api_support::{error_message, TestApi};

#[tokio::test]
async fn compat_rejects_bad_queries() {
    let api = TestApi::start().await;
    let cases: &[(&str, &str)] = &[
        ("/api/compat?arch=amd64", "os is required"),
        ("/api/compat?os=linux", "arch is required"),
        ("/api/compat?os=plan10&arch=amd64", "plan10"),
        ("/api/compat?os=linux&arch=z80", "z80"),
        ("/api/compat?os=windows&arch=mips", "mips"),
        ("/api/compat?os=linux&arch=amd64&arm=7", "only allowed with arch=arm"),
        ("/api/compat?os=linux&arch=arm&arm=8", "ARM version"),
        ("/api/compat?os=linux&arch=amd64&p=not-a-domain/x", "domain"),
        ("/api/compat?os=linux&arch=amd64&p=github.com/x/y/v1", "major version"),
        ("/api/compat?os=linux&arch=amd64&p=github.com/x/../y", "dot"),
        ("/api/compat?os=linux&arch=amd64&p=github.com/x%20y", "character"),
        ("/api/compat?os=linux&arch=amd64&p=github.com/caddy-dns/cloudflare&p=github.com/caddy-dns/cloudflare@v0.1.0", "more than once"),
        ("/api/compat?os=linux&arch=amd64&p=github.com/caddy-dns/cloudflare@v9.9.9", "github.com/caddy-dns/cloudflare"),
        ("/api/compat?os=linux&arch=amd64&p=github.com/nobody/nothing", "github.com/nobody/nothing"),
        ("/api/compat?os=linux&arch=amd64&version=v3", "github.com/caddyserver/caddy/v2"),
        ("/api/compat?os=linux&arch=amd64&version=v2.99", "v2.99"),
        ("/api/compat?os=linux&arch=amd64&version=..%2F..%2Fetc", "not a valid version"),
        ("/api/compat?os=linux&arch=amd64&r=nonsense", "old=new@version"),
        ("/api/compat?os=linux&arch=amd64&r=github.com/a/b%3D.%2Flocal", "replacement module path"),
    ];
    for (path, needle) in cases {
        let message = error_message(api.get(path).await, 400).await;
        assert!(message.contains(needle), "{path}: {message:?} should mention {needle:?}");
    }
    let too_many: String = (0..1000).map(|i| format!("&p=example.com/p{i}")).collect();
    let message = error_message(api.get(&format!("/api/compat?os=linux&arch=amd64{too_many}")).await, 400).await;
    assert!(message.contains("too many plugins"), "{message}");
    assert_eq!(api.build_count().await, 0, "no bad request created a build");
    // Not-found versions were asked of the proxy once each; the bad path never was.
    assert_eq!(api.proxy.hits("not-a-domain/x/@v/list"), 0);
    assert_eq!(api.proxy.hits("example.com/p0/@v/list"), 0, "plugin count is checked before resolving");
}

#[tokio::test]
async fn build_keys_are_checked() {
    let api = TestApi::start().await;
    for key in ["..%2F..%2Fetc%2Fpasswd", "abc", &"A".repeat(64), &"g".repeat(64), &"0".repeat(65)] {
        for suffix in ["", "/download", "/sha256", "/signature", "/log"] {
            let path = format!("/api/builds/{key}{suffix}");
            let status = api.get(&path).await.status().as_u16();
            assert!(status == 400 || status == 404, "{path}: {status}");
            error_message(api.get(&path).await, status).await;
        }
    }
    let missing = "0".repeat(64);
    for suffix in ["", "/download", "/sha256", "/signature", "/log"] {
        error_message(api.get(&format!("/api/builds/{missing}{suffix}")).await, 404).await;
    }
    error_message(api.get(&format!("/api/builds/{missing}?wait=soon")).await, 404).await;
}

#[tokio::test]
async fn router_and_extractor_errors_use_the_envelope() {
    let api = TestApi::start().await;
    let server_errors_before = api.server_errors().await;
    error_message(api.get("/nope").await, 404).await;
    error_message(api.get("/api/builds/").await, 404).await;
    error_message(api.http.delete(api.url("/api/compat")).send().await.unwrap(), 405).await;
    error_message(api.get("/api/builds").await, 405).await;
    let post = |body: &'static str| api.http.post(api.url("/api/builds")).header("content-type", "application/json").body(body);
    error_message(post("{not json").send().await.unwrap(), 400).await;
    error_message(post(r#"{"os": "linux"}"#).send().await.unwrap(), 422).await;
    error_message(post(r#"{"os": "linux", "arch": "amd64", "colour": "red"}"#).send().await.unwrap(), 422).await;
    error_message(api.http.post(api.url("/api/builds")).body("x").send().await.unwrap(), 415).await;
    let message = error_message(post(r#"{"os": "linux", "arch": "amd64", "arm": "7"}"#).send().await.unwrap(), 400).await;
    assert!(message.contains("arm"), "{message}");

    let big = vec![b' '; 10 * 1024 * 1024];
    let resp = api.http.post(api.url("/api/builds")).header("content-type", "application/json").body(big).send().await;
    match resp {
        Ok(r) => {
            error_message(r, 413).await;
        }
        // The server may close the connection while the client is still sending.
        Err(e) => assert!(e.is_request() || e.is_body(), "{e}"),
    }
    let plugins: Vec<_> = (0..1000).map(|i| serde_json::json!({"module": format!("example.com/p{i}")})).collect();
    let body = serde_json::json!({"os": "linux", "arch": "amd64", "plugins": plugins});
    let resp = api.http.post(api.url("/api/builds")).json(&body).send().await.unwrap();
    let status = resp.status().as_u16();
    let message = error_message(resp, status).await;
    assert!(status == 400 || status == 413, "{status}: {message}");
    assert_eq!(api.build_count().await, 0);
    assert_eq!(api.server_errors().await - server_errors_before, 0.0);
}
