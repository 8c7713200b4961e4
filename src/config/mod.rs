//! Configuration: `config.yml` (or `$CONFIG_PATH`) rendered through minijinja,
//! parsed strictly (unknown keys are errors: a typo must not silently fall back
//! to a default), defaults applied, then validated. Every error names the key.

mod admission;
mod api;
mod catalog;
mod database;
mod gocache;
mod images;
mod janitor;
mod log;
mod prebuild;
mod reproduction;
mod signing;
mod storage;
mod template;
mod worker;

pub use admission::AdmissionConfig;
pub use api::{ApiConfig, MAX_HEADER_BYTES, MAX_URI_BYTES};
pub use catalog::{default_catalog, CatalogEntry};
pub use database::DatabaseConfig;
pub use gocache::GoCacheConfig;
pub use images::{BuilderImagesConfig, DEFAULT_GO_VERSION};
pub use janitor::{CronSchedule, JanitorConfig, JobConfig, ReaperConfig, RetentionConfig, WebhookConfig};
pub use log::{LogConfig, LogFormat};
pub use prebuild::{host_platform, PrebuildConfig, PrebuildSpec};
pub use reproduction::ReproductionConfig;
pub use signing::SigningConfig;
pub use storage::{S3Config, StorageBackend, StorageConfig};
pub use worker::{PreemptionConfig, PreemptionProvider, SandboxLimits, StepTimeouts, WorkerConfig};

use std::path::Path;

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("config template: {0}")]
    Template(#[from] minijinja::Error),
    #[error("config key {key}: {message}")]
    Invalid { key: String, message: String },
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key: key.to_string(), message: message.into() }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub database: DatabaseConfig,
    pub log: LogConfig,
    pub api: ApiConfig,
    pub worker: WorkerConfig,
    pub storage: StorageConfig,
    pub signing: SigningConfig,
    /// Plugins offered on the download page (any other module can still be typed in).
    pub catalog: Vec<CatalogEntry>,
    pub janitor: JanitorConfig,
    /// What the leader janitor builds before anyone asks.
    pub prebuild: PrebuildConfig,
    /// Reproductions of new builds by a second worker (the janitor's sampling policy).
    pub reproduction: ReproductionConfig,
    /// The build cache and module downloads shared between worker hosts.
    pub gocache: GoCacheConfig,
    /// Module proxies, comma-separated like GOPROXY, tried in order (version
    /// resolution in the api, module downloads in the worker's resolve step).
    pub go_proxy: String,
    /// GOSUMDB for the resolve step (`off` disables checksum verification).
    pub go_sumdb: String,
    /// GOPRIVATE: module path patterns fetched without the checksum database.
    pub go_private: String,
    /// GONOSUMDB: module path patterns not checked against the checksum database.
    pub go_nosumdb: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            database: DatabaseConfig::default(),
            log: LogConfig::default(),
            api: ApiConfig::default(),
            worker: WorkerConfig::default(),
            storage: StorageConfig::default(),
            signing: SigningConfig::default(),
            catalog: default_catalog(),
            janitor: JanitorConfig::default(),
            prebuild: PrebuildConfig::default(),
            reproduction: ReproductionConfig::default(),
            gocache: GoCacheConfig::default(),
            go_proxy: "https://proxy.golang.org".into(),
            go_sumdb: "sum.golang.org".into(),
            go_private: String::new(),
            go_nosumdb: String::new(),
        }
    }
}

impl Config {
    /// Loads `$CONFIG_PATH`, else `config.yml` if present, else the defaults.
    pub fn load(explicit: Option<&Path>) -> Result<Config, ConfigError> {
        let from_env = std::env::var_os("CONFIG_PATH").map(std::path::PathBuf::from);
        let path = explicit.map(Path::to_path_buf).or(from_env);
        let (path, required) = match path {
            Some(p) => (p, true),
            None => (Path::new("config.yml").to_path_buf(), false),
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => Config::from_yaml(&text),
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => Config::from_yaml(""),
            Err(source) => Err(ConfigError::Read { path: path.display().to_string(), source }),
        }
    }

