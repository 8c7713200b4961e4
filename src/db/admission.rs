//! Typed calls of admission control (`sql/procedures/018_admission.sql`):
//! submitting as a client, API tokens, refusals and the figures metrics show.

use serde_json::Value;

use super::{query, Build, DbError, Queue};

/// An active API token's name and its own limits (`None`: the config's default).
#[derive(Debug, Clone)]
pub struct ApiToken {
    pub name: String,
    pub burst: Option<i32>,
    pub per_hour: Option<f64>,
    pub max_queued: Option<i32>,
    pub max_held: Option<i32>,
}

/// Limits a new token is made with.
#[derive(Debug, Clone, Default)]
pub struct TokenLimits {
    pub burst: Option<i32>,
    pub per_hour: Option<f64>,
    pub max_queued: Option<i32>,
    pub max_held: Option<i32>,
}

/// Who submits, for `cbs.submit_build`'s admission arguments.
#[derive(Debug, Clone, Copy)]
pub struct Submitter<'a> {
    pub client: Option<&'a str>,
    /// `None`: nothing is charged.
    pub limits: Option<&'a Value>,
    pub priority: Priority,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// Someone asked for it.
    Request,
    /// Prebuilds and reproductions: never ahead of a request.
    Background,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Request => "request",
            Priority::Background => "background",
        }
    }
}

/// A submit's build and whether the call created work (and so was charged).
#[derive(Debug, Clone)]
pub struct Submitted {
    pub build: Build,
    pub created: bool,
}

impl Queue {
    /// `cbs.submit_build` on behalf of a client: charged only when it creates work;
    /// a refusal is [`DbError::Refused`].
    pub async fn submit_as(&self, spec: &Value, force: bool, who: Submitter<'_>) -> Result<Submitted, DbError> {
        let row = self
            .query_one(query!("submit_build"), &[spec, &force, &who.client, &who.limits, &who.priority.as_str()])
            .await?;
        Ok(Submitted { build: Build::try_from(&row)?, created: row.try_get("created")? })
    }

    /// The active token with this sha256 (lowercase hex), if any.
    pub async fn authenticate_token(&self, token_sha256: &str) -> Result<Option<ApiToken>, DbError> {
        let rows = self.query(query!("authenticate_token"), &[&token_sha256]).await?;
        rows.first()
            .map(|r| {
                Ok(ApiToken {
                    name: r.try_get("name")?,
                    burst: r.try_get("burst")?,
                    per_hour: r.try_get("per_hour")?,
                    max_queued: r.try_get("max_queued")?,
                    max_held: r.try_get("max_held")?,
                })
            })
            .transpose()
    }

    /// Adds per-client admissions and refusals to the usage of `at`'s minute.
    pub async fn record_usage(
        &self,
        at: chrono::DateTime<chrono::Utc>,
        clients: &[&str],
        admitted: &[i32],
        refused: &[i32],
    ) -> Result<(), DbError> {
        self.query(query!("record_usage"), &[&at, &clients, &admitted, &refused]).await.map(|_| ())
    }

    /// Makes a token; returns it (the only time it is seen: only its hash is kept).
    pub async fn create_token(&self, name: &str, limits: &TokenLimits) -> Result<String, DbError> {
        self.scalar(query!("create_token"), &[&name, &limits.burst, &limits.per_hour, &limits.max_queued, &limits.max_held])
            .await
    }

    /// Revokes the active token of that name; `false` when there is none.
    pub async fn revoke_token(&self, name: &str) -> Result<bool, DbError> {
        self.scalar(query!("revoke_token"), &[&name]).await
    }

    /// Every token (`cbs.api_tokens_overview`) as a JSON array.
    pub async fn list_tokens(&self) -> Result<Value, DbError> {
        self.scalar(query!("list_tokens"), &[]).await
    }

    /// Queued builds per priority class.
    pub async fn queued_by_priority(&self) -> Result<Vec<(String, i64)>, DbError> {
        self.query(query!("queued_by_priority"), &[])
            .await?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }
}
