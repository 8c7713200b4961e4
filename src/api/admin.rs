//! Admin REST endpoints behind a bearer token (`api.admin_token`). With no token
//! configured the admin API is closed: every call answers 401.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap};
use axum::Json;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::api::{check_key, ApiError, AppState};
use crate::db::Build;

fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let expected = &state.config.api.admin_token;
    if expected.is_empty() {
        return Err(ApiError::Unauthorized("the admin API is disabled: set api.admin_token".into()));
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
        Err(ApiError::Unauthorized("missing or wrong admin token (Authorization: Bearer …)".into()))
    }
}

pub async fn overview(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    Ok(Json(state.queue.admin_overview().await?))
}

pub async fn cancel(State(state): State<AppState>, headers: HeaderMap, Path(key): Path<String>) -> Result<Json<Build>, ApiError> {
    authorize(&state, &headers)?;
    check_key(&key)?;
    Ok(Json(state.queue.cancel(&key, "cancelled by an administrator").await?))
}

pub async fn requeue(State(state): State<AppState>, headers: HeaderMap, Path(key): Path<String>) -> Result<Json<Build>, ApiError> {
    authorize(&state, &headers)?;
    check_key(&key)?;
    Ok(Json(state.queue.requeue(&key).await?))
}
