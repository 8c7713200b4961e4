//! Turns what a client asked for (compat query or `POST /api/builds` body) into
//! a spec SQL will accept: target and module paths checked first, then every
//! version query resolved to an absolute version, concurrently.

use futures::future::try_join_all;

use super::error::{ApiError, ApiResult};
use super::state::AppState;
use crate::gomod::{check_module_path, is_absolute};
use crate::spec::{BuildSpec, Plugin, Replacement, CADDY_MODULE};

/// ARM versions Go supports for `GOARM`.
const ARM_VERSIONS: [&str; 3] = ["5", "6", "7"];
/// GOARM when `arch=arm` comes without `arm` (as cbs.canonical_spec defaults it).
const DEFAULT_ARM: &str = "7";

/// A spec whose versions may still be queries (`latest`, empty, `v2.10`).
#[derive(Debug, Clone, Default)]
pub struct SpecRequest {
    pub caddy_version: String,
    pub plugins: Vec<Plugin>,
    pub replacements: Vec<Replacement>,
    pub os: String,
    pub arch: String,
    pub arm: Option<String>,
    /// Go build tags; `None` means xcaddy's defaults (filled in by SQL).
    pub tags: Option<Vec<String>>,
    /// Go release (`1.26.8` or `go1.26.8`); empty: `worker.go_version`.
    pub go_version: String,
}

impl SpecRequest {
    /// Every version was absolute as the client wrote it (an exact tag or a
    /// pseudo-version), the Go release included: the request names one build for
    /// good, whatever is released later. `latest`, empty, partial (`v2.10`) and
    /// branch queries are not, nor is an unnamed Go, which follows the operator's
    /// `worker.go_version`.
    pub fn is_pinned(&self) -> bool {
        !self.go_version.is_empty()
            && is_absolute(&self.caddy_version)
            && self.plugins.iter().all(|p| is_absolute(&p.version))
            && self.replacements.iter().all(|r| is_absolute(&r.version))
    }
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::BadRequest(msg.into())
}

/// Checks everything that needs no module proxy.
pub async fn validate(state: &AppState, req: &SpecRequest) -> ApiResult<()> {
    if let Some(tags) = &req.tags {
        // The rule is SQL's (cbs.canonical_tags); asked now, so bad tags cost no proxy request.
        state.queue.canonical_tags(&serde_json::json!(tags)).await?;
    }
    if req.os.is_empty() {
        return Err(bad("os is required (e.g. os=linux)"));
    }
    if req.arch.is_empty() {
        return Err(bad("arch is required (e.g. arch=amd64)"));
    }
    let targets = state.targets().await?;
    if !targets.iter().any(|(os, _)| os == &req.os) {
        return Err(bad(format!("os {:?} is not a supported operating system", req.os)));
    }
    if !targets.contains(&(req.os.clone(), req.arch.clone())) {
        return Err(bad(format!("arch {:?} is not a supported architecture for os {:?}", req.arch, req.os)));
    }
    match req.arm.as_deref().filter(|a| !a.is_empty()) {
        Some(arm) if req.arch != "arm" => {
            return Err(bad(format!("arm={arm} is only allowed with arch=arm, not arch={:?}", req.arch)));
        }
        Some(arm) if !ARM_VERSIONS.contains(&arm) => {
            return Err(bad(format!("arm {arm:?} is not a supported ARM version (5, 6 or 7)")));
        }
        _ => {}
    }
    if !req.go_version.trim().is_empty() {
        crate::toolchain::GoVersion::parse(&req.go_version).map_err(|e| bad(e.to_string()))?;
    }
    let max = state.config.api.max_plugins;
    if req.plugins.len() > max {
        return Err(bad(format!("too many plugins: {} (at most {max})", req.plugins.len())));
    }
    if req.replacements.len() > max {
        return Err(bad(format!("too many replacements: {} (at most {max})", req.replacements.len())));
    }
    let mut seen = std::collections::HashSet::new();
    for p in &req.plugins {
        check_module_path(&p.module).map_err(|e| bad(format!("plugin module path {:?} {e}", p.module)))?;
        if p.module == CADDY_MODULE {
            return Err(bad(format!("{CADDY_MODULE} is Caddy itself; choose its version with the version parameter")));
        }
        if !seen.insert(p.module.as_str()) {
            return Err(bad(format!("plugin {} is listed more than once", p.module)));
        }
    }
    let mut seen = std::collections::HashSet::new();
    for r in &req.replacements {
        check_module_path(&r.old).map_err(|e| bad(format!("replaced module path {:?} {e}", r.old)))?;
        check_module_path(&r.new).map_err(|e| bad(format!("replacement module path {:?} {e}", r.new)))?;
        if !seen.insert(r.old.as_str()) {
            return Err(bad(format!("module {} is replaced more than once", r.old)));
        }
    }
    Ok(())
}

