//! Version resolution against a module proxy the test starts (and once against
//! the real Go module proxy): latest, partial, exact, pseudo-versions,
//! `+incompatible`, case encoding, fallback between proxies, the cache and the
//! coalescing of concurrent identical lookups.

mod support;

use std::time::Duration;

use support::api::{default_answers, FakeProxy, ProxyAnswer};
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
    // Go's path rules are SQL's; the resolver only keeps a path below the proxy's URL.
    assert!(matches!(version(&r, "github.com/x/../../y", "").await, Err(ResolveError::BadPath { .. })));
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
    // Waits out the entries' lifetime: expiry is a matter of time, no event marks it.
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
    assert!(matches!(version(&r, CADDY, "").await, Err(ResolveError::Unreachable { .. })), "',' stops at a network error");
    assert!(matches!(version(&r, CADDY, "").await, Err(ResolveError::Unreachable { .. })), "errors are not cached");
    let r = Resolver::new(&format!("{down}|{}", full.url), Duration::from_secs(60));
    assert_eq!(version(&r, CADDY, "").await.unwrap(), "v2.10.2", "'|' moves on after any error");
}

/// The proxy's 404/410 and 400/403 are the request's problem, quoted and
/// cached; its 5xx, 429 and silence are its own, retried on the next request.
#[tokio::test]
async fn classifies_proxy_answers() {
    let proxy = FakeProxy::start(default_answers(), Duration::ZERO).await;
    let quote = "not available: github.com/caddy-dns/cloudflare@v0.1.0 is blocked";
    proxy.answer("github.com/caddy-dns/cloudflare/@v/v0.1.0.info", ProxyAnswer::Status(403, format!("{quote}\n\n  more  detail\n")));
    proxy.answer("example.com/gone/@v/list", ProxyAnswer::Status(410, "gone".into()));
    proxy.answer("example.com/gone/@latest", ProxyAnswer::Status(410, "gone: example.com/gone".into()));
    proxy.answer("example.com/busy/@v/list", ProxyAnswer::Status(429, "slow down".into()));
    proxy.answer("example.com/broken/@v/v1.0.0.info", ProxyAnswer::Status(503, "x".repeat(5000)));
    proxy.answer("example.com/silent/@v/list", ProxyAnswer::Silent);
    let r = Resolver::with_timeout(&proxy.url, Duration::from_secs(60), Duration::from_millis(300));

    let e = version(&r, "github.com/caddy-dns/cloudflare", "v0.1.0").await.unwrap_err();
    assert!(matches!(e, ResolveError::Refused { .. }) && !e.is_transient(), "{e:?}");
    let text = e.to_string();
    assert!(text.contains("github.com/caddy-dns/cloudflare@v0.1.0") && text.contains("403 Forbidden"), "{text}");
    assert!(text.contains(&format!("{quote} more detail")), "the proxy's words, whitespace folded: {text}");
    let e = version(&r, "example.com/gone", "").await.unwrap_err();
    assert!(matches!(e, ResolveError::NotFound { .. }), "{e:?}");
    assert!(e.to_string().contains("example.com/gone@latest") && e.to_string().contains("410 Gone"), "{e}");
    let e = version(&r, "example.com/busy", "v1").await.unwrap_err();
    assert!(matches!(e, ResolveError::Unreachable { .. }) && e.is_transient(), "{e:?}");
    let e = version(&r, "example.com/broken", "v1.0.0").await.unwrap_err();
    assert!(matches!(e, ResolveError::Upstream { .. }) && e.is_transient(), "{e:?}");
    assert!(e.to_string().contains("503 Service Unavailable") && e.to_string().len() < 600, "quotes are cut short: {e}");
    let started = std::time::Instant::now();
    let e = version(&r, "example.com/silent", "").await.unwrap_err();
    assert!(matches!(e, ResolveError::Unreachable { .. }), "{e:?}");
    assert!(e.to_string().contains("no answer within 300ms"), "{e}");
    // Gave up at its 300 ms limit rather than waiting on the silent proxy; loose for a loaded machine.
    assert!(started.elapsed() < Duration::from_secs(10));

    for (module, query) in [("github.com/caddy-dns/cloudflare", "v0.1.0"), ("example.com/busy", "v1"), ("example.com/broken", "v1.0.0")] {
        let _ = version(&r, module, query).await;
    }
    assert_eq!(proxy.hits("github.com/caddy-dns/cloudflare/@v/v0.1.0.info"), 1, "a refusal is cached");
    assert_eq!(proxy.hits("example.com/busy/@v/list"), 2, "a 429 is not");
    assert_eq!(proxy.hits("example.com/broken/@v/v1.0.0.info"), 2, "a 5xx is not");
}

/// As GOPROXY does: after ',' only 404/410 move on to the next proxy, after '|'
/// any failure; a failure other than "not found" is what gets reported.
#[tokio::test]
async fn proxy_fallback_follows_goproxy() {
    let first = FakeProxy::start(Default::default(), Duration::ZERO).await;
    let full = FakeProxy::start(default_answers(), Duration::ZERO).await;
    first.answer("github.com/caddyserver/caddy/v2/@v/list", ProxyAnswer::Status(403, "forbidden here".into()));
    let r = Resolver::new(&format!("{},{}", first.url, full.url), Duration::from_secs(60));
    assert!(matches!(version(&r, CADDY, "").await, Err(ResolveError::Refused { .. })), "',' stops at a 403");
    let r = Resolver::new(&format!("{}|{}", first.url, full.url), Duration::from_secs(60));
    assert_eq!(version(&r, CADDY, "").await.unwrap(), "v2.10.2", "'|' moves on after a 403");
    let r = Resolver::new(&format!("{}|{}", first.url, full.url), Duration::from_secs(60));
    let e = version(&r, "github.com/nobody/none", "").await.unwrap_err();
    assert!(matches!(e, ResolveError::NotFound { .. }), "{e:?}");
    first.answer("github.com/nobody/none/@v/list", ProxyAnswer::Status(500, "down".into()));
    let r = Resolver::new(&format!("{}|{}", first.url, full.url), Duration::from_secs(60));
    let e = version(&r, "github.com/nobody/none", "").await.unwrap_err();
    assert!(matches!(e, ResolveError::Upstream { .. }), "the first proxy's 500 outranks the second's 404: {e:?}");
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
