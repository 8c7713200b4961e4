//! A build's SBOMs and provenance and their minisign signatures:
//! `/api/builds/{key}/sbom.cdx.json`, `/sbom.spdx.json`, `/provenance.json`,
//! each also with `.minisig`. Served from storage as the worker stored them,
//! immutable like the binary. Builds made before the worker published these
//! documents have none: they answer 404 with a message saying so (a requeue
//! rebuilds the binary and makes them), never a document made up afterwards.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::Response;

use super::builds::load;
use super::download::{artifact_of, Freshness};
use super::error::{ApiError, ApiResult};
use super::state::AppState;
use crate::attest::{CYCLONEDX_MEDIA_TYPE, PROVENANCE_MEDIA_TYPE, SPDX_MEDIA_TYPE};
use crate::storage::Document;

pub async fn sbom_cdx(state: State<AppState>, key: Path<String>) -> ApiResult<Response> {
    serve(state, key, Document::SbomCycloneDx, false).await
}

pub async fn sbom_cdx_signature(state: State<AppState>, key: Path<String>) -> ApiResult<Response> {
    serve(state, key, Document::SbomCycloneDx, true).await
}

pub async fn sbom_spdx(state: State<AppState>, key: Path<String>) -> ApiResult<Response> {
    serve(state, key, Document::SbomSpdx, false).await
}

pub async fn sbom_spdx_signature(state: State<AppState>, key: Path<String>) -> ApiResult<Response> {
    serve(state, key, Document::SbomSpdx, true).await
}

pub async fn provenance(state: State<AppState>, key: Path<String>) -> ApiResult<Response> {
    serve(state, key, Document::Provenance, false).await
}

pub async fn provenance_signature(state: State<AppState>, key: Path<String>) -> ApiResult<Response> {
    serve(state, key, Document::Provenance, true).await
}

fn media_type(doc: Document) -> &'static str {
    match doc {
        Document::SbomCycloneDx => CYCLONEDX_MEDIA_TYPE,
        Document::SbomSpdx => SPDX_MEDIA_TYPE,
        Document::Provenance => PROVENANCE_MEDIA_TYPE,
    }
}

async fn serve(State(state): State<AppState>, Path(key): Path<String>, doc: Document, signature: bool) -> ApiResult<Response> {
    let build = load(&state, &key).await?;
    let stored = artifact_of(&build)?.document(doc).ok_or_else(|| {
        ApiError::NotFound(format!(
            "build {key} was made before this server published SBOMs and provenance, so it has no {}; requeue the build to make them",
            doc.file_name()
        ))
    })?;
    let path = if signature { &stored.signature } else { &stored.path };
    let bytes = state.storage.get_bytes(path).await?;
    let response = Response::builder().header(header::CACHE_CONTROL, Freshness::Immutable.cache_control());
    let response = if signature {
        response
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(header::CONTENT_DISPOSITION, format!("attachment; filename=\"{}.minisig\"", doc.file_name()))
    } else {
        response.header(header::CONTENT_TYPE, media_type(doc)).header(header::ETAG, format!("\"{}\"", stored.sha256))
    };
    Ok(response.body(Body::from(bytes)).expect("valid response"))
}
