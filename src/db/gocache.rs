//! Typed calls of the shared Go cache's bookkeeping (`sql/procedures/066_gocache.sql`):
//! workers record and renew entries, the janitor trims them.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{query, DbError, Queue};

/// What a shared cache object holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoCacheKind {
    /// A build cache entry (Go's output for one action ID).
    Build,
    /// A module file (`.info`, `.mod` or `.zip`).
    Module,
}

impl GoCacheKind {
    fn as_str(self) -> &'static str {
        match self {
            GoCacheKind::Build => "build",
            GoCacheKind::Module => "module",
        }
    }
}

/// A shared cache object the janitor may delete: its file first, then its row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoCacheCandidate {
    pub path: String,
    pub size: i64,
    /// The last use it was listed with; a row used again since is kept.
    pub last_used_at: DateTime<Utc>,
}

impl Queue {
    /// Records an object before it is uploaded (or renews it).
    pub async fn gocache_record(&self, path: &str, kind: GoCacheKind, size: u64) -> Result<(), DbError> {
        self.query(query!("gocache_record"), &[&path, &kind.as_str(), &(size as i64)]).await.map(|_| ())
    }

    /// Renews the objects a build used; returns those of `paths` that have no row.
    pub async fn gocache_touch(&self, paths: &[String]) -> Result<Vec<String>, DbError> {
        let rows = self.query(query!("gocache_touch"), &[&paths]).await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// Objects beyond `max_bytes` in total or unused for `max_age`, oldest first.
    pub async fn gocache_trim_candidates(&self, max_bytes: u64, max_age: Duration, limit: i32) -> Result<Vec<GoCacheCandidate>, DbError> {
        let max_bytes = i64::try_from(max_bytes).unwrap_or(i64::MAX);
        self.query(query!("gocache_trim_candidates"), &[&max_bytes, &max_age.as_secs_f64(), &limit])
            .await?
            .iter()
            .map(|r| Ok(GoCacheCandidate { path: r.try_get("path")?, size: r.try_get("size")?, last_used_at: r.try_get("last_used_at")? }))
            .collect()
    }

    /// Deletes the rows of objects whose files are gone, except those used after
    /// `used_before` (`None`: whenever); returns how many.
    pub async fn gocache_forget(&self, paths: &[String], used_before: Option<DateTime<Utc>>) -> Result<i32, DbError> {
        self.scalar(query!("gocache_forget"), &[&paths, &used_before]).await
    }
}
