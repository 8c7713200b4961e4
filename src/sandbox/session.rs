//! A build's containers: `online` (attached to the resolve network) for the
//! resolve step and `sealed` (no network) for build and verify. Both are
//! created and started in the background as soon as the session opens, so the
//! sealed one is ready by the time resolving ends; a step waits only for its
//! own container. Closing removes both; a session dropped without closing
//! removes them in the background.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use bollard::query_parameters::CreateContainerOptionsBuilder;
use tokio::sync::OnceCell;
use tokio::task::JoinHandle;

use super::{Sandbox, SandboxError, StepNetwork};

/// How long an idle container outlives the sum of the step timeouts before it
/// exits by itself (should nobody remove it).
const IDLE_MARGIN: Duration = Duration::from_secs(300);

pub struct Session {
    pub(super) sandbox: Sandbox,
    online: Container,
    sealed: Container,
    closed: bool,
}

pub(super) struct Container {
    pub(super) name: String,
    starting: Mutex<Option<JoinHandle<Result<(), SandboxError>>>>,
    ready: OnceCell<Result<(), SandboxError>>,
}

impl Container {
    /// Waits until the container runs (or failed to start).
    pub(super) async fn ready(&self) -> Result<(), SandboxError> {
        self.ready
            .get_or_init(|| async {
                let starting = self.starting.lock().unwrap().take();
                match starting {
                    Some(task) => task.await.unwrap_or_else(|e| Err(SandboxError::Docker(format!("container start: {e}")))),
                    None => Err(SandboxError::Docker("container start was abandoned".into())),
                }
            })
            .await
            .clone()
    }
}

impl Sandbox {
    /// Opens `build_key`'s session with `work_dir` mounted at /work in both containers.
    pub fn open(&self, build_key: &str, work_dir: &Path) -> Session {
        let t = &self.cfg.timeouts;
        let idle = t.resolve + t.build + t.verify + IDLE_MARGIN;
        let tag = format!("{}-{:08x}", &build_key[..build_key.len().min(12)], rand::random::<u32>());
        let online = StepNetwork::Online;
        let sealed = StepNetwork::None;
        Session {
            online: self.start_container(format!("cbs-{tag}-online"), self.container_body(build_key, work_dir, &online, idle)),
            sealed: self.start_container(format!("cbs-{tag}-sealed"), self.container_body(build_key, work_dir, &sealed, idle)),
            sandbox: self.clone(),
            closed: false,
        }
    }

    fn start_container(&self, name: String, body: bollard::models::ContainerCreateBody) -> Container {
        let sandbox = self.clone();
        let task_name = name.clone();
        let task = tokio::spawn(async move {
            let opts = CreateContainerOptionsBuilder::default().name(&task_name).build();
            sandbox.control.create_container(Some(opts), body).await.map_err(|e| match e {
                bollard::errors::Error::DockerResponseServerError { status_code: 404, message } if message.contains("image") => {
                    SandboxError::ImageMissing(sandbox.cfg.image.clone())
                }
                other => SandboxError::from_bollard(other),
            })?;
            sandbox.control.start_container(&task_name, None).await.map_err(SandboxError::from_bollard)
        });
        Container { name, starting: Mutex::new(Some(task)), ready: OnceCell::new() }
    }
}

impl Session {
    pub(super) fn container(&self, network: &StepNetwork) -> &Container {
        match network {
            StepNetwork::Online => &self.online,
            StepNetwork::None => &self.sealed,
        }
    }

    /// Removes both containers (killing whatever still runs in them).
    pub async fn close(mut self) {
        self.closed = true;
        remove_all(&self.sandbox, &self.online, &self.sealed).await;
    }
}

async fn remove_all(sandbox: &Sandbox, online: &Container, sealed: &Container) {
    // A container still being created must exist before it can be removed.
    let _ = tokio::join!(online.ready(), sealed.ready());
    tokio::join!(sandbox.remove(&online.name), sandbox.remove(&sealed.name));
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.closed {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let sandbox = self.sandbox.clone();
        let take = |c: &mut Container| Container {
            name: c.name.clone(),
            starting: Mutex::new(c.starting.lock().unwrap().take()),
            ready: c.ready.take().map_or_else(OnceCell::new, |r| OnceCell::new_with(Some(r))),
        };
        let (online, sealed) = (take(&mut self.online), take(&mut self.sealed));
        runtime.spawn(async move { remove_all(&sandbox, &online, &sealed).await });
    }
}
