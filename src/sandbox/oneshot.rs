//! A one-off container that runs a single command to its end, as hardened as a
//! build step's (no network, no capabilities, read-only root with a tmpfs /tmp,
//! the step limits): the worker compiles its cache program this way, with the
//! builder image's own Go. Named after the build that needed it, so the
//! worker's reaping keeps it while that build runs and removes it otherwise.

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType};
use bollard::query_parameters::{CreateContainerOptionsBuilder, LogsOptionsBuilder};
use futures::StreamExt;

use super::{Sandbox, SandboxError, LABEL_MANAGED, LABEL_NAMESPACE, LABEL_STEP, LABEL_WORKER};

/// Most output kept from a one-off command.
const MAX_OUTPUT: usize = 64 * 1024;

/// A command to run once.
#[derive(Debug, Clone)]
pub struct OneShot {
    /// Names the container (`cbs-<build key>-<tag>-<what>`) and its step label.
    pub what: &'static str,
    pub build_key: String,
    /// The image (name or id) to run: the builder image of the build that needs it.
    pub image: String,
    pub cmd: Vec<String>,
    pub env: Vec<(String, String)>,
    /// `user` or `uid:gid`.
    pub user: String,
    /// (host directory, target) bind-mounted read-only.
    pub bind_read_only: Vec<(String, String)>,
    /// (volume, target) mounted writable.
    pub volumes: Vec<(String, String)>,
    pub timeout: Duration,
}

impl Sandbox {
    /// Runs `job` in a new container of the builder image; returns its exit code
    /// and output (stdout and stderr, the last [`MAX_OUTPUT`] bytes).
    pub async fn run_once(&self, job: &OneShot) -> Result<(i64, String), SandboxError> {
        let tag = format!("{:016x}", rand::random::<u64>());
        let name = format!("cbs-{}-{tag}-{}", job.build_key, job.what);
        let created = self.control.create_container(Some(CreateContainerOptionsBuilder::default().name(&name).build()), self.one_shot_body(job)).await;
        created.map_err(SandboxError::from_bollard)?;
        let result = tokio::time::timeout(job.timeout, self.run_created(&name)).await;
        self.remove(&name).await;
        match result {
            Ok(r) => r,
            Err(_) => Err(SandboxError::Timeout { step: job.what.to_string(), after: job.timeout }),
        }
    }

    async fn run_created(&self, name: &str) -> Result<(i64, String), SandboxError> {
        self.control.start_container(name, None).await.map_err(SandboxError::from_bollard)?;
        let mut wait = self.stream.wait_container(name, None);
        let code = match wait.next().await {
            Some(Ok(r)) => r.status_code,
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => code,
            Some(Err(e)) => return Err(SandboxError::from_bollard(e)),
            None => return Err(SandboxError::Docker(format!("no exit status for {name}"))),
        };
        let opts = LogsOptionsBuilder::default().stdout(true).stderr(true).build();
        let mut logs = self.control.logs(name, Some(opts));
        let mut output = Vec::new();
        while let Some(Ok(chunk)) = logs.next().await {
            output.extend_from_slice(&chunk.into_bytes());
            if output.len() > 2 * MAX_OUTPUT {
                output.drain(..output.len() - MAX_OUTPUT);
            }
        }
        let start = output.len().saturating_sub(MAX_OUTPUT);
        Ok((code, String::from_utf8_lossy(&output[start..]).into_owned()))
    }

    fn one_shot_body(&self, job: &OneShot) -> ContainerCreateBody {
        let limits = &self.cfg.limits;
        let labels = HashMap::from([
            (LABEL_MANAGED.to_string(), "true".to_string()),
            (LABEL_NAMESPACE.to_string(), self.owner.namespace.clone()),
            (LABEL_WORKER.to_string(), self.owner.worker_id.clone()),
            (LABEL_STEP.to_string(), job.what.to_string()),
        ]);
        let mount = |typ, source: &str, target: &str, read_only| Mount {
            target: Some(target.into()),
            source: Some(source.into()),
            typ: Some(typ),
            read_only: Some(read_only),
            ..Default::default()
        };
        let mut mounts: Vec<Mount> = job.bind_read_only.iter().map(|(s, t)| mount(MountType::BIND, s, t, true)).collect();
        mounts.extend(job.volumes.iter().map(|(s, t)| mount(MountType::VOLUME, s, t, false)));
        ContainerCreateBody {
            image: Some(job.image.clone()),
            cmd: Some(job.cmd.clone()),
            entrypoint: Some(vec![]),
            env: Some(job.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            user: Some(job.user.clone()),
            labels: Some(labels),
            network_disabled: Some(true),
            host_config: Some(HostConfig {
                mounts: Some(mounts),
                network_mode: Some("none".into()),
                cap_drop: Some(vec!["ALL".into()]),
                security_opt: Some(vec!["no-new-privileges:true".into()]),
                readonly_rootfs: Some(true),
                tmpfs: Some(HashMap::from([("/tmp".to_string(), format!("rw,nosuid,nodev,size={}m,mode=1777", limits.tmpfs_mb))])),
                memory: Some((limits.memory_mb * 1024 * 1024) as i64),
                memory_swap: Some((limits.memory_mb * 1024 * 1024) as i64),
                nano_cpus: Some((limits.cpus * 1e9) as i64),
                pids_limit: Some(limits.pids),
                init: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}
