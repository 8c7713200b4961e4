//! Resolution of module version queries against the module proxies of the
//! config's `go_proxy` (GOPROXY syntax: after `,` the next proxy is tried only
//! when one answers 404/410; after `|` also on any other error).
//!
//! Lookups go through `@v/list` (semver-sorted locally, pre-releases only when
//! asked for by name), since a proxy may not answer `@latest` for a module with
//! tagged releases; `@latest` is asked only when the list holds no release
//! (modules with pseudo-versions or pre-releases only). Results are
//! cached for a short time, and concurrent identical lookups share one request.
//!
//! A proxy's answer is classified the way it matters to the requester: 404/410
//! (no such module or version) and 400/403/422/451 (refused) are the request's
//! problem and quoted in the error; 5xx, 408/429, timeouts and connection
//! failures are the proxy's, transient, and never cached.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::OnceCell;

use super::path::{escape, is_url_safe};
use super::version::{path_major, releases, select, VersionQuery};
use super::ResolveError;

/// Time limit of one request to a proxy, unless the caller sets another.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
/// Bytes of a proxy's error answer read to quote it (its first line or two is the reason).
const QUOTE_READ_BYTES: usize = 2048;
/// Characters of a proxy's error answer quoted in an error message.
const QUOTE_CHARS: usize = 300;
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
    timeout: Duration,
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

/// Why no proxy gave a usable answer to one GET; the text says what the proxy
/// said (or why it said nothing), for a message to the requester.
#[derive(Debug)]
enum Failure {
    /// Every proxy answered 404 or 410.
    NotFound(String),
    Refused(String),
    Upstream(String),
    Unreachable(String),
}

impl Failure {
    fn into_error(self, module: &str, query: &str) -> ResolveError {
        let (module, query) = (module.to_string(), query.to_string());
        match self {
            Failure::NotFound(detail) => ResolveError::NotFound { module, query, detail },
            Failure::Refused(detail) => ResolveError::Refused { module, query, detail },
            Failure::Upstream(message) => ResolveError::Upstream { module, query, message },
            Failure::Unreachable(message) => ResolveError::Unreachable { module, query, message },
        }
    }
}

/// The proxy's status and the start of its answer, whitespace folded: what the
/// requester is shown of a proxy's refusal.
async fn quote(mut resp: reqwest::Response) -> String {
    let status = resp.status();
    let mut body = Vec::new();
    while body.len() < QUOTE_READ_BYTES {
        match resp.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&body);
    let mut folded = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if let Some((cut, _)) = folded.char_indices().nth(QUOTE_CHARS) {
        folded.truncate(cut);
        folded.push('…');
    }
    match folded.is_empty() {
        true => format!("the module proxy answered {status}"),
        false => format!("the module proxy answered {status}: {folded:?}"),
    }
}

/// Refuses a path that cannot be asked of a proxy (see [`is_url_safe`]); its
/// callers have checked it by Go's rules in SQL already.
fn guard(module: &str) -> Result<(), ResolveError> {
    if is_url_safe(module) {
        return Ok(());
    }
    Err(ResolveError::BadPath { module: module.into(), problem: "cannot be asked of a module proxy".into() })
}

impl Resolver {
    pub fn new(go_proxy: &str, ttl: Duration) -> Resolver {
        Self::with_timeout(go_proxy, ttl, DEFAULT_TIMEOUT)
    }

