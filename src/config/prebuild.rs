//! The `prebuild` config section: what the leader janitor builds before anyone
//! asks. `specs` are queued on a fresh start (and whenever one resolves to a
//! build that does not exist yet, e.g. `latest` after a Caddy release), so the
//! first plugin build a newcomer asks for finds the Go caches warm; release
//! watching polls the module proxy every `watch_interval` and rebuilds the
//! `top_n` most requested specs of the last `window` with new releases.

use std::time::Duration;

use serde::Deserialize;

use super::{invalid, ConfigError};
use crate::gomod::VersionQuery;

/// Upper bound of `prebuild.top_n`: each popular spec may cost a build per release.
const MAX_TOP_N: u32 = 1000;
/// Shortest `prebuild.watch_interval`: a poll asks the proxy once per watched module.
const MIN_WATCH_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrebuildConfig {
    /// Off: no configured prebuilds and no release watching.
    pub enabled: bool,
    /// Specs queued on a fresh start; versions may be `latest`, empty or partial.
    /// Default: plain newest Caddy for this host's platform.
    pub specs: Vec<PrebuildSpec>,
    /// How often the leader asks the module proxy for new releases (and re-checks `specs`).
    #[serde(with = "humantime_serde")]
    pub watch_interval: Duration,
    /// How many of the most requested specs are rebuilt with new releases.
    pub top_n: u32,
    /// Requests counted over this long make a spec popular (and are kept this long).
    #[serde(with = "humantime_serde")]
    pub window: Duration,
}

impl Default for PrebuildConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            specs: vec![PrebuildSpec::default()],
            watch_interval: Duration::from_secs(30 * 60),
            top_n: 10,
            window: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// One prebuilt spec, as a build request writes it (versions resolved when queued).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct PrebuildSpec {
    pub caddy_version: String,
    pub plugins: Vec<crate::spec::Plugin>,
    pub os: String,
    pub arch: String,
    /// ARM variant (GOARM), only with `arch: arm`; absent means SQL's default.
    pub arm: Option<String>,
}

impl Default for PrebuildSpec {
    fn default() -> Self {
        let (os, arch) = host_platform();
        Self { caddy_version: "latest".into(), plugins: Vec::new(), os: os.into(), arch: arch.into(), arm: None }
    }
}

/// This host's platform as Go names it (GOOS, GOARCH): what the default
/// prebuild targets. An ARM host gets SQL's default ARM variant (cbs.default_arm()).
pub fn host_platform() -> (&'static str, &'static str) {
    let os = match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "loongarch64" => "loong64",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "powerpc64" => "ppc64",
        other => other,
    };
    (os, arch)
}

impl PrebuildConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.watch_interval < MIN_WATCH_INTERVAL {
            return Err(invalid("prebuild.watch_interval", "must be at least 1s (minutes are usual)"));
        }
        if self.top_n > MAX_TOP_N {
            return Err(invalid("prebuild.top_n", format!("must be at most {MAX_TOP_N}")));
        }
        if self.window < Duration::from_secs(24 * 3600) {
            return Err(invalid("prebuild.window", "must be at least 1d (requests are counted per day)"));
        }
        for (i, s) in self.specs.iter().enumerate() {
            let key = |k: &str| format!("prebuild.specs[{i}].{k}");
            if VersionQuery::parse(&s.caddy_version).is_none() {
                return Err(invalid(&key("caddy_version"), format!("{:?} is not a version query", s.caddy_version)));
            }
            // Targets and module paths are the spec's rules, which SQL holds: the
            // janitor checks each entry with them when it starts (Prebuilder::check_config).
            for p in &s.plugins {
                if VersionQuery::parse(&p.version).is_none() {
                    return Err(invalid(&key("plugins"), format!("{:?} is not a version query of {}", p.version, p.module)));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;

    #[test]
    fn defaults_prebuild_plain_newest_caddy_for_this_host() {
        let c = Config::from_yaml("").unwrap();
        assert!(c.prebuild.enabled);
        assert_eq!(c.prebuild.specs.len(), 1);
        let s = &c.prebuild.specs[0];
        assert_eq!((s.caddy_version.as_str(), s.plugins.len()), ("latest", 0));
        let (os, arch) = host_platform();
        assert_eq!((s.os.as_str(), s.arch.as_str()), (os, arch));
        assert_eq!(c.prebuild.top_n, 10);
    }

    #[test]
    fn entries_fill_in_the_host_platform_and_are_checked() {
        let c = Config::from_yaml("prebuild:\n  specs:\n    - plugins: [{module: github.com/caddy-dns/cloudflare}]\n    - caddy_version: v2.10\n      os: windows\n      arch: arm64\n").unwrap();
        assert_eq!(c.prebuild.specs[0].caddy_version, "latest");
        assert_eq!(c.prebuild.specs[0].os, host_platform().0);
        assert_eq!(c.prebuild.specs[1].os, "windows");
        assert!(Config::from_yaml("prebuild:\n  specs: []\n").unwrap().prebuild.specs.is_empty());
        for (yaml, key) in [
            ("prebuild:\n  watch_interval: 0s\n", "prebuild.watch_interval"),
            ("prebuild:\n  top_n: 5000\n", "prebuild.top_n"),
            ("prebuild:\n  window: 1h\n", "prebuild.window"),
            ("prebuild:\n  specs: [{caddy_version: \"../x\"}]\n", "prebuild.specs[0].caddy_version"),
            ("prebuild:\n  specs: [{plugins: [{module: github.com/a/b, version: \"../x\"}]}]\n", "prebuild.specs[0].plugins"),
        ] {
            let e = Config::from_yaml(yaml).unwrap_err().to_string();
            assert!(e.contains(key), "{yaml}: {e}");
        }
    }
}