/// Validates, then resolves every version; the result is ready for `cbs.submit_build`.
pub async fn resolve(state: &AppState, req: SpecRequest) -> ApiResult<BuildSpec> {
    validate(state, &req).await?;
    let caddy = state.resolve(CADDY_MODULE, &req.caddy_version);
    let plugins = try_join_all(req.plugins.iter().map(|p| async {
        Ok::<_, ApiError>(Plugin { module: p.module.clone(), version: state.resolve(&p.module, &p.version).await? })
    }));
    let replacements = try_join_all(req.replacements.iter().map(|r| async {
        Ok::<_, ApiError>(Replacement { old: r.old.clone(), new: r.new.clone(), version: state.resolve(&r.new, &r.version).await? })
    }));
    let (caddy, mut plugins, mut replacements) = futures::try_join!(async { Ok::<_, ApiError>(caddy.await?) }, plugins, replacements)?;
    // The canonical form cbs.canonical_spec stores, so that equivalent requests
    // also share one submit in the coalescer (which keys on this spec).
    plugins.sort_by(|a, b| a.module.cmp(&b.module));
    replacements.sort_by(|a, b| a.old.cmp(&b.old));
    let arm = match req.arm.filter(|a| !a.is_empty()) {
        None if req.arch == "arm" => Some(DEFAULT_ARM.to_string()),
        arm => arm,
    };
    // The Go is part of the key: a request naming none gets the configured default
    // written into its spec, so the key names the Go its binary is built with.
    let go = if req.go_version.trim().is_empty() { &state.config.worker.go_version } else { &req.go_version };
    let go = crate::toolchain::GoVersion::parse(go).map_err(|e| bad(e.to_string()))?;
    // Builds run with GOTOOLCHAIN=local: a Go older than Caddy's go.mod asks for
    // would fail at resolve; say so now, naming both.
    if let Some(needed) = state.go_directive(CADDY_MODULE, &caddy).await?
        && !go.satisfies(&needed)
    {
        return Err(bad(format!("go_version {go} is too old for Caddy {caddy}: its go.mod asks for go {needed} or newer")));
    }
    let go_version = Some(go.to_string());
    Ok(BuildSpec { caddy_version: caddy, plugins, replacements, os: req.os, arch: req.arch, arm, tags: req.tags, go_version })
}

/// Splits `module@version` on the last `@` (a bare module means latest).
pub fn split_module_version(s: &str) -> (String, String) {
    match s.rsplit_once('@') {
        Some((m, v)) => (m.trim().to_string(), v.trim().to_string()),
        None => (s.trim().to_string(), String::new()),
    }
}

/// Parses a compat `tags` value: build tags separated by commas; an empty
/// value means no tags at all (absent means xcaddy's defaults).
pub fn parse_tags(s: &str) -> Vec<String> {
    s.split(',').map(str::trim).filter(|t| !t.is_empty()).map(String::from).collect()
}

/// Parses a compat `r` value: `old=new@version` (version optional).
pub fn parse_replacement(s: &str) -> ApiResult<Replacement> {
    let (old, rest) = s
        .split_once('=')
        .ok_or_else(|| bad(format!("replacement {s:?} must look like old=new@version")))?;
    let (new, version) = split_module_version(rest);
    Ok(Replacement { old: old.trim().to_string(), new, version })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(caddy: &str, plugin: &str, replacement: &str) -> SpecRequest {
        SpecRequest {
            caddy_version: caddy.into(),
            plugins: vec![Plugin { module: "github.com/a/b".into(), version: plugin.into() }],
            replacements: vec![Replacement { old: "github.com/x/y".into(), new: "github.com/z/y".into(), version: replacement.into() }],
            ..SpecRequest::default()
        }
    }

    #[test]
    fn pinned_means_every_version_exact_as_written() {
        let pseudo = "v0.0.0-20240101000000-abcdefabcdef";
        assert!(request("v2.10.2", "v0.2.1", pseudo).is_pinned());
        assert!(request("v2.11.0-beta.1", "v2.0.0+incompatible", "v1.0.0").is_pinned());
        assert!(SpecRequest { caddy_version: "v2.10.2".into(), ..SpecRequest::default() }.is_pinned());
        for (caddy, plugin, replacement) in [
            ("", "v0.2.1", "v1.0.0"),
            ("latest", "v0.2.1", "v1.0.0"),
            ("v2.10", "v0.2.1", "v1.0.0"),
            ("v2.10.2", "", "v1.0.0"),
            ("v2.10.2", "latest", "v1.0.0"),
            ("v2.10.2", "main", "v1.0.0"),
            ("v2.10.2", "v0.2.1", ""),
            ("v2.10.2", "v0.2.1", "v1"),
        ] {
            assert!(!request(caddy, plugin, replacement).is_pinned(), "{caddy} {plugin} {replacement}");
        }
    }
}
