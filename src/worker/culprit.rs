//! Which module a failed resolve or build step is about, so that the build's
//! error names it before Go's own words (users of a build service otherwise
//! remove plugins one at a time to find the one that breaks the build):
//!
//! - resolve: the first module Go's error names (`go: module@version: …`, or the
//!   start of a `requires` chain: the plugin whose `go get` failed); for an
//!   import chain from the main package (`go: caddy imports …`), the plugin
//!   whose package comes first in it;
//! - build: the module whose package does not compile, found from the file
//!   paths of Go's output (they are in the module cache, `…/module@version/…`),
//!   else from the `# package` line; and when that module requires a
//!   dependency at a lower version than another plugin does, the build got the
//!   other's version and the pair is to blame. The module graph comes from the
//!   resolve step (`go mod graph`).

use std::collections::{HashMap, HashSet};

use crate::spec::{BuildSpec, CADDY_MODULE};

/// The module cache inside the step containers, without its leading `/`: Go
/// prints file paths relative to the work directory (`../cache/gomod/…`) or absolute.
const MODULE_CACHE: &str = "cache/gomod/";
/// How far up the module graph a conflicting requirement is traced to a plugin.
const MAX_CLIMB: usize = 8;
/// The main module's name in `go mod graph` (`go mod init caddy`).
const MAIN_MODULE: &str = "caddy";

/// The culprit of a failed `step`, as it should start the build's error.
pub fn culprit(step: &str, tail: &[String], spec: &BuildSpec, graph: &str) -> Option<String> {
    match step {
        "resolve" => named_by_go(tail, spec),
        "build" => {
            let failing = failing_module(tail, spec)?;
            Some(match conflict(&failing, spec, &Graph::parse(graph)) {
                Some(c) => c,
                None => failing,
            })
        }
        _ => None,
    }
}

/// The first `module@version` of Go's error lines (resolve: `go get`, `go mod tidy`).
fn named_by_go(tail: &[String], spec: &BuildSpec) -> Option<String> {
    for (i, line) in tail.iter().enumerate() {
        let Some(rest) = line.strip_prefix("go: ") else { continue };
        let mut words = rest.split_whitespace();
        let mut first = words.next().unwrap_or_default();
        if first == "module" {
            first = words.next().unwrap_or_default();
        }
        let first = first.trim_end_matches([':', ',']);
        if is_module_version(first) {
            return Some(first.to_string());
        }
        if first == MAIN_MODULE && words.next() == Some("imports") {
            let package = tail.get(i + 1)?.split_whitespace().next()?.trim_end_matches(':');
            return plugin_of_package(package, spec);
        }
    }
    None
}

fn is_module_version(s: &str) -> bool {
    s.rsplit_once('@').is_some_and(|(m, v)| (m.contains('/') || m.contains('.')) && v.starts_with('v'))
}

/// `plugin@version` of the spec's plugin (or Caddy) that provides `package`.
fn plugin_of_package(package: &str, spec: &BuildSpec) -> Option<String> {
    let owns = |module: &str| package == module || package.starts_with(&format!("{module}/"));
    spec.plugins
        .iter()
        .map(|p| (p.module.as_str(), p.version.as_str()))
        .chain([(CADDY_MODULE, spec.caddy_version.as_str())])
        .filter(|(m, _)| owns(m))
        .max_by_key(|(m, _)| m.len())
        .map(|(m, v)| format!("{m}@{v}"))
}

/// The module whose package failed to compile, as `module@version`.
fn failing_module(tail: &[String], spec: &BuildSpec) -> Option<String> {
    let from_path = tail.iter().filter(|l| l.contains(".go:")).find_map(|l| {
        let at = l.find(MODULE_CACHE)? + MODULE_CACHE.len();
        let path = &l[at..];
        let (module, rest) = path.split_once('@')?;
        let version = rest.split('/').next()?;
        Some(format!("{}@{version}", unescape(module)))
    });
    from_path.or_else(|| {
        let package = tail.iter().find_map(|l| l.strip_prefix("# "))?.trim();
        plugin_of_package(package, spec)
    })
}

