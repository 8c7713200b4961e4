//! Admin REST endpoints behind a bearer token (`api.admin_token`). With no token
//! configured the admin API is closed: every call answers 401. The admin page
//! (`/admin`) is a client of these.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{check_key, view, ApiError, AppState};
use crate::build_view::{BuildView, ReproductionView};
use crate::db::TokenLimits;

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
    if is_admin_token(state, given) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized("missing or wrong admin token (Authorization: Bearer …)".into()))
    }
}

/// Whether `given` is the configured admin token (never when none is configured).
pub fn is_admin_token(state: &AppState, given: &str) -> bool {
    let expected = &state.config.api.admin_token;
    // Comparing digests keeps the comparison's time independent of where the strings differ.
    !expected.is_empty() && Sha256::digest(given.as_bytes()) == Sha256::digest(expected.as_bytes())
}

pub async fn overview(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    Ok(Json(state.queue.admin_overview().await?))
}

/// Cancels a queued or running build; answers the build afterwards, in the status JSON's shape.
pub async fn cancel(State(state): State<AppState>, headers: HeaderMap, Path(key): Path<String>) -> Result<Json<BuildView>, ApiError> {
    authorize(&state, &headers)?;
    check_key(&key)?;
    let build = state.queue.cancel(&key, "cancelled by an administrator").await?;
    Ok(Json(view(&state, &build).await?))
}

/// Builds again from scratch; answers the build afterwards, in the status JSON's shape.
pub async fn requeue(State(state): State<AppState>, headers: HeaderMap, Path(key): Path<String>) -> Result<Json<BuildView>, ApiError> {
    authorize(&state, &headers)?;
    check_key(&key)?;
    let build = state.queue.requeue(&key).await?;
    Ok(Json(view(&state, &build).await?))
}

/// Queues a reproduction of a succeeded build by a worker other than the one
/// that built it (or returns the one already open): 202 with the reproduction;
/// 404 unknown build, 409 a build that has not succeeded.
pub async fn reproduce(State(state): State<AppState>, headers: HeaderMap, Path(key): Path<String>) -> Result<(StatusCode, Json<Value>), ApiError> {
    authorize(&state, &headers)?;
    check_key(&key)?;
    let r = state.queue.request_reproduction(&key, "admin").await?;
    tracing::info!(build_key = %key, id = r.id, status = %r.status, "reproduction requested by an administrator");
    Ok((StatusCode::ACCEPTED, Json(serde_json::to_value(ReproductionView::from(&r)).map_err(|e| ApiError::internal("encoding the reproduction", e))?)))
}

/// `POST /api/admin/tokens` body: a name and optional limits of its own.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    name: String,
    burst: Option<i32>,
    per_hour: Option<f64>,
    max_queued: Option<i32>,
    max_held: Option<i32>,
}

/// Makes an API token; the answer is the only place the token is ever shown.
pub async fn create_token(State(state): State<AppState>, headers: HeaderMap, Json(body): Json<NewToken>) -> Result<(StatusCode, Json<Value>), ApiError> {
    authorize(&state, &headers)?;
    let limits = TokenLimits { burst: body.burst, per_hour: body.per_hour, max_queued: body.max_queued, max_held: body.max_held };
    let token = state.queue.create_token(&body.name, &limits).await?;
    Ok((StatusCode::CREATED, Json(json!({"name": body.name, "token": token}))))
}

pub async fn list_tokens(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    Ok(Json(json!({"tokens": state.queue.list_tokens().await?})))
}

/// Revokes at once on every api host (tokens are checked against Postgres per request).
pub async fn revoke_token(State(state): State<AppState>, headers: HeaderMap, Path(name): Path<String>) -> Result<StatusCode, ApiError> {
    authorize(&state, &headers)?;
    if state.queue.revoke_token(&name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("no active token named {name:?}")))
    }
}
