//! `GET /api/modules/check?module=…&version=…`: validates a module path and
//! resolves the version query the way a build request would, so a form can say
//! "found" or quote the problem while the user types.

use axum::extract::{Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::state::AppState;
use crate::gomod::ResolveError;

#[derive(Deserialize)]
pub struct CheckParams {
    module: String,
    #[serde(default)]
    version: String,
}

#[derive(Serialize)]
pub struct Checked {
    module: String,
    /// The absolute version the query resolves to.
    version: String,
}

pub async fn check(State(state): State<AppState>, Query(p): Query<CheckParams>) -> Result<Json<Checked>, ApiError> {
    let module = p.module.trim().to_string();
    // Go's module path rules are SQL's (cbs.module_path_problem), as for a build request.
    let problem = match super::spec_input::has_nul(&module) {
        true => Some("contains the character '\\0'".to_string()),
        false => state.queue.module_path_problems(std::slice::from_ref(&module)).await?.pop().flatten(),
    };
    if let Some(problem) = problem {
        return Err(ResolveError::BadPath { module, problem }.into());
    }
    let version = state.resolve(&module, p.version.trim()).await?;
    Ok(Json(Checked { module, version }))
}
