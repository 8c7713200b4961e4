//! The container a build step runs in, hardened: no capabilities, no
//! privilege escalation, a non-root user, a read-only root with tmpfs for
//! scratch, memory/CPU/pids limits, no network unless the step needs it, and
//! no environment at all (the step brings its own, nothing of the worker's).
//! The container itself only idles; its step's process is `exec`'d into it.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType};

use super::{Sandbox, LABEL_MANAGED, LABEL_NAMESPACE, LABEL_STEP, LABEL_WORKER};

/// The uid:gid steps run as; the builder image owns its cache and work directories by it.
pub const BUILD_USER: &str = "1000:1000";
pub const BUILD_UID: u32 = 1000;
/// Where the per-build work directory and the caches appear inside the container.
pub const WORK_MOUNT: &str = "/work";
pub const GOMODCACHE: &str = "/cache/gomod";
pub const GOCACHE: &str = "/cache/gobuild";
/// Where the program volume (see [`Sandbox::with_program_volume`]) appears, read-only.
pub const PROGRAM_MOUNT: &str = "/opt/cbs";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepNetwork {
    /// Attached to `worker.resolve_network`: the resolve step fetches modules from the proxy.
    Online,
    /// No network interface but loopback.
    None,
}

impl Sandbox {
    /// An idle container (its PID 1 sleeps under Docker's init, which reaps
    /// whatever the steps leave behind) that exits on its own after `idle` even
    /// if nobody removes it.
    pub(super) fn container_body(&self, work_dir: &Path, image: &str, step: &str, network: &StepNetwork, idle: Duration) -> ContainerCreateBody {
        let limits = &self.cfg.limits;
        let labels = HashMap::from([
            (LABEL_MANAGED.to_string(), "true".to_string()),
            (LABEL_NAMESPACE.to_string(), self.owner.namespace.clone()),
            (LABEL_WORKER.to_string(), self.owner.worker_id.clone()),
            (LABEL_STEP.to_string(), step.to_string()),
        ]);
        let mut mounts = vec![
            Mount {
                target: Some(WORK_MOUNT.into()),
                source: Some(work_dir.display().to_string()),
                typ: Some(MountType::BIND),
                read_only: Some(false),
                ..Default::default()
            },
            volume(&self.cfg.gomod_cache_volume, GOMODCACHE),
            volume(&self.cfg.gobuild_cache_volume, GOCACHE),
        ];
        if let Some(program) = &self.program_volume {
            mounts.push(Mount { read_only: Some(true), ..volume(program, PROGRAM_MOUNT) });
        }
        let host_config = HostConfig {
            mounts: Some(mounts),
            network_mode: Some(match network {
                StepNetwork::Online => self.cfg.resolve_network.clone(),
                StepNetwork::None => "none".into(),
            }),
            cap_drop: Some(vec!["ALL".into()]),
            security_opt: Some(vec!["no-new-privileges:true".into()]),
            readonly_rootfs: Some(true),
            tmpfs: Some(HashMap::from([(
                "/tmp".to_string(),
                format!("rw,nosuid,nodev,size={}m,mode=1777", limits.tmpfs_mb),
            )])),
            memory: Some((limits.memory_mb * 1024 * 1024) as i64),
            memory_swap: Some((limits.memory_mb * 1024 * 1024) as i64),
            nano_cpus: Some((limits.cpus * 1e9) as i64),
            pids_limit: Some(limits.pids),
            init: Some(true),
            ..Default::default()
        };
        ContainerCreateBody {
            image: Some(image.to_string()),
            cmd: Some(vec!["sleep".into(), idle.as_secs().max(1).to_string()]),
            entrypoint: Some(vec![]),
            env: Some(vec![]),
            user: Some(BUILD_USER.into()),
            working_dir: Some(WORK_MOUNT.into()),
            labels: Some(labels),
            network_disabled: Some(*network == StepNetwork::None),
            host_config: Some(host_config),
            ..Default::default()
        }
    }
}

fn volume(name: &str, target: &str) -> Mount {
    Mount {
        target: Some(target.into()),
        source: Some(name.into()),
        typ: Some(MountType::VOLUME),
        read_only: Some(false),
        ..Default::default()
    }
}
