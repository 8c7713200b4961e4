//! The Caddy modules each plugin adds, read from the verify step's
//! `caddy list-modules --versions --packages` (plain `--versions` on Caddy
//! releases without `--packages`). Recorded with the build's provenance, from
//! where `/api/packages` lists them, so no one has to type them in.
//!
//! The listing has Caddy's own modules, a `Standard modules: N` line, then the
//! plugins' modules (`id version go-module[ => replacement]`), a `Non-standard
//! modules: N` line, and perhaps unknown ones.

use std::collections::BTreeMap;

use crate::spec::BuildSpec;

/// The Caddy module IDs of each plugin of `spec` (an empty list for one that
/// adds none), or `None` when `listing` is not a module listing.
pub fn by_plugin(spec: &BuildSpec, listing: &str) -> Option<BTreeMap<String, Vec<String>>> {
    let mut lines = listing.lines().map(str::trim);
    lines.by_ref().find(|l| l.starts_with("Standard modules:"))?;
    let mut out: BTreeMap<String, Vec<String>> = spec.plugins.iter().map(|p| (p.module.clone(), Vec::new())).collect();
    let single = (spec.plugins.len() == 1).then(|| spec.plugins[0].module.clone());
    for line in lines.take_while(|l| !l.starts_with("Non-standard modules:")) {
        let mut words = line.split_whitespace();
        let Some(id) = words.next() else { continue };
        let go_module = words.nth(1);
        let owner = match go_module.filter(|m| out.contains_key(*m)) {
            Some(m) => Some(m.to_string()),
            None => single.clone(),
        };
        if let Some(ids) = owner.and_then(|o| out.get_mut(&o)) {
            ids.push(id.to_string());
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(plugins: &[&str]) -> BuildSpec {
        BuildSpec::for_test(&plugins.iter().map(|m| (*m, "v1.0.0")).collect::<Vec<_>>())
    }

    const LISTING: &str = "admin.api.load v2.11.9 github.com/caddyserver/caddy/v2
http.handlers.file_server v2.11.9 github.com/caddyserver/caddy/v2

  Standard modules: 2

dns.providers.cloudflare v0.2.1 github.com/caddy-dns/cloudflare
layer4 v0.0.1 github.com/mholt/caddy-l4
layer4.handlers.echo v0.0.1 github.com/mholt/caddy-l4

  Non-standard modules: 3
";

    #[test]
    fn modules_by_package() {
        let m = by_plugin(&spec(&["github.com/caddy-dns/cloudflare", "github.com/mholt/caddy-l4", "example.com/adapter"]), LISTING).unwrap();
        assert_eq!(m["github.com/caddy-dns/cloudflare"], ["dns.providers.cloudflare"]);
        assert_eq!(m["github.com/mholt/caddy-l4"], ["layer4", "layer4.handlers.echo"]);
        assert!(m["example.com/adapter"].is_empty(), "a plugin that adds no module");
    }

    #[test]
    fn without_package_paths_only_a_single_plugin_is_attributed() {
        let old = "http.handlers.file_server v2.4.0\n\n  Standard modules: 1\n\ndns.providers.cloudflare v0.1.0\n\n  Non-standard modules: 1\n";
        let one = by_plugin(&spec(&["github.com/caddy-dns/cloudflare"]), old).unwrap();
        assert_eq!(one["github.com/caddy-dns/cloudflare"], ["dns.providers.cloudflare"]);
        let two = by_plugin(&spec(&["github.com/caddy-dns/cloudflare", "example.com/x"]), old).unwrap();
        assert!(two.values().all(Vec::is_empty));
        assert_eq!(by_plugin(&spec(&["x.com/y"]), "panic: boom"), None);
    }
}
