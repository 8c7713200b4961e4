//! Typed calls of the reproduction functions (`sql/procedures/086_reproduce.sql`):
//! queueing (admin, janitor), claiming, heartbeats, fenced outcomes, release
//! and rescue, and the reads the status JSON and metrics need.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use tokio_postgres::Row;

use super::build_row::{decode, decode_opt, Provenance};
use super::{query, DbError, Queue};
use crate::spec::BuildSpec;

/// One row of `cbs.reproductions`.
#[derive(Debug, Clone, Serialize)]
pub struct Reproduction {
    pub id: i64,
    pub build_key: String,
    pub requested_by: String,
    pub original_sha256: String,
    pub original_worker_id: String,
    /// `queued`, `running`, `reproduced`, `mismatch` or `failed`.
    pub status: String,
    pub attempt: i32,
    pub worker_id: Option<String>,
    pub reproduced_sha256: Option<String>,
    pub detail: Value,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl TryFrom<&Row> for Reproduction {
    type Error = DbError;
    fn try_from(row: &Row) -> Result<Self, DbError> {
        Ok(Reproduction {
            id: row.try_get("id")?,
            build_key: row.try_get("build_key")?,
            requested_by: row.try_get("requested_by")?,
            original_sha256: row.try_get("original_sha256")?,
            original_worker_id: row.try_get("original_worker_id")?,
            status: row.try_get("status")?,
            attempt: row.try_get("attempt")?,
            worker_id: row.try_get("worker_id")?,
            reproduced_sha256: row.try_get("reproduced_sha256")?,
            detail: row.try_get("detail")?,
            error: row.try_get("error")?,
            created_at: row.try_get("created_at")?,
            started_at: row.try_get("started_at")?,
            finished_at: row.try_get("finished_at")?,
        })
    }
}

/// A reproduction a worker claimed, with what it rebuilds from.
#[derive(Debug, Clone)]
pub struct ClaimedReproduction {
    pub id: i64,
    pub build_key: String,
    /// The fencing token, with `id` and the worker id.
    pub attempt: i32,
    pub spec: BuildSpec,
    /// The original build's provenance: recorded go.mod, go.sum, Go version, image.
    pub provenance: Provenance,
    pub original_sha256: String,
    pub original_worker_id: String,
}

impl TryFrom<&Row> for ClaimedReproduction {
    type Error = DbError;
    fn try_from(row: &Row) -> Result<Self, DbError> {
        Ok(ClaimedReproduction {
            id: row.try_get("id")?,
            build_key: row.try_get("build_key")?,
            attempt: row.try_get("attempt")?,
            spec: decode(row, "spec")?,
            provenance: decode_opt(row, "provenance")?.unwrap_or_default(),
            original_sha256: row.try_get("original_sha256")?,
            original_worker_id: row.try_get("original_worker_id")?,
        })
    }
}

impl Queue {
    /// Queues a reproduction of a succeeded build (or returns the open one).
    /// `requested_by`: `admin` or `janitor`.
    pub async fn request_reproduction(&self, build_key: &str, requested_by: &str) -> Result<Reproduction, DbError> {
        Reproduction::try_from(&self.query_one(query!("request_reproduction"), &[&build_key, &requested_by]).await?)
    }

    /// Claims reproductions of builds another worker built, for one incarnation of a worker process.
    pub async fn claim_reproductions(
        &self,
        worker_id: &str,
        incarnation: Option<&str>,
        max_count: i32,
        lease: Duration,
    ) -> Result<Vec<ClaimedReproduction>, DbError> {
        self.query(query!("claim_reproductions"), &[&worker_id, &max_count, &lease.as_secs_f64(), &incarnation])
            .await?
            .iter()
            .map(ClaimedReproduction::try_from)
            .collect()
    }

    /// Extends the leases of the worker's reproductions; returns how many it holds.
    pub async fn heartbeat_reproductions(&self, worker_id: &str, incarnation: Option<&str>, lease: Duration) -> Result<i32, DbError> {
        self.scalar(query!("heartbeat_reproductions"), &[&worker_id, &lease.as_secs_f64(), &incarnation]).await
    }

    /// Fenced: records the reproduced sha256; returns `reproduced` or `mismatch`, `None` when fenced out.
    pub async fn finish_reproduction(&self, id: i64, attempt: i32, worker_id: &str, sha256: &str, detail: &Value) -> Result<Option<String>, DbError> {
        self.scalar(query!("finish_reproduction"), &[&id, &attempt, &worker_id, &sha256, detail]).await
    }

    /// Fenced failure; returns the new status (`queued` for a retry, `failed`), `None` when fenced out.
    pub async fn fail_reproduction(&self, id: i64, attempt: i32, worker_id: &str, error: &str, retryable: bool) -> Result<Option<String>, DbError> {
        self.scalar(query!("fail_reproduction"), &[&id, &attempt, &worker_id, &error, &retryable]).await
    }

    pub async fn release_reproductions(&self, worker_id: &str, reason: &str) -> Result<i32, DbError> {
        self.scalar(query!("release_reproductions"), &[&worker_id, &reason]).await
    }

    pub async fn rescue_expired_reproductions(&self) -> Result<i32, DbError> {
        self.scalar(query!("rescue_expired_reproductions"), &[]).await
    }

    /// Janitor policy: queues reproductions for `share` of the builds that succeeded within `recent`.
    pub async fn sample_reproductions(&self, share: f64, recent: Duration, max_count: i32) -> Result<i32, DbError> {
        self.scalar(query!("sample_reproductions"), &[&share, &recent.as_secs_f64(), &max_count]).await
    }

    /// The build's latest reproduction, if it ever had one.
    pub async fn latest_reproduction(&self, build_key: &str) -> Result<Option<Reproduction>, DbError> {
        self.query(query!("latest_reproduction"), &[&build_key]).await?.first().map(Reproduction::try_from).transpose()
    }

    /// Reproductions per status (every status, zero included).
    pub async fn reproduction_counts(&self) -> Result<Vec<(String, i64)>, DbError> {
        let rows = self.query(query!("reproduction_counts"), &[]).await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
    }
}
