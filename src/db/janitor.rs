//! Typed calls of the janitor's policy functions (`sql/procedures/060_janitor.sql`)
//! and of the queue statistics it logs.

use std::time::Duration;

use super::{query, DbError, Queue};

/// A build that retention may delete: its files first, then its row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionCandidate {
    pub build_key: String,
    pub status: String,
    /// Target os, which decides the binary's file name in storage.
    pub os: String,
}

/// One line of `cbs.queue_overview`.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusCount {
    pub status: String,
    pub builds: i64,
    pub runnable: i64,
    /// Age of the oldest build in this status, in seconds.
    pub oldest_age_secs: Option<f64>,
}

impl Queue {
    /// Terminal builds not requested for `max_age`, oldest first, at most `limit`,
    /// passing over `skip`.
    pub async fn retention_candidates(&self, max_age: Duration, limit: i32, skip: &[String]) -> Result<Vec<RetentionCandidate>, DbError> {
        self.query(query!("retention_candidates"), &[&max_age.as_secs_f64(), &limit, &skip])
            .await?
            .iter()
            .map(|r| {
                Ok(RetentionCandidate {
                    build_key: r.try_get("build_key")?,
                    status: r.try_get("status")?,
                    os: r.try_get::<_, Option<String>>("os")?.unwrap_or_default(),
                })
            })
            .collect()
    }

    /// Deletes the rows of terminal builds whose files are already gone; returns how many.
    pub async fn delete_builds(&self, build_keys: &[String]) -> Result<i32, DbError> {
        self.scalar(query!("delete_builds"), &[&build_keys]).await
    }

    /// Forgets workers unseen for `unseen_for` that hold no build; returns how many.
    pub async fn forget_workers(&self, unseen_for: Duration) -> Result<i32, DbError> {
        self.scalar(query!("forget_workers"), &[&unseen_for.as_secs_f64()]).await
    }

    /// Forgets client usage older than `keep` and clients idle that long; returns how many rows.
    pub async fn prune_clients(&self, keep: Duration) -> Result<i32, DbError> {
        self.scalar(query!("prune_clients"), &[&keep.as_secs_f64()]).await
    }

    /// Builds per status, from the admins' `cbs.queue_overview` view.
    pub async fn queue_overview(&self) -> Result<Vec<StatusCount>, DbError> {
        self.query(query!("queue_overview"), &[])
            .await?
            .iter()
            .map(|r| {
                Ok(StatusCount {
                    status: r.try_get("status")?,
                    builds: r.try_get("builds")?,
                    runnable: r.try_get("runnable")?,
                    oldest_age_secs: r.try_get("oldest_age_secs")?,
                })
            })
            .collect()
    }

    /// Webhook deliveries not yet delivered nor given up.
    pub async fn webhook_backlog(&self) -> Result<i64, DbError> {
        self.scalar(query!("webhook_backlog"), &[]).await
    }
}
