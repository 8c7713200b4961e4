//! The builder image records the worker keeps (`cbs.builder_images`): each
//! use, and the trimming policy's verdict on the host's images.

use std::time::Duration;

use serde_json::Value;

use super::{query, DbError, Queue};

impl Queue {
    /// A build on `host` runs in `image` (of Go `go_version`) now.
    pub async fn builder_image_used(&self, host: &str, image: &str, go_version: &str) -> Result<(), DbError> {
        self.query(query!("builder_image_used"), &[&host, &image, &go_version]).await.map(|_| ())
    }

    /// The images of `present` (`[{"image", "go_version", "created"}]`) to remove:
    /// unused for `max_unused` and not in `keep`.
    pub async fn builder_images_to_trim(&self, host: &str, present: &Value, keep: &[String], max_unused: Duration) -> Result<Vec<String>, DbError> {
        let rows = self.query(query!("builder_images_to_trim"), &[&host, present, &keep, &max_unused.as_secs_f64()]).await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    pub async fn builder_image_removed(&self, host: &str, image: &str) -> Result<(), DbError> {
        self.query(query!("builder_image_removed"), &[&host, &image]).await.map(|_| ())
    }
}
