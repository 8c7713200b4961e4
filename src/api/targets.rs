//! `GET /api/targets`: the targets a build may ask for, each with its ARM
//! variants and their default, exactly as SQL lists them (`cbs.target_list()`).
//! Clients and the download page offer these instead of keeping a copy.

use axum::extract::State;
use axum::Json;
use serde::Serialize;

use super::error::ApiError;
use super::state::AppState;
use crate::db::Target;

#[derive(Serialize)]
pub struct Targets {
    targets: Vec<Target>,
}

pub async fn list(State(state): State<AppState>) -> Result<Json<Targets>, ApiError> {
    Ok(Json(Targets { targets: state.targets().await?.to_vec() }))
}
