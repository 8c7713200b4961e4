//! A build's sandbox: its work dir and one container per step, each with the
//! step's network (the resolve step's attached to the resolve network, the
//! others with none). All are created and started in the background as soon as
//! the session opens, each with the process its step will become waiting in it,
//! so later steps find theirs ready; a step waits only for its own container,
//! and no container runs more than one step.
//!
//! A session may be opened before its build is known (a worker keeps one such
//! spare ready, so a claimed build does not wait for container start-up); it is
//! then [`Session::assign`]ed to the build, which renames its containers after
//! the build key. A container's name (`cbs-<build key>-<tag>-<step>`) is what
//! ties it to its build. Closing removes the containers and the work dir; a
//! session dropped without closing removes them in the background.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bollard::query_parameters::{CreateContainerOptionsBuilder, RenameContainerOptionsBuilder};
use futures::future::{BoxFuture, Shared};
use futures::FutureExt;

use super::container::BUILD_UID;
use super::step::Waiting;
use super::{Sandbox, SandboxError, StepNetwork};

/// How long an idle container outlives the longest wait for a build plus the
/// sum of the step timeouts before it exits by itself (should nobody remove it).
const IDLE_MARGIN: Duration = Duration::from_secs(300);
/// A spare session older than this is replaced rather than used, well before
/// its containers' idle time runs out.
pub const SPARE_MAX_AGE: Duration = Duration::from_secs(600);
const SPARE: &str = "spare";

pub struct Session {
    pub(super) sandbox: Sandbox,
    /// The builder image its containers run.
    image: String,
    work_dir: PathBuf,
    tag: String,
    /// Empty once the session is closed.
    containers: Vec<Container>,
    opened: Instant,
}

pub(super) struct Container {
    step: &'static str,
    pub(super) name: String,
    /// Set when its step runs: a container never runs a second one.
    pub(super) used: std::sync::atomic::AtomicBool,
    /// The background creation and start, shared by whoever waits for it.
    started: Shared<BoxFuture<'static, Result<(), SandboxError>>>,
    /// Once started, the process its step will become.
    pub(super) waiting: Arc<Mutex<Option<Waiting>>>,
}

impl Container {
    /// Waits until the container runs (or failed to start).
    pub(super) async fn ready(&self) -> Result<(), SandboxError> {
        self.started.clone().await
    }
}

/// `cbs-<build key or "spare">-<tag>-<step>`.
fn container_name(owner: &str, tag: &str, step: &str) -> String {
    format!("cbs-{owner}-{tag}-{step}")
}

/// The build key a container's name carries, if any.
pub(super) fn build_key_of(name: &str) -> Option<&str> {
    let rest = name.trim_start_matches('/').strip_prefix("cbs-")?;
    let key = rest.split('-').next()?;
    crate::spec::is_build_key(key).then_some(key)
}

impl Sandbox {
    /// Opens a session, for `build_key` or (with `None`) as a spare, with a
    /// container of `image` for each of `steps` (name and network): makes its work
    /// dir under `worker.work_dir` and starts the containers in the background.
    pub async fn open(&self, build_key: Option<&str>, image: &str, steps: &[(&'static str, StepNetwork)]) -> Result<Session, SandboxError> {
        let tag = format!("{:016x}", rand::random::<u64>());
        let owner = build_key.unwrap_or(SPARE);
        let work_dir = Path::new(&self.cfg.work_dir).join(format!("{owner}-{tag}"));
        make_work_dir(&work_dir).await.map_err(|e| SandboxError::WorkDir(format!("{}: {e}", work_dir.display())))?;
        let t = &self.cfg.timeouts;
        let idle = SPARE_MAX_AGE + t.resolve + t.build + t.verify + IDLE_MARGIN;
        let containers = steps
            .iter()
            .map(|(step, network)| {
                let body = self.container_body(&work_dir, image, step, network, idle);
                self.start_container(step, container_name(owner, &tag, step), image, body)
            })
            .collect();
        Ok(Session {
            containers,
            sandbox: self.clone(),
            image: image.to_string(),
            work_dir,
            tag,
            opened: Instant::now(),
        })
    }

    fn start_container(&self, step: &'static str, name: String, image: &str, body: bollard::models::ContainerCreateBody) -> Container {
        let sandbox = self.clone();
        let image = image.to_string();
        let task_name = name.clone();
        let waiting = Arc::new(Mutex::new(None));
        let slot = waiting.clone();
        let task = tokio::spawn(async move {
            let opts = CreateContainerOptionsBuilder::default().name(&task_name).build();
            sandbox.control.create_container(Some(opts), body).await.map_err(|e| match e {
                bollard::errors::Error::DockerResponseServerError { status_code: 404, message } if message.contains("image") => {
                    SandboxError::ImageMissing(image)
                }
                other => SandboxError::from_bollard(other),
            })?;
            sandbox.control.start_container(&task_name, None).await.map_err(SandboxError::from_bollard)?;
            *slot.lock().unwrap() = Some(sandbox.start_waiting(&task_name).await?);
            Ok(())
        });
        let started = task.map(|joined| joined.unwrap_or_else(|e| Err(SandboxError::Docker(format!("container start: {e}"))))).boxed().shared();
        Container { step, name, used: Default::default(), started, waiting }
    }
}

/// A work dir the containers' non-root user can write.
async fn make_work_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    tokio::fs::create_dir_all(dir).await?;
    if std::os::unix::fs::chown(dir, Some(BUILD_UID), Some(BUILD_UID)).is_err() {
        tokio::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).await?;
    }
    Ok(())
}

