//! `POST /api/build?os=…&arch=…&arm=…&p=module[@version]…` (no body): starts a
//! build the way the compat endpoint does (same parsing, resolution, build key
//! and admission), without waiting for it. Answers
//! `{"result": {"status", "key"}}`; `status` is `complete` for a build that is
//! already there (the page then downloads it at once), else the build's status.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::api::client::Client;
use crate::api::compat;
use crate::api::error::ApiResult;
use crate::api::state::AppState;
use crate::db::BuildStatus;

pub async fn start(State(state): State<AppState>, client: Client, RawQuery(raw): RawQuery) -> ApiResult<Response> {
    let build = compat::submit(&state, compat::parse_query(raw.as_deref())?, &client).await?;
    let status = match build.status {
        BuildStatus::Succeeded => "complete",
        s => s.as_str(),
    };
    let code = if build.status.is_terminal() { StatusCode::OK } else { StatusCode::ACCEPTED };
    Ok((code, Json(json!({"result": {"status": status, "key": build.build_key}}))).into_response())
}
