//! Serving a succeeded build's binary: streamed from storage with
//! `Content-Length`, `Content-Disposition`, `ETag` (the sha256) and
//! `X-Build-Key`; `If-None-Match` answers 304, a single `Range` answers 206;
//! with S3 and `storage.s3.redirect`, a 302 to a presigned URL instead.
//! Requests that waited for a build share one prepared download ([`SharedDownload`]).
//!
//! `Cache-Control` follows what the request named ([`Freshness`]): a build key or
//! only exact versions (Go's too) is immutable; anything resolved (`latest`,
//! partial, the configured Go) must be
//! revalidated with the ETag, so that a cache never keeps serving an old Caddy.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::error::{ApiError, ApiResult};
use super::state::AppState;
use crate::db::{Build, BuildArtifact};
use crate::storage::Artifact;

pub const BUILD_KEY_HEADER: &str = "x-build-key";

/// How long a download's answer stays true, and so what caches may do with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// The URL names one build for good: a build key, or a compat request whose
    /// every version was exact. Cached for a year, never revalidated.
    Immutable,
    /// The URL's meaning can change (a version resolved from `latest`, empty,
    /// partial or a branch): caches may keep the binary but must ask again before
    /// each use (`If-None-Match` with the ETag costs a 304, not a download).
    Revalidate,
}

impl Freshness {
    pub fn cache_control(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Freshness::Immutable => "public, max-age=31536000, immutable",
            Freshness::Revalidate => "public, no-cache",
        })
    }
}

/// `Cache-Control` of a redirect to a presigned URL, which expires.
const REDIRECT_CACHE_CONTROL: &str = "no-store";

/// The artifact record of a succeeded build; 409 for any other.
pub fn artifact_of(build: &Build) -> ApiResult<&BuildArtifact> {
    build
        .artifact
        .as_ref()
        .ok_or_else(|| ApiError::Conflict(format!("build {} is {}, not succeeded", build.build_key, build.status.as_str())))
}

fn etag_matches(list: &str, etag: &str) -> bool {
    list.split(',').map(str::trim).any(|t| t == "*" || t.trim_start_matches("W/") == etag)
}

fn header_value(s: &str) -> ApiResult<HeaderValue> {
    HeaderValue::from_str(s).map_err(|e| ApiError::internal(format!("bad header value {s:?}"), e))
}

/// What a download's response takes from its build and storage, independent of
/// the request: prepared once per request for a cache hit, once per build for the
/// requests that waited on it ([`SharedDownload`]).
pub struct Prepared {
    artifact: Artifact,
    /// `"<sha256>"`, as sent and as compared with `If-None-Match`/`If-Range`.
    etag: String,
    headers: HeaderMap,
    /// The presigned URL a `302` points to, with S3 and `storage.s3.redirect`.
    redirect: Option<HeaderValue>,
    /// The whole artifact, when it was read into memory (see [`SharedDownload`]).
    body: Option<Bytes>,
}

impl Prepared {
    /// Parses the artifact record, builds the fixed headers, presigns when
    /// redirecting, and reads the whole body when it is at most `body_up_to` bytes.
    async fn new(state: &AppState, build: &Build, body_up_to: u64) -> ApiResult<Prepared> {
        let artifact = artifact_of(build)?.binary.clone();
        let etag = format!("\"{}\"", artifact.sha256);
        let mut headers = HeaderMap::with_capacity(8);
        headers.insert(header::ETAG, header_value(&etag)?);
        headers.insert(BUILD_KEY_HEADER, header_value(&build.build_key)?);

        let s3 = &state.config.storage.s3;
        let redirect = match s3.redirect {
            true => state.storage.presigned_url(&artifact.path, s3.presign_ttl).await?.map(|u| header_value(&u)).transpose()?,
            false => None,
        };
        let body = if redirect.is_none() && artifact.size <= body_up_to {
            let _permit = state.opens.acquire().await.map_err(|_| ApiError::Unavailable("shutting down".into()))?;
            let bytes = state.storage.get_bytes(&artifact.path).await?;
            if bytes.len() as u64 != artifact.size {
                return Err(ApiError::internal_msg(format!(
                    "build {}: stored artifact has {} bytes, its record says {}",
                    build.build_key,
                    bytes.len(),
                    artifact.size
                )));
            }
            Some(bytes)
        } else {
            None
        };
        Ok(Prepared { artifact, etag, headers, redirect, body })
    }
}