impl Session {
    pub fn work_dir(&self) -> &Path {
        &self.work_dir
    }

    /// The builder image its containers run.
    pub fn image(&self) -> &str {
        &self.image
    }

    pub fn age(&self) -> Duration {
        self.opened.elapsed()
    }

    /// The names of its containers (for telling a spare from a leftover).
    pub fn container_names(&self) -> Vec<&str> {
        self.containers.iter().map(|c| c.name.as_str()).collect()
    }

    /// The container of `step`, which must not have run yet.
    pub(super) fn take_container(&self, step: &str) -> Result<&Container, SandboxError> {
        let c = self
            .containers
            .iter()
            .find(|c| c.step == step)
            .ok_or_else(|| SandboxError::Docker(format!("the session has no container for the {step} step")))?;
        if c.used.swap(true, std::sync::atomic::Ordering::AcqRel) {
            return Err(SandboxError::Docker(format!("the {step} step's container was used already")));
        }
        Ok(c)
    }

    /// Hands a spare session to `build_key`: checks that its containers still
    /// run and renames them after the build. On error the session is unusable.
    pub async fn assign(&mut self, build_key: &str) -> Result<(), SandboxError> {
        let (control, tag) = (&self.sandbox.control, &self.tag);
        let renamed = self.containers.iter().map(|c| async move {
            c.ready().await?;
            let state = control.inspect_container(&c.name, None).await.map_err(SandboxError::from_bollard)?.state;
            if !state.and_then(|s| s.running).unwrap_or(false) {
                return Err(SandboxError::Docker(format!("container {} no longer runs", c.name)));
            }
            let name = container_name(build_key, tag, c.step);
            let opts = RenameContainerOptionsBuilder::default().name(&name).build();
            control.rename_container(&c.name, opts).await.map_err(SandboxError::from_bollard)?;
            Ok(name)
        });
        let names = futures::future::join_all(renamed).await;
        // Whatever was renamed keeps its new name, so that closing finds it.
        let mut result = Ok(());
        for (c, name) in self.containers.iter_mut().zip(names) {
            match name {
                Ok(name) => c.name = name,
                Err(e) => result = Err(e),
            }
        }
        result
    }

    /// Removes the containers (killing whatever still runs in them) and the work dir.
    pub async fn close(mut self) {
        let containers = std::mem::take(&mut self.containers);
        remove_all(&self.sandbox, &containers, &self.work_dir).await;
    }
}

async fn remove_all(sandbox: &Sandbox, containers: &[Container], work_dir: &Path) {
    // A container still being created must exist before it can be removed.
    futures::future::join_all(containers.iter().map(Container::ready)).await;
    sandbox.kill_and_remove(containers.iter().map(|c| c.name.as_str())).await;
    if let Err(e) = tokio::fs::remove_dir_all(work_dir).await
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %work_dir.display(), error = %e, "could not remove work dir");
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.containers.is_empty() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let sandbox = self.sandbox.clone();
        let containers = std::mem::take(&mut self.containers);
        let work_dir = self.work_dir.clone();
        runtime.spawn(async move { remove_all(&sandbox, &containers, &work_dir).await });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_build_key() {
        let key = "ab".repeat(32);
        let name = container_name(&key, "0123456789abcdef", "resolve");
        assert_eq!(name, format!("cbs-{key}-0123456789abcdef-resolve"));
        assert_eq!(build_key_of(&format!("/{name}")), Some(key.as_str()));
        assert_eq!(build_key_of(&container_name(SPARE, "0123456789abcdef", "build")), None);
        assert_eq!(build_key_of("something-else"), None);
    }
}
