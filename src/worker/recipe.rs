//! The build recipe: xcaddy v0.4.5's, so that a binary built here is
//! byte-identical to what `xcaddy build` makes of the same spec with the same Go
//! (see [`crate::xcaddy`] for the command). `main.go` is rendered from
//! `templates/main.go.j2` (xcaddy's template, byte for byte: line numbers are in
//! the binary), then three steps run the `go` commands xcaddy runs, in its
//! order. Resolve: `go mod init caddy`, one `go mod edit` with every
//! replacement, `go get -v` Caddy, then each plugin together with Caddy's pinned
//! version (so a plugin cannot drag Caddy up; plugins below a replaced path are
//! skipped, as xcaddy skips them), `go get -v ''`, for Windows the version
//! resource ([`WINRES_DIR`]), and `go mod tidy -e`. Build (cross-compiled, no
//! network): `CGO_ENABLED=0 go build -ldflags "-w -s" -trimpath -tags …`.
//! Verify runs the binary (no network). Resolve announces its phases
//! ([`crate::phase`]) and leaves the module graph ([`GRAPH_FILE`]); verify leaves
//! the module listing ([`MODULES_FILE`]).

use std::time::Duration;

use crate::config::Config;
use crate::sandbox::{shell_quote, StepNetwork, StepSpec};
use crate::spec::{BuildSpec, CADDY_MODULE};

const MAIN_GO_TEMPLATE: &str = include_str!("../../templates/main.go.j2");
/// Where the Windows version resource's generator (`templates/winres`) is
/// written in the work dir: a module of its own, which Go's package patterns
/// skip (its name starts with a dot).
pub const WINRES_DIR: &str = ".winres";
/// The generator's executable, in the work dir while resolve runs.
const WINRES_BIN: &str = ".winres.bin";
/// The generator's files, written into [`WINRES_DIR`] for Windows targets.
pub const WINRES_FILES: [(&str, &str); 3] = [
    ("go.mod", include_str!("../../templates/winres/go.mod")),
    ("go.sum", include_str!("../../templates/winres/go.sum")),
    ("main.go", include_str!("../../templates/winres/main.go")),
];
/// Output of the resolve step's attempt from the module cache alone, shown only if it succeeds.
const OFFLINE_LOG: &str = ".resolve-offline.log";
/// When this file exists (in the resolve container's own /tmp), the attempt
/// from the cache alone is skipped: something before it found that a module
/// the spec names is not in the cache (see `gocache::ForBuild::resolve_step`).
pub const SKIP_OFFLINE_FLAG: &str = "/tmp/.resolve-online";
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
    #[error("invalid build tag {0:?}")]
    BadTag(String),
    #[error("template: {0}")]
    Template(#[from] minijinja::Error),
}

/// Renders `main.go` for the spec's plugins, as xcaddy writes it.
pub fn main_go(spec: &BuildSpec) -> Result<String, RecipeError> {
    let mut env = minijinja::Environment::new();
    // xcaddy's file ends with a newline, which minijinja drops unless told.
    env.set_syntax(minijinja::syntax::SyntaxConfig::builder().keep_trailing_newline(true).build()?);
    env.add_template("main.go", MAIN_GO_TEMPLATE)?;
    let plugins: Vec<String> = spec.plugins.iter().map(|p| p.module.clone()).collect();
    for m in &plugins {
        check_module(m)?;
    }
    Ok(env.get_template("main.go")?.render(minijinja::context! { plugins })?)
}

/// Go's module path rules are SQL's (cbs.module_path_problem checked the spec on
/// submit); here only that a path is safe in a shell command and a template.
fn check_module(m: &str) -> Result<(), RecipeError> {
    let ok = !m.is_empty()
        && !m.starts_with(['-', '/', '.'])
        && m.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~/+".contains(&b));
    if ok { Ok(()) } else { Err(RecipeError::BadModule(m.into())) }
}

