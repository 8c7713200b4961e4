//! The Go version of a request: `go_version` in the REST spec, `go=` on the
//! compat URL. It is validated (400 in the error shape), filled in from
//! `worker.go_version` when absent, and part of the canonical spec and key.

mod support;

use support::api::{error_message, TestApi};
use serde_json::{json, Value};

#[tokio::test]
async fn bad_go_values_are_400_json_and_create_nothing() {
    let api = TestApi::start().await;
    for go in ["1.26", "2.0.0", "1.20.14", "go1.26rc1", "latest", "1.26.8.0", "..%2F1.26.8", "1.026.8"] {
        let path = format!("/api/compat?os=linux&arch=amd64&version=v2.10.2&go={go}");
        let message = error_message(api.get(&path).await, 400).await;
        assert!(message.contains("is not a Go release like 1.26.8"), "{go}: {message}");
    }
    let resp = api.http.post(api.url("/api/builds")).json(&json!({"os": "linux", "arch": "amd64", "go_version": "1.x"})).send().await.unwrap();
    error_message(resp, 400).await;
    // Straight to SQL (psql): the same rule.
    let e = api.queue().submit(&json!({"caddy_version": "v2.10.2", "os": "linux", "arch": "amd64", "go_version": "1.19.0"}), false).await.unwrap_err();
    assert!(e.to_string().contains("go_version"), "{e}");
    assert_eq!(api.build_count().await, 0);
}

#[tokio::test]
async fn the_go_version_is_part_of_the_spec_and_the_key() {
    let api = TestApi::start_with(|c| c.worker.go_version = "1.26.7".into()).await;
    // No Go named: the configured default is written into the spec.
    let resp = api.http.post(api.url("/api/builds")).json(&json!({"os": "linux", "arch": "amd64", "caddy_version": "v2.10.2"})).send().await.unwrap();
    let default: Value = resp.json().await.unwrap();
    assert_eq!(default["spec"]["go_version"], "1.26.7", "{default}");
    // Another Go: another build; `go1.26.8` and `1.26.8` are the same request.
    let resp = api.http.post(api.url("/api/builds")).json(&json!({"os": "linux", "arch": "amd64", "caddy_version": "v2.10.2", "go_version": "go1.26.8"})).send().await.unwrap();
    let other: Value = resp.json().await.unwrap();
    assert_eq!(other["spec"]["go_version"], "1.26.8", "{other}");
    assert_ne!(other["build_key"], default["build_key"]);
    let compat = api.http.post(api.url("/api/build?os=linux&arch=amd64&version=v2.10.2&go=1.26.8")).send().await.unwrap();
    let compat: Value = compat.json().await.unwrap();
    assert_eq!(compat["result"]["key"], other["build_key"], "the official API's go= names the same build");
    // The key SQL computes for the spec as stored.
    let spec = json!({"caddy_version": "v2.10.2", "os": "linux", "arch": "amd64", "go_version": "1.26.8"});
    assert_eq!(api.queue().build_key(&spec).await.unwrap(), other["build_key"].as_str().unwrap());
    // A spec from psql without go_version gets SQL's default, cbs.default_go_version().
    let bare = api.queue().submit(&json!({"caddy_version": "v2.10.2", "os": "linux", "arch": "amd64"}), false).await.unwrap();
    assert_eq!(bare.spec.go_version.as_deref(), Some(caddy_build_server::config::DEFAULT_GO_VERSION));
    assert_eq!(bare.build_key, other["build_key"].as_str().unwrap(), "1.26.8 is SQL's default too");
    assert_eq!(api.build_count().await, 2);
}

#[tokio::test]
async fn a_go_older_than_caddys_go_mod_asks_for_is_refused_by_name() {
    let api = TestApi::start().await;
    let go_mod = "module github.com/caddyserver/caddy/v2\n\ngo 1.26.0\n\nrequire (\n)\n";
    api.proxy.answer("github.com/caddyserver/caddy/v2/@v/v2.10.2.mod", support::api::ProxyAnswer::Status(200, go_mod.into()));
    let message = error_message(api.get("/api/compat?os=linux&arch=amd64&version=v2.10.2&go=1.25.8").await, 400).await;
    assert!(message.contains("go_version 1.25.8 is too old for Caddy v2.10.2: its go.mod asks for go 1.26.0"), "{message}");
    assert_eq!(api.build_count().await, 0);
    let resp = api.http.post(api.url("/api/builds")).json(&json!({"os": "linux", "arch": "amd64", "caddy_version": "v2.10.2", "go_version": "1.26.0"})).send().await.unwrap();
    assert_eq!(resp.status(), 202, "exactly what go.mod asks for is enough");
    assert_eq!(api.proxy.hits("github.com/caddyserver/caddy/v2/@v/v2.10.2.mod"), 1, "go.mod is read once, then cached");
}