    /// A resolver whose proxy requests give up after `timeout`.
    pub fn with_timeout(go_proxy: &str, ttl: Duration, timeout: Duration) -> Resolver {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("caddy-build-server/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("a TLS backend is available");
        Resolver { client, timeout, proxies: parse_proxies(go_proxy), ttl, slots: Mutex::new(HashMap::new()) }
    }

    /// Resolves `query` (`latest`, empty, `v2.10`, an exact tag, a pseudo-version,
    /// a branch) to an absolute version of `module`.
    pub async fn resolve(&self, module: &str, query: &str) -> Result<Resolved, ResolveError> {
        guard(module)?;
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
        if outcome.as_ref().is_err_and(ResolveError::is_transient) {
            self.forget(&key, &cell);
        }
        outcome.map(|version| Resolved { version, cached: cached || !fetched })
    }

    /// The module's releases, newest first (for the download page's version
    /// picker). Cached like resolutions, under a key no version query can have.
    pub async fn releases(&self, module: &str) -> Result<Vec<String>, ResolveError> {
        guard(module)?;
        let key = (module.to_string(), "@v/list".to_string());
        let (cell, _) = self.slot(&key);
        let outcome = cell
            .get_or_init(|| async {
                match self.get(&format!("{}/@v/list", escape(module))).await {
                    Ok(list) => Ok(releases(&list).join("\n")),
                    Err(Failure::NotFound(_)) => Ok(String::new()),
                    Err(failure) => Err(failure.into_error(module, "list")),
                }
            })
            .await
            .clone();
        if outcome.is_err() {
            self.forget(&key, &cell);
        }
        Ok(outcome?.lines().map(str::to_string).collect())
    }

    /// The `go` directive of `module@version`'s go.mod (`1.26.0`), or `None` when
    /// it has none or the proxy does not have the file. Cached like resolutions.
    pub async fn go_directive(&self, module: &str, version: &str) -> Result<Option<String>, ResolveError> {
        guard(module)?;
        let path = format!("{}/@v/{version}.mod", escape(module));
        let key = (module.to_string(), format!("@v/{version}.mod"));
        let (cell, _) = self.slot(&key);
        let outcome = cell
            .get_or_init(|| async {
                match self.get(&path).await {
                    Ok(go_mod) => Ok(go_mod
                        .lines()
                        .find_map(|l| l.trim().strip_prefix("go ").map(|v| v.trim().to_string()))
                        .unwrap_or_default()),
                    Err(Failure::NotFound(_)) => Ok(String::new()),
                    Err(failure) => Err(failure.into_error(module, version)),
                }
            })
            .await
            .clone();
        if outcome.is_err() {
            self.forget(&key, &cell);
        }
        Ok(Some(outcome?).filter(|v| !v.is_empty()))
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
        let failed = |f: Failure| f.into_error(module, query);
        let upstream = |message: String| ResolveError::Upstream { module: module.into(), query: query.into(), message };
        let base = format!("{}/@v", escape(module));
        match &parsed {
            VersionQuery::Exact(v) | VersionQuery::Other(v) => {
                let info = self.get(&format!("{base}/{}.info", escape(v))).await.map_err(failed)?;
                let info: Info = serde_json::from_str(&info).map_err(|e| upstream(format!("bad .info answer: {e}")))?;
                Ok(info.version)
            }
            VersionQuery::Latest | VersionQuery::Prefix { .. } => {
                let list = match self.get(&format!("{base}/list")).await {
                    Ok(list) => list,
                    Err(Failure::NotFound(_)) => String::new(),
                    Err(f) => return Err(failed(f)),
                };
                if let Some(v) = select(&list, &parsed, path_major(module)) {
                    return Ok(v);
                }
                // No release: only `latest` may still have an answer (pseudo-versions, or
                // pre-releases only), which the proxy's `@latest` gives.
                if parsed != VersionQuery::Latest {
                    let detail = "no release in the module proxy's version list matches it".to_string();
                    return Err(ResolveError::NotFound { module: module.into(), query: query.into(), detail });
                }
                let latest = self.get(&format!("{}/@latest", escape(module))).await.map_err(failed)?;
                let info: Info = serde_json::from_str(&latest).map_err(|e| upstream(format!("bad @latest answer: {e}")))?;
                Ok(info.version)
            }
        }
    }

    /// GETs `path` from the proxies in GOPROXY order: after `,` the next proxy is
    /// asked only when one answers 404/410, after `|` after any failure. As Go
    /// does, a failure other than "not found" is the one reported.
    async fn get(&self, path: &str) -> Result<String, Failure> {
        let mut not_found = "the module proxy answered 404 Not Found".to_string();
        let mut other = None;
        for proxy in &self.proxies {
            let url = format!("{}/{path}", proxy.base);
            let failure = match self.client.get(&url).send().await {
                Ok(resp) if resp.status().is_success() => match resp.text().await {
                    Ok(body) => return Ok(body),
                    Err(e) => self.unreachable(&url, &e),
                },
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let quoted = quote(resp).await;
                    match status {
                        404 | 410 => {
                            not_found = quoted;
                            continue;
                        }
                        400 | 403 | 422 | 451 => Failure::Refused(quoted),
                        408 | 429 => Failure::Unreachable(quoted),
                        _ => Failure::Upstream(quoted),
                    }
                }
                Err(e) => self.unreachable(&url, &e),
            };
            tracing::warn!(%url, ?failure, "module proxy request failed");
            if !proxy.fallthrough_on_error {
                return Err(failure);
            }
            other = Some(failure);
        }
        Err(other.unwrap_or(Failure::NotFound(not_found)))
    }

    /// A request that got no (complete) answer, described without the proxy's URL.
    fn unreachable(&self, url: &str, e: &reqwest::Error) -> Failure {
        tracing::debug!(%url, error = %e, "module proxy request got no answer");
        Failure::Unreachable(match e {
            e if e.is_timeout() => format!("no answer within {}", humantime::format_duration(self.timeout)),
            e if e.is_connect() => "cannot connect to the module proxy".into(),
            _ => "the connection to the module proxy failed".into(),
        })
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
