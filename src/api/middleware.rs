//! The layer every request passes: gives it a request id (the client's
//! `X-Request-Id` when sane, else a fresh one), counts it in the metrics by
//! route and status, and turns every error response into the JSON envelope,
//! whether it came from a handler ([`ErrorInfo`]) or from axum itself (unknown
//! route, wrong method, rejected extractor, body too large).

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use super::error::{envelope, ErrorInfo};
use super::metrics::RequestLabels;
use super::state::AppState;

pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Largest plain-text error body turned into an envelope message.
const MAX_ERROR_BODY: usize = 16 * 1024;

fn client_request_id(req: &Request) -> Option<String> {
    let v = req.headers().get(REQUEST_ID_HEADER)?.to_str().ok()?;
    let sane = !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    sane.then(|| v.to_string())
}

pub async fn around(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let id = client_request_id(&req).unwrap_or_else(|| format!("{:016x}{:016x}", rand::random::<u64>(), rand::random::<u64>()));
    let route = req.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = req.method().to_string();
    let span = tracing::info_span!("request", request_id = %id, %method, route = %route);
    let response = next.run(req).instrument(span).await;
    // Boxed: its state (reading an error body) would otherwise be part of every
    // waiting request's future, thousands of which may be held open at once.
    let mut response = Box::pin(to_envelope(response, &id)).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    let labels = RequestLabels { route, method, status: response.status().as_u16() };
    state.metrics.requests.get_or_create(&labels).inc();
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
