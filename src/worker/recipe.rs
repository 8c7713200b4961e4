//! The build recipe: `main.go` rendered from `templates/main.go.j2` and the three
//! steps in xcaddy's order. Resolve (`go mod init`, replacements via
//! `go mod edit -replace`, `go get` Caddy, then each plugin together with Caddy's
//! pinned version so a plugin cannot drag Caddy up, `go mod tidy`), build
//! (cross-compiled, no network) and verify (runs the binary, no network).
//! Resolve announces its phases ([`crate::phase`]) and leaves the module graph
//! ([`GRAPH_FILE`]); verify leaves the module listing ([`MODULES_FILE`]).

use std::time::Duration;

use crate::config::Config;
use crate::sandbox::{shell_quote, StepNetwork, StepSpec};
use crate::spec::{BuildSpec, CADDY_MODULE};

const MAIN_GO_TEMPLATE: &str = include_str!("../../templates/main.go.j2");
/// Output of the resolve step's attempt from the module cache alone, shown only if it succeeds.
const OFFLINE_LOG: &str = ".resolve-offline.log";
/// The binary's directory inside the work dir.
pub const OUT_DIR: &str = "out";
/// `go mod graph` after resolve, in the work dir: read when the build fails, to
/// tell which plugins' requirements conflict.
pub const GRAPH_FILE: &str = ".modgraph";
/// `caddy list-modules` output of verify, in the work dir.
pub const MODULES_FILE: &str = ".modules";
/// Every step a build may run, with its network: a build's sandbox has a container for each.
pub const STEPS: [(&str, StepNetwork); 3] = [("resolve", StepNetwork::Online), ("build", StepNetwork::None), ("verify", StepNetwork::None)];

#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    #[error("invalid module path {0:?}")]
    BadModule(String),
    #[error("invalid version {0:?}")]
    BadVersion(String),
    #[error("unsupported target {0}")]
    BadTarget(String),
    #[error("template: {0}")]
    Template(#[from] minijinja::Error),
}

/// Renders `main.go` for the spec's plugins.
pub fn main_go(spec: &BuildSpec) -> Result<String, RecipeError> {
    let mut env = minijinja::Environment::new();
    env.add_template("main.go", MAIN_GO_TEMPLATE)?;
    let plugins: Vec<String> = spec.plugins.iter().map(|p| p.module.clone()).collect();
    for m in &plugins {
        check_module(m)?;
    }
    Ok(env.get_template("main.go")?.render(minijinja::context! { plugins })?)
}

/// Module paths as Go accepts them; anything else never reaches a shell or a template.
fn check_module(m: &str) -> Result<(), RecipeError> {
    let ok = !m.is_empty()
        && m.len() <= 300
        && !m.starts_with(['-', '/', '.'])
        && m.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~/+".contains(&b));
    if ok { Ok(()) } else { Err(RecipeError::BadModule(m.into())) }
}

fn check_version(v: &str) -> Result<(), RecipeError> {
    let ok = v.starts_with('v') && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.+".contains(&b));
    if ok { Ok(()) } else { Err(RecipeError::BadVersion(v.into())) }
}

