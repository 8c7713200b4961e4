//! Turns what a client asked for (compat query or `POST /api/builds` body) into
//! a spec SQL will accept: first SQL checks everything but the versions
//! (`cbs.checked_spec(spec, false)`: targets, ARM variant, module paths, tags, Go),
//! so that every endpoint refuses a bad request with the message its spec would
//! get at submit and no rule has a copy here; then every version query is
//! resolved to an absolute version, concurrently.

use futures::future::try_join_all;

use super::error::{ApiError, ApiResult};
use super::state::AppState;
use crate::gomod::is_absolute;
use crate::spec::{BuildSpec, Plugin, Replacement, CADDY_MODULE};

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

/// Checks everything that needs no module proxy; returns the request in SQL's
/// canonical form (ARM default filled in, plugins sorted by module, tags and Go
/// as the key will have them), its versions still as the client wrote them.
pub async fn validate(state: &AppState, req: SpecRequest) -> ApiResult<BuildSpec> {
    // Configuration, not a spec rule: bounds what is sent to SQL and the proxy.
    let max = state.config.api.max_plugins;
    if req.plugins.len() > max {
        return Err(bad(format!("too many plugins: {} (at most {max})", req.plugins.len())));
    }
    if req.replacements.len() > max {
        return Err(bad(format!("too many replacements: {} (at most {max})", req.replacements.len())));
    }
    refuse_nul(&req)?;
    // The Go is part of the key: a request naming none gets the configured default
    // written into its spec, so the key names the Go its binary is built with.
    let go_version = if req.go_version.trim().is_empty() { state.config.worker.go_version.clone() } else { req.go_version };
    let spec = BuildSpec {
        caddy_version: req.caddy_version,
        plugins: req.plugins,
        replacements: req.replacements,
        os: req.os,
        arch: req.arch,
        arm: req.arm,
        tags: req.tags,
        go_version: Some(go_version),
    };
    let spec = serde_json::to_value(&spec).map_err(|e| ApiError::internal("encoding the spec", e))?;
    let checked = state.queue.check_spec_request(&spec).await?;
    serde_json::from_value(checked).map_err(|e| ApiError::internal("decoding the checked spec", e))
}

/// Postgres text cannot hold NUL, so SQL could not even be asked about a field
/// with one: refused here, in the words SQL uses for other characters.
fn refuse_nul(req: &SpecRequest) -> ApiResult<()> {
    let plugins = req.plugins.iter().flat_map(|p| [("plugins[].module", &p.module), ("plugins[].version", &p.version)]);
    let replacements = req.replacements.iter().flat_map(|r| [("replacements[].old", &r.old), ("replacements[].new", &r.new), ("replacements[].version", &r.version)]);
    let tags = req.tags.iter().flatten().map(|t| ("tags[]", t));
    let fields = [("caddy_version", &req.caddy_version), ("os", &req.os), ("arch", &req.arch), ("go_version", &req.go_version)]
        .into_iter()
        .chain(req.arm.iter().map(|a| ("arm", a)))
        .chain(plugins)
        .chain(replacements)
        .chain(tags);
    for (field, value) in fields {
        if has_nul(value) {
            return Err(bad(format!("{field} contains the character '\\0', which no spec field may")));
        }
    }
    Ok(())
}

/// Whether a string holds NUL, which no Postgres text can.
pub fn has_nul(s: &str) -> bool {
    s.contains('\0')
}

/// Validates, then resolves every version; the result is ready for `cbs.submit_build`.
pub async fn resolve(state: &AppState, req: SpecRequest) -> ApiResult<BuildSpec> {
    let checked = validate(state, req).await?;
    let caddy = state.resolve(CADDY_MODULE, &checked.caddy_version);
    let plugins = try_join_all(checked.plugins.iter().map(|p| async {
        Ok::<_, ApiError>(Plugin { module: p.module.clone(), version: state.resolve(&p.module, &p.version).await? })
    }));
    let replacements = try_join_all(checked.replacements.iter().map(|r| async {
        Ok::<_, ApiError>(Replacement { old: r.old.clone(), new: r.new.clone(), version: state.resolve(&r.new, &r.version).await? })
    }));
    let (caddy, plugins, replacements) = futures::try_join!(async { Ok::<_, ApiError>(caddy.await?) }, plugins, replacements)?;
    // SQL accepted the Go; parsed here to compare it with Caddy's go.mod.
    let go = checked.go_version.as_deref().unwrap_or_default();
    let go = crate::toolchain::GoVersion::parse(go).map_err(|e| bad(e.to_string()))?;
    // Builds run with GOTOOLCHAIN=local: a Go older than Caddy's go.mod asks for
    // would fail at resolve; say so now, naming both.
    if let Some(needed) = state.go_directive(CADDY_MODULE, &caddy).await?
        && !go.satisfies(&needed)
    {
        return Err(bad(format!("go_version {go} is too old for Caddy {caddy}: its go.mod asks for go {needed} or newer")));
    }
    // Still in SQL's order (plugins by module, replacements by old path), so that
    // equivalent requests also share one submit in the coalescer (which keys on this spec).
    Ok(BuildSpec { caddy_version: caddy, plugins, replacements, ..checked })
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
            go_version: "1.26.8".into(),
            ..SpecRequest::default()
        }
    }

    #[test]
    fn pinned_means_every_version_exact_as_written() {
        let pseudo = "v0.0.0-20240101000000-abcdefabcdef";
        assert!(request("v2.10.2", "v0.2.1", pseudo).is_pinned());
        assert!(request("v2.11.0-beta.1", "v2.0.0+incompatible", "v1.0.0").is_pinned());
        let plain = SpecRequest { caddy_version: "v2.10.2".into(), go_version: "go1.26.8".into(), ..SpecRequest::default() };
        assert!(plain.is_pinned());
        // The operator's worker.go_version can change what an unnamed Go means.
        assert!(!SpecRequest { go_version: String::new(), ..plain }.is_pinned());
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
