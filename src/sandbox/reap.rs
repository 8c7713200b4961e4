//! Finding and removing containers by label and name: a build's containers
//! (cancel, preemption) and the leftovers of workers that died without
//! cleaning up.
//! Only containers of this service's namespace (one database) are ever touched.

use std::collections::HashMap;

use bollard::query_parameters::ListContainersOptionsBuilder;

use super::session::build_key_of;
use super::{Sandbox, SandboxError, LABEL_MANAGED, LABEL_NAMESPACE, LABEL_WORKER};

/// A container of ours, as found on the daemon.
#[derive(Debug, Clone)]
pub struct Found {
    pub id: String,
    /// The container's name, without Docker's leading `/`.
    pub name: String,
    pub worker_id: String,
    /// Empty for a spare that no build has taken yet.
    pub build_key: String,
}

impl Sandbox {
    /// Containers of this namespace, optionally narrowed by more `label=value` filters.
    pub async fn list_ours(&self, extra: &[(&str, &str)]) -> Result<Vec<Found>, SandboxError> {
        let mut labels = vec![format!("{LABEL_MANAGED}=true"), format!("{LABEL_NAMESPACE}={}", self.owner.namespace)];
        labels.extend(extra.iter().map(|(k, v)| format!("{k}={v}")));
        let filters = HashMap::from([("label".to_string(), labels)]);
        let opts = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
        let list = self.control.list_containers(Some(opts)).await.map_err(SandboxError::from_bollard)?;
        Ok(list
            .into_iter()
            .filter_map(|c| {
                let labels = c.labels.unwrap_or_default();
                let name = c.names.unwrap_or_default().first().map(|n| n.trim_start_matches('/').to_string()).unwrap_or_default();
                Some(Found {
                    id: c.id?,
                    worker_id: labels.get(LABEL_WORKER).cloned().unwrap_or_default(),
                    build_key: build_key_of(&name).unwrap_or_default().to_string(),
                    name,
                })
            })
            .collect())
    }

    /// Kills and removes every container this worker runs for `build_key`.
    pub async fn kill_build(&self, build_key: &str) -> Result<usize, SandboxError> {
        let mut found = self.list_ours(&[(LABEL_WORKER, &self.owner.worker_id)]).await?;
        found.retain(|c| c.build_key == build_key);
        self.kill_and_remove(found.iter().map(|c| c.id.as_str())).await;
        Ok(found.len())
    }

    /// Removes containers of this namespace whose worker is not in `live_workers`
    /// (this worker counts as live only for containers of builds it runs now and
    /// for the containers named in `own_spare`).
    pub async fn reap_leftovers(&self, live_workers: &[String], own_builds: &[String], own_spare: &[&str]) -> Result<usize, SandboxError> {
        let mut n = 0;
        for c in self.list_ours(&[]).await? {
            let mine = c.worker_id == self.owner.worker_id;
            let keep = if mine {
                own_builds.contains(&c.build_key) || own_spare.contains(&c.name.as_str())
            } else {
                live_workers.contains(&c.worker_id)
            };
            if !keep {
                tracing::info!(container = %c.id, worker = %c.worker_id, build_key = %c.build_key, "removing leftover build container");
                self.remove(&c.id).await;
                n += 1;
            }
        }
        Ok(n)
    }
}
