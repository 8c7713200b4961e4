//! The REST side: `POST /api/builds`, `GET /api/builds/{key}` (with `?wait=`
//! long-polling), and a build's download, checksum and signature. Its SBOMs
//! and provenance are served by [`super::documents`].

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::admission;
use super::client::Client;
use super::download::{artifact_of, Freshness};
use super::error::{ApiError, ApiResult};
use super::spec_input::{self, SpecRequest};
use super::state::AppState;
use super::wait::{until_terminal, WaitEnd};
use crate::build_view::{BuildView, ViewConfig};
use crate::db::Build;
use crate::spec::{Plugin, Replacement};

/// `POST /api/builds` body: a spec whose versions may be `latest`, empty or partial.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildRequest {
    #[serde(default)]
    caddy_version: String,
    #[serde(default)]
    plugins: Vec<Plugin>,
    #[serde(default)]
    replacements: Vec<Replacement>,
    os: String,
    arch: String,
    #[serde(default)]
    arm: Option<String>,
    /// Go build tags; absent or null means xcaddy's defaults, `[]` none.
    #[serde(default)]
    tags: Option<Vec<String>>,
    /// Go release to build with (`1.26.8`); empty: `worker.go_version`.
    #[serde(default)]
    go_version: String,
    /// Re-queue a failed or cancelled build of the same spec.
    #[serde(default)]
    force: bool,
    /// POSTed the build's status JSON when it ends (delivered by the janitor, with retries).
    #[serde(default)]
    callback_url: Option<String>,
}

/// The build's view ([`BuildView`]), its latest reproduction included.
pub async fn view(state: &AppState, b: &Build) -> ApiResult<BuildView> {
    Ok(BuildView::load(&state.queue, b, &ViewConfig::from(&*state.config)).await?)
}

/// Rejects anything but 64 lowercase hex digits before it reaches SQL or storage.
pub fn check_key(key: &str) -> ApiResult<()> {
    if crate::spec::is_build_key(key) { Ok(()) } else { Err(ApiError::BadRequest(format!("{key:?} is not a build key (64 lowercase hex digits)"))) }
}

/// The build with this key, or 400 for a malformed key and 404 for an unknown one.
pub async fn load(state: &AppState, key: &str) -> ApiResult<Build> {
    check_key(key)?;
    state.queue.get(key).await?.ok_or_else(|| ApiError::NotFound(format!("build {key} not found")))
}

pub async fn submit(State(state): State<AppState>, client: Client, Json(body): Json<BuildRequest>) -> ApiResult<Response> {
    let callback = body.callback_url.as_deref().filter(|u| !u.is_empty());
    if let Some(url) = callback {
        // Checked before anything is stored, so a refused URL never leaves a build behind.
        let policy = crate::outbound::Policy::webhooks(&state.config.janitor.webhooks);
        policy.check_url(url).await.map_err(|e| ApiError::BadRequest(format!("callback_url {e}")))?;
    }
    let req = SpecRequest {
        caddy_version: body.caddy_version,
        plugins: body.plugins,
        replacements: body.replacements,
        os: body.os,
        arch: body.arch,
        arm: body.arm,
        tags: body.tags,
        go_version: body.go_version,
    };
    let spec = spec_input::resolve(&state, req).await?;
    let spec = serde_json::to_value(&spec).map_err(|e| ApiError::internal("encoding the spec", e))?;
    let build = admission::submit(&state, &spec, body.force, &client).await?;
    if let Some(url) = callback {
        state.queue.add_callback(&build.build_key, url).await?;
    }
    let status = if build.status.is_terminal() { StatusCode::OK } else { StatusCode::ACCEPTED };
    let v = view(&state, &build).await?;
    Ok((status, [(header::LOCATION, v.links.this.clone())], Json(v)).into_response())
}

#[derive(Debug, Deserialize)]
pub struct StatusParams {
    /// Long-poll: wait up to this long (e.g. `30s`) for a terminal state.
    wait: Option<String>,
}

pub async fn status(
    State(state): State<AppState>,
    client: Client,
    Path(key): Path<String>,
    Query(p): Query<StatusParams>,
) -> ApiResult<Json<BuildView>> {
    let build = load(&state, &key).await?;
    let wait = match p.wait.as_deref().map(str::trim).filter(|w| !w.is_empty()) {
        None => None,
        Some(w) => Some(
            humantime::parse_duration(w)
                .map_err(|e| ApiError::BadRequest(format!("wait {w:?} is not a duration like 30s: {e}")))?
                .min(state.config.api.max_long_poll),
        ),
    };
    let build = match wait {
        Some(limit) if !build.status.is_terminal() => {
            let _held = state.held.hold(&client)?;
            match until_terminal(&state, &key, limit, false).await? {
                WaitEnd::Terminal(w) => w.build.clone(),
                WaitEnd::TimedOut(b) => b.unwrap_or_else(|| Arc::new(build)),
            }
        }
        _ => Arc::new(build),
    };
    Ok(Json(view(&state, &build).await?))
}

pub async fn download(State(state): State<AppState>, Path(key): Path<String>, method: Method, headers: HeaderMap) -> ApiResult<Response> {
    let build = load(&state, &key).await?;
    super::compat::finished(&state, &build, None, &method, &headers, Freshness::Immutable).await
}

/// `sha256sum` format: the checksum, two spaces, the file name.
pub async fn sha256(State(state): State<AppState>, Path(key): Path<String>) -> ApiResult<Response> {
    let build = load(&state, &key).await?;
    let a = &artifact_of(&build)?.binary;
    let headers = [(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8")), (header::CACHE_CONTROL, Freshness::Immutable.cache_control())];
    Ok((headers, format!("{}  {}\n", a.sha256, a.file_name)).into_response())
}

pub async fn signature(State(state): State<AppState>, Path(key): Path<String>) -> ApiResult<Response> {
    let build = load(&state, &key).await?;
    let a = &artifact_of(&build)?.binary;
    let path = a.signature.as_ref().ok_or_else(|| ApiError::NotFound(format!("build {key} has no signature")))?;
    let bytes = state.storage.get_bytes(path).await?;
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_DISPOSITION, format!("attachment; filename=\"{}.minisig\"", a.file_name))
        .header(header::CACHE_CONTROL, Freshness::Immutable.cache_control())
        .body(Body::from(bytes))
        .expect("valid response"))
}

