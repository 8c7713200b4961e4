//! The layer every request passes: gives it a request id (the client's
//! `X-Request-Id` when sane, else a fresh one), counts it in the metrics by
//! route and status, and turns every error response into the JSON envelope,
//! whether it came from a handler ([`ErrorInfo`]) or from axum itself (unknown
//! route, wrong method, rejected extractor, body too large).
//!
//! It also refuses request heads over `api.max_uri_bytes` (414) and
//! `api.max_header_bytes` (431) before any handler runs, and makes every answer
//! say how it may be cached: errors `no-store` (they may be one client's, like a
//! 429, or stop being true, like a proxy's 502), anything else that does not say
//! `no-cache`.

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use super::error::{envelope, ErrorInfo};
use super::metrics::RequestLabels;
use super::state::AppState;
use crate::config::ApiConfig;

pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Largest plain-text error body turned into an envelope message.
const MAX_ERROR_BODY: usize = 16 * 1024;

fn client_request_id(req: &Request) -> Option<String> {
    let v = req.headers().get(REQUEST_ID_HEADER)?.to_str().ok()?;
    let sane = !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    sane.then(|| v.to_string())
}

/// A request id of our own: 32 hex digits.
pub fn fresh_request_id() -> String {
    format!("{:016x}{:016x}", rand::random::<u64>(), rand::random::<u64>())
}

pub async fn around(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let id = client_request_id(&req).unwrap_or_else(fresh_request_id);
    let route = req.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = req.method().to_string();
    let response = match oversized_head(&req, &state.config.api) {
        Some(refusal) => refusal,
        None => {
            let span = tracing::info_span!("request", request_id = %id, %method, route = %route);
            next.run(req).instrument(span).await
        }
    };
    // Boxed: its state (reading an error body) would otherwise be part of every
    // waiting request's future, thousands of which may be held open at once.
    let mut response = Box::pin(to_envelope(response, &id)).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    if !response.headers().contains_key(header::CACHE_CONTROL) {
        let error = response.status().is_client_error() || response.status().is_server_error();
        let value = HeaderValue::from_static(if error { "no-store" } else { "no-cache" });
        response.headers_mut().insert(header::CACHE_CONTROL, value);
    }
    let labels = RequestLabels { route, method, status: response.status().as_u16() };
    state.metrics.requests.get_or_create(&labels).inc();
    response
}

/// A 414 for a request target over `api.max_uri_bytes`, a 431 for header fields
/// over `api.max_header_bytes` (counted as sent: `name: value` and the line end).
fn oversized_head(req: &Request, api: &ApiConfig) -> Option<Response> {
    let uri = req.uri();
    let target = uri.path_and_query().map_or(0, |p| p.as_str().len()) + uri.authority().map_or(0, |a| a.as_str().len());
    if target > api.max_uri_bytes {
        let message = format!("the request target has {target} bytes; at most {} bytes are accepted", api.max_uri_bytes);
        return Some(refusal(StatusCode::URI_TOO_LONG, message));
    }
    let fields: usize = req.headers().iter().map(|(name, value)| name.as_str().len() + value.len() + 4).sum();
    if fields > api.max_header_bytes {
        let message = format!("the header fields have {fields} bytes; at most {} bytes are accepted", api.max_header_bytes);
        return Some(refusal(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, message));
    }
    None
}

/// An error answer that also closes the connection (the request's body, if it
/// has one, is not read).
fn refusal(status: StatusCode, message: String) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response.extensions_mut().insert(ErrorInfo { message });
    response
}

async fn to_envelope(response: Response, id: &str) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let info = response.extensions().get::<ErrorInfo>().cloned();
    if info.is_none() && is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let message = match info {
        Some(info) => info.message,
        None => {
            let bytes = axum::body::to_bytes(body, MAX_ERROR_BODY).await.unwrap_or_default();
            let text = String::from_utf8_lossy(&bytes).trim().to_string();
            if text.is_empty() { status.canonical_reason().unwrap_or("error").to_string() } else { text }
        }
    };
    let json = envelope(status, &message, id);
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    parts.headers.insert(header::CONTENT_LENGTH, HeaderValue::from(json.len()));
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        parts.headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    Response::from_parts(parts, Body::from(json))
}
