//! Typed calls of the queue's SQL API (`cbs.*` functions). Rust never updates
//! `cbs.builds` itself: each method is one function call, so every invariant
//! (fencing, attempt counting, NOTIFY) is kept in one place, in SQL.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_postgres::Row;

use super::build_row::{decode, decode_opt, BuildArtifact, Completion, Provenance};
use super::{query, DbError, DbPool};
use crate::spec::BuildSpec;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BuildStatus {
    Queued,
    Building,
    Succeeded,
    Failed,
    Cancelled,
}

impl BuildStatus {
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Building => "building",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

impl FromStr for BuildStatus {
    type Err = DbError;
    fn from_str(s: &str) -> Result<Self, DbError> {
        Ok(match s {
            "queued" => Self::Queued,
            "building" => Self::Building,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            "cancelled" => Self::Cancelled,
            other => return Err(DbError::Decode(format!("unknown build status {other:?}"))),
        })
    }
}

/// One row of `cbs.builds`, its JSON columns decoded ([`super::build_row`]).
/// Clients never see it as it is: they see [`crate::build_view::BuildView`].
#[derive(Debug, Clone)]
pub struct Build {
    pub build_key: String,
    /// The canonical spec (`cbs.canonical_spec`).
    pub spec: BuildSpec,
    pub status: BuildStatus,
    pub attempt: i32,
    pub max_attempts: i32,
    pub run_after: DateTime<Utc>,
    pub worker_id: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
    /// Set once the build succeeded.
    pub artifact: Option<BuildArtifact>,
    /// Set once the build succeeded (and cleared by a requeue).
    pub provenance: Option<Provenance>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub last_requested_at: DateTime<Utc>,
    pub download_count: i64,
}

impl TryFrom<&Row> for Build {
    type Error = DbError;
    fn try_from(row: &Row) -> Result<Self, DbError> {
        let status: String = row.try_get("status")?;
        Ok(Build {
            build_key: row.try_get("build_key")?,
            spec: decode(row, "spec")?,
            status: status.parse()?,
            attempt: row.try_get("attempt")?,
            max_attempts: row.try_get("max_attempts")?,
            run_after: row.try_get("run_after")?,
            worker_id: row.try_get("worker_id")?,
            lease_expires_at: row.try_get("lease_expires_at")?,
            error: row.try_get("error")?,
            artifact: decode_opt(row, "artifact")?,
            provenance: decode_opt(row, "provenance")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            started_at: row.try_get("started_at")?,
            finished_at: row.try_get("finished_at")?,
            last_requested_at: row.try_get("last_requested_at")?,
            download_count: row.try_get("download_count")?,
        })
    }
}

/// A line of build output, as the worker sends it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LogLine {
    pub step: String,
    pub stream: String,
    pub line: String,
}

/// A stored line of build output.
#[derive(Debug, Clone, Serialize)]
pub struct StoredLogLine {
    pub id: i64,
    pub attempt: i32,
    pub step: String,
    pub stream: String,
    pub line: String,
    pub created_at: DateTime<Utc>,
}

/// What a worker says about itself in `cbs.workers`.
#[derive(Debug, Clone)]
pub struct WorkerInfo {
    pub worker_id: String,
    pub host: String,
    pub version: String,
    pub max_jobs: i32,
    pub info: Value,
    /// The process's own, new at every start; `None` from tools that are no worker.
    pub incarnation: Option<String>,
}

/// The queue's SQL API over a connection pool.
#[derive(Clone)]
pub struct Queue {
    pool: DbPool,
}

impl Queue {
    pub fn new(pool: DbPool) -> Self {
        Self { pool }
    }