    pub fn from_yaml(source: &str) -> Result<Config, ConfigError> {
        let rendered = template::render(source)?;
        let config: Config = if rendered.trim().is_empty() {
            Config::default()
        } else {
            let de = serde_norway::Deserializer::from_str(&rendered);
            serde_path_to_error::deserialize(de).map_err(|e| {
                let key = e.path().to_string();
                invalid(if key == "." { "(top level)" } else { &key }, e.into_inner().to_string())
            })?
        };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.database.validate()?;
        self.log.validate()?;
        self.api.validate()?;
        if self.go_proxy.split(',').all(|p| p.trim().is_empty() || p.trim() == "off" || p.trim() == "direct") {
            return Err(invalid("go_proxy", "must name at least one module proxy URL"));
        }
        for p in self.go_proxy.split(',').map(str::trim).filter(|p| !["", "off", "direct"].contains(p)) {
            http_url("go_proxy", p)?;
        }
        self.worker.validate()?;
        self.reproduction.validate()?;
        self.prebuild.validate()?;
        self.gocache.validate()?;
        self.storage.validate()?;
        self.signing.validate()?;
        self.janitor.validate()?;
        Ok(())
    }
}

/// The one check of a configured URL: absolute, http or https, with a host.
pub(super) fn http_url(key: &str, url: &str) -> Result<(), ConfigError> {
    match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
        _ => Err(invalid(key, format!("{url:?} is not an http(s) URL"))),
    }
}

/// This machine's name, or empty when it has none.
pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).unwrap_or_default()
}

/// A process's name in the database and in logs: the configured one, or
/// `<hostname>-<pid>`, unique per process on a host and readable to admins.
pub(crate) fn process_id(configured: &str, fallback_host: &str) -> String {
    if !configured.is_empty() {
        return configured.to_string();
    }
    let host = hostname();
    let host = if host.is_empty() { fallback_host.to_string() } else { host };
    format!("{host}-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_gives_defaults() {
        let c = Config::from_yaml("").unwrap();
        assert_eq!(c.database.pool_size, 16);
        assert_eq!(c.log.format, LogFormat::Text);
    }

    #[test]
    fn errors_name_the_key() {
        let e = Config::from_yaml("database:\n  pool_size: many\n").unwrap_err().to_string();
        assert!(e.contains("database.pool_size"), "{e}");
        let e = Config::from_yaml("database:\n  pool_sise: 3\n").unwrap_err().to_string();
        assert!(e.contains("database") && e.contains("pool_sise"), "{e}");
        let e = Config::from_yaml("database:\n  pool_size: 0\n").unwrap_err().to_string();
        assert!(e.contains("database.pool_size"), "{e}");
        let e = Config::from_yaml("database:\n  connect_timeout: soon\n").unwrap_err().to_string();
        assert!(e.contains("database.connect_timeout"), "{e}");
    }

    #[test]
    fn listen_addresses() {
        let c = Config::from_yaml("api:\n  listen: \":9000\"\n").unwrap();
        assert_eq!(c.api.listen_addr().unwrap().port(), 9000);
        let e = Config::from_yaml("api:\n  listen: nowhere\n").unwrap_err().to_string();
        assert!(e.contains("api.listen"), "{e}");
        let e = Config::from_yaml("go_proxy: ftp://x\n").unwrap_err().to_string();
        assert!(e.contains("go_proxy"), "{e}");
        let e = Config::from_yaml("worker:\n  lease: 10s\n  heartbeat_interval: 20s\n").unwrap_err().to_string();
        assert!(e.contains("worker.heartbeat_interval"), "{e}");
    }

    #[test]
    fn s3_settings_are_checked() {
        let base = "storage:\n  backend: s3\n  s3:\n";
        let ok = format!("{base}    bucket: artifacts\n    endpoint: http://127.0.0.1:9000\n    access_key: a\n    secret_key: b\n");
        assert_eq!(Config::from_yaml(&ok).unwrap().storage.s3.bucket, "artifacts");
        let aws = format!("{base}    bucket: artifacts\n    region: eu-west-1\n");
        assert!(Config::from_yaml(&aws).is_ok());
        for (yaml, key) in [
            (format!("{base}    region: eu-west-1\n"), "storage.s3.bucket"),
            (format!("{base}    bucket: Bad_Name\n"), "storage.s3.bucket"),
            (format!("{base}    bucket: artifacts\n    region: mars-1\n"), "storage.s3.region"),
            (format!("{base}    bucket: artifacts\n    endpoint: minio:9000\n"), "storage.s3.endpoint"),
            (format!("{base}    bucket: artifacts\n    access_key: a\n"), "storage.s3.secret_key"),
            (format!("{base}    bucket: artifacts\n    presign_ttl: 30d\n"), "storage.s3.presign_ttl"),
            ("storage:\n  s3:\n    redirect: true\n".to_string(), "storage.s3.redirect"),
            ("signing:\n  public_key_path: \"\"\n".to_string(), "signing.public_key_path"),
            ("worker:\n  preemption:\n    poll_interval: 1ms\n".to_string(), "worker.preemption.poll_interval"),
            ("worker:\n  preemption:\n    endpoint: metadata\n".to_string(), "worker.preemption.endpoint"),
        ] {
            let e = Config::from_yaml(&yaml).unwrap_err().to_string();
            assert!(e.contains(key), "{yaml}: {e}");
        }
    }

    #[test]
    fn api_settings_are_checked() {
        let e = Config::from_yaml("api:\n  compat_wait_limit: 0s\n").unwrap_err().to_string();
        assert!(e.contains("api.compat_wait_limit"), "{e}");
        let e = Config::from_yaml("api:\n  public_url: builds.example.com\n").unwrap_err().to_string();
        assert!(e.contains("api.public_url"), "{e}");
        assert!(Config::from_yaml("api:\n  public_url: https://builds.example.com\n").is_ok());
        let e = Config::from_yaml("api:\n  shared_download_max_bytes: 2147483648\n").unwrap_err().to_string();
        assert!(e.contains("api.shared_download_max_bytes"), "{e}");
        let e = Config::from_yaml("api:\n  shared_download_max_bytes: -1\n").unwrap_err().to_string();
        assert!(e.contains("api.shared_download_max_bytes"), "{e}");
        assert_eq!(Config::from_yaml("api:\n  shared_download_max_bytes: 0\n").unwrap().api.shared_download_max_bytes, 0);
    }

    #[test]
    fn request_head_limits_are_bounded() {
        for (yaml, key) in [
            ("api:\n  max_uri_bytes: 65535\n", "api.max_uri_bytes"),
            ("api:\n  max_uri_bytes: 10\n", "api.max_uri_bytes"),
            ("api:\n  max_header_bytes: 2000000\n", "api.max_header_bytes"),
            ("api:\n  module_proxy_timeout: 0s\n", "api.module_proxy_timeout"),
        ] {
            let e = Config::from_yaml(yaml).unwrap_err().to_string();
            assert!(e.contains(key), "{yaml}: {e}");
        }
        let c = Config::from_yaml("api:\n  max_uri_bytes: 65534\n  max_header_bytes: 1048576\n").unwrap();
        assert_eq!((c.api.max_uri_bytes, c.api.max_header_bytes), (65534, 1 << 20));
    }

    #[test]
    fn durations_parse() {
        let c = Config::from_yaml("database:\n  connect_timeout: 250ms\n").unwrap();
        assert_eq!(c.database.connect_timeout, std::time::Duration::from_millis(250));
    }
}

