//! Serving a succeeded build's binary: streamed from storage with
//! `Content-Length`, `Content-Disposition`, `ETag` (the sha256) and
//! `X-Build-Key`; `If-None-Match` answers 304, a single `Range` answers 206;
//! with S3 and `storage.s3.redirect`, a 302 to a presigned URL instead.

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::error::{ApiError, ApiResult};
use super::state::AppState;
use crate::db::Build;
use crate::storage::Artifact;

pub const BUILD_KEY_HEADER: &str = "x-build-key";

/// The artifact record of a succeeded build.
pub fn artifact_of(build: &Build) -> ApiResult<Artifact> {
    let value = build
        .artifact
        .as_ref()
        .ok_or_else(|| ApiError::Conflict(format!("build {} is {}, not succeeded", build.build_key, build.status.as_str())))?;
    Artifact::deserialize(value)
        .map_err(|e| ApiError::Internal(format!("build {} has an unreadable artifact record: {e}", build.build_key)))
}

fn etag_matches(list: &str, etag: &str) -> bool {
    list.split(',').map(str::trim).any(|t| t == "*" || t.trim_start_matches("W/") == etag)
}

fn header_value(s: &str) -> ApiResult<HeaderValue> {
    HeaderValue::from_str(s).map_err(|e| ApiError::Internal(format!("bad header value {s:?}: {e}")))
}

/// The response for a download of `build` (which must have succeeded).
pub async fn serve(state: &AppState, build: &Build, method: &Method, headers: &HeaderMap) -> ApiResult<Response> {
    let artifact = artifact_of(build)?;
    let etag = format!("\"{}\"", artifact.sha256);
    let mut builder = Response::builder()
        .header(header::ETAG, header_value(&etag)?)
        .header(BUILD_KEY_HEADER, header_value(&build.build_key)?)
        .header(header::CACHE_CONTROL, "public, max-age=31536000, immutable");

    let s3 = &state.config.storage.s3;
    if s3.redirect
        && let Some(url) = state.storage.presigned_url(&artifact.path, s3.presign_ttl).await?
    {
        return Ok(builder
            .status(StatusCode::FOUND)
            .header(header::LOCATION, header_value(&url)?)
            .body(Body::empty())
            .expect("valid response"));
    }

    if let Some(inm) = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok())
        && etag_matches(inm, &etag)
    {
        return Ok(builder.status(StatusCode::NOT_MODIFIED).body(Body::empty()).expect("valid response"));
    }

    builder = builder
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_DISPOSITION, header_value(&format!("attachment; filename=\"{}\"", artifact.file_name))?)
        .header(header::ACCEPT_RANGES, "bytes");
    let size = artifact.size;
    let range = match requested_range(headers, &etag, size) {
        Ok(range) => range,
        Err(e) => {
            let mut response = e.into_response();
            response.headers_mut().insert(header::CONTENT_RANGE, header_value(&format!("bytes */{size}"))?);
            return Ok(response);
        }
    };
    let (status, length) = match &range {
        Some(r) => {
            builder = builder.header(header::CONTENT_RANGE, format!("bytes {}-{}/{size}", r.start, r.end - 1));
            (StatusCode::PARTIAL_CONTENT, r.end - r.start)
        }
        None => (StatusCode::OK, size),
    };
    builder = builder.status(status).header(header::CONTENT_LENGTH, length);
    if method == Method::HEAD {
        return Ok(builder.body(Body::empty()).expect("valid response"));
    }
    let stream = {
        let _permit = state.opens.acquire().await.map_err(|_| ApiError::Unavailable("shutting down".into()))?;
        state.storage.get(&artifact.path, range).await?
    };
    Ok(builder.body(Body::from_stream(stream)).expect("valid response"))
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
