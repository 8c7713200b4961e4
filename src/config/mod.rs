//! Configuration: `config.yml` (or `$CONFIG_PATH`) rendered through minijinja,
//! parsed strictly (unknown keys are errors: a typo must not silently fall back
//! to a default), defaults applied, then validated. Every error names the key.

mod admission;
mod gocache;
mod janitor;
mod template;

pub use admission::AdmissionConfig;
pub use gocache::GoCacheConfig;
pub use janitor::{CronSchedule, JanitorConfig, JobConfig, ReaperConfig, RetentionConfig, WebhookConfig};

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: String, #[source] source: std::io::Error },
    #[error("config template: {0}")]
    Template(#[from] minijinja::Error),
    #[error("config key {key}: {message}")]
    Invalid { key: String, message: String },
}

/// Upper bound of `api.shared_download_max_bytes` (1 GiB).
const MAX_SHARED_DOWNLOAD_BYTES: u64 = 1 << 30;
/// Upper bound of `api.max_uri_bytes`: hyper refuses longer request targets itself.
pub const MAX_URI_BYTES: usize = 65534;
/// Upper bound of `api.max_header_bytes` (1 MiB): a connection's read buffer must hold
/// the whole request head, and grows to this size for anyone who sends one.
pub const MAX_HEADER_BYTES: usize = 1 << 20;

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
    pub catalog: Vec<crate::ui::CatalogEntry>,
    pub janitor: JanitorConfig,
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
            catalog: crate::ui::default_catalog(),
            janitor: JanitorConfig::default(),
            gocache: GoCacheConfig::default(),
            go_proxy: "https://proxy.golang.org".into(),
            go_sumdb: "sum.golang.org".into(),
            go_private: String::new(),
            go_nosumdb: String::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// `host:port` or `:port` (all interfaces).
    pub listen: String,
    /// Base URL of links in responses; empty: relative links (the pages' copy-paste
    /// commands then use the request's Host).
    pub public_url: String,
    /// Largest accepted number of plugins in one build.
    pub max_plugins: usize,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Longest accepted request target (path and query); longer ones get a 414.
    /// At most 65534, the most hyper can parse.
    pub max_uri_bytes: usize,
    /// Largest accepted sum of header fields (`name: value` lines); larger get a 431.
    pub max_header_bytes: usize,
    /// How long a compat download waits for its build before answering 504.
    #[serde(with = "humantime_serde")]
    pub compat_wait_limit: Duration,
    /// Upper bound of `?wait=` on `GET /api/builds/{key}`.
    #[serde(with = "humantime_serde")]
    pub max_long_poll: Duration,
    /// How long resolved module versions are cached.
    #[serde(with = "humantime_serde")]
    pub version_cache_ttl: Duration,
    /// Time limit of one request to the module proxy; past it the request being
    /// resolved gets a 503 with `Retry-After`.
    #[serde(with = "humantime_serde")]
    pub module_proxy_timeout: Duration,
    /// Bearer token for the admin page and `/api/admin/*`; empty: admin closed.
    pub admin_token: String,
    /// Largest artifact read into memory once, when its build succeeds, and served
    /// from there to every request that waited for it (one storage read per build
    /// instead of one per waiter). Larger artifacts, range requests and cache hits
    /// stream from storage per request; 0 streams always.
    pub shared_download_max_bytes: u64,
    /// Peers (CIDRs or addresses) whose `Forwarded` / `X-Forwarded-For` name the
    /// client; from anyone else those headers are ignored.
    pub trusted_proxies: Vec<String>,
    /// New builds need an API token; downloads of existing builds stay open.
    pub require_token: bool,
    pub admission: AdmissionConfig,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: ":8234".into(),
            public_url: String::new(),
            max_plugins: 50,
            max_body_bytes: 64 * 1024,
            max_uri_bytes: 32 * 1024,
            max_header_bytes: 64 * 1024,
            compat_wait_limit: Duration::from_secs(20 * 60),
            max_long_poll: Duration::from_secs(120),
            version_cache_ttl: Duration::from_secs(5 * 60),
            module_proxy_timeout: Duration::from_secs(15),
            admin_token: String::new(),
            shared_download_max_bytes: 128 * 1024 * 1024,
            trusted_proxies: Vec::new(),
            require_token: false,
            admission: AdmissionConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerConfig {
    /// Unique per worker process; empty: `<hostname>-<pid>`.
    pub id: String,
    /// Builds run at once by this worker.
    pub max_jobs: usize,
    /// Builder image with Go, a CA bundle and /bin/sh (`make builder-image` makes the default).
    pub image: String,
    /// Docker endpoint; empty: DOCKER_HOST or the local socket.
    pub docker_host: String,
    /// Where per-build work directories are created (bind-mounted into the containers).
    pub work_dir: String,
    /// Docker network of the resolve step, the only step with network: `bridge`, or a
    /// network an admin made that reaches only the module proxy. Build and verify get none.
    pub resolve_network: String,
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    #[serde(with = "humantime_serde")]
    pub heartbeat_interval: Duration,
    /// Fallback wake-up when no notification arrives (notifications are the normal path).
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// On SIGTERM: how long running builds may finish before they are released.
    #[serde(with = "humantime_serde")]
    pub stop_timeout: Duration,
    pub limits: SandboxLimits,
    pub timeouts: StepTimeouts,
    /// Named Docker volumes shared by all builds.
    pub gomod_cache_volume: String,
    pub gobuild_cache_volume: String,
    pub preemption: PreemptionConfig,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            id: String::new(),
            max_jobs: 2,
            image: "caddy-builder:local".into(),
            docker_host: String::new(),
            work_dir: std::env::temp_dir().join("cbs-work").display().to_string(),
            resolve_network: "bridge".into(),
            lease: Duration::from_secs(60),
            heartbeat_interval: Duration::from_secs(15),
            poll_interval: Duration::from_secs(30),
            stop_timeout: Duration::from_secs(5 * 60),
            limits: SandboxLimits::default(),
            timeouts: StepTimeouts::default(),
            gomod_cache_volume: "cbs-gomod".into(),
            gobuild_cache_volume: "cbs-gobuild".into(),
            preemption: PreemptionConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxLimits {
    pub memory_mb: u64,
    pub cpus: f64,
    pub pids: i64,
    /// Size of the writable /tmp inside build containers.
    pub tmpfs_mb: u64,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        Self { memory_mb: 4096, cpus: 2.0, pids: 1024, tmpfs_mb: 2048 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StepTimeouts {
    #[serde(with = "humantime_serde")]
    pub resolve: Duration,
    #[serde(with = "humantime_serde")]
    pub build: Duration,
    #[serde(with = "humantime_serde")]
    pub verify: Duration,
}

impl Default for StepTimeouts {
    fn default() -> Self {
        Self {
            resolve: Duration::from_secs(10 * 60),
            build: Duration::from_secs(15 * 60),
            verify: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackend {
    #[default]
    Local,
    S3,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    pub backend: StorageBackend,
    /// Root directory of the local backend.
    pub path: String,
    pub s3: S3Config,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self { backend: StorageBackend::Local, path: ".data/artifacts".into(), s3: S3Config::default() }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    pub bucket: String,
    pub region: String,
    /// Custom endpoint (MinIO and friends); empty: AWS for `region`.
    pub endpoint: String,
    /// Path-style URLs (`endpoint/bucket/key`), which MinIO needs.
    pub path_style: bool,
    pub access_key: String,
    pub secret_key: String,
    /// Compat and download endpoints answer 302 to a presigned URL instead of streaming.
    pub redirect: bool,
    /// How long a presigned URL stays valid.
    #[serde(with = "humantime_serde")]
    pub presign_ttl: Duration,
}

impl Default for S3Config {
    fn default() -> Self {
        Self {
            bucket: String::new(),
            region: "us-east-1".into(),
            endpoint: String::new(),
            path_style: true,
            access_key: String::new(),
            secret_key: String::new(),
            redirect: false,
            presign_ttl: Duration::from_secs(15 * 60),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SigningConfig {
    /// minisign secret key file (unencrypted); generated on first start when absent.
    pub secret_key_path: String,
    /// Where the matching public key is written and read from.
    pub public_key_path: String,
}

impl Default for SigningConfig {
    fn default() -> Self {
        Self { secret_key_path: ".data/minisign.key".into(), public_key_path: ".data/minisign.pub".into() }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum PreemptionProvider {
    #[default]
    None,
    Gce,
    Aws,
    Azure,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PreemptionConfig {
    /// Which cloud's metadata service to ask whether this machine is about to go away.
    pub provider: PreemptionProvider,
    /// How often to ask.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Metadata service base URL; empty: the provider's well-known address.
    pub endpoint: String,
}

impl Default for PreemptionConfig {
    fn default() -> Self {
        Self { provider: PreemptionProvider::None, poll_interval: Duration::from_secs(5), endpoint: String::new() }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// libpq-style URL or key=value string.
    pub url: String,
    /// Connections in the pool (the LISTEN connection is extra).
    pub pool_size: usize,
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// How long a request waits for a free pooled connection before a 503.
    #[serde(with = "humantime_serde")]
    pub pool_wait: Duration,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: "postgres://postgres@127.0.0.1:5432/postgres".into(),
            pool_size: 16,
            connect_timeout: Duration::from_secs(5),
            pool_wait: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A tracing filter directive, e.g. `info` or `caddy_build_server=debug,info`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { format: LogFormat::Text, level: "info".into() }
    }
}

impl ApiConfig {
    /// `trusted_proxies` parsed (validated when the config loaded).
    pub fn trusted_proxy_nets(&self) -> Result<Vec<ipnet::IpNet>, ConfigError> {
        admission::parse_trusted_proxies(&self.trusted_proxies)
    }

    /// The socket address to bind; `:8234` means all interfaces.
    pub fn listen_addr(&self) -> Result<std::net::SocketAddr, ConfigError> {
        let text = if self.listen.starts_with(':') { format!("0.0.0.0{}", self.listen) } else { self.listen.clone() };
        text.parse().map_err(|e| invalid("api.listen", format!("{:?} is not host:port or :port ({e})", self.listen)))
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

impl WorkerConfig {
    /// This worker's id: configured, or `<hostname>-<pid>`.
    pub fn worker_id(&self) -> String {
        process_id(&self.id, "worker")
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
        if self.database.url.trim().is_empty() {
            return Err(invalid("database.url", "must not be empty"));
        }
        self.database
            .url
            .parse::<tokio_postgres::Config>()
            .map_err(|e| invalid("database.url", format!("is not a valid Postgres URL: {e}")))?;
        if self.database.pool_size == 0 {
            return Err(invalid("database.pool_size", "must be at least 1"));
        }
        tracing_subscriber::EnvFilter::try_new(&self.log.level)
            .map_err(|e| invalid("log.level", format!("is not a valid filter: {e}")))?;
        self.api.listen_addr()?;
        self.api.trusted_proxy_nets()?;
        self.api.admission.validate()?;
        if self.api.max_plugins == 0 {
            return Err(invalid("api.max_plugins", "must be at least 1"));
        }
        if self.api.max_body_bytes < 1024 {
            return Err(invalid("api.max_body_bytes", "must be at least 1024"));
        }
        if !(1024..=MAX_URI_BYTES).contains(&self.api.max_uri_bytes) {
            return Err(invalid("api.max_uri_bytes", format!("must be from 1024 to {MAX_URI_BYTES} (the most hyper parses)")));
        }
        if !(4096..=MAX_HEADER_BYTES).contains(&self.api.max_header_bytes) {
            return Err(invalid("api.max_header_bytes", format!("must be from 4096 to {MAX_HEADER_BYTES}")));
        }
        if self.api.shared_download_max_bytes > MAX_SHARED_DOWNLOAD_BYTES {
            return Err(invalid(
                "api.shared_download_max_bytes",
                format!("must be at most {MAX_SHARED_DOWNLOAD_BYTES} (1 GiB): each build being served holds one copy in memory"),
            ));
        }
        for (key, value) in [
            ("api.compat_wait_limit", self.api.compat_wait_limit),
            ("api.max_long_poll", self.api.max_long_poll),
            ("api.module_proxy_timeout", self.api.module_proxy_timeout),
        ] {
            if value.is_zero() {
                return Err(invalid(key, "must be longer than zero"));
            }
        }
        let public_url = self.api.public_url.trim();
        if !public_url.is_empty() && !public_url.starts_with("http://") && !public_url.starts_with("https://") {
            return Err(invalid("api.public_url", format!("{public_url:?} is not an http(s) URL")));
        }
        if self.go_proxy.split(',').all(|p| p.trim().is_empty() || p.trim() == "off" || p.trim() == "direct") {
            return Err(invalid("go_proxy", "must name at least one module proxy URL"));
        }
        for p in self.go_proxy.split(',').map(str::trim).filter(|p| !["", "off", "direct"].contains(p)) {
            if !(p.starts_with("http://") || p.starts_with("https://")) {
                return Err(invalid("go_proxy", format!("{p:?} is not an http(s) URL")));
            }
        }
        if self.worker.max_jobs == 0 {
            return Err(invalid("worker.max_jobs", "must be at least 1"));
        }
        if self.worker.image.trim().is_empty() {
            return Err(invalid("worker.image", "must not be empty"));
        }
        if self.worker.resolve_network.trim().is_empty() || self.worker.resolve_network == "none" {
            return Err(invalid("worker.resolve_network", "must name a Docker network (the resolve step downloads modules)"));
        }
        if self.worker.heartbeat_interval >= self.worker.lease {
            return Err(invalid("worker.heartbeat_interval", "must be shorter than worker.lease"));
        }
        if self.worker.limits.memory_mb < 256 {
            return Err(invalid("worker.limits.memory_mb", "must be at least 256"));
        }
        if self.worker.limits.cpus <= 0.0 {
            return Err(invalid("worker.limits.cpus", "must be positive"));
        }
        if self.storage.backend == StorageBackend::Local && self.storage.path.trim().is_empty() {
            return Err(invalid("storage.path", "must not be empty for the local backend"));
        }
        self.janitor.validate()?;
        self.gocache.validate()?;
        self.storage.validate()?;
        self.signing.validate()?;
        self.worker.preemption.validate()?;
        Ok(())
    }
}

fn check_http_url(key: &str, url: &str) -> Result<(), ConfigError> {
    let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"));
    match rest {
        Some(host) if !host.is_empty() && !host.starts_with('/') => Ok(()),
        _ => Err(invalid(key, format!("{url:?} is not an http(s) URL"))),
    }
}

impl StorageConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let s3 = &self.s3;
        if self.backend != StorageBackend::S3 {
            if s3.redirect {
                return Err(invalid("storage.s3.redirect", "needs storage.backend: s3"));
            }
            return Ok(());
        }
        // S3's bucket naming rules, which also keep the name safe in a URL.
        let b = &s3.bucket;
        let name_ok = (3..=63).contains(&b.len())
            && b.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.')
            && b.bytes().next().is_some_and(|c| c.is_ascii_alphanumeric())
            && b.bytes().last().is_some_and(|c| c.is_ascii_alphanumeric());
        if b.is_empty() {
            return Err(invalid("storage.s3.bucket", "must be set for the s3 backend"));
        }
        if !name_ok {
            return Err(invalid("storage.s3.bucket", format!("{b:?} is not a valid bucket name (3-63 of a-z 0-9 . -)")));
        }
        if s3.region.trim().is_empty() {
            return Err(invalid("storage.s3.region", "must not be empty"));
        }
        if s3.endpoint.is_empty() {
            if s3.region.parse::<s3::Region>().map(|r| matches!(r, s3::Region::Custom { .. })).unwrap_or(true) {
                return Err(invalid("storage.s3.region", format!("{:?} is not an AWS region; set storage.s3.endpoint", s3.region)));
            }
        } else {
            check_http_url("storage.s3.endpoint", &s3.endpoint)?;
        }
        if s3.access_key.is_empty() != s3.secret_key.is_empty() {
            let missing = if s3.access_key.is_empty() { "storage.s3.access_key" } else { "storage.s3.secret_key" };
            return Err(invalid(missing, "access_key and secret_key are set together or both left empty"));
        }
        if s3.presign_ttl < Duration::from_secs(1) || s3.presign_ttl > Duration::from_secs(7 * 24 * 3600) {
            return Err(invalid("storage.s3.presign_ttl", "must be between 1s and 7 days"));
        }
        Ok(())
    }
}

impl SigningConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.secret_key_path.trim().is_empty() {
            return Err(invalid("signing.secret_key_path", "must not be empty"));
        }
        if self.public_key_path.trim().is_empty() {
            return Err(invalid("signing.public_key_path", "must not be empty"));
        }
        if self.public_key_path == self.secret_key_path {
            return Err(invalid("signing.public_key_path", "must differ from signing.secret_key_path"));
        }
        Ok(())
    }
}

impl PreemptionConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.poll_interval < Duration::from_millis(100) {
            return Err(invalid("worker.preemption.poll_interval", "must be at least 100ms"));
        }
        if !self.endpoint.is_empty() {
            check_http_url("worker.preemption.endpoint", &self.endpoint)?;
        }
        Ok(())
    }
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
        assert_eq!(c.database.connect_timeout, Duration::from_millis(250));
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
        assert_eq!(c.catalog.len(), d.catalog.len());
        assert_eq!((c.gocache.enabled, c.gocache.share_modules), (d.gocache.enabled, d.gocache.share_modules));
        assert_eq!((c.gocache.max_bytes, c.gocache.max_age), (d.gocache.max_bytes, d.gocache.max_age));
        assert_eq!(c.gocache.program_volume, d.gocache.program_volume);
    }
}
