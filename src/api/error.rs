//! The one error type of the HTTP API and the JSON envelope every error
//! response carries: `{"status_code": N, "error": {"message": "...", "id": "<request id>"}}`,
//! the shape the Caddy CLI decodes from the download service.
//!
//! Handlers return [`ApiError`]; its response carries the status and message in
//! an extension, and the envelope middleware ([`super::middleware`]) renders it
//! with the request id. Errors produced outside our handlers (unknown routes,
//! wrong methods, extractor rejections, body limits) are plain-text responses
//! that the same middleware rewrites into the envelope.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::db::DbError;
use crate::gomod::ResolveError;
use crate::storage::StorageError;

/// What a 502 or 503 asks a client to wait before it tries again (`Retry-After`):
/// the module proxy, database or storage being briefly unreachable, or this
/// process restarting. Long enough not to hammer them, short enough for a person
/// waiting on `caddy upgrade`.
pub const RETRY_AFTER_SECS: u64 = 10;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    NotFound(String),
    /// A stored object that should exist does not (a 404 too; a succeeded build
    /// whose binary is gone is built again, see `compat::finished`).
    #[error("{0} is missing from storage")]
    StorageMissing(String),
    /// The build exists but is not in a state that allows the request.
    #[error("{0}")]
    Conflict(String),
    /// The build failed; the message is the build's own error text.
    #[error("{0}")]
    BuildFailed(String),
    /// The request names something that cannot be served as asked (a module
    /// version the module proxy refuses).
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    RangeNotSatisfiable(String),
    /// An admission limit: the message names the limit and when it frees up.
    #[error("{message}")]
    TooManyRequests { message: String, retry_after_secs: u64 },
    #[error("{0}")]
    WaitLimit(String),
    /// The module proxy failed (server error, nonsense answer); worth retrying.
    #[error("{0}")]
    Upstream(String),
    /// The database, storage or module proxy cannot be reached, or the process is
    /// stopping; worth retrying.
    #[error("{0}")]
    Unavailable(String),
    /// A fault of ours. The cause is kept for the log and never shown to the client.
    #[error("{context}")]
    Internal {
        context: String,
        #[source]
        source: Option<Arc<dyn std::error::Error + Send + Sync>>,
    },
}

impl ApiError {
    /// An internal error caused by `source`, described by `context`.
    pub fn internal(context: impl Into<String>, source: impl std::error::Error + Send + Sync + 'static) -> ApiError {
        ApiError::Internal { context: context.into(), source: Some(Arc::new(source)) }
    }

    /// An internal error with no underlying error to keep.
    pub fn internal_msg(context: impl Into<String>) -> ApiError {
        ApiError::Internal { context: context.into(), source: None }
    }

    /// This error and its causes, outermost first, for the log.
    fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(e) = cause {
            text.push_str(": ");
            text.push_str(&e.to_string());
            cause = e.source();
        }
        text
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) | ApiError::StorageMissing(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::BuildFailed(_) | ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::RangeNotSatisfiable(_) => StatusCode::RANGE_NOT_SATISFIABLE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::WaitLimit(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Upstream(_) => StatusCode::BAD_GATEWAY,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Seconds a client should wait before trying again (the `Retry-After` header).
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            ApiError::TooManyRequests { retry_after_secs, .. } => Some(*retry_after_secs),
            ApiError::Upstream(_) | ApiError::Unavailable(_) => Some(RETRY_AFTER_SECS),
            _ => None,
        }
    }
}

/// Status and message of an error response, for the envelope middleware.
#[derive(Debug, Clone)]
pub struct ErrorInfo {
    pub message: String,
}

#[derive(Serialize)]
struct Envelope<'a> {
    status_code: u16,
    error: Body<'a>,
}

#[derive(Serialize)]
struct Body<'a> {
    message: &'a str,
    id: &'a str,
}

/// The envelope's JSON text.
pub fn envelope(status: StatusCode, message: &str, request_id: &str) -> String {
    serde_json::to_string(&Envelope { status_code: status.as_u16(), error: Body { message, id: request_id } })
        .expect("strings serialize")
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            ApiError::Internal { .. } => tracing::error!(error = %self.chain(), status = status.as_u16(), "request failed"),
            _ if status.is_server_error() => tracing::warn!(error = %self.chain(), status = status.as_u16(), "request failed"),
            _ => {}
        }
        let mut response = status.into_response();
        if let Some(secs) = self.retry_after_secs() {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response.extensions_mut().insert(ErrorInfo { message: self.client_message() });
        response
    }
}

/// What a client reads of an internal error: the details (database or file
/// system text) stay in the server's log, under the request id the envelope carries.
const INTERNAL_MESSAGE: &str = "internal server error; the request id identifies it in the server's log";

impl ApiError {
    fn client_message(&self) -> String {
        match self {
            ApiError::Internal { .. } => INTERNAL_MESSAGE.to_string(),
            other => other.to_string(),
        }
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::BadSpec(m) | DbError::BadArgument(m) => ApiError::BadRequest(m),
            DbError::Conflict(m) => ApiError::Conflict(m),
            DbError::NotFound(m) => ApiError::NotFound(m),
            DbError::Refused(r) if r.needs_token() => ApiError::Unauthorized(r.message),
            DbError::Refused(r) => ApiError::TooManyRequests { message: r.message, retry_after_secs: r.retry_after_secs },
            DbError::Unavailable(m) => ApiError::Unavailable(format!("database unavailable: {m}")),
            e if e.is_transient() => ApiError::Unavailable(e.to_string()),
            e => ApiError::internal("database", e),
        }
    }
}

impl From<ResolveError> for ApiError {
    fn from(e: ResolveError) -> Self {
        let message = e.to_string();
        match e {
            ResolveError::BadPath { .. } | ResolveError::BadVersion { .. } => ApiError::BadRequest(message),
            ResolveError::NotFound { .. } => ApiError::NotFound(message),
            ResolveError::Refused { .. } => ApiError::Unprocessable(message),
            ResolveError::Upstream { .. } => ApiError::Upstream(message),
            ResolveError::Unreachable { .. } => ApiError::Unavailable(message),
        }
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::NotFound(p) => ApiError::StorageMissing(p),
            StorageError::BadRange { size } => {
                ApiError::RangeNotSatisfiable(format!("range not satisfiable for {size} bytes"))
            }
            StorageError::BadPath(p) => ApiError::BadRequest(format!("invalid path {p:?}")),
            StorageError::Backend(m) => ApiError::Unavailable(format!("storage unavailable: {m}")),
            e @ StorageError::Io { .. } => ApiError::internal("storage", e),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_details_stay_in_the_log() {
        let cause = std::io::Error::other("relation cbs.secret does not exist");
        let error = ApiError::internal("reading the secret", cause);
        assert_eq!(error.chain(), "reading the secret: relation cbs.secret does not exist");
        let response = error.into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let info = response.extensions().get::<ErrorInfo>().unwrap();
        assert_eq!(info.message, INTERNAL_MESSAGE);
        let response = ApiError::BadRequest("os is required".into()).into_response();
        assert_eq!(response.extensions().get::<ErrorInfo>().unwrap().message, "os is required");
    }
}
