//! Caddy releases for the version picker, newest first, from the module proxy's
//! list. Cached for the version cache TTL; an unreachable proxy just leaves the
//! picker with "latest".

use std::sync::Mutex;
use std::time::Instant;

use super::UiState;

static CACHE: Mutex<Option<(Instant, Vec<String>)>> = Mutex::new(None);

pub async fn caddy_versions(state: &UiState) -> Vec<String> {
    let ttl = state.config.api.version_cache_ttl;
    if let Some((at, list)) = CACHE.lock().unwrap().as_ref() {
        if at.elapsed() < ttl {
            return list.clone();
        }
    }
    let Some(proxy) = state.config.go_proxy.split(',').map(str::trim).find(|p| p.starts_with("http")) else {
        return Vec::new();
    };
    let url = format!("{}/github.com/caddyserver/caddy/v2/@v/list", proxy.trim_end_matches('/'));
    let text = match reqwest::get(&url).await.and_then(|r| r.error_for_status()) {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot list Caddy versions");
            return Vec::new();
        }
    };
    let mut versions: Vec<semver::Version> = text
        .lines()
        .filter_map(|l| semver::Version::parse(l.trim().trim_start_matches('v')).ok())
        .filter(|v| v.pre.is_empty())
        .collect();
    versions.sort_by(|a, b| b.cmp(a));
    let list: Vec<String> = versions.iter().map(|v| format!("v{v}")).collect();
    *CACHE.lock().unwrap() = Some((Instant::now(), list.clone()));
    list
}
