//! Google Compute Engine: the metadata value `instance/preempted` turns `TRUE`
//! when a preemptible or spot VM is being reclaimed (about 30 s before it stops).

use async_trait::async_trait;

use super::{send, text, Detector, PreemptError};

pub(super) const DEFAULT_ENDPOINT: &str = "http://metadata.google.internal";
const PATH: &str = "/computeMetadata/v1/instance/preempted";

pub struct GcePreempted {
    client: reqwest::Client,
    url: String,
}

impl GcePreempted {
    /// `endpoint` is the metadata server's base URL, without a trailing slash.
    pub fn new(client: reqwest::Client, endpoint: String) -> GcePreempted {
        GcePreempted { client, url: format!("{endpoint}{PATH}") }
    }
}

#[async_trait]
impl Detector for GcePreempted {
    fn name(&self) -> &'static str {
        "gce"
    }

    async fn check(&self) -> Result<bool, PreemptError> {
        // The header proves to the metadata server that the request is not forwarded.
        let request = self.client.get(&self.url).header("Metadata-Flavor", "Google");
        let Some(response) = send(&self.url, request).await? else {
            return Err(PreemptError::Status { url: self.url.clone(), status: 404 });
        };
        Ok(text(&self.url, response).await?.trim().eq_ignore_ascii_case("true"))
    }
}