#[cfg(test)]
mod shipped_config {
    use super::*;

    /// The documented config.yml must load as is and mean the defaults.
    #[test]
    fn config_yml_loads_and_matches_the_defaults() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.yml")).unwrap();
        let c = Config::from_yaml(&text).unwrap();
        let d = Config::default();
        assert_eq!(c.api.listen, d.api.listen);
        assert_eq!(c.api.max_plugins, d.api.max_plugins);
        assert_eq!(c.api.shared_download_max_bytes, d.api.shared_download_max_bytes);
        assert_eq!(c.api.max_uri_bytes, d.api.max_uri_bytes);
        assert_eq!(c.api.max_header_bytes, d.api.max_header_bytes);
        assert_eq!(c.api.module_proxy_timeout, d.api.module_proxy_timeout);
        assert_eq!(c.worker.lease, d.worker.lease);
        assert_eq!(c.worker.image, d.worker.image);
        assert_eq!(c.storage.backend, d.storage.backend);
        assert_eq!(c.janitor.retention.max_age, d.janitor.retention.max_age);
        assert_eq!((c.reproduction.share, c.reproduction.recent), (d.reproduction.share, d.reproduction.recent));
        assert_eq!(c.catalog.len(), d.catalog.len());
        assert_eq!(c.prebuild.specs, d.prebuild.specs);
        assert_eq!((c.prebuild.watch_interval, c.prebuild.top_n, c.prebuild.window), (d.prebuild.watch_interval, d.prebuild.top_n, d.prebuild.window));
        assert_eq!((c.gocache.enabled, c.gocache.share_modules), (d.gocache.enabled, d.gocache.share_modules));
        assert_eq!((c.gocache.max_bytes, c.gocache.max_age), (d.gocache.max_bytes, d.gocache.max_age));
        assert_eq!(c.gocache.program_volume, d.gocache.program_volume);
    }
}
