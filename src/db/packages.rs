//! Typed calls of the package bookkeeping (`sql/procedures/080_packages.sql`):
//! the rows of the package listing, and batches of counted downloads.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{query, DbError, Queue};

/// One row of `cbs.packages`.
#[derive(Debug, Clone)]
pub struct PackageRow {
    pub path: String,
    pub first_built_at: Option<DateTime<Utc>>,
    pub last_succeeded_at: Option<DateTime<Utc>>,
    pub last_failed_at: Option<DateTime<Utc>>,
    /// Caddy module IDs, when a verified build listed them.
    pub modules: Option<Vec<String>>,
    pub downloads: i64,
}

impl PackageRow {
    /// Builds with it work, as far as we know: none failed because of it since it last built.
    pub fn available(&self) -> bool {
        match (self.last_failed_at, self.last_succeeded_at) {
            (None, _) => true,
            (Some(failed), Some(succeeded)) => succeeded > failed,
            (Some(_), None) => false,
        }
    }
}

impl Queue {
    pub async fn packages(&self) -> Result<Vec<PackageRow>, DbError> {
        self.query(query!("list_packages"), &[])
            .await?
            .iter()
            .map(|r| {
                let modules: Option<Value> = r.try_get("modules")?;
                Ok(PackageRow {
                    path: r.try_get("path")?,
                    first_built_at: r.try_get("first_built_at")?,
                    last_succeeded_at: r.try_get("last_succeeded_at")?,
                    last_failed_at: r.try_get("last_failed_at")?,
                    modules: modules.map(serde_json::from_value).transpose().map_err(|e| DbError::Decode(e.to_string()))?,
                    downloads: r.try_get("downloads")?,
                })
            })
            .collect()
    }

    /// Adds downloads per build key (and to their plugins' packages); returns how many builds were counted.
    pub async fn count_downloads(&self, counts: &HashMap<String, i64>) -> Result<i32, DbError> {
        let counts = serde_json::to_value(counts).map_err(|e| DbError::Decode(e.to_string()))?;
        self.scalar(query!("count_downloads"), &[&counts]).await
    }
}
