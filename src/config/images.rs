//! The builder images: `worker.go_version` (the Go of a build whose spec names
//! none) lives in the worker section; this is `worker.images`, how the worker
//! names, makes and trims the images it makes from the module proxy's Go
//! toolchains (one per Go version, on its own Docker daemon).

use std::time::Duration;

use serde::Deserialize;

use super::{invalid, ConfigError};
use crate::toolchain::GoVersion;

/// The newest Go this project is known to build Caddy with; at least what
/// Caddy v2.11's go.mod asks for (1.26.0).
pub const DEFAULT_GO_VERSION: &str = "1.26.8";

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BuilderImagesConfig {
    /// Images are tagged `<repository>:go<version>`.
    pub repository: String,
    /// A static busybox for the images' `/bin/sh`; empty: Debian's `busybox-static`
    /// package, fetched with `apt-get download`.
    pub busybox: String,
    /// An image of another Go version than `worker.go_version` that no build
    /// used for this long is removed (never the default version's, never one in use).
    #[serde(with = "humantime_serde")]
    pub max_unused_age: Duration,
    /// How often the worker looks for images to trim.
    #[serde(with = "humantime_serde")]
    pub trim_interval: Duration,
}

impl Default for BuilderImagesConfig {
    fn default() -> Self {
        Self {
            repository: "caddy-builder".into(),
            busybox: String::new(),
            max_unused_age: Duration::from_secs(14 * 24 * 3600),
            trim_interval: Duration::from_secs(3600),
        }
    }
}

impl BuilderImagesConfig {
    pub(super) fn validate(&self, go_version: &str) -> Result<(), ConfigError> {
        GoVersion::parse(go_version).map_err(|e| invalid("worker.go_version", e.to_string()))?;
        let repo_ok = !self.repository.is_empty()
            && self.repository.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/:".contains(&b))
            && !self.repository.ends_with(':');
        if !repo_ok {
            return Err(invalid("worker.images.repository", format!("{:?} is not a Docker image repository", self.repository)));
        }
        if self.trim_interval < Duration::from_secs(1) {
            return Err(invalid("worker.images.trim_interval", "must be at least 1s"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn go_version_and_repository_are_checked_by_key() {
        let c = Config::from_yaml("worker:\n  go_version: 1.26.7\n  images:\n    repository: registry.example/cbs/builder\n").unwrap();
        assert_eq!(c.worker.go_version, "1.26.7");
        let e = Config::from_yaml("worker:\n  go_version: 1.20.14\n").unwrap_err().to_string();
        assert!(e.contains("worker.go_version"), "{e}");
        let e = Config::from_yaml("worker:\n  images:\n    repository: Caddy Builder\n").unwrap_err().to_string();
        assert!(e.contains("worker.images.repository"), "{e}");
        let d = Config::default();
        assert_eq!((d.worker.go_version.as_str(), d.worker.image.as_str()), (super::DEFAULT_GO_VERSION, ""));
    }
}