/// Undoes the module cache's case encoding (`!a` is `A`).
fn unescape(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut upper = false;
    for c in path.chars() {
        match c {
            '!' => upper = true,
            c if upper => {
                out.extend(c.to_uppercase());
                upper = false;
            }
            c => out.push(c),
        }
    }
    out
}

/// `go mod graph`: who requires what, and the versions the build selected.
#[derive(Default)]
struct Graph {
    requires: Vec<(String, String)>,
    selected: HashMap<String, String>,
}

impl Graph {
    fn parse(text: &str) -> Graph {
        let mut g = Graph::default();
        for line in text.lines() {
            let Some((from, to)) = line.split_once(' ') else { continue };
            let Some((path, version)) = to.rsplit_once('@') else { continue };
            if path == "go" || path == "toolchain" {
                continue;
            }
            if from == MAIN_MODULE {
                g.selected.insert(path.to_string(), version.to_string());
            } else {
                g.requires.push((from.to_string(), to.trim().to_string()));
            }
        }
        g
    }
}

/// When `failing` requires a module at a lower version than another plugin
/// does, the pair and how their requirements differ.
fn conflict(failing: &str, spec: &BuildSpec, graph: &Graph) -> Option<String> {
    let plugins: HashSet<&str> = spec.plugins.iter().map(|p| p.module.as_str()).chain([CADDY_MODULE]).collect();
    let failing_path = failing.rsplit_once('@')?.0;
    for (from, to) in graph.requires.iter().filter(|(from, _)| from == failing) {
        let (dep, wanted) = to.rsplit_once('@')?;
        let Some(selected) = graph.selected.get(dep).filter(|s| *s != wanted) else { continue };
        let raised = format!("{dep}@{selected}");
        let raisers = graph.requires.iter().filter(|(_, t)| *t == raised).map(|(f, _)| f.as_str());
        for raiser in raisers {
            if let Some(other) = climb_to_plugin(raiser, &plugins, failing_path, graph) {
                return Some(format!(
                    "{failing} and {other}: their requirements conflict ({from} requires {dep}@{wanted}, {other} needs {raised}, \
                     and the build gets {selected})"
                ));
            }
        }
    }
    None
}

