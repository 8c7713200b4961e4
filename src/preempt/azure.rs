//! Azure Scheduled Events: a `Preempt` event listing this VM announces that a
//! spot VM is being evicted (at least 30 s ahead). The event document covers the
//! whole availability set or scale set, so events are matched against this VM's
//! name, which the instance metadata service tells once.

use async_trait::async_trait;
use tokio::sync::OnceCell;

use super::{send, text, Detector, PreemptError};

pub(super) const DEFAULT_ENDPOINT: &str = "http://169.254.169.254";
const EVENTS_PATH: &str = "/metadata/scheduledevents?api-version=2020-07-01";
const NAME_PATH: &str = "/metadata/instance/compute/name?api-version=2021-02-01&format=text";

pub struct AzureScheduledEvents {
    client: reqwest::Client,
    events_url: String,
    name_url: String,
    vm_name: OnceCell<String>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Document {
    #[serde(default)]
    events: Vec<Event>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Event {
    event_type: String,
    #[serde(default)]
    resources: Vec<String>,
}

impl AzureScheduledEvents {
    /// `endpoint` is the instance metadata service's base URL, without a trailing slash.
    pub fn new(client: reqwest::Client, endpoint: String) -> AzureScheduledEvents {
        AzureScheduledEvents {
            client,
            events_url: format!("{endpoint}{EVENTS_PATH}"),
            name_url: format!("{endpoint}{NAME_PATH}"),
            vm_name: OnceCell::new(),
        }
    }

    /// GET with the header the service requires of every caller.
    async fn get(&self, url: &str) -> Result<String, PreemptError> {
        let request = self.client.get(url).header("Metadata", "true");
        let response = send(url, request).await?.ok_or(PreemptError::Status { url: url.to_string(), status: 404 })?;
        text(url, response).await
    }
}

#[async_trait]
impl Detector for AzureScheduledEvents {
    fn name(&self) -> &'static str {
        "azure"
    }

    async fn check(&self) -> Result<bool, PreemptError> {
        let vm = self.vm_name.get_or_try_init(|| async { Ok(self.get(&self.name_url).await?.trim().to_string()) }).await?;
        let body = self.get(&self.events_url).await?;
        let doc: Document = serde_json::from_str(&body)
            .map_err(|e| PreemptError::Decode { url: self.events_url.clone(), message: e.to_string() })?;
        Ok(doc.events.iter().any(|e| e.event_type == "Preempt" && e.resources.iter().any(|r| r == vm)))
    }
}
