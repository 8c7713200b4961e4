//! Resolution of module version queries against the module proxies of the
//! config's `go_proxy` (GOPROXY syntax: after `,` the next proxy is tried only
//! when one answers 404/410; after `|` also on any other error).
//!
//! Lookups go through `@v/list` (semver-sorted locally, pre-releases only when
//! asked for by name), since a proxy may not answer `@latest` for a module with
//! tagged releases; `@latest` is asked only when the list holds no release
//! (modules with pseudo-versions or pre-releases only). Results are
//! cached for a short time, and concurrent identical lookups share one request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::OnceCell;

use super::path::{check_module_path, escape};
use super::version::{path_major, releases, select, VersionQuery};
use super::ResolveError;

/// Time limit of one request to a proxy.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Above this many cached entries, expired ones are dropped on the next insert.
const PRUNE_ABOVE: usize = 10_000;

#[derive(Debug, Clone)]
struct Proxy {
    base: String,
    /// `|` after this proxy: fall through to the next one on any error.
    fallthrough_on_error: bool,
}

type Outcome = Result<String, ResolveError>;

struct Slot {
    created: Instant,
    cell: Arc<OnceCell<Outcome>>,
}

/// A resolved version, and whether it came without asking a proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub version: String,
    /// Served from the cache or by joining an identical lookup in flight.
    pub cached: bool,
}

pub struct Resolver {
    client: reqwest::Client,
    proxies: Vec<Proxy>,
    ttl: Duration,
    slots: Mutex<HashMap<(String, String), Slot>>,
}

#[derive(Deserialize)]
struct Info {
    #[serde(rename = "Version")]
    version: String,
}

/// Splits a GOPROXY value; `direct` and `off` are skipped (the api only talks to proxies).
fn parse_proxies(go_proxy: &str) -> Vec<Proxy> {
    let mut out = Vec::new();
    let mut rest = go_proxy;
    while !rest.is_empty() {
        let end = rest.find([',', '|']).unwrap_or(rest.len());
        let entry = rest[..end].trim();
        let pipe = rest[end..].starts_with('|');
        if !entry.is_empty() && entry != "direct" && entry != "off" {
            out.push(Proxy { base: entry.trim_end_matches('/').to_string(), fallthrough_on_error: pipe });
        }
        rest = rest.get(end + 1..).unwrap_or("");
    }
    out
}

