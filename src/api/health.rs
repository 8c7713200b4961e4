//! Liveness (`/healthz`: the process serves) and readiness (`/readyz`: the
//! database answers and the notification listener is connected, so waiting
//! requests will be woken).

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::error::{ApiError, ApiResult};
use super::state::AppState;

pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

pub async fn readyz(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    state.queue.ping().await.map_err(|e| ApiError::Unavailable(format!("database not reachable: {e}")))?;
    if !state.listener.is_connected() {
        return Err(ApiError::Unavailable("notification listener not connected".into()));
    }
    Ok(Json(json!({"status": "ready", "database": "ok", "listener": "connected"})))
}
