//! Typed calls of the webhook outbox (`sql/procedures/070_webhooks.sql`): the api
//! registers a build's `callback_url`, the elected janitor claims due deliveries
//! and records each attempt, fenced by its attempt number.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{query, DbError, Queue};

/// A claimed delivery: POST the build's status to `url`, then record `attempt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDelivery {
    pub id: i64,
    pub build_key: String,
    pub url: String,
    pub attempt: i32,
}

/// The result of one POST.
#[derive(Debug, Clone)]
pub struct WebhookAttempt {
    pub delivered: bool,
    pub status_code: Option<i32>,
    pub error: Option<String>,
}

/// How failed attempts are retried.
#[derive(Debug, Clone, Copy)]
pub struct WebhookRetry {
    pub max_attempts: i32,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

/// What `record_webhook_attempt` made of an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookOutcome {
    Delivered,
    Retry,
    GaveUp,
    /// The claim had expired and another janitor owns the delivery now.
    Fenced,
}

impl Queue {
    /// Asks for `url` to be POSTed the build's status when it ends (at once if it
    /// already has). Returns the delivery id; registering the same url again
    /// before it was delivered returns the same id. `BadArgument` for a url that is
    /// not http(s), `NotFound` for an unknown build.
    pub async fn add_callback(&self, build_key: &str, url: &str) -> Result<i64, DbError> {
        self.scalar(query!("add_callback"), &[&build_key, &url]).await
    }

    pub async fn claim_webhook_deliveries(&self, janitor_id: &str, max_count: i32, lease: Duration) -> Result<Vec<WebhookDelivery>, DbError> {
        self.query(query!("claim_webhook_deliveries"), &[&janitor_id, &max_count, &lease.as_secs_f64()])
            .await?
            .iter()
            .map(|r| {
                Ok(WebhookDelivery {
                    id: r.try_get("id")?,
                    build_key: r.try_get("build_key")?,
                    url: r.try_get("url")?,
                    attempt: r.try_get("attempt")?,
                })
            })
            .collect()
    }

    pub async fn record_webhook_attempt(
        &self,
        delivery: &WebhookDelivery,
        result: &WebhookAttempt,
        retry: &WebhookRetry,
    ) -> Result<WebhookOutcome, DbError> {
        let outcome: Option<String> = self.scalar(
                query!("record_webhook_attempt"),
                &[
                    &delivery.id,
                    &delivery.attempt,
                    &result.delivered,
                    &result.status_code,
                    &result.error,
                    &retry.max_attempts,
                    &retry.backoff_min.as_secs_f64(),
                    &retry.backoff_max.as_secs_f64(),
                ],
            ).await?;
        Ok(match outcome.as_deref() {
            None => WebhookOutcome::Fenced,
            Some("delivered") => WebhookOutcome::Delivered,
            Some("retry") => WebhookOutcome::Retry,
            Some("gave_up") => WebhookOutcome::GaveUp,
            Some(other) => return Err(DbError::Decode(format!("unknown webhook outcome {other:?}"))),
        })
    }

    /// When the next retry (or expired claim) of an ended build's delivery is due.
    pub async fn next_webhook_due(&self) -> Result<Option<DateTime<Utc>>, DbError> {
        self.scalar(query!("next_webhook_due"), &[]).await
    }
}
