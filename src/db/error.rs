//! The database boundary's error type. PL/pgSQL functions raise SQLSTATEs of the
//! project's own with a meaning (bad spec, bad argument, conflict, refusal, not
//! found); any other SQLSTATE is Postgres's and stays an internal error. They
//! are turned into variants here, once, so callers match on meaning, not codes.

use tokio_postgres::error::SqlState;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The spec broke a rule of `cbs.canonical_spec` (SQLSTATE CB400).
    #[error("{0}")]
    BadSpec(String),
    /// Another argument was unacceptable: a callback URL, a priority (SQLSTATE CB422).
    #[error("{0}")]
    BadArgument(String),
    /// The request conflicts with what exists: a token name in use, a build not in a
    /// state that allows the call (SQLSTATE CB409).
    #[error("{0}")]
    Conflict(String),
    /// A function was asked about a build that does not exist (SQLSTATE P0002).
    #[error("{0}")]
    NotFound(String),
    /// Admission control refused a request that would have created a build
    /// (SQLSTATE CB429, or CB401 when a token is required).
    #[error("{}", .0.message)]
    Refused(Refusal),
    /// No connection could be had from the pool in time.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Postgres(#[source] tokio_postgres::Error),
    #[error("unexpected data from the database: {0}")]
    Decode(String),
}

/// Why `cbs.admit` refused, as it raised it.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// The limit: `rate`, `client_queue`, `total_queue` or `token_required`.
    pub reason: String,
    pub message: String,
    pub retry_after_secs: u64,
}

impl Refusal {
    pub fn needs_token(&self) -> bool {
        self.reason == "token_required"
    }
}

impl From<tokio_postgres::Error> for DbError {
    fn from(e: tokio_postgres::Error) -> Self {
        let Some(db) = e.as_db_error() else {
            return if e.is_closed() {
                DbError::Unavailable(e.to_string())
            } else {
                DbError::Postgres(e)
            };
        };
        let message = || db.message().to_string();
        match db.code().code() {
            "CB429" | "CB401" => DbError::Refused(Refusal {
                reason: db.hint().unwrap_or("limit").to_string(),
                message: message(),
                retry_after_secs: db.detail().and_then(|d| d.parse().ok()).unwrap_or(60),
            }),
            "CB400" => DbError::BadSpec(message()),
            "CB422" => DbError::BadArgument(message()),
            "CB409" => DbError::Conflict(message()),
            _ if *db.code() == SqlState::NO_DATA_FOUND => DbError::NotFound(message()),
            _ => DbError::Postgres(e),
        }
    }
}

impl From<deadpool_postgres::PoolError> for DbError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(e) => e.into(),
            other => DbError::Unavailable(other.to_string()),
        }
    }
}

impl DbError {
    /// Worth retrying later: the database was unreachable rather than the request wrong.
    pub fn is_transient(&self) -> bool {
        match self {
            DbError::Unavailable(_) => true,
            DbError::Postgres(e) => e.as_db_error().is_none_or(|db| {
                let c = db.code().code();
                c.starts_with("08") || c.starts_with("57") || c.starts_with("53") || c == "40001" || c == "40P01"
            }),
            _ => false,
        }
    }
}
