//! The database boundary's error type. PL/pgSQL functions raise SQLSTATEs with a
//! meaning (bad spec, not found); they are turned into variants here, once, so
//! callers match on meaning instead of codes.

use tokio_postgres::error::SqlState;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The spec broke a rule of `cbs.canonical_spec` (SQLSTATE class 22 or 23).
    #[error("{0}")]
    BadSpec(String),
    /// A function was asked about a build that does not exist (SQLSTATE P0002).
    #[error("{0}")]
    NotFound(String),
    /// The build exists but is not in a state that allows the call (SQLSTATE CB409).
    #[error("{0}")]
    Conflict(String),
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
        let code = db.code().code();
        if code == "CB429" || code == "CB401" {
            DbError::Refused(Refusal {
                reason: db.hint().unwrap_or("limit").to_string(),
                message: db.message().to_string(),
                retry_after_secs: db.detail().and_then(|d| d.parse().ok()).unwrap_or(60),
            })
        } else if code == "CB409" {
            DbError::Conflict(db.message().to_string())
        } else if *db.code() == SqlState::NO_DATA_FOUND {
            DbError::NotFound(db.message().to_string())
        } else if code.starts_with("22") || code.starts_with("23") {
            DbError::BadSpec(db.message().to_string())
        } else {
            DbError::Postgres(e)
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
