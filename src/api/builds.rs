//! The REST side: `POST /api/builds`, `GET /api/builds/{key}` (with `?wait=`
//! long-polling), and a build's download, checksum and signature. Its SBOMs
//! and provenance are served by [`super::documents`].

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::admission;
use super::client::Client;
use super::download::{artifact_of, Freshness};
use super::error::{ApiError, ApiResult};
use super::spec_input::{self, SpecRequest};
use super::state::AppState;
use super::wait::{until_terminal, WaitEnd};
use crate::db::{Build, Reproduction};
use crate::spec::{Plugin, Replacement};
use crate::storage::{recorded_document, signature_of, Document};

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

#[derive(Serialize)]
struct Links {
    #[serde(rename = "self")]
    this: String,
    download: String,
    sha256: String,
    signature: String,
    log: String,
    /// The SBOMs (CycloneDX 1.6, SPDX 2.3) and SLSA provenance, each with its
    /// minisign signature (builds made before these were published answer 404).
    sbom_cyclonedx: String,
    sbom_cyclonedx_signature: String,
    sbom_spdx: String,
    sbom_spdx_signature: String,
    provenance: String,
    provenance_signature: String,
}

#[derive(Serialize)]
struct ArtifactView {
    file_name: String,
    size: u64,
    sha256: String,
    signed: bool,
    /// Whether the SBOMs and provenance were published with it.
    attested: bool,
}

/// What clients see of a build's latest reproduction by another worker.
#[derive(Serialize)]
pub struct ReproductionView {
    /// `queued`, `running`, `reproduced`, `mismatch` or `failed`.
    status: String,
    requested_by: String,
    original_sha256: String,
    original_worker_id: String,
    reproduced_sha256: Option<String>,
    /// The reproducing worker.
    worker_id: Option<String>,
    go_version: Option<String>,
    /// Recorded files that had to change to build (the reason of a mismatch).
    inputs_changed: Vec<String>,
    error: Option<String>,
    requested_at: chrono::DateTime<chrono::Utc>,
    finished_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl From<&Reproduction> for ReproductionView {
    fn from(r: &Reproduction) -> Self {
        let strings = |v: &Value| v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect()).unwrap_or_default();
        ReproductionView {
            status: r.status.clone(),
            requested_by: r.requested_by.clone(),
            original_sha256: r.original_sha256.clone(),
            original_worker_id: r.original_worker_id.clone(),
            reproduced_sha256: r.reproduced_sha256.clone(),
            worker_id: r.worker_id.clone(),
            go_version: r.detail.get("go_version").and_then(|v| v.as_str()).map(String::from),
            inputs_changed: strings(&r.detail["inputs_changed"]),
            error: r.error.clone(),
            requested_at: r.created_at,
            finished_at: r.finished_at,
        }
    }
}

/// What clients see of a build.
#[derive(Serialize)]
struct BuildView {
    build_key: String,
    status: &'static str,
    spec: Value,
    attempt: i32,
    max_attempts: i32,
    error: Option<String>,
    artifact: Option<ArtifactView>,
    created_at: chrono::DateTime<chrono::Utc>,
    started_at: Option<chrono::DateTime<chrono::Utc>>,
    finished_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The `xcaddy build` command that makes the same binary, byte for byte.
    xcaddy_command: Option<String>,
    links: Links,
    /// The latest reproduction by another worker, if any ([`with_reproduction`]).
    reproduction: Option<ReproductionView>,
}

/// Adds the build's latest reproduction to its view (succeeded builds only: no other has one).
async fn with_reproduction(state: &AppState, b: &Build) -> ApiResult<BuildView> {
    let mut v = view(state, b);
    if b.status == crate::db::BuildStatus::Succeeded {
        v.reproduction = state.queue.latest_reproduction(&b.build_key).await?.as_ref().map(ReproductionView::from);
    }
    Ok(v)
}

