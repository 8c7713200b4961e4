//! Version resolution against a module proxy the test starts (and once against
//! the real Go module proxy): latest, partial, exact, pseudo-versions,
//! `+incompatible`, case encoding, fallback between proxies, the cache and the
//! coalescing of concurrent identical lookups.

mod api_support;
mod common;

use std::time::Duration;

use api_support::{default_answers, FakeProxy};
use caddy_build_server::gomod::{ResolveError, Resolver};
use futures::future::join_all;

const CADDY: &str = "github.com/caddyserver/caddy/v2";

async fn version(r: &Resolver, module: &str, query: &str) -> Result<String, ResolveError> {
    r.resolve(module, query).await.map(|r| r.version)
}

#[tokio::test]
async fn resolves_queries_like_go() {
    let proxy = FakeProxy::start(default_answers(), Duration::ZERO).await;
    let r = Resolver::new(&proxy.url, Duration::from_secs(60));
    assert_eq!(version(&r, CADDY, "").await.unwrap(), "v2.10.2");
    assert_eq!(version(&r, CADDY, "latest").await.unwrap(), "v2.10.2");
    assert_eq!(version(&r, CADDY, "v2.9").await.unwrap(), "v2.9.1");
    assert_eq!(version(&r, CADDY, "v2").await.unwrap(), "v2.10.2");
    assert_eq!(version(&r, CADDY, "v2.11.0-beta.1").await.unwrap(), "v2.11.0-beta.1", "a pre-release asked by name");
    assert_eq!(version(&r, CADDY, "v2.10.0").await.unwrap(), "v2.10.0");
    assert!(matches!(version(&r, CADDY, "v2.11").await, Err(ResolveError::NotFound { .. })), "v2.11 has only a pre-release");
    assert_eq!(proxy.hits("github.com/caddyserver/caddy/v2/@latest"), 0, "the list is enough");
    assert_eq!(version(&r, "github.com/caddy-dns/cloudflare", "").await.unwrap(), "v0.2.1");
    assert_eq!(version(&r, "github.com/BurntSushi/toml", "").await.unwrap(), "v1.4.0");
    assert_eq!(proxy.hits("github.com/!burnt!sushi/toml/@v/list"), 1, "capitals are case-encoded");
    assert_eq!(version(&r, "github.com/old/lib", "").await.unwrap(), "v1.0.0");
    assert_eq!(version(&r, "github.com/old/lib", "v2.0.0+incompatible").await.unwrap(), "v2.0.0+incompatible");
    let pseudo = "v0.0.0-20240101000000-abcdefabcdef";
    assert_eq!(version(&r, "example.com/pseudo", "").await.unwrap(), pseudo, "@latest when the list is empty");
    assert_eq!(version(&r, "example.com/pseudo", "main").await.unwrap(), pseudo, "a branch resolves through .info");

    let e = version(&r, CADDY, "v2.99").await.unwrap_err();
    assert!(matches!(&e, ResolveError::NotFound { .. }), "{e}");
    assert!(e.to_string().contains(CADDY) && e.to_string().contains("v2.99"), "{e}");
    assert!(matches!(version(&r, "github.com/nobody/none", "").await, Err(ResolveError::NotFound { .. })));
    assert!(matches!(version(&r, CADDY, "v9.9.9").await, Err(ResolveError::NotFound { .. })));
    assert!(matches!(version(&r, "Bad.Path/x", "").await, Err(ResolveError::BadPath { .. })));
    assert!(matches!(version(&r, CADDY, "v1.0/../x").await, Err(ResolveError::BadVersion { .. })));
}

#[tokio::test]
async fn caches_and_coalesces_lookups() {
    let proxy = FakeProxy::start(default_answers(), Duration::from_millis(200)).await;
    let r = Resolver::new(&proxy.url, Duration::from_millis(600));
    let all = join_all((0..50).map(|_| r.resolve(CADDY, "latest"))).await;
    let fetched = all.iter().filter(|x| !x.as_ref().unwrap().cached).count();
    assert_eq!(fetched, 1, "one lookup asked the proxy");
    assert!(all.iter().all(|x| x.as_ref().unwrap().version == "v2.10.2"));
    assert_eq!(proxy.hits("github.com/caddyserver/caddy/v2/@v/list"), 1);
    assert!(r.resolve(CADDY, "latest").await.unwrap().cached);
    assert_eq!(proxy.hits("github.com/caddyserver/caddy/v2/@v/list"), 1);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!r.resolve(CADDY, "latest").await.unwrap().cached, "entries expire");
    assert_eq!(proxy.hits("github.com/caddyserver/caddy/v2/@v/list"), 2);
}

#[tokio::test]
async fn falls_back_between_proxies() {
    let empty = FakeProxy::start(Default::default(), Duration::ZERO).await;
    let full = FakeProxy::start(default_answers(), Duration::ZERO).await;
    let r = Resolver::new(&format!("{},{}", empty.url, full.url), Duration::from_secs(60));
    assert_eq!(version(&r, CADDY, "").await.unwrap(), "v2.10.2", "404 moves on to the next proxy");
    let down = "http://127.0.0.1:9";
    let r = Resolver::new(&format!("{down},{}", full.url), Duration::from_secs(60));
    assert!(matches!(version(&r, CADDY, "").await, Err(ResolveError::Upstream { .. })), "',' stops at a network error");
    assert!(matches!(version(&r, CADDY, "").await, Err(ResolveError::Upstream { .. })), "errors are not cached");
    let r = Resolver::new(&format!("{down}|{}", full.url), Duration::from_secs(60));
    assert_eq!(version(&r, CADDY, "").await.unwrap(), "v2.10.2", "'|' moves on after any error");
}

/// Once against the real module proxy, which answers `@v/list` but not `@latest` for Caddy.
#[tokio::test]
async fn real_go_module_proxy_resolves_caddy() {
    let r = Resolver::new("https://proxy.golang.org", Duration::from_secs(60));
    let latest = version(&r, CADDY, "latest").await.expect("proxy.golang.org reachable");
    let v = semver::Version::parse(latest.trim_start_matches('v')).unwrap();
    assert_eq!(v.major, 2);
    assert!(v.minor >= 10 && v.pre.is_empty(), "{latest}");
    let v27 = version(&r, CADDY, "v2.7").await.unwrap();
    assert!(v27.starts_with("v2.7.") && !v27.contains('-'), "{v27}");
    assert_eq!(version(&r, CADDY, "v2.8.4").await.unwrap(), "v2.8.4");
    assert!(matches!(version(&r, CADDY, "v2.999").await, Err(ResolveError::NotFound { .. })));
}