/// The download of one succeeded build, prepared by the first of its waiting
/// requests to need it and shared by all the others: when ten thousand requests
/// wait on one build, its completion costs one storage read (one S3 GET or
/// presign), not ten thousand. Artifacts up to `api.shared_download_max_bytes`
/// are held in memory (one copy, cloned by reference into every response) until
/// the last waiter has its response.
#[derive(Default)]
pub struct SharedDownload(tokio::sync::OnceCell<Result<Arc<Prepared>, ApiError>>);

impl SharedDownload {
    /// The prepared download; an error is shared too, so that a storage outage
    /// costs one failed read, not one per waiter.
    pub async fn get(&self, state: &AppState, build: &Build) -> ApiResult<Arc<Prepared>> {
        let cap = state.config.api.shared_download_max_bytes;
        self.0.get_or_init(|| async { Prepared::new(state, build, cap).await.map(Arc::new) }).await.clone()
    }
}

/// The response for a download of `build` (which must have succeeded).
pub async fn serve(state: &AppState, build: &Build, method: &Method, headers: &HeaderMap, freshness: Freshness) -> ApiResult<Response> {
    let prepared = Prepared::new(state, build, 0).await?;
    respond(state, &prepared, method, headers, freshness).await
}

/// The response for one request of a prepared download. The 304 carries the
/// same `ETag` and `Cache-Control` as the 200 it stands for.
pub async fn respond(
    state: &AppState,
    prepared: &Prepared,
    method: &Method,
    headers: &HeaderMap,
    freshness: Freshness,
) -> ApiResult<Response> {
    let mut response = Response::new(Body::empty());
    *response.headers_mut() = prepared.headers.clone();
    if let Some(url) = &prepared.redirect {
        *response.status_mut() = StatusCode::FOUND;
        response.headers_mut().insert(header::LOCATION, url.clone());
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(REDIRECT_CACHE_CONTROL));
        return Ok(response);
    }
    response.headers_mut().insert(header::CACHE_CONTROL, freshness.cache_control());

    let etag = &prepared.etag;
    if let Some(inm) = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok())
        && etag_matches(inm, etag)
    {
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        return Ok(response);
    }

    let artifact = &prepared.artifact;
    let out = response.headers_mut();
    out.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    out.insert(header::CONTENT_DISPOSITION, header_value(&format!("attachment; filename=\"{}\"", artifact.file_name))?);
    out.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    let size = artifact.size;
    let range = match requested_range(headers, etag, size) {
        Ok(range) => range,
        Err(e) => {
            let mut response = e.into_response();
            response.headers_mut().insert(header::CONTENT_RANGE, header_value(&format!("bytes */{size}"))?);
            return Ok(response);
        }
    };
    let length = match &range {
        Some(r) => {
            *response.status_mut() = StatusCode::PARTIAL_CONTENT;
            let content_range = format!("bytes {}-{}/{size}", r.start, r.end - 1);
            response.headers_mut().insert(header::CONTENT_RANGE, header_value(&content_range)?);
            r.end - r.start
        }
        None => size,
    };
    response.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    if method == Method::HEAD {
        return Ok(response);
    }
    *response.body_mut() = match (&prepared.body, range) {
        (Some(bytes), None) => Body::from(bytes.clone()),
        (_, range) => {
            let stream = {
                let _permit = state.opens.acquire().await.map_err(|_| ApiError::Unavailable("shutting down".into()))?;
                state.storage.get(&artifact.path, range).await?
            };
            Body::from_stream(stream)
        }
    };
    Ok(response)
}

/// The one byte range to serve, honouring `If-Range`; several ranges get the whole file.
fn requested_range(headers: &HeaderMap, etag: &str, size: u64) -> ApiResult<Option<std::ops::Range<u64>>> {
    let Some(raw) = headers.get(header::RANGE) else { return Ok(None) };
    if let Some(if_range) = headers.get(header::IF_RANGE)
        && if_range.as_bytes() != etag.as_bytes()
    {
        return Ok(None);
    }
    let unsatisfiable = || ApiError::RangeNotSatisfiable(format!("range {raw:?} is not satisfiable for {size} bytes"));
    let raw_text = raw.to_str().map_err(|_| unsatisfiable())?;
    let ranges = http_range_header::parse_range_header(raw_text)
        .and_then(|r| r.validate(size))
        .map_err(|_| unsatisfiable())?;
    match ranges.as_slice() {
        [one] => Ok(Some(*one.start()..*one.end() + 1)),
        _ => Ok(None),
    }
}
