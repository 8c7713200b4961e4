//! Bad input on every endpoint gets a 4xx with the JSON error envelope, never a
//! 5xx, and nothing reaches SQL or the module proxy that should not: bad
//! queries, modules and versions the module proxy does not have or refuses,
//! request heads too large or malformed for the router or for hyper itself. Only
//! the module proxy's own failures are a 502/503, with `Retry-After`.

mod support;

use std::time::Duration;

use support::api::{error_message, ProxyAnswer, TestApi};

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
        ("/api/compat?os=linux&arch=amd64&version=..%2F..%2Fetc", "not a valid version"),
        ("/api/compat?os=linux&arch=amd64&r=nonsense", "old=new@version"),
        ("/api/compat?os=linux&arch=amd64&r=github.com/a/b%3D.%2Flocal", "replacements[0].new"),
        ("/api/compat?os=linux&arch=amd64&tags=nobadger,x%3Bid", "tags[1]"),
        ("/api/compat?os=linux&arch=amd64&tags=%24(id)", "Go build tag"),
    ];
    for (path, needle) in cases {
        let message = error_message(api.get(path).await, 400).await;
        assert!(message.contains(needle), "{path}: {message:?} should mention {needle:?}");
    }
    // Modules and versions the module proxy does not have: 404, naming module@version.
    let unknown: &[(&str, &str)] = &[
        ("/api/compat?os=linux&arch=amd64&p=github.com/caddy-dns/cloudflare@v9.9.9", "github.com/caddy-dns/cloudflare@v9.9.9"),
        ("/api/compat?os=linux&arch=amd64&p=github.com/nobody/nothing", "github.com/nobody/nothing@latest"),
        ("/api/compat?os=linux&arch=amd64&version=v3", "github.com/caddyserver/caddy/v2@v3"),
        ("/api/compat?os=linux&arch=amd64&version=v2.99", "github.com/caddyserver/caddy/v2@v2.99"),
    ];
    for (path, needle) in unknown {
        let message = error_message(api.get(path).await, 404).await;
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

/// Build tags are checked (by SQL's rule) before any version is resolved: shell
/// metacharacters, too many and too long are a 400 naming the tag, and neither
/// the module proxy nor the queue sees the request.
#[tokio::test]
async fn bad_tags_are_refused_before_anything_is_resolved() {
    let api = TestApi::start().await;
    let caddy_list = "github.com/caddyserver/caddy/v2/@v/list";
    let hits_before = api.proxy.hits(caddy_list);
    let many: Vec<String> = (0..33).map(|i| format!("t{i}")).collect();
    let cases = [
        (serde_json::json!(["nobadger", "$(id)"]), "tags[1]"),
        (serde_json::json!(["a b"]), "Go build tag"),
        (serde_json::json!(["x`id`"]), "tags[0]"),
        (serde_json::json!(["t".repeat(65)]), "1 to 64 characters"),
        (serde_json::json!(many), "at most 32"),
        (serde_json::json!("nobadger"), "tags"),
    ];
    for (tags, needle) in cases {
        let body = serde_json::json!({"os": "linux", "arch": "amd64", "tags": tags});
        let status = if tags.is_string() { 422 } else { 400 };
        let message = error_message(api.http.post(api.url("/api/builds")).json(&body).send().await.unwrap(), status).await;
        assert!(message.contains(needle), "{tags}: {message:?} should mention {needle:?}");
    }
    let message = error_message(api.get("/api/compat?os=linux&arch=amd64&tags=nobadger,%3Bid").await, 400).await;
    assert!(message.contains("tags[1]"), "{message}");
    assert_eq!(api.proxy.hits(caddy_list), hits_before, "nothing was resolved");
    assert_eq!(api.build_count().await, 0);
}

/// What the module proxy says about a module or version is the requester's
/// problem (404 or 422, quoting the proxy); the proxy failing or staying silent
/// is ours (502 or 503, with `Retry-After`). Same on every endpoint that resolves.
#[tokio::test]
async fn module_proxy_answers_are_told_apart() {
    let api = TestApi::start_with(|c| c.api.module_proxy_timeout = Duration::from_millis(500)).await;
    let proxy = &api.proxy;
    let info = |module: &str, v: &str| format!("{module}/@v/{v}.info");
    proxy.answer(&info("github.com/caddy-dns/cloudflare", "v0.1.0"), ProxyAnswer::Status(403, "not available: module retracted by its author".into()));
    proxy.answer(&info("example.com/gone", "v1.0.0"), ProxyAnswer::Status(410, "not found: example.com/gone@v1.0.0: invalid version: unknown revision v1.0.0".into()));
    proxy.answer(&info("example.com/bad", "v1.0.0"), ProxyAnswer::Status(400, "bad request: invalid escaped module path".into()));
    proxy.answer("example.com/broken/@v/list", ProxyAnswer::Status(500, "internal error".into()));
    proxy.answer("example.com/slow/@v/list", ProxyAnswer::Silent);

    let compat = |p: &str| format!("/api/compat?os=linux&arch=amd64&p={p}");
    let submit = |p: &str| {
        let (module, version) = p.rsplit_once('@').unwrap_or((p, ""));
        let body = serde_json::json!({"os": "linux", "arch": "amd64", "plugins": [{"module": module, "version": version}]});
        api.http.post(api.url("/api/builds")).json(&body)
    };
    let check = |p: &str| {
        let (module, version) = p.rsplit_once('@').unwrap_or((p, ""));
        api.http.get(api.url(&format!("/api/modules/check?module={module}&version={version}")))
    };
    let cases: &[(&str, u16, &[&str])] = &[
        ("github.com/caddy-dns/cloudflare@v0.1.0", 422, &["github.com/caddy-dns/cloudflare@v0.1.0", "403 Forbidden", "module retracted by its author"]),
        ("example.com/gone@v1.0.0", 404, &["example.com/gone@v1.0.0", "410 Gone", "unknown revision v1.0.0"]),
        ("example.com/missing@v1.0.0", 404, &["example.com/missing@v1.0.0", "404 Not Found", "not found: example.com/missing/@v/v1.0.0.info"]),
        ("example.com/bad@v1.0.0", 422, &["example.com/bad@v1.0.0", "400 Bad Request", "invalid escaped module path"]),
        ("example.com/broken", 502, &["example.com/broken@latest", "500 Internal Server Error", "internal error"]),
        ("example.com/slow", 503, &["example.com/slow@latest", "no answer within 500ms"]),
    ];
    for (plugin, status, needles) in cases {
        for request in [api.http.get(api.url(&compat(plugin))), submit(plugin), check(plugin)] {
            let resp = request.send().await.unwrap();
            let retry_after = resp.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
            assert_eq!(resp.headers()["cache-control"], "no-store", "{plugin}");
            let message = error_message(resp, *status).await;
            for needle in *needles {
                assert!(message.contains(needle), "{plugin}: {message:?} should mention {needle:?}");
            }
            match status {
                502 | 503 => assert_eq!(retry_after.as_deref(), Some("10"), "{plugin}"),
                _ => assert_eq!(retry_after, None, "{plugin}"),
            }
        }
    }
    assert_eq!(api.build_count().await, 0);
    // The requester's problems are cached like any answer; the proxy's failures are asked again.
    assert_eq!(proxy.hits(&info("github.com/caddy-dns/cloudflare", "v0.1.0")), 1);
    assert_eq!(proxy.hits("example.com/broken/@v/list"), 3);
}

#[tokio::test]
async fn unreachable_module_proxy_is_503_with_retry_after() {
    let api = TestApi::start_with(|c| c.go_proxy = "http://127.0.0.1:9".into()).await;
    let resp = api.get("/api/compat?os=linux&arch=amd64&p=github.com/caddy-dns/cloudflare@v0.2.1").await;
    assert_eq!(resp.headers()["retry-after"], "10");
    let message = error_message(resp, 503).await;
    assert!(message.contains("cannot connect to the module proxy"), "{message}");
    assert!(!message.contains("127.0.0.1:9"), "the proxy's address stays in the log: {message}");
}

/// Request heads over the configured limits get the router's 414/431; those
/// hyper refuses itself (a target over 65534 bytes, a head over its read buffer
/// or with over 100 fields, a malformed request) get the same envelope.
#[tokio::test]
async fn oversized_and_malformed_heads_get_the_envelope() {
    let api = TestApi::start().await;
    let get = |target: &str, fields: &str| format!("GET {target} HTTP/1.1\r\nhost: cbs\r\n{fields}\r\n").into_bytes();
    let compat = |filler: usize| format!("/api/compat?os=linux&arch=amd64&x={}", "a".repeat(filler));

    let message = error_message(api.get(&compat(40 * 1024)).await, 414).await;
    assert!(message.contains("at most 32768 bytes"), "{message}");
    assert!(api.raw(get(&compat(40 * 1024), "")).await.error_message(414).contains("at most 32768 bytes"));
    let message = api.raw(get(&compat(100 * 1024), "")).await.error_message(414);
    assert!(message.contains("at most 32768 bytes"), "hyper's own 414: {message}");
    let message = api.raw(get(&compat(1024 * 1024), "")).await.error_message(431);
    assert!(message.contains("at most 32768 bytes of request target"), "hyper's own 431: {message}");

    let big_fields: String = (0..20).map(|i| format!("x-filler-{i}: {}\r\n", "b".repeat(4000))).collect();
    let message = api.raw(get("/healthz", &big_fields)).await.error_message(431);
    assert!(message.contains("at most 65536 bytes are accepted"), "{message}");
    let many_fields: String = (0..150).map(|i| format!("x-f{i}: c\r\n")).collect();
    let message = api.raw(get("/healthz", &many_fields)).await.error_message(431);
    assert!(message.contains("100 fields"), "{message}");
    let huge_field = format!("x-huge: {}\r\n", "d".repeat(500 * 1024));
    api.raw(get("/healthz", &huge_field)).await.error_message(431);

    let malformed = [
        "GET /heal\u{1}thz HTTP/1.1\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nno colon here\r\n\r\n",
        "G(T / HTTP/1.1\r\n\r\n",
        "GET /healthz HTTP/1.7\r\n\r\n",
        "POST /api/builds HTTP/1.1\r\ncontent-length: many\r\n\r\n",
        "POST /api/builds HTTP/1.1\r\ncontent-length: 4\r\ncontent-length: 5\r\n\r\n",
    ];
    for malformed in malformed {
        let message = api.raw(malformed.as_bytes().to_vec()).await.error_message(400);
        assert!(message.contains("not valid HTTP/1.1"), "{malformed:?}: {message}");
    }
    // Within the limits, the same connection handling answers normally.
    let ok = api.raw(get("/healthz", "connection: close\r\n")).await;
    assert_eq!(ok.status, 200, "{ok:?}");
    assert_eq!(api.server_errors().await, 0.0);
}