/// Which versions are valid is SQL's (cbs.module_version_problem); here only
/// that a version is plain on a command line.
fn check_version(v: &str) -> Result<(), RecipeError> {
    let ok = v.starts_with('v') && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.+".contains(&b));
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

/// For a Windows target, the command that writes xcaddy's version resource
/// (`resource_windows_<arch>.syso`) into the work dir from the generator in
/// [`WINRES_DIR`] (see [`write_windows_resource_generator`]); it needs the
/// network for the generator's modules. Built into the work dir and run from
/// there: /tmp, where `go run` would put it, is mounted noexec.
pub fn windows_resource(spec: &BuildSpec) -> Result<Option<String>, RecipeError> {
    if spec.os != "windows" {
        return Ok(None);
    }
    check_target(spec)?;
    Ok(Some(format!(
        "(cd {WINRES_DIR} && go build -o ../{WINRES_BIN} . && ../{WINRES_BIN} -dir .. -arch {} -output {}) && rm -f {WINRES_BIN}",
        shell_quote(&spec.arch),
        shell_quote(spec.binary_name())
    )))
}

/// Writes the Windows version resource's generator into the work dir.
pub async fn write_windows_resource_generator(work: &std::path::Path) -> std::io::Result<()> {
    let dir = work.join(WINRES_DIR);
    tokio::fs::create_dir_all(&dir).await?;
    for (name, text) in WINRES_FILES {
        tokio::fs::write(dir.join(name), text).await?;
    }
    Ok(())
}

/// The resolve step's GOMAXPROCS. The go command asks the module proxy as many
/// questions at once as it has procs (it checks every module of the build list
/// for retractions, one `@v/list` each, even when the cache has every file), so
/// on a two-core host it waits on two round trips at a time. Its results do not
/// depend on it; measured with a warm module cache and the proxy: `go get ''`
/// 3.0-4.7 s with 2, 1.0-1.5 s with 16 or 32.
const RESOLVE_PARALLELISM: u32 = 16;

/// Resolve: writes go.mod/go.sum next to main.go (and, for Windows, the
/// version resource `resource_windows_<arch>.syso`).
///
/// Every version in a spec is exact, so the result depends on the module cache's
/// contents only, never on when the proxy is asked. The commands therefore run
/// first with `GOPROXY=off`, from the cache alone (the checksum database still
/// vouches for every go.sum line, from its cached answers): with a warm cache
/// that takes a few hundred milliseconds where the proxy's round trips take
/// seconds. When a module is missing, the output of that attempt is dropped (but
/// its last lines, which say what was missing) and the same commands run again
/// through the configured proxy.
pub fn resolve_step(config: &Config, spec: &BuildSpec, timeout: Duration) -> Result<StepSpec, RecipeError> {
    check_version(&spec.caddy_version)?;
    let caddy = format!("{CADDY_MODULE}@{}", spec.caddy_version);
    let phase = |name: &str| format!("phase {name}");
    let mut commands = vec![phase("initialize_module"), "go mod init caddy".to_string()];
    // xcaddy edits every replacement in one `go mod edit` before pinning versions.
    let mut edit = Vec::new();
    for r in &spec.replacements {
        check_module(&r.old)?;
        check_module(&r.new)?;
        let new = if r.version.is_empty() {
            r.new.clone()
        } else {
            check_version(&r.version)?;
            format!("{}@{}", r.new, r.version)
        };
        edit.push(format!("-replace {}", shell_quote(&format!("{}={new}", r.old))));
    }
    if !edit.is_empty() {
        commands.push(format!("go mod edit {}", edit.join(" ")));
    }
    commands.push(phase("pin_versions"));
    commands.push(format!("go get -v {}", shell_quote(&caddy)));
    for p in fetched_plugins(spec) {
        check_module(&p.module)?;
        check_version(&p.version)?;
        commands.push(format!("go get -v {} {}", shell_quote(&format!("{}@{}", p.module, p.version)), shell_quote(&caddy)));
    }
    // xcaddy's closing `go get`, meant to settle ambiguities a plugin brings in;
    // it passes an empty argument (its Go code appends ""), and so do we.
    commands.push("go get -v ''".into());
    if let Some(command) = windows_resource(spec)? {
        commands.push(phase(crate::phase::WINDOWS_RESOURCES));
        commands.push(command);
    }
    commands.push(phase("tidy_module"));
    commands.push("go mod tidy -e".into());
    // Chained with `&&`: `set -e` does not apply inside a function whose status `if` tests.
    // Phases go to the step's own output (fd 3) at once, also while the attempt
    // from the cache alone writes to its log file.
    let script = [
        "set -eu".to_string(),
        "exec 3>&1".into(),
        format!("phase() {{ echo \"{}$1\" >&3; }}", crate::phase::MARKER),
        format!("resolve() {{\n  {}\n}}", commands.join(" &&\n  ")),
        format!("if [ ! -e {SKIP_OFFLINE_FLAG} ] && (export GOPROXY=off; resolve) > {OFFLINE_LOG} 2>&1; then"),
        format!("  cat {OFFLINE_LOG}"),
        "else".into(),
        "  echo 'not every module is in the cache: resolving through the module proxy'".into(),
        format!("  if [ -s {OFFLINE_LOG} ]; then tail -n 3 {OFFLINE_LOG} | sed 's/^/  from the cache alone: /'; fi"),
        "  rm -f go.mod go.sum resource_windows_*.syso".into(),
        "  resolve".into(),
        "fi".into(),
        format!("rm -f {OFFLINE_LOG}"),
        format!("go mod graph > {GRAPH_FILE} 2>/dev/null || true"),
    ];
    let mut env = base_env(config, true);
    env.push(("GOMAXPROCS".into(), RESOLVE_PARALLELISM.to_string()));
    Ok(StepSpec { name: "resolve".into(), cmd: vec!["/bin/sh".into(), "-c".into(), script.join("\n")], env, timeout })
}

/// The plugins the resolve step fetches: all but those inside a replaced module
/// (xcaddy's issue 221: the replacement brings them).
pub fn fetched_plugins(spec: &BuildSpec) -> impl Iterator<Item = &crate::spec::Plugin> {
    spec.plugins.iter().filter(|p| !spec.replacements.iter().any(|r| p.module.starts_with(&format!("{}/", r.old))))
}

/// Which targets and ARM variants exist is SQL's business (cbs.canonical_arm
/// checked the spec on submit); here only that the values are plain words, as
/// they reach a command line.
fn check_target(spec: &BuildSpec) -> Result<(), RecipeError> {
    let word = |w: &str| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let arm_ok = spec.arm.as_deref().is_none_or(word);
    if word(&spec.os) && word(&spec.arch) && arm_ok { Ok(()) } else { Err(RecipeError::BadTarget(format!("{}/{}", spec.os, spec.arch))) }
}

/// Which tags are valid is SQL's (cbs.canonical_tags); here only that a tag is
/// plain on a command line, where it goes.
fn check_tag(tag: &str) -> Result<(), RecipeError> {
    let ok = !tag.is_empty() && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
    if ok { Ok(()) } else { Err(RecipeError::BadTag(tag.into())) }
}

/// Build: cross-compiles with no network and no module downloads, with
/// xcaddy's flags and the spec's tags.
pub fn build_step(config: &Config, spec: &BuildSpec, timeout: Duration) -> Result<StepSpec, RecipeError> {
    check_target(spec)?;
    let mut env = base_env(config, false);
    env.push(("GOOS".into(), spec.os.clone()));
    env.push(("GOARCH".into(), spec.arch.clone()));
    // The canonical spec carries arm exactly when the target has ARM variants,
    // the default filled in (cbs.canonical_arm): GOARM is what it says.
    if let Some(arm) = &spec.arm {
        env.push(("GOARM".into(), arm.clone()));
    }
    let out = format!("{OUT_DIR}/{}", spec.binary_name());
    // xcaddy's order; `-buildvcs=false` changes nothing in the binary (the work
    // dir is no repository), it only spares Go the search for one.
    let mut cmd: Vec<String> = ["go", "build", "-buildvcs=false", "-o", &out, "-ldflags", crate::xcaddy::LDFLAGS, "-trimpath"]
        .map(String::from)
        .to_vec();
    let tags = spec.build_tags();
    if !tags.is_empty() {
        for t in &tags {
            check_tag(t)?;
        }
        cmd.extend(["-tags".to_string(), tags.join(",")]);
    }
    Ok(StepSpec { name: "build".into(), cmd, env, timeout })
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

    fn spec(plugins: &[&str]) -> BuildSpec {
        BuildSpec::for_test(&plugins.iter().map(|m| (*m, "v0.2.2")).collect::<Vec<_>>())
    }

    /// What xcaddy v0.4.5 writes for these two plugins (its mainModuleTemplate
    /// rendered by text/template), byte for byte.
    const XCADDY_MAIN_GO: &str = "package main\n\nimport (\n\tcaddycmd \"github.com/caddyserver/caddy/v2/cmd\"\n\n\t// plug in Caddy modules here\n\t_ \"github.com/caddyserver/caddy/v2/modules/standard\"\n\t_ \"github.com/caddy-dns/cloudflare\"\n\t_ \"github.com/mholt/caddy-l4\"\n)\n\nfunc main() {\n\tcaddycmd.Main()\n}\n";

    #[test]
    fn main_go_is_xcaddys() {
        let go = main_go(&spec(&["github.com/caddy-dns/cloudflare", "github.com/mholt/caddy-l4"])).unwrap();
        assert_eq!(go, XCADDY_MAIN_GO);
        let none = main_go(&spec(&[])).unwrap();
        assert!(none.contains("modules/standard\"\n)\n"), "{none}");
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
        let settle = script.find("go get -v '' &&\n").unwrap();
        let tidy = script.find("go mod tidy -e\n").unwrap();
        assert!(caddy_first < plugin && plugin < settle && settle < tidy, "{script}");
        assert!(!script.contains("winres"), "no Windows resource for linux: {script}");
        let phases: Vec<usize> = ["initialize_module", "pin_versions", "tidy_module"]
            .iter()
            .map(|p| script.find(&format!("phase {p} &&")).unwrap())
            .collect();
        assert!(phases[0] < script.find("go mod init").unwrap() && phases[1] < caddy_first && caddy_first < phases[2] && phases[2] < tidy, "{script}");
        assert_eq!(STEPS[0], (s.name.as_str(), StepNetwork::Online), "only the resolve step has network");
        // The attempt from the cache alone can be skipped, and the proxy's questions run 16 at once.
        assert!(script.contains(&format!("if [ ! -e {SKIP_OFFLINE_FLAG} ] && (export GOPROXY=off; resolve)")), "{script}");
        assert!(s.env.contains(&("GOMAXPROCS".into(), "16".into())), "{:?}", s.env);
    }

    #[test]
    fn resolve_follows_xcaddy_for_replacements_and_windows() {
        let mut sp = spec(&["github.com/a/b/caddy", "github.com/c/d"]);
        sp.replacements = vec![
            crate::spec::Replacement { old: "github.com/a/b".into(), new: "github.com/x/b".into(), version: "v1.0.0".into() },
            crate::spec::Replacement { old: "github.com/e/f".into(), new: "github.com/x/f".into(), version: "v1.0.1".into() },
        ];
        sp.os = "windows".into();
        let s = resolve_step(&Config::default(), &sp, Duration::from_secs(1)).unwrap();
        let script = &s.cmd[2];
        assert!(script.contains("go mod edit -replace 'github.com/a/b=github.com/x/b@v1.0.0' -replace 'github.com/e/f=github.com/x/f@v1.0.1' &&"), "{script}");
        assert!(!script.contains("go get -v 'github.com/a/b/caddy@"), "a plugin inside a replaced module is not fetched: {script}");
        assert!(script.contains("go get -v 'github.com/c/d@v0.2.2'"), "{script}");
        let winres = script
            .find("(cd .winres && go build -o ../.winres.bin . && ../.winres.bin -dir .. -arch 'amd64' -output 'caddy.exe') && rm -f .winres.bin")
            .unwrap();
        assert!(script.find("go get -v ''").unwrap() < winres && winres < script.find("go mod tidy -e").unwrap(), "{script}");
        assert!(script.contains("phase windows_resources &&"), "{script}");
    }

    #[test]
    fn build_uses_xcaddys_flags_and_the_specs_tags() {
        let mut sp = spec(&[]);
        let b = build_step(&Config::default(), &sp, Duration::from_secs(1)).unwrap();
        let args = b.cmd.join(" ");
        assert!(args.ends_with("-ldflags -w -s -trimpath -tags nobadger,nomysql,nopgx"), "{args}");
        assert!(b.env.contains(&("CGO_ENABLED".into(), "0".into())));
        sp.tags = Some(vec![]);
        let b = build_step(&Config::default(), &sp, Duration::from_secs(1)).unwrap();
        assert!(!b.cmd.contains(&"-tags".to_string()), "no tags: no -tags");
        sp.tags = Some(vec!["nomysql".into(), "sqlite_omit_load_extension".into()]);
        let b = build_step(&Config::default(), &sp, Duration::from_secs(1)).unwrap();
        assert!(b.cmd.ends_with(&["-tags".to_string(), "nomysql,sqlite_omit_load_extension".to_string()]), "{:?}", b.cmd);
        sp.tags = Some(vec!["a;rm -rf /".into()]);
        assert!(matches!(build_step(&Config::default(), &sp, Duration::from_secs(1)), Err(RecipeError::BadTag(_))));
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
        sp.arm = Some("7;id".into());
        assert!(build_step(&Config::default(), &sp, Duration::from_secs(1)).is_err());
        sp.arm = Some("6".into());
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
