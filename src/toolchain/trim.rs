//! Trimming builder images: the worker lists the images it made on its daemon,
//! asks the policy in SQL (`cbs.builder_images_to_trim`) which have gone unused
//! past `worker.images.max_unused_age`, keeping the default Go version's image
//! and every image a container uses, then removes those (image first, then the
//! row: a failed removal is tried again next time).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use bollard::query_parameters::{ListContainersOptionsBuilder, ListImagesOptionsBuilder, RemoveImageOptionsBuilder};
use serde_json::json;
use tracing::{info, warn};

use super::{ImageMaker, ToolchainError, LABEL_GO_VERSION};
use crate::db::Queue;

/// What one trimming pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TrimReport {
    pub present: usize,
    pub removed: Vec<String>,
}

impl ImageMaker {
    /// One trimming pass on this daemon for `host`, keeping `default`'s image.
    pub async fn trim(&self, queue: &Queue, host: &str, default: super::GoVersion, max_unused: Duration) -> Result<TrimReport, ToolchainError> {
        let docker = self.docker();
        let docker_err = |e: bollard::errors::Error| ToolchainError::Docker(e.to_string());
        let filters = HashMap::from([("label".to_string(), vec![LABEL_GO_VERSION.to_string()])]);
        let images = docker.list_images(Some(ListImagesOptionsBuilder::default().filters(&filters).build())).await.map_err(docker_err)?;
        let prefix = format!("{}:", self.repository());
        let mut present = Vec::new();
        let mut ids = HashMap::new();
        for img in &images {
            for tag in img.repo_tags.iter().filter(|t| t.starts_with(&prefix)) {
                let created = chrono::DateTime::from_timestamp(img.created, 0).unwrap_or_default();
                let go = img.labels.get(LABEL_GO_VERSION).cloned().unwrap_or_default();
                present.push(json!({"image": tag, "go_version": go, "created": created}));
                ids.insert(tag.clone(), img.id.clone());
            }
        }
        let containers = docker.list_containers(Some(ListContainersOptionsBuilder::default().all(true).build())).await.map_err(docker_err)?;
        let in_use: HashSet<String> = containers.iter().filter_map(|c| c.image_id.clone()).collect();
        let mut keep = vec![self.image_name(default)];
        keep.extend(ids.iter().filter(|(_, id)| in_use.contains(*id)).map(|(tag, _)| tag.clone()));
        let doomed = queue
            .builder_images_to_trim(host, &json!(present), &keep, max_unused)
            .await
            .map_err(|e| ToolchainError::Io(format!("database: {e}")))?;
        let mut report = TrimReport { present: present.len(), removed: Vec::new() };
        for image in doomed {
            match docker.remove_image(&image, Some(RemoveImageOptionsBuilder::default().build()), None).await {
                Ok(_) => {
                    info!(image, "removed an unused builder image");
                    queue.builder_image_removed(host, &image).await.map_err(|e| ToolchainError::Io(format!("database: {e}")))?;
                    report.removed.push(image);
                }
                // A container started since the listing: kept, tried again next time.
                Err(e) => warn!(image, error = %e, "cannot remove an unused builder image"),
            }
        }
        Ok(report)
    }
}