/// The plugin (other than `not`) that is or requires `node`, nearest first.
fn climb_to_plugin(node: &str, plugins: &HashSet<&str>, not: &str, graph: &Graph) -> Option<String> {
    let mut level = vec![node.to_string()];
    let mut seen = HashSet::new();
    for _ in 0..MAX_CLIMB {
        for n in &level {
            let path = n.rsplit_once('@').map_or(n.as_str(), |(p, _)| p);
            if path != not && plugins.contains(path) {
                return Some(n.clone());
            }
        }
        level = level
            .iter()
            .flat_map(|n| graph.requires.iter().filter(move |(_, t)| t == n).map(|(f, _)| f.clone()))
            .filter(|f| seen.insert(f.clone()))
            .collect();
        if level.is_empty() {
            break;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(plugins: &[(&str, &str)]) -> BuildSpec {
        BuildSpec::for_test(plugins)
    }

    fn lines(s: &str) -> Vec<String> {
        s.lines().map(str::to_string).collect()
    }

    #[test]
    fn resolve_names_the_module_go_could_not_fetch() {
        let s = spec(&[("example.com/gone", "v1.0.0")]);
        let tail = lines(
            "go: downloading github.com/caddyserver/caddy/v2 v2.11.9\n\
             go: added github.com/caddyserver/caddy/v2 v2.11.9\n\
             go: example.com/gone@v1.0.0: reading https://proxy.golang.org/example.com/gone/@v/v1.0.0.info: 404 Not Found",
        );
        assert_eq!(culprit("resolve", &tail, &s, "").as_deref(), Some("example.com/gone@v1.0.0"));
        let tail = lines("go: example.com/new@v1.0.0 requires\n\tgithub.com/caddyserver/caddy/v2@v2.12.0, but v2.11.9 is requested");
        assert_eq!(culprit("resolve", &tail, &s, "").as_deref(), Some("example.com/new@v1.0.0"));
        let tail = lines("go: module example.com/gone@v1.0.0 found, but does not contain package example.com/gone");
        assert_eq!(culprit("resolve", &tail, &s, "").as_deref(), Some("example.com/gone@v1.0.0"));
    }

    #[test]
    fn resolve_import_chain_names_the_plugin() {
        let s = spec(&[("example.com/a", "v1.2.0"), ("example.com/a/sub", "v0.1.0")]);
        let tail = lines(
            "go: finding module for package example.com/missing\n\
             go: caddy imports\n\texample.com/a/sub/inner imports\n\texample.com/missing: cannot find module providing package example.com/missing",
        );
        assert_eq!(culprit("resolve", &tail, &s, "").as_deref(), Some("example.com/a/sub@v0.1.0"));
        let tail = lines("go: caddy imports\n\texample.com/a: module example.com/a@v1.2.0 found, but does not contain package example.com/a");
        assert_eq!(culprit("resolve", &tail, &s, "").as_deref(), Some("example.com/a@v1.2.0"));
    }

    #[test]
    fn build_names_the_module_that_does_not_compile() {
        let s = spec(&[("github.com/BurntSushi/plug", "v1.0.0")]);
        let tail = lines(
            "# github.com/BurntSushi/plug\n\
             /cache/gomod/github.com/!burnt!sushi/plug@v1.0.0/plug.go:3:13: cannot use \"x\" (untyped string constant) as int value",
        );
        assert_eq!(culprit("build", &tail, &s, "").as_deref(), Some("github.com/BurntSushi/plug@v1.0.0"));
        let relative = lines("../cache/gomod/example.com/dep@v0.3.0/x.go:1:1: undefined: y");
        assert_eq!(culprit("build", &relative, &s, "").as_deref(), Some("example.com/dep@v0.3.0"));
        let no_paths = lines("# github.com/BurntSushi/plug/sub\nsomething went wrong");
        assert_eq!(culprit("build", &no_paths, &s, "").as_deref(), Some("github.com/BurntSushi/plug@v1.0.0"));
        assert_eq!(culprit("verify", &tail, &s, ""), None);
    }

    #[test]
    fn build_names_the_pair_whose_requirements_conflict() {
        let s = spec(&[("example.com/a", "v1.0.0"), ("example.com/b", "v1.0.0")]);
        let graph = "caddy example.com/a@v1.0.0\ncaddy example.com/b@v1.0.0\ncaddy example.com/dep@v1.1.0\ncaddy go@1.26\n\
                     example.com/a@v1.0.0 example.com/mid@v0.1.0\nexample.com/mid@v0.1.0 example.com/dep@v1.1.0\n\
                     example.com/b@v1.0.0 example.com/dep@v1.0.0\nexample.com/b@v1.0.0 go@1.21\n";
        let tail = lines("# example.com/b\n/cache/gomod/example.com/b@v1.0.0/b.go:5:13: undefined: dep.Old");
        let c = culprit("build", &tail, &s, graph).unwrap();
        assert!(c.starts_with("example.com/b@v1.0.0 and example.com/a@v1.0.0: their requirements conflict"), "{c}");
        assert!(c.contains("example.com/dep@v1.0.0") && c.contains("example.com/dep@v1.1.0"), "{c}");
        // Nobody raised anything: the module alone.
        let alone = "caddy example.com/b@v1.0.0\ncaddy example.com/dep@v1.0.0\nexample.com/b@v1.0.0 example.com/dep@v1.0.0\n";
        assert_eq!(culprit("build", &tail, &s, alone).as_deref(), Some("example.com/b@v1.0.0"));
    }
}