fn view(state: &AppState, b: &Build) -> BuildView {
    let base = format!("{}/api/builds/{}", state.config.api.public_url.trim_end_matches('/'), b.build_key);
    BuildView {
        build_key: b.build_key.clone(),
        status: b.status.as_str(),
        spec: b.spec.clone(),
        attempt: b.attempt,
        max_attempts: b.max_attempts,
        error: b.error.clone(),
        artifact: artifact_of(b).ok().map(|a| ArtifactView {
            file_name: a.file_name,
            size: a.size,
            sha256: a.sha256,
            signed: a.signature.is_some(),
            attested: b.artifact.as_ref().and_then(|r| recorded_document(r, Document::Provenance)).is_some(),
        }),
        created_at: b.created_at,
        started_at: b.started_at,
        finished_at: b.finished_at,
        xcaddy_command: xcaddy_command(state, b),
        links: Links {
            download: format!("{base}/download"),
            sha256: format!("{base}/sha256"),
            signature: format!("{base}/signature"),
            log: format!("{base}/log"),
            sbom_cyclonedx: format!("{base}/{}", Document::SbomCycloneDx.file_name()),
            sbom_cyclonedx_signature: signature_of(&format!("{base}/{}", Document::SbomCycloneDx.file_name())),
            sbom_spdx: format!("{base}/{}", Document::SbomSpdx.file_name()),
            sbom_spdx_signature: signature_of(&format!("{base}/{}", Document::SbomSpdx.file_name())),
            provenance: format!("{base}/{}", Document::Provenance.file_name()),
            provenance_signature: signature_of(&format!("{base}/{}", Document::Provenance.file_name())),
            this: base,
        },
        reproduction: None,
    }
}

/// The xcaddy command reproducing the build, with the Go version it was built
/// with (its provenance), else the one its spec asks for (every spec stored
/// since specs name their Go does), else the workers' default.
/// `None` only for a stored spec this version cannot read.
pub fn xcaddy_command(state: &AppState, b: &Build) -> Option<String> {
    let spec: crate::spec::BuildSpec = serde_json::from_value(b.spec.clone()).ok()?;
    let recorded = b.provenance.as_ref().and_then(|p| p["go_version"].as_str());
    let go = recorded.or_else(|| b.spec["go_version"].as_str()).unwrap_or(&state.config.worker.go_version);
    // Specs and config say `1.26.8`, build information `go1.26.8`; GOTOOLCHAIN wants the latter.
    let go = if go.starts_with("go") { go.to_string() } else { format!("go{go}") };
    Some(crate::xcaddy::command(&spec, Some(&go)))
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
    let v = with_reproduction(&state, &build).await?;
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
) -> ApiResult<Json<Value>> {
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
    Ok(Json(serde_json::to_value(with_reproduction(&state, &build).await?).map_err(|e| ApiError::internal("encoding the build", e))?))
}

pub async fn download(State(state): State<AppState>, Path(key): Path<String>, method: Method, headers: HeaderMap) -> ApiResult<Response> {
    let build = load(&state, &key).await?;
    super::compat::finished(&state, &build, None, &method, &headers, Freshness::Immutable).await
}

/// `sha256sum` format: the checksum, two spaces, the file name.
pub async fn sha256(State(state): State<AppState>, Path(key): Path<String>) -> ApiResult<Response> {
    let build = load(&state, &key).await?;
    let a = artifact_of(&build)?;
    let headers = [(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8")), (header::CACHE_CONTROL, Freshness::Immutable.cache_control())];
    Ok((headers, format!("{}  {}\n", a.sha256, a.file_name)).into_response())
}

pub async fn signature(State(state): State<AppState>, Path(key): Path<String>) -> ApiResult<Response> {
    let build = load(&state, &key).await?;
    let a = artifact_of(&build)?;
    let path = a.signature.ok_or_else(|| ApiError::NotFound(format!("build {key} has no signature")))?;
    let bytes = state.storage.get_bytes(&path).await?;
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_DISPOSITION, format!("attachment; filename=\"{}.minisig\"", a.file_name))
        .header(header::CACHE_CONTROL, Freshness::Immutable.cache_control())
        .body(Body::from(bytes))
        .expect("valid response"))
}

