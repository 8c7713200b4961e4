//! What `xcaddy build` (v0.4.5) does that our recipe copies, and the xcaddy
//! command line that makes the same binary as a build here. The worker's recipe
//! (`worker::recipe`) follows xcaddy step for step, so anyone can check a
//! download by running the command this module writes and comparing sha256s.

use crate::spec::BuildSpec;

/// The xcaddy release whose output our builds equal, byte for byte.
pub const VERSION: &str = "v0.4.5";
/// xcaddy's module, for `go install …/cmd/xcaddy@VERSION`.
pub const MODULE: &str = "github.com/caddyserver/xcaddy";
/// The tags xcaddy builds with unless `XCADDY_GO_BUILD_FLAGS` is set (its
/// `builder.go`); the same list as SQL's `cbs.default_build_tags()`, which
/// fills them into a spec without tags (a test holds the two together).
pub const DEFAULT_TAGS: [&str; 3] = ["nobadger", "nomysql", "nopgx"];
/// The flags xcaddy passes to `go build` besides `-tags` (its `builder.go`).
pub const LDFLAGS: &str = "-w -s";

/// The command that rebuilds `spec` with xcaddy: the Go toolchain (`go1.26.8`;
/// `None` when not known yet: then whatever `go` is installed), the target, the
/// build flags when the tags are not xcaddy's defaults, then Caddy's version,
/// each plugin and each replacement in the spec's (canonical) order, the order
/// `main.go` imports them in.
pub fn command(spec: &BuildSpec, go_version: Option<&str>) -> String {
    let mut words = vec![format!("GOTOOLCHAIN={}", quote(go_version.unwrap_or("local")))];
    words.push(format!("GOOS={}", quote(&spec.os)));
    words.push(format!("GOARCH={}", quote(&spec.arch)));
    if let Some(arm) = spec.arm.as_deref() {
        words.push(format!("GOARM={}", quote(arm)));
    }
    let tags = spec.build_tags();
    if tags != DEFAULT_TAGS {
        // Setting the flags replaces all of xcaddy's own (`-ldflags`, `-trimpath`, `-tags`).
        let mut flags = format!("-ldflags \"{LDFLAGS}\" -trimpath");
        if !tags.is_empty() {
            flags.push_str(&format!(" -tags {}", tags.join(",")));
        }
        words.push(format!("XCADDY_GO_BUILD_FLAGS={}", quote(&flags)));
    }
    words.push("xcaddy".into());
    words.push("build".into());
    words.push(quote(&spec.caddy_version));
    for p in &spec.plugins {
        words.push("--with".into());
        words.push(quote(&format!("{}@{}", p.module, p.version)));
    }
    for r in &spec.replacements {
        let new = if r.version.is_empty() { r.new.clone() } else { format!("{}@{}", r.new, r.version) };
        words.push("--replace".into());
        words.push(quote(&format!("{}={new}", r.old)));
    }
    words.join(" ")
}

/// How to install the xcaddy the command expects.
pub fn install_command() -> String {
    format!("go install {MODULE}/cmd/xcaddy@{VERSION}")
}

/// A shell word: as is when it holds only characters no shell treats
/// specially, else in single quotes.
fn quote(word: &str) -> String {
    let plain = !word.is_empty() && word.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._/@=+,:".contains(&b));
    if plain { word.to_string() } else { format!("'{}'", word.replace('\'', r"'\''")) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Plugin, Replacement};

    fn spec(os: &str, arch: &str) -> BuildSpec {
        BuildSpec {
            caddy_version: "v2.11.9".into(),
            plugins: vec![Plugin { module: "github.com/caddy-dns/cloudflare".into(), version: "v0.2.1".into() }],
            replacements: vec![],
            os: os.into(),
            arch: arch.into(),
            arm: None,
            tags: Some(DEFAULT_TAGS.map(String::from).to_vec()),
            go_version: None,
        }
    }

    #[test]
    fn default_tags_need_no_build_flags() {
        assert_eq!(
            command(&spec("windows", "amd64"), Some("go1.26.8")),
            "GOTOOLCHAIN=go1.26.8 GOOS=windows GOARCH=amd64 xcaddy build v2.11.9 --with github.com/caddy-dns/cloudflare@v0.2.1"
        );
        let mut old = spec("linux", "amd64");
        old.tags = None;
        assert!(!command(&old, None).contains("XCADDY_GO_BUILD_FLAGS"), "a spec from before tags means the defaults");
        assert!(command(&old, None).starts_with("GOTOOLCHAIN=local GOOS=linux GOARCH=amd64 xcaddy build"));
    }

    #[test]
    fn other_tags_replace_xcaddys_flags() {
        let mut s = spec("linux", "arm");
        s.arm = Some("6".into());
        s.tags = Some(vec!["nobadger".into(), "nomysql".into()]);
        s.replacements = vec![Replacement { old: "github.com/a/b".into(), new: "github.com/c/b".into(), version: "v1.0.0".into() }];
        assert_eq!(
            command(&s, Some("go1.26.8")),
            "GOTOOLCHAIN=go1.26.8 GOOS=linux GOARCH=arm GOARM=6 XCADDY_GO_BUILD_FLAGS='-ldflags \"-w -s\" -trimpath -tags nobadger,nomysql' \
             xcaddy build v2.11.9 --with github.com/caddy-dns/cloudflare@v0.2.1 --replace github.com/a/b=github.com/c/b@v1.0.0"
        );
        s.tags = Some(vec![]);
        assert!(command(&s, Some("go1.26.8")).contains("XCADDY_GO_BUILD_FLAGS='-ldflags \"-w -s\" -trimpath' xcaddy"));
    }

    #[test]
    fn quoting() {
        assert_eq!(quote("v1.2.3"), "v1.2.3");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
    }
}
