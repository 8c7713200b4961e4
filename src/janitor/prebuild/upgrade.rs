//! A popular spec rebuilt with new releases: Caddy and each plugin move to the
//! newest release the module proxy lists when it is newer than the spec's
//! (pre-releases never count), everything else (target, replacements, any other
//! option) stays as requested. Pure, so the rules are tested without a proxy.

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::db::{PopularSpec, PrebuildReason, PrebuildRequest};
use crate::gomod::is_newer_release;
use crate::spec::CADDY_MODULE;

/// The prebuild of `popular` with the releases in `newest` (module path →
/// newest release; Caddy under [`CADDY_MODULE`]), or `None` when nothing in it
/// has a newer release.
pub fn upgrade(popular: &PopularSpec, newest: &HashMap<String, String>) -> Option<PrebuildRequest> {
    let mut spec = popular.spec.clone();
    let newer = |module: &str, current: &str| newest.get(module).filter(|n| is_newer_release(n, current)).cloned();

    let mut detail = serde_json::Map::new();
    let caddy_to = newer(CADDY_MODULE, &spec.caddy_version);
    if let Some(to) = &caddy_to {
        detail.insert("caddy".into(), json!({"from": spec.caddy_version, "to": to}));
        spec.caddy_version = to.clone();
    }
    let mut plugins = Vec::new();
    for p in spec.plugins.iter_mut() {
        if let Some(to) = newer(&p.module, &p.version) {
            plugins.push(json!({"module": p.module, "from": p.version, "to": to}));
            p.version = to;
        }
    }
    if !plugins.is_empty() {
        detail.insert("plugins".into(), Value::Array(plugins));
    }
    if detail.is_empty() {
        return None;
    }
    let reason = if caddy_to.is_some() { PrebuildReason::CaddyRelease } else { PrebuildReason::PluginRelease };
    let spec = serde_json::to_value(&spec).expect("a spec is plain data");
    Some(PrebuildRequest { spec, reason, detail: Value::Object(detail), source: Some(popular.clone()) })
}

/// The modules whose releases matter to `specs`: Caddy and every plugin, once each.
pub fn watched_modules(specs: &[PopularSpec]) -> Vec<String> {
    let mut modules = vec![CADDY_MODULE.to_string()];
    for s in specs {
        modules.extend(s.spec.plugins.iter().map(|p| p.module.clone()));
    }
    modules.sort();
    modules.dedup();
    modules
}

#[cfg(test)]
mod tests {
    use super::*;

    fn popular(caddy: &str, plugins: &[(&str, &str)]) -> PopularSpec {
        let plugins: Vec<Value> = plugins.iter().map(|(m, v)| json!({"module": m, "version": v})).collect();
        PopularSpec {
            build_key: "k".repeat(64),
            spec: serde_json::from_value(json!({"caddy_version": caddy, "os": "linux", "arch": "arm", "arm": "6", "plugins": plugins,
                         "replacements": [{"old": "a.example/x", "new": "b.example/x", "version": "v1.0.0"}]}))
            .unwrap(),
            requests: 7,
        }
    }

    fn newest(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(m, v)| (m.to_string(), v.to_string())).collect()
    }

    #[test]
    fn a_caddy_release_moves_caddy_and_any_plugin_with_a_release() {
        let p = popular("v2.11.8", &[("github.com/a/dns", "v0.2.1"), ("github.com/b/l4", "v0.1.0")]);
        let up = upgrade(&p, &newest(&[(CADDY_MODULE, "v2.11.9"), ("github.com/a/dns", "v0.2.1"), ("github.com/b/l4", "v0.2.0")])).unwrap();
        assert_eq!(up.reason, PrebuildReason::CaddyRelease);
        assert_eq!(up.spec["caddy_version"], "v2.11.9");
        assert_eq!(up.spec["plugins"][0]["version"], "v0.2.1");
        assert_eq!(up.spec["plugins"][1]["version"], "v0.2.0");
        assert_eq!((up.spec["arm"].clone(), up.spec["replacements"].clone()), (json!(p.spec.arm), json!(p.spec.replacements)));
        assert_eq!(up.detail, json!({"caddy": {"from": "v2.11.8", "to": "v2.11.9"}, "plugins": [{"module": "github.com/b/l4", "from": "v0.1.0", "to": "v0.2.0"}]}));
        assert_eq!(up.source.unwrap().requests, 7);
    }

    #[test]
    fn plugin_releases_alone_and_nothing_new() {
        let p = popular("v2.11.9", &[("github.com/a/dns", "v0.2.1")]);
        let up = upgrade(&p, &newest(&[(CADDY_MODULE, "v2.11.9"), ("github.com/a/dns", "v0.3.0")])).unwrap();
        assert_eq!(up.reason, PrebuildReason::PluginRelease);
        assert_eq!(up.detail, json!({"plugins": [{"module": "github.com/a/dns", "from": "v0.2.1", "to": "v0.3.0"}]}));
        // Same versions, an older one, a pre-release, or no answer for a module: nothing to build.
        assert_eq!(upgrade(&p, &newest(&[(CADDY_MODULE, "v2.11.9"), ("github.com/a/dns", "v0.2.1")])), None);
        assert_eq!(upgrade(&p, &newest(&[(CADDY_MODULE, "v2.11.8")])), None);
        assert_eq!(upgrade(&p, &newest(&[(CADDY_MODULE, "v2.12.0-rc.1")])), None);
        assert_eq!(upgrade(&p, &HashMap::new()), None);
    }

    #[test]
    fn watched_modules_are_caddy_and_the_plugins_once() {
        let specs = [popular("v2.11.9", &[("github.com/a/dns", "v1.0.0")]), popular("v2.10.2", &[("github.com/a/dns", "v1.0.0"), ("github.com/c/x", "v1.0.0")])];
        assert_eq!(watched_modules(&specs), ["github.com/a/dns", "github.com/c/x", CADDY_MODULE]);
    }
}