    pub(super) async fn query(&self, sql: &str, params: &[&(dyn tokio_postgres::types::ToSql + Sync)]) -> Result<Vec<Row>, DbError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(sql).await?;
        Ok(client.query(&stmt, params).await?)
    }

    pub(super) async fn query_one(&self, sql: &str, params: &[&(dyn tokio_postgres::types::ToSql + Sync)]) -> Result<Row, DbError> {
        self.query(sql, params)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| DbError::Decode("query returned no row".into()))
    }

    /// The first column of the one row a statement returns.
    pub(super) async fn scalar<T>(&self, sql: &str, params: &[&(dyn tokio_postgres::types::ToSql + Sync)]) -> Result<T, DbError>
    where
        T: for<'a> tokio_postgres::types::FromSql<'a>,
    {
        Ok(self.query_one(sql, params).await?.try_get(0)?)
    }

    async fn one_build(&self, sql: &str, params: &[&(dyn tokio_postgres::types::ToSql + Sync)]) -> Result<Build, DbError> {
        Build::try_from(&self.query_one(sql, params).await?)
    }

    /// `cbs.submit_build`: validates, dedups on the build key, enqueues.
    /// Nothing is charged: the caller is an administrator or the service itself.
    pub async fn submit(&self, spec: &Value, force: bool) -> Result<Build, DbError> {
        let who = super::Submitter { client: None, limits: None, priority: super::Priority::Request };
        Ok(self.submit_as(spec, force, who).await?.build)
    }

    /// `cbs.build_key`: the key a spec has (validating it on the way).
    pub async fn build_key(&self, spec: &Value) -> Result<String, DbError> {
        self.scalar(query!("build_key"), &[spec]).await
    }

    pub async fn get(&self, build_key: &str) -> Result<Option<Build>, DbError> {
        self.query(query!("get_build"), &[&build_key])
            .await?
            .first()
            .map(Build::try_from)
            .transpose()
    }

    pub async fn claim(&self, worker_id: &str, max_count: i32, lease: Duration) -> Result<Vec<Build>, DbError> {
        self.claim_as(worker_id, None, max_count, lease).await
    }

    /// Claims for one incarnation of a worker process, whose heartbeats renew them.
    pub async fn claim_as(&self, worker_id: &str, incarnation: Option<&str>, max_count: i32, lease: Duration) -> Result<Vec<Build>, DbError> {
        self.query(query!("claim_builds"), &[&worker_id, &max_count, &lease.as_secs_f64(), &incarnation])
            .await?
            .iter()
            .map(Build::try_from)
            .collect()
    }

    /// Extends the worker's leases; returns how many builds it holds.
    pub async fn heartbeat(&self, worker_id: &str, lease: Duration) -> Result<i32, DbError> {
        self.heartbeat_as(worker_id, None, lease).await
    }

    /// Renews only the builds of that incarnation (all of the worker id's without one).
    pub async fn heartbeat_as(&self, worker_id: &str, incarnation: Option<&str>, lease: Duration) -> Result<i32, DbError> {
        self.scalar(query!("heartbeat"), &[&worker_id, &lease.as_secs_f64(), &incarnation]).await
    }

    /// Fenced completion; `false` means the caller no longer owns this attempt.
    pub async fn complete(&self, build_key: &str, attempt: i32, worker_id: &str, artifact: &Value) -> Result<bool, DbError> {
        self.scalar(query!("complete_build"), &[&build_key, &attempt, &worker_id, artifact]).await
    }

    /// [`Self::complete`] with a worker's typed record: the artifact and its provenance.
    pub async fn complete_with(
        &self,
        build_key: &str,
        attempt: i32,
        worker_id: &str,
        artifact: &BuildArtifact,
        provenance: &Provenance,
    ) -> Result<bool, DbError> {
        let record = serde_json::to_value(Completion { artifact, provenance }).map_err(|e| DbError::Decode(format!("encoding the artifact record: {e}")))?;
        self.complete(build_key, attempt, worker_id, &record).await
    }

    /// Fenced failure; returns the build's new status, `None` when fenced out.
    pub async fn fail(
        &self,
        build_key: &str,
        attempt: i32,
        worker_id: &str,
        error: &str,
        retryable: bool,
    ) -> Result<Option<BuildStatus>, DbError> {
        let status: Option<String> = self.scalar(query!("fail_build"), &[&build_key, &attempt, &worker_id, &error, &retryable]).await?;
        status.map(|s| s.parse()).transpose()
    }

    pub async fn release_worker(&self, worker_id: &str, reason: &str) -> Result<i32, DbError> {
        self.scalar(query!("release_worker"), &[&worker_id, &reason]).await
    }

    pub async fn rescue_expired(&self) -> Result<i32, DbError> {
        self.scalar(query!("rescue_expired"), &[]).await
    }

    pub async fn cancel(&self, build_key: &str, reason: &str) -> Result<Build, DbError> {
        self.one_build(query!("cancel_build"), &[&build_key, &reason]).await
    }

    /// A succeeded build's binary is gone from storage: queue it again.
    pub async fn artifact_lost(&self, build_key: &str) -> Result<Build, DbError> {
        self.one_build(query!("artifact_lost"), &[&build_key]).await
    }

    pub async fn requeue(&self, build_key: &str) -> Result<Build, DbError> {
        self.one_build(query!("requeue"), &[&build_key]).await
    }

    pub async fn register_worker(&self, w: &WorkerInfo) -> Result<(), DbError> {
        self.query(query!("register_worker"), &[&w.worker_id, &w.host, &w.version, &w.max_jobs, &w.info, &w.incarnation])
            .await?;
        Ok(())
    }

    /// Succeeds when the database answers (readiness).
    pub async fn ping(&self) -> Result<(), DbError> {
        self.query(query!("ping"), &[]).await.map(|_| ())
    }

    /// Fenced append of log lines; returns how many were stored (0 when fenced out).
    pub async fn append_logs(&self, build_key: &str, attempt: i32, worker_id: &str, lines: &[LogLine]) -> Result<i32, DbError> {
        let lines = serde_json::to_value(lines).map_err(|e| DbError::Decode(e.to_string()))?;
        self.scalar(query!("append_logs"), &[&build_key, &attempt, &worker_id, &lines]).await
    }

    pub async fn logs_after(&self, build_key: &str, after_id: i64, limit: i64) -> Result<Vec<StoredLogLine>, DbError> {
        self.query(query!("build_logs_after"), &[&build_key, &after_id, &limit])
            .await?
            .iter()
            .map(|r| {
                Ok(StoredLogLine {
                    id: r.try_get("id")?,
                    attempt: r.try_get("attempt")?,
                    step: r.try_get("step")?,
                    stream: r.try_get("stream")?,
                    line: r.try_get("line")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// The admin page's data: queue overview, active, queued and failed builds.
    pub async fn admin_overview(&self) -> Result<Value, DbError> {
        self.scalar(query!("admin_overview"), &[]).await
    }
}
