//! `api:`: the HTTP server, its limits and admission control.

use std::time::Duration;

use serde::Deserialize;

use super::{AdmissionConfig, ConfigError, admission, http_url, invalid};

/// Upper bound of `api.shared_download_max_bytes` (1 GiB).
const MAX_SHARED_DOWNLOAD_BYTES: u64 = 1 << 30;
/// Upper bound of `api.max_uri_bytes`: hyper refuses longer request targets itself.
pub const MAX_URI_BYTES: usize = 65534;
/// Upper bound of `api.max_header_bytes` (1 MiB): a connection's read buffer must hold
/// the whole request head, and grows to this size for anyone who sends one.
pub const MAX_HEADER_BYTES: usize = 1 << 20;

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

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        self.listen_addr()?;
        self.trusted_proxy_nets()?;
        self.admission.validate()?;
        if self.max_plugins == 0 {
            return Err(invalid("api.max_plugins", "must be at least 1"));
        }
        if self.max_body_bytes < 1024 {
            return Err(invalid("api.max_body_bytes", "must be at least 1024"));
        }
        if !(1024..=MAX_URI_BYTES).contains(&self.max_uri_bytes) {
            return Err(invalid("api.max_uri_bytes", format!("must be from 1024 to {MAX_URI_BYTES} (the most hyper parses)")));
        }
        if !(4096..=MAX_HEADER_BYTES).contains(&self.max_header_bytes) {
            return Err(invalid("api.max_header_bytes", format!("must be from 4096 to {MAX_HEADER_BYTES}")));
        }
        if self.shared_download_max_bytes > MAX_SHARED_DOWNLOAD_BYTES {
            return Err(invalid(
                "api.shared_download_max_bytes",
                format!("must be at most {MAX_SHARED_DOWNLOAD_BYTES} (1 GiB): each build being served holds one copy in memory"),
            ));
        }
        for (key, value) in [
            ("api.compat_wait_limit", self.compat_wait_limit),
            ("api.max_long_poll", self.max_long_poll),
            ("api.module_proxy_timeout", self.module_proxy_timeout),
        ] {
            if value.is_zero() {
                return Err(invalid(key, "must be longer than zero"));
            }
        }
        if !self.public_url.trim().is_empty() {
            http_url("api.public_url", self.public_url.trim())?;
        }
        Ok(())
    }
}
