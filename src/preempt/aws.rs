//! AWS EC2 spot instances: `meta-data/spot/instance-action` exists (a JSON
//! `{"action": "terminate"|"stop"|"hibernate", "time": ...}`) from two minutes
//! before the instance is interrupted, and answers 404 otherwise. IMDSv2: every
//! request carries a session token obtained with a PUT, renewed before it expires
//! and whenever the service rejects it.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::Mutex;

use super::{send, text, Detector, PreemptError};

pub(super) const DEFAULT_ENDPOINT: &str = "http://169.254.169.254";
const TOKEN_PATH: &str = "/latest/api/token";
const ACTION_PATH: &str = "/latest/meta-data/spot/instance-action";
/// Lifetime we ask for; the token is renewed a minute before it runs out.
const TOKEN_TTL: Duration = Duration::from_secs(6 * 3600);
const TOKEN_MARGIN: Duration = Duration::from_secs(60);

pub struct AwsSpot {
    client: reqwest::Client,
    token_url: String,
    action_url: String,
    token: Mutex<Option<(String, Instant)>>,
}

#[derive(serde::Deserialize)]
struct InstanceAction {
    action: String,
}

impl AwsSpot {
    /// `endpoint` is the instance metadata service's base URL, without a trailing slash.
    pub fn new(client: reqwest::Client, endpoint: String) -> AwsSpot {
        AwsSpot {
            client,
            token_url: format!("{endpoint}{TOKEN_PATH}"),
            action_url: format!("{endpoint}{ACTION_PATH}"),
            token: Mutex::new(None),
        }
    }

    async fn token(&self) -> Result<String, PreemptError> {
        let mut cached = self.token.lock().await;
        if let Some((token, expires)) = cached.as_ref()
            && Instant::now() + TOKEN_MARGIN < *expires
        {
            return Ok(token.clone());
        }
        let request = self
            .client
            .put(&self.token_url)
            .header("X-aws-ec2-metadata-token-ttl-seconds", TOKEN_TTL.as_secs().to_string());
        let response = send(&self.token_url, request)
            .await?
            .ok_or(PreemptError::Status { url: self.token_url.clone(), status: 404 })?;
        let token = text(&self.token_url, response).await?.trim().to_string();
        if token.is_empty() {
            return Err(PreemptError::Decode { url: self.token_url.clone(), message: "empty token".into() });
        }
        *cached = Some((token.clone(), Instant::now() + TOKEN_TTL));
        Ok(token)
    }
}

#[async_trait]
impl Detector for AwsSpot {
    fn name(&self) -> &'static str {
        "aws"
    }

    async fn check(&self) -> Result<bool, PreemptError> {
        let token = self.token().await?;
        let request = self.client.get(&self.action_url).header("X-aws-ec2-metadata-token", token);
        let response = match send(&self.action_url, request).await {
            Err(PreemptError::Status { status: 401, .. }) => {
                // Expired or revoked early: fetch a new one at the next poll.
                *self.token.lock().await = None;
                return Err(PreemptError::Status { url: self.action_url.clone(), status: 401 });
            }
            other => other?,
        };
        let Some(response) = response else { return Ok(false) };
        let body = text(&self.action_url, response).await?;
        let action: InstanceAction = serde_json::from_str(&body)
            .map_err(|e| PreemptError::Decode { url: self.action_url.clone(), message: e.to_string() })?;
        tracing::debug!(action = %action.action, "spot instance action announced");
        Ok(true)
    }
}
