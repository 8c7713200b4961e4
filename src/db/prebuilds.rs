//! Typed calls of prebuilding (`sql/procedures/065_prebuild.sql`): the popular
//! specs by counted requests, queueing a prebuild once per key with its reason,
//! and pruning request counts that fell out of the window and records of
//! prebuilds whose builds retention deleted.

use std::time::Duration;

use serde_json::Value;

use super::build_row::decode;
use super::{query, DbError, Queue};
use crate::spec::BuildSpec;

/// One of the most requested specs of the window.
#[derive(Debug, Clone, PartialEq)]
pub struct PopularSpec {
    pub build_key: String,
    /// The build's canonical spec.
    pub spec: BuildSpec,
    /// Requests counted in the window.
    pub requests: i64,
}

/// Why a prebuild is queued, as `cbs.prebuilds.reason` records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrebuildReason {
    /// An entry of `prebuild.specs`.
    Configured,
    /// A popular spec with a newer Caddy release (and maybe plugin releases).
    CaddyRelease,
    /// A popular spec with newer releases of its plugins only.
    PluginRelease,
}

impl PrebuildReason {
    pub fn as_str(self) -> &'static str {
        match self {
            PrebuildReason::Configured => "configured",
            PrebuildReason::CaddyRelease => "caddy_release",
            PrebuildReason::PluginRelease => "plugin_release",
        }
    }
}

/// A prebuild to queue: the spec (absolute versions), why, and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct PrebuildRequest {
    pub spec: Value,
    pub reason: PrebuildReason,
    pub detail: Value,
    pub source: Option<PopularSpec>,
}

impl Queue {
    /// The `top_n` most requested specs of the last `window`, most requested first.
    pub async fn popular_specs(&self, top_n: i32, window: Duration) -> Result<Vec<PopularSpec>, DbError> {
        self.query(query!("popular_specs"), &[&top_n, &window.as_secs_f64()])
            .await?
            .iter()
            .map(|r| Ok(PopularSpec { build_key: r.try_get("build_key")?, spec: decode(r, "spec")?, requests: r.try_get("requests")? }))
            .collect()
    }

    /// `cbs.prebuild`: queues the spec at background priority unless its key exists
    /// or was prebuilt before; returns the key when it queued it.
    pub async fn prebuild(&self, req: &PrebuildRequest, janitor_id: &str) -> Result<Option<String>, DbError> {
        let source_key = req.source.as_ref().map(|s| s.build_key.as_str());
        let source_requests = req.source.as_ref().map(|s| s.requests);
        let row = self
            .query_one(
                query!("prebuild"),
                &[&req.spec, &req.reason.as_str(), &req.detail, &source_key, &source_requests, &janitor_id],
            )
            .await?;
        let id: Option<i64> = row.try_get("id")?;
        Ok(match id {
            Some(_) => Some(row.try_get("build_key")?),
            None => None,
        })
    }

    /// Forgets per-day request counts older than `keep`; returns how many rows.
    pub async fn prune_spec_requests(&self, keep: Duration) -> Result<i32, DbError> {
        self.scalar(query!("prune_spec_requests"), &[&keep.as_secs_f64()]).await
    }

    /// Forgets prebuild records older than `keep` whose build is gone; returns how many.
    pub async fn prune_prebuilds(&self, keep: Duration) -> Result<i32, DbError> {
        self.scalar(query!("prune_prebuilds"), &[&keep.as_secs_f64()]).await
    }

    /// The newest `limit` rows of `cbs.prebuild_overview` as a JSON array.
    pub async fn prebuild_overview(&self, limit: i32) -> Result<Value, DbError> {
        self.scalar(query!("prebuild_overview"), &[&limit]).await
    }
}