/// The environment every step shares: caches, toolchain pinning, module settings.
/// Nothing comes from the worker's own environment.
fn base_env(config: &Config, network: bool) -> Vec<(String, String)> {
    let mut env = vec![
        ("PATH", "/usr/local/go/bin:/bin"),
        ("HOME", "/tmp"),
        ("GOPATH", "/tmp/gopath"),
        ("GOMODCACHE", "/cache/gomod"),
        ("GOCACHE", "/cache/gobuild"),
        ("GOTOOLCHAIN", "local"),
        ("GOTELEMETRY", "off"),
        ("GOFLAGS", "-modcacherw"),
        ("CGO_ENABLED", "0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect::<Vec<_>>();
    let (proxy, sumdb) = if network { (config.go_proxy.as_str(), config.go_sumdb.as_str()) } else { ("off", "off") };
    env.push(("GOPROXY".into(), proxy.into()));
    env.push(("GOSUMDB".into(), sumdb.into()));
    env.push(("GOPRIVATE".into(), config.go_private.clone()));
    env.push(("GONOSUMDB".into(), config.go_nosumdb.clone()));
    env
}

/// Resolve: writes go.mod/go.sum next to main.go.
///
/// Every version in a spec is exact, so the result depends on the module cache's
/// contents only, never on when the proxy is asked. The commands therefore run
/// first with `GOPROXY=off`, from the cache alone (the checksum database still
/// vouches for every go.sum line, from its cached answers): with a warm cache
/// that takes a few hundred milliseconds where the proxy's round trips take
/// seconds. When a module is missing, the output of that attempt is dropped and
/// the same commands run again through the configured proxy.
pub fn resolve_step(config: &Config, spec: &BuildSpec, timeout: Duration) -> Result<StepSpec, RecipeError> {
    check_version(&spec.caddy_version)?;
    let caddy = format!("{CADDY_MODULE}@{}", spec.caddy_version);
    let phase = |name: &str| format!("phase {name}");
    let mut commands = vec![phase("initialize_module"), "go mod init caddy".to_string()];
    for r in &spec.replacements {
        check_module(&r.old)?;
        check_module(&r.new)?;
        let new = if r.version.is_empty() {
            r.new.clone()
        } else {
            check_version(&r.version)?;
            format!("{}@{}", r.new, r.version)
        };
        commands.push(format!("go mod edit -replace {}", shell_quote(&format!("{}={new}", r.old))));
    }
    commands.push(phase("pin_versions"));
    commands.push(format!("go get -v {}", shell_quote(&caddy)));
    for p in &spec.plugins {
        check_module(&p.module)?;
        check_version(&p.version)?;
        commands.push(format!("go get -v {} {}", shell_quote(&format!("{}@{}", p.module, p.version)), shell_quote(&caddy)));
    }
    commands.push(phase("tidy_module"));
    commands.push("go mod tidy".into());
    // Chained with `&&`: `set -e` does not apply inside a function whose status `if` tests.
    // Phases go to the step's own output (fd 3) at once, also while the attempt
    // from the cache alone writes to its log file.
    let script = [
        "set -eu".to_string(),
        "exec 3>&1".into(),
        format!("phase() {{ echo \"{}$1\" >&3; }}", crate::phase::MARKER),
        format!("resolve() {{\n  {}\n}}", commands.join(" &&\n  ")),
        format!("if (export GOPROXY=off; resolve) > {OFFLINE_LOG} 2>&1; then"),
        format!("  cat {OFFLINE_LOG}"),
        "else".into(),
        "  echo 'not every module is in the cache: resolving through the module proxy'".into(),
        "  rm -f go.mod go.sum".into(),
        "  resolve".into(),
        "fi".into(),
        format!("rm -f {OFFLINE_LOG}"),
        format!("go mod graph > {GRAPH_FILE} 2>/dev/null || true"),
    ];
    Ok(StepSpec {
        name: "resolve".into(),
        cmd: vec!["/bin/sh".into(), "-c".into(), script.join("\n")],
        env: base_env(config, true),
        timeout,
    })
}

/// Build: cross-compiles with no network and no module downloads.
pub fn build_step(config: &Config, spec: &BuildSpec, timeout: Duration) -> Result<StepSpec, RecipeError> {
    // Which GOOS/GOARCH pairs exist is cbs.targets' business (the spec was validated
    // against it on submit); here only that the values are plain words.
    let word = |w: &str| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !word(&spec.os) || !word(&spec.arch) {
        return Err(RecipeError::BadTarget(format!("{}/{}", spec.os, spec.arch)));
    }
    let mut env = base_env(config, false);
    env.push(("GOOS".into(), spec.os.clone()));
    env.push(("GOARCH".into(), spec.arch.clone()));
    if spec.arch == "arm" {
        let arm = spec.arm.clone().unwrap_or_else(|| "7".into());
        if !["5", "6", "7"].contains(&arm.as_str()) {
            return Err(RecipeError::BadTarget(format!("GOARM={arm}")));
        }
        env.push(("GOARM".into(), arm));
    }
    let out = format!("{OUT_DIR}/{}", spec.binary_name());
    Ok(StepSpec {
        name: "build".into(),
        cmd: ["go", "build", "-o", &out, "-trimpath", "-buildvcs=false", "-ldflags", "-w -s", "."]
            .map(String::from)
            .to_vec(),
        env,
        timeout,
    })
}

/// Verify runs only where the binary runs: a linux binary of the worker's own arch.
pub fn can_verify(spec: &BuildSpec) -> bool {
    let host_arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    spec.os == "linux" && spec.arch == host_arch
}

/// Verify: the binary runs (`caddy version`) and lists its modules
/// (`caddy list-modules --versions --packages`, the plugins' among them, into
/// [`MODULES_FILE`]; Caddy releases without `--packages` list without it). Both
/// run at once, as each spends most of its time starting the binary; their
/// output follows in order.
pub fn verify_step(config: &Config, timeout: Duration) -> StepSpec {
    let list = |flags: &str| format!("./{OUT_DIR}/caddy list-modules {flags} > {MODULES_FILE} 2>/tmp/modules.err");
    let script = [
        format!("./{OUT_DIR}/caddy version > /tmp/version 2>&1 & v=$!"),
        format!("if {}; then m=0; else {}; m=$?; fi", list("--versions --packages"), list("--versions")),
        "wait $v; v=$?".into(),
        format!("cat /tmp/version; echo '--- modules'; cat {MODULES_FILE} /tmp/modules.err"),
        "[ $v -eq 0 ] && [ $m -eq 0 ]".into(),
    ]
    .join("\n");
    StepSpec { name: "verify".into(), cmd: vec!["/bin/sh".into(), "-c".into(), script], env: base_env(config, false), timeout }
}

/// Plugins that are not among the binary's dependencies (its Go build information).
pub fn missing_plugins<'a>(spec: &'a BuildSpec, deps: &[String]) -> Vec<&'a str> {
    spec.plugins.iter().map(|p| p.module.as_str()).filter(|m| !deps.iter().any(|d| d == m)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Plugin;

    fn spec(plugins: &[&str]) -> BuildSpec {
        BuildSpec {
            caddy_version: "v2.11.9".into(),
            plugins: plugins.iter().map(|m| Plugin { module: m.to_string(), version: "v0.2.2".into() }).collect(),
            replacements: vec![],
            os: "linux".into(),
            arch: "amd64".into(),
            arm: None,
            go_version: None,
        }
    }

    #[test]
    fn main_go_imports_each_plugin() {
        let go = main_go(&spec(&["github.com/caddy-dns/cloudflare", "github.com/mholt/caddy-l4"])).unwrap();
        assert!(go.contains("\t_ \"github.com/caddyserver/caddy/v2/modules/standard\"\n"), "{go}");
        assert!(go.contains("\t_ \"github.com/caddy-dns/cloudflare\"\n\t_ \"github.com/mholt/caddy-l4\"\n)"), "{go}");
        assert!(go.contains("caddycmd.Main()"));
        assert!(main_go(&spec(&["github.com/x\"; evil"])).is_err());
    }

    #[test]
    fn resolve_pins_caddy_with_every_plugin() {
        let s = resolve_step(&Config::default(), &spec(&["github.com/caddy-dns/cloudflare"]), Duration::from_secs(1)).unwrap();
        let script = &s.cmd[2];
        let caddy_first = script.find("go get -v 'github.com/caddyserver/caddy/v2@v2.11.9' &&\n").unwrap();
        let plugin = script
            .find("go get -v 'github.com/caddy-dns/cloudflare@v0.2.2' 'github.com/caddyserver/caddy/v2@v2.11.9'")
            .unwrap();
        let tidy = script.find("go mod tidy").unwrap();
        assert!(caddy_first < plugin && plugin < tidy, "{script}");
        let phases: Vec<usize> = ["initialize_module", "pin_versions", "tidy_module"]
            .iter()
            .map(|p| script.find(&format!("phase {p} &&")).unwrap())
            .collect();
        assert!(phases[0] < script.find("go mod init").unwrap() && phases[1] < caddy_first && caddy_first < phases[2] && phases[2] < tidy, "{script}");
        assert_eq!(STEPS[0], (s.name.as_str(), StepNetwork::Online), "only the resolve step has network");
    }

    #[test]
    fn build_targets() {
        let mut sp = spec(&[]);
        sp.os = "windows".into();
        let b = build_step(&Config::default(), &sp, Duration::from_secs(1)).unwrap();
        assert!(b.cmd.contains(&"out/caddy.exe".to_string()));
        assert!(b.env.contains(&("GOPROXY".into(), "off".into())));
        assert!(STEPS.contains(&(b.name.as_str(), StepNetwork::None)));
        assert!(STEPS.contains(&(verify_step(&Config::default(), Duration::from_secs(1)).name.as_str(), StepNetwork::None)));
        sp.os = "linux".into();
        sp.arch = "arm".into();
        sp.arm = Some("6".into());
        let b = build_step(&Config::default(), &sp, Duration::from_secs(1)).unwrap();
        assert!(b.env.contains(&("GOARM".into(), "6".into())));
        sp.os = "../linux".into();
        assert!(build_step(&Config::default(), &sp, Duration::from_secs(1)).is_err());
    }

    #[test]
    fn missing_plugins_from_build_info() {
        let sp = spec(&["github.com/caddy-dns/cloudflare"]);
        assert!(missing_plugins(&sp, &["github.com/caddy-dns/cloudflare".into()]).is_empty());
        assert_eq!(missing_plugins(&sp, &["github.com/other".into()]), vec!["github.com/caddy-dns/cloudflare"]);
    }
}
