//! The `gocache` config section: Go's build cache and module downloads shared
//! between worker hosts through the artifact store (see `crate::gocache`), and
//! the janitor policy that keeps the shared entries within bounds. Defaults fit
//! a 50 GB disk that also holds the artifacts: 10 GiB of shared entries at
//! most (a Caddy build for one target leaves about 0.3 GiB), none unused for
//! more than 14 days.

use std::time::Duration;

use serde::Deserialize;

use super::janitor::CronSchedule;
use super::{invalid, ConfigError};

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GoCacheConfig {
    /// Build steps use the shared build cache (`GOCACHEPROG`); off: each host's
    /// own cache volume only.
    pub enabled: bool,
    /// The resolve step also seeds the module cache from the shared store (what
    /// the last resolve of the same Caddy version needed, checked against the
    /// checksum database), takes module files from it, and puts there what it
    /// downloads; needs `enabled`.
    pub share_modules: bool,
    /// Docker volume holding the cache program, compiled once per builder image
    /// by a container of that image; mounted read-only into the build containers.
    pub program_volume: String,
    /// Total size of the shared entries the janitor keeps; the least recently
    /// used beyond it are deleted (files, then rows).
    pub max_bytes: u64,
    /// Shared entries unused this long are deleted.
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    /// When the janitor trims.
    pub schedule: CronSchedule,
    /// Requested after each successful trim run (a heartbeat ping).
    pub ping_url: String,
    /// Entries deleted per batch; a run repeats batches until within the limits.
    pub batch_size: i32,
}

impl Default for GoCacheConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            share_modules: true,
            program_volume: "cbs-gocacheprog".into(),
            max_bytes: 10 << 30,
            max_age: Duration::from_secs(14 * 24 * 3600),
            schedule: "0 */15 * * * *".parse().expect("a valid cron expression"),
            ping_url: String::new(),
            batch_size: 1000,
        }
    }
}

impl GoCacheConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.enabled && self.program_volume.trim().is_empty() {
            return Err(invalid("gocache.program_volume", "must name a Docker volume"));
        }
        if self.share_modules && !self.enabled {
            return Err(invalid("gocache.share_modules", "needs gocache.enabled"));
        }
        if self.max_age < Duration::from_secs(60) {
            return Err(invalid("gocache.max_age", "must be at least 1m"));
        }
        if self.batch_size < 1 {
            return Err(invalid("gocache.batch_size", "must be at least 1"));
        }
        let url = &self.ping_url;
        if !(url.is_empty() || url.starts_with("http://") || url.starts_with("https://")) {
            return Err(invalid("gocache.ping_url", format!("{:?} is not an http(s) URL", self.ping_url)));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;

    #[test]
    fn defaults_and_errors_name_the_key() {
        let c = Config::from_yaml("").unwrap();
        assert!(c.gocache.enabled && c.gocache.share_modules);
        assert_eq!(c.gocache.max_bytes, 10 << 30);
        let c = Config::from_yaml("gocache:\n  enabled: false\n  share_modules: false\n").unwrap();
        assert!(!c.gocache.enabled);
        for (yaml, key) in [
            ("gocache:\n  enabled: false\n", "gocache.share_modules"),
            ("gocache:\n  max_age: 1s\n", "gocache.max_age"),
            ("gocache:\n  batch_size: 0\n", "gocache.batch_size"),
            ("gocache:\n  program_volume: \"\"\n", "gocache.program_volume"),
            ("gocache:\n  schedule: sometimes\n", "gocache.schedule"),
            ("gocache:\n  ping_url: ftp://x\n", "gocache.ping_url"),
        ] {
            let e = Config::from_yaml(yaml).unwrap_err().to_string();
            assert!(e.contains(key), "{yaml}: {e}");
        }
    }
}
