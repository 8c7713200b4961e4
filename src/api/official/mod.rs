//! The official download service's endpoints, as its own web pages call them,
//! beside our REST API (same builds, same keys, same admission):
//!
//! - `GET /api/packages`: the plugins worth offering ([`packages`]);
//! - `POST /api/build?os&arch&arm&p…`: starts a build ([`build`]);
//! - `GET /api/build/{key}/events`: its progress as Server-Sent Events ([`events`]);
//! - `GET`/`HEAD /api/build/{key}/download`: the binary (our `/api/builds/{key}/download`).
//!
//! The live page's `HEAD /api/download?…` is the compat endpoint's; it
//! navigates to the `Location` of the answer ([`located`]).

mod build;
mod events;
pub mod openapi;
mod packages;

use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;

use super::builds;
use super::error::ApiResult;
use super::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/packages", get(packages::list))
        .route("/api/build", post(build::start))
        .route("/api/build/{key}/events", get(events::events))
        .route("/api/build/{key}/download", get(builds::download).head(builds::download))
}

/// The content-addressed URL of a build's binary.
pub fn download_url(state: &AppState, build_key: &str) -> String {
    format!("{}/api/builds/{build_key}/download", state.config.api.public_url.trim_end_matches('/'))
}

/// A compat download's answer with `Location` set to the build's
/// content-addressed download URL. The live page sends `HEAD`, lets its
/// XMLHttpRequest follow redirects and navigates to the `Location` of the answer
/// it finally sees: so a `HEAD` that would redirect to presigned storage (which
/// a page's script may not read across origins) answers 200 here instead.
pub fn located(state: &AppState, build_key: &str, method: &Method, response: ApiResult<Response>) -> ApiResult<Response> {
    let mut response = response?;
    let status = response.status();
    if status == StatusCode::FOUND && method == Method::HEAD {
        *response.status_mut() = StatusCode::OK;
    } else if !(status.is_success() || status == StatusCode::NOT_MODIFIED) {
        return Ok(response);
    }
    let url = HeaderValue::from_str(&download_url(state, build_key)).map_err(|e| super::ApiError::internal("the download URL as a header", e))?;
    response.headers_mut().insert(header::LOCATION, url);
    Ok(response)
}
