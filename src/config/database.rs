//! `database:`: the Postgres every process shares.

use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, invalid};

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// libpq-style URL or key=value string.
    pub url: String,
    /// Connections in the pool (the LISTEN connection is extra).
    pub pool_size: usize,
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// How long a request waits for a free pooled connection before a 503.
    #[serde(with = "humantime_serde")]
    pub pool_wait: Duration,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: "postgres://postgres@127.0.0.1:5432/postgres".into(),
            pool_size: 16,
            connect_timeout: Duration::from_secs(5),
            pool_wait: Duration::from_secs(10),
        }
    }
}

impl DatabaseConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.url.trim().is_empty() {
            return Err(invalid("database.url", "must not be empty"));
        }
        self.url.parse::<tokio_postgres::Config>().map_err(|e| invalid("database.url", format!("is not a valid Postgres URL: {e}")))?;
        if self.pool_size == 0 {
            return Err(invalid("database.pool_size", "must be at least 1"));
        }
        Ok(())
    }
}
