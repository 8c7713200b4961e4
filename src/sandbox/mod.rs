//! The Docker sandbox: every build step runs in a fresh, locked-down,
//! throwaway container (bollard). This module knows Docker and nothing of the
//! queue: it opens a build's [`Session`] (one hardened, idle container per
//! step), runs each step in its container with `exec` under a timeout while
//! streaming its output, kills a build's containers on demand, and removes
//! leftovers of dead workers. Every container carries labels (namespace,
//! worker, step) and a name with its build key, so that several workers, test
//! processes and databases can share one daemon safely.
//!
//! Containers are started ahead (all of a build's at once, and a spare set
//! before a build is even claimed) and the step `exec`'d into its container,
//! because creating and starting a container costs about half a second; a
//! build would otherwise wait for that before each step.

mod container;
mod oneshot;
mod reap;
mod session;
mod step;

use std::time::Duration;

use bollard::Docker;

pub use container::{StepNetwork, BUILD_UID, PROGRAM_MOUNT, WORK_MOUNT};
pub use oneshot::OneShot;
pub use reap::Found;
pub use session::{Session, SPARE_MAX_AGE};
pub use step::{shell_quote, OutputLine, StepOutcome, StepSpec};

use crate::config::WorkerConfig;

/// Label keys on every container this service creates.
pub const LABEL_MANAGED: &str = "io.caddy-build-server.managed";
pub const LABEL_NAMESPACE: &str = "io.caddy-build-server.namespace";
pub const LABEL_WORKER: &str = "io.caddy-build-server.worker";
pub const LABEL_STEP: &str = "io.caddy-build-server.step";

/// Timeout of ordinary Docker API calls (create, remove, inspect, ping).
const CONTROL_TIMEOUT: Duration = Duration::from_secs(60);
/// Timeout of the long requests that follow a running step (logs, wait); the step's
/// own timeout is enforced separately and is always shorter.
const STREAM_TIMEOUT: Duration = Duration::from_secs(6 * 3600);

#[derive(Debug, Clone, thiserror::Error)]
pub enum SandboxError {
    /// The daemon cannot be reached or failed mid-step: worth retrying elsewhere or later.
    #[error("Docker daemon unavailable: {0}")]
    Unavailable(String),
    /// The builder image is missing on this daemon.
    #[error("builder image {0:?} not found on the Docker daemon")]
    ImageMissing(String),
    #[error("{step} step timed out after {after:?}")]
    Timeout { step: String, after: Duration },
    /// The build was cancelled or the worker is stopping; the container was removed.
    #[error("{step} step stopped: build cancelled")]
    Cancelled { step: String },
    #[error("Docker error: {0}")]
    Docker(String),
    #[error("work dir {0}")]
    WorkDir(String),
}

impl SandboxError {
    fn from_bollard(e: bollard::errors::Error) -> SandboxError {
        use bollard::errors::Error as E;
        match e {
            E::DockerResponseServerError { status_code, message } if status_code < 500 => {
                SandboxError::Docker(format!("{status_code}: {message}"))
            }
            other => SandboxError::Unavailable(other.to_string()),
        }
    }
}

/// Identity stamped on containers: which database (namespace) and worker own them.
#[derive(Debug, Clone)]
pub struct Owner {
    pub namespace: String,
    pub worker_id: String,
}

/// A handle to the Docker daemon plus the worker's sandbox settings; cheap to clone.
#[derive(Clone)]
pub struct Sandbox {
    control: Docker,
    stream: Docker,
    cfg: WorkerConfig,
    owner: Owner,
    /// A volume mounted read-only at [`PROGRAM_MOUNT`] into every step's
    /// container (the shared Go cache's program), if any.
    program_volume: Option<String>,
}

impl Sandbox {
    /// Connects lazily (no request yet): `worker.docker_host`, else `DOCKER_HOST`, else the local socket.
    pub fn connect(cfg: &WorkerConfig, owner: Owner) -> Result<Sandbox, SandboxError> {
        let docker = if cfg.docker_host.is_empty() {
            Docker::connect_with_defaults()
        } else {
            Docker::connect_with_host(&cfg.docker_host)
        }
        .map_err(|e| SandboxError::Unavailable(e.to_string()))?;
        Ok(Sandbox {
            control: docker.clone().with_timeout(CONTROL_TIMEOUT),
            stream: docker.with_timeout(STREAM_TIMEOUT),
            cfg: cfg.clone(),
            owner,
            program_volume: None,
        })
    }

    /// Mounts `volume` read-only at [`PROGRAM_MOUNT`] into the containers of
    /// every session opened from now on.
    pub fn with_program_volume(mut self, volume: &str) -> Sandbox {
        self.program_volume = Some(volume.to_string());
        self
    }

    /// Checks that the daemon answers and has the builder image `image`; agrees on
    /// the API version with older daemons. Returns the image id.
    pub async fn check(&self, image: &str) -> Result<String, SandboxError> {
        // Clones share the negotiated version, so this settles it for both clients.
        self.control.clone().negotiate_version().await.map_err(SandboxError::from_bollard)?;
        self.control.ping().await.map_err(SandboxError::from_bollard)?;
        match self.control.inspect_image(image).await {
            Ok(img) => Ok(img.id.unwrap_or_default()),
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => {
                Err(SandboxError::ImageMissing(image.to_string()))
            }
            Err(e) => Err(SandboxError::from_bollard(e)),
        }
    }

    /// A cheap liveness probe, used before claiming work.
    pub async fn ping(&self) -> Result<(), SandboxError> {
        self.control.ping().await.map(|_| ()).map_err(SandboxError::from_bollard)
    }
}