impl Resolver {
    pub fn new(go_proxy: &str, ttl: Duration) -> Resolver {
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("caddy-build-server/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("a TLS backend is available");
        Resolver { client, proxies: parse_proxies(go_proxy), ttl, slots: Mutex::new(HashMap::new()) }
    }

    /// Resolves `query` (`latest`, empty, `v2.10`, an exact tag, a pseudo-version,
    /// a branch) to an absolute version of `module`.
    pub async fn resolve(&self, module: &str, query: &str) -> Result<Resolved, ResolveError> {
        check_module_path(module).map_err(|problem| ResolveError::BadPath { module: module.into(), problem })?;
        let parsed = VersionQuery::parse(query)
            .ok_or_else(|| ResolveError::BadVersion { module: module.into(), query: query.into() })?;
        let key = (module.to_string(), query.trim().to_string());
        let (cell, cached) = self.slot(&key);
        let mut fetched = false;
        let outcome = cell
            .get_or_init(|| {
                fetched = true;
                self.lookup(module, query, parsed)
            })
            .await
            .clone();
        if matches!(outcome, Err(ResolveError::Upstream { .. })) {
            self.forget(&key, &cell);
        }
        outcome.map(|version| Resolved { version, cached: cached || !fetched })
    }

    /// The module's releases, newest first (for the download page's version
    /// picker). Cached like resolutions, under a key no version query can have.
    pub async fn releases(&self, module: &str) -> Result<Vec<String>, ResolveError> {
        check_module_path(module).map_err(|problem| ResolveError::BadPath { module: module.into(), problem })?;
        let key = (module.to_string(), "@v/list".to_string());
        let (cell, _) = self.slot(&key);
        let outcome = cell
            .get_or_init(|| async {
                let list = self.get(&format!("{}/@v/list", escape(module))).await;
                list.map(|l| releases(&l.unwrap_or_default()).join("\n")).map_err(|message| ResolveError::Upstream {
                    module: module.into(),
                    query: "list".into(),
                    message,
                })
            })
            .await
            .clone();
        if outcome.is_err() {
            self.forget(&key, &cell);
        }
        Ok(outcome?.lines().map(str::to_string).collect())
    }

    /// The cache slot for `key`: a live one (hit) or a fresh, empty one.
    fn slot(&self, key: &(String, String)) -> (Arc<OnceCell<Outcome>>, bool) {
        let mut slots = self.slots.lock().unwrap();
        if let Some(slot) = slots.get(key) {
            let done = slot.cell.initialized();
            if !done || slot.created.elapsed() < self.ttl {
                return (slot.cell.clone(), done);
            }
        }
        if slots.len() > PRUNE_ABOVE {
            let ttl = self.ttl;
            slots.retain(|_, s| !s.cell.initialized() || s.created.elapsed() < ttl);
        }
        let cell = Arc::new(OnceCell::new());
        slots.insert(key.clone(), Slot { created: Instant::now(), cell: cell.clone() });
        (cell, false)
    }

    /// Drops a failed lookup so that the next caller asks again.
    fn forget(&self, key: &(String, String), cell: &Arc<OnceCell<Outcome>>) {
        let mut slots = self.slots.lock().unwrap();
        if slots.get(key).is_some_and(|s| Arc::ptr_eq(&s.cell, cell)) {
            slots.remove(key);
        }
    }

    async fn lookup(&self, module: &str, query: &str, parsed: VersionQuery) -> Outcome {
        let not_found = || ResolveError::NotFound { module: module.into(), query: query.into() };
        let upstream = |message: String| ResolveError::Upstream { module: module.into(), query: query.into(), message };
        let base = format!("{}/@v", escape(module));
        match &parsed {
            VersionQuery::Exact(v) | VersionQuery::Other(v) => {
                let body = self.get(&format!("{base}/{}.info", escape(v))).await.map_err(upstream)?;
                let info = body.ok_or_else(not_found)?;
                let info: Info = serde_json::from_str(&info).map_err(|e| upstream(format!("bad .info answer: {e}")))?;
                Ok(info.version)
            }
            VersionQuery::Latest | VersionQuery::Prefix { .. } => {
                let list = self.get(&format!("{base}/list")).await.map_err(upstream)?.unwrap_or_default();
                if let Some(v) = select(&list, &parsed, path_major(module)) {
                    return Ok(v);
                }
                // No release: only `latest` may still have an answer (pseudo-versions, or
                // pre-releases only), which the proxy's `@latest` gives.
                if parsed != VersionQuery::Latest {
                    return Err(not_found());
                }
                let latest = self.get(&format!("{}/@latest", escape(module))).await.map_err(upstream)?;
                let info: Info = serde_json::from_str(&latest.ok_or_else(not_found)?)
                    .map_err(|e| upstream(format!("bad @latest answer: {e}")))?;
                Ok(info.version)
            }
        }
    }

    /// GETs `path` from the proxies in order: `Ok(None)` when every proxy says not found.
    async fn get(&self, path: &str) -> Result<Option<String>, String> {
        let mut last_error = None;
        for proxy in &self.proxies {
            let url = format!("{}/{path}", proxy.base);
            let error = match self.client.get(&url).send().await {
                Ok(resp) if resp.status().is_success() => match resp.text().await {
                    Ok(body) => return Ok(Some(body)),
                    Err(e) => format!("{url}: {e}"),
                },
                Ok(resp) if matches!(resp.status().as_u16(), 404 | 410) => continue,
                Ok(resp) => format!("{url}: HTTP {}", resp.status()),
                Err(e) => format!("{url}: {e}"),
            };
            tracing::warn!(%error, "module proxy request failed");
            if !proxy.fallthrough_on_error {
                return Err(error);
            }
            last_error = Some(error);
        }
        last_error.map_or(Ok(None), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goproxy_syntax() {
        let p = parse_proxies("https://a.example, direct|https://b.example/|https://c.example,off");
        let bases: Vec<_> = p.iter().map(|p| (p.base.as_str(), p.fallthrough_on_error)).collect();
        assert_eq!(bases, [("https://a.example", false), ("https://b.example", true), ("https://c.example", false)]);
    }
}
