//! `worker:`: how a worker claims and runs builds, its sandbox and its machine's preemption notices.

use std::time::Duration;

use serde::Deserialize;

use super::{http_url, invalid, process_id, BuilderImagesConfig, ConfigError, DEFAULT_GO_VERSION};

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerConfig {
    /// Unique per worker process; empty: `<hostname>-<pid>`.
    pub id: String,
    /// Builds run at once by this worker.
    pub max_jobs: usize,
    /// A builder image of your own (Go, a CA bundle and /bin/sh) for builds at
    /// `go_version`; empty (the default): the worker makes one per Go version from
    /// the module proxy's toolchain (`worker.images`).
    pub image: String,
    /// Go version of builds whose spec names none (the api fills it in).
    pub go_version: String,
    pub images: BuilderImagesConfig,
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
            image: String::new(),
            go_version: DEFAULT_GO_VERSION.into(),
            images: BuilderImagesConfig::default(),
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
        Self { resolve: Duration::from_secs(10 * 60), build: Duration::from_secs(15 * 60), verify: Duration::from_secs(60) }
    }
}

impl WorkerConfig {
    /// This worker's id: configured, or `<hostname>-<pid>`.
    pub fn worker_id(&self) -> String {
        process_id(&self.id, "worker")
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.max_jobs == 0 {
            return Err(invalid("worker.max_jobs", "must be at least 1"));
        }
        self.images.validate(&self.go_version)?;
        if self.resolve_network.trim().is_empty() || self.resolve_network == "none" {
            return Err(invalid("worker.resolve_network", "must name a Docker network (the resolve step downloads modules)"));
        }
        if self.heartbeat_interval >= self.lease {
            return Err(invalid("worker.heartbeat_interval", "must be shorter than worker.lease"));
        }
        if self.limits.memory_mb < 256 {
            return Err(invalid("worker.limits.memory_mb", "must be at least 256"));
        }
        if self.limits.cpus <= 0.0 {
            return Err(invalid("worker.limits.cpus", "must be positive"));
        }
        self.preemption.validate()?;
        Ok(())
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

impl PreemptionConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.poll_interval < Duration::from_millis(100) {
            return Err(invalid("worker.preemption.poll_interval", "must be at least 100ms"));
        }
        if !self.endpoint.is_empty() {
            http_url("worker.preemption.endpoint", &self.endpoint)?;
        }
        Ok(())
    }
}
