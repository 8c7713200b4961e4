//! Admin REST endpoints behind a bearer token (`api.admin_token`). With no token
//! configured the admin API is closed: every call answers 401.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use sha2::{Digest, Sha256};

use super::pages::error;
use super::UiState;
use crate::db::DbError;

fn authorized(state: &UiState, headers: &HeaderMap) -> Result<(), Response> {
    let expected = &state.config.api.admin_token;
    if expected.is_empty() {
        return Err(error(StatusCode::UNAUTHORIZED, "the admin API is disabled: set api.admin_token"));
    }
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .unwrap_or_default();
    // Comparing digests keeps the comparison's time independent of where the strings differ.
    if Sha256::digest(given.as_bytes()) == Sha256::digest(expected.as_bytes()) {
        Ok(())
    } else {
        Err(error(StatusCode::UNAUTHORIZED, "missing or wrong admin token (Authorization: Bearer …)"))
    }
}

fn db_error(e: DbError) -> Response {
    match e {
        DbError::NotFound(m) => error(StatusCode::NOT_FOUND, &m),
        DbError::BadSpec(m) => error(StatusCode::BAD_REQUEST, &m),
        other => {
            tracing::error!(error = %other, "admin query failed");
            error(StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
    }
}

fn check_key(key: &str) -> Result<(), Response> {
    if key.len() == 64 && key.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        Ok(())
    } else {
        Err(error(StatusCode::BAD_REQUEST, "a build key is 64 lowercase hex digits"))
    }
}

pub async fn overview(State(state): State<UiState>, headers: HeaderMap) -> Response {
    if let Err(r) = authorized(&state, &headers) {
        return r;
    }
    match state.queue.admin_overview().await {
        Ok(v) => Json(v).into_response(),
        Err(e) => db_error(e),
    }
}

pub async fn cancel(State(state): State<UiState>, headers: HeaderMap, Path(key): Path<String>) -> Response {
    if let Err(r) = authorized(&state, &headers).and_then(|_| check_key(&key)) {
        return r;
    }
    match state.queue.cancel(&key, "cancelled by an administrator").await {
        Ok(b) => Json(b).into_response(),
        Err(e) => db_error(e),
    }
}

pub async fn requeue(State(state): State<UiState>, headers: HeaderMap, Path(key): Path<String>) -> Response {
    if let Err(r) = authorized(&state, &headers).and_then(|_| check_key(&key)) {
        return r;
    }
    match state.queue.requeue(&key).await {
        Ok(b) => Json(b).into_response(),
        Err(e) => db_error(e),
    }
}
