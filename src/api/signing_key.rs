//! `GET /api/signing-key`: the minisign public key that verifies every build's
//! signature. Read from `signing.public_key_path` on each request: the file is
//! tiny, and a key rotated on disk is served at once.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::state::AppState;

pub async fn public_key(State(state): State<AppState>) -> Result<Response, ApiError> {
    let path = &state.config.signing.public_key_path;
    match tokio::fs::read_to_string(path).await {
        Ok(text) => Ok((
            [
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                (header::CONTENT_DISPOSITION, "attachment; filename=\"caddy-build-server.pub\""),
            ],
            text,
        )
            .into_response()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(ApiError::NotFound("no signing key yet: workers create it when they first start".into()))
        }
        Err(e) => Err(ApiError::internal(format!("cannot read the public key {path}"), e)),
    }
}
